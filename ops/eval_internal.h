/* Building blocks of a no-grad evaluation forward (tg_unet_forward's eval path, nn/unet.c): each
 * writes its result into memory the caller gives (in place, or straight into a concatenation
 * buffer), records nothing and computes the same bits as the op it stands for. Not public API;
 * the caller makes sure no tape record is wanted (gradients off, or nothing requires grad). */
#ifndef TG_EVAL_INTERNAL_H
#define TG_EVAL_INTERNAL_H

#include "../core/core.h"
#include "nn_ops.h"

/* tg_batch_norm(_relu) in eval mode (running statistics) of x (N, C, ...), S values per channel
 * row: row (n, c) of the result goes to dst + n*img + c*S. dst may be x->data (in place, img =
 * C*S). The same bits as the op. false (and an error naming op) on bad arguments. */
bool tg_batch_norm_eval_into(const char *op, const tg_tensor *x, const tg_tensor *weight, const tg_tensor *bias,
                             const tg_tensor *running_mean, const tg_tensor *running_var, float eps, bool relu,
                             float *dst, int64_t img);

/* tg_pad(tg_upsample_bilinear2d(x, opts), {left, ., top, .}, 0) without either tensor: plane c of
 * image n goes to dst + n*img + c*Hd*Wd as an Hd x Wd plane, the upsampled (Ho, Wo) block at
 * (top, left) and zeros around it. The same bits as the two ops. false (and an error) on bad
 * arguments or out of memory. */
bool tg_upsample_bilinear2d_pad_into(tg_tensor *x, tg_upsample_opts opts, float *dst, int64_t img, int64_t Hd,
                                     int64_t Wd, int64_t top, int64_t left);

#endif
