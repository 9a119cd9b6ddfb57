/* conv2d through oneDNN (ops/conv_onednn.c; an optional dependency: without libdnnl every
 * function here reports "not built" and conv2d never chooses it). Not public API. */
#ifndef TG_CONV_ONEDNN_H
#define TG_CONV_ONEDNN_H

#include <stdbool.h>
#include <stdint.h>

/* One conv2d: x (N,C,H,W), w (O,C/groups,kh,kw), y (N,O,Ho,Wo). */
typedef struct {
    int64_t N, C, H, W, O, Ho, Wo;
    int kh, kw, sh, sw, ph, pw, dh, dw, groups;
    int winograd; /* 1: oneDNN's Winograd F(4x4,3x3) (AVX-512 only; forward and backward data) */
} tg_conv_desc;

bool tg_conv_onednn_built(void);
/* Could oneDNN's Winograd kernels run here: built with oneDNN, an AVX-512 (F+BW+VL+DQ) CPU and
 * oneDNN not capped below it. */
bool tg_conv_onednn_winograd_ok(void);
/* Winograd only below this many 4x4 output tiles per call (N * ceil(H/4) * ceil(W/4)): under it
 * the kernel's schedule, and so its results, do not depend on the number of threads
 * (ops/conv_onednn.c, WINO_PLAN_THREADS). */
#define TG_CONV_WINOGRAD_MAX_TILES ((int64_t)6 << 20)
/* Cap oneDNN's instruction set (1 AVX2, 0 baseline SSE4.1); only before its first primitive. */
void tg_conv_onednn_cap_isa(int isa);
/* Drop the cached primitives (the next call of each shape creates them again). */
void tg_conv_onednn_forget(void);
/* y = conv(x, w) (+ bias unless NULL), y overwritten. false (and an error) on failure. */
bool tg_conv_onednn_forward(const tg_conv_desc *d, const float *x, const float *w, const float *bias, float *y);
/* dx (N,C,H,W) = (accumulate ? dx + : ) the input gradient from dy (N,O,Ho,Wo). */
bool tg_conv_onednn_backward_data(const tg_conv_desc *d, const float *dy, const float *w, float *dx, bool accumulate);
/* dw (O,C/groups,kh,kw) += the weight gradient from x and dy; db (O) += the bias gradient unless
 * NULL. Summed per image in image order: the result does not depend on the number of threads. */
bool tg_conv_onednn_backward_weights(const tg_conv_desc *d, const float *x, const float *dy, float *dw, float *db);
/* The same through oneDNN's Winograd F(4x4,3x3) (3x3, stride 1, pad 1, one group; AVX-512): one
 * image per call, images over the OpenMP threads, each on a one-thread plan, summed in image
 * order, so also independent of the number of threads. Scratch slot 0 of the calling thread and
 * slots 1-3 of every thread. */
bool tg_conv_onednn_backward_weights_winograd(const tg_conv_desc *d, const float *x, const float *dy, float *dw,
                                               float *db);

#endif
