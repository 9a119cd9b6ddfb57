/* Fully connected layer and flatten.
 *
 * linear:  x (..., in), w (out, in), b (out) -> y (..., out) = x . wᵀ + b, x viewed as (M, in).
 *          backward: dx += dy . w;  dw += dyᵀ . x;  db += Σ_rows dy   (three sgemm-shaped steps).
 * flatten: dims start..end merged into one (negative dims count from the end); a copy, as
 *          tensors here are always contiguous; backward adds dy back unchanged.
 */
#include "../core/core_internal.h"
#include "nn_ops.h"

#include <cblas.h>
#include <string.h>

static void linear_backward(tg_node *n)
{
    tg_tensor *x = n->in[0], *w = n->in[1], *b = n->n_in > 2 ? n->in[2] : NULL;
    const float *dy = n->out->grad;
    const int64_t out = w->shape[0], in = w->shape[1], M = out > 0 ? n->out->numel / out : 0;
    if (M == 0) return;
    if (tg_needs_grad(x)) {
        float *dx = tg_grad(x);
        if (!dx) return; /* out of memory: the error is set */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)in, (int)out, 1.0f, dy, (int)out, w->data,
                    (int)in, 1.0f, dx, (int)in);
    }
    if (tg_needs_grad(w)) {
        float *dw = tg_grad(w);
        if (!dw) return;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)out, (int)in, (int)M, 1.0f, dy, (int)out, x->data,
                    (int)in, 1.0f, dw, (int)in);
    }
    if (b && tg_needs_grad(b)) {
        float *db = tg_grad(b);
        if (!db) return;
        for (int64_t m = 0; m < M; m++)
            for (int64_t o = 0; o < out; o++) db[o] += dy[m * out + o];
    }
}

TG_OP_DEFINE(LINEAR_OP, linear, linear_backward);

tg_tensor *tg_linear(tg_tensor *x, tg_tensor *w, tg_tensor *bias)
{
    tg_blas_check_kernel(); /* one stderr line if OpenBLAS runs generic kernels */
    const char *op = "tg_linear";
    if (!tg_check_f32(op, "x", x) || !tg_check_f32(op, "weight", w)) return NULL;
    if (!tg_check_ndim(op, "x", x, 1, TG_MAX_DIMS) || !tg_check_ndim(op, "weight", w, 2, 2)) return NULL;
    char sx[96], sw[96], sb[96];
    const int64_t out = w->shape[0], in = w->shape[1];
    if (x->shape[x->ndim - 1] != in) {
        tg_error(TG_ERR_SHAPE, "%s: x %s has %lld features in its last dim but weight %s expects %lld", op,
                 tg_shape_str(x, sx, sizeof sx), (long long)x->shape[x->ndim - 1], tg_shape_str(w, sw, sizeof sw),
                 (long long)in);
        return NULL;
    }
    if (bias) {
        if (!tg_check_f32(op, "bias", bias)) return NULL;
        if (bias->ndim != 1 || bias->shape[0] != out) {
            tg_error(TG_ERR_SHAPE, "%s: bias must have shape (%lld) for weight %s, got %s", op, (long long)out,
                     tg_shape_str(w, sw, sizeof sw), tg_shape_str(bias, sb, sizeof sb));
            return NULL;
        }
    }
    int64_t shape[TG_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = out;
    tg_tensor *y = tg_output_new(TG_F32, x->ndim, shape);
    if (!y) return NULL;
    int64_t M = 1; /* rows: the product of x's leading dims */
    for (int d = 0; d + 1 < x->ndim; d++) M *= x->shape[d];
    if (bias)
        for (int64_t m = 0; m < M; m++) memcpy(y->data + m * out, bias->data, (size_t)out * sizeof(float));
    if (M > 0 && out > 0) {
        if (in > 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)out, (int)in, 1.0f, x->data, (int)in,
                        w->data, (int)in, bias ? 1.0f : 0.0f, y->data, (int)out);
        else if (!bias)
            memset(y->data, 0, (size_t)y->numel * sizeof(float));
    }
    tg_tensor *inputs[3] = {x, w, bias};
    tg_record(&LINEAR_OP, y, bias ? 3 : 2, inputs);
    return y;
}

/* ---- flatten --------------------------------------------------------------------------------- */

static void flatten_backward(tg_node *n)
{
    tg_tensor *x = n->in[0];
    if (!tg_needs_grad(x)) return;
    float *dx = tg_grad(x);
    if (!dx) return;
    const float *dy = n->out->grad;
#pragma omp parallel for if (x->numel > TG_PARALLEL_MIN) schedule(static)
    for (int64_t i = 0; i < x->numel; i++) dx[i] += dy[i];
}

TG_OP_DEFINE(FLATTEN_OP, flatten, flatten_backward);

tg_tensor *tg_flatten(tg_tensor *x, int start_dim, int end_dim)
{
    const char *op = "tg_flatten";
    if (!tg_check_f32(op, "x", x)) return NULL;
    int nd = x->ndim > 0 ? x->ndim : 1; /* a scalar flattens to (1) as in PyTorch */
    if (!tg_normalize_dim(op, nd, &start_dim) || !tg_normalize_dim(op, nd, &end_dim)) return NULL;
    if (start_dim > end_dim) {
        tg_error(TG_ERR_ARG, "%s: start_dim %d comes after end_dim %d", op, start_dim, end_dim);
        return NULL;
    }
    int64_t shape[TG_MAX_DIMS];
    int k = 0;
    if (x->ndim == 0) shape[k++] = 1;
    else {
        for (int d = 0; d < start_dim; d++) shape[k++] = x->shape[d];
        int64_t m = 1;
        for (int d = start_dim; d <= end_dim; d++) m *= x->shape[d];
        shape[k++] = m;
        for (int d = end_dim + 1; d < x->ndim; d++) shape[k++] = x->shape[d];
    }
    tg_tensor *y = tg_output_new(TG_F32, k, shape);
    if (!y) return NULL;
    memcpy(y->data, x->data, (size_t)x->numel * sizeof(float));
    tg_record(&FLATTEN_OP, y, 1, &x);
    return y;
}
