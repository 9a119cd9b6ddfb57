/* PyTorch habits in the optimizers, vs PyTorch 1.13 (tests/fixtures/nn_habits.json from
 * gen_habits_fixtures.py): a parameter with requires_grad false is skipped entirely (no decay,
 * no momentum, no state, its own step count), parameter groups with their own lr / weight_decay
 * / momentum / betas under a schedule, clip_grad_norm_ and clip_grad_value_; the checkpoint
 * keeps groups and frozen steps so a resumed run continues exactly. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "test_support.h"

static double num(const cJSON *o, const char *key, double dflt)
{
    const cJSON *v = cJSON_GetObjectItem(o, key);
    return v ? tgt_json_number(v) : dflt;
}

static void copy_json(float *dst, int64_t n, const cJSON *v)
{
    tg_tensor *t = tgt_json_tensor(v, false);
    cr_assert_not_null(t);
    cr_assert_eq(t->numel, n);
    memcpy(dst, t->data, (size_t)n * sizeof(float));
    tg_tensor_free(t);
}

static void expect_json(const char *what, const tg_tensor *actual, const cJSON *v, double rtol, double atol)
{
    tg_tensor *e = tgt_json_tensor(v, false);
    cr_assert_not_null(e);
    tgt_expect_tensor_close(what, actual, e, rtol, atol);
    tg_tensor_free(e);
}

typedef struct {
    tg_param_list *list;
    tg_tensor *p0, *p1;
} two;

static two two_params(const cJSON *root)
{
    two t = {tg_param_list_new(), NULL, NULL};
    t.p0 = tg_param_list_add_param(t.list, "p0", TG_SHAPE(3, 4));
    t.p1 = tg_param_list_add_param(t.list, "p1", TG_SHAPE(5));
    cr_assert(t.p0 && t.p1);
    copy_json(t.p0->data, 12, cJSON_GetObjectItem(root, "p0"));
    copy_json(t.p1->data, 5, cJSON_GetObjectItem(root, "p1"));
    return t;
}

static tg_optimizer *make_opt(tg_param_list *list, const char *kind, const cJSON *o)
{
    if (strcmp(kind, "sgd") == 0)
        return tg_sgd_new(list, (tg_sgd_opts){.lr = num(o, "lr", 0), .momentum = num(o, "momentum", 0),
                                               .dampening = num(o, "dampening", 0),
                                               .weight_decay = num(o, "weight_decay", 0)});
    tg_adam_opts ao = strcmp(kind, "adam") == 0 ? tg_adam_defaults() : tg_adamw_defaults();
    ao.lr = num(o, "lr", ao.lr);
    ao.beta1 = num(o, "beta1", ao.beta1);
    ao.beta2 = num(o, "beta2", ao.beta2);
    ao.weight_decay = num(o, "weight_decay", ao.weight_decay);
    ao.amsgrad = cJSON_IsTrue(cJSON_GetObjectItem(o, "amsgrad"));
    return strcmp(kind, "adam") == 0 ? tg_adam_new(list, ao) : tg_adamw_new(list, ao);
}

/* Step s's gradients into the grad block (a frozen parameter gets them too: they must be ignored). */
static void set_grads(const cJSON *root, int s, two *t)
{
    const cJSON *g = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "grads"), s);
    copy_json(t->p0->grad, 12, cJSON_GetObjectItem(g, "p0"));
    copy_json(t->p1->grad, 5, cJSON_GetObjectItem(g, "p1"));
}

Test(habits_optim, frozen_parameters_are_skipped_as_pytorch)
{
    cJSON *root = tgt_json_load("nn_habits.json");
    cr_assert_not_null(root);
    const cJSON *c;
    int n_cases = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "frozen"))
    {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        two t = two_params(root);
        tg_optimizer *opt = make_opt(t.list, cJSON_GetObjectItem(c, "kind")->valuestring, cJSON_GetObjectItem(c, "opts"));
        cr_assert_not_null(opt, "%s: %s", name, tg_last_error());
        const cJSON *frozen = cJSON_GetObjectItem(c, "p1_frozen"), *steps = cJSON_GetObjectItem(c, "steps");
        for (int s = 0; s < cJSON_GetArraySize(steps); s++) {
            tg_tensor_set_requires_grad(t.p1, !cJSON_IsTrue(cJSON_GetArrayItem(frozen, s)));
            set_grads(root, s, &t);
            cr_assert_eq(tg_optimizer_step(opt), TG_OK, "%s", tg_last_error());
            char what[128];
            const cJSON *st = cJSON_GetArrayItem(steps, s);
            snprintf(what, sizeof what, "%s step %d p0", name, s + 1);
            expect_json(what, t.p0, cJSON_GetObjectItem(st, "p0"), 1e-5, 1e-6);
            snprintf(what, sizeof what, "%s step %d p1", name, s + 1);
            expect_json(what, t.p1, cJSON_GetObjectItem(st, "p1"), 1e-5, 1e-6);
        }
        tg_optimizer_free(opt);
        tg_param_list_free(t.list);
        n_cases++;
    }
    cr_expect_eq(n_cases, 5);
    cJSON_Delete(root);
}

/* The case: AdamW's weight decay must not touch a frozen weight, nor its state. */
Test(habits_optim, frozen_weight_untouched_by_adamw_decay)
{
    tg_param_list *l = tg_param_list_new();
    tg_tensor *w = tg_param_list_add_param(l, "w", TG_SHAPE(3));
    for (int i = 0; i < 3; i++) w->data[i] = 1.0f + (float)i;
    tg_tensor_set_requires_grad(w, false);
    tg_optimizer *o = tg_adamw_new(l, tg_adamw_defaults());
    for (int s = 0; s < 3; s++) {
        for (int i = 0; i < 3; i++) w->grad[i] = 0.5f;
        cr_assert_eq(tg_optimizer_step(o), TG_OK);
    }
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(w->data[i], 1.0f + (float)i, "frozen weight changed: %g", (double)w->data[i]);
        cr_expect_eq(o->buf[i], 0.0f, "exp_avg of a frozen weight moved");
        cr_expect_eq(o->sq[i], 0.0f, "exp_avg_sq of a frozen weight moved");
    }
    tg_optimizer_free(o);
    tg_param_list_free(l);
}

static tg_optimizer *groups_case(const cJSON *root, const cJSON *c, two *t, tg_lr_sched *sched)
{
    *t = two_params(root);
    const char *kind = cJSON_GetObjectItem(c, "kind")->valuestring;
    tg_optimizer *opt = make_opt(t->list, kind, cJSON_GetObjectItem(c, "opts"));
    cr_assert_not_null(opt);
    const cJSON *g1 = cJSON_GetObjectItem(c, "group1");
    tg_param_group g = tg_optimizer_group_defaults(opt);
    g.lr = num(g1, "lr", g.lr);
    g.weight_decay = num(g1, "weight_decay", g.weight_decay);
    g.momentum = num(g1, "momentum", g.momentum);
    g.beta1 = num(g1, "beta1", g.beta1);
    g.beta2 = num(g1, "beta2", g.beta2);
    cr_assert_eq(tg_optimizer_add_group(opt, &t->p1, 1, g), 1, "%s", tg_last_error());
    const cJSON *sc = cJSON_GetObjectItem(c, "sched");
    const char *sk = cJSON_GetObjectItem(sc, "kind")->valuestring;
    tg_status st = strcmp(sk, "step") == 0
                       ? tg_lr_sched_init_step_lr(sched, opt, (int64_t)num(sc, "step_size", 0), num(sc, "gamma", 0))
                       : tg_lr_sched_init_cosine(sched, opt, (int64_t)num(sc, "t_max", 0), num(sc, "eta_min", 0));
    cr_assert_eq(st, TG_OK, "%s", tg_last_error());
    return opt;
}

Test(habits_optim, parameter_groups_with_two_lrs_under_a_schedule)
{
    cJSON *root = tgt_json_load("nn_habits.json");
    cr_assert_not_null(root);
    const cJSON *c;
    int n_cases = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "groups"))
    {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        two t;
        tg_lr_sched sched;
        tg_optimizer *opt = groups_case(root, c, &t, &sched);
        const cJSON *steps = cJSON_GetObjectItem(c, "steps");
        for (int s = 0; s < cJSON_GetArraySize(steps); s++) {
            set_grads(root, s, &t);
            cr_assert_eq(tg_optimizer_step(opt), TG_OK, "%s", tg_last_error());
            tg_lr_sched_step(&sched);
            const cJSON *st = cJSON_GetArrayItem(steps, s);
            char what[128];
            snprintf(what, sizeof what, "%s step %d p0", name, s + 1);
            expect_json(what, t.p0, cJSON_GetObjectItem(st, "p0"), 1e-5, 1e-6);
            snprintf(what, sizeof what, "%s step %d p1", name, s + 1);
            expect_json(what, t.p1, cJSON_GetObjectItem(st, "p1"), 1e-5, 1e-6);
            double lr0 = num(st, "lr0", -1), lr1 = num(st, "lr1", -1);
            cr_expect(fabs(opt->groups[0].lr - lr0) <= 1e-12 + 1e-9 * lr0, "%s step %d: lr0 %.17g, PyTorch %.17g",
                      name, s + 1, opt->groups[0].lr, lr0);
            cr_expect(fabs(opt->groups[1].lr - lr1) <= 1e-12 + 1e-9 * lr1, "%s step %d: lr1 %.17g, PyTorch %.17g",
                      name, s + 1, opt->groups[1].lr, lr1);
        }
        tg_optimizer_free(opt);
        tg_param_list_free(t.list);
        n_cases++;
    }
    cr_expect_eq(n_cases, 2);
    cJSON_Delete(root);
}

Test(habits_optim, add_group_rejects_misuse)
{
    tg_param_list *l = tg_param_list_new();
    tg_tensor *a = tg_param_list_add_param(l, "a", TG_SHAPE(2));
    tg_tensor *b = tg_param_list_add_param(l, "b", TG_SHAPE(2));
    tg_tensor *buf = tg_param_list_add_buffer(l, "running", TG_F32, TG_SHAPE(2));
    tg_tensor *stranger = tg_tensor_zeros(TG_SHAPE(2));
    tg_optimizer *o = tg_sgd_new(l, (tg_sgd_opts){.lr = 0.1});
    tg_param_group g = tg_optimizer_group_defaults(o);
    cr_expect_eq(g.lr, 0.1);
    cr_expect_eq(tg_optimizer_add_group(o, &stranger, 1, g), -1);
    cr_expect(strstr(tg_last_error(), "not a parameter") != NULL, "%s", tg_last_error());
    cr_expect_eq(tg_optimizer_add_group(o, &buf, 1, g), -1);
    tg_tensor *twice[2] = {a, a};
    cr_expect_eq(tg_optimizer_add_group(o, twice, 2, g), -1);
    g.lr = -1;
    cr_expect_eq(tg_optimizer_add_group(o, &a, 1, g), -1);
    g.lr = 0.5;
    cr_expect_eq(tg_optimizer_add_group(o, &a, 1, g), 1);
    cr_expect_eq(tg_optimizer_add_group(o, &a, 1, g), -1, "a parameter in two groups");
    cr_expect(strstr(tg_last_error(), "already in group 1") != NULL, "%s", tg_last_error());
    cr_expect_eq(tg_optimizer_add_group(o, &b, 1, g), 2);
    cr_expect_eq(o->n_groups, 3);
    tg_tensor_free(stranger);
    tg_optimizer_free(o);
    tg_param_list_free(l);
}

/* Groups, their scheduled lrs and a frozen parameter's skipped steps survive a checkpoint:
 * 3 steps, save, 3 more steps == load into a fresh optimizer, 3 more steps (bit for bit). */
Test(habits_optim, groups_and_frozen_steps_resume_exactly)
{
    cJSON *root = tgt_json_load("nn_habits.json");
    const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "groups"), 1); /* AdamW + cosine */
    two a, b;
    tg_lr_sched sa, sb;
    tg_optimizer *oa = groups_case(root, c, &a, &sa);
    tg_optimizer *ob = groups_case(root, c, &b, &sb);
    char dir[256], path[300];
    tgt_make_tmpdir(dir, sizeof dir, "habits_resume");
    snprintf(path, sizeof path, "%s/ckpt.safetensors", dir);
    for (int s = 0; s < 3; s++) {
        tg_tensor_set_requires_grad(a.p1, s != 1); /* p1 skips one step: its Adam step count lags */
        set_grads(root, s, &a);
        cr_assert_eq(tg_optimizer_step(oa), TG_OK);
        tg_lr_sched_step(&sa);
    }
    cr_assert_eq(tg_checkpoint_save(path, a.list, &(tg_ckpt_opts){.optim = oa, .sched = &sa}), TG_OK, "%s",
                 tg_last_error());
    cr_assert_eq(tg_checkpoint_load(path, b.list, &(tg_ckpt_opts){.optim = ob, .sched = &sb}, NULL), TG_OK, "%s",
                 tg_last_error());
    cr_expect_eq(ob->groups[1].lr, oa->groups[1].lr);
    cr_expect_eq(ob->frozen_steps[1], 1);
    for (int s = 3; s < 6; s++) {
        set_grads(root, s, &a);
        set_grads(root, s, &b);
        cr_assert_eq(tg_optimizer_step(oa), TG_OK);
        cr_assert_eq(tg_optimizer_step(ob), TG_OK);
        tg_lr_sched_step(&sa);
        tg_lr_sched_step(&sb);
    }
    cr_expect_eq(memcmp(a.list->data, b.list->data, (size_t)a.list->block_numel * sizeof(float)), 0,
                 "resumed run differs");
    /* a one-group optimizer cannot take a two-group checkpoint */
    two d = two_params(root);
    tg_optimizer *od = make_opt(d.list, "adamw", cJSON_GetObjectItem(c, "opts"));
    cr_expect_eq(tg_checkpoint_load(path, d.list, &(tg_ckpt_opts){.optim = od}, NULL), TG_ERR_FORMAT);
    cr_expect(strstr(tg_last_error(), "parameter groups") != NULL, "%s", tg_last_error());
    tg_optimizer_free(od);
    tg_param_list_free(d.list);
    tgt_remove_tree(dir);
    tg_optimizer_free(oa);
    tg_optimizer_free(ob);
    tg_param_list_free(a.list);
    tg_param_list_free(b.list);
    cJSON_Delete(root);
}

Test(habits_optim, clip_grad_norm_matches_pytorch)
{
    cJSON *root = tgt_json_load("nn_habits.json");
    cr_assert_not_null(root);
    const cJSON *c;
    int n_cases = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "clip_norm"))
    {
        two t = two_params(root);
        tg_tensor *frozen = tg_param_list_add_param(t.list, "p2", TG_SHAPE(2));
        tg_tensor_set_requires_grad(frozen, false);
        frozen->grad[0] = 1000.0f; /* left out of the norm, as a None grad in PyTorch */
        set_grads(root, 0, &t);
        double max_norm = num(c, "max_norm", -1), want = num(c, "total", -1);
        double total = tg_clip_grad_norm(t.list, max_norm);
        cr_expect(fabs(total - want) <= 1e-6 * want, "max_norm %g: total %.9g, PyTorch %.9g", max_norm, total, want);
        char what[64];
        snprintf(what, sizeof what, "clip_grad_norm %g p0", max_norm);
        tg_tensor g0 = *t.p0, g1 = *t.p1;
        g0.data = t.p0->grad;
        g1.data = t.p1->grad;
        expect_json(what, &g0, cJSON_GetObjectItem(c, "p0"), 1e-6, 1e-7);
        snprintf(what, sizeof what, "clip_grad_norm %g p1", max_norm);
        expect_json(what, &g1, cJSON_GetObjectItem(c, "p1"), 1e-6, 1e-7);
        cr_expect_eq(frozen->grad[0], 1000.0f);
        tg_param_list_free(t.list);
        n_cases++;
    }
    cr_expect_eq(n_cases, 4);
    const cJSON *v = cJSON_GetObjectItem(root, "clip_value");
    two t = two_params(root);
    set_grads(root, 1, &t);
    cr_assert_eq(tg_clip_grad_value(t.list, num(v, "clip_value", -1)), TG_OK);
    tg_tensor g0 = *t.p0, g1 = *t.p1;
    g0.data = t.p0->grad;
    g1.data = t.p1->grad;
    expect_json("clip_grad_value p0", &g0, cJSON_GetObjectItem(v, "p0"), 0, 0);
    expect_json("clip_grad_value p1", &g1, cJSON_GetObjectItem(v, "p1"), 0, 0);
    cr_expect_eq(tg_clip_grad_norm(NULL, 1.0), -1.0);
    cr_expect_eq(tg_clip_grad_norm(t.list, -1.0), -1.0);
    cr_expect_eq(tg_clip_grad_norm(t.list, NAN), -1.0);
    cr_expect_eq(tg_clip_grad_value(t.list, -0.5), TG_ERR_ARG);
    tg_param_list_free(t.list);
    cJSON_Delete(root);
}
