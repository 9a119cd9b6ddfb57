/* unet_drive's two heads and their training loss (one definition, used by training, evaluation
 * and `unet_drive step-dump`). Ownership: loss_buffers owns its tensors (loss_buffers_free). */
#ifndef UNET_HEAD_LOSS_H
#define UNET_HEAD_LOSS_H

#include "tapegrad.h"

enum { HEAD_SIGMOID = 0, HEAD_SOFTMAX = 1 };
static const char *const HEAD_NAME[2] = {"sigmoid", "softmax"};

/* Per-batch target tensors, remade only when the batch shape changes (the last batch). */
typedef struct {
    tg_tensor *class_weight;  /* (2) for cross-entropy */
    tg_tensor *t, *w;         /* sigmoid head: (N,1,H,W) float target and per-pixel weight */
} loss_buffers;

void loss_buffers_free(loss_buffers *b);

/* The same loss for both heads, as a function of z = z1 - z0 (sigmoid head: z is its logit):
 *   sum over counted pixels of w_y * BCE(sigmoid(z), y) / sum of w_y,
 * which is exactly PyTorch's weighted cross-entropy with ignore_index 255 (reduction 'mean').
 * logits (N, 1|2, H, W), y (N, H, W) int64 with 0, 1 or 255; cw the class weights. Tape-owned
 * scalar, NULL + error. */
tg_tensor *head_loss(int head, tg_tensor *logits, const tg_tensor *y, const double cw[2], loss_buffers *b);

#endif
