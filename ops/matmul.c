/* Matrix product as torch.matmul, through cblas_sgemm.
 *
 *   (M,K) x (K,N) -> (M,N)                       one sgemm
 *   (...,M,K) x (K,N) -> (...,M,N)               one sgemm over the flattened batch (M' = batch*M)
 *   (...,M,K) x (...,K,N) -> (...,M,N)           one sgemm per output batch, batch dims broadcast
 *   (K) x (...,K,N), (...,M,K) x (K), (K) x (K)  1-D operands: a row (1,K) / a column (K,1) whose
 *                                                size-1 dim is dropped from the result
 *
 * Backward (row-major, no transposed copies: the transposes are sgemm flags):
 *   dA += dC . B^T     dB += A^T . dC
 * with beta = 1, so a batch entry of A or B that is broadcast over several output
 * batches accumulates the sum over them directly in its gradient buffer.
 */
#include "core/core_internal.h"
#include "ops/tensor_ops.h"

#include <cblas.h>
#include <limits.h>
#include <string.h>

/* The shapes of one matmul, resolved once in forward and kept for backward. */
typedef struct {
    int64_t m, k, n;
    int nb;                        /* number of broadcast batch dims */
    int64_t batch[TG_MAX_DIMS];    /* broadcast batch shape */
    int64_t a_stride[TG_MAX_DIMS]; /* per batch dim, in matrices; 0 where a is broadcast */
    int64_t b_stride[TG_MAX_DIMS];
    int64_t n_batch;               /* product of batch[] */
    bool flat;                     /* b has a single matrix: one sgemm with M' = n_batch*M */
} matmul_plan;

/* Batch strides (in whole matrices) of a tensor whose first `tb` dims are batch dims,
 * aligned right against the nb broadcast batch dims. */
static void batch_strides(const tg_tensor *t, int tb, int nb, int64_t *stride)
{
    int64_t s = 1;
    for (int d = nb - 1; d >= 0; d--) {
        int td = d - (nb - tb);
        if (td < 0 || t->shape[td] == 1) {
            stride[d] = 0;
        } else {
            stride[d] = s;
        }
        if (td >= 0) s *= t->shape[td];
    }
}

static bool fits_blas_int(int64_t v) { return v <= INT_MAX; }

static bool matmul_plan_make(const tg_tensor *a, const tg_tensor *b, matmul_plan *p, int *out_ndim,
                             int64_t *out_shape)
{
    char x[96], y[96];
    if (a->ndim == 0 || b->ndim == 0) {
        tg_error(TG_ERR_SHAPE, "tg_matmul: both operands need at least 1 dimension, got %s and %s",
                 tg_shape_str(a, x, sizeof x), tg_shape_str(b, y, sizeof y));
        return false;
    }
    /* a as (...,M,K): a 1-D a is a row (1,K). b as (...,K,N): a 1-D b is a column (K,1). */
    int64_t ka = a->shape[a->ndim - 1];
    int64_t kb = b->ndim == 1 ? b->shape[0] : b->shape[b->ndim - 2];
    if (ka != kb) {
        tg_error(TG_ERR_SHAPE, "tg_matmul: inner dimensions differ: a %s has %lld columns, b %s has %lld rows",
                 tg_shape_str(a, x, sizeof x), (long long)ka, tg_shape_str(b, y, sizeof y), (long long)kb);
        return false;
    }
    p->m = a->ndim == 1 ? 1 : a->shape[a->ndim - 2];
    p->k = ka;
    p->n = b->ndim == 1 ? 1 : b->shape[b->ndim - 1];
    int ab = a->ndim > 2 ? a->ndim - 2 : 0, bb = b->ndim > 2 ? b->ndim - 2 : 0;
    p->nb = ab > bb ? ab : bb;
    p->n_batch = 1;
    for (int d = 0; d < p->nb; d++) {
        int da = d - (p->nb - ab), db = d - (p->nb - bb);
        int64_t sa = da >= 0 ? a->shape[da] : 1, sb = db >= 0 ? b->shape[db] : 1;
        if (sa != sb && sa != 1 && sb != 1) {
            tg_error(TG_ERR_SHAPE,
                     "tg_matmul: batch dimensions of %s and %s cannot be broadcast (batch dim %d: %lld vs %lld)",
                     tg_shape_str(a, x, sizeof x), tg_shape_str(b, y, sizeof y), d, (long long)sa, (long long)sb);
            return false;
        }
        p->batch[d] = sa == 1 ? sb : sa;
        p->n_batch *= p->batch[d];
    }
    batch_strides(a, ab, p->nb, p->a_stride);
    batch_strides(b, bb, p->nb, p->b_stride);
    int64_t b_mats = 1;
    for (int d = 0; d < bb; d++) b_mats *= b->shape[d];
    p->flat = b_mats == 1;
    if (!fits_blas_int(p->k) || !fits_blas_int(p->n) || !fits_blas_int(p->flat ? p->n_batch * p->m : p->m)) {
        tg_error(TG_ERR_SHAPE, "tg_matmul: %s x %s is too large for BLAS's int dimensions",
                 tg_shape_str(a, x, sizeof x), tg_shape_str(b, y, sizeof y));
        return false;
    }
    int nd = 0;
    for (int d = 0; d < p->nb; d++) out_shape[nd++] = p->batch[d];
    if (a->ndim > 1) out_shape[nd++] = p->m;
    if (b->ndim > 1) out_shape[nd++] = p->n;
    *out_ndim = nd;
    return true;
}

/* Matrix offsets of a and b for output batch entry `i` (row-major over p->batch). */
static void batch_offsets(const matmul_plan *p, int64_t i, int64_t *ia, int64_t *ib)
{
    int64_t oa = 0, ob = 0;
    for (int d = p->nb - 1; d >= 0; d--) {
        int64_t c = i % p->batch[d];
        i /= p->batch[d];
        oa += c * p->a_stride[d];
        ob += c * p->b_stride[d];
    }
    *ia = oa;
    *ib = ob;
}

static void matmul_backward(tg_node *n)
{
    const matmul_plan *p = n->ctx;
    tg_tensor *a = n->in[0], *b = n->in[1];
    const float *dc = n->out->grad;
    const int m = (int)p->m, k = (int)p->k, nn = (int)p->n;
    if (n->out->numel == 0 || k == 0) return;
    float *da = tg_needs_grad(a) ? tg_grad(a) : NULL;
    float *db = tg_needs_grad(b) ? tg_grad(b) : NULL;
    if ((tg_needs_grad(a) && !da) || (tg_needs_grad(b) && !db)) return;
    if (p->flat) {
        const int mf = (int)(p->n_batch * p->m);
        /* dA (M',K) += dC (M',N) . B^T;  dB (K,N) += A^T (K,M') . dC (M',N): the batch sum is the inner product */
        if (da) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, mf, k, nn, 1.0f, dc, nn, b->data, nn, 1.0f, da, k);
        if (db) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, nn, mf, 1.0f, a->data, k, dc, nn, 1.0f, db, nn);
        return;
    }
    const int64_t sa = p->m * p->k, sb = p->k * p->n, sc = p->m * p->n;
    for (int64_t i = 0; i < p->n_batch; i++) {
        int64_t ia, ib;
        batch_offsets(p, i, &ia, &ib);
        const float *g = dc + i * sc;
        if (da)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, k, nn, 1.0f, g, nn, b->data + ib * sb, nn, 1.0f,
                        da + ia * sa, k);
        if (db)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, nn, m, 1.0f, a->data + ia * sa, k, g, nn, 1.0f,
                        db + ib * sb, nn);
    }
}

TG_OP_DEFINE(MATMUL_OP, matmul, matmul_backward);

tg_tensor *tg_matmul(tg_tensor *a, tg_tensor *b)
{
    tg_blas_check_kernel(); /* one stderr line if OpenBLAS runs generic kernels */
    if (!tg_check_f32("tg_matmul", "a", a) || !tg_check_f32("tg_matmul", "b", b)) return NULL;
    /* The common 2-D case goes straight to one sgemm. */
    if (a->ndim == 2 && b->ndim == 2 && a->shape[1] == b->shape[0] && fits_blas_int(a->shape[0]) &&
        fits_blas_int(a->shape[1]) && fits_blas_int(b->shape[1]) && a->shape[1] > 0) {
        const int m = (int)a->shape[0], k = (int)a->shape[1], nn = (int)b->shape[1];
        tg_tensor *out = tg_output_new(TG_F32, 2, (const int64_t[]){m, nn});
        if (!out) return NULL;
        if (out->numel > 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, nn, k, 1.0f, a->data, k, b->data, nn, 0.0f,
                        out->data, nn);
        tg_tensor *in[2] = {a, b};
        tg_node *node = tg_record(&MATMUL_OP, out, 2, in);
        if (node) {
            matmul_plan *p = tg_arena_alloc(sizeof *p);
            if (!p) return NULL;
            memset(p, 0, sizeof *p);
            p->m = m, p->k = k, p->n = nn, p->n_batch = 1, p->flat = true;
            node->ctx = p;
        }
        return out;
    }
    matmul_plan plan;
    int nd;
    int64_t shape[TG_MAX_DIMS + 2];
    if (!matmul_plan_make(a, b, &plan, &nd, shape)) return NULL;
    if (nd > TG_MAX_DIMS) {
        char x[96], y[96];
        tg_error(TG_ERR_SHAPE, "tg_matmul: the result of %s x %s would have more than %d dimensions",
                 tg_shape_str(a, x, sizeof x), tg_shape_str(b, y, sizeof y), TG_MAX_DIMS);
        return NULL;
    }
    tg_tensor *out = tg_output_new(TG_F32, nd, shape);
    if (!out) return NULL;
    const int m = (int)plan.m, k = (int)plan.k, nn = (int)plan.n;
    if (out->numel > 0 && k == 0) {
        memset(out->data, 0, (size_t)out->numel * sizeof(float));
    } else if (out->numel > 0 && plan.flat) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(plan.n_batch * plan.m), nn, k, 1.0f, a->data, k,
                    b->data, nn, 0.0f, out->data, nn);
    } else if (out->numel > 0) {
        const int64_t sa = plan.m * plan.k, sb = plan.k * plan.n, sc = plan.m * plan.n;
        for (int64_t i = 0; i < plan.n_batch; i++) {
            int64_t ia, ib;
            batch_offsets(&plan, i, &ia, &ib);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, nn, k, 1.0f, a->data + ia * sa, k,
                        b->data + ib * sb, nn, 0.0f, out->data + i * sc, nn);
        }
    }
    tg_tensor *in[2] = {a, b};
    tg_node *node = tg_record(&MATMUL_OP, out, 2, in);
    if (node) {
        matmul_plan *p = tg_arena_alloc(sizeof *p);
        if (!p) return NULL;
        *p = plan;
        node->ctx = p;
    }
    return out;
}
