/* Optimizers vs PyTorch 1.13 (tests/fixtures/nn_optim.json from gen_nn_fixtures.py):
 * 5 steps with fixed gradients for SGD/Adam/AdamW variants; state, errors, contiguity. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "test_support.h"

static double num(const cJSON *o, const char *key, double dflt)
{
    const cJSON *v = cJSON_GetObjectItem(o, key);
    return v ? tgt_json_number(v) : dflt;
}

static void copy_json(tg_tensor *dst, const cJSON *v)
{
    tg_tensor *t = tgt_json_tensor(v, false);
    cr_assert_not_null(t);
    cr_assert_eq(tg_tensor_copy_data(dst, t), TG_OK);
    tg_tensor_free(t);
}

static void run_case(const cJSON *root, const cJSON *c)
{
    const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
    const char *kind = cJSON_GetObjectItem(c, "kind")->valuestring;
    const cJSON *o = cJSON_GetObjectItem(c, "opts");
    tg_param_list *list = tg_param_list_new();
    tg_tensor *p0 = tg_param_list_add_param(list, "p0", TG_SHAPE(3, 4));
    tg_tensor *p1 = tg_param_list_add_param(list, "p1", TG_SHAPE(4));
    cr_assert(p0 && p1);
    copy_json(p0, cJSON_GetObjectItem(root, "p0"));
    copy_json(p1, cJSON_GetObjectItem(root, "p1"));
    if (cJSON_IsTrue(cJSON_GetObjectItem(c, "no_decay_1d"))) cr_assert_eq(tg_param_list_no_decay_1d(list), 1);
    tg_optimizer *opt = NULL;
    if (strcmp(kind, "sgd") == 0) {
        tg_sgd_opts so = {.lr = num(o, "lr", 0), .momentum = num(o, "momentum", 0), .dampening = num(o, "dampening", 0),
                          .weight_decay = num(o, "weight_decay", 0),
                          .nesterov = cJSON_IsTrue(cJSON_GetObjectItem(o, "nesterov"))};
        opt = tg_sgd_new(list, so);
    } else {
        tg_adam_opts ao = strcmp(kind, "adam") == 0 ? tg_adam_defaults() : tg_adamw_defaults();
        ao.lr = num(o, "lr", ao.lr);
        ao.beta1 = num(o, "beta1", ao.beta1);
        ao.beta2 = num(o, "beta2", ao.beta2);
        ao.eps = num(o, "eps", ao.eps);
        ao.weight_decay = num(o, "weight_decay", ao.weight_decay);
        ao.amsgrad = cJSON_IsTrue(cJSON_GetObjectItem(o, "amsgrad"));
        opt = strcmp(kind, "adam") == 0 ? tg_adam_new(list, ao) : tg_adamw_new(list, ao);
    }
    cr_assert_not_null(opt, "%s: %s", name, tg_last_error());
    const cJSON *grads = cJSON_GetObjectItem(root, "grads"), *steps = cJSON_GetObjectItem(c, "steps");
    for (int s = 0; s < cJSON_GetArraySize(steps); s++) {
        tg_optimizer_zero_grad(opt);
        tg_tensor *g0 = tgt_json_tensor(cJSON_GetObjectItem(cJSON_GetArrayItem(grads, s), "p0"), false);
        tg_tensor *g1 = tgt_json_tensor(cJSON_GetObjectItem(cJSON_GetArrayItem(grads, s), "p1"), false);
        memcpy(p0->grad, g0->data, sizeof(float) * 12);
        memcpy(p1->grad, g1->data, sizeof(float) * 4);
        tg_tensor_free(g0);
        tg_tensor_free(g1);
        cr_assert_eq(tg_optimizer_step(opt), TG_OK, "%s", tg_last_error());
        tg_tensor *e0 = tgt_json_tensor(cJSON_GetObjectItem(cJSON_GetArrayItem(steps, s), "p0"), false);
        tg_tensor *e1 = tgt_json_tensor(cJSON_GetObjectItem(cJSON_GetArrayItem(steps, s), "p1"), false);
        char what[96];
        snprintf(what, sizeof what, "%s step %d p0", name, s + 1);
        tgt_expect_tensor_close(what, p0, e0, 1e-5, 1e-6);
        snprintf(what, sizeof what, "%s step %d p1", name, s + 1);
        tgt_expect_tensor_close(what, p1, e1, 1e-5, 1e-6);
        tg_tensor_free(e0);
        tg_tensor_free(e1);
    }
    cr_expect_eq(opt->step_count, cJSON_GetArraySize(steps));
    tg_optimizer_free(opt);
    tg_param_list_free(list);
}

Test(optim, matches_pytorch_five_steps)
{
    cJSON *root = tgt_json_load("nn_optim.json");
    cr_assert_not_null(root);
    const cJSON *cases = cJSON_GetObjectItem(root, "cases");
    cr_assert(cJSON_GetArraySize(cases) >= 10);
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) run_case(root, c);
    cJSON_Delete(root);
}

/* Hand-checked: SGD momentum 0.5, first step buf = g (no dampening), then buf = m*buf + (1-d)*g. */
Test(optim, sgd_first_step_ignores_dampening)
{
    tg_param_list *l = tg_param_list_new();
    tg_tensor *p = tg_param_list_add_param(l, "p", TG_SHAPE(1));
    p->data[0] = 1.0f;
    tg_optimizer *o = tg_sgd_new(l, (tg_sgd_opts){.lr = 0.5, .momentum = 0.5, .dampening = 0.5});
    p->grad[0] = 2.0f;
    tg_optimizer_step(o); /* buf = 2, p = 1 - 0.5*2 = 0 */
    cr_expect_float_eq(p->data[0], 0.0f, 1e-7);
    tg_optimizer_step(o); /* buf = 0.5*2 + 0.5*2 = 2, p = -1 */
    cr_expect_float_eq(p->data[0], -1.0f, 1e-7);
    tg_optimizer_free(o);
    tg_param_list_free(l);
}

Test(optim, zero_grad_clears_the_whole_block)
{
    tg_param_list *l = tg_param_list_new();
    tg_tensor *a = tg_param_list_add_param(l, "a", TG_SHAPE(5, 7));
    tg_tensor *b = tg_param_list_add_param(l, "b", TG_SHAPE(3));
    for (int i = 0; i < 35; i++) a->grad[i] = 1.0f;
    for (int i = 0; i < 3; i++) b->grad[i] = 2.0f;
    cr_expect(a->grad >= l->grad && b->grad + 3 <= l->grad + l->block_numel, "grads inside the block");
    cr_expect_eq(((uintptr_t)b->data) % 64, 0, "segments are 64-byte aligned");
    tg_optimizer *o = tg_sgd_new(l, (tg_sgd_opts){.lr = 0.1});
    tg_optimizer_zero_grad(o);
    for (int i = 0; i < 35; i++) cr_expect_eq(a->grad[i], 0.0f);
    for (int i = 0; i < 3; i++) cr_expect_eq(b->grad[i], 0.0f);
    tg_optimizer_free(o);
    tg_param_list_free(l);
}

Test(optim, bad_options_are_errors)
{
    tg_param_list *l = tg_param_list_new();
    tg_param_list_add_param(l, "w", TG_SHAPE(2));
    cr_expect_null(tg_sgd_new(l, (tg_sgd_opts){.lr = 0.1, .nesterov = true}));
    cr_expect(strstr(tg_last_error(), "nesterov") != NULL, "%s", tg_last_error());
    cr_expect_null(tg_sgd_new(l, (tg_sgd_opts){.lr = -1}));
    cr_expect(strstr(tg_last_error(), "learning rate") != NULL, "%s", tg_last_error());
    cr_expect_null(tg_sgd_new(NULL, (tg_sgd_opts){.lr = 0.1}));
    tg_adam_opts a = tg_adam_defaults();
    a.beta2 = 1.0;
    cr_expect_null(tg_adam_new(l, a));
    cr_expect(strstr(tg_last_error(), "betas") != NULL, "%s", tg_last_error());
    cr_expect_eq(tg_optimizer_step(NULL), TG_ERR_ARG);
    tg_param_list_free(l);
}

Test(optim, parameters_added_later_are_an_error)
{
    tg_param_list *l = tg_param_list_new();
    tg_param_list_add_param(l, "w", TG_SHAPE(2));
    tg_optimizer *o = tg_adam_new(l, tg_adam_defaults());
    tg_param_list_add_param(l, "late", TG_SHAPE(100));
    cr_expect_eq(tg_optimizer_step(o), TG_ERR_STATE);
    cr_expect(strstr(tg_last_error(), "added after") != NULL, "%s", tg_last_error());
    tg_optimizer_free(o);
    tg_param_list_free(l);
}

/* Growing the block moves data: values registered earlier must survive. */
Test(params, block_growth_keeps_values_and_names)
{
    tg_param_list *l = tg_param_list_new();
    tg_tensor *first = tg_param_list_add_param(l, "first", TG_SHAPE(10));
    for (int i = 0; i < 10; i++) first->data[i] = (float)i;
    for (int k = 0; k < 20; k++) {
        char n[32];
        snprintf(n, sizeof n, "big%d", k);
        cr_assert_not_null(tg_param_list_add_param(l, n, TG_SHAPE(1000)));
    }
    for (int i = 0; i < 10; i++) cr_expect_eq(first->data[i], (float)i);
    cr_expect_eq(first->data, l->data + tg_param_list_find(l, "first")->offset);
    cr_expect_eq(tg_param_list_numel(l, TG_KIND_PARAM), 20010);
    cr_expect_null(tg_param_list_add_param(l, "first", TG_SHAPE(1)));
    cr_expect(strstr(tg_last_error(), "already registered") != NULL, "%s", tg_last_error());
    cr_expect_null(tg_param_list_add_param(l, "neg", TG_SHAPE(2, -1)));
    cr_expect(strstr(tg_last_error(), "neg") != NULL, "%s", tg_last_error());
    tg_param_list_free(l);
}
