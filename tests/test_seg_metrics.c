/* nn/seg_metrics: the reference DRIVE evaluation (confusion-matrix scores and Dice), against golden
 * values from tests/gen_seg_metrics_fixtures.py (a PyTorch copy of the reference code), small cases
 * checked by hand, and the error paths. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "tapegrad.h"
#include "test_support.h"

static void expect_near(const char *what, const char *name, double got, double want)
{
    cr_expect(fabs(got - want) <= 1e-6 || (isnan(got) && isnan(want)), "%s: %s is %.9g, reference %.9g", name, what,
              got, want);
}

Test(seg_metrics, matches_the_reference_evaluation)
{
    cJSON *root = tgt_json_load("seg_metrics.json");
    const cJSON *c;
    int n = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases"))
    {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        const int classes = cJSON_GetObjectItem(c, "classes")->valueint;
        tg_tensor *logits = tgt_json_tensor(cJSON_GetObjectItem(c, "logits"), false);
        tg_tensor *target = tgt_json_tensor(cJSON_GetObjectItem(c, "target"), true);
        tg_seg_metrics m;
        cr_assert_eq(tg_seg_metrics_init(&m, classes, 255), TG_OK);
        /* one image at a time, as the reference, and then the whole batch at once: the same scores */
        for (int pass = 0; pass < 2; pass++) {
            tg_seg_metrics_reset(&m);
            if (pass == 0) {
                cr_assert_eq(tg_seg_metrics_update(&m, logits, target), TG_OK, "%s", tg_last_error());
            } else {
                const int64_t K = logits->shape[1], H = logits->shape[2], W = logits->shape[3];
                for (int64_t i = 0; i < logits->shape[0]; i++) {
                    tg_tensor *li = tg_tensor_from_data(TG_SHAPE(1, K, H, W), logits->data + i * K * H * W);
                    tg_tensor *ti = tg_tensor_from_i64(TG_SHAPE(1, H, W), target->idata + i * H * W);
                    cr_assert_eq(tg_seg_metrics_update(&m, li, ti), TG_OK, "%s", tg_last_error());
                    tg_tensor_free(li), tg_tensor_free(ti);
                }
            }
            tg_seg_scores s = tg_seg_metrics_compute(&m);
            expect_near("global accuracy", name, s.global_acc, tgt_json_number(cJSON_GetObjectItem(c, "global_acc")));
            expect_near("mean IoU", name, s.mean_iou, tgt_json_number(cJSON_GetObjectItem(c, "miou")));
            expect_near("Dice", name, s.dice, tgt_json_number(cJSON_GetObjectItem(c, "dice")));
            for (int k = 0; k < classes; k++) {
                expect_near("class accuracy", name, s.acc[k],
                            tgt_json_number(cJSON_GetArrayItem(cJSON_GetObjectItem(c, "acc"), k)));
                expect_near("class IoU", name, s.iou[k],
                            tgt_json_number(cJSON_GetArrayItem(cJSON_GetObjectItem(c, "iou"), k)));
            }
            cr_expect_eq(m.images, logits->shape[0]);
        }
        tg_seg_metrics_free(&m);
        tg_tensor_free(logits), tg_tensor_free(target);
        n++;
    }
    cr_expect_eq(n, 4);
    cJSON_Delete(root);
}

/* 1 x 4 pixels, sigmoid head: logits (+, +, -, +), target (1, 0, 1, 255).
 * Counted: px0 TP, px1 FP, px2 FN. Confusion [t][p]: [0][1] = 1, [1][1] = 1, [1][0] = 1.
 * global acc 1/3; acc bg 0/1, vessel 1/2; IoU bg 0/(1+1-0) = 0, vessel 1/(2+2-1) = 1/3;
 * Dice (2*1 + 1e-6)/(2 + 2 + 1e-6). */
Test(seg_metrics, small_case_by_hand)
{
    tg_tensor *x = tg_tensor_from_data(TG_SHAPE(1, 1, 1, 4), (const float[]){2.0f, 0.5f, -1.0f, 3.0f});
    tg_tensor *t = tg_tensor_from_i64(TG_SHAPE(1, 1, 4), (const int64_t[]){1, 0, 1, 255});
    tg_seg_metrics m;
    cr_assert_eq(tg_seg_metrics_init(&m, 2, 255), TG_OK);
    cr_assert_eq(tg_seg_metrics_update(&m, x, t), TG_OK, "%s", tg_last_error());
    tg_seg_scores s = tg_seg_metrics_compute(&m);
    cr_expect_eq(s.pixels, 3);
    expect_near("global accuracy", "hand", s.global_acc, 1.0 / 3);
    expect_near("bg accuracy", "hand", s.acc[0], 0.0);
    expect_near("vessel accuracy", "hand", s.acc[1], 0.5);
    expect_near("bg IoU", "hand", s.iou[0], 0.0);
    expect_near("vessel IoU", "hand", s.iou[1], 1.0 / 3);
    expect_near("Dice", "hand", s.dice, (2.0 + 1e-6) / (4.0 + 1e-6));
    /* predictions: argmax keeps the first maximum, one channel uses logit > 0 */
    uint8_t p[3];
    tg_seg_predict((const float[]){1, 5, 0, 3, 5, 0}, 2, 3, p);
    cr_expect(p[0] == 1 && p[1] == 0 && p[2] == 0, "argmax %d %d %d", p[0], p[1], p[2]);
    tg_seg_predict((const float[]){0.0f, 1e-7f, -1e-7f}, 1, 3, p);
    cr_expect(p[0] == 0 && p[1] == 1 && p[2] == 0);
    tg_seg_metrics_free(&m);
    tg_tensor_free(x), tg_tensor_free(t);
}

Test(seg_metrics, bad_input_is_an_error)
{
    tg_seg_metrics m;
    cr_expect_eq(tg_seg_metrics_init(&m, 1, 255), TG_ERR_ARG);
    cr_expect_neq(strstr(tg_last_error(), "num_classes"), NULL, "%s", tg_last_error());
    cr_expect_eq(tg_seg_metrics_init(&m, TG_SEG_MAX_CLASSES + 1, 255), TG_ERR_ARG);
    cr_assert_eq(tg_seg_metrics_init(&m, 2, 255), TG_OK);
    tg_tensor *x = tg_tensor_zeros(TG_SHAPE(1, 2, 2, 2));
    tg_tensor *x3 = tg_tensor_zeros(TG_SHAPE(1, 3, 2, 2));
    tg_tensor *t = tg_tensor_from_i64(TG_SHAPE(1, 2, 2), (const int64_t[]){0, 1, 255, 2});
    tg_tensor *ok = tg_tensor_from_i64(TG_SHAPE(1, 2, 2), (const int64_t[]){0, 1, 255, 1});
    tg_tensor *wrong = tg_tensor_from_i64(TG_SHAPE(1, 3, 2), (const int64_t[]){0, 1, 0, 1, 0, 1});
    cr_expect_eq(tg_seg_metrics_update(&m, x, t), TG_ERR_ARG, "target 2 is out of range");
    cr_expect_neq(strstr(tg_last_error(), "target value 2"), NULL, "%s", tg_last_error());
    cr_expect_eq(tg_seg_metrics_update(&m, x3, ok), TG_ERR_SHAPE, "3 channels for 2 classes");
    cr_expect_eq(tg_seg_metrics_update(&m, x, wrong), TG_ERR_SHAPE);
    cr_expect_neq(strstr(tg_last_error(), "(1, 3, 2)"), NULL, "%s", tg_last_error());
    tg_clear_error(); /* a NULL argument reports itself only when no earlier error is pending */
    cr_expect_eq(tg_seg_metrics_update(&m, x, NULL), TG_ERR_ARG);
    cr_expect_eq(tg_seg_metrics_update(&m, ok, ok), TG_ERR_ARG, "int64 logits");
    cr_expect_eq(m.images, 0, "failed updates add nothing");
    cr_expect(isnan(tg_seg_metrics_compute(&m).dice), "no image: Dice is NaN");
    tg_seg_metrics uninit = {0};
    cr_expect_eq(tg_seg_metrics_update(&uninit, x, ok), TG_ERR_ARG);
    tg_seg_metrics_free(&m);
    tg_tensor_free(x), tg_tensor_free(x3), tg_tensor_free(t), tg_tensor_free(ok), tg_tensor_free(wrong);
}
