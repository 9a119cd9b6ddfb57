/* Shape ops: reshape, permute/transpose, slice, concat, pad, gather, where.
 * Tensors are always contiguous, so every op here copies; each backward is the
 * matching scatter-add into the input's gradient.
 */
#include "core/core_internal.h"
#include "ops/tensor_ops.h"

#include <stdint.h>
#include <string.h>

static int64_t prod(const int64_t *shape, int from, int to)
{
    int64_t p = 1;
    for (int d = from; d < to; d++) p *= shape[d];
    return p;
}

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

/* dst (row-major, shape src_shape[perm[d]]) = src permuted; accumulate: dst += instead.
 * Dims of size 1 are dropped and output dims that stay adjacent in src are merged.
 * If the innermost output dim is contiguous in src, rows are copied; otherwise the
 * innermost output dim and the dim contiguous in src are walked in TILE x TILE
 * blocks, so both reads and writes stay within a few cache lines. */
static void permute_copy(const float *restrict src, float *restrict dst, int nd, const int64_t *src_shape,
                         const int *perm, bool accumulate)
{
    int64_t sstride[TG_MAX_DIMS], size[TG_MAX_DIMS], istr[TG_MAX_DIMS];
    int64_t s = 1;
    for (int d = nd - 1; d >= 0; d--) {
        sstride[d] = s;
        s *= src_shape[d];
    }
    const int64_t total = s;
    if (total == 0) return;
    int m = 0; /* simplified output dims: size[] and src stride istr[] */
    for (int d = 0; d < nd; d++) {
        int64_t sz = src_shape[perm[d]], st = sstride[perm[d]];
        if (sz == 1) continue;
        if (m > 0 && istr[m - 1] == st * sz) {
            size[m - 1] *= sz;
            istr[m - 1] = st;
        } else {
            size[m] = sz;
            istr[m] = st;
            m++;
        }
    }
    if (m <= 1) { /* the identity after simplification */
        if (accumulate) add_into(dst, src, total);
        else memcpy(dst, src, (size_t)total * sizeof(float));
        return;
    }
    int64_t ostr[TG_MAX_DIMS];
    s = 1;
    for (int d = m - 1; d >= 0; d--) {
        ostr[d] = s;
        s *= size[d];
    }
    const int q = m - 1; /* innermost output dim */
    if (istr[q] == 1) {
        /* rows of size[q] are contiguous in both */
        const int64_t row = size[q], rows = total / row;
#pragma omp parallel for if (total > TG_PARALLEL_MIN)
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
        return;
    }
    int p = 0; /* the output dim contiguous in src */
    while (p < q && istr[p] != 1) p++;
    assert(p < q);
    /* outer dims: all but p and q; work items: outer index x tile row of p */
    int64_t outer = total / (size[p] * size[q]);
    const int64_t np = size[p], nq = size[q], sq = istr[q], op = ostr[p];
    const int64_t ptiles = (np + TILE - 1) / TILE;
    const int64_t items = outer * ptiles;
#pragma omp parallel for if (total > TG_PARALLEL_MIN)
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

/* ---- slice ---------------------------------------------------------------- */

/* out[o, j, i] = a[o, start + j*step, i] with o over dims before `dim`, i over dims after. */
static void slice_backward(tg_node *n)
{
    tg_tensor *a = n->in[0];
    float *ga = tg_grad(a);
    if (!ga) return;
    const int dim = (int)n->i[0];
    const int64_t start = n->i[1], step = n->i[2], len = n->out->shape[dim];
    const int64_t outer = prod(a->shape, 0, dim), inner = prod(a->shape, dim + 1, a->ndim), size = a->shape[dim];
    const float *g = n->out->grad;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < len; j++) {
            float *dp = ga + (o * size + start + j * step) * inner;
            const float *sp = g + (o * len + j) * inner;
            for (int64_t i = 0; i < inner; i++) dp[i] += sp[i];
        }
}

TG_OP_DEFINE(SLICE_OP, slice, slice_backward);

tg_tensor *tg_slice(tg_tensor *a, int dim, int64_t start, int64_t end, int64_t step)
{
    if (!tg_check_f32("tg_slice", "a", a)) return NULL;
    if (a->ndim == 0) {
        tg_error(TG_ERR_SHAPE, "tg_slice: cannot slice a 0-dimensional tensor");
        return NULL;
    }
    if (!tg_normalize_dim("tg_slice", a->ndim, &dim)) return NULL;
    if (step <= 0) {
        tg_error(TG_ERR_ARG, "tg_slice: step must be positive, got %lld", (long long)step);
        return NULL;
    }
    const int64_t size = a->shape[dim];
    if (start < 0) start += size;
    if (end < 0) end += size;
    start = start < 0 ? 0 : start > size ? size : start;
    end = end < 0 ? 0 : end > size ? size : end;
    const int64_t len = end > start ? (end - start - 1) / step + 1 : 0; /* no overflow for huge steps */
    int64_t shape[TG_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    shape[dim] = len;
    tg_tensor *out = tg_output_new(TG_F32, a->ndim, shape);
    if (!out) return NULL;
    const int64_t outer = prod(a->shape, 0, dim), inner = prod(a->shape, dim + 1, a->ndim);
    for (int64_t o = 0; o < outer; o++) {
        if (step == 1) {
            memcpy(out->data + o * len * inner, a->data + (o * size + start) * inner,
                   (size_t)(len * inner) * sizeof(float));
            continue;
        }
        for (int64_t j = 0; j < len; j++)
            memcpy(out->data + (o * len + j) * inner, a->data + (o * size + start + j * step) * inner,
                   (size_t)inner * sizeof(float));
    }
    tg_node *n = tg_record(&SLICE_OP, out, 1, &a);
    if (n) {
        n->i[0] = dim;
        n->i[1] = start;
        n->i[2] = step;
    }
    return out;
}

/* ---- concat -------------------------------------------------------------- */

/* out[o, :, i] is the inputs' [o, :, i] blocks one after the other along `dim`. */
static void concat_backward(tg_node *n)
{
    const int dim = (int)n->i[0];
    tg_tensor *out = n->out;
    const int64_t outer = prod(out->shape, 0, dim), inner = prod(out->shape, dim + 1, out->ndim);
    const int64_t orow = out->shape[dim] * inner;
    int64_t at = 0;
    for (int k = 0; k < n->n_in; k++) {
        tg_tensor *t = n->in[k];
        const int64_t row = t->shape[dim] * inner;
        if (tg_needs_grad(t)) {
            float *g = tg_grad(t);
            if (!g) return;
            for (int64_t o = 0; o < outer; o++) {
                const float *sp = out->grad + o * orow + at;
                float *dp = g + o * row;
                for (int64_t i = 0; i < row; i++) dp[i] += sp[i];
            }
        }
        at += row;
    }
}

TG_OP_DEFINE(CONCAT_OP, concat, concat_backward);

tg_tensor *tg_concat(tg_tensor *const *ts, int n, int dim)
{
    if (!ts || n <= 0) {
        tg_error(TG_ERR_ARG, "tg_concat: needs at least one tensor, got n = %d", n);
        return NULL;
    }
    char name[32], x[96], y[96];
    for (int k = 0; k < n; k++) {
        snprintf(name, sizeof name, "ts[%d]", k);
        if (!tg_check_f32("tg_concat", name, ts[k])) return NULL;
    }
    tg_tensor *t0 = ts[0];
    if (t0->ndim == 0) {
        tg_error(TG_ERR_SHAPE, "tg_concat: cannot concatenate 0-dimensional tensors");
        return NULL;
    }
    if (!tg_normalize_dim("tg_concat", t0->ndim, &dim)) return NULL;
    int64_t shape[TG_MAX_DIMS];
    memcpy(shape, t0->shape, sizeof shape);
    shape[dim] = 0;
    for (int k = 0; k < n; k++) {
        tg_tensor *t = ts[k];
        bool ok = t->ndim == t0->ndim;
        for (int d = 0; ok && d < t0->ndim; d++) ok = d == dim || t->shape[d] == t0->shape[d];
        if (!ok) {
            tg_error(TG_ERR_SHAPE, "tg_concat: ts[%d] has shape %s but ts[0] has %s; they must match except on dim %d",
                     k, tg_shape_str(t, x, sizeof x), tg_shape_str(t0, y, sizeof y), dim);
            return NULL;
        }
        shape[dim] += t->shape[dim];
    }
    tg_tensor *out = tg_output_new(TG_F32, t0->ndim, shape);
    if (!out) return NULL;
    const int64_t outer = prod(shape, 0, dim), inner = prod(shape, dim + 1, t0->ndim), orow = shape[dim] * inner;
    int64_t at = 0;
    for (int k = 0; k < n; k++) {
        const int64_t row = ts[k]->shape[dim] * inner;
        for (int64_t o = 0; o < outer; o++)
            memcpy(out->data + o * orow + at, ts[k]->data + o * row, (size_t)row * sizeof(float));
        at += row;
    }
    tg_node *node = tg_record(&CONCAT_OP, out, n, ts);
    if (node) node->i[0] = dim;
    return out;
}

/* ---- pad ----------------------------------------------------------------- */

/* The box shared by input and output: in[lo + r] <-> out[lo + r + left] for r < len, per dim. */
typedef struct {
    int nd;
    int64_t in_shape[TG_MAX_DIMS], out_shape[TG_MAX_DIMS];
    int64_t in_lo[TG_MAX_DIMS], out_lo[TG_MAX_DIMS], len[TG_MAX_DIMS];
} pad_box;

/* Copies the box out of src into dst (to_out: input -> output; else output grad added into input grad). */
static void pad_box_copy(const pad_box *b, const float *src, float *dst, bool to_out)
{
    const int nd = b->nd;
    int64_t rows = 1;
    for (int d = 0; d < nd; d++) {
        if (b->len[d] <= 0) return;
        if (d < nd - 1) rows *= b->len[d];
    }
    const int64_t row = nd ? b->len[nd - 1] : 1;
    for (int64_t r = 0; r < rows; r++) {
        int64_t rem = r, ioff = 0, ooff = 0, is = 1, os = 1;
        for (int d = nd - 1; d >= 0; d--) {
            int64_t c = d == nd - 1 ? 0 : rem % b->len[d];
            if (d < nd - 1) rem /= b->len[d];
            ioff += (b->in_lo[d] + c) * is;
            ooff += (b->out_lo[d] + c) * os;
            is *= b->in_shape[d];
            os *= b->out_shape[d];
        }
        if (to_out) memcpy(dst + ooff, src + ioff, (size_t)row * sizeof(float));
        else
            for (int64_t j = 0; j < row; j++) dst[ioff + j] += src[ooff + j];
    }
}

static void pad_backward(tg_node *n)
{
    float *ga = tg_grad(n->in[0]);
    if (ga) pad_box_copy(n->ctx, n->out->grad, ga, false);
}

TG_OP_DEFINE(PAD_OP, pad, pad_backward);

tg_tensor *tg_pad(tg_tensor *a, const int64_t *pads, int n_pads, float value)
{
    if (!tg_check_f32("tg_pad", "a", a)) return NULL;
    if (n_pads < 0 || n_pads % 2 != 0 || n_pads > 2 * a->ndim || (n_pads > 0 && !pads)) {
        char x[96];
        tg_error(TG_ERR_ARG, "tg_pad: n_pads must be even and at most 2*ndim = %d for input %s, got %d",
                 2 * a->ndim, tg_shape_str(a, x, sizeof x), n_pads);
        return NULL;
    }
    pad_box box;
    box.nd = a->ndim;
    for (int d = 0; d < a->ndim; d++) {
        int k = a->ndim - 1 - d; /* pair index: last dim first */
        int64_t left = 0, right = 0;
        if (k < n_pads / 2) {
            left = pads[2 * k];
            right = pads[2 * k + 1];
        }
        if (left < -(INT64_MAX / 4) || left > INT64_MAX / 4 || right < -(INT64_MAX / 4) || right > INT64_MAX / 4) {
            tg_error(TG_ERR_ARG, "tg_pad: padding (%lld, %lld) on dim %d is out of range", (long long)left,
                     (long long)right, d);
            return NULL;
        }
        int64_t in = a->shape[d], out = in + left + right;
        if (out < 0) {
            char x[96];
            tg_error(TG_ERR_SHAPE, "tg_pad: padding (%lld, %lld) on dim %d of input %s gives a negative size %lld",
                     (long long)left, (long long)right, d, tg_shape_str(a, x, sizeof x), (long long)out);
            return NULL;
        }
        box.in_shape[d] = in;
        box.out_shape[d] = out;
        /* in index i maps to out index i + left */
        int64_t lo = left < 0 ? -left : 0, hi = in + left > out ? out - left : in;
        box.in_lo[d] = lo;
        box.out_lo[d] = lo + left;
        box.len[d] = hi > lo ? hi - lo : 0;
    }
    tg_tensor *out = tg_output_new(TG_F32, a->ndim, box.out_shape);
    if (!out) return NULL;
    for (int64_t i = 0; i < out->numel; i++) out->data[i] = value;
    pad_box_copy(&box, a->data, out->data, true);
    tg_node *n = tg_record(&PAD_OP, out, 1, &a);
    if (n) {
        pad_box *saved = tg_arena_alloc(sizeof box);
        if (!saved) return NULL;
        *saved = box;
        n->ctx = saved;
    }
    return out;
}

/* ---- gather -------------------------------------------------------------- */

/* out[i0..ik..] = a[i0.., index[i0..ik..], ..] along dim; the source offsets are kept for backward. */
static void gather_backward(tg_node *n)
{
    float *ga = tg_grad(n->in[0]);
    if (!ga) return;
    const int64_t *src = n->ctx;
    const float *g = n->out->grad;
    for (int64_t i = 0; i < n->out->numel; i++) ga[src[i]] += g[i];
}

TG_OP_DEFINE(GATHER_OP, gather, gather_backward);

tg_tensor *tg_gather(tg_tensor *a, int dim, tg_tensor *index)
{
    if (!tg_check_f32("tg_gather", "a", a) || !tg_check_i64("tg_gather", "index", index)) return NULL;
    char x[96], y[96];
    int nd = a->ndim == 0 ? 1 : a->ndim;
    int ind = index->ndim == 0 ? 1 : index->ndim;
    if (ind != nd) {
        tg_error(TG_ERR_SHAPE, "tg_gather: index %s must have as many dimensions as a %s",
                 tg_shape_str(index, x, sizeof x), tg_shape_str(a, y, sizeof y));
        return NULL;
    }
    if (!tg_normalize_dim("tg_gather", a->ndim, &dim)) return NULL;
    int64_t ashape[TG_MAX_DIMS], ishape[TG_MAX_DIMS], astr[TG_MAX_DIMS];
    for (int d = 0; d < nd; d++) {
        ashape[d] = a->ndim ? a->shape[d] : 1;
        ishape[d] = index->ndim ? index->shape[d] : 1;
        if (d != dim && ishape[d] > ashape[d]) {
            tg_error(TG_ERR_SHAPE, "tg_gather: index %s is larger than a %s on dim %d (only dim %d may be larger)",
                     tg_shape_str(index, x, sizeof x), tg_shape_str(a, y, sizeof y), d, dim);
            return NULL;
        }
    }
    int64_t s = 1;
    for (int d = nd - 1; d >= 0; d--) {
        astr[d] = s;
        s *= ashape[d];
    }
    const int64_t size = ashape[dim];
    const int64_t total = index->numel;
    int64_t *src = tg_arena_alloc((size_t)(total ? total : 1) * sizeof(int64_t));
    if (!src) return NULL;
    /* walk index in row-major order keeping a's offset of the non-gathered coordinates */
    int64_t c[TG_MAX_DIMS] = {0}, base = 0;
    for (int64_t i = 0; i < total; i++) {
        int64_t v = index->idata[i];
        if (v < 0 || v >= size) {
            int64_t at[TG_MAX_DIMS];
            for (int d = 0; d < nd; d++) at[d] = c[d];
            tg_error(TG_ERR_VALUE, "tg_gather: index %lld at %s is out of range for dim %d of size %lld (a %s)",
                     (long long)v, tg_dims_str(nd, at, x, sizeof x), dim, (long long)size,
                     tg_shape_str(a, y, sizeof y));
            return NULL;
        }
        src[i] = base + v * astr[dim];
        for (int d = nd - 1; d >= 0; d--) {
            if (++c[d] < ishape[d]) {
                if (d != dim) base += astr[d];
                break;
            }
            if (d != dim) base -= (ishape[d] - 1) * astr[d];
            c[d] = 0;
        }
    }
    tg_tensor *out = tg_output_new(TG_F32, index->ndim, index->shape);
    if (!out) return NULL;
    for (int64_t i = 0; i < total; i++) out->data[i] = a->data[src[i]];
    tg_tensor *in[2] = {a, index};
    tg_node *n = tg_record(&GATHER_OP, out, 2, in);
    if (n) n->ctx = src;
    return out;
}

/* ---- where ----------------------------------------------------------------- */

/* Strides (in elements) of t broadcast to the nd-dim shape `shape`: 0 along broadcast dims. */
static void broadcast_strides(const tg_tensor *t, int nd, int64_t *stride)
{
    int64_t s = 1;
    for (int d = nd - 1; d >= 0; d--) {
        int td = d - (nd - t->ndim);
        if (td < 0) {
            stride[d] = 0;
            continue;
        }
        stride[d] = t->shape[td] == 1 ? 0 : s;
        s *= t->shape[td];
    }
}

typedef struct {
    int nd;
    int64_t shape[TG_MAX_DIMS];
    int64_t sc[TG_MAX_DIMS], sa[TG_MAX_DIMS], sb[TG_MAX_DIMS];
} where_plan;

static inline bool cond_at(const tg_tensor *cond, int64_t i)
{
    return cond->dtype == TG_F32 ? cond->data[i] != 0.0f : cond->idata[i] != 0;
}

/* Walks the broadcast output in row-major order; calls BODY with oi, ci, ai, bi set. */
#define WHERE_WALK(p, total, BODY)                                                            \
    do {                                                                                      \
        int64_t c_[TG_MAX_DIMS] = {0}, ci = 0, ai = 0, bi = 0;                                \
        for (int64_t oi = 0; oi < (total); oi++) {                                            \
            BODY;                                                                             \
            for (int d_ = (p)->nd - 1; d_ >= 0; d_--) {                                       \
                if (++c_[d_] < (p)->shape[d_]) {                                              \
                    ci += (p)->sc[d_], ai += (p)->sa[d_], bi += (p)->sb[d_];                  \
                    break;                                                                    \
                }                                                                             \
                ci -= ((p)->shape[d_] - 1) * (p)->sc[d_];                                     \
                ai -= ((p)->shape[d_] - 1) * (p)->sa[d_];                                     \
                bi -= ((p)->shape[d_] - 1) * (p)->sb[d_];                                     \
                c_[d_] = 0;                                                                   \
            }                                                                                 \
        }                                                                                     \
    } while (0)

static void where_backward(tg_node *n)
{
    const where_plan *p = n->ctx;
    tg_tensor *cond = n->in[0], *a = n->in[1], *b = n->in[2];
    float *ga = tg_needs_grad(a) ? tg_grad(a) : NULL;
    float *gb = tg_needs_grad(b) ? tg_grad(b) : NULL;
    if ((tg_needs_grad(a) && !ga) || (tg_needs_grad(b) && !gb)) return; /* out of memory */
    const float *g = n->out->grad;
    const int64_t total = n->out->numel;
    WHERE_WALK(p, total, {
        if (cond_at(cond, ci)) {
            if (ga) ga[ai] += g[oi];
        } else if (gb) {
            gb[bi] += g[oi];
        }
    });
}

TG_OP_DEFINE(WHERE_OP, where, where_backward);

tg_tensor *tg_where(tg_tensor *cond, tg_tensor *a, tg_tensor *b)
{
    if (!cond) {
        if (tg_last_status() == TG_OK) tg_error(TG_ERR_ARG, "tg_where: cond is NULL");
        return NULL;
    }
    if (!tg_check_live("tg_where", "cond", cond) || !tg_check_f32("tg_where", "a", a) ||
        !tg_check_f32("tg_where", "b", b))
        return NULL;
    where_plan p;
    tg_tensor ca;
    memset(&ca, 0, sizeof ca);
    if (!tg_broadcast_shape("tg_where", cond, a, &ca.ndim, ca.shape)) return NULL;
    if (!tg_broadcast_shape("tg_where", &ca, b, &p.nd, p.shape)) return NULL;
    broadcast_strides(cond, p.nd, p.sc);
    broadcast_strides(a, p.nd, p.sa);
    broadcast_strides(b, p.nd, p.sb);
    tg_tensor *out = tg_output_new(TG_F32, p.nd, p.shape);
    if (!out) return NULL;
    const int64_t total = out->numel;
    if (tg_tensor_same_shape(cond, a) && tg_tensor_same_shape(a, b)) {
        for (int64_t i = 0; i < total; i++) out->data[i] = cond_at(cond, i) ? a->data[i] : b->data[i];
    } else {
        WHERE_WALK(&p, total, { out->data[oi] = cond_at(cond, ci) ? a->data[ai] : b->data[bi]; });
    }
    tg_tensor *in[3] = {cond, a, b};
    tg_node *n = tg_record(&WHERE_OP, out, 3, in);
    if (n) {
        where_plan *saved = tg_arena_alloc(sizeof p);
        if (!saved) return NULL;
        *saved = p;
        n->ctx = saved;
    }
    return out;
}
