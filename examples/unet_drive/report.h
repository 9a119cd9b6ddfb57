/* unet_drive's results: per-epoch records (log.jsonl), the side-by-side report (report.md and a
 * table on stdout), training curves (curves.png, PLplot) and prediction overlays (PNG).
 * Ownership: a unet_run owns its epochs array (unet_run_free). */
#ifndef UNET_REPORT_H
#define UNET_REPORT_H

#include "tapegrad.h"

typedef struct {
    int epoch;                  /* from 1 */
    double lr;                  /* learning rate at the end of the epoch */
    double train_loss;          /* mean over the epoch's batches */
    double train_seconds;       /* wall time of the epoch's training steps */
    double images_per_second;   /* training images / train_seconds */
    double wait_share;          /* share of train_seconds spent waiting for the data loader */
    bool evaluated;             /* the fields below are set */
    double test_loss;           /* same loss as training, mean over test images */
    double dice, miou, global_acc, acc[2], iou[2];
    double eval_seconds, infer_ms;  /* whole evaluation; forward ms per test image */
} unet_epoch;

typedef struct {
    char head[16];              /* "sigmoid" or "softmax" */
    int num_classes;            /* output channels: 1 or 2 */
    int64_t params;             /* trainable parameters */
    int base_c, crop, batch, epochs_planned;
    double peak_rss_mb;
    char norm_mean[64], norm_std[64]; /* input normalisation "m0,m1,m2" / "s0,s1,s2" ("" if not logged) */
    char framework[48];         /* "framework" of the log lines ("" = tapegrad; bench/unet_drive_torch.py writes pytorch) */
    char config[1024];          /* the effective configuration as a JSON object ("" if unknown) */
    unet_epoch *epochs;
    int n_epochs, cap_epochs;
} unet_run;

/* One JSON line for log.jsonl (no newline), into buf. */
void unet_epoch_json(const unet_run *run, const unet_epoch *e, char *buf, size_t size);
/* Reads OUT/<head>/log.jsonl into run (fresh). TG_ERR_IO if missing, TG_ERR_FORMAT on a bad line. */
tg_status unet_run_load(const char *path, unet_run *run);
/* The same from an open stream; name is used in messages ("name:LINE: ..."). */
tg_status unet_run_read(FILE *f, const char *name, unet_run *run);
bool unet_run_push(unet_run *run, const unet_epoch *e);
void unet_run_free(unet_run *run);
/* The best evaluated epoch by Dice (NULL if none) and the last evaluated one. */
const unet_epoch *unet_run_best(const unet_run *run);
const unet_epoch *unet_run_last_eval(const unet_run *run);

/* Writes out_dir/report.md and prints the table to stdout. runs[i] may have no epochs. */
tg_status unet_report_write(const char *out_dir, const unet_run *runs, int n_runs);
/* Training loss and test Dice per epoch for every run, as a PNG (PLplot "pngcairo").
 * TG_ERR_STATE with a message if PLplot or its cairo driver is not available; TG_ERR_IO if
 * the file could not be written whole (then it is removed). */
tg_status unet_plot_curves(const char *path, const unet_run *runs, int n_runs);
/* The same 1200x480 PNG frame with two panels: draw(ctx, false) left (loss), draw(ctx, true) right
 * (Dice); colours 1/2 sigmoid/softmax, 3 grid, 4/5 translucent bands. Same errors as above. */
tg_status unet_plot_panels(const char *path, void (*draw)(const void *ctx, bool dice), const void *ctx);

/* Overlay of one test image: the RGB image, then per prediction the image dimmed with true
 * positives white, false positives red, false negatives green; pixels outside the field of
 * view (target 255) darkened. target and preds[k] are width*height class labels (0/1, 255). */
tg_status unet_overlay_save(const char *path, const tg_image *image, const uint8_t *target,
                            const uint8_t *const *preds, int n_preds);

#endif
