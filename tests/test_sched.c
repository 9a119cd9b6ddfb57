/* LR schedules vs PyTorch's schedulers (tests/fixtures/nn_sched.json): the lr after
 * construction and after each sched.step() (called after opt.step()). */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "test_support.h"

static double arg(const cJSON *a, const char *k) { return tgt_json_number(cJSON_GetObjectItem(a, k)); }

Test(sched, matches_pytorch_sequences)
{
    cJSON *root = tgt_json_load("nn_sched.json");
    cr_assert_not_null(root);
    const cJSON *c;
    int n_cases = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases"))
    {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        const cJSON *a = cJSON_GetObjectItem(c, "args");
        tg_param_list *l = tg_param_list_new();
        tg_param_list_add_param(l, "p", TG_SHAPE(1));
        tg_optimizer *o = tg_sgd_new(l, (tg_sgd_opts){.lr = arg(c, "base_lr")});
        tg_lr_sched s;
        tg_status st = TG_ERR_ARG;
        if (strcmp(name, "step") == 0) st = tg_lr_sched_init_step_lr(&s, o, (int64_t)arg(a, "step_size"), arg(a, "gamma"));
        else if (strcmp(name, "multistep") == 0) {
            int64_t ms[8];
            int n = 0;
            const cJSON *m;
            cJSON_ArrayForEach(m, cJSON_GetObjectItem(a, "milestones")) ms[n++] = (int64_t)m->valuedouble;
            st = tg_lr_sched_init_multistep(&s, o, ms, n, arg(a, "gamma"));
        } else if (strncmp(name, "cosine", 6) == 0)
            st = tg_lr_sched_init_cosine(&s, o, (int64_t)arg(a, "t_max"), arg(a, "eta_min"));
        else if (strcmp(name, "exponential") == 0) st = tg_lr_sched_init_exponential(&s, o, arg(a, "gamma"));
        else
            st = tg_lr_sched_init_warmup_poly(&s, o, (int64_t)arg(a, "warmup_steps"), (int64_t)arg(a, "total_steps"),
                                      arg(a, "warmup_factor"), arg(a, "power"));
        cr_assert_eq(st, TG_OK, "%s: %s", name, tg_last_error());
        const cJSON *lrs = cJSON_GetObjectItem(c, "lrs");
        for (int k = 0; k < cJSON_GetArraySize(lrs); k++) {
            if (k > 0) {
                tg_optimizer_step(o);
                tg_lr_sched_step(&s);
            }
            double e = tgt_json_number(cJSON_GetArrayItem(lrs, k));
            cr_expect(fabs(o->groups[0].lr - e) <= 1e-12 + 1e-9 * fabs(e), "%s: lr at k=%d is %.17g, PyTorch %.17g", name, k,
                      o->groups[0].lr, e);
        }
        cr_expect_eq(s.last_epoch, cJSON_GetArraySize(lrs) - 1);
        tg_optimizer_free(o);
        tg_param_list_free(l);
        n_cases++;
    }
    cr_expect_eq(n_cases, 7);
    cJSON_Delete(root);
}

static double halve_every_two(int64_t k, void *ctx)
{
    (void)ctx;
    return pow(0.5, (double)(k / 2));
}

Test(sched, lambda_and_warmup_endpoints)
{
    tg_param_list *l = tg_param_list_new();
    tg_param_list_add_param(l, "p", TG_SHAPE(1));
    tg_optimizer *o = tg_sgd_new(l, (tg_sgd_opts){.lr = 0.01});
    tg_lr_sched s;
    cr_assert_eq(tg_lr_sched_init_lambda(&s, o, halve_every_two, NULL), TG_OK);
    cr_expect_eq(o->groups[0].lr, 0.01);
    tg_lr_sched_step(&s);
    tg_lr_sched_step(&s);
    cr_expect_eq(o->groups[0].lr, 0.005);
    cr_assert_eq(tg_lr_sched_init_warmup_poly(&s, o, 10, 100, 1e-3, 0.9), TG_OK);
    cr_expect_float_eq(o->groups[0].lr, 1e-5, 1e-15);       /* lambda(0) = warmup_factor at construction */
    cr_expect_eq(tg_lr_sched_factor(&s, 10), 1.0); /* end of warmup */
    cr_expect_eq(tg_lr_sched_factor(&s, 100), 0.0);
    cr_expect_eq(tg_lr_sched_factor(&s, 150), 0.0); /* past the end: 0, not NaN */
    tg_optimizer_free(o);
    tg_param_list_free(l);
}

Test(sched, bad_arguments_are_errors)
{
    tg_param_list *l = tg_param_list_new();
    tg_param_list_add_param(l, "p", TG_SHAPE(1));
    tg_optimizer *o = tg_sgd_new(l, (tg_sgd_opts){.lr = 0.1});
    tg_lr_sched s;
    cr_expect_eq(tg_lr_sched_init_step_lr(&s, o, 0, 0.1), TG_ERR_ARG);
    cr_expect(strstr(tg_last_error(), "step_size") != NULL, "%s", tg_last_error());
    cr_expect_eq(tg_lr_sched_init_cosine(&s, o, 0, 0), TG_ERR_ARG);
    cr_expect(strstr(tg_last_error(), "T_max") != NULL, "%s", tg_last_error());
    int64_t ms[2] = {5, 2};
    cr_expect_eq(tg_lr_sched_init_multistep(&s, o, ms, 2, 0.1), TG_ERR_ARG);
    cr_expect(strstr(tg_last_error(), "sorted") != NULL, "%s", tg_last_error());
    cr_expect_eq(tg_lr_sched_init_warmup_poly(&s, o, 10, 10, 1e-3, 0.9), TG_ERR_ARG);
    cr_expect_eq(tg_lr_sched_init_exponential(&s, NULL, 0.9), TG_ERR_ARG);
    cr_expect_eq(tg_lr_sched_init_lambda(&s, o, NULL, NULL), TG_ERR_ARG);
    cr_expect(isnan(tg_lr_sched_step(NULL)));
    tg_optimizer_free(o);
    tg_param_list_free(l);
}
