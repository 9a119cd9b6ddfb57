/* examples/mnist given bad MNIST-format sets (issue 13, items 17-19), made here as small IDX
 * files: 32x32 images overflowed a 28x28 batch (ASan heap-buffer-overflow), a label above 9 made
 * --predict read past the class names (UBSan, then a segfault) and training end in a garbled
 * message, and an --out under a regular file leaked the loaded sets (LeakSanitizer). */
#include "data_test_util.h"
#include "test_support.h"

TestSuite(mnist_bad, .init = tdu_setup, .fini = tdu_teardown, .timeout = 300);

static void write_idx(const char *name, int ndim, const uint32_t *dims, const uint8_t *data)
{
    size_t count = 1, n = 0;
    for (int d = 0; d < ndim; d++) count *= dims[d];
    uint8_t *buf = malloc(4 + 4 * (size_t)ndim + count);
    buf[n++] = 0, buf[n++] = 0, buf[n++] = 0x08, buf[n++] = (uint8_t)ndim;
    for (int d = 0; d < ndim; d++)
        buf[n++] = dims[d] >> 24, buf[n++] = dims[d] >> 16, buf[n++] = dims[d] >> 8, buf[n++] = (uint8_t)dims[d];
    memcpy(buf + n, data, count);
    tdu_write(tdu_path(name), buf, n + count);
    free(buf);
}

/* A split of n images of side x side (class k: a bright row band at k) with labels i % 10,
 * except that label `bad_at` (if >= 0) is bad_label. */
static void write_split(const char *sub, const char *prefix, int n, int side, int bad_at, int bad_label)
{
    uint8_t *px = calloc((size_t)n * side * side, 1), lb[256];
    for (int i = 0; i < n; i++) {
        lb[i] = (uint8_t)(i == bad_at ? bad_label : i % 10);
        for (int c = 0; c < side; c++) px[(size_t)i * side * side + (size_t)(2 * (i % 10)) * side + c] = 250;
    }
    char name[256];
    snprintf(name, sizeof name, "%s/%s-images-idx3-ubyte", sub, prefix);
    write_idx(name, 3, (uint32_t[]){(uint32_t)n, (uint32_t)side, (uint32_t)side}, px);
    snprintf(name, sizeof name, "%s/%s-labels-idx1-ubyte", sub, prefix);
    write_idx(name, 1, (uint32_t[]){(uint32_t)n}, lb);
    free(px);
}

static int run_mnist(const char *args, char *out, size_t n)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "timeout 120 %s/mnist %s", TG_BIN_DIR, args);
    return tgt_run_capture(cmd, out, n);
}

static char out[1 << 16];

Test(mnist_bad, images_of_another_size_are_refused_naming_the_file)
{
    tdu_mkdir("d");
    write_split("d", "train", 40, 32, -1, 0);
    write_split("d", "t10k", 10, 32, -1, 0);
    char args[1024];
    for (int model = 0; model < 2; model++) {
        snprintf(args, sizeof args, "--model %s --epochs 1 --batch 16 --data %s/d --out %s/o", model ? "cnn" : "mlp",
                 tdu_dir, tdu_dir);
        cr_expect_eq(run_mnist(args, out, sizeof out), 1, "%s", out);
        cr_expect(strstr(out, "train-images-idx3-ubyte[.gz]: the images are 32 x 32; the mlp and cnn models take "
                              "28 x 28") != NULL, "%s", out);
        cr_expect(strstr(out, "Sanitizer") == NULL, "%s", out);
    }
}

Test(mnist_bad, labels_outside_the_classes_are_refused_when_loading)
{
    tdu_mkdir("d");
    write_split("d", "train", 40, 28, 17, 12);
    write_split("d", "t10k", 10, 28, -1, 0);
    char args[1024];
    snprintf(args, sizeof args, "--model mlp --epochs 1 --batch 16 --data %s/d --out %s/o", tdu_dir, tdu_dir);
    cr_expect_eq(run_mnist(args, out, sizeof out), 1, "%s", out);
    cr_expect(strstr(out, "train-labels-idx1-ubyte[.gz]: label 12 of item 17 is not one of the 10 classes (0..9)") !=
                  NULL, "%s", out);
    cr_expect(strstr(out, "earlier error: tg_backward") == NULL, "garbled: %s", out);

    /* --predict with a checkpoint trained on good data and a test set whose label 3 is 200 */
    write_split("d", "train", 40, 28, -1, 0);
    cr_assert_eq(run_mnist(args, out, sizeof out), 0, "%s", out);
    write_split("d", "t10k", 10, 28, 3, 200);
    snprintf(args, sizeof args, "--predict %s/o/model.safetensors --index 3 --data %s/d", tdu_dir, tdu_dir);
    cr_expect_eq(run_mnist(args, out, sizeof out), 1, "%s", out);
    cr_expect(strstr(out, "t10k-labels-idx1-ubyte[.gz]: label 200 of item 3") != NULL, "%s", out);
    cr_expect(strstr(out, "runtime error") == NULL && strstr(out, "Sanitizer") == NULL, "%s", out);
    snprintf(args, sizeof args, "--eval %s/o/model.safetensors --data %s/d", tdu_dir, tdu_dir);
    cr_expect_eq(run_mnist(args, out, sizeof out), 1, "%s", out);
    cr_expect(strstr(out, "label 200 of item 3") != NULL, "%s", out);
}

/* In the sanitizer build LeakSanitizer reported the loaded sets (1.1 MB with Fashion-MNIST's). */
Test(mnist_bad, early_errors_in_training_leak_nothing)
{
    tdu_mkdir("d");
    write_split("d", "train", 40, 28, -1, 0);
    write_split("d", "t10k", 10, 28, -1, 0);
    tdu_write(tdu_path("file"), "x", 1);
    char args[1024];
    snprintf(args, sizeof args, "--model mlp --epochs 1 --data %s/d --out %s/file/sub", tdu_dir, tdu_dir);
    cr_expect_eq(run_mnist(args, out, sizeof out), 1, "%s", out);
    cr_expect(strstr(out, "cannot create the output directory") != NULL, "%s", out);
    cr_expect(strstr(out, "LeakSanitizer") == NULL, "%s", out);
    /* log.jsonl cannot be written: a directory in its place */
    cr_assert_eq(mkdir(tdu_path("o"), 0755), 0);
    cr_assert_eq(mkdir(tdu_path("o/log.jsonl"), 0755), 0);
    snprintf(args, sizeof args, "--model mlp --epochs 1 --data %s/d --out %s/o", tdu_dir, tdu_dir);
    cr_expect_eq(run_mnist(args, out, sizeof out), 1, "%s", out);
    cr_expect(strstr(out, "log.jsonl") != NULL, "%s", out);
    cr_expect(strstr(out, "LeakSanitizer") == NULL, "%s", out);
    /* the test set is missing: the training set was loaded and must be freed */
    remove(tdu_path("d/t10k-images-idx3-ubyte"));
    cr_expect_eq(run_mnist(args, out, sizeof out), 1, "%s", out);
    cr_expect(strstr(out, "t10k-images-idx3-ubyte") != NULL, "%s", out);
    cr_expect(strstr(out, "LeakSanitizer") == NULL, "%s", out);
}
