/* Shape ops that keep every element and change its place: reshape (same order, new shape) and
 * permute/transpose (new order). Tensors are always contiguous, so both copy; each backward is
 * the matching copy (added) into the input's gradient.
 */
#include "core/core_internal.h"
#include "ops/tensor_ops.h"

#include <stdint.h>
#include <string.h>

static void add_into(float *restrict dst, const float *restrict src, int64_t n)
{
#pragma omp parallel for simd if (n > TG_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) dst[i] += src[i];
}

/* ---- reshape ------------------------------------------------------------ */

static void reshape_backward(tg_node *n)
{
    tg_tensor *a = n->in[0];
    float *ga = tg_grad(a);
    if (ga) add_into(ga, n->out->grad, a->numel);
}

TG_OP_DEFINE(RESHAPE_OP, reshape, reshape_backward);

tg_tensor *tg_reshape(tg_tensor *a, int ndim, const int64_t *shape)
{
    if (!tg_check_f32("tg_reshape", "a", a)) return NULL;
    if (ndim < 0 || ndim > TG_MAX_DIMS || (ndim > 0 && !shape)) {
        tg_error(TG_ERR_ARG, "tg_reshape: ndim must be 0..%d with a shape array, got %d", TG_MAX_DIMS, ndim);
        return NULL;
    }
    char x[96], y[96];
    int64_t s[TG_MAX_DIMS];
    int infer = -1;
    int64_t known = 1;
    for (int d = 0; d < ndim; d++) {
        s[d] = shape[d];
        if (shape[d] == -1) {
            if (infer >= 0) {
                tg_error(TG_ERR_ARG, "tg_reshape: only one dimension can be -1, got %s",
                         tg_dims_str(ndim, shape, y, sizeof y));
                return NULL;
            }
            infer = d;
        } else if (shape[d] < 0) {
            tg_error(TG_ERR_ARG, "tg_reshape: invalid size %lld in shape %s", (long long)shape[d],
                     tg_dims_str(ndim, shape, y, sizeof y));
            return NULL;
        } else {
            known *= shape[d];
        }
    }
    if (infer >= 0) {
        if (known == 0 || a->numel % known != 0) {
            tg_error(TG_ERR_SHAPE, "tg_reshape: shape %s is invalid for input %s (%lld elements)",
                     tg_dims_str(ndim, shape, y, sizeof y), tg_shape_str(a, x, sizeof x), (long long)a->numel);
            return NULL;
        }
        s[infer] = a->numel / known;
        known = a->numel;
    }
    if (known != a->numel) {
        tg_error(TG_ERR_SHAPE, "tg_reshape: shape %s (%lld elements) is invalid for input %s (%lld elements)",
                 tg_dims_str(ndim, shape, y, sizeof y), (long long)known, tg_shape_str(a, x, sizeof x),
                 (long long)a->numel);
        return NULL;
    }
    tg_tensor *out = tg_output_new(TG_F32, ndim, s);
    if (!out) return NULL;
    memcpy(out->data, a->data, (size_t)a->numel * sizeof(float));
    tg_record(&RESHAPE_OP, out, 1, &a);
    return out;
}

/* ---- permute ------------------------------------------------------------ */

#define TILE 32

/* A permutation with dims of size 1 dropped and output dims that stay adjacent in src merged:
 * output dim d has size[d], stride istr[d] in src and ostr[d] in dst (row-major). */
typedef struct {
    int m;
    int64_t total, size[TG_MAX_DIMS], istr[TG_MAX_DIMS], ostr[TG_MAX_DIMS];
} permute_plan;

static permute_plan permute_simplify(int nd, const int64_t *src_shape, const int *perm)
{
    permute_plan pl = {0};
    int64_t sstride[TG_MAX_DIMS], s = 1;
    for (int d = nd - 1; d >= 0; d--) {
        sstride[d] = s;
        s *= src_shape[d];
    }
    pl.total = s;
    for (int d = 0; d < nd; d++) {
        int64_t sz = src_shape[perm[d]], st = sstride[perm[d]];
        if (sz == 1) continue;
        if (pl.m > 0 && pl.istr[pl.m - 1] == st * sz) {
            pl.size[pl.m - 1] *= sz;
            pl.istr[pl.m - 1] = st;
        } else {
            pl.size[pl.m] = sz;
            pl.istr[pl.m] = st;
            pl.m++;
        }
    }
    s = 1;
    for (int d = pl.m - 1; d >= 0; d--) {
        pl.ostr[d] = s;
        s *= pl.size[d];
    }
    return pl;
}

/* The innermost output dim q is contiguous in src too: rows of size[q] are copied. */
static void permute_rows(const permute_plan *pl, const float *restrict src, float *restrict dst, bool accumulate)
{
    const int q = pl->m - 1;
    const int64_t row = pl->size[q], rows = pl->total / row;
    const int64_t *size = pl->size, *istr = pl->istr;
#pragma omp parallel for if (pl->total > TG_PARALLEL_MIN)
    for (int64_t r = 0; r < rows; r++) {
        int64_t rem = r, off = 0;
        for (int d = q - 1; d >= 0; d--) {
            off += (rem % size[d]) * istr[d];
            rem /= size[d];
        }
        const float *sp = src + off;
        float *dp = dst + r * row;
        if (accumulate)
            for (int64_t j = 0; j < row; j++) dp[j] += sp[j];
        else
            memcpy(dp, sp, (size_t)row * sizeof(float));
    }
}

/* Otherwise the innermost output dim q and the output dim p contiguous in src are walked in
 * TILE x TILE blocks, so both reads and writes stay within a few cache lines. Work items: the
 * index over the other (outer) dims x a tile row of p. */
static void permute_tiles(const permute_plan *pl, const float *restrict src, float *restrict dst, bool accumulate)
{
    const int q = pl->m - 1;
    const int64_t *size = pl->size, *istr = pl->istr, *ostr = pl->ostr;
    int p = 0;
    while (p < q && istr[p] != 1) p++;
    assert(p < q);
    const int64_t outer = pl->total / (size[p] * size[q]);
    const int64_t np = size[p], nq = size[q], sq = istr[q], op = ostr[p];
    const int64_t ptiles = (np + TILE - 1) / TILE;
    const int64_t items = outer * ptiles;
#pragma omp parallel for if (pl->total > TG_PARALLEL_MIN)
    for (int64_t it = 0; it < items; it++) {
        int64_t o = it / ptiles, pt = it % ptiles;
        int64_t rem = o, soff = 0, doff = 0;
        for (int d = q - 1; d >= 0; d--) {
            if (d == p) continue;
            int64_t c = rem % size[d];
            rem /= size[d];
            soff += c * istr[d];
            doff += c * ostr[d];
        }
        const int64_t i0 = pt * TILE, i1 = i0 + TILE < np ? i0 + TILE : np;
        for (int64_t j0 = 0; j0 < nq; j0 += TILE) {
            const int64_t j1 = j0 + TILE < nq ? j0 + TILE : nq;
            for (int64_t i = i0; i < i1; i++) {
                const float *sp = src + soff + i;          /* src index: i*1 + j*sq */
                float *dp = dst + doff + i * op;           /* dst index: i*op + j*1 */
                if (accumulate)
                    for (int64_t j = j0; j < j1; j++) dp[j] += sp[j * sq];
                else
                    for (int64_t j = j0; j < j1; j++) dp[j] = sp[j * sq];
            }
        }
    }
}

/* dst (row-major, shape src_shape[perm[d]]) = src permuted; accumulate: dst += instead. */
static void permute_copy(const float *restrict src, float *restrict dst, int nd, const int64_t *src_shape,
                         const int *perm, bool accumulate)
{
    const permute_plan pl = permute_simplify(nd, src_shape, perm);
    if (pl.total == 0) return;
    if (pl.m <= 1) { /* the identity after simplification */
        if (accumulate) add_into(dst, src, pl.total);
        else memcpy(dst, src, (size_t)pl.total * sizeof(float));
    } else if (pl.istr[pl.m - 1] == 1) {
        permute_rows(&pl, src, dst, accumulate);
    } else {
        permute_tiles(&pl, src, dst, accumulate);
    }
}

static void permute_backward(tg_node *n)
{
    tg_tensor *a = n->in[0];
    const int *perm = n->ctx;
    int inv[TG_MAX_DIMS];
    for (int d = 0; d < a->ndim; d++) inv[perm[d]] = d;
    float *ga = tg_grad(a);
    if (ga) permute_copy(n->out->grad, ga, a->ndim, n->out->shape, inv, true);
}

TG_OP_DEFINE(PERMUTE_OP, permute, permute_backward);

static tg_tensor *permute_impl(const char *op, tg_tensor *a, const int *perm_in)
{
    int perm[TG_MAX_DIMS];
    bool seen[TG_MAX_DIMS] = {false};
    for (int d = 0; d < a->ndim; d++) {
        int p = perm_in[d];
        if (!tg_normalize_dim(op, a->ndim, &p)) return NULL;
        if (seen[p]) {
            tg_error(TG_ERR_ARG, "%s: dim %d appears twice in the permutation", op, p);
            return NULL;
        }
        seen[p] = true;
        perm[d] = p;
    }
    int64_t shape[TG_MAX_DIMS];
    for (int d = 0; d < a->ndim; d++) shape[d] = a->shape[perm[d]];
    tg_tensor *out = tg_output_new(TG_F32, a->ndim, shape);
    if (!out) return NULL;
    permute_copy(a->data, out->data, a->ndim, a->shape, perm, false);
    tg_node *n = tg_record(&PERMUTE_OP, out, 1, &a);
    if (n) {
        int *saved = tg_arena_alloc(sizeof(int) * TG_MAX_DIMS);
        if (!saved) return NULL;
        memcpy(saved, perm, sizeof(int) * (size_t)a->ndim);
        n->ctx = saved;
    }
    return out;
}

tg_tensor *tg_permute(tg_tensor *a, const int *perm)
{
    if (!tg_check_f32("tg_permute", "a", a)) return NULL;
    if (!perm && a->ndim > 0) {
        tg_error(TG_ERR_ARG, "tg_permute: perm is NULL");
        return NULL;
    }
    return permute_impl("tg_permute", a, perm);
}

tg_tensor *tg_transpose(tg_tensor *a, int dim0, int dim1)
{
    if (!tg_check_f32("tg_transpose", "a", a)) return NULL;
    if (!tg_normalize_dim("tg_transpose", a->ndim, &dim0) || !tg_normalize_dim("tg_transpose", a->ndim, &dim1))
        return NULL;
    int perm[TG_MAX_DIMS];
    for (int d = 0; d < TG_MAX_DIMS; d++) perm[d] = d;
    if (a->ndim > 0) {
        perm[dim0] = dim1;
        perm[dim1] = dim0;
    }
    return permute_impl("tg_transpose", a, perm);
}
