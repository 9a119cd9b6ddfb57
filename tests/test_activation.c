/* Activations and softmax: PyTorch golden values (extreme logits included) and
 * gradients, finite-difference gradient checks, a large softmax over a
 * non-last dim against a double-precision reference, and bad dims. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "math_fixtures.h"
#include "ops/op_list.h"
#include "tapegrad.h"

static tg_tensor *apply(const char *op, const cJSON *args, tg_tensor *const *in, double *atol)
{
    (void)atol;
    if (!strcmp(op, "relu")) return tg_relu(in[0]);
    if (!strcmp(op, "leaky_relu")) return tg_leaky_relu(in[0], (float)mf_num(args, "slope"));
    if (!strcmp(op, "sigmoid")) return tg_sigmoid(in[0]);
    if (!strcmp(op, "tanh")) return tg_tanh(in[0]);
    if (!strcmp(op, "softplus"))
        return tg_softplus(in[0], (float)mf_num(args, "beta"), (float)mf_num(args, "threshold"));
    if (!strcmp(op, "softmax")) return tg_softmax(in[0], (int)mf_num(args, "dim"));
    if (!strcmp(op, "log_softmax")) return tg_log_softmax(in[0], (int)mf_num(args, "dim"));
    cr_assert_fail("unknown op %s", op);
    return NULL;
}

/* Every ACTIVATION of ops/op_list.h. */
#define ACTIVATION_(name, file, kind, ...) {#name, #kind},
static const struct {
    const char *name, *kind;
} LISTED[] = {TG_OP_LIST(ACTIVATION_)};
#undef ACTIVATION_

Test(activation, matches_pytorch)
{
    const char *ops[TG_OP_COUNT];
    int n = 0;
    for (size_t k = 0; k < sizeof LISTED / sizeof *LISTED; k++)
        if (!strcmp(LISTED[k].kind, "ACTIVATION")) ops[n++] = LISTED[k].name;
    mf_run(ops, n, apply, 2e-6, 1e-38);
}

Test(activation, extreme_logits_are_finite_and_exact)
{
    tg_tensor *x = tg_tensor_from_data(TG_SHAPE(3), (float[]){200, -200, 0});
    tg_tensor *s = tg_softmax(x, 0), *l = tg_log_softmax(x, -1);
    cr_assert_not_null(s);
    cr_assert_not_null(l);
    cr_expect_eq(s->data[0], 1.0f);
    cr_expect_eq(s->data[1], 0.0f);
    cr_expect_eq(s->data[2], 0.0f); /* exp(-200) underflows in float32 */
    cr_expect_eq(l->data[0], 0.0f);
    cr_expect_eq(l->data[1], -400.0f);
    cr_expect_eq(l->data[2], -200.0f);
    tg_tensor *g = tg_sigmoid(x);
    cr_expect_eq(g->data[0], 1.0f);
    cr_expect_eq(g->data[1], 0.0f);
    cr_expect_eq(g->data[2], 0.5f);
    tg_tape_clear();
    tg_tensor_free(x);
}

/* ---- gradient checks ---- */

typedef struct {
    tg_op_id op; /* which activation: its id in ops/op_list.h */
    int dim;
    float p, q;
} gc_ctx;

static tg_tensor *gc_fn(tg_tensor *const *in, int n, void *vctx)
{
    (void)n;
    const gc_ctx *c = vctx;
    tg_tensor *y = NULL;
    switch (c->op) {
    case TG_OP_relu: y = tg_relu(in[0]); break;
    case TG_OP_leaky_relu: y = tg_leaky_relu(in[0], c->p); break;
    case TG_OP_sigmoid: y = tg_sigmoid(in[0]); break;
    case TG_OP_tanh: y = tg_tanh(in[0]); break;
    case TG_OP_softplus: y = tg_softplus(in[0], c->p, c->q); break;
    case TG_OP_softmax: y = tg_softmax(in[0], c->dim); break;
    case TG_OP_log_softmax: y = tg_log_softmax(in[0], c->dim); break;
    default: break;
    }
    return tgt_weighted_sum(y, 91);
}

static tg_tensor *rand_tensor(int nd, const int64_t *shape, float scale, float gap, uint64_t seed)
{
    tg_rng r;
    tg_rng_seed(&r, seed);
    tg_tensor *t = tg_tensor_zeros(nd, shape);
    for (int64_t i = 0; i < t->numel; i++) {
        float v;
        do v = scale * (2 * tg_rng_uniform(&r) - 1);
        while (fabsf(v) < gap);
        t->data[i] = v;
    }
    return tg_tensor_set_requires_grad(t, true);
}

Test(activation, gradcheck_pointwise)
{
    struct {
        const char *name;
        gc_ctx c;
        float scale, gap;
    } cases[] = {
        {"relu", {TG_OP_relu, 0, 0, 0}, 2, 0.05f},
        {"leaky_relu", {TG_OP_leaky_relu, 0, 0.2f, 0}, 2, 0.05f},
        {"sigmoid", {TG_OP_sigmoid, 0, 0, 0}, 5, 0},
        {"tanh", {TG_OP_tanh, 0, 0, 0}, 2, 0},
        {"softplus", {TG_OP_softplus, 0, 1.0f, 20.0f}, 5, 0},
        {"softplus beta 2 threshold 1 (both branches)", {TG_OP_softplus, 0, 2.0f, 1.0f}, 3, 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        tg_tensor *x = rand_tensor(TG_SHAPE(2, 3, 4), cases[k].scale, cases[k].gap, 100 + k);
        if (cases[k].c.op == TG_OP_softplus) /* keep away from the threshold kink at x = threshold/beta */
            for (int64_t i = 0; i < x->numel; i++)
                if (fabsf(x->data[i] * cases[k].c.p - cases[k].c.q) < 0.05f) x->data[i] += 0.1f;
        tgt_expect_gradcheck(cases[k].name, gc_fn, &cases[k].c, &x, 1, 1e-3, 1e-3, 1e-2);
        tg_tensor_free(x);
    }
}

Test(activation, gradcheck_softmax_every_dim)
{
    tg_tensor *x = rand_tensor(TG_SHAPE(2, 3, 4), 3, 0, 7);
    const int dims[] = {0, 1, 2, -1, -2, -3};
    const tg_op_id softmaxes[2] = {TG_OP_softmax, TG_OP_log_softmax};
    for (int s = 0; s < 2; s++)
        for (size_t k = 0; k < sizeof dims / sizeof *dims; k++) {
            tg_op_id op = softmaxes[s];
            gc_ctx c = {op, dims[k], 0, 0};
            char what[64];
            snprintf(what, sizeof what, "%s dim %d", op == TG_OP_softmax ? "softmax" : "log_softmax", dims[k]);
            tgt_expect_gradcheck(what, gc_fn, &c, &x, 1, 1e-2, 1e-3, 1e-2);
        }
    tg_tensor_free(x);
    /* A contiguous row longer than the 16 lanes. (Several inner tiles: checked against
     * PyTorch's gradients in matches_pytorch; here the float probe would be too noisy.) */
    tg_tensor *r = rand_tensor(TG_SHAPE(2, 37), 1, 0, 9);
    for (int s = 0; s < 2; s++) {
        gc_ctx c = {softmaxes[s], -1, 0, 0};
        tgt_expect_gradcheck(s == 0 ? "softmax long row" : "log_softmax long row", gc_fn, &c, &r, 1, 1e-2, 1e-3,
                             1e-2);
    }
    tg_tensor_free(r);
}

/* ---- a large softmax over dim 1 of NCHW (parallel, tiled) against double precision ---- */

Test(activation, large_softmax_dim1_matches_double_reference)
{
    const int64_t N = 3, C = 5, HW = 70 * 70;
    tg_tensor *x = rand_tensor(TG_SHAPE(N, C, 70, 70), 30, 0, 11);
    tg_tensor *s = tg_softmax(x, 1), *l = tg_log_softmax(x, 1);
    cr_assert_not_null(s);
    cr_assert_not_null(l);
    for (int64_t n = 0; n < N; n++)
        for (int64_t j = 0; j < HW; j++) {
            double m = -INFINITY, sum = 0;
            for (int64_t c = 0; c < C; c++) m = fmax(m, x->data[(n * C + c) * HW + j]);
            for (int64_t c = 0; c < C; c++) sum += exp(x->data[(n * C + c) * HW + j] - m);
            for (int64_t c = 0; c < C; c++) {
                int64_t i = (n * C + c) * HW + j;
                double ls = x->data[i] - m - log(sum);
                /* float x - max carries |x - max| * 2^-24 of error into the exponent */
                if (fabs(s->data[i] - exp(ls)) > (2e-6 + 1.2e-7 * fabs(ls)) * exp(ls) + 1e-37 || fabs(l->data[i] - ls) > 1e-5 * (1 + fabs(ls)))
                    cr_assert_fail("element %lld: softmax %g vs %g, log_softmax %g vs %g", (long long)i,
                                   s->data[i], exp(ls), l->data[i], ls);
            }
        }
    tg_tape_clear();
    tg_tensor_free(x);
}

/* ---- errors ---- */

Test(activation, bad_dims_and_arguments)
{
    tg_tensor *x = tg_tensor_zeros(TG_SHAPE(2, 3, 4));
    cr_expect_null(tg_softmax(x, 3));
    cr_expect_eq(tg_last_status(), TG_ERR_ARG);
    cr_expect(strstr(tg_last_error(), "tg_softmax") && strstr(tg_last_error(), "dim 3"), "%s", tg_last_error());
    cr_expect_null(tg_log_softmax(x, -4));
    cr_expect(strstr(tg_last_error(), "tg_log_softmax") && strstr(tg_last_error(), "dim -4"), "%s",
              tg_last_error());
    cr_expect_null(tg_softplus(x, 0.0f, 20.0f));
    cr_expect(strstr(tg_last_error(), "beta") != NULL, "%s", tg_last_error());
    tg_clear_error();
    cr_expect_null(tg_relu(NULL));
    cr_expect(strstr(tg_last_error(), "tg_relu: a is NULL") != NULL, "%s", tg_last_error());
    tg_tensor_free(x);
}
