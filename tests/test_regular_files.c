/* Issue 13 item 12: every reader refuses a path that is not a regular file (FIFO, directory,
 * device) with a message, and never blocks: a FIFO opened with plain fopen() waits for a writer
 * forever (`unet_drive --eval FIFO` hung). One helper, tg_open_regular, behind all of them. The
 * command-line cases run under `timeout`, so the old code fails the test instead of hanging it. */
#include "data_test_util.h"
#include "test_support.h"
#include "dataset_skip.h"

TestSuite(regular, .init = tdu_setup, .fini = tdu_teardown, .timeout = 120);

static const char *make_fifo(const char *name)
{
    const char *p = tdu_path(name);
    cr_assert_eq(mkfifo(p, 0600), 0, "mkfifo %s", p);
    return p;
}

Test(regular, helper_refuses_fifo_directory_and_device_at_once)
{
    const char *fifo = make_fifo("pipe");
    cr_expect_eq(tg_open_regular(fifo, "reader"), -1);
    TDU_EXPECT_ERROR("reader: cannot read '");
    TDU_EXPECT_ERROR("pipe': it is a FIFO (named pipe), not a regular file");
    cr_expect_null(tg_fopen_regular(tdu_dir, NULL));
    TDU_EXPECT_ERROR("it is a directory");
    cr_expect_null(tg_fopen_regular("/dev/null", NULL));
    TDU_EXPECT_ERROR("'/dev/null': it is a character device");
    cr_expect_null(tg_fopen_regular(tdu_path("missing"), NULL));
    TDU_EXPECT_ERROR("No such file");
    tdu_write(tdu_path("plain"), "abc", 3);
    FILE *f = tg_fopen_regular(tdu_path("plain"), NULL);
    cr_assert_not_null(f, "%s", tg_last_error());
    char buf[4] = "";
    cr_expect_eq(fread(buf, 1, 4, f), 3); /* blocking mode restored: an ordinary stream */
    cr_expect_str_eq(buf, "abc");
    fclose(f);
}

Test(regular, library_readers_refuse_a_fifo)
{
    const char *fifo = make_fifo("pipe");
    tg_param_list *l = tg_param_list_new();
    tg_param_list_add_param(l, "w", TG_SHAPE(2));
    cr_expect_neq(tg_checkpoint_load(fifo, l, NULL, NULL), TG_OK);
    TDU_EXPECT_ERROR("tg_checkpoint_load: cannot read");
    TDU_EXPECT_ERROR("FIFO");
    cr_expect_neq(tg_checkpoint_load(tdu_dir, l, NULL, NULL), TG_OK);
    TDU_EXPECT_ERROR("directory");
    tg_param_list_free(l);
    cr_expect_null(tg_image_load(fifo));
    TDU_EXPECT_ERROR("FIFO");
    cr_expect_null(tg_image_load(tdu_dir));
    TDU_EXPECT_ERROR("directory");
    cr_expect_null(tg_idx_load(fifo));
    TDU_EXPECT_ERROR("FIFO");
    cr_expect_null(tg_idx_load("/dev/zero"));
    TDU_EXPECT_ERROR("character device");
    /* MNIST: a FIFO in place of a split's file (the .gz probe used to fopen it and block) */
    make_fifo("train-images-idx3-ubyte.gz");
    tg_tensor *x, *y;
    cr_expect_neq(tg_mnist_load(tdu_dir, TG_MNIST_TRAIN, &x, &y), TG_OK);
    TDU_EXPECT_ERROR("train-images-idx3-ubyte.gz': it is a FIFO");
}

/* The programs: exit 1 with the message, within the timeout. */
static void expect_refused(const char *cmd, const char *what)
{
    static char out[1 << 14];
    char full[2048];
    snprintf(full, sizeof full, "timeout 60 %s", cmd);
    int rc = tgt_run_capture(full, out, sizeof out);
    cr_expect_neq(rc, 124, "%s blocked (killed by timeout)", cmd);
    cr_expect_eq(rc, 1, "%s -> %d\n%s", cmd, rc, out);
    cr_expect(strstr(out, what) != NULL, "%s: expected '%s' in\n%s", cmd, what, out);
    cr_expect(strstr(out, "Sanitizer") == NULL, "%s", out);
}

Test(regular, programs_refuse_a_fifo_without_blocking)
{
    const char *fifo = make_fifo("ckpt.safetensors");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s/unet_drive --eval %s", TG_BIN_DIR, fifo);
    expect_refused(cmd, "FIFO (named pipe), not a regular file");
    snprintf(cmd, sizeof cmd, "%s/mnist --eval %s", TG_BIN_DIR, fifo);
    expect_refused(cmd, "FIFO (named pipe), not a regular file");
    snprintf(cmd, sizeof cmd, "%s/mnist --data %s --out %s/o", TG_BIN_DIR, tdu_dir, tdu_dir);
    make_fifo("train-images-idx3-ubyte");
    expect_refused(cmd, "train-images-idx3-ubyte': it is a FIFO");
    snprintf(cmd, sizeof cmd, "%s/losslab --jsonl < %s", TG_BIN_DIR, tdu_dir);
    expect_refused(cmd, "which is a directory");
}

/* --report-only reads each head's log.jsonl (DRIVE's test images are opened first: skipped without). */
Test(regular, unet_drive_report_refuses_a_fifo_log)
{
    char probe[4096];
    struct stat st;
    snprintf(probe, sizeof probe, "%s/test/images", tg_drive_default_root());
    if (stat(probe, &st) != 0) cr_skip_test("DRIVE not found at %s", tg_drive_default_root());
    tdu_mkdir("sigmoid");
    make_fifo("sigmoid/log.jsonl");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s/unet_drive --report-only --out %s", TG_BIN_DIR, tdu_dir);
    expect_refused(cmd, "log.jsonl': it is a FIFO");
}
