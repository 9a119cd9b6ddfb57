/* Runs the PyTorch golden cases of tests/fixtures/math_ops.json (written by
 * tests/gen_math_fixtures.py) for one test file's ops: forward values and
 * shapes, then the inputs' gradients for out.backward(gout).
 * Included by test_elementwise.c, test_activation.c and test_reduce.c. */
#ifndef TG_MATH_FIXTURES_H
#define TG_MATH_FIXTURES_H

#include <criterion/criterion.h>
#include <string.h>

#include "test_support.h"

/* Applies `op` with `args` to the inputs; may loosen *atol (forward) for the op. */
typedef tg_tensor *(*mf_apply_fn)(const char *op, const cJSON *args, tg_tensor *const *in, double *atol);

static inline double mf_num(const cJSON *args, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, key);
    cr_assert_not_null(v, "fixture argument %s missing", key);
    return tgt_json_number(v);
}

static inline bool mf_bool(const cJSON *args, const char *key)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(args, key));
}

/* Reads the "dims" list into dims[]; returns its length. */
static inline int mf_dims(const cJSON *args, int *dims)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(args, "dims");
    int n = 0;
    for (const cJSON *c = a ? a->child : NULL; c; c = c->next) dims[n++] = c->valueint;
    return n;
}

/* Runs every case whose op is in ops (each op must have at least one case). */
static inline void mf_run(const char *const *ops, int n_ops, mf_apply_fn apply, double rtol, double atol_default)
{
    cJSON *root = tgt_json_load("math_ops.json");
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(root, "cases");
    int seen[64] = {0};
    cr_assert_lt(n_ops, 64);
    for (const cJSON *c = cases->child; c; c = c->next) {
        const char *op = cJSON_GetObjectItemCaseSensitive(c, "op")->valuestring;
        const char *name = cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring;
        int k = 0;
        while (k < n_ops && strcmp(ops[k], op)) k++;
        if (k == n_ops) continue;
        seen[k]++;
        const cJSON *grads = cJSON_GetObjectItemCaseSensitive(c, "grads");
        tg_tensor *in[4];
        int n_in = 0;
        for (const cJSON *x = cJSON_GetObjectItemCaseSensitive(c, "inputs")->child; x; x = x->next) {
            in[n_in] = tgt_json_tensor(x, false);
            tg_tensor_set_requires_grad(in[n_in], grads != NULL);
            n_in++;
        }
        double atol = atol_default;
        tg_tensor *out = apply(op, cJSON_GetObjectItemCaseSensitive(c, "args"), in, &atol);
        cr_assert_not_null(out, "%s: %s", name, tg_last_error());
        const cJSON *jout = cJSON_GetObjectItemCaseSensitive(c, "out");
        tg_tensor *expect = tgt_json_tensor(jout, out->dtype == TG_I64);
        char sa[96], se[96];
        /* JSON cannot tell a (1,)-shaped list from nesting, so compare shapes via the JSON nesting. */
        cr_expect(out->ndim == expect->ndim && tg_tensor_same_shape(out, expect), "%s: shape %s, expected %s",
                  name, tg_shape_str(out, sa, sizeof sa), tg_shape_str(expect, se, sizeof se));
        if (out->dtype == TG_I64) {
            for (int64_t i = 0; i < out->numel && i < expect->numel; i++)
                cr_expect_eq(out->idata[i], expect->idata[i], "%s: index %lld is %lld, expected %lld", name,
                             (long long)i, (long long)out->idata[i], (long long)expect->idata[i]);
        } else {
            tgt_expect_tensor_close(name, out, expect, rtol, atol);
        }
        if (grads) {
            tg_tensor *gout = tgt_json_tensor(cJSON_GetObjectItemCaseSensitive(c, "gout"), false);
            cr_assert_eq(tg_backward_with(out, gout), TG_OK, "%s: %s", name, tg_last_error());
            int i = 0;
            for (const cJSON *g = grads->child; g; g = g->next, i++) {
                tg_tensor *eg = tgt_json_tensor(g, false);
                char what[160];
                snprintf(what, sizeof what, "%s: grad of input %d", name, i);
                cr_assert_not_null(in[i]->grad, "%s is missing", what);
                tgt_expect_close(what, in[i]->grad, eg->data, eg->numel, 1e-4, 1e-5);
                tg_tensor_free(eg);
            }
            tg_tensor_free(gout);
        }
        tg_tape_clear();
        tg_tensor_free(expect);
        for (int i = 0; i < n_in; i++) tg_tensor_free(in[i]);
    }
    for (int k = 0; k < n_ops; k++) cr_expect_gt(seen[k], 0, "no fixture case for op %s", ops[k]);
    cJSON_Delete(root);
}

#endif
