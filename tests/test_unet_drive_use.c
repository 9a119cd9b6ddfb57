/* Using unet_drive (issue 14 items 1, 4, 5): presets with flags overriding them and the effective
 * configuration in log.jsonl and report.md; --predict (mask and probability PNGs, head and base
 * width from the checkpoint, the mask honoured, bad inputs); a run interrupted by SIGINT prints
 * the command that resumes, and resuming ends with the same checkpoint bytes as an uninterrupted
 * run. Tiny runs (base width 4, crop 64, 2 training images, 1 test image). Skips without DRIVE. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tapegrad.h"
#include "test_support.h"
#include "dataset_skip.h"

#define UNET_BIN TG_BIN_DIR "/unet_drive"
#define TINY "--limit-train 2 --limit-test 1 --base-c 4 --crop 64 --batch-size 2 --overlays 0 --threads 2"

static char tmpdir[256];
static char output[1 << 16];

/* A shell command line (printf-style), output captured in `output`; its exit code. */
#define sh(...) tgt_run_capturef(output, sizeof output, __VA_ARGS__)


static void make_tmp(void) { tgt_make_tmpdir(tmpdir, sizeof tmpdir, "unet_use"); }
static void remove_tmp(void) { tgt_remove_tree(tmpdir); }


TestSuite(unet_drive_use, .init = make_tmp, .fini = remove_tmp, .timeout = 300);

/* ---- issue 14: presets, --predict, interrupt and resume ---- */

/* Issue 14.1: --preset sets the defaults, flags override them, log.jsonl and the report say what ran. */
Test(unet_drive_use, presets_and_flags_give_the_effective_configuration)
{
    tgt_need_drive();
    cr_assert_eq(sh(UNET_BIN " " TINY " --preset cpu --head sigmoid --stop-after 1 --out %s/pc", tmpdir), 0, "%s",
                 output);
    char path[600], v[64];
    snprintf(path, sizeof path, "%s/pc/sigmoid/log.jsonl", tmpdir);
    long n;
    char *log = tgt_read_whole(path, &n);
    cr_assert_not_null(log);
    const char *cfg = strstr(log, "\"config\": {");
    cr_assert_not_null(cfg, "no effective configuration in %s:\n%s", path, log);
    tgt_json_field(cfg, "preset", v, sizeof v);
    cr_expect_str_eq(v, "\"cpu\"");
    tgt_json_field(cfg, "epochs", v, sizeof v); /* from the preset */
    cr_expect_str_eq(v, "150");
    tgt_json_field(cfg, "base_c", v, sizeof v); /* from the flag */
    cr_expect_str_eq(v, "4");
    tgt_json_field(cfg, "crop", v, sizeof v);
    cr_expect_str_eq(v, "64");
    free(log);
    snprintf(path, sizeof path, "%s/pc/report.md", tmpdir);
    char *md = tgt_read_whole(path, &n);
    cr_assert_not_null(md);
    cr_expect_neq(strstr(md, "Effective configuration"), NULL, "%s", md);
    cr_expect_neq(strstr(md, "\"preset\":\"cpu\""), NULL, "%s", md);
    free(md);
    cr_expect_eq(sh(UNET_BIN " --preset gpu"), 2, "%s", output);
    cr_expect_neq(strstr(output, "--preset must be cpu or paper"), NULL, "%s", output);
    cr_expect_eq(sh(UNET_BIN " --help"), 0);
    cr_expect_neq(strstr(output, "base width 32, crop 480"), NULL, "%s", output);
}

static tg_image *load_png(const char *fmt, const char *dir)
{
    char path[600];
    snprintf(path, sizeof path, fmt, dir);
    tg_image *img = tg_image_load(path);
    cr_assert_not_null(img, "%s: %s", path, tg_last_error());
    return img;
}

/* Issue 14.4: --predict writes the mask and the probability; head and base width come from the checkpoint. */
Test(unet_drive_use, predict_segments_one_image)
{
    tgt_need_drive();
    cr_assert_eq(sh(UNET_BIN " " TINY " --epochs 1 --out %s/pr", tmpdir), 0, "%s", output);
    const char *root = tg_drive_default_root();
    for (int h = 0; h < 2; h++) {
        const char *head = h ? "softmax" : "sigmoid";
        cr_assert_eq(sh(UNET_BIN " --predict %s/pr/%s/best.safetensors --image %s/test/images/01_test.tif "
                        "--mask %s/test/mask/01_test_mask.gif --out %s/pred.png --prob %s/prob.png",
                        tmpdir, head, root, root, tmpdir, tmpdir), 0, "%s", output);
        char want[64];
        snprintf(want, sizeof want, "%s head, base width 4", head);
        cr_expect_neq(strstr(output, want), NULL, "%s", output);
        cr_assert_eq(sh(UNET_BIN " --predict %s/pr/%s/best.safetensors --image %s/test/images/01_test.tif "
                        "--out %s/pred_all.png --prob %s/prob_all.png", tmpdir, head, root, tmpdir, tmpdir), 0, "%s",
                     output);
        tg_image *pred = load_png("%s/pred.png", tmpdir), *prob = load_png("%s/prob.png", tmpdir);
        tg_image *prob_all = load_png("%s/prob_all.png", tmpdir), *pred_all = load_png("%s/pred_all.png", tmpdir);
        char mpath[1024];
        snprintf(mpath, sizeof mpath, "%s/test/mask/01_test_mask.gif", root);
        tg_image *mask_rgb = tg_image_load(mpath), *mask = tg_image_to_gray(mask_rgb);
        cr_assert(pred->width == 565 && pred->height == 584 && pred->channels == 1, "%dx%dx%d", pred->width,
                  pred->height, pred->channels);
        cr_assert(prob->width == 565 && prob->height == 584);
        int64_t outside_nonzero_all = 0;
        for (int64_t i = 0; i < 565 * 584; i++) {
            cr_assert(pred->data[i] == 0 || pred->data[i] == 255, "pixel %lld is %d", (long long)i, pred->data[i]);
            cr_assert(pred->data[i] == 0 || prob->data[i] >= 127, "vessel pixel %lld has probability %d",
                      (long long)i, prob->data[i]);
            if (mask->data[i] == 0) {
                cr_assert(pred->data[i] == 0 && prob->data[i] == 0, "pixel %lld outside the mask is set", (long long)i);
                outside_nonzero_all += prob_all->data[i] != 0;
            } else {
                cr_assert(pred->data[i] == pred_all->data[i] && prob->data[i] == prob_all->data[i],
                          "inside the mask, the mask changed pixel %lld", (long long)i);
            }
        }
        cr_expect_gt(outside_nonzero_all, 0, "without --mask the pixels outside it have probabilities too");
        tg_image_free(pred), tg_image_free(prob), tg_image_free(prob_all), tg_image_free(pred_all);
        tg_image_free(mask_rgb), tg_image_free(mask);
    }
    /* bad inputs: a clear message naming the file, exit 1 */
    cr_expect_eq(sh(UNET_BIN " --predict %s/pr/sigmoid/best.safetensors --image %s/none.png --out %s/x.png", tmpdir,
                    tmpdir, tmpdir), 1, "%s", output);
    cr_expect_neq(strstr(output, "none.png"), NULL, "%s", output);
    char small[600];
    snprintf(small, sizeof small, "%s/small_mask.png", tmpdir);
    tg_image *sm = tg_image_new(40, 30, 1);
    memset(sm->data, 255, 40 * 30);
    cr_assert_eq(tg_image_save_png(sm, small), TG_OK);
    tg_image_free(sm);
    cr_expect_eq(sh(UNET_BIN " --predict %s/pr/sigmoid/best.safetensors --image %s/test/images/01_test.tif "
                    "--mask %s --out %s/x.png", tmpdir, root, small, tmpdir), 1, "%s", output);
    cr_expect_neq(strstr(output, "small_mask.png is 40x30"), NULL, "%s", output);
    cr_expect_eq(sh(UNET_BIN " --predict %s/pr/sigmoid/best.safetensors --out %s/x.png", tmpdir, tmpdir), 2, "%s",
                 output);
}

/* Issue 14.5: SIGINT ends the run cleanly with the command to resume; resuming ends exactly as
 * an uninterrupted run (the same checkpoint bytes). */
Test(unet_drive_use, an_interrupted_run_resumes_to_the_same_checkpoint)
{
    tgt_need_drive();
    cr_assert_eq(sh(UNET_BIN " " TINY " --head sigmoid --epochs 5 --out %s/whole", tmpdir), 0, "%s", output);
    /* interrupt once epoch 1 is logged (during epoch 2 or later) */
    int rc = sh("(" UNET_BIN " " TINY " --head sigmoid --epochs 5 --out %s/int & pid=$!; "
                "while [ ! -s %s/int/sigmoid/log.jsonl ]; do sleep 0.02; done; kill -INT $pid; wait $pid; "
                "echo \"exit=$?\")", tmpdir, tmpdir);
    cr_assert_eq(rc, 0, "%s", output);
    cr_expect_neq(strstr(output, "exit=130"), NULL, "SIGINT gives exit code 130:\n%s", output);
    const char *hint = strstr(output, "Resume with:\n  ");
    cr_assert_not_null(hint, "no resume command:\n%s", output);
    char cmd[4096];
    hint += strlen("Resume with:\n  ");
    size_t k = strcspn(hint, "\n");
    cr_assert_lt(k, sizeof cmd);
    memcpy(cmd, hint, k);
    cmd[k] = '\0';
    cr_expect_neq(strstr(cmd, "--resume"), NULL, "%s", cmd);
    char last[600];
    snprintf(last, sizeof last, "%s/int/sigmoid/last.safetensors", tmpdir);
    tg_unet *m = tg_unet_new(3, 1, 4, NULL);
    tg_ckpt_opts o = {0}; /* strict by default */
    cr_expect_eq(tg_checkpoint_load(last, m->params, &o, NULL), TG_OK, "the kept checkpoint: %s", tg_last_error());
    tg_unet_free(m);
    cr_assert_eq(sh("%s", cmd), 0, "%s", output);
    char a[600], b[600];
    snprintf(a, sizeof a, "%s/whole/sigmoid/last.safetensors", tmpdir);
    cr_expect(tgt_same_file(a, last), "the resumed run's last.safetensors differs from the uninterrupted run's");
    snprintf(a, sizeof a, "%s/whole/sigmoid/best.safetensors", tmpdir);
    snprintf(b, sizeof b, "%s/int/sigmoid/best.safetensors", tmpdir);
    cr_expect(tgt_same_file(a, b), "best.safetensors differs");
}
