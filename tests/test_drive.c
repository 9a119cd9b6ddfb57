/* data/segmentation: DRIVE (the real data when present, a small fake copy in
 * the official layout always), binary-segmentation folders, their views. */
#include "data_test_util.h"
#include "dataset_skip.h"

TestSuite(drive, .init = tdu_setup, .fini = tdu_teardown);
TestSuite(folder, .init = tdu_setup, .fini = tdu_teardown);

static const char *real_drive_or_skip(void)
{
    const char *root = tg_drive_default_root();
    char probe[4096];
    snprintf(probe, sizeof probe, "%s/training/images", root);
    struct stat st;
    if (stat(probe, &st) != 0) cr_skip_test("DRIVE not found at %s", root);
    return root;
}

static void count_target(const tg_image *t, int64_t counts[256])
{
    memset(counts, 0, sizeof(int64_t) * 256);
    for (int i = 0; i < t->width * t->height; i++) counts[t->data[i]]++;
}

/* Reference counts for training image 21 and test image 01, computed once with
 * Pillow 9.4 (python3-pil) following the reference training code:
 *   manual = np.array(Image.open('training/1st_manual/21_manual1.gif').convert('L')) / 255
 *   roi = 255 - np.array(Image.open('training/mask/21_training_mask.gif').convert('L'))
 *   t = np.clip(manual + roi, 0, 255).astype(np.int64)
 *   vessels = (t == 1).sum(); fov = (t != 255).sum()
 * and, for the image, np.array(Image.open('training/images/21_training.tif').convert('RGB')):
 * its byte sum and the pixel at row 300, column 300. */
#define DRIVE21_VESSELS 24650
#define DRIVE21_FOV 225600
#define DRIVE21_BYTE_SUM 91033867
#define DRIVE01_TEST_VESSELS 29412
#define DRIVE01_TEST_FOV 224377

Test(drive, image_21_matches_pillow)
{
    const char *root = real_drive_or_skip();
    tg_seg_dataset *ds = tg_drive_open(root, TG_DRIVE_TRAINING);
    cr_assert_not_null(ds, "%s", tg_last_error());
    cr_assert_eq(tg_seg_dataset_length(ds), 20);
    const char *path = tg_seg_dataset_image_path(ds, 0);
    cr_expect(strstr(path, "training/images/21_training.tif") != NULL, "%s", path);
    tg_image *img, *t;
    cr_assert_eq(tg_seg_dataset_get(ds, 0, &img, &t), TG_OK);
    cr_expect_eq(img->width, 565);
    cr_expect_eq(img->height, 584);
    cr_expect_eq(img->channels, 3);
    int64_t sum = 0;
    for (int i = 0; i < 565 * 584 * 3; i++) sum += img->data[i];
    cr_expect_eq(sum, DRIVE21_BYTE_SUM);
    cr_expect_eq(*tg_image_at(img, 300, 300, 0), 186);
    cr_expect_eq(*tg_image_at(img, 300, 300, 1), 100);
    cr_expect_eq(*tg_image_at(img, 300, 300, 2), 65);
    int64_t counts[256];
    count_target(t, counts);
    cr_expect_eq(counts[0] + counts[1] + counts[255], 565 * 584, "target has values other than 0, 1, 255");
    cr_expect_eq(counts[1], DRIVE21_VESSELS);
    cr_expect_eq(counts[0] + counts[1], DRIVE21_FOV);
    tg_image_free(img);
    tg_image_free(t);
    tg_seg_dataset_free(ds);
}

Test(drive, all_40_samples_load)
{
    const char *root = real_drive_or_skip();
    for (int s = 0; s < 2; s++) {
        tg_seg_dataset *ds = tg_drive_open(root, s ? TG_DRIVE_TEST : TG_DRIVE_TRAINING);
        cr_assert_not_null(ds, "%s", tg_last_error());
        cr_assert_eq(tg_seg_dataset_length(ds), 20);
        for (int i = 0; i < 20; i++) {
            tg_image *img, *t;
            cr_assert_eq(tg_seg_dataset_get(ds, i, &img, &t), TG_OK);
            cr_assert(img->width == 565 && img->height == 584 && t->width == 565 && t->height == 584);
            int64_t counts[256];
            count_target(t, counts);
            cr_assert_eq(counts[0] + counts[1] + counts[255], 565 * 584, "sample %d", i);
            cr_assert(counts[1] > 10000 && counts[255] > 90000, "sample %d: %lld vessels", i, (long long)counts[1]);
            if (s == 1 && i == 0) {
                cr_expect_eq(counts[1], DRIVE01_TEST_VESSELS);
                cr_expect_eq(counts[0] + counts[1], DRIVE01_TEST_FOV);
            }
            tg_image_free(img);
            tg_image_free(t);
        }
        tg_seg_dataset_free(ds);
    }
}

Test(drive, views_give_tensor_shapes)
{
    const char *root = real_drive_or_skip();
    tg_seg_dataset *ds = tg_drive_open(root, TG_DRIVE_TEST);
    cr_assert_not_null(ds);
    tg_seg_augment a = tg_seg_augment_drive(565, 480);
    tg_dataset *train = tg_seg_dataset_train(ds, &a), *eval = tg_seg_dataset_eval(ds, TG_DRIVE_MEAN, TG_DRIVE_STD);
    int xn, yn;
    int64_t xs[6], ys[6];
    cr_assert_eq(train->sample_shape(train, 3, &xn, xs, &yn, ys), TG_OK);
    cr_expect(xn == 3 && xs[0] == 3 && xs[1] == 480 && xs[2] == 480 && yn == 2 && ys[0] == 480 && ys[1] == 480);
    cr_assert_eq(eval->sample_shape(eval, 3, &xn, xs, &yn, ys), TG_OK);
    cr_expect(xn == 3 && xs[1] == 584 && xs[2] == 565 && ys[0] == 584 && ys[1] == 565);
    cr_expect_neq(eval->sample_shape(eval, 20, &xn, xs, &yn, ys), TG_OK);
    float *x = malloc(sizeof(float) * 3 * 584 * 565);
    int64_t *y = malloc(sizeof(int64_t) * 584 * 565);
    tg_rng r;
    tg_rng_seed(&r, 1);
    cr_assert_eq(eval->get(eval, 0, &r, x, y), TG_OK);
    int64_t fov = 0;
    for (int i = 0; i < 584 * 565; i++) fov += y[i] != 255;
    cr_expect_eq(fov, DRIVE01_TEST_FOV);
    tg_dataset_free(train);
    tg_dataset_free(eval);
    free(x);
    free(y);
    tg_seg_dataset_free(ds);
}

/* ---- a fake DRIVE in the official layout ------------------------------ */

enum { FW = 10, FH = 8 };

/* Palette: 0 black, 1 white, 2 gray 200. */
static void write_index_gif(const char *path, int w, int h, const uint8_t *px)
{
    uint8_t pal[384] = {0};
    memset(pal + 3, 255, 3);
    memset(pal + 6, 200, 3);
    tdu_write_gif(path, w, h, pal, px);
}

static void fake_drive(const char *split, int first)
{
    char p[256];
    snprintf(p, sizeof p, "%s", split);
    tdu_mkdir(p);
    const char *subs[3] = {"images", "1st_manual", "mask"};
    for (int k = 0; k < 3; k++) {
        snprintf(p, sizeof p, "%s/%s", split, subs[k]);
        tdu_mkdir(p);
    }
    uint8_t rgb[FW * FH * 3], manual[FW * FH], mask[FW * FH];
    for (int i = 0; i < FW * FH; i++) {
        rgb[i * 3] = (uint8_t)i, rgb[i * 3 + 1] = (uint8_t)(2 * i), rgb[i * 3 + 2] = 7;
        manual[i] = (uint8_t)(i % 3 == 0);    /* white every third pixel */
        mask[i] = i < 10 ? 0 : 1;              /* first row outside */
    }
    for (int n = first; n < first + 20; n++) {
        snprintf(p, sizeof p, "%s/images/%02d_%s.tif", split, n, split);
        tdu_write_tiff(tdu_path(p), FW, FH, 3, rgb, false);
        snprintf(p, sizeof p, "%s/1st_manual/%02d_manual1.gif", split, n);
        write_index_gif(tdu_path(p), FW, FH, manual);
        snprintf(p, sizeof p, "%s/mask/%02d_%s_mask.gif", split, n, split);
        write_index_gif(tdu_path(p), FW, FH, mask);
    }
}

Test(drive, fake_layout_target_rule)
{
    fake_drive("training", 21);
    tg_seg_dataset *ds = tg_drive_open(tdu_dir, TG_DRIVE_TRAINING);
    cr_assert_not_null(ds, "%s", tg_last_error());
    tg_image *img, *t;
    cr_assert_eq(tg_seg_dataset_get(ds, 19, &img, &t), TG_OK);
    cr_assert(strstr(tg_seg_dataset_image_path(ds, 19), "40_training.tif") != NULL);
    for (int i = 0; i < FW * FH; i++) {
        int manual = i % 3 == 0 ? 255 : 0, mask = i < 10 ? 0 : 255;
        int want = (255 - mask) + manual / 255; /* clip(manual/255 + (255 - mask), 0, 255), truncated */
        if (want > 255) want = 255;
        cr_assert_eq(t->data[i], want, "pixel %d: %d, want %d", i, t->data[i], want);
        cr_assert_eq(img->data[i * 3 + 1], (uint8_t)(2 * i));
    }
    tg_image_free(img);
    tg_image_free(t);
    tg_seg_dataset_free(ds);
}

/* One rule for both heads, checked at load: a grey (200) mask or label pixel used to become a
 * target of 55 or 56, which the sigmoid head trained on and the softmax head refused without
 * naming any file; a mask with no pixel inside trained on "-nan". */
Test(drive, grey_or_empty_masks_and_labels_are_refused_naming_the_file)
{
    fake_drive("test", 1);
    uint8_t px[FW * FH];
    for (int i = 0; i < FW * FH; i++) px[i] = i == 23 ? 2 : 1; /* one grey pixel at (3, 2) */
    write_index_gif(tdu_path("test/mask/05_test_mask.gif"), FW, FH, px);
    cr_expect_null(tg_drive_open(tdu_dir, TG_DRIVE_TEST));
    cr_expect_eq(tg_last_status(), TG_ERR_FORMAT);
    TDU_EXPECT_ERROR("sample 4");
    TDU_EXPECT_ERROR(tdu_path("test/mask/05_test_mask.gif"));
    TDU_EXPECT_ERROR("pixel (3, 2) has value 200");
    write_index_gif(tdu_path("test/mask/05_test_mask.gif"), FW, FH, (uint8_t[FW * FH]){0});
    write_index_gif(tdu_path("test/1st_manual/05_manual1.gif"), FW, FH, px);
    cr_expect_null(tg_drive_open(tdu_dir, TG_DRIVE_TEST));
    TDU_EXPECT_ERROR(tdu_path("test/1st_manual/05_manual1.gif"));
    TDU_EXPECT_ERROR("pixel (3, 2) has value 200; a label pixel must be 0");
    for (int i = 0; i < FW * FH; i++) px[i] = i % 2;
    write_index_gif(tdu_path("test/1st_manual/05_manual1.gif"), FW, FH, px);
    cr_expect_null(tg_drive_open(tdu_dir, TG_DRIVE_TEST)); /* the all-black mask ignores everything */
    TDU_EXPECT_ERROR("image ");
    TDU_EXPECT_ERROR("05_test.tif: every pixel is ignored (mask ");
    TDU_EXPECT_ERROR("05_test_mask.gif is empty)");
}

Test(drive, missing_and_mismatched_files_name_the_expected_path)
{
    cr_expect_null(tg_drive_open(tdu_dir, TG_DRIVE_TEST));
    TDU_EXPECT_ERROR("/test");
    TDU_EXPECT_ERROR("TG_DRIVE_DIR");
    fake_drive("test", 1);
    remove(tdu_path("test/mask/07_test_mask.gif"));
    cr_expect_null(tg_drive_open(tdu_dir, TG_DRIVE_TEST));
    TDU_EXPECT_ERROR(tdu_path("test/mask/07_test_mask.gif"));
    cr_expect_eq(tg_last_status(), TG_ERR_IO);
    uint8_t small[4] = {0, 1, 0, 1};
    write_index_gif(tdu_path("test/mask/07_test_mask.gif"), 2, 2, small);
    cr_expect_null(tg_drive_open(tdu_dir, TG_DRIVE_TEST));
    TDU_EXPECT_ERROR("07_test_mask.gif is 2 x 2");
    TDU_EXPECT_ERROR("07_test.tif is 10 x 8");
    tdu_write(tdu_path("test/mask/07_test_mask.gif"), "GIF89a", 6);
    cr_expect_null(tg_drive_open(tdu_dir, TG_DRIVE_TEST));
    cr_expect_eq(tg_last_status(), TG_ERR_FORMAT);
    TDU_EXPECT_ERROR("07_test_mask.gif");
    cr_expect_null(tg_drive_open(tdu_dir, (tg_drive_split)5));
}

Test(drive, root_from_environment)
{
    setenv("TG_DRIVE_DIR", tdu_dir, 1);
    cr_expect_str_eq(tg_drive_default_root(), tdu_dir);
    cr_expect_null(tg_drive_open(NULL, TG_DRIVE_TRAINING));
    TDU_EXPECT_ERROR(tdu_dir);
    fake_drive("training", 21);
    tg_seg_dataset *ds = tg_drive_open(NULL, TG_DRIVE_TRAINING);
    cr_expect_not_null(ds, "%s", tg_last_error());
    tg_seg_dataset_free(ds);
    unsetenv("TG_DRIVE_DIR");
    cr_expect_str_neq(tg_drive_default_root(), tdu_dir);
}

/* Without TG_DRIVE_DIR the root is found at run time (nothing compiled in): data/DRIVE,
 * then ../shared/data/DRIVE from the working directory, then from the program's place. */
Test(drive, default_root_found_at_run_time)
{
    unsetenv("TG_DRIVE_DIR");
    char cwd[4096], want[4096];
    cr_assert_not_null(getcwd(cwd, sizeof cwd));
    tdu_mkdir("work");
    tdu_mkdir("shared");
    tdu_mkdir("shared/data");
    tdu_mkdir("shared/data/DRIVE");
    cr_assert_eq(chdir(tdu_path("work")), 0);
    /* an empty folder is not DRIVE: it needs training/ or test/ */
    cr_expect_str_neq(tg_drive_default_root(), realpath(tdu_path("shared/data/DRIVE"), want));
    tdu_mkdir("shared/data/DRIVE/test");
    cr_expect_str_eq(tg_drive_default_root(), realpath(tdu_path("shared/data/DRIVE"), want));
    tdu_mkdir("work/data");
    tdu_mkdir("work/data/DRIVE");
    tdu_mkdir("work/data/DRIVE/training");
    cr_expect_str_eq(tg_drive_default_root(), realpath(tdu_path("work/data/DRIVE"), want));
    setenv("TG_DRIVE_DIR", "/elsewhere", 1);
    cr_expect_str_eq(tg_drive_default_root(), "/elsewhere");
    unsetenv("TG_DRIVE_DIR");
    /* from a directory with neither: relative to this program (build/bin/test_drive), which
     * in this repository's layout is <repo>/../shared/data/DRIVE */
    cr_assert_eq(chdir(tdu_dir), 0);
    char repo_drive[4096];
    snprintf(repo_drive, sizeof repo_drive, "%s/../../../shared/data/DRIVE/test", TG_BIN_DIR);
    struct stat st;
    if (stat(repo_drive, &st) == 0) {
        snprintf(repo_drive, sizeof repo_drive, "%s/../../../shared/data/DRIVE", TG_BIN_DIR);
        cr_expect_str_eq(tg_drive_default_root(), realpath(repo_drive, want));
    } else {
        cr_expect_str_eq(tg_drive_default_root(), "data/DRIVE");
    }
    cr_assert_eq(chdir(cwd), 0);
}

/* ---- folders ----------------------------------------------------------- */

static void write_png(const char *name, int w, int h, int c, uint8_t value0)
{
    tg_image *img = tg_image_new(w, h, c);
    for (int i = 0; i < w * h * c; i++) img->data[i] = (uint8_t)(value0 + i);
    cr_assert_eq(tg_image_save_png(img, tdu_path(name)), TG_OK);
    tg_image_free(img);
}

static void write_values(const char *name, int w, int h, const uint8_t *values)
{
    tg_image *img = tg_image_new(w, h, 1);
    memcpy(img->data, values, (size_t)w * h);
    cr_assert_eq(tg_image_save_png(img, tdu_path(name)), TG_OK);
    tg_image_free(img);
}

Test(folder, images_labels_masks_by_base_name)
{
    tdu_mkdir("images");
    tdu_mkdir("labels");
    write_png("images/b.png", 4, 3, 3, 10);
    write_png("images/a.png", 5, 2, 1, 0); /* gray input becomes RGB */
    write_values("labels/a.png", 5, 2, (const uint8_t[]){0, 1, 255, 1, 0, 255, 255, 0, 0, 1}); /* 1, 255: foreground */
    uint8_t lb[12] = {0, 255, 0, 255, 0, 0, 0, 0, 255, 255, 255, 255};
    write_index_gif(tdu_path("labels/b.gif"), 4, 3, (uint8_t[]){0, 1, 0, 1, 0, 0, 0, 0, 1, 1, 1, 1});
    for (int preload = 0; preload <= 1; preload++) {
        tg_seg_dataset *ds = tg_seg_folder_open(tdu_dir, preload);
        cr_assert_not_null(ds, "%s", tg_last_error());
        cr_assert_eq(tg_seg_dataset_length(ds), 2);
        cr_expect(strstr(tg_seg_dataset_image_path(ds, 0), "images/a.png") != NULL);
        tg_image *img, *t;
        cr_assert_eq(tg_seg_dataset_get(ds, 0, &img, &t), TG_OK);
        cr_expect_eq(img->channels, 3);
        for (int i = 0; i < 10; i++) cr_assert_eq(t->data[i], (0x26E >> i & 1), "pixel %d", i);
        tg_image_free(img);
        tg_image_free(t);
        cr_assert_eq(tg_seg_dataset_get(ds, 1, &img, &t), TG_OK);
        for (int i = 0; i < 12; i++) cr_assert_eq(t->data[i], lb[i] ? 1 : 0);
        tg_image_free(img);
        tg_image_free(t);
        cr_expect_neq(tg_seg_dataset_get(ds, 2, &img, &t), TG_OK);
        tg_seg_dataset_free(ds);
    }
    /* masks/: zero is outside (255) */
    tdu_mkdir("masks");
    write_values("masks/a.png", 5, 2, (const uint8_t[]){0, 1, 1, 1, 1, 1, 1, 1, 1, 1});
    cr_expect_null(tg_seg_folder_open(tdu_dir, true));
    TDU_EXPECT_ERROR("masks");
    TDU_EXPECT_ERROR("b.*");
    write_values("masks/b.png", 4, 3, (const uint8_t[]){255, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0});
    tg_seg_dataset *ds = tg_seg_folder_open(tdu_dir, false);
    cr_assert_not_null(ds, "%s", tg_last_error());
    tg_image *img, *t;
    cr_assert_eq(tg_seg_dataset_get(ds, 0, &img, &t), TG_OK);
    cr_expect_eq(t->data[0], 255);
    cr_expect_eq(t->data[1], 1);
    tg_image_free(img);
    tg_image_free(t);
    tg_seg_dataset_free(ds);
}

Test(folder, errors_name_the_files)
{
    cr_expect_null(tg_seg_folder_open(tdu_dir, true));
    TDU_EXPECT_ERROR("images");
    tdu_mkdir("images");
    tdu_mkdir("labels");
    cr_expect_null(tg_seg_folder_open(tdu_dir, true));
    TDU_EXPECT_ERROR("no images");
    write_png("images/x.png", 4, 4, 3, 0);
    cr_expect_null(tg_seg_folder_open(tdu_dir, true));
    TDU_EXPECT_ERROR("x.*");
    write_png("labels/x.png", 4, 5, 1, 0);
    cr_expect_null(tg_seg_folder_open(tdu_dir, true));
    TDU_EXPECT_ERROR("labels/x.png is 4 x 5");
    write_png("labels/x.bmp", 4, 4, 1, 0);
    cr_expect_null(tg_seg_folder_open(tdu_dir, true));
    TDU_EXPECT_ERROR("both");
    remove(tdu_path("labels/x.png"));
    uint8_t noise[300];
    tdu_random_bytes(noise, sizeof noise, 3);
    memcpy(noise, "\x89PNG\r\n\x1a\n", 8);
    tdu_write(tdu_path("images/x.png"), noise, sizeof noise);
    for (int preload = 0; preload <= 1; preload++) {
        cr_expect_null(tg_seg_folder_open(tdu_dir, preload));
        cr_expect_eq(tg_last_status(), TG_ERR_FORMAT);
        TDU_EXPECT_ERROR("images/x.png: corrupt PNG");
    }
    cr_expect_null(tg_seg_folder_open(NULL, true));
}

/* The folder layout follows DRIVE's rule: a grey label (JPEG noise, anti-aliasing) is refused, not
 * silently thresholded, and so is a mask with no pixel inside. */
Test(folder, grey_label_or_empty_mask_is_refused_naming_the_file)
{
    tdu_mkdir("images");
    tdu_mkdir("labels");
    write_png("images/x.png", 3, 2, 3, 0);
    write_values("labels/x.png", 3, 2, (const uint8_t[]){0, 255, 128, 1, 0, 0});
    for (int preload = 0; preload <= 1; preload++) {
        cr_expect_null(tg_seg_folder_open(tdu_dir, preload));
        cr_expect_eq(tg_last_status(), TG_ERR_FORMAT);
        TDU_EXPECT_ERROR("labels/x.png: pixel (2, 0) has value 128");
    }
    write_values("labels/x.png", 3, 2, (const uint8_t[]){0, 255, 0, 1, 0, 0});
    tdu_mkdir("masks");
    write_values("masks/x.png", 3, 2, (const uint8_t[]){0, 0, 0, 0, 0, 0});
    cr_expect_null(tg_seg_folder_open(tdu_dir, false));
    TDU_EXPECT_ERROR("images/x.png: every pixel is ignored (mask ");
    TDU_EXPECT_ERROR("masks/x.png is empty)");
    write_values("masks/x.png", 3, 2, (const uint8_t[]){0, 0, 0, 0, 0, 1});
    tg_seg_dataset *ds = tg_seg_folder_open(tdu_dir, false);
    cr_expect_not_null(ds, "%s", tg_last_error());
    tg_seg_dataset_free(ds);
}
