/* data/transforms: Pillow-exact resizing (golden values from Pillow 9.4 in
 * tests/fixtures/data_resize.json, written by tests/gen_data_fixtures.py), the
 * augmentation's parameters (seeded, torchvision's size rule), its fused
 * implementation against whole-image steps, alignment of image and target,
 * normalisation and errors. */
#include <math.h>

#include "data_test_util.h"
#include "test_support.h"
#include "dataset_skip.h"

static tg_image *image_from_json(const cJSON *rows)
{
    int h = cJSON_GetArraySize(rows), w = cJSON_GetArraySize(cJSON_GetArrayItem(rows, 0));
    int c = cJSON_GetArraySize(cJSON_GetArrayItem(cJSON_GetArrayItem(rows, 0), 0));
    tg_image *img = tg_image_new(w, h, c);
    cr_assert_not_null(img);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++)
                *tg_image_at(img, x, y, k) =
                    (uint8_t)cJSON_GetArrayItem(cJSON_GetArrayItem(cJSON_GetArrayItem(rows, y), x), k)->valueint;
    return img;
}

Test(resize, bit_identical_to_pillow)
{
    cJSON *root = tgt_json_load("data_resize.json");
    tg_image *src = image_from_json(cJSON_GetObjectItem(root, "src"));
    cJSON *c;
    int n = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "resize"))
    {
        int w = cJSON_GetObjectItem(c, "width")->valueint, h = cJSON_GetObjectItem(c, "height")->valueint;
        const char *mode = cJSON_GetObjectItem(c, "mode")->valuestring;
        tg_image *want = image_from_json(cJSON_GetObjectItem(c, "out"));
        tg_image *got =
            tg_image_resize(src, w, h, strcmp(mode, "nearest") == 0 ? TG_RESAMPLE_NEAREST : TG_RESAMPLE_BILINEAR);
        cr_assert_not_null(got, "%s", tg_last_error());
        for (size_t i = 0; i < (size_t)w * h * 3; i++)
            cr_assert_eq(got->data[i], want->data[i], "%s %dx%d: byte %zu is %d, Pillow %d", mode, w, h, i,
                         got->data[i], want->data[i]);
        tg_image_free(want);
        tg_image_free(got);
        n++;
    }
    cr_expect_eq(n, 16);
    tg_image_free(src);
    cJSON_Delete(root);
}

static uint64_t checksum(const uint8_t *b, size_t n)
{
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++) s += (uint64_t)b[i] * (i % 65521 + 1);
    return s;
}

Test(resize, drive21_as_the_reference_pipeline_resizes_it)
{
    const char *root = tg_drive_default_root();
    char probe[4096];
    snprintf(probe, sizeof probe, "%s/training", root);
    struct stat st;
    if (stat(probe, &st) != 0) cr_skip_test("DRIVE not found at %s", root);
    tg_seg_dataset *ds = tg_drive_open(root, TG_DRIVE_TRAINING);
    cr_assert_not_null(ds, "%s", tg_last_error());
    tg_image *img, *target;
    cr_assert_eq(tg_seg_dataset_get(ds, 0, &img, &target), TG_OK);
    cJSON *fx = tgt_json_load("data_resize.json");
    cJSON *c;
    int n = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(fx, "drive21"))
    {
        int w = cJSON_GetObjectItem(c, "width")->valueint, h = cJSON_GetObjectItem(c, "height")->valueint;
        tg_image *ri = tg_image_resize(img, w, h, TG_RESAMPLE_BILINEAR);
        tg_image *rt = tg_image_resize(target, w, h, TG_RESAMPLE_NEAREST);
        cr_expect_eq((double)checksum(ri->data, (size_t)w * h * 3),
                     cJSON_GetObjectItem(c, "image_checksum")->valuedouble, "image resized to %dx%d", w, h);
        cr_expect_eq((double)checksum(rt->data, (size_t)w * h), cJSON_GetObjectItem(c, "target_checksum")->valuedouble,
                     "target resized to %dx%d", w, h);
        tg_image_free(ri);
        tg_image_free(rt);
        n++;
    }
    cr_expect_eq(n, 2);
    cJSON_Delete(fx);
    tg_image_free(img);
    tg_image_free(target);
    tg_seg_dataset_free(ds);
}

Test(resize, errors)
{
    tg_image *img = tg_image_new(4, 4, 3);
    cr_expect_null(tg_image_resize(img, 0, 3, TG_RESAMPLE_BILINEAR));
    cr_expect(strstr(tg_last_error(), "tg_image_resize") != NULL);
    cr_expect_null(tg_image_resize(img, 3, 3, (tg_resample)7));
    cr_expect_null(tg_image_resize(NULL, 3, 3, TG_RESAMPLE_NEAREST));
    tg_image_free(img);
}

static bool params_eq(tg_seg_augment_params a, tg_seg_augment_params b)
{
    return a.resize_width == b.resize_width && a.resize_height == b.resize_height && a.hflip == b.hflip &&
           a.vflip == b.vflip && a.crop_x == b.crop_x && a.crop_y == b.crop_y;
}

Test(augment, draw_follows_torchvision_size_rule_and_is_seeded)
{
    tg_seg_augment a = tg_seg_augment_drive(565, 480);
    cr_expect_eq(a.min_size, 282);
    cr_expect_eq(a.max_size, 678);
    a.min_size = a.max_size = 282;
    tg_rng r;
    tg_rng_seed(&r, 1);
    tg_seg_augment_params p = tg_seg_augment_draw(&a, 565, 584, &r);
    cr_expect_eq(p.resize_width, 282);
    cr_expect_eq(p.resize_height, 291); /* int(282 * 584 / 565) */
    a.min_size = a.max_size = 300;
    p = tg_seg_augment_draw(&a, 600, 400, &r); /* landscape: the height is the shorter side */
    cr_expect_eq(p.resize_width, 450);
    cr_expect_eq(p.resize_height, 300);

    a = tg_seg_augment_drive(565, 480);
    tg_rng r1, r2;
    tg_rng_seed(&r1, 77);
    tg_rng_seed(&r2, 77);
    int lo = 1000, hi = 0, hflips = 0, vflips = 0, differ = 0;
    const int N = 4000;
    for (int i = 0; i < N; i++) {
        tg_seg_augment_params p1 = tg_seg_augment_draw(&a, 565, 584, &r1);
        tg_seg_augment_params p2 = tg_seg_augment_draw(&a, 565, 584, &r2);
        cr_assert(params_eq(p1, p2), "same seed, different draw %d", i);
        lo = p1.resize_width < lo ? p1.resize_width : lo;
        hi = p1.resize_width > hi ? p1.resize_width : hi;
        hflips += p1.hflip;
        vflips += p1.vflip;
        int pw = p1.resize_width > 480 ? p1.resize_width : 480, ph = p1.resize_height > 480 ? p1.resize_height : 480;
        cr_assert(p1.crop_x >= 0 && p1.crop_x <= pw - 480 && p1.crop_y >= 0 && p1.crop_y <= ph - 480);
    }
    cr_expect_eq(lo, 282);
    cr_expect_eq(hi, 678);
    cr_expect(abs(hflips - N / 2) < 200 && abs(vflips - N / 2) < 200, "flips %d %d of %d", hflips, vflips, N);
    tg_rng_seed(&r2, 78);
    for (int i = 0; i < 20; i++) {
        tg_seg_augment_params p1 = tg_seg_augment_draw(&a, 565, 584, &r1);
        tg_seg_augment_params p2 = tg_seg_augment_draw(&a, 565, 584, &r2);
        differ += !params_eq(p1, p2);
    }
    cr_expect(differ > 15, "different seeds gave the same draws");
}

/* Image whose R encodes x and G encodes y (smooth ramps), and targets holding x and y. */
static void coordinate_inputs(int w, int h, tg_image **img, tg_image **tx, tg_image **ty)
{
    *img = tg_image_new(w, h, 3);
    *tx = tg_image_new(w, h, 1);
    *ty = tg_image_new(w, h, 1);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            *tg_image_at(*img, x, y, 0) = (uint8_t)lround(x * 255.0 / (w - 1));
            *tg_image_at(*img, x, y, 1) = (uint8_t)lround(y * 255.0 / (h - 1));
            *tg_image_at(*img, x, y, 2) = 100;
            *tg_image_at(*tx, x, y, 0) = (uint8_t)x;
            *tg_image_at(*ty, x, y, 0) = (uint8_t)y;
        }
}

static int byte_of(float v, const tg_seg_augment *a, int c) { return (int)lroundf((v * a->std[c] + a->mean[c]) * 255.0f); }

/* The fused crop equals resize, flips, pad and crop applied to whole images one after the other. */
Test(augment, fused_equals_whole_image_steps)
{
    tg_image *img, *tx, *ty;
    coordinate_inputs(57, 43, &img, &tx, &ty);
    for (int i = 0; i < 57 * 43 * 3; i++) img->data[i] ^= (uint8_t)(i * 7919 >> 3); /* add texture */
    tg_seg_augment a = tg_seg_augment_drive(57, 40);
    a.min_size = 20, a.max_size = 90; /* both padding and cropping happen */
    const int S = a.crop_size;
    float *x = malloc(sizeof(float) * 3 * S * S);
    int64_t *y = malloc(sizeof(int64_t) * S * S);
    tg_rng r;
    tg_rng_seed(&r, 5);
    int padded = 0;
    for (int it = 0; it < 60; it++) {
        tg_seg_augment_params p = tg_seg_augment_draw(&a, 57, 43, &r);
        cr_assert_eq(tg_seg_augment_apply(&a, &p, img, tx, x, y), TG_OK, "%s", tg_last_error());
        tg_image *ri = tg_image_resize(img, p.resize_width, p.resize_height, TG_RESAMPLE_BILINEAR);
        tg_image *rt = tg_image_resize(tx, p.resize_width, p.resize_height, TG_RESAMPLE_NEAREST);
        if (p.hflip) tg_image_flip(ri, true), tg_image_flip(rt, true);
        if (p.vflip) tg_image_flip(ri, false), tg_image_flip(rt, false);
        tg_image *pi = tg_image_pad(ri, S, S, 0), *pt = tg_image_pad(rt, S, S, 255);
        padded += pi->width > ri->width || pi->height > ri->height;
        tg_image *ci = tg_image_crop(pi, p.crop_x, p.crop_y, S, S), *ct = tg_image_crop(pt, p.crop_x, p.crop_y, S, S);
        cr_assert_not_null(ci);
        for (int q = 0; q < S * S; q++) {
            cr_assert_eq(y[q], ct->data[q], "iteration %d: target %d", it, q);
            for (int c = 0; c < 3; c++)
                cr_assert_eq(byte_of(x[c * S * S + q], &a, c), ci->data[q * 3 + c], "iteration %d: pixel %d", it, q);
        }
        tg_image *tmp[] = {ri, rt, pi, pt, ci, ct};
        for (int k = 0; k < 6; k++) tg_image_free(tmp[k]);
    }
    cr_expect(padded > 5 && padded < 55, "padding happened in %d of 60", padded);
    free(x);
    free(y);
    tg_image_free(img);
    tg_image_free(tx);
    tg_image_free(ty);
}

/* Pixels encoding their coordinates stay with the target through every step. */
Test(augment, image_and_target_stay_aligned)
{
    const int W = 61, H = 47;
    tg_image *img, *tx, *ty;
    coordinate_inputs(W, H, &img, &tx, &ty);
    tg_seg_augment a = tg_seg_augment_drive(W, 50);
    a.min_size = 25, a.max_size = 100;
    const int S = a.crop_size;
    float *x = malloc(sizeof(float) * 3 * S * S), *x2 = malloc(sizeof(float) * 3 * S * S);
    int64_t *yx = malloc(sizeof(int64_t) * S * S), *yy = malloc(sizeof(int64_t) * S * S);
    tg_rng r;
    tg_rng_seed(&r, 11);
    int checked = 0, flipped = 0;
    for (int it = 0; it < 80; it++) {
        tg_seg_augment_params p = tg_seg_augment_draw(&a, W, H, &r);
        cr_assert_eq(tg_seg_augment_apply(&a, &p, img, tx, x, yx), TG_OK);
        cr_assert_eq(tg_seg_augment_apply(&a, &p, img, ty, x2, yy), TG_OK);
        cr_assert_eq(memcmp(x, x2, sizeof(float) * 3 * S * S), 0);
        double sx = (double)W / p.resize_width, sy = (double)H / p.resize_height;
        for (int q = 0; q < S * S; q++) {
            int ox = q % S, oy = q / S;
            bool pad = p.crop_x + ox >= p.resize_width || p.crop_y + oy >= p.resize_height;
            if (pad) {
                cr_assert_eq(yx[q], 255);
                cr_assert_eq(byte_of(x[q], &a, 0), 0);
                continue;
            }
            double fx = byte_of(x[q], &a, 0) * (W - 1) / 255.0, fy = byte_of(x[S * S + q], &a, 1) * (H - 1) / 255.0;
            /* bilinear: the ramp at the pixel's source centre; nearest: the pixel under it */
            cr_assert(fabs(fx - (double)yx[q]) <= 1.0 + sx, "x: image %.2f vs target %lld (it %d, q %d)", fx,
                      (long long)yx[q], it, q);
            cr_assert(fabs(fy - (double)yy[q]) <= 1.0 + sy, "y: image %.2f vs target %lld (it %d, q %d)", fy,
                      (long long)yy[q], it, q);
            checked++;
        }
        /* the flip is visible in the target's direction */
        if (p.hflip && p.crop_x + 1 < p.resize_width) {
            cr_assert_geq(yx[0], yx[1]);
            flipped++;
        }
        if (!p.hflip && p.crop_x + 1 < p.resize_width) cr_assert_leq(yx[0], yx[1]);
    }
    cr_expect(checked > 80 * S * S / 2, "only %d pixels checked", checked);
    cr_expect(flipped > 10);
    free(x), free(x2), free(yx), free(yy);
    tg_image_free(img);
    tg_image_free(tx);
    tg_image_free(ty);
}

Test(augment, eval_tensor_and_errors)
{
    tg_image *img = tg_image_new(3, 2, 3), *t = tg_image_new(3, 2, 1);
    for (int i = 0; i < 18; i++) img->data[i] = (uint8_t)(i * 14);
    for (int i = 0; i < 6; i++) t->data[i] = (uint8_t)(i % 2 ? 255 : 1);
    float x[18];
    int64_t y[6];
    cr_assert_eq(tg_seg_to_tensor(img, t, TG_DRIVE_MEAN, TG_DRIVE_STD, x, y), TG_OK);
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 6; i++) {
            float want = ((float)img->data[i * 3 + c] / 255.0f - TG_DRIVE_MEAN[c]) / TG_DRIVE_STD[c];
            cr_assert_eq(x[c * 6 + i], want, "channel %d pixel %d", c, i);
        }
    for (int i = 0; i < 6; i++) cr_assert_eq(y[i], t->data[i]);
    const float zero_std[3] = {1, 1, 0};
    cr_expect_eq(tg_seg_to_tensor(img, t, TG_DRIVE_MEAN, zero_std, x, y), TG_ERR_ARG);
    cr_expect(strstr(tg_last_error(), "std") != NULL);
    tg_image *gray = tg_image_to_gray(img), *t2 = tg_image_new(2, 2, 1);
    cr_expect_eq(tg_seg_to_tensor(gray, t, TG_DRIVE_MEAN, TG_DRIVE_STD, x, y), TG_ERR_ARG);
    cr_expect(strstr(tg_last_error(), "channels") != NULL);
    cr_expect_eq(tg_seg_to_tensor(img, t2, TG_DRIVE_MEAN, TG_DRIVE_STD, x, y), TG_ERR_ARG);
    cr_expect(strstr(tg_last_error(), "target") != NULL);
    tg_seg_augment a = tg_seg_augment_drive(3, 2);
    tg_seg_augment_params p = {3, 2, false, false, 2, 0};
    cr_expect_eq(tg_seg_augment_apply(&a, &p, img, t, x, y), TG_ERR_ARG);
    cr_expect(strstr(tg_last_error(), "does not fit") != NULL, "%s", tg_last_error());
    tg_image_free(img);
    tg_image_free(t);
    tg_image_free(gray);
    tg_image_free(t2);
}
