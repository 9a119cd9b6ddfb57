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

/* Should the weight gradient of this 3x3 layer go through im2col + sgemm instead (only without
 * AVX2, for many channels)? */
bool tg_conv3x3_dw_by_gemm(int64_t C, int64_t O);

/* db (O) += sum over n and l of dy (N,O,L), in double per channel (ops/conv2d.c). */
void tg_conv_bias_grad(float *db, const float *dy, int64_t N, int64_t O, int64_t L);

/* true: conv2d takes the im2col path even where the direct kernels apply (tests compare the two). */
extern bool tg_conv_force_im2col;

/* Instruction set of the 3x3 kernels: 0 baseline, 1 AVX2+FMA, 2 AVX-512. tg_conv3x3_isa_best()
 * resets any override and returns what this CPU supports; tests set tg_conv3x3_isa_override to a
 * supported value to run every variant (-1: automatic). */
int tg_conv3x3_isa_best(void);
extern int tg_conv3x3_isa_override;

#endif
