/* unet_drive's run management (issue 13 items 4, 6-11, 13-15): a
 * diverged run ends with an error and never saves or evaluates a non-finite model; stale temp
 * files of killed saves are removed; --resume refuses a corrupt log, a missing checkpoint and
 * changed settings; an output directory in use is refused; a file-size limit gives a message;
 * an impossible memory need is refused up front; long paths work; a cut curves.png is reported.
 * Tiny runs (base width 4, crop 64, 2 training images, 1 test image). Skips without DRIVE. */
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


static void make_tmp(void) { tgt_make_tmpdir(tmpdir, sizeof tmpdir, "unet_run"); }
static void remove_tmp(void) { tgt_remove_tree(tmpdir); }

static bool exists(const char *fmt, ...)
{
    char path[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof path, fmt, ap);
    va_end(ap);
    struct stat st;
    return stat(path, &st) == 0;
}


static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

TestSuite(unet_drive_run, .init = make_tmp, .fini = remove_tmp, .timeout = 300);

/* Issue 13.4: --lr 1e308 used to exit 0 with all-infinite last and best checkpoints. */
Test(unet_drive_run, a_diverged_run_fails_and_saves_no_model)
{
    tgt_need_drive();
    int rc = sh(UNET_BIN " " TINY " --head sigmoid --epochs 1 --lr 1e308 --out %s/d", tmpdir);
    cr_expect_eq(rc, 1, "%s", output);
    cr_expect(strstr(output, "diverged") || strstr(output, "loss became"), "%s", output);
    cr_expect(!exists("%s/d/sigmoid/last.safetensors", tmpdir), "a diverged model was saved as last");
    cr_expect(!exists("%s/d/sigmoid/best.safetensors", tmpdir), "a diverged model was saved as best");
}

/* Issue 13.4: --eval of a checkpoint with non-finite weights used to print "Dice 0.0000". */
Test(unet_drive_run, eval_refuses_non_finite_weights)
{
    tgt_need_drive();
    cr_assert_eq(sh(UNET_BIN " " TINY " --head softmax --epochs 1 --out %s/e", tmpdir), 0, "%s", output);
    char path[600], bad[600];
    snprintf(path, sizeof path, "%s/e/softmax/best.safetensors", tmpdir);
    snprintf(bad, sizeof bad, "%s/e/nan.safetensors", tmpdir);
    tg_unet *m = tg_unet_new(3, 2, 4, NULL);
    tg_meta meta = {0};
    tg_ckpt_opts o = {.meta = &meta}; /* strict by default */
    cr_assert_eq(tg_checkpoint_load(path, m->params, &o, NULL), TG_OK, "%s", tg_last_error());
    m->params->entries[0].tensor->data[0] = NAN; /* in_conv.0.weight */
    cr_assert_eq(tg_checkpoint_save(bad, m->params, &o), TG_OK, "%s", tg_last_error());
    tg_meta_clear(&meta);
    tg_unet_free(m);
    cr_expect_eq(sh(UNET_BIN " --eval %s --limit-test 1", bad), 1, "%s", output);
    cr_expect_neq(strstr(output, "NaN or infinite"), NULL, "%s", output);
    cr_expect_eq(strstr(output, "Dice"), NULL, "a non-finite model was evaluated:\n%s", output);
}

/* Issue 13.6: a save killed half-way leaves last.safetensors.tmp.XXXXXX; the next run removes it. */
Test(unet_drive_run, stale_temp_files_are_removed)
{
    tgt_need_drive();
    cr_assert_eq(sh("mkdir -p %s/s/sigmoid", tmpdir), 0);
    char p1[600], p2[600];
    snprintf(p1, sizeof p1, "%s/s/sigmoid/last.safetensors.tmp.Ab12Cd", tmpdir);
    snprintf(p2, sizeof p2, "%s/s/sigmoid/notes.txt", tmpdir);
    write_file(p1, "half a checkpoint");
    write_file(p2, "mine");
    cr_assert_eq(sh(UNET_BIN " " TINY " --head sigmoid --epochs 2 --stop-after 1 --out %s/s", tmpdir), 0, "%s", output);
    cr_expect(!exists("%s", p1), "the stale temp file is still there");
    cr_expect(exists("%s", p2), "an unrelated file was removed");
    cr_expect_neq(strstr(output, "removed"), NULL, "%s", output);
    /* --resume cleans up too */
    snprintf(p1, sizeof p1, "%s/s/sigmoid/best.safetensors.tmp.Zz99Yy", tmpdir);
    write_file(p1, "half a checkpoint");
    cr_assert_eq(sh(UNET_BIN " " TINY " --head sigmoid --epochs 2 --resume --out %s/s", tmpdir), 0, "%s", output);
    cr_expect(!exists("%s", p1), "the stale temp file is still there after --resume");
}

/* Issue 13.7: a corrupt line in log.jsonl used to shrink the history silently and let a worse
 * model overwrite best.safetensors. */
Test(unet_drive_run, resume_refuses_a_corrupt_log)
{
    tgt_need_drive();
    cr_assert_eq(sh(UNET_BIN " " TINY " --head sigmoid --epochs 4 --stop-after 2 --out %s/c", tmpdir), 0, "%s", output);
    char log[600], best[600], last[600], keep_best[600], keep_last[600];
    snprintf(log, sizeof log, "%s/c/sigmoid/log.jsonl", tmpdir);
    snprintf(best, sizeof best, "%s/c/sigmoid/best.safetensors", tmpdir);
    snprintf(last, sizeof last, "%s/c/sigmoid/last.safetensors", tmpdir);
    snprintf(keep_best, sizeof keep_best, "%s/best.copy", tmpdir);
    snprintf(keep_last, sizeof keep_last, "%s/last.copy", tmpdir);
    cr_assert_eq(sh("cp %s %s && cp %s %s", best, keep_best, last, keep_last), 0);
    long n;
    char *text = tgt_read_whole(log, &n);
    char *second = strchr(text, '\n') + 1;
    char *corrupt = malloc((size_t)n + 16);
    snprintf(corrupt, (size_t)n + 16, "{\"head\": \"sig\x01%s", second); /* line 1 cut and garbled */
    write_file(log, corrupt);
    free(corrupt);
    free(text);
    cr_expect_eq(sh(UNET_BIN " " TINY " --head sigmoid --epochs 4 --resume --out %s/c", tmpdir), 1, "%s", output);
    cr_expect_neq(strstr(output, "log.jsonl:1"), NULL, "the message names the line:\n%s", output);
    cr_expect(tgt_same_file(best, keep_best) && tgt_same_file(last, keep_last), "a checkpoint changed");
    /* a log that lost its lines (the checkpoint says epoch 2) is refused too */
    write_file(log, "");
    cr_expect_eq(sh(UNET_BIN " " TINY " --head sigmoid --epochs 4 --resume --out %s/c", tmpdir), 1, "%s", output);
    cr_expect_neq(strstr(output, "epoch 2"), NULL, "%s", output);
    cr_expect(tgt_same_file(best, keep_best), "best.safetensors changed");
    /* --report-only names the line as well */
    write_file(log, "{\"head\": \"sigmoid\", \"epoch\": 1}\nnot json\n");
    cr_expect_eq(sh(UNET_BIN " --report-only --out %s/c", tmpdir), 1, "%s", output);
    cr_expect_neq(strstr(output, "log.jsonl:2"), NULL, "%s", output);
}

/* Issue 13.8: --resume with no checkpoint used to start afresh and rewrite log.jsonl. */
Test(unet_drive_run, resume_without_a_checkpoint_fails)
{
    tgt_need_drive();
    cr_expect_eq(sh(UNET_BIN " " TINY " --head sigmoid --epochs 2 --resume --out %s/r", tmpdir), 1, "%s", output);
    cr_expect_neq(strstr(output, "nothing to resume"), NULL, "%s", output);
    cr_expect(!exists("%s/r/sigmoid/log.jsonl", tmpdir), "a fresh run was started");
    /* a head whose checkpoint was removed but whose log has epochs is refused */
    cr_assert_eq(sh(UNET_BIN " " TINY " --epochs 2 --stop-after 1 --out %s/r", tmpdir), 0, "%s", output);
    cr_assert_eq(sh("rm %s/r/softmax/last.safetensors", tmpdir), 0);
    cr_expect_eq(sh(UNET_BIN " " TINY " --epochs 2 --resume --out %s/r", tmpdir), 1, "%s", output);
    cr_expect_neq(strstr(output, "softmax/last.safetensors"), NULL, "%s", output);
}

/* Issue 13.9: --resume used to accept another crop, batch size, lr or seed. */
Test(unet_drive_run, resume_refuses_other_settings_unless_allowed)
{
    tgt_need_drive();
    cr_assert_eq(sh(UNET_BIN " " TINY " --head softmax --epochs 3 --stop-after 1 --out %s/o", tmpdir), 0, "%s", output);
    cr_expect_eq(sh(UNET_BIN " " TINY " --head softmax --epochs 3 --lr 0.02 --seed 5 --crop 80 --resume --out %s/o",
                    tmpdir), 2, "%s", output);
    cr_expect_neq(strstr(output, "lr: checkpoint 0.01"), NULL, "%s", output);
    cr_expect_neq(strstr(output, "seed: checkpoint 0, now 5"), NULL, "%s", output);
    cr_expect_neq(strstr(output, "crop: checkpoint 64, now 80"), NULL, "%s", output);
    cr_expect_eq(sh(UNET_BIN " " TINY " --head softmax --epochs 3 --lr 0.02 --resume --allow-config-change --out %s/o",
                    tmpdir), 0, "%s", output);
    cr_expect_neq(strstr(output, "changed settings"), NULL, "%s", output);
}

/* Issue 13.10: two runs on one --out used to interleave their logs and checkpoints. */
Test(unet_drive_run, an_output_directory_in_use_is_refused)
{
    tgt_need_drive();
    char dir[600], lock[700];
    snprintf(dir, sizeof dir, "%s/l", tmpdir);
    snprintf(lock, sizeof lock, "%s/.lock", dir);
    cr_assert_eq(mkdir(dir, 0777), 0);
    int fd = open(lock, O_RDWR | O_CREAT, 0666);
    cr_assert(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0);
    dprintf(fd, "%ld\n", (long)getpid());
    cr_expect_eq(sh(UNET_BIN " " TINY " --head sigmoid --epochs 1 --out %s", dir), 1, "%s", output);
    char want[128];
    snprintf(want, sizeof want, "is in use by pid %ld", (long)getpid());
    cr_expect_neq(strstr(output, want), NULL, "%s", output);
    cr_expect(!exists("%s/sigmoid/log.jsonl", dir), "the second run wrote into the directory");
    close(fd); /* released: the directory can be used again */
    cr_expect_eq(sh(UNET_BIN " " TINY " --head sigmoid --epochs 1 --out %s", dir), 0, "%s", output);
}

/* Issue 13.11: under ulimit -f the run used to be killed by SIGXFSZ, leaving a temp file. */
Test(unet_drive_run, a_file_size_limit_ends_with_a_message)
{
    tgt_need_drive();
    /* 100 blocks (50-100 KB): the log fits, a checkpoint (over 250 KB) does not */
    int rc = sh("ulimit -f 100 && " UNET_BIN " " TINY " --head sigmoid --epochs 1 --out %s/f", tmpdir);
    cr_expect_eq(rc, 1, "%s", output);
    cr_expect_neq(strstr(output, "File too large"), NULL, "%s", output);
    cr_expect_eq(sh("ls %s/f/sigmoid | grep -c tmp", tmpdir), 1, "a temp file is left: %s", output);
}

/* Issue 13.11 holds for every example (one helper, examples/common's cli_ignore_file_size_signal): mnist too. */
Test(unet_drive_run, a_file_size_limit_ends_with_a_message_in_mnist_too)
{
    struct stat st;
    if (stat(tg_mnist_default_dir(), &st) != 0) cr_skip_test("Fashion-MNIST not installed (scripts/setup.sh)");
    int rc = sh("ulimit -f 20 && " TG_BIN_DIR "/mnist --model mlp --epochs 1 --limit 256 --threads 2 --out %s/mn", tmpdir);
    cr_expect_eq(rc, 1, "%s", output);
    cr_expect_neq(strstr(output, "File too large"), NULL, "%s", output);
    cr_expect_eq(sh("ls %s/mn | grep tmp", tmpdir), 1, "a temp file is left: %s", output);
}

/* Issue 13.13: --crop 4096 used to grow until the kernel's OOM killer ended the run. */
Test(unet_drive_run, an_impossible_memory_need_is_refused)
{
    tgt_need_drive();
    cr_expect_eq(sh(UNET_BIN " " TINY " --crop 4096 --base-c 64 --epochs 1 --out %s/m", tmpdir), 1, "%s", output);
    cr_expect_neq(strstr(output, "GB (estimate)"), NULL, "%s", output);
    cr_expect(!exists("%s/m", tmpdir), "the run started");
}

/* Issue 13.14: an --out longer than 1100 bytes used to be cut (files written elsewhere). */
Test(unet_drive_run, long_output_paths_work)
{
    tgt_need_drive();
    char dir[2048];
    int n = snprintf(dir, sizeof dir, "%s", tmpdir);
    for (int i = 0; i < 13; i++) n += snprintf(dir + n, sizeof dir - (size_t)n, "/%02d%.97d", i, 0);
    cr_assert_gt(n, 1250);
    cr_assert_eq(sh(UNET_BIN " --limit-train 2 --limit-test 1 --base-c 4 --crop 64 --batch-size 2 --overlays 1 "
                    "--threads 2 --head sigmoid --epochs 1 --out %s", dir), 0, "%s", output);
    const char *files[] = {"sigmoid/log.jsonl", "sigmoid/last.safetensors", "sigmoid/best.safetensors", "report.md",
                           "overlay_01.png"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        cr_expect(exists("%s/%s", dir, files[i]), "%s missing under the long --out", files[i]);
}

/* Issue 13.15: a curves.png cut short by a full disk used to be reported as written. */
Test(unet_drive_run, a_cut_curves_png_is_reported)
{
    tgt_need_drive();
    cr_assert_eq(sh(UNET_BIN " " TINY " --head sigmoid --epochs 1 --out %s/p", tmpdir), 0, "%s", output);
    if (!strstr(output, "curves: ")) cr_skip_test("no PLplot: curves.png is not drawn");
    cr_assert_eq(sh("rm %s/p/curves.png", tmpdir), 0);
    /* 20 blocks (10-20 KB): report.md fits, curves.png (about 50 KB) does not */
    int rc = sh("ulimit -f 20 && " UNET_BIN " --report-only --overlays 0 --out %s/p", tmpdir);
    cr_expect_eq(rc, 1, "%s", output);
    cr_expect_neq(strstr(output, "curves.png"), NULL, "%s", output);
    cr_expect_eq(strstr(output, "\ncurves: "), NULL, "reported as written:\n%s", output);
    cr_expect(!exists("%s/p/curves.png", tmpdir), "a cut curves.png is left");
}
