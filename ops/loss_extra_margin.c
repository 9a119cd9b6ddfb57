/* Margin losses over classes and pairs: multi_margin, multilabel_margin,
 * hinge_embedding, margin_ranking (PyTorch 1.13 semantics, see loss_extra.h).
 * Element-wise arithmetic is done in float in PyTorch's order, so that the
 * kinks (z > 0 or z >= 0) fall where PyTorch puts them; sums accumulate in double. */
#include "loss_extra.h"
#include "loss_util.h"

#include <string.h>

/* ---- multi_margin_loss --------------------------------------------------
 * Shapes: input (N,C) | (C) | (); target (N) | () int64; weight (C) | NULL.
 * l_n = (1/C) sum_{i != y} w_y max(0, m - x_y + x_i)^p. */

typedef struct {
    int64_t N, C;
    int p;
    tg_reduction reduction;
    float margin;
} multi_margin_ctx;

static void multi_margin_backward(tg_node *n)
{
    const tg_tensor *x = n->in[0], *t = n->in[1], *w = n->in[2];
    const multi_margin_ctx *c = n->ctx;
    float *gx = tg_input_grad(n, 0);
    if (!gx) return;
    const int64_t N = c->N, C = c->C;
    const int p = c->p;
    const float margin = c->margin;
    tgl_upstream up = tgl_upstream_of(n->out, c->reduction, N);
    for (int64_t s = 0; s < N; s++) {
        const float *xs = x->data + s * C;
        float *gs = gx + s * C;
        int64_t y = t->idata[s];
        float g = tgl_up(&up, s) / (float)C;
        if (w) g *= w->data[y];
        float xy = xs[y], gy = 0.0f;
        for (int64_t i = 0; i < C; i++) {
            if (i == y) continue;
            float z = margin - xy + xs[i];
            if (z > 0) {
                float h = p == 1 ? g : 2.0f * g * z;
                gs[i] += h;
                gy -= h;
            }
        }
        gs[y] += gy;
    }
}

TG_OP_DEFINE(MULTI_MARGIN_OP, multi_margin_loss, multi_margin_backward);

tg_tensor *tg_multi_margin_loss(tg_tensor *input, tg_tensor *target, tg_tensor *weight, tg_multi_margin_opts o)
{
    const char *op = "tg_multi_margin_loss";
    if (!tg_check_f32(op, "input", input) || !tg_check_i64(op, "target", target)) return NULL;
    if (!tgl_check_reduction(op, o.reduction, false) || !tg_check_ndim(op, "input", input, 0, 2)) return NULL;
    int p = o.p == 0 ? 1 : o.p;
    if (p != 1 && p != 2) {
        tg_error(TG_ERR_ARG, "%s: p must be 1 or 2, got %d", op, o.p);
        return NULL;
    }
    float margin = tgl_default(o.margin, o.has_margin, 1.0f);
    char a[96], b[96];
    int64_t N = input->ndim == 2 ? input->shape[0] : 1;
    int64_t C = input->ndim == 0 ? 1 : input->shape[input->ndim - 1];
    if (C == 0) {
        tg_error(TG_ERR_SHAPE, "%s: input %s has no classes; expected (N, C) or (C) with C > 0", op,
                 tg_shape_str(input, a, sizeof a));
        return NULL;
    }
    if (target->ndim > 1 || target->numel != N) {
        tg_error(TG_ERR_SHAPE, "%s: target must have shape (%lld) for input %s, got %s", op, (long long)N,
                 tg_shape_str(input, a, sizeof a), tg_shape_str(target, b, sizeof b));
        return NULL;
    }
    if (weight) {
        if (!tg_check_f32(op, "weight", weight)) return NULL;
        if (weight->ndim > 1 || weight->numel != C) {
            tg_error(TG_ERR_SHAPE, "%s: weight must have shape (%lld) (one per class), got %s", op, (long long)C,
                     tg_shape_str(weight, b, sizeof b));
            return NULL;
        }
    }
    for (int64_t s = 0; s < N; s++) {
        if (target->idata[s] < 0 || target->idata[s] >= C) {
            tg_error(TG_ERR_VALUE, "%s: target[%lld] = %lld is out of range for %lld classes", op, (long long)s,
                     (long long)target->idata[s], (long long)C);
            return NULL;
        }
    }
    int64_t out_shape[1] = {N};
    tg_tensor *out = tgl_output(o.reduction, target->ndim == 0 ? 0 : 1, out_shape);
    multi_margin_ctx *cx = tg_arena_alloc(sizeof *cx);
    if (!out || !cx) return NULL;
    *cx = (multi_margin_ctx){.N = N, .C = C, .p = p, .reduction = o.reduction, .margin = margin};
    double total = 0.0;
    for (int64_t s = 0; s < N; s++) {
        const float *xs = input->data + s * C;
        int64_t y = target->idata[s];
        float xy = xs[y], wy = weight ? weight->data[y] : 1.0f;
        float sum = 0.0f;
        for (int64_t i = 0; i < C; i++) {
            if (i == y) continue;
            float z = margin - xy + xs[i];
            if (z > 0) {
                float h = p == 1 ? z : z * z;
                sum += weight ? h * wy : h;
            }
        }
        sum /= (float)C;
        if (o.reduction == TG_REDUCTION_NONE) out->data[s] = sum;
        total += sum;
    }
    tgl_write_reduced(out, o.reduction, total, N);
    tg_tensor *in[3] = {input, target, weight};
    tg_node *n = tg_record(&MULTI_MARGIN_OP, out, 3, in);
    if (n) n->ctx = cx;
    return out;
}

/* ---- multilabel_margin_loss ---------------------------------------------
 * Shapes: input (N,C) | (C) | (); target int64 of the same shape, entries in [-1, C).
 * l_n = (1/C) sum_{j in Y} sum_{i not in Y} max(0, 1 - x_j + x_i), Y read up to the first -1. */

/* Marks the target classes of one sample in is_target (C bytes); returns how many entries precede the first -1. */
static int64_t multilabel_targets(const int64_t *t, int64_t C, unsigned char *is_target)
{
    memset(is_target, 0, (size_t)C);
    int64_t k = 0;
    for (; k < C && t[k] >= 0; k++) is_target[t[k]] = 1;
    return k;
}

typedef struct {
    int64_t N, C;
    tg_reduction reduction;
    unsigned char *is_target; /* C bytes of scratch */
} multilabel_margin_ctx;

static void multilabel_margin_backward(tg_node *n)
{
    const tg_tensor *x = n->in[0], *t = n->in[1];
    const multilabel_margin_ctx *c = n->ctx;
    float *gx = tg_input_grad(n, 0);
    if (!gx) return;
    unsigned char *is_target = c->is_target;
    const int64_t N = c->N, C = c->C;
    tgl_upstream up = tgl_upstream_of(n->out, c->reduction, N);
    for (int64_t s = 0; s < N; s++) {
        const float *xs = x->data + s * C;
        const int64_t *ts = t->idata + s * C;
        float *gs = gx + s * C;
        int64_t k = multilabel_targets(ts, C, is_target);
        float g = tgl_up(&up, s) / (float)C;
        for (int64_t jj = 0; jj < k; jj++) {
            int64_t j = ts[jj];
            float xj = xs[j];
            for (int64_t i = 0; i < C; i++) {
                if (is_target[i]) continue;
                float z = 1.0f - xj + xs[i];
                if (z > 0) {
                    gs[j] -= g;
                    gs[i] += g;
                }
            }
        }
    }
}

TG_OP_DEFINE(MULTILABEL_MARGIN_OP, multilabel_margin_loss, multilabel_margin_backward);

tg_tensor *tg_multilabel_margin_loss(tg_tensor *input, tg_tensor *target, tg_multilabel_margin_opts o)
{
    const char *op = "tg_multilabel_margin_loss";
    if (!tg_check_f32(op, "input", input) || !tg_check_i64(op, "target", target)) return NULL;
    if (!tgl_check_reduction(op, o.reduction, false) || !tg_check_ndim(op, "input", input, 0, 2)) return NULL;
    char a[96], b[96];
    int64_t N = input->ndim == 2 ? input->shape[0] : 1;
    int64_t C = input->ndim == 0 ? 1 : input->shape[input->ndim - 1];
    if (C == 0) {
        tg_error(TG_ERR_SHAPE, "%s: input %s has no classes; expected (N, C) or (C) with C > 0", op,
                 tg_shape_str(input, a, sizeof a));
        return NULL;
    }
    bool ok = input->ndim == 2 ? tg_tensor_same_shape(input, target) : (target->ndim <= 1 && target->numel == C);
    if (!ok) {
        tg_error(TG_ERR_SHAPE, "%s: target must have the input's shape %s, got %s", op,
                 tg_shape_str(input, a, sizeof a), tg_shape_str(target, b, sizeof b));
        return NULL;
    }
    for (int64_t k = 0; k < target->numel; k++) {
        if (target->idata[k] < -1 || target->idata[k] >= C) {
            tg_error(TG_ERR_VALUE, "%s: target entry %lld = %lld is out of range [-1, %lld)", op, (long long)k,
                     (long long)target->idata[k], (long long)C);
            return NULL;
        }
    }
    unsigned char *is_target = tg_arena_alloc((size_t)C);
    int64_t out_shape[1] = {N};
    tg_tensor *out = tgl_output(o.reduction, target->ndim <= 1 ? 0 : 1, out_shape);
    multilabel_margin_ctx *cx = tg_arena_alloc(sizeof *cx);
    if (!out || !is_target || !cx) return NULL;
    *cx = (multilabel_margin_ctx){.N = N, .C = C, .reduction = o.reduction, .is_target = is_target};
    double total = 0.0;
    for (int64_t s = 0; s < N; s++) {
        const float *xs = input->data + s * C;
        const int64_t *ts = target->idata + s * C;
        int64_t k = multilabel_targets(ts, C, is_target);
        float sum = 0.0f;
        for (int64_t jj = 0; jj < k; jj++) {
            float xj = xs[ts[jj]];
            for (int64_t i = 0; i < C; i++) {
                if (is_target[i]) continue;
                float z = 1.0f - xj + xs[i];
                if (z > 0) sum += z;
            }
        }
        sum /= (float)C;
        if (o.reduction == TG_REDUCTION_NONE) out->data[s] = sum;
        total += sum;
    }
    tgl_write_reduced(out, o.reduction, total, N);
    tg_tensor *in[2] = {input, target};
    tg_node *n = tg_record(&MULTILABEL_MARGIN_OP, out, 2, in);
    if (n) n->ctx = cx;
    return out;
}

/* ---- hinge_embedding_loss -----------------------------------------------
 * Shapes: input any, target the same. l = [y != 1] max(0, m - x) + [y != -1] x.
 * Grad of the clamp passes at m - x == 0 (PyTorch's clamp_min backward uses >=); the clamp keeps NaN. */

/* What the backward of hinge_embedding and margin_ranking keeps. */
typedef struct {
    tg_reduction reduction;
    float margin;
} margin_ctx;

static margin_ctx *margin_ctx_new(tg_reduction reduction, float margin)
{
    margin_ctx *c = tg_arena_alloc(sizeof *c);
    if (c) *c = (margin_ctx){.reduction = reduction, .margin = margin};
    return c;
}

static void hinge_embedding_backward(tg_node *n)
{
    const tg_tensor *x = n->in[0], *t = n->in[1];
    const margin_ctx *c = n->ctx;
    float *gx = tg_input_grad(n, 0);
    if (!gx) return;
    const float margin = c->margin;
    tgl_upstream up = tgl_upstream_of(n->out, c->reduction, x->numel);
    for (int64_t i = 0; i < x->numel; i++) {
        float y = tgl_target_at(t, i), d = 0.0f;
        if (y != 1.0f && margin - x->data[i] >= 0) d -= 1.0f;
        if (y != -1.0f) d += 1.0f;
        gx[i] += d * tgl_up(&up, i);
    }
}

TG_OP_DEFINE(HINGE_EMBEDDING_OP, hinge_embedding_loss, hinge_embedding_backward);

tg_tensor *tg_hinge_embedding_loss(tg_tensor *input, tg_tensor *target, tg_hinge_embedding_opts o)
{
    const char *op = "tg_hinge_embedding_loss";
    if (!tg_check_f32(op, "input", input) || !tgl_check_target(op, "target", target)) return NULL;
    if (!tgl_check_reduction(op, o.reduction, false) || !tgl_check_same_shape(op, "input", input, "target", target))
        return NULL;
    float margin = tgl_default(o.margin, o.has_margin, 1.0f);
    tg_tensor *out = tgl_output(o.reduction, input->ndim, input->shape);
    margin_ctx *cx = margin_ctx_new(o.reduction, margin);
    if (!out || !cx) return NULL;
    double total = 0.0;
    for (int64_t i = 0; i < input->numel; i++) {
        float x = input->data[i], y = tgl_target_at(target, i);
        float hinge = tgl_clamp_min0(margin - x);
        float l = (y != 1.0f ? hinge : 0.0f) + (y != -1.0f ? x : 0.0f);
        if (o.reduction == TG_REDUCTION_NONE) out->data[i] = l;
        total += l;
    }
    tgl_write_reduced(out, o.reduction, total, input->numel);
    tg_tensor *in[2] = {input, target};
    tg_node *n = tg_record(&HINGE_EMBEDDING_OP, out, 2, in);
    if (n) n->ctx = cx;
    return out;
}

/* ---- margin_ranking_loss ------------------------------------------------
 * Shapes: input1, input2, target one shape. l = max(0, -y (x1 - x2) + m) (NaN kept); grad passes at 0. */

static void margin_ranking_backward(tg_node *n)
{
    const tg_tensor *x1 = n->in[0], *x2 = n->in[1], *t = n->in[2];
    const margin_ctx *c = n->ctx;
    float *g1 = tg_input_grad(n, 0), *g2 = tg_input_grad(n, 1);
    if ((tg_needs_grad(x1) && !g1) || (tg_needs_grad(x2) && !g2)) return; /* out of memory */
    const float margin = c->margin;
    tgl_upstream up = tgl_upstream_of(n->out, c->reduction, x1->numel);
    for (int64_t i = 0; i < x1->numel; i++) {
        float y = tgl_target_at(t, i);
        float z = -y * (x1->data[i] - x2->data[i]) + margin;
        /* clamp_min's backward passes where z >= 0, else 0; PyTorch then multiplies that 0 by -y,
         * so a NaN or infinite target still gives NaN */
        if (!(z >= 0) && isfinite(y)) continue;
        float g = z >= 0 ? tgl_up(&up, i) : 0.0f;
        if (g1) g1[i] -= y * g;
        if (g2) g2[i] += y * g;
    }
}

TG_OP_DEFINE(MARGIN_RANKING_OP, margin_ranking_loss, margin_ranking_backward);

tg_tensor *tg_margin_ranking_loss(tg_tensor *input1, tg_tensor *input2, tg_tensor *target, tg_margin_ranking_opts o)
{
    const char *op = "tg_margin_ranking_loss";
    if (!tg_check_f32(op, "input1", input1) || !tg_check_f32(op, "input2", input2) ||
        !tgl_check_target(op, "target", target))
        return NULL;
    if (!tgl_check_reduction(op, o.reduction, false) || !tgl_check_same_shape(op, "input1", input1, "input2", input2) ||
        !tgl_check_same_shape(op, "input1", input1, "target", target))
        return NULL;
    tg_tensor *out = tgl_output(o.reduction, input1->ndim, input1->shape);
    margin_ctx *cx = margin_ctx_new(o.reduction, o.margin);
    if (!out || !cx) return NULL;
    double total = 0.0;
    for (int64_t i = 0; i < input1->numel; i++) {
        float y = tgl_target_at(target, i);
        float z = -y * (input1->data[i] - input2->data[i]) + o.margin;
        float l = tgl_clamp_min0(z);
        if (o.reduction == TG_REDUCTION_NONE) out->data[i] = l;
        total += l;
    }
    tgl_write_reduced(out, o.reduction, total, input1->numel);
    tg_tensor *in[3] = {input1, input2, target};
    tg_node *n = tg_record(&MARGIN_RANKING_OP, out, 3, in);
    if (n) n->ctx = cx;
    return out;
}
