/* Shape ops that select elements: gather (by an index tensor along one dim) and where (by a
 * condition, with broadcasting). Each backward adds every output gradient element into the input
 * element it came from.
 */
#include "core/core_internal.h"
#include "ops/tensor_ops.h"

#include <stdint.h>
#include <string.h>

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
