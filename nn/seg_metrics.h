/* Segmentation metrics as the reference DRIVE training code computes them (WZMIAOMIAO
 * pytorch_segmentation/unet, train_utils/distributed_utils.py):
 *   ConfusionMatrix: global accuracy = trace/total, per-class accuracy (recall) = diag/row sum,
 *                    IoU = diag/(row + column - diag), mean IoU over classes;
 *   DiceCoefficient: per image and per foreground class c >= 1, (2*inter + 1e-6)/(|pred| + |target| + 1e-6)
 *                    over the non-ignored pixels (|pred| + |target| == 0 gives 2*inter as the
 *                    denominator, i.e. 1), averaged over classes, then over images.
 * Pixels whose target equals the ignore value (255 on DRIVE: outside the field of view) count
 * nowhere. Predictions: argmax over channels for K >= 2 channels (first max wins, as torch.argmax),
 * and logit > 0 (sigmoid > 0.5) for a single channel, which is then a 2-class problem.
 * Ownership: the accumulator is a caller-owned struct; tg_seg_metrics_free releases its matrix.
 */
#ifndef TG_SEG_METRICS_H
#define TG_SEG_METRICS_H

#include "../core/core.h"

#define TG_SEG_MAX_CLASSES 64

typedef struct {
    int num_classes;
    int64_t ignore_index;   /* targets equal to it are skipped (negative: none) */
    int64_t *confusion;     /* num_classes^2, [target][prediction] */
    double dice_sum;        /* sum of per-image Dice values */
    int64_t images;         /* images added */
} tg_seg_metrics;

typedef struct {
    int num_classes;
    int64_t pixels;                         /* counted (non-ignored) pixels */
    double global_acc;
    double acc[TG_SEG_MAX_CLASSES];         /* per-class recall */
    double iou[TG_SEG_MAX_CLASSES];
    double mean_iou;
    double dice;                            /* mean over images (NAN before any image) */
} tg_seg_scores;

/* num_classes in [2, TG_SEG_MAX_CLASSES]. */
tg_status tg_seg_metrics_init(tg_seg_metrics *m, int num_classes, int64_t ignore_index);
void tg_seg_metrics_reset(tg_seg_metrics *m);
void tg_seg_metrics_free(tg_seg_metrics *m);
/* Adds a batch: logits (N, K, H, W) with K == num_classes, or (N, 1, H, W) for a 2-class
 * sigmoid head; target (N, H, W) int64 with values in [0, num_classes) or ignore_index.
 * Each of the N images adds one Dice value. */
tg_status tg_seg_metrics_update(tg_seg_metrics *m, const tg_tensor *logits, const tg_tensor *target);
/* The predicted class per pixel of one image's logits (K, H*W) -> pred (H*W); K == 1: logit > 0. */
void tg_seg_predict(const float *logits, int64_t channels, int64_t pixels, uint8_t *pred);
tg_seg_scores tg_seg_metrics_compute(const tg_seg_metrics *m);

#endif
