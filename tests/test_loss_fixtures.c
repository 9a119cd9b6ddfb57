/* Golden values from PyTorch 1.13 (tests/gen_loss_fixtures.py -> tests/fixtures/loss_*.json):
 * every case's loss and its input gradient for a given upstream gradient.
 * loss_nonfinite.json puts NaN and +-Inf in the inputs, targets and weights; a case PyTorch
 * refuses (an "error" entry) must be refused here too.
 * Tolerances (NaN must be NaN, +-Inf exact): loss |a-e| <= 1e-6 + 1e-5|e|; gradient |a-e| <= 1e-6 + 1e-4|e|. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "tapegrad.h"
#include "test_support.h"

#define VAL_RTOL 1e-5
#define VAL_ATOL 1e-6
#define GRAD_RTOL 1e-4
#define GRAD_ATOL 1e-6

static tg_reduction reduction_of(const cJSON *c)
{
    const cJSON *r = cJSON_GetObjectItem(c, "reduction");
    if (!r) return TG_REDUCTION_MEAN;
    const char *s = r->valuestring;
    if (!strcmp(s, "sum")) return TG_REDUCTION_SUM;
    if (!strcmp(s, "none")) return TG_REDUCTION_NONE;
    if (!strcmp(s, "batchmean")) return TG_REDUCTION_BATCHMEAN;
    return TG_REDUCTION_MEAN;
}

static double num_of(const cJSON *c, const char *key, double dflt)
{
    const cJSON *v = cJSON_GetObjectItem(c, key);
    return v ? tgt_json_number(v) : dflt;
}

static tg_tensor *opt_tensor(const cJSON *c, const char *key)
{
    const cJSON *v = cJSON_GetObjectItem(c, key);
    return v ? tgt_json_tensor(v, false) : NULL;
}

/* Runs one case's loss; weights it creates are returned in w/pw for freeing. */
static tg_tensor *run_case(const cJSON *c, tg_tensor *x, tg_tensor *t, tg_tensor **w, tg_tensor **pw)
{
    const char *fn = cJSON_GetObjectItem(c, "fn")->valuestring;
    tg_reduction red = reduction_of(c);
    *w = opt_tensor(c, "weight");
    *pw = opt_tensor(c, "pos_weight");
    const cJSON *ign = cJSON_GetObjectItem(c, "ignore_index");
    if (!strcmp(fn, "cross_entropy") || !strcmp(fn, "nll_loss")) {
        tg_ce_opts o = {.weight = *w, .reduction = red, .label_smoothing = (float)num_of(c, "label_smoothing", 0)};
        if (ign) o.ignore_index = (int64_t)tgt_json_number(ign), o.has_ignore_index = true;
        return fn[0] == 'c' ? tg_cross_entropy(x, t, o) : tg_nll_loss(x, t, o);
    }
    if (!strcmp(fn, "bce")) return tg_binary_cross_entropy(x, t, (tg_bce_opts){.weight = *w, .reduction = red});
    if (!strcmp(fn, "bce_logits"))
        return tg_binary_cross_entropy_with_logits(x, t, (tg_bce_opts){.weight = *w, .pos_weight = *pw, .reduction = red});
    if (!strcmp(fn, "soft_margin")) return tg_soft_margin_loss(x, t, red);
    if (!strcmp(fn, "multilabel_soft_margin")) return tg_multilabel_soft_margin_loss(x, t, *w, red);
    if (!strcmp(fn, "focal"))
        return tg_sigmoid_focal_loss(x, t, (float)num_of(c, "alpha", 0.25), (float)num_of(c, "gamma", 2), red);
    if (!strcmp(fn, "mse")) return tg_mse_loss(x, t, red);
    if (!strcmp(fn, "l1")) return tg_l1_loss(x, t, red);
    if (!strcmp(fn, "smooth_l1")) return tg_smooth_l1_loss(x, t, red, (float)num_of(c, "beta", 1));
    if (!strcmp(fn, "huber")) return tg_huber_loss(x, t, red, (float)num_of(c, "delta", 1));
    if (!strcmp(fn, "kl_div")) {
        const cJSON *lt = cJSON_GetObjectItem(c, "log_target");
        return tg_kl_div(x, t, (tg_kl_div_opts){.reduction = red, .log_target = lt && cJSON_IsTrue(lt)});
    }
    if (!strcmp(fn, "dice")) {
        tg_dice_opts o = {0};
        if (ign) o.ignore_index = (int64_t)tgt_json_number(ign), o.has_ignore_index = true;
        return tg_dice_loss(x, t, o);
    }
    cr_assert_fail("unknown fixture fn %s", fn);
    return NULL;
}

static void run_fixture_file(const char *path, int min_cases)
{
    cJSON *root = tgt_json_load(path);
    const cJSON *cases = cJSON_GetObjectItem(root, "cases");
    int count = 0;
    for (const cJSON *c = cases->child; c; c = c->next, count++) {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        tg_tensor *x = tg_tensor_set_requires_grad(tgt_json_tensor(cJSON_GetObjectItem(c, "input"), false), true);
        const cJSON *ti = cJSON_GetObjectItem(c, "target_int");
        tg_tensor *t = tgt_json_tensor(cJSON_GetObjectItem(c, "target"), ti && cJSON_IsTrue(ti));
        tg_tensor *w, *pw;
        const cJSON *err = cJSON_GetObjectItem(c, "error");
        if (err) { /* PyTorch refused these inputs: so must tapegrad */
            tg_clear_error();
            tg_tensor *out = run_case(c, x, t, &w, &pw);
            cr_expect_null(out, "%s: PyTorch refuses it (%s), tapegrad returned a result", name, err->valuestring);
            tg_tape_clear();
            tg_tensor *all[] = {x, t, w, pw};
            for (size_t i = 0; i < sizeof all / sizeof *all; i++) tg_tensor_free(all[i]);
            continue;
        }
        tg_tensor *out = run_case(c, x, t, &w, &pw);
        cr_assert_not_null(out, "%s: %s", name, tg_last_error());
        tg_tensor *eo = tgt_json_tensor(cJSON_GetObjectItem(c, "out"), false);
        tg_tensor *go = tgt_json_tensor(cJSON_GetObjectItem(c, "grad_out"), false);
        tg_tensor *eg = tgt_json_tensor(cJSON_GetObjectItem(c, "grad"), false);
        char sa[96], se[96];
        cr_expect(out->ndim == eo->ndim && out->numel == eo->numel, "%s: output shape %s, expected %s", name,
                  tg_shape_str(out, sa, sizeof sa), tg_shape_str(eo, se, sizeof se));
        tgt_expect_tensor_close(name, out, eo, VAL_RTOL, VAL_ATOL);
        cr_assert_eq(tg_backward_with(out, go), TG_OK, "%s: backward: %s", name, tg_last_error());
        char what[160];
        snprintf(what, sizeof what, "%s (gradient)", name);
        if (x->grad) tgt_expect_close(what, x->grad, eg->data, eg->numel, GRAD_RTOL, GRAD_ATOL);
        else
            for (int64_t i = 0; i < eg->numel; i++) cr_expect_eq(eg->data[i], 0.0f, "%s: no gradient reached input", name);
        tg_tape_clear();
        tg_tensor *all[] = {x, t, eo, go, eg, w, pw};
        for (size_t i = 0; i < sizeof all / sizeof *all; i++) tg_tensor_free(all[i]);
    }
    cr_expect_geq(count, min_cases, "%s: only %d cases", path, count);
    cJSON_Delete(root);
}

Test(loss_fixtures, cross_entropy_and_nll) { run_fixture_file("loss_cross_entropy.json", 400); }
Test(loss_fixtures, binary_losses) { run_fixture_file("loss_binary.json", 130); }
Test(loss_fixtures, regression_kl_dice) { run_fixture_file("loss_regression.json", 90); }
/* NaN and +-Inf in the input, the float target and the weights of every loss above (values
 * and gradients: NaN must be NaN, an infinity the same infinity). */
Test(loss_fixtures, nonfinite_inputs_targets_weights) { run_fixture_file("loss_nonfinite.json", 300); }
