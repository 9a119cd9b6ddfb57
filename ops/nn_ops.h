/* Neural-network ops: conv2d, conv_transpose2d, pooling, upsampling, batch norm,
 * dropout, flatten, linear. NCHW layout, PyTorch semantics.
 *
 * Ownership: results belong to the step's tape (tg_tape_clear releases them).
 * Options are structs whose zero fields mean PyTorch's defaults, e.g.
 *   tg_conv2d(x, w, b, (tg_conv2d_opts){.padding = {1, 1}})
 */
#ifndef TG_NN_OPS_H
#define TG_NN_OPS_H

#include "../core/core.h"

typedef struct {
    int stride[2];          /* 0 -> 1 */
    int padding[2];         /* zeros padding, (h, w) */
    int dilation[2];        /* 0 -> 1 */
    int groups;             /* 0 -> 1 */
    int output_padding[2];  /* conv_transpose2d only */
} tg_conv2d_opts;

/* x (N,Cin,H,W), w (Cout,Cin/groups,kh,kw), bias (Cout) or NULL -> (N,Cout,Ho,Wo). Cross-correlation. */
tg_tensor *tg_conv2d(tg_tensor *x, tg_tensor *w, tg_tensor *bias, tg_conv2d_opts opts);
/* x (N,Cin,H,W), w (Cin,Cout/groups,kh,kw), bias (Cout) or NULL. */
tg_tensor *tg_conv_transpose2d(tg_tensor *x, tg_tensor *w, tg_tensor *bias, tg_conv2d_opts opts);

typedef struct {
    int kernel[2];
    int stride[2];          /* 0 -> kernel */
    int padding[2];
    int dilation[2];        /* 0 -> 1 (max pool only) */
    bool ceil_mode;
    bool exclude_pad;       /* avg pool: true = count_include_pad=False (PyTorch default is include) */
} tg_pool2d_opts;

tg_tensor *tg_max_pool2d(tg_tensor *x, tg_pool2d_opts opts);   /* ties: gradient to the first max */
tg_tensor *tg_avg_pool2d(tg_tensor *x, tg_pool2d_opts opts);
tg_tensor *tg_adaptive_avg_pool2d(tg_tensor *x, int64_t out_h, int64_t out_w);

typedef struct {
    int64_t size[2];        /* output (H, W); or 0 and give scale */
    double scale[2];        /* scale factors (used as PyTorch does when size is 0) */
    bool align_corners;     /* bilinear only; PyTorch's default is false */
} tg_upsample_opts;

tg_tensor *tg_upsample_bilinear2d(tg_tensor *x, tg_upsample_opts opts);
tg_tensor *tg_upsample_nearest2d(tg_tensor *x, tg_upsample_opts opts);

/* x (N,C,...) . weight/bias (C) or NULL. training: batch statistics (biased variance) and, when
 * running_mean/var are given (caller-owned, updated in place), running stats updated with
 * momentum and the unbiased variance; momentum NAN = cumulative average (PyTorch momentum=None),
 * *num_batches_tracked incremented if not NULL. Eval: running statistics. */
tg_tensor *tg_batch_norm(tg_tensor *x, tg_tensor *weight, tg_tensor *bias, tg_tensor *running_mean,
                         tg_tensor *running_var, int64_t *num_batches_tracked, bool training, float momentum,
                         float eps);
/* tg_relu(tg_batch_norm(...)) bit for bit, in one op (one pass over memory less each way). */
tg_tensor *tg_batch_norm_relu(tg_tensor *x, tg_tensor *weight, tg_tensor *bias, tg_tensor *running_mean,
                              tg_tensor *running_var, int64_t *num_batches_tracked, bool training, float momentum,
                              float eps);

/* Batch statistics shared by several processes (SyncBatchNorm; tapegrad_dist's
 * tg_dist_bn_reducer makes one over MPI): sum(buf, n, ctx) replaces buf[0..n) by its element-wise
 * sum over all processes, the same call on every process; TG_OK or an error. */
typedef struct tg_bn_reducer {
    tg_status (*sum)(double *buf, int64_t n, void *ctx);
    void *ctx;
} tg_bn_reducer;
/* tg_batch_norm (relu: tg_batch_norm_relu) in training mode over the batch formed by every
 * process's x: mean and variance summed through red in forward, the two gradient sums in backward
 * (a collective: every process calls it, in the same order). dgamma/dbeta are this process's part
 * (average them over processes with the other gradients). */
tg_tensor *tg_sync_batch_norm(tg_tensor *x, tg_tensor *weight, tg_tensor *bias, tg_tensor *running_mean,
                              tg_tensor *running_var, int64_t *num_batches_tracked, float momentum, float eps,
                              bool relu, const tg_bn_reducer *red);

/* Inverted dropout: zeroes with probability p, scales the rest by 1/(1-p); identity in eval. rng NULL = global. */
tg_tensor *tg_dropout(tg_tensor *x, float p, bool training, tg_rng *rng);
tg_tensor *tg_flatten(tg_tensor *x, int start_dim, int end_dim);
/* x (..., in), w (out, in), bias (out) or NULL -> (..., out). */
tg_tensor *tg_linear(tg_tensor *x, tg_tensor *w, tg_tensor *bias);

#endif
