/* Convolution kernels shared inside ops/ (not public API). */
#ifndef TG_CONV_INTERNAL_H
#define TG_CONV_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

/* 3x3, stride 1, padding 1, dilation 1, one group, N images (ops/conv3x3.c).
 * Forward: y (N,Co,H,W) = conv(x (N,Ci,H,W), w (Co,Ci,3,3)).
 * transposed: w is (Ci,Co,3,3) used transposed and rotated, i.e. the input gradient
 * dx (N,Co,H,W) from dy (N,Ci,H,W). accumulate: y += instead of y =. bias (Co) or NULL: added to y.
 * Uses scratch slots 0 (each thread) and 1-3. false (and an error) if out of memory. */
bool tg_conv3x3_direct(const float *x, int64_t N, int64_t Ci, int64_t H, int64_t W, const float *w, int64_t Co,
                       bool transposed, float *y, bool accumulate, const float *bias);
/* dw (O,C,3,3) += weight gradient from x (N,C,H,W) and dy (N,O,H,W); db (O) += the bias gradient
 * unless NULL. The result does not depend on the number of threads. Scratch slots 0 (each
 * thread) and 1-3. */
bool tg_conv3x3_direct_dw(const float *x, int64_t N, int64_t C, int64_t H, int64_t W, const float *dy, int64_t O,
                          float *dw, float *db);

/* The same convolutions by Winograd F(4x4,3x3) (ops/conv_winograd.c; 8 lanes with AVX2, 16 where
 * the conv kernels' instruction set is AVX-512, the same bits): the same arguments as
 * tg_conv3x3_direct; the weight gradient without the bias's. Results do not depend on the number
 * of threads, and an image's forward and input gradient not on the batch. Scratch slot 0 of each
 * thread, 1-2 of the calling one. Only where tg_conv3x3_winograd_ok (AVX2 + FMA). */
bool tg_conv3x3_winograd_ok(void);
bool tg_conv3x3_winograd(const float *x, int64_t N, int64_t Ci, int64_t H, int64_t W, const float *w, int64_t Co,
                         bool transposed, float *y, bool accumulate, const float *bias);
bool tg_conv3x3_winograd_dw(const float *x, int64_t N, int64_t C, int64_t H, int64_t W, const float *dy, int64_t O,
                            float *dw);

/* Should the weight gradient of this 3x3 layer go through im2col + sgemm instead (only without
 * AVX2, for many channels)? */
bool tg_conv3x3_dw_by_gemm(int64_t C, int64_t O);

/* parts[0 .. part) += parts[k*part ..] for k = 1 .. n-1, in that order (each element's sum does
 * not depend on the threads, which split the elements) (ops/conv3x3.c). */
void tg_conv_sum_partials(float *parts, int64_t part, int64_t n);

/* db (O) += sum over n and l of dy (N,O,L), in double per channel (ops/conv2d.c). */
void tg_conv_bias_grad(float *db, const float *dy, int64_t N, int64_t O, int64_t L);

/* Kernel paths of conv2d (the testing interface, ops/conv_testing.h, can force one). */
typedef enum {
    TG_CONV_RUN_IM2COL,
    TG_CONV_RUN_DIRECT,
    TG_CONV_RUN_ONEDNN,
    TG_CONV_RUN_WINOGRAD,     /* oneDNN's Winograd F(4x4,3x3), AVX-512 */
    TG_CONV_RUN_WINOGRAD_OWN /* ours, ops/conv_winograd.c */
} tg_conv_run;

/* The path of each phase of one conv2d: forward, input gradient, weight (and bias) gradient.
 * Winograd runs take only 3x3 stride-1 pad-1 layers of one group. */
typedef struct {
    tg_conv_run fwd, dx, dw;
} tg_conv_plan;

/* The paths of a conv2d of this geometry (ops/conv_select.c): the forced one, else the fastest
 * measured for the shape on this instruction set. direct_ok: the 3x3 direct kernels apply
 * (stride 1, padding 1, dilation 1, one group); onednn_ok: oneDNN takes the layer (built in and
 * its limits). */
tg_conv_plan tg_conv_choose(int64_t N, int64_t C, int64_t O, int64_t H, int64_t W, int kh, int kw, bool direct_ok,
                            bool onednn_ok);

/* Instruction set of the direct kernels: 0 baseline, 1 AVX2+FMA, 2 AVX-512: the best this CPU
 * runs, or the testing interface's cap. */
int tg_conv_isa_active(void);

#endif
