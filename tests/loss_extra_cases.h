/* Shared by tests/test_loss_extra_*.c: replays the PyTorch golden cases of
 * tests/fixtures/loss_extra_*.json (written by tests/gen_loss_extra_fixtures.py)
 * through a table of the loss_extra API, and small helpers for error tests.
 * Included once per test program (static functions). */
#ifndef TG_TEST_LOSS_EXTRA_CASES_H
#define TG_TEST_LOSS_EXTRA_CASES_H

#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "tapegrad.h"
#include "test_support.h"

#define LX_MAX_ARGS 8

/* The named tensors of one case (caller-owned, freed by lx_args_free). */
typedef struct {
    const char *name[LX_MAX_ARGS];
    tg_tensor *t[LX_MAX_ARGS];
    int n;
} lx_args;

static tg_tensor *lx_get(const lx_args *a, const char *name)
{
    for (int k = 0; k < a->n; k++)
        if (!strcmp(a->name[k], name)) return a->t[k];
    return NULL;
}

static void lx_args_add(lx_args *a, const cJSON *dict, bool as_int, bool requires_grad)
{
    for (const cJSON *c = dict ? dict->child : NULL; c; c = c->next) {
        cr_assert_lt(a->n, LX_MAX_ARGS);
        tg_tensor *t = tgt_json_tensor(c, as_int);
        if (requires_grad) tg_tensor_set_requires_grad(t, true);
        a->name[a->n] = c->string;
        a->t[a->n++] = t;
    }
}

static void lx_args_free(lx_args *a)
{
    for (int k = 0; k < a->n; k++) tg_tensor_free(a->t[k]);
    a->n = 0;
}

static double lx_opt_num(const cJSON *opts, const char *key, double dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(opts, key);
    return v ? tgt_json_number(v) : dflt;
}

static bool lx_opt_bool(const cJSON *opts, const char *key) { return lx_opt_num(opts, key, 0) != 0; }

static tg_reduction lx_opt_reduction(const cJSON *opts)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(opts, "reduction");
    if (!v || !strcmp(v->valuestring, "mean")) return TG_REDUCTION_MEAN;
    if (!strcmp(v->valuestring, "sum")) return TG_REDUCTION_SUM;
    cr_assert_str_eq(v->valuestring, "none");
    return TG_REDUCTION_NONE;
}

/* The table a CLI would use: loss name + named tensors + JSON options -> output. */
static tg_tensor *lx_call(const char *loss, const lx_args *a, const cJSON *o)
{
    tg_reduction r = lx_opt_reduction(o);
    float margin = (float)lx_opt_num(o, "margin", 0);
    bool has_margin = lx_opt_bool(o, "has_margin") || cJSON_GetObjectItemCaseSensitive(o, "margin");
    float eps = (float)lx_opt_num(o, "eps", 0);
    bool has_eps = cJSON_GetObjectItemCaseSensitive(o, "eps") != NULL;
    if (!strcmp(loss, "multi_margin"))
        return tg_multi_margin_loss(lx_get(a, "input"), lx_get(a, "target"), lx_get(a, "weight"),
                                    (tg_multi_margin_opts){.reduction = r, .p = (int)lx_opt_num(o, "p", 0),
                                                           .margin = margin, .has_margin = has_margin});
    if (!strcmp(loss, "multilabel_margin"))
        return tg_multilabel_margin_loss(lx_get(a, "input"), lx_get(a, "target"),
                                         (tg_multilabel_margin_opts){.reduction = r});
    if (!strcmp(loss, "hinge_embedding"))
        return tg_hinge_embedding_loss(lx_get(a, "input"), lx_get(a, "target"),
                                       (tg_hinge_embedding_opts){.reduction = r, .margin = margin,
                                                                 .has_margin = has_margin});
    if (!strcmp(loss, "margin_ranking"))
        return tg_margin_ranking_loss(lx_get(a, "input1"), lx_get(a, "input2"), lx_get(a, "target"),
                                      (tg_margin_ranking_opts){.reduction = r, .margin = margin});
    if (!strcmp(loss, "cosine_embedding"))
        return tg_cosine_embedding_loss(lx_get(a, "input1"), lx_get(a, "input2"), lx_get(a, "target"),
                                        (tg_cosine_embedding_opts){.reduction = r, .margin = margin});
    if (!strcmp(loss, "triplet_margin"))
        return tg_triplet_margin_loss(lx_get(a, "anchor"), lx_get(a, "positive"), lx_get(a, "negative"),
                                      (tg_triplet_margin_opts){.reduction = r, .margin = margin,
                                                               .has_margin = has_margin,
                                                               .p = (float)lx_opt_num(o, "p", 0), .eps = eps,
                                                               .has_eps = has_eps, .swap = lx_opt_bool(o, "swap")});
    if (!strcmp(loss, "poisson_nll"))
        return tg_poisson_nll_loss(lx_get(a, "input"), lx_get(a, "target"),
                                   (tg_poisson_nll_opts){.reduction = r, .no_log_input = lx_opt_bool(o, "no_log_input"),
                                                         .full = lx_opt_bool(o, "full"), .eps = eps,
                                                         .has_eps = has_eps});
    if (!strcmp(loss, "gaussian_nll"))
        return tg_gaussian_nll_loss(lx_get(a, "input"), lx_get(a, "target"), lx_get(a, "var"),
                                    (tg_gaussian_nll_opts){.reduction = r, .full = lx_opt_bool(o, "full"),
                                                           .eps = eps, .has_eps = has_eps});
    if (!strcmp(loss, "ctc"))
        return tg_ctc_loss(lx_get(a, "log_probs"), lx_get(a, "targets"), lx_get(a, "input_lengths"),
                           lx_get(a, "target_lengths"),
                           (tg_ctc_opts){.reduction = r, .blank = (int64_t)lx_opt_num(o, "blank", 0),
                                         .zero_infinity = lx_opt_bool(o, "zero_infinity")});
    cr_assert_fail("unknown loss %s in fixture", loss);
    return NULL;
}

/* Replays every case of `loss` in fixture `file`: output within rtol 1e-5, gradients
 * (upstream grad_out) within rtol 1e-4 (NaN must be NaN, +-Inf exact); a case with an
 * "error" (PyTorch refused it) must give NULL. Returns the number of cases run. */
static int lx_run_golden(const char *file, const char *loss)
{
    cJSON *root = tgt_json_load(file);
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(root, "cases");
    int ran = 0;
    for (const cJSON *c = cases->child; c; c = c->next) {
        if (strcmp(cJSON_GetObjectItemCaseSensitive(c, "loss")->valuestring, loss)) continue;
        const char *name = cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring;
        lx_args a = {0};
        lx_args_add(&a, cJSON_GetObjectItemCaseSensitive(c, "float"), false, true);
        lx_args_add(&a, cJSON_GetObjectItemCaseSensitive(c, "const"), false, false);
        lx_args_add(&a, cJSON_GetObjectItemCaseSensitive(c, "int"), true, false);
        char what[160];
        snprintf(what, sizeof what, "%s/%s output", loss, name);
        const cJSON *err = cJSON_GetObjectItemCaseSensitive(c, "error");
        if (err) { /* PyTorch refused these inputs: so must tapegrad */
            tg_clear_error();
            cr_expect_null(lx_call(loss, &a, cJSON_GetObjectItemCaseSensitive(c, "opts")),
                           "%s: PyTorch refuses it (%s), tapegrad returned a result", what, err->valuestring);
            tg_tape_clear();
            lx_args_free(&a);
            ran++;
            continue;
        }
        tg_tensor *out = lx_call(loss, &a, cJSON_GetObjectItemCaseSensitive(c, "opts"));
        cr_assert_not_null(out, "%s: %s", what, tg_last_error());
        tg_tensor *want = tgt_json_tensor(cJSON_GetObjectItemCaseSensitive(c, "output"), false);
        char s1[96], s2[96];
        cr_expect(tg_tensor_same_shape(out, want), "%s: shape %s, expected %s", what, tg_shape_str(out, s1, sizeof s1),
                  tg_shape_str(want, s2, sizeof s2));
        tgt_expect_tensor_close(what, out, want, 1e-5, 1e-6);
        tg_tensor *go = tgt_json_tensor(cJSON_GetObjectItemCaseSensitive(c, "grad_out"), false);
        cr_assert_eq(tg_backward_with(out, go), TG_OK, "%s: backward: %s", what, tg_last_error());
        const cJSON *grads = cJSON_GetObjectItemCaseSensitive(c, "grads");
        for (const cJSON *g = grads->child; g; g = g->next) {
            tg_tensor *x = lx_get(&a, g->string), *gw = tgt_json_tensor(g, false);
            snprintf(what, sizeof what, "%s/%s grad of %s", loss, name, g->string);
            cr_assert_not_null(x);
            tg_tensor *gx = tg_tensor_zeros(x->ndim, x->shape);
            if (x->grad) memcpy(gx->data, x->grad, (size_t)x->numel * sizeof(float));
            tgt_expect_tensor_close(what, gx, gw, 1e-4, 1e-6);
            tg_tensor_free(gx);
            tg_tensor_free(gw);
        }
        tg_tape_clear();
        tg_tensor_free(want);
        tg_tensor_free(go);
        lx_args_free(&a);
        ran++;
    }
    cJSON_Delete(root);
    cr_expect_gt(ran, 0, "no %s case in %s", loss, file);
    return ran;
}

/* Expects `result` to be NULL with `status` and a message containing `needle`. */
#define LX_EXPECT_ERROR(result, status, needle)                                                                 \
    do {                                                                                                        \
        tg_clear_error();                                                                                       \
        tg_tensor *lx_r_ = (result);                                                                            \
        cr_expect_null(lx_r_, "expected an error containing \"%s\"", (needle));                                \
        cr_expect_eq(tg_last_status(), (status), "status %d for \"%s\"", (int)tg_last_status(), tg_last_error()); \
        cr_expect(strstr(tg_last_error(), (needle)) != NULL, "message \"%s\" lacks \"%s\"", tg_last_error(),     \
                  (needle));                                                                                    \
        tg_tape_clear();                                                                                        \
    } while (0)

/* A caller-owned randn tensor with a fixed seed, requiring grad. */
static tg_tensor *lx_randn(int ndim, const int64_t *shape, uint64_t seed, float scale, bool requires_grad)
{
    tg_rng r;
    tg_rng_seed(&r, seed);
    tg_tensor *t = tg_tensor_randn(ndim, shape, &r);
    for (int64_t i = 0; i < t->numel; i++) t->data[i] *= scale;
    return tg_tensor_set_requires_grad(t, requires_grad);
}

#endif
