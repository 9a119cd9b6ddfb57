/* examples/unet_drive on a generated folder dataset (no DRIVE needed): DIR/training and DIR/test
 * with JPEG images of several sizes, 1-bit PNG labels, with and without masks/; the layout is
 * detected and printed, the normalisation computed inside the masks and recorded (log.jsonl,
 * checkpoint metadata, report), --mean/--std override it, crop follows the image size; --seeds
 * writes OUT/seed_S/<head>/ and a report with mean ± std and the paired 95% t interval computed
 * as by hand, which --report-only rebuilds; bad folders (a label missing, mismatched sizes, an
 * unreadable image) fail with exit 1 naming the file. */
#include <criterion/criterion.h>
#include <math.h>
#include <png.h>
#include <stb/stb_image_write.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tapegrad.h"
#include "test_support.h"

#define UNET_BIN TG_BIN_DIR "/unet_drive"
#define TINY "--base-c 4 --batch-size 2 --threads 2 --overlays 0"

static char tmpdir[256];
static char output[1 << 17];

/* unet_drive with these arguments (printf-style), output captured in `output`; its exit code. */
#define run(...) tgt_run_capturef(output, sizeof output, UNET_BIN " " __VA_ARGS__)

static void make_tmp(void) { tgt_make_tmpdir(tmpdir, sizeof tmpdir, "unet_data"); }
static void remove_tmp(void) { tgt_remove_tree(tmpdir); }

static const char *path(const char *fmt, ...)
{
    static char buf[8][1024];
    static int k;
    char *p = buf[k++ % 8];
    int n = snprintf(p, 1024, "%s/", tmpdir);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p + n, 1024 - (size_t)n, fmt, ap);
    va_end(ap);
    return p;
}

static void mkdirs(const char *root, bool masks)
{
    const char *splits[2] = {"training", "test"}, *subs[3] = {"images", "labels", "masks"};
    cr_assert_eq(mkdir(path("%s", root), 0755), 0);
    for (int s = 0; s < 2; s++) {
        cr_assert_eq(mkdir(path("%s/%s", root, splits[s]), 0755), 0);
        for (int k = 0; k < (masks ? 3 : 2); k++) cr_assert_eq(mkdir(path("%s/%s/%s", root, splits[s], subs[k]), 0755), 0);
    }
}

/* A 1-bit greyscale PNG (0 or 1 per pixel, as a bilevel scan would be stored). */
static void write_png_1bit(const char *file, int w, int h, const uint8_t *bits)
{
    FILE *f = fopen(file, "wb");
    cr_assert_not_null(f);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    cr_assert(png && info);
    if (setjmp(png_jmpbuf(png))) cr_assert_fail("libpng failed writing %s", file);
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 1, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    png_set_packing(png); /* rows given one byte per pixel */
    for (int y = 0; y < h; y++) png_write_row(png, (png_const_bytep)(bits + (size_t)y * w));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
}

/* Sample NAME of size w x h in root/split: a JPEG image (vessel-like dark lines on a reddish
 * background), its 1-bit label, and a mask (a centred ellipse) if masks. */
static void write_sample(const char *root, const char *split, const char *name, int w, int h, bool masks, int seed)
{
    uint8_t *rgb = malloc((size_t)w * h * 3), *lab = malloc((size_t)w * h), *msk = malloc((size_t)w * h);
    cr_assert(rgb && lab && msk);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const size_t i = (size_t)y * w + x;
            const bool vessel = (x + 2 * y + seed) % 11 < 2 || abs(x - w / 2 - seed) < 2;
            const double ex = (x - w / 2.0) / (0.48 * w), ey = (y - h / 2.0) / (0.48 * h);
            msk[i] = ex * ex + ey * ey <= 1.0 ? 255 : 0;
            lab[i] = vessel;
            rgb[3 * i + 0] = (uint8_t)(vessel ? 90 : 180 + (x * 7 + y * 3 + seed) % 40);
            rgb[3 * i + 1] = (uint8_t)(vessel ? 30 : 80 + (x * 5 + y * 11) % 30);
            rgb[3 * i + 2] = (uint8_t)(vessel ? 20 : 40 + (x + y) % 20);
        }
    cr_assert(stbi_write_jpg(path("%s/%s/images/%s.jpg", root, split, name), w, h, 3, rgb, 95));
    write_png_1bit(path("%s/%s/labels/%s.png", root, split, name), w, h, lab);
    if (masks) {
        tg_image *m = tg_image_new(w, h, 1);
        cr_assert_not_null(m);
        memcpy(m->data, msk, (size_t)w * h);
        cr_assert_eq(tg_image_save_png(m, path("%s/%s/masks/%s.png", root, split, name)), TG_OK);
        tg_image_free(m);
    }
    free(rgb);
    free(lab);
    free(msk);
}

/* Training images 72x64, 80x96, 64x70 (shortest side 64); test images 70x66 and 90x72. */
static void make_dataset(const char *root, bool masks)
{
    mkdirs(root, masks);
    write_sample(root, "training", "a", 72, 64, masks, 0);
    write_sample(root, "training", "b", 80, 96, masks, 3);
    write_sample(root, "training", "c", 64, 70, masks, 5);
    write_sample(root, "test", "t1", 70, 66, masks, 1);
    write_sample(root, "test", "t2", 90, 72, masks, 4);
}

/* Mean and std per channel of the decoded training JPEGs inside their masks, as "%.6g,%.6g,%.6g". */
static void expected_norm(const char *root, bool masks, char *mean, char *std)
{
    const char *names[3] = {"a", "b", "c"};
    double s[3] = {0}, ss[3] = {0}, n = 0;
    for (int k = 0; k < 3; k++) {
        tg_image *img = tg_image_load(path("%s/training/images/%s.jpg", root, names[k]));
        tg_image *m = masks ? tg_image_load(path("%s/training/masks/%s.png", root, names[k])) : NULL;
        cr_assert_not_null(img);
        for (size_t i = 0; i < (size_t)img->width * img->height; i++) {
            if (m && m->data[i] == 0) continue;
            for (int c = 0; c < 3; c++) {
                double v = img->data[3 * i + (size_t)c] / 255.0;
                s[c] += v, ss[c] += v * v;
            }
            n++;
        }
        tg_image_free(img);
        tg_image_free(m);
    }
    double mu[3], sd[3];
    for (int c = 0; c < 3; c++) mu[c] = s[c] / n, sd[c] = sqrt(ss[c] / n - mu[c] * mu[c]);
    sprintf(mean, "%.6g,%.6g,%.6g", mu[0], mu[1], mu[2]);
    sprintf(std, "%.6g,%.6g,%.6g", sd[0], sd[1], sd[2]);
}

static char *slurp(const char *file)
{
    FILE *f = fopen(file, "rb");
    cr_assert_not_null(f, "cannot read %s", file);
    static char buf[1 << 18];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* The value of "key" in the last line of a log (text up to , or }), into out. */
static void log_field(const char *file, const char *key, char *out, size_t n)
{
    const char *text = slurp(file), *last = text, *p;
    while ((p = strchr(last, '\n')) && p[1]) last = p + 1;
    char k[64];
    snprintf(k, sizeof k, "\"%s\": ", key);
    p = strstr(last, k);
    cr_assert_not_null(p, "no %s in %s", key, last);
    p += strlen(k);
    if (*p == '"') p++;
    size_t i = 0;
    while (p[i] && p[i] != '"' && p[i] != '}' && !(p[i] == ',' && p[i + 1] == ' ') && i + 1 < n) out[i] = p[i], i++;
    out[i] = '\0';
}

static const char *meta_of(const char *ckpt, const char *key)
{
    static char v[128];
    tg_meta meta = {0};
    tg_param_list *probe = tg_param_list_new();
    tg_ckpt_opts o = {.meta = &meta, .non_strict = true}; /* an empty list: only the metadata is wanted */
    cr_assert_eq(tg_checkpoint_load(ckpt, probe, &o, NULL), TG_OK, "%s: %s", ckpt, tg_last_error());
    const char *s = tg_meta_get(&meta, key);
    snprintf(v, sizeof v, "%s", s ? s : "(absent)");
    tg_meta_clear(&meta);
    tg_param_list_free(probe);
    return v;
}

TestSuite(unet_drive_data, .init = make_tmp, .fini = remove_tmp, .timeout = 300);

Test(unet_drive_data, folder_layout_with_masks_trains_and_records_the_normalisation)
{
    make_dataset("ds", true);
    char mean[96], std[96], v[128];
    expected_norm("ds", true, mean, std);
    cr_assert_eq(run(TINY " --head softmax --epochs 2 --overlays 1 --data %s --out %s", path("ds"), path("out")), 0,
                 "%s", output);
    cr_expect_neq(strstr(output, "folder layout (images/, labels/, masks/)"), NULL, "%s", output);
    cr_expect_neq(strstr(output, "3 training, 2 test images"), NULL, "%s", output);
    cr_expect_neq(strstr(output, "computed over the 3 training images inside their masks"), NULL, "%s", output);
    cr_expect_neq(strstr(output, "base size 64, crop 48"), NULL, "64 * 480 / 565 = 54 -> 48:\n%s", output);
    char want[256];
    snprintf(want, sizeof want, "normalisation mean %s, std %s", mean, std);
    cr_expect_neq(strstr(output, want), NULL, "expected '%s' in:\n%s", want, output);
    log_field(path("out/softmax/log.jsonl"), "norm_mean", v, sizeof v);
    cr_expect_str_eq(v, mean);
    log_field(path("out/softmax/log.jsonl"), "norm_std", v, sizeof v);
    cr_expect_str_eq(v, std);
    log_field(path("out/softmax/log.jsonl"), "crop", v, sizeof v);
    cr_expect_str_eq(v, "48");
    log_field(path("out/softmax/log.jsonl"), "dice", v, sizeof v);
    cr_expect(atof(v) >= 0 && atof(v) <= 1, "Dice %s", v);
    cr_expect_str_eq(meta_of(path("out/softmax/last.safetensors"), "norm_mean"), mean);
    cr_expect_str_eq(meta_of(path("out/softmax/best.safetensors"), "norm_std"), std);
    snprintf(want, sizeof want, "mean %s, std %s", mean, std);
    cr_expect_neq(strstr(slurp(path("out/report.md")), want), NULL, "report.md records the normalisation");
    struct stat st;
    cr_expect_eq(stat(path("out/overlay_01.png"), &st), 0, "overlay of a folder test image");
    /* --eval uses the checkpoint's normalisation and reproduces the logged Dice */
    log_field(path("out/softmax/log.jsonl"), "dice", v, sizeof v);
    cr_assert_eq(run("--threads 2 --data %s --eval %s", path("ds"), path("out/softmax/last.safetensors")), 0, "%s",
                 output);
    snprintf(want, sizeof want, "Dice %.4f", atof(v));
    cr_expect_neq(strstr(output, want), NULL, "expected '%s' in:\n%s", want, output);
}

Test(unet_drive_data, folder_layout_without_masks_and_given_normalisation)
{
    make_dataset("nm", false);
    char mean[96], std[96], v[128];
    expected_norm("nm", false, mean, std);
    cr_assert_eq(run(TINY " --head sigmoid --epochs 1 --crop 32 --data %s --out %s", path("nm"), path("o1")), 0,
                 "%s", output);
    cr_expect_neq(strstr(output, "no masks/: every pixel counts"), NULL, "%s", output);
    cr_expect_neq(strstr(output, "computed over the 3 training images"), NULL, "%s", output);
    cr_expect_neq(strstr(output, "crop 32"), NULL, "--crop wins over the default:\n%s", output);
    log_field(path("o1/sigmoid/log.jsonl"), "norm_mean", v, sizeof v);
    cr_expect_str_eq(v, mean, "every pixel counted without masks");
    cr_assert_eq(run(TINY " --head sigmoid --epochs 1 --mean 0.5,0.25,0.125 --std 0.2,0.1,0.05 --data %s --out %s",
                     path("nm"), path("o2")),
                 0, "%s", output);
    cr_expect_neq(strstr(output, "mean 0.5,0.25,0.125, std 0.2,0.1,0.05 (given)"), NULL, "%s", output);
    log_field(path("o2/sigmoid/log.jsonl"), "norm_std", v, sizeof v);
    cr_expect_str_eq(v, "0.2,0.1,0.05");
    cr_expect_str_eq(meta_of(path("o2/sigmoid/last.safetensors"), "norm_mean"), "0.5,0.25,0.125");
    cr_expect_eq(run("--mean 0.5,0.25,0.125 --data %s", path("nm")), 2, "%s", output);
    cr_expect_neq(strstr(output, "--mean and --std go together"), NULL, "%s", output);
    cr_expect_eq(run("--mean 1,2 --std 1,1,1"), 2, "%s", output);
    cr_expect_eq(run("--mean 1,2,3 --std 1,0,1"), 2, "%s", output);
    cr_expect_neq(strstr(output, "three positive numbers"), NULL, "%s", output);
}

/* Reads the final Dice of OUT/seed_S/HEAD/log.jsonl. */
static double final_dice(const char *out, int seed, const char *head)
{
    char v[64];
    log_field(path("%s/seed_%d/%s/log.jsonl", out, seed, head), "dice", v, sizeof v);
    return atof(v);
}

Test(unet_drive_data, seeds_report_mean_std_and_interval)
{
    make_dataset("ds", true);
    cr_assert_eq(run(TINY " --epochs 2 --seeds 3,7 --data %s --out %s", path("ds"), path("ms")), 0, "%s", output);
    const char *files[] = {"seed_3/sigmoid/log.jsonl", "seed_3/softmax/last.safetensors", "seed_7/sigmoid/best.safetensors",
                           "seed_7/softmax/log.jsonl", "report.md", "curves.png"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        struct stat st;
        cr_expect_eq(stat(path("ms/%s", files[i]), &st), 0, "ms/%s missing:\n%s", files[i], output);
    }
    cr_expect_str_eq(meta_of(path("ms/seed_7/softmax/last.safetensors"), "seed"), "7");
    /* the interval, by hand: two seeds, d_i = softmax - sigmoid (as the log rounds them),
     * mean +- t_{0.975}(1) * |d_1 - d_2| / sqrt(2) / sqrt(2), t_{0.975}(1) = 12.7062047 */
    double d[2], sig[2];
    for (int i = 0; i < 2; i++) {
        const int s = i ? 7 : 3;
        sig[i] = final_dice("ms", s, "sigmoid");
        d[i] = final_dice("ms", s, "softmax") - sig[i];
    }
    const double mean = 0.5 * (d[0] + d[1]), sd = fabs(d[0] - d[1]) / sqrt(2.0), half = 12.7062047 * sd / sqrt(2.0);
    char want[160];
    snprintf(want, sizeof want, "| final test Dice | %.4f ± %.4f |", 0.5 * (sig[0] + sig[1]),
             fabs(sig[0] - sig[1]) / sqrt(2.0));
    const char *md = slurp(path("ms/report.md"));
    cr_expect_neq(strstr(md, want), NULL, "expected '%s' in:\n%s", want, md);
    snprintf(want, sizeof want, "%+.4f [%.4f, %.4f]", mean, mean - half, mean + half);
    cr_expect_neq(strstr(md, want), NULL, "expected '%s' in:\n%s", want, md);
    cr_expect_neq(strstr(md, "| 7 | softmax |"), NULL, "%s", md);
    cr_expect_neq(strstr(md, "**Final test Dice: "), NULL, "%s", md);
    /* rebuilt from the logs alone */
    cr_assert_eq(remove(path("ms/report.md")), 0);
    cr_assert_eq(run("--report-only --overlays 0 --data %s --out %s", path("ds"), path("ms")), 0, "%s", output);
    md = slurp(path("ms/report.md"));
    cr_expect_neq(strstr(md, want), NULL, "--report-only: expected '%s' in:\n%s", want, md);
    cr_expect_neq(strstr(md, "over 2 seeds"), NULL, "%s", md);
    /* bad lists */
    cr_expect_eq(run("--seeds 1,1"), 2, "%s", output);
    cr_expect_eq(run("--seeds 1,"), 2, "%s", output);
    cr_expect_eq(run("--seeds -1"), 2, "%s", output);
    cr_expect_eq(run("--seeds 1,2 --seed 3"), 2, "%s", output);
    cr_expect_neq(strstr(output, "not both"), NULL, "%s", output);
}

Test(unet_drive_data, one_seed_of_seeds_trains_like_seed)
{
    make_dataset("ds", true);
    cr_assert_eq(run(TINY " --head sigmoid --epochs 1 --seeds 5 --data %s --out %s", path("ds"), path("a")), 0, "%s",
                 output);
    cr_assert_eq(run(TINY " --head sigmoid --epochs 1 --seed 5 --data %s --out %s", path("ds"), path("b")), 0, "%s",
                 output);
    char va[64], vb[64];
    log_field(path("a/seed_5/sigmoid/log.jsonl"), "train_loss", va, sizeof va);
    log_field(path("b/sigmoid/log.jsonl"), "train_loss", vb, sizeof vb);
    cr_expect_str_eq(va, vb);
    log_field(path("a/seed_5/sigmoid/log.jsonl"), "test_loss", va, sizeof va);
    log_field(path("b/sigmoid/log.jsonl"), "test_loss", vb, sizeof vb);
    cr_expect_str_eq(va, vb);
}

Test(unet_drive_data, bad_folders_fail_naming_the_file)
{
    make_dataset("d1", true);
    cr_assert_eq(remove(path("d1/training/labels/b.png")), 0);
    cr_expect_eq(run(TINY " --epochs 1 --data %s --out %s", path("d1"), path("o")), 1, "%s", output);
    cr_expect_neq(strstr(output, "labels: no file named b.* for image b.jpg"), NULL, "%s", output);

    make_dataset("d2", true); /* a label of another size */
    uint8_t bits[30 * 20] = {0};
    write_png_1bit(path("d2/test/labels/t2.png"), 30, 20, bits);
    cr_expect_eq(run(TINY " --epochs 1 --data %s --out %s", path("d2"), path("o")), 1, "%s", output);
    cr_expect_neq(strstr(output, "t2.png is 30 x 20 but its image"), NULL, "%s", output);

    make_dataset("d3", false); /* an unreadable image */
    FILE *f = fopen(path("d3/training/images/c.jpg"), "wb");
    cr_assert_not_null(f);
    fputs("not a JPEG at all", f);
    fclose(f);
    cr_expect_eq(run(TINY " --epochs 1 --data %s --out %s", path("d3"), path("o")), 1, "%s", output);
    cr_expect_neq(strstr(output, "d3/training/images/c.jpg"), NULL, "%s", output);

    cr_assert_eq(mkdir(path("empty"), 0755), 0);
    cr_expect_eq(run(TINY " --epochs 1 --data %s --out %s", path("empty"), path("o")), 1, "%s", output);
    cr_expect_neq(strstr(output, "holds neither DRIVE's layout"), NULL, "%s", output);
}
