/* Shared by test_matmul.c and test_shape.c: an op "spec" (which op, which
 * parameters) that can be applied to inputs, a gradient-check wrapper for it,
 * and the runner for the PyTorch cases in tests/fixtures/shape_ops.json
 * (written by tests/gen_shape_fixtures.py). */
#ifndef TG_SHAPE_TEST_UTIL_H
#define TG_SHAPE_TEST_UTIL_H

#include <criterion/criterion.h>
#include <string.h>

#include "tapegrad.h"
#include "test_support.h"

typedef struct {
    const char *op;
    int nshape;
    int64_t shape[TG_MAX_DIMS];
    int perm[TG_MAX_DIMS];
    int dim, dim0, dim1;
    int64_t start, end, step;
    int npads;
    int64_t pads[2 * TG_MAX_DIMS];
    float value;
} op_spec;

static tg_tensor *spec_apply(const op_spec *s, tg_tensor *const *in, int n)
{
    const char *op = s->op;
    if (!strcmp(op, "matmul")) return tg_matmul(in[0], in[1]);
    if (!strcmp(op, "reshape")) return tg_reshape(in[0], s->nshape, s->shape);
    if (!strcmp(op, "permute")) return tg_permute(in[0], s->perm);
    if (!strcmp(op, "transpose")) return tg_transpose(in[0], s->dim0, s->dim1);
    if (!strcmp(op, "slice")) return tg_slice(in[0], s->dim, s->start, s->end, s->step);
    if (!strcmp(op, "concat")) return tg_concat(in, n, s->dim);
    if (!strcmp(op, "pad")) return tg_pad(in[0], s->pads, s->npads, s->value);
    if (!strcmp(op, "gather")) return tg_gather(in[0], s->dim, in[1]);
    if (!strcmp(op, "where")) return tg_where(in[0], in[1], in[2]);
    cr_assert_fail("unknown op %s in test spec", op);
    return NULL;
}

/* The scalar probe for gradient checks: weighted sum of the op's output. */
static tg_tensor *spec_probe(tg_tensor *const *in, int n, void *ctx)
{
    return tgt_weighted_sum(spec_apply(ctx, in, n), 12345);
}

/* Linear ops: the central difference is exact up to float rounding of f. */
static void spec_gradcheck(const char *what, const op_spec *s, tg_tensor *const *in, int n)
{
    tgt_expect_gradcheck(what, spec_probe, (void *)s, in, n, 1e-2, 2e-3, 2e-3);
}

/* Seeded N(0,1) tensor that requires grad (caller frees). */
static tg_tensor *randn_leaf(int ndim, const int64_t *shape, uint64_t seed)
{
    tg_rng r;
    tg_rng_seed(&r, seed);
    tg_tensor *t = tg_tensor_randn(ndim, shape, &r);
    cr_assert_not_null(t, "%s", tg_last_error());
    return tg_tensor_set_requires_grad(t, true);
}

static int64_t json_int(const cJSON *params, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, key);
    cr_assert(cJSON_IsNumber(v), "fixture parameter %s missing", key);
    return (int64_t)v->valuedouble;
}

static op_spec spec_from_json(const cJSON *c)
{
    op_spec s;
    memset(&s, 0, sizeof s);
    s.op = cJSON_GetObjectItemCaseSensitive(c, "op")->valuestring;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(c, "params");
    const cJSON *v;
    if ((v = cJSON_GetObjectItemCaseSensitive(p, "shape")))
        for (const cJSON *e = v->child; e; e = e->next) s.shape[s.nshape++] = (int64_t)e->valuedouble;
    if ((v = cJSON_GetObjectItemCaseSensitive(p, "perm"))) {
        int k = 0;
        for (const cJSON *e = v->child; e; e = e->next) s.perm[k++] = (int)e->valuedouble;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(p, "pads")))
        for (const cJSON *e = v->child; e; e = e->next) s.pads[s.npads++] = (int64_t)e->valuedouble;
    if (cJSON_GetObjectItemCaseSensitive(p, "dim")) s.dim = (int)json_int(p, "dim");
    if (cJSON_GetObjectItemCaseSensitive(p, "dim0")) s.dim0 = (int)json_int(p, "dim0");
    if (cJSON_GetObjectItemCaseSensitive(p, "dim1")) s.dim1 = (int)json_int(p, "dim1");
    if (cJSON_GetObjectItemCaseSensitive(p, "start")) s.start = json_int(p, "start");
    if (cJSON_GetObjectItemCaseSensitive(p, "end")) s.end = json_int(p, "end");
    if (cJSON_GetObjectItemCaseSensitive(p, "step")) s.step = json_int(p, "step");
    if ((v = cJSON_GetObjectItemCaseSensitive(p, "value"))) s.value = (float)tgt_json_number(v);
    return s;
}

/* Runs every fixture case whose op is `op`: forward values and shape, then the
 * gradients for the fixture's upstream gradient. Returns the number of cases run. */
static int run_fixture_cases(const char *op)
{
    cJSON *root = tgt_json_load("shape_ops.json");
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(root, "cases");
    int ran = 0;
    for (const cJSON *c = cases->child; c; c = c->next) {
        if (strcmp(cJSON_GetObjectItemCaseSensitive(c, "op")->valuestring, op)) continue;
        const char *name = cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring;
        op_spec s = spec_from_json(c);
        tg_tensor *in[8];
        int n = 0;
        const cJSON *is_int = cJSON_GetObjectItemCaseSensitive(c, "int_inputs")->child;
        for (const cJSON *e = cJSON_GetObjectItemCaseSensitive(c, "inputs")->child; e; e = e->next, is_int = is_int->next) {
            bool as_int = cJSON_IsTrue(is_int);
            in[n] = tgt_json_tensor(e, as_int);
            if (!as_int) tg_tensor_set_requires_grad(in[n], true);
            n++;
        }
        tg_tape_clear();
        tg_tensor *out = spec_apply(&s, in, n);
        cr_assert_not_null(out, "%s: %s", name, tg_last_error());
        /* shape from out_shape (empty tensors lose their shape in nested JSON lists) */
        const cJSON *os = cJSON_GetObjectItemCaseSensitive(c, "out_shape");
        cr_assert_eq(out->ndim, cJSON_GetArraySize(os), "%s: ndim %d", name, out->ndim);
        int d = 0;
        for (const cJSON *e = os->child; e; e = e->next, d++)
            cr_assert_eq(out->shape[d], (int64_t)e->valuedouble, "%s: dim %d is %lld", name, d, (long long)out->shape[d]);
        tg_tensor *expect = tgt_json_tensor(cJSON_GetObjectItemCaseSensitive(c, "out"), false);
        cr_assert_eq(expect->numel, out->numel, "%s: numel", name);
        tgt_expect_close(name, out->data, expect->data, out->numel, 1e-5, 1e-5);
        tg_tensor_free(expect);
        if (out->numel > 0) {
            tg_tensor *gout = tgt_json_tensor(cJSON_GetObjectItemCaseSensitive(c, "gout"), false);
            cr_assert_eq(tg_backward_with(out, gout), TG_OK, "%s: %s", name, tg_last_error());
            tg_tensor_free(gout);
            int k = 0;
            for (const cJSON *g = cJSON_GetObjectItemCaseSensitive(c, "grads")->child; g; g = g->next, k++) {
                if (cJSON_IsNull(g)) continue;
                tg_tensor *eg = tgt_json_tensor(g, false);
                cr_assert_eq(eg->numel, in[k]->numel);
                char what[128];
                snprintf(what, sizeof what, "%s grad of input %d", name, k);
                if (in[k]->grad) tgt_expect_close(what, in[k]->grad, eg->data, eg->numel, 1e-5, 1e-5);
                else
                    for (int64_t i = 0; i < eg->numel; i++) cr_expect_eq(eg->data[i], 0.0f, "%s: no grad", what);
                tg_tensor_free(eg);
            }
        }
        tg_tape_clear();
        for (int k = 0; k < n; k++) tg_tensor_free(in[k]);
        ran++;
    }
    cJSON_Delete(root);
    return ran;
}

/* Expects NULL from an op and an error message containing each of the given strings. */
#define EXPECT_ERROR(call, ...)                                                                       \
    do {                                                                                              \
        tg_clear_error();                                                                             \
        tg_tensor *r_ = (call);                                                                       \
        cr_expect_null(r_, "%s should fail", #call);                                                  \
        const char *subs_[] = {__VA_ARGS__};                                                          \
        for (size_t k_ = 0; k_ < sizeof subs_ / sizeof subs_[0]; k_++)                                \
            cr_expect(strstr(tg_last_error(), subs_[k_]) != NULL, "%s: error \"%s\" lacks \"%s\"", #call, \
                      tg_last_error(), subs_[k_]);                                                    \
    } while (0)

#endif
