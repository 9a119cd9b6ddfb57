/* Elementwise ops: PyTorch golden values and gradients, finite-difference
 * gradient checks (broadcasting both ways), the parallel broadcast paths
 * against naive loops, and error messages. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "math_fixtures.h"
#include "tapegrad.h"

/* ---- golden values ---- */

static tg_tensor *apply(const char *op, const cJSON *args, tg_tensor *const *in, double *atol)
{
    (void)atol;
    if (!strcmp(op, "add")) return tg_add(in[0], in[1]);
    if (!strcmp(op, "sub")) return tg_sub(in[0], in[1]);
    if (!strcmp(op, "mul")) return tg_mul(in[0], in[1]);
    if (!strcmp(op, "div")) return tg_div(in[0], in[1]);
    if (!strcmp(op, "add_scalar")) return tg_add_scalar(in[0], (float)mf_num(args, "s"));
    if (!strcmp(op, "mul_scalar")) return tg_mul_scalar(in[0], (float)mf_num(args, "s"));
    if (!strcmp(op, "neg")) return tg_neg(in[0]);
    if (!strcmp(op, "exp")) return tg_exp(in[0]);
    if (!strcmp(op, "log")) return tg_log(in[0]);
    if (!strcmp(op, "sqrt")) return tg_sqrt(in[0]);
    if (!strcmp(op, "pow")) return tg_pow(in[0], (float)mf_num(args, "p"));
    if (!strcmp(op, "abs")) return tg_abs(in[0]);
    if (!strcmp(op, "clamp")) return tg_clamp(in[0], (float)mf_num(args, "lo"), (float)mf_num(args, "hi"));
    cr_assert_fail("unknown op %s", op);
    return NULL;
}

Test(elementwise, matches_pytorch)
{
    static const char *const ops[] = {"add", "sub",  "mul", "div", "add_scalar", "mul_scalar", "neg",
                                      "exp", "log",  "sqrt", "pow", "abs",        "clamp"};
    mf_run(ops, (int)(sizeof ops / sizeof *ops), apply, 2e-6, 1e-38);
}

/* ---- gradient checks ---- */

enum { G_ADD, G_SUB, G_MUL, G_DIV, G_ADD_S, G_MUL_S, G_NEG, G_EXP, G_LOG, G_SQRT, G_POW, G_ABS, G_CLAMP };
typedef struct {
    int op;
    float p, q;
} gc_ctx;

static tg_tensor *gc_fn(tg_tensor *const *in, int n, void *vctx)
{
    (void)n;
    const gc_ctx *c = vctx;
    tg_tensor *y = NULL;
    switch (c->op) {
    case G_ADD: y = tg_add(in[0], in[1]); break;
    case G_SUB: y = tg_sub(in[0], in[1]); break;
    case G_MUL: y = tg_mul(in[0], in[1]); break;
    case G_DIV: y = tg_div(in[0], in[1]); break;
    case G_ADD_S: y = tg_add_scalar(in[0], c->p); break;
    case G_MUL_S: y = tg_mul_scalar(in[0], c->p); break;
    case G_NEG: y = tg_neg(in[0]); break;
    case G_EXP: y = tg_exp(in[0]); break;
    case G_LOG: y = tg_log(in[0]); break;
    case G_SQRT: y = tg_sqrt(in[0]); break;
    case G_POW: y = tg_pow(in[0], c->p); break;
    case G_ABS: y = tg_abs(in[0]); break;
    case G_CLAMP: y = tg_clamp(in[0], c->p, c->q); break;
    }
    return tgt_weighted_sum(y, 77);
}

/* Random values in [lo, hi), away from zero by at least `gap` if gap > 0. */
static tg_tensor *rand_tensor(int nd, const int64_t *shape, float lo, float hi, float gap, uint64_t seed)
{
    tg_rng r;
    tg_rng_seed(&r, seed);
    tg_tensor *t = tg_tensor_zeros(nd, shape);
    cr_assert_not_null(t);
    for (int64_t i = 0; i < t->numel; i++) {
        float v;
        do v = lo + (hi - lo) * tg_rng_uniform(&r);
        while (gap > 0 && fabsf(v) < gap);
        t->data[i] = v;
    }
    return tg_tensor_set_requires_grad(t, true);
}

typedef struct {
    int na, nb;
    int64_t a[TG_MAX_DIMS], b[TG_MAX_DIMS];
} shape_pair;

static const shape_pair PAIRS[] = {
    {3, 2, {2, 3, 4}, {3, 1}},
    {2, 3, {3, 1}, {2, 3, 4}},
    {1, 3, {4}, {2, 3, 4}},
    {3, 1, {2, 3, 4}, {4}},
    {3, 3, {2, 1, 4}, {1, 3, 1}},
    {3, 3, {2, 3, 4}, {2, 3, 4}},
    {4, 3, {2, 3, 4, 5}, {3, 1, 1}},
    {2, 0, {2, 3}, {0}},
    {0, 2, {0}, {2, 3}},
};

Test(elementwise, gradcheck_binary_broadcasting)
{
    const char *names[] = {"add", "sub", "mul", "div"};
    for (int op = G_ADD; op <= G_DIV; op++) {
        for (size_t k = 0; k < sizeof PAIRS / sizeof *PAIRS; k++) {
            const shape_pair *p = &PAIRS[k];
            tg_tensor *in[2] = {rand_tensor(p->na, p->a, -2, 2, 0, 10 + k),
                                rand_tensor(p->nb, p->b, -2, 2, op == G_DIV ? 0.5f : 0, 20 + k)};
            gc_ctx c = {op, 0, 0};
            char what[128], sa[64], sb[64];
            snprintf(what, sizeof what, "%s %s x %s", names[op], tg_shape_str(in[0], sa, sizeof sa),
                     tg_shape_str(in[1], sb, sizeof sb));
            tgt_expect_gradcheck(what, gc_fn, &c, in, 2, 1e-3, 1e-3, 1e-2);
            /* only one operand wanting a gradient */
            tg_tensor_set_requires_grad(in[0], false);
            tgt_expect_gradcheck(what, gc_fn, &c, in, 2, 1e-3, 1e-3, 1e-2);
            tg_tensor_free(in[0]);
            tg_tensor_free(in[1]);
        }
    }
}

Test(elementwise, gradcheck_same_tensor_twice)
{
    tg_tensor *x = rand_tensor(TG_SHAPE(3, 4), -2, 2, 0.5f, 5);
    tg_tensor *in[2] = {x, x};
    for (int op = G_ADD; op <= G_DIV; op++) {
        gc_ctx c = {op, 0, 0};
        tgt_expect_gradcheck("x op x", gc_fn, &c, in, 2, 1e-3, 1e-3, 1e-2);
    }
    tg_tensor_free(x);
}

Test(elementwise, gradcheck_unary)
{
    struct {
        const char *name;
        gc_ctx c;
        float lo, hi, gap;
    } cases[] = {
        {"add_scalar", {G_ADD_S, 1.5f, 0}, -2, 2, 0},  {"mul_scalar", {G_MUL_S, -2.5f, 0}, -2, 2, 0},
        {"neg", {G_NEG, 0, 0}, -2, 2, 0},              {"exp", {G_EXP, 0, 0}, -3, 3, 0},
        {"log", {G_LOG, 0, 0}, 0.3f, 3, 0},            {"sqrt", {G_SQRT, 0, 0}, 0.3f, 3, 0},
        {"pow 2", {G_POW, 2.0f, 0}, -2, 2, 0},         {"pow 3", {G_POW, 3.0f, 0}, -2, 2, 0},
        {"pow 0.5", {G_POW, 0.5f, 0}, 0.3f, 3, 0},     {"pow -1", {G_POW, -1.0f, 0}, 0.5f, 3, 0},
        {"pow 1.5", {G_POW, 1.5f, 0}, 0.3f, 3, 0},     {"pow 1", {G_POW, 1.0f, 0}, -2, 2, 0},
        {"abs", {G_ABS, 0, 0}, -2, 2, 0.05f},          {"clamp", {G_CLAMP, -0.5f, 0.7f}, -2, 2, 0},
        {"clamp lo only", {G_CLAMP, 0.0f, INFINITY}, -2, 2, 0.05f},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        tg_tensor *x = rand_tensor(TG_SHAPE(2, 3, 4), cases[k].lo, cases[k].hi, cases[k].gap, 40 + k);
        if (cases[k].c.op == G_CLAMP) /* keep away from the bounds (kinks) */
            for (int64_t i = 0; i < x->numel; i++)
                if (fabsf(x->data[i] - cases[k].c.p) < 0.05f || fabsf(x->data[i] - cases[k].c.q) < 0.05f)
                    x->data[i] += 0.1f;
        tgt_expect_gradcheck(cases[k].name, gc_fn, &cases[k].c, &x, 1, 1e-3, 1e-3, 1e-2);
        tg_tensor_free(x);
    }
}

Test(elementwise, pow_zero_has_zero_grad)
{
    tg_tensor *x = rand_tensor(TG_SHAPE(5), 0.5f, 2, 0, 3);
    tg_tensor *y = tg_sum_all(tg_pow(x, 0.0f));
    cr_assert_not_null(y, "%s", tg_last_error());
    cr_expect_float_eq(y->data[0], 5.0f, 0);
    cr_assert_eq(tg_backward(y), TG_OK);
    for (int i = 0; i < 5; i++) cr_expect_eq(x->grad[i], 0.0f);
    tg_tape_clear();
    tg_tensor_free(x);
}

/* ---- large (parallel) broadcasts against naive loops ---- */

static void naive_bcast_check(const int64_t *sa, const int64_t *sb, int nd)
{
    int64_t so[TG_MAX_DIMS];
    for (int d = 0; d < nd; d++) so[d] = sa[d] > sb[d] ? sa[d] : sb[d];
    tg_tensor *a = rand_tensor(nd, sa, -2, 2, 0, 1), *b = rand_tensor(nd, sb, -2, 2, 0.5f, 2);
    tg_tensor *y = tg_mul(a, b);
    tg_tensor *z = tg_div(a, b);
    cr_assert_not_null(y, "%s", tg_last_error());
    cr_assert_not_null(z, "%s", tg_last_error());
    /* backward with ones: grad_a = sum over broadcast of b, grad_b = sum of a */
    tg_tensor *ones = tg_tensor_ones(nd, so);
    cr_assert_eq(tg_backward_with(y, ones), TG_OK, "%s", tg_last_error());
    double *ga = calloc((size_t)a->numel, sizeof(double)), *gb = calloc((size_t)b->numel, sizeof(double));
    int64_t idx[TG_MAX_DIMS] = {0};
    for (int64_t i = 0; i < y->numel; i++) {
        int64_t oa = 0, ob = 0;
        for (int d = 0; d < nd; d++) {
            oa = oa * sa[d] + (sa[d] == 1 ? 0 : idx[d]);
            ob = ob * sb[d] + (sb[d] == 1 ? 0 : idx[d]);
        }
        float want = a->data[oa] * b->data[ob];
        if (y->data[i] != want) {
            cr_assert_fail("mul: element %lld is %g, expected %g", (long long)i, y->data[i], want);
        }
        float wantd = a->data[oa] / b->data[ob];
        if (z->data[i] != wantd) cr_assert_fail("div: element %lld is %g, expected %g", (long long)i, z->data[i], wantd);
        ga[oa] += b->data[ob];
        gb[ob] += a->data[oa];
        for (int d = nd - 1; d >= 0; d--)
            if (++idx[d] < so[d]) break;
            else idx[d] = 0;
    }
    for (int64_t i = 0; i < a->numel; i++)
        if (fabs(a->grad[i] - ga[i]) > 1e-5 * (1 + fabs(ga[i])))
            cr_assert_fail("grad a[%lld] = %g, expected %g", (long long)i, a->grad[i], ga[i]);
    for (int64_t i = 0; i < b->numel; i++)
        if (fabs(b->grad[i] - gb[i]) > 1e-5 * (1 + fabs(gb[i])))
            cr_assert_fail("grad b[%lld] = %g, expected %g", (long long)i, b->grad[i], gb[i]);
    free(ga);
    free(gb);
    tg_tape_clear();
    tg_tensor_free(ones);
    tg_tensor_free(a);
    tg_tensor_free(b);
}

Test(elementwise, large_broadcasts_match_naive_loops)
{
    naive_bcast_check((int64_t[]){4, 8, 40, 40}, (int64_t[]){1, 8, 1, 1}, 4);   /* channel bias */
    naive_bcast_check((int64_t[]){700, 96}, (int64_t[]){1, 96}, 2);             /* row vector */
    naive_bcast_check((int64_t[]){300, 1}, (int64_t[]){1, 250}, 2);             /* outer product */
    naive_bcast_check((int64_t[]){5, 1, 70, 3}, (int64_t[]){1, 40, 70, 1}, 4);  /* mixed, short rows */
    naive_bcast_check((int64_t[]){50000}, (int64_t[]){1}, 1);                   /* scalar */
    naive_bcast_check((int64_t[]){3, 20000}, (int64_t[]){3, 20000}, 2);         /* same shape */
}

/* ---- errors ---- */

Test(elementwise, incompatible_broadcast_names_both_shapes)
{
    tg_tensor *a = tg_tensor_zeros(TG_SHAPE(2, 3)), *b = tg_tensor_zeros(TG_SHAPE(4));
    cr_expect_null(tg_add(a, b));
    cr_expect_eq(tg_last_status(), TG_ERR_SHAPE);
    const char *m = tg_last_error();
    cr_expect(strstr(m, "tg_add") && strstr(m, "(2, 3)") && strstr(m, "(4,)"), "%s", m);
    cr_expect_null(tg_div(b, a));
    m = tg_last_error();
    cr_expect(strstr(m, "tg_div") && strstr(m, "(4,) and (2, 3)"), "%s", m);
    tg_tensor_free(a);
    tg_tensor_free(b);
}

Test(elementwise, null_and_int_inputs)
{
    tg_clear_error();
    tg_tensor *a = tg_tensor_zeros(TG_SHAPE(2));
    cr_expect_null(tg_mul(a, NULL));
    cr_expect(strstr(tg_last_error(), "tg_mul: b is NULL") != NULL, "%s", tg_last_error());
    /* a NULL input keeps the first error */
    cr_expect_null(tg_exp(tg_mul(a, NULL)));
    cr_expect(strstr(tg_last_error(), "tg_mul") != NULL, "%s", tg_last_error());
    tg_tensor *i = tg_tensor_from_i64(TG_SHAPE(2), (int64_t[]){1, 2});
    cr_expect_null(tg_sub(i, a));
    cr_expect(strstr(tg_last_error(), "float32") != NULL, "%s", tg_last_error());
    cr_expect_null(tg_clamp(a, NAN, 1.0f));
    cr_expect(strstr(tg_last_error(), "tg_clamp") != NULL, "%s", tg_last_error());
    tg_tensor_free(a);
    tg_tensor_free(i);
}

Test(elementwise, inputs_not_modified_and_no_grad_records_nothing)
{
    tg_tensor *a = rand_tensor(TG_SHAPE(3, 4), -1, 1, 0, 9), *b = rand_tensor(TG_SHAPE(4), -1, 1, 0.2f, 8);
    tg_tensor *ca = tg_tensor_clone(a);
    bool prev = tg_set_grad_enabled(false);
    tg_tensor *y = tg_div(tg_add(a, b), b);
    cr_assert_not_null(y);
    cr_expect_eq(tg_tape_size(), 0);
    tg_set_grad_enabled(prev);
    cr_expect_arr_eq(a->data, ca->data, 12 * sizeof(float));
    tg_tape_clear();
    tg_tensor_free(a);
    tg_tensor_free(b);
    tg_tensor_free(ca);
}
