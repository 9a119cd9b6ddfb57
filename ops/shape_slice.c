/* Shape ops over contiguous blocks: slice (cut along one dim), concat (join along one dim) and
 * pad (grow or crop every dim). Tensors are always contiguous, so every op copies; each backward
 * adds the output gradient's blocks back into the inputs' gradients.
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

/* ---- slice ---------------------------------------------------------------- */

typedef struct {
    int dim;
    int64_t start, step;
} slice_ctx;

/* out[o, j, i] = a[o, start + j*step, i] with o over dims before `dim`, i over dims after. */
static void slice_backward(tg_node *n)
{
    tg_tensor *a = n->in[0];
    float *ga = tg_grad(a);
    if (!ga) return;
    const slice_ctx *c = n->ctx;
    const int dim = c->dim;
    const int64_t start = c->start, step = c->step, len = n->out->shape[dim];
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
    if (n && !TG_SAVE_CTX(n, slice_ctx, .dim = dim, .start = start, .step = step)) return NULL;
    return out;
}

/* ---- concat -------------------------------------------------------------- */

typedef struct {
    int dim;
} concat_ctx;

/* out[o, :, i] is the inputs' [o, :, i] blocks one after the other along `dim`. */
static void concat_backward(tg_node *n)
{
    const int dim = ((const concat_ctx *)n->ctx)->dim;
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
    if (node && !TG_SAVE_CTX(node, concat_ctx, .dim = dim)) return NULL;
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
