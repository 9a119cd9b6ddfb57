/* examples/unet_drive end to end on the real DRIVE images (a tiny model and crop, a few images):
 * both heads train and the report, logs, checkpoints and overlay appear; an interrupted run
 * resumed with --resume ends exactly like an uninterrupted one; 1 and 2 threads train the same
 * bits; --eval reproduces the logged Dice;
 * bad flags and a missing dataset fail clearly. Skips without DRIVE (see README). */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "tapegrad.h"
#include "test_support.h"
#include "dataset_skip.h"

#define UNET_BIN TG_BIN_DIR "/unet_drive"
#define TINY "--limit-train 2 --limit-test 1 --base-c 4 --crop 64 --batch-size 2 --overlays 1 --threads 2"

static char tmpdir[256];
static char output[1 << 16];

/* unet_drive with these arguments (printf-style), output captured in `output`; its exit code. */
#define run(...) tgt_run_capturef(output, sizeof output, UNET_BIN " " __VA_ARGS__)


static void make_tmp(void) { tgt_make_tmpdir(tmpdir, sizeof tmpdir, "unet_test"); }
static void remove_tmp(void) { tgt_remove_tree(tmpdir); }

static bool exists(const char *dir, const char *name)
{
    char path[1200];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) == 0 && st.st_size > 0;
}

/* The last line of a file (static buffer). */
static const char *last_line(const char *path, int *lines)
{
    static char last[4096];
    char line[4096];
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot read %s", path);
    *lines = 0;
    last[0] = '\0';
    while (fgets(line, sizeof line, f)) {
        (*lines)++;
        memcpy(last, line, sizeof last);
    }
    fclose(f);
    return last;
}

TestSuite(unet_drive_example, .init = make_tmp, .fini = remove_tmp, .timeout = 300);

Test(unet_drive_example, both_heads_train_and_report)
{
    tgt_need_drive();
    cr_assert_eq(run(TINY " --epochs 2 --out %s/run", tmpdir), 0, "%s", output);
    char dir[600];
    snprintf(dir, sizeof dir, "%s/run", tmpdir);
    const char *files[] = {"sigmoid/log.jsonl",        "softmax/log.jsonl",        "sigmoid/last.safetensors",
                           "softmax/last.safetensors", "sigmoid/best.safetensors", "softmax/best.safetensors",
                           "report.md",                "overlay_01.png"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        cr_expect(exists(dir, files[i]), "%s/%s missing; output:\n%s", dir, files[i], output);
    for (int h = 0; h < 2; h++) {
        char path[700], v[64];
        int lines;
        snprintf(path, sizeof path, "%s/%s/log.jsonl", dir, h ? "softmax" : "sigmoid");
        const char *line = last_line(path, &lines);
        cr_expect_eq(lines, 2, "%s: one line per epoch", path);
        tgt_json_field(line, "num_classes", v, sizeof v);
        cr_expect_eq(atoi(v), h ? 2 : 1);
        tgt_json_field(line, "dice", v, sizeof v);
        cr_expect(atof(v) >= 0.0 && atof(v) <= 1.0, "Dice %s", v);
        tgt_json_field(line, "data_wait_share", v, sizeof v);
        cr_expect(atof(v) >= 0.0 && atof(v) < 1.0, "wait share %s", v);
    }
    cr_expect_neq(strstr(output, "final test Dice"), NULL, "the table is printed:\n%s", output);
    cr_expect_neq(strstr(output, "flush-to-zero: on"), NULL, "%s", output);
    /* the report can be rebuilt from the logs alone */
    cr_assert_eq(run("--report-only --overlays 0 --out %s/run", tmpdir), 0, "%s", output);
    cr_expect_neq(strstr(output, "report: "), NULL, "%s", output);
}

Test(unet_drive_example, resume_continues_exactly)
{
    tgt_need_drive();
    cr_assert_eq(run(TINY " --head sigmoid --epochs 3 --overlays 0 --out %s/a", tmpdir), 0, "%s", output);
    cr_assert_eq(run(TINY " --head sigmoid --epochs 3 --overlays 0 --stop-after 1 --out %s/b", tmpdir), 0, "%s", output);
    cr_assert_eq(run(TINY " --head sigmoid --epochs 3 --overlays 0 --resume --out %s/b", tmpdir), 0, "%s", output);
    cr_expect_neq(strstr(output, "resuming after epoch 1 of 3"), NULL, "%s", output);
    char pa[600], pb[600];
    snprintf(pa, sizeof pa, "%s/a/sigmoid/log.jsonl", tmpdir);
    snprintf(pb, sizeof pb, "%s/b/sigmoid/log.jsonl", tmpdir);
    int la, lb;
    char line_a[4096];
    snprintf(line_a, sizeof line_a, "%s", last_line(pa, &la));
    const char *line_b = last_line(pb, &lb);
    cr_expect_eq(la, 3);
    cr_expect_eq(lb, 3, "the resumed log keeps epoch 1 and adds 2 and 3");
    const char *keys[] = {"epoch", "lr", "train_loss", "test_loss", "dice", "miou"};
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
        char va[64], vb[64];
        tgt_json_field(line_a, keys[k], va, sizeof va);
        tgt_json_field(line_b, keys[k], vb, sizeof vb);
        cr_expect_str_eq(va, vb, "%s differs after resuming: %s vs %s", keys[k], va, vb);
    }
    /* resuming with other settings is refused */
    cr_expect_eq(run(TINY " --head sigmoid --epochs 5 --resume --out %s/b", tmpdir), 2, "%s", output);
    cr_expect_neq(strstr(output, "other settings"), NULL, "%s", output);
}

/* Whole file contents (static buffer per call site via out). */
static long slurp(const char *path, char *out, long cap)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot read %s", path);
    long n = (long)fread(out, 1, (size_t)cap, f);
    cr_assert(feof(f), "%s is larger than %ld bytes", path, cap);
    fclose(f);
    return n;
}

Test(unet_drive_example, one_and_two_threads_train_the_same_bits)
{
    tgt_need_drive();
    cr_assert_eq(run(TINY " --head softmax --epochs 2 --overlays 0 --out %s/t2", tmpdir), 0, "%s", output);
    cr_assert_eq(run(TINY " --head softmax --epochs 2 --overlays 0 --threads 1 --out %s/t1", tmpdir), 0, "%s", output);
    static char a[1 << 20], b[1 << 20];
    char pa[600], pb[600];
    snprintf(pa, sizeof pa, "%s/t2/softmax/last.safetensors", tmpdir);
    snprintf(pb, sizeof pb, "%s/t1/softmax/last.safetensors", tmpdir);
    const long na = slurp(pa, a, sizeof a), nb = slurp(pb, b, sizeof b);
    cr_assert_gt(na, 1000);
    cr_expect(na == nb && memcmp(a, b, (size_t)na) == 0, "checkpoints differ between 2 threads and 1 thread");
}

Test(unet_drive_example, eval_reproduces_the_logged_dice)
{
    tgt_need_drive();
    cr_assert_eq(run(TINY " --head sigmoid --epochs 1 --overlays 0 --out %s/e", tmpdir), 0, "%s", output);
    char path[600], v[64];
    int lines;
    snprintf(path, sizeof path, "%s/e/sigmoid/log.jsonl", tmpdir);
    tgt_json_field(last_line(path, &lines), "dice", v, sizeof v);
    cr_assert_eq(run("--eval %s/e/sigmoid/best.safetensors --limit-test 1 --threads 2", tmpdir), 0, "%s", output);
    char want[80];
    snprintf(want, sizeof want, "Dice %.4f", atof(v));
    cr_expect_neq(strstr(output, want), NULL, "expected '%s' in:\n%s", want, output);
    cr_expect_eq(run("--eval %s/nope.safetensors", tmpdir), 1, "%s", output);
    cr_expect_neq(strstr(output, "nope.safetensors"), NULL, "%s", output);
}

Test(unet_drive_example, bad_input_fails_clearly)
{
    cr_expect_eq(run("--bogus 1"), 2);
    cr_expect_neq(strstr(output, "unknown option '--bogus'"), NULL, "%s", output);
    cr_expect_eq(run("--head sigmod"), 2);
    cr_expect_neq(strstr(output, "--head must be both, sigmoid or softmax"), NULL, "%s", output);
    cr_expect_eq(run("--epochs 0"), 2);
    cr_expect_eq(run("--class-weight 1"), 2);
    cr_expect_neq(strstr(output, "W0,W1"), NULL, "%s", output);
    cr_expect_eq(run("--crop"), 2);
    cr_expect_neq(strstr(output, "needs a value"), NULL, "%s", output);
    cr_expect_eq(run("--data %s/missing --epochs 1", tmpdir), 1);
    cr_expect_neq(strstr(output, "no DRIVE dataset at"), NULL, "%s", output);
    tgt_need_drive();
    cr_expect_eq(run("--report-only --out %s/empty", tmpdir), 1, "%s", output);
    cr_expect_neq(strstr(output, "no logs in"), NULL, "%s", output);
}
