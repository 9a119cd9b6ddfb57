/* Soft Dice loss for segmentation (milesial Pytorch-UNet style, per image and class).
 * Exact definition in ops/loss.h. Forward saves p (softmax or sigmoid) and, per
 * (image, class), A = 2/(S+eps) and B = (2I+eps)/(S+eps)^2, so that
 * dL/dp_i = -(A*g_i - B)/(N*C) on non-ignored pixels; backward chains it through
 * the softmax (p_c*(u_c - sum_k p_k u_k)) or the sigmoid (p(1-p)u). */
#include <math.h>

#include "loss.h"
#include "loss_util.h"

typedef struct {
    int64_t N, C, S, ignore;
    bool has_ignore;
    const int64_t *t;
    float *p;      /* (N,C,S) probabilities */
    double *A, *B; /* (N,C) */
} dice_ctx;

/* g of class c at target value v (sigmoid head: class 0 stands for "foreground"). */
static inline float dice_g(const dice_ctx *c, int64_t v, int64_t cls)
{
    return c->C == 1 ? (float)(v == 1) : (float)(v == cls);
}

static inline bool dice_valid(const dice_ctx *c, int64_t v) { return !(c->has_ignore && v == c->ignore); }

static void dice_backward(tg_node *node)
{
    const dice_ctx *c = node->ctx;
    tg_tensor *x = node->in[0];
    if (!c || !tg_needs_grad(x)) return;
    float *gx = tg_grad(x);
    if (!gx) return;
    float go = node->out->grad[0];
    int64_t N = c->N, C = c->C, S = c->S;
    double k = -(double)go / (double)(N * C);
#pragma omp parallel for if (N * C * S > TG_PARALLEL_MIN) schedule(static)
    for (int64_t n = 0; n < N; n++) {
        const int64_t *t = c->t + n * S;
        const float *p = c->p + n * C * S;
        float *g = gx + n * C * S;
        if (C == 1) {
            float a = (float)(k * c->A[n]), b = (float)(k * c->B[n]);
            for (int64_t i = 0; i < S; i++) {
                if (!dice_valid(c, t[i])) continue;
                float u = a * dice_g(c, t[i], 0) - b;
                g[i] += p[i] * (1.0f - p[i]) * u;
            }
            continue;
        }
        for (int64_t i = 0; i < S; i++) {
            if (!dice_valid(c, t[i])) continue;
            float dot = 0;
            for (int64_t cl = 0; cl < C; cl++) {
                float u = (float)(k * (c->A[n * C + cl] * dice_g(c, t[i], cl) - c->B[n * C + cl]));
                dot += p[cl * S + i] * u;
            }
            for (int64_t cl = 0; cl < C; cl++) {
                float u = (float)(k * (c->A[n * C + cl] * dice_g(c, t[i], cl) - c->B[n * C + cl]));
                g[cl * S + i] += p[cl * S + i] * (u - dot);
            }
        }
    }
}

TG_OP_DEFINE(DICE_OP, dice_loss, dice_backward);

tg_tensor *tg_dice_loss(tg_tensor *input, tg_tensor *target, tg_dice_opts opts)
{
    const char *op = "tg_dice_loss";
    if (!tg_check_f32(op, "input", input) || !tg_check_i64(op, "target", target)) return NULL;
    char s1[96], s2[96];
    if (input->ndim < 3) {
        tg_error(TG_ERR_SHAPE, "%s: input must be (N,C,H,W) logits (at least 3 dims), got %s", op,
                 tg_shape_str(input, s1, sizeof s1));
        return NULL;
    }
    bool ok = target->ndim == input->ndim - 1 && target->shape[0] == input->shape[0];
    for (int d = 2; d < input->ndim && ok; d++) ok = target->shape[d - 1] == input->shape[d];
    if (!ok) {
        tg_error(TG_ERR_SHAPE, "%s: target %s does not fit input %s (expected the input's shape without dim 1)", op,
                 tg_shape_str(target, s2, sizeof s2), tg_shape_str(input, s1, sizeof s1));
        return NULL;
    }
    dice_ctx *c = tg_arena_alloc(sizeof *c);
    if (!c) return NULL;
    c->N = input->shape[0], c->C = input->shape[1], c->S = c->N > 0 && c->C > 0 ? input->numel / (c->N * c->C) : 0;
    c->ignore = opts.ignore_index, c->has_ignore = opts.has_ignore_index, c->t = target->idata;
    int64_t N = c->N, C = c->C, S = c->S;
    if (C < 1) {
        tg_error(TG_ERR_SHAPE, "%s: input %s has no classes", op, tg_shape_str(input, s1, sizeof s1));
        return NULL;
    }
    int64_t hi = C == 1 ? 2 : C;
    for (int64_t i = 0; i < target->numel; i++) {
        int64_t v = target->idata[i];
        if (dice_valid(c, v) && (v < 0 || v >= hi)) {
            tg_error(TG_ERR_VALUE, "%s: Target %lld is out of bounds (%s head: classes 0..%lld)", op, (long long)v,
                     C == 1 ? "sigmoid" : "softmax", (long long)hi - 1);
            return NULL;
        }
    }
    double eps = opts.eps > 0 ? opts.eps : 1e-6;
    c->p = tg_arena_alloc((size_t)(input->numel ? input->numel : 1) * sizeof(float));
    c->A = tg_arena_alloc((size_t)(N * C > 0 ? N * C : 1) * sizeof(double));
    c->B = tg_arena_alloc((size_t)(N * C > 0 ? N * C : 1) * sizeof(double));
    double *dice = tg_arena_alloc((size_t)(N * C > 0 ? N * C : 1) * sizeof(double));
    tg_tensor *out = tg_output_new(TG_F32, 0, NULL);
    if (!c->p || !c->A || !c->B || !dice || !out) return NULL;
#pragma omp parallel for if (input->numel > TG_PARALLEL_MIN) schedule(static)
    for (int64_t n = 0; n < N; n++) {
        const float *x = input->data + n * C * S;
        float *p = c->p + n * C * S;
        const int64_t *t = c->t + n * S;
        if (C == 1) {
            for (int64_t i = 0; i < S; i++) p[i] = 1.0f / (1.0f + expf(-x[i]));
        } else {
            for (int64_t i = 0; i < S; i++) {
                float m = x[i];
                for (int64_t cl = 1; cl < C; cl++) m = fmaxf(m, x[cl * S + i]);
                float s = 0;
                for (int64_t cl = 0; cl < C; cl++) s += p[cl * S + i] = expf(x[cl * S + i] - m);
                for (int64_t cl = 0; cl < C; cl++) p[cl * S + i] /= s;
            }
        }
        for (int64_t cl = 0; cl < C; cl++) {
            double I = 0, P = 0, G = 0;
            for (int64_t i = 0; i < S; i++) {
                if (!dice_valid(c, t[i])) continue;
                float g = dice_g(c, t[i], cl), pv = p[cl * S + i];
                I += pv * g, P += pv, G += g;
            }
            double Ssum = P + G;
            if (Ssum == 0) Ssum = 2 * I;
            dice[n * C + cl] = (2 * I + eps) / (Ssum + eps);
            c->A[n * C + cl] = 2 / (Ssum + eps);
            c->B[n * C + cl] = (2 * I + eps) / ((Ssum + eps) * (Ssum + eps));
        }
    }
    double sd = 0;
    for (int64_t j = 0; j < N * C; j++) sd += dice[j];
    out->data[0] = (float)(1.0 - sd / (double)(N * C));
    tg_tensor *ins[2] = {input, target};
    tg_node *node = tg_record(&DICE_OP, out, 2, ins);
    if (node) node->ctx = c;
    return out;
}
