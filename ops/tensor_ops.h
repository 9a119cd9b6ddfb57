/* Tensor ops: elementwise (with NumPy/PyTorch broadcasting), activations,
 * softmax, reductions, matmul, shape ops, gather and where.
 *
 * Ownership: every returned tensor belongs to the step's tape (released by
 * tg_tape_clear). Inputs are never modified. A NULL input gives NULL and keeps
 * the earlier error; a bad argument gives NULL and an error naming the op.
 */
#ifndef TG_TENSOR_OPS_H
#define TG_TENSOR_OPS_H

#include "../core/core.h"

/* ---- binary elementwise, broadcasting ---------------------------------- */
tg_tensor *tg_add(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_sub(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_mul(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_div(tg_tensor *a, tg_tensor *b);
/* a + s, a * s (scalar constants, no broadcasting bookkeeping). */
tg_tensor *tg_add_scalar(tg_tensor *a, float s);
tg_tensor *tg_mul_scalar(tg_tensor *a, float s);

/* ---- unary elementwise ------------------------------------------------- */
tg_tensor *tg_neg(tg_tensor *a);
tg_tensor *tg_exp(tg_tensor *a);
tg_tensor *tg_log(tg_tensor *a);
tg_tensor *tg_pow(tg_tensor *a, float exponent);
tg_tensor *tg_sqrt(tg_tensor *a);
tg_tensor *tg_abs(tg_tensor *a);               /* grad sign(x), 0 at 0 (as PyTorch) */
tg_tensor *tg_clamp(tg_tensor *a, float lo, float hi); /* use -INFINITY/INFINITY for one side; grad 1 inside [lo,hi] */

/* ---- activations ------------------------------------------------------- */
tg_tensor *tg_relu(tg_tensor *a);              /* grad 0 at 0 */
tg_tensor *tg_leaky_relu(tg_tensor *a, float negative_slope);
tg_tensor *tg_sigmoid(tg_tensor *a);
tg_tensor *tg_tanh(tg_tensor *a);
tg_tensor *tg_softplus(tg_tensor *a, float beta, float threshold); /* PyTorch defaults: 1, 20 */
/* Along any dim (negative counts from the end); max-subtracted, stable for large logits. */
tg_tensor *tg_softmax(tg_tensor *a, int dim);
tg_tensor *tg_log_softmax(tg_tensor *a, int dim);

/* ---- reductions -------------------------------------------------------- */
/* Over the listed dims (n_dims == 0: over all dims). keepdim keeps them as size 1. */
tg_tensor *tg_sum(tg_tensor *a, const int *dims, int n_dims, bool keepdim);
tg_tensor *tg_mean(tg_tensor *a, const int *dims, int n_dims, bool keepdim);
/* Max/min values; the gradient goes to the first extreme element (as torch.max(dim)). */
tg_tensor *tg_max(tg_tensor *a, const int *dims, int n_dims, bool keepdim);
tg_tensor *tg_min(tg_tensor *a, const int *dims, int n_dims, bool keepdim);
tg_tensor *tg_sum_all(tg_tensor *a);   /* scalar */
tg_tensor *tg_mean_all(tg_tensor *a);  /* scalar */
/* Int64 indices of the max along one dim (no grad). */
tg_tensor *tg_argmax(tg_tensor *a, int dim, bool keepdim);

/* ---- matmul (cblas_sgemm) ---------------------------------------------- */
/* (M,K)x(K,N); batched (...,M,K)x(...,K,N) with broadcast batch dims; 1-D operands as torch.matmul. */
tg_tensor *tg_matmul(tg_tensor *a, tg_tensor *b);

/* ---- shape ------------------------------------------------------------- */
/* One entry may be -1 (inferred). Copies data (tensors are always contiguous). */
tg_tensor *tg_reshape(tg_tensor *a, int ndim, const int64_t *shape);
tg_tensor *tg_permute(tg_tensor *a, const int *perm);
tg_tensor *tg_transpose(tg_tensor *a, int dim0, int dim1);
/* Python-style a[..., start:end:step, ...] on one dim; negative start/end count from the end; step > 0. */
tg_tensor *tg_slice(tg_tensor *a, int dim, int64_t start, int64_t end, int64_t step);
tg_tensor *tg_concat(tg_tensor *const *ts, int n, int dim);
/* As F.pad(mode='constant'): pads = {last_left, last_right, prev_left, prev_right, ...};
 * n_pads even, at most 2*ndim; negative values crop. */
tg_tensor *tg_pad(tg_tensor *a, const int64_t *pads, int n_pads, float value);
/* As torch.gather(a, dim, index): index is int64 with a's ndim; out has index's shape. */
tg_tensor *tg_gather(tg_tensor *a, int dim, tg_tensor *index);
/* cond ? a : b elementwise with broadcasting; cond is float (nonzero = true) or int64; no grad to cond. */
tg_tensor *tg_where(tg_tensor *cond, tg_tensor *a, tg_tensor *b);

#endif
