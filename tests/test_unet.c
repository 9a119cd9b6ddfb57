/* nn/unet against PyTorch 1.13's reference UNet (tests/gen_unet_fixtures.py): a base-4 model loaded
 * from PyTorch's state_dict, an odd-sized batch (pads after upsampling), train-mode logits, CE loss,
 * gradients, running stats, two SGD momentum steps, eval logits; base-16 state_dict names/shapes/order;
 * error paths; a tapegrad checkpoint read back.
 * Tolerances: float32 through 23 convs and 18 train-mode BatchNorms (the deepest normalises over 8
 * values, which amplifies rounding), summation orders differ from PyTorch's (mkldnn / our kernels):
 * forward values agree to ~1e-5 relative; gradients go through twice as many reductions, so they are
 * checked at rtol 1e-3 with atol 1e-4 x the tensor's largest magnitude. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "../nn/nn_internal.h"
#include "test_support.h"

#define EXPECTED TG_FIXTURE_DIR "/unet_b4_expected.safetensors"

static tg_tensor *st_tensor(tg_st_file *st, const char *name)
{
    tg_st_entry *e = tg_st_find(st, name);
    cr_assert_not_null(e, "fixture tensor %s missing", name);
    tg_tensor *t = tg_tensor_new(e->dtype == TG_ST_I64 ? TG_I64 : TG_F32, e->ndim, e->shape);
    cr_assert_not_null(t);
    cr_assert_eq(tg_st_read(st, e, t->dtype == TG_I64 ? (void *)t->idata : (void *)t->data), TG_OK, "%s",
                 tg_last_error());
    return t;
}

static void expect_close_scaled(const char *what, const float *a, const tg_tensor *e, double rtol, double atol_rel)
{
    double mx = 0;
    for (int64_t i = 0; i < e->numel; i++) mx = fmax(mx, fabs(e->data[i]));
    double d = 0;
    for (int64_t i = 0; i < e->numel; i++) d = fmax(d, fabs(a[i] - e->data[i]));
    cr_log_info("%s: max |tapegrad - torch| = %.3g (max |torch| %.3g)", what, d, mx);
    tgt_expect_close(what, a, e->data, e->numel, rtol, atol_rel * mx + 1e-7);
}

static tg_unet *load_b4(void)
{
    tg_rng rng;
    tg_rng_seed(&rng, 5);
    tg_unet *m = tg_unet_new(3, 2, 4, &rng);
    cr_assert_not_null(m, "%s", tg_last_error());
    tg_ckpt_opts o = {0};
    cr_assert_eq(tg_checkpoint_load(TG_FIXTURE_DIR "/unet_b4_init.safetensors", m->params, &o, NULL), TG_OK, "%s",
                 tg_last_error());
    return m;
}

static const char *const CHECKED[] = {"in_conv.0.weight", "in_conv.1.weight", "in_conv.1.bias",
                                      "down3.1.0.weight", "down4.1.4.weight", "up1.conv.0.weight",
                                      "up4.conv.4.bias",  "out_conv.0.weight", "out_conv.0.bias"};
#define N_CHECKED (int)(sizeof CHECKED / sizeof *CHECKED)

static float *param_grad(tg_unet *m, const char *name)
{
    tg_param_entry *e = tg_param_list_find(m->params, name);
    cr_assert_not_null(e, "%s", name);
    return m->params->grad + e->offset;
}

static void expect_buffers(tg_unet *m, tg_st_file *st, const char *prefix)
{
    for (int i = 0; i < m->params->count; i++) {
        tg_param_entry *e = &m->params->entries[i];
        if (e->kind != TG_KIND_BUFFER) continue;
        char key[TG_ST_NAME_LEN];
        snprintf(key, sizeof key, "%s%s", prefix, e->name);
        tg_tensor *want = st_tensor(st, key);
        if (want->dtype == TG_I64)
            cr_expect_eq(*e->tensor->idata, *want->idata, "%s", key);
        else
            expect_close_scaled(key, e->tensor->data, want, 1e-4, 1e-5);
        tg_tensor_free(want);
    }
}

static tg_tensor *ce(tg_tensor *logits, tg_tensor *target, tg_tensor *w)
{
    return tg_cross_entropy(logits, target, (tg_ce_opts){.weight = w, .ignore_index = 255, .has_ignore_index = true});
}

Test(unet, matches_pytorch_train_step_and_eval)
{
    tg_st_file st;
    cr_assert_eq(tg_st_open(EXPECTED, &st, "test_unet"), TG_OK, "%s", tg_last_error());
    tg_unet *m = load_b4();
    tg_tensor *x = st_tensor(&st, "x"), *target = st_tensor(&st, "target");
    tg_tensor *w = tg_tensor_from_data(TG_SHAPE(2), (const float[]){1.0f, 2.0f});
    tg_tensor_set_requires_grad(x, true);
    tg_optimizer *opt = tg_sgd_new(m->params, (tg_sgd_opts){.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-4});
    cr_assert_not_null(opt);

    tg_param_list_train(m->params, true);
    tg_tensor *logits = tg_unet_forward(m, x);
    cr_assert_not_null(logits, "%s", tg_last_error());
    tg_tensor *want = st_tensor(&st, "logits1");
    cr_assert(tg_tensor_same_shape(logits, want));
    expect_close_scaled("logits1", logits->data, want, 1e-4, 1e-5);
    tg_tensor_free(want);
    tg_tensor *loss = ce(logits, target, w);
    want = st_tensor(&st, "loss1");
    cr_expect(fabsf(tg_item(loss) - want->data[0]) <= 1e-5f * fabsf(want->data[0]), "loss1 %.8g vs %.8g",
              tg_item(loss), want->data[0]);
    tg_tensor_free(want);
    cr_assert_eq(tg_backward(loss), TG_OK, "%s", tg_last_error());
    want = st_tensor(&st, "grad.x");
    expect_close_scaled("grad.x", x->grad, want, 1e-3, 1e-4);
    tg_tensor_free(want);
    for (int k = 0; k < N_CHECKED; k++) {
        char key[TG_ST_NAME_LEN];
        snprintf(key, sizeof key, "grad.%s", CHECKED[k]);
        want = st_tensor(&st, key);
        expect_close_scaled(key, param_grad(m, CHECKED[k]), want, 1e-3, 1e-4);
        tg_tensor_free(want);
    }
    expect_buffers(m, &st, "after1.");
    tg_tape_clear();
    cr_assert_eq(tg_optimizer_step(opt), TG_OK);
    tg_optimizer_zero_grad(opt);

    tg_tensor_set_requires_grad(x, false);
    loss = ce(tg_unet_forward(m, x), target, w);
    cr_assert_not_null(loss, "%s", tg_last_error());
    want = st_tensor(&st, "loss2");
    cr_expect(fabsf(tg_item(loss) - want->data[0]) <= 1e-4f * fabsf(want->data[0]), "loss2 %.8g vs %.8g",
              tg_item(loss), want->data[0]);
    tg_tensor_free(want);
    cr_assert_eq(tg_backward(loss), TG_OK, "%s", tg_last_error());
    tg_tape_clear();
    cr_assert_eq(tg_optimizer_step(opt), TG_OK);
    for (int k = 0; k < N_CHECKED; k++) {
        char key[TG_ST_NAME_LEN];
        snprintf(key, sizeof key, "step2.%s", CHECKED[k]);
        want = st_tensor(&st, key);
        expect_close_scaled(key, tg_param_list_find(m->params, CHECKED[k])->tensor->data, want, 1e-4, 1e-5);
        tg_tensor_free(want);
    }
    expect_buffers(m, &st, "after2.");

    tg_param_list_train(m->params, false);
    bool prev = tg_set_grad_enabled(false);
    logits = tg_unet_forward(m, x);
    tg_set_grad_enabled(prev);
    cr_assert_not_null(logits, "%s", tg_last_error());
    want = st_tensor(&st, "logits_eval");
    expect_close_scaled("logits_eval", logits->data, want, 1e-4, 1e-5);
    tg_tensor_free(want);
    tg_tape_clear();

    tg_optimizer_free(opt);
    tg_tensor_free(x), tg_tensor_free(target), tg_tensor_free(w);
    tg_unet_free(m);
    tg_st_close(&st);
}

Test(unet, base16_state_dict_matches_pytorch)
{
    cJSON *j = tgt_json_load("unet_b16_state_dict.json");
    tg_unet *m = tg_unet_new(3, 2, 16, NULL);
    cr_assert_not_null(m, "%s", tg_last_error());
    const cJSON *entries = cJSON_GetObjectItem(j, "entries");
    cr_assert_eq(m->params->count, cJSON_GetArraySize(entries));
    cr_expect_eq(cJSON_GetArraySize(entries), 110);
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, entries)
    {
        const tg_param_entry *p = &m->params->entries[i++];
        cr_expect_str_eq(p->name, cJSON_GetObjectItem(e, "name")->valuestring, "entry %d", i - 1);
        const cJSON *shape = cJSON_GetObjectItem(e, "shape");
        cr_expect_eq(p->tensor->ndim, cJSON_GetArraySize(shape), "%s", p->name);
        for (int d = 0; d < p->tensor->ndim && d < cJSON_GetArraySize(shape); d++)
            cr_expect_eq(p->tensor->shape[d], (int64_t)cJSON_GetArrayItem(shape, d)->valuedouble, "%s dim %d",
                         p->name, d);
        cr_expect_eq(p->kind == TG_KIND_PARAM, cJSON_IsTrue(cJSON_GetObjectItem(e, "param")), "%s", p->name);
        bool is_i64 = strcmp(cJSON_GetObjectItem(e, "dtype")->valuestring, "int64") == 0;
        cr_expect_eq(p->tensor->dtype == TG_I64, is_i64, "%s", p->name);
    }
    cr_expect_eq(tg_param_list_numel(m->params, TG_KIND_PARAM),
                 (int64_t)cJSON_GetObjectItem(j, "num_params")->valuedouble);
    /* PyTorch's default init: conv weights in U(-1/sqrt(fan_in), 1/sqrt(fan_in)), BN gamma 1 beta 0, stats 0/1 */
    const tg_tensor *w0 = m->in_conv.conv1.weight;
    double mx = 0;
    for (int64_t k = 0; k < w0->numel; k++) mx = fmax(mx, fabs(w0->data[k]));
    cr_expect(mx <= 1 / sqrt(27.0) && mx > 0.5 / sqrt(27.0), "in_conv.0.weight max %g", mx);
    cr_expect_eq(m->up[3].bn2.weight->data[0], 1.0f);
    cr_expect_eq(m->up[3].bn2.running_var->data[3], 1.0f);
    tg_unet_free(m);
    cJSON_Delete(j);
}

Test(unet, bad_arguments_are_errors)
{
    cr_expect_null(tg_unet_new(0, 2, 16, NULL));
    cr_expect_eq(tg_last_status(), TG_ERR_ARG);
    cr_expect(strstr(tg_last_error(), "in_channels") != NULL, "%s", tg_last_error());
    cr_expect_null(tg_unet_new(3, 0, 16, NULL));
    cr_expect_null(tg_unet_new(3, 2, -1, NULL));
    cr_expect_null(tg_unet_new(3, 2, 1 << 20, NULL));
    cr_expect(strstr(tg_last_error(), "base_c") != NULL, "%s", tg_last_error());

    tg_unet *m = tg_unet_new(3, 2, 2, NULL);
    cr_assert_not_null(m);
    cr_expect_null(tg_unet_forward(NULL, NULL));
    cr_expect(strstr(tg_last_error(), "model is NULL") != NULL, "%s", tg_last_error());
    tg_clear_error();
    cr_expect_null(tg_unet_forward(m, NULL));
    cr_expect_neq(tg_last_status(), TG_OK);
    tg_tensor *bad[] = {tg_tensor_zeros(TG_SHAPE(1, 4, 16, 16)), tg_tensor_zeros(TG_SHAPE(1, 3, 15, 16)),
                        tg_tensor_zeros(TG_SHAPE(1, 3, 16, 15)), tg_tensor_zeros(TG_SHAPE(3, 16, 16)),
                        tg_tensor_new(TG_I64, TG_SHAPE(1, 3, 16, 16))};
    for (int i = 0; i < 5; i++) {
        tg_clear_error();
        cr_expect_null(tg_unet_forward(m, bad[i]), "case %d", i);
        cr_expect(strstr(tg_last_error(), "tg_unet_forward") != NULL, "case %d: %s", i, tg_last_error());
        tg_tensor_free(bad[i]);
    }
    /* the smallest input works */
    tg_tensor *x = tg_tensor_randn(TG_SHAPE(2, 3, 16, 17), NULL);
    tg_tensor *y = tg_unet_forward(m, x);
    cr_assert_not_null(y, "%s", tg_last_error());
    cr_expect(y->shape[1] == 2 && y->shape[2] == 16 && y->shape[3] == 17);
    tg_tape_clear();
    tg_tensor_free(x);
    tg_unet_free(m);
    cr_expect_null(tg_unet_forward(NULL, NULL));
    tg_unet_free(NULL);
}

/* A trained tapegrad model saved and loaded into a differently initialised one: every tensor and the eval
 * forward identical. With TG_WRITE_FIXTURES=1 the file goes to tests/fixtures/tapegrad_unet.safetensors with
 * x and the eval logits in tapegrad_unet_io.safetensors, for tests/check_tapegrad_unet_ckpt.py (PyTorch). */
Test(unet, tapegrad_checkpoint_reloads_identically)
{
    tg_st_file st;
    cr_assert_eq(tg_st_open(EXPECTED, &st, "test_unet"), TG_OK, "%s", tg_last_error());
    tg_unet *m = load_b4();
    tg_tensor *x = st_tensor(&st, "x"), *target = st_tensor(&st, "target");
    tg_st_close(&st);
    tg_tensor *w = tg_tensor_from_data(TG_SHAPE(2), (const float[]){1.0f, 2.0f});
    tg_optimizer *opt = tg_sgd_new(m->params, (tg_sgd_opts){.lr = 0.1, .momentum = 0.9});
    for (int s = 0; s < 3; s++) {
        cr_assert_eq(tg_backward(ce(tg_unet_forward(m, x), target, w)), TG_OK, "%s", tg_last_error());
        tg_tape_clear();
        tg_optimizer_step(opt);
        tg_optimizer_zero_grad(opt);
    }
    bool commit = getenv("TG_WRITE_FIXTURES") != NULL;
    const char *path = commit ? TG_FIXTURE_DIR "/tapegrad_unet.safetensors" : TG_BIN_DIR "/tapegrad_unet.safetensors";
    cr_assert_eq(tg_checkpoint_save(path, m->params, NULL), TG_OK, "%s", tg_last_error());
    tg_rng rng;
    tg_rng_seed(&rng, 77);
    tg_unet *m2 = tg_unet_new(3, 2, 4, &rng);
    tg_ckpt_opts o = {0};
    cr_assert_eq(tg_checkpoint_load(path, m2->params, &o, NULL), TG_OK, "%s", tg_last_error());
    cr_assert_eq(m2->params->count, m->params->count);
    for (int i = 0; i < m->params->count; i++) {
        const tg_tensor *a = m->params->entries[i].tensor, *b = m2->params->entries[i].tensor;
        size_t bytes = (size_t)a->numel * (a->dtype == TG_I64 ? 8 : 4);
        cr_expect_eq(memcmp(a->dtype == TG_I64 ? (void *)a->idata : (void *)a->data,
                            b->dtype == TG_I64 ? (void *)b->idata : (void *)b->data, bytes),
                     0, "%s", m->params->entries[i].name);
    }
    tg_param_list_train(m->params, false);
    tg_param_list_train(m2->params, false);
    tg_tensor *y1 = tg_tensor_clone(tg_unet_forward(m, x));
    tg_tensor *y2 = tg_unet_forward(m2, x);
    cr_assert(y1 && y2);
    cr_expect_eq(memcmp(y1->data, y2->data, sizeof(float) * (size_t)y1->numel), 0);
    if (commit) {
        tg_st_entry io[2] = {{.name = "x", .dtype = TG_ST_F32, .ndim = 4, .data = x->data},
                             {.name = "logits_eval", .dtype = TG_ST_F32, .ndim = 4, .data = y1->data}};
        memcpy(io[0].shape, x->shape, sizeof x->shape);
        memcpy(io[1].shape, y1->shape, sizeof y1->shape);
        cr_assert_eq(tg_st_write(TG_FIXTURE_DIR "/tapegrad_unet_io.safetensors", io, 2, NULL, 0, "test_unet"), TG_OK);
    }
    tg_tape_clear();
    tg_tensor_free(y1), tg_tensor_free(x), tg_tensor_free(target), tg_tensor_free(w);
    tg_optimizer_free(opt);
    tg_unet_free(m);
    tg_unet_free(m2);
}
