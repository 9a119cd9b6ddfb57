/* data/mnist: IDX files written here byte by byte (raw and gzip), Fashion-MNIST
 * from Debian's package when installed, and corrupt files. */
#include <zlib.h>

#include "data_test_util.h"
#include "dataset_skip.h"

TestSuite(idx, .init = tdu_setup, .fini = tdu_teardown);

/* An IDX header + data in a buffer: type 0x08, dims big-endian. */
static size_t idx_bytes(uint8_t *out, int ndim, const uint32_t *dims, const uint8_t *data)
{
    size_t n = 0, count = 1;
    out[n++] = 0, out[n++] = 0, out[n++] = 0x08, out[n++] = (uint8_t)ndim;
    for (int d = 0; d < ndim; d++) {
        out[n++] = dims[d] >> 24, out[n++] = dims[d] >> 16, out[n++] = dims[d] >> 8, out[n++] = (uint8_t)dims[d];
        count *= dims[d];
    }
    memcpy(out + n, data, count);
    return n + count;
}

static void write_gz(const char *path, const uint8_t *b, size_t n)
{
    gzFile f = gzopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(gzwrite(f, b, (unsigned)n), (int)n);
    gzclose(f);
}

/* N images of R x C with pixel bytes (i*7 + k) and labels i % 10, under the given prefix. */
static void write_split(const char *prefix, int n, int rows, int cols, bool gz)
{
    uint8_t px[4096], lb[256], buf[8192];
    for (int i = 0; i < n * rows * cols; i++) px[i] = (uint8_t)(i * 7 + i / (rows * cols));
    for (int i = 0; i < n; i++) lb[i] = (uint8_t)(i % 10);
    char name[128];
    size_t len = idx_bytes(buf, 3, (uint32_t[]){(uint32_t)n, (uint32_t)rows, (uint32_t)cols}, px);
    snprintf(name, sizeof name, "%s-images-idx3-ubyte%s", prefix, gz ? ".gz" : "");
    if (gz)
        write_gz(tdu_path(name), buf, len);
    else
        tdu_write(tdu_path(name), buf, len);
    len = idx_bytes(buf, 1, (uint32_t[]){(uint32_t)n}, lb);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte%s", prefix, gz ? ".gz" : "");
    if (gz)
        write_gz(tdu_path(name), buf, len);
    else
        tdu_write(tdu_path(name), buf, len);
}

Test(idx, mnist_round_trip_raw_and_gzip)
{
    write_split("train", 6, 4, 3, false);
    write_split("t10k", 5, 2, 7, true);
    tg_tensor *x, *y;
    cr_assert_eq(tg_mnist_load(tdu_dir, TG_MNIST_TRAIN, &x, &y), TG_OK, "%s", tg_last_error());
    cr_expect(x->ndim == 4 && x->shape[0] == 6 && x->shape[1] == 1 && x->shape[2] == 4 && x->shape[3] == 3);
    cr_expect(y->ndim == 1 && y->shape[0] == 6 && y->dtype == TG_I64);
    for (int i = 0; i < 72; i++) cr_assert_eq(x->data[i], (float)(uint8_t)(i * 7 + i / 12) / 255.0f);
    for (int i = 0; i < 6; i++) cr_assert_eq(y->idata[i], i % 10);
    tg_tensor_free(x);
    tg_tensor_free(y);
    cr_assert_eq(tg_mnist_load(tdu_dir, TG_MNIST_TEST, &x, &y), TG_OK, "%s", tg_last_error());
    cr_expect(x->shape[0] == 5 && x->shape[2] == 2 && x->shape[3] == 7);
    cr_expect_eq(x->data[69], (float)(uint8_t)(69 * 7 + 69 / 14) / 255.0f);
    tg_tensor_free(x);
    tg_tensor_free(y);
}

Test(idx, generic_idx_load)
{
    uint8_t data[24], buf[64];
    for (int i = 0; i < 24; i++) data[i] = (uint8_t)(200 + i);
    size_t n = idx_bytes(buf, 4, (uint32_t[]){2, 3, 2, 2}, data);
    write_gz(tdu_path("a.gz"), buf, n);
    tg_idx *idx = tg_idx_load(tdu_path("a.gz"));
    cr_assert_not_null(idx, "%s", tg_last_error());
    cr_expect_eq(idx->ndim, 4);
    cr_expect_eq(idx->dims[1], 3);
    cr_expect_eq(idx->count, 24);
    cr_expect_eq(memcmp(idx->data, data, 24), 0);
    tg_idx_free(idx);
}

/* Writes buf[0..n) as both raw and gzip and expects both to fail mentioning `what`. */
static void expect_bad(const uint8_t *buf, size_t n, const char *what)
{
    const char *raw = tdu_path("bad.idx"), *gz = tdu_path("bad.idx.gz");
    tdu_write(raw, buf, n);
    write_gz(gz, buf, n);
    const char *paths[2] = {raw, gz};
    for (int k = 0; k < 2; k++) {
        tg_clear_error();
        tg_idx *idx = tg_idx_load(paths[k]);
        cr_expect_null(idx, "%s accepted (%s)", paths[k], what);
        tg_idx_free(idx);
        cr_expect_eq(tg_last_status(), TG_ERR_FORMAT);
        TDU_EXPECT_ERROR(what);
        TDU_EXPECT_ERROR(paths[k]);
    }
}

Test(idx, corrupt_files)
{
    uint8_t data[16] = {0}, buf[64];
    size_t n = idx_bytes(buf, 2, (uint32_t[]){4, 4}, data);
    buf[1] = 8;
    expect_bad(buf, n, "not an IDX file");
    buf[1] = 0, buf[2] = 0x0D;
    expect_bad(buf, n, "0x0d is not supported");
    buf[2] = 0x08, buf[3] = 0;
    expect_bad(buf, n, "0 dimensions");
    buf[3] = 9;
    expect_bad(buf, n, "9 dimensions");
    buf[3] = 2, buf[7] = 0;
    expect_bad(buf, n, "dimension 0 is 0");
    buf[7] = 4;
    expect_bad(buf, n - 3, "truncated");
    expect_bad(buf, 2, "truncated");
    expect_bad(buf, 9, "truncated");
    buf[n] = 1;
    expect_bad(buf, n + 1, "extra bytes");
    const uint8_t huge[8] = {0, 0, 8, 1, 0xFF, 0xFF, 0xFF, 0xFF};
    expect_bad(huge, 8, "absurd");
    tdu_write(tdu_path("empty"), "", 0);
    cr_expect_null(tg_idx_load(tdu_path("empty")));
    TDU_EXPECT_ERROR("truncated");
    cr_expect_null(tg_idx_load(tdu_path("missing")));
    cr_expect_eq(tg_last_status(), TG_ERR_IO);
    TDU_EXPECT_ERROR("missing");
}

Test(idx, truncated_and_garbled_gzip)
{
    uint8_t data[3000], buf[3100];
    for (int i = 0; i < 3000; i++) data[i] = (uint8_t)(i * i);
    size_t n = idx_bytes(buf, 1, (uint32_t[]){3000}, data);
    write_gz(tdu_path("full.gz"), buf, n);
    size_t len;
    uint8_t *gz = tdu_read(tdu_path("full.gz"), &len);
    size_t cuts[] = {len / 2, len - 4, len - 1};
    for (int k = 0; k < 3; k++) {
        tdu_write(tdu_path("cut.gz"), gz, cuts[k]);
        cr_expect_null(tg_idx_load(tdu_path("cut.gz")), "gzip cut to %zu of %zu accepted", cuts[k], len);
        TDU_EXPECT_ERROR("cut.gz");
    }
    gz[len / 2] ^= 0x55;
    gz[len / 2 + 1] ^= 0xAA;
    tdu_write(tdu_path("garbled.gz"), gz, len);
    cr_expect_null(tg_idx_load(tdu_path("garbled.gz")));
    TDU_EXPECT_ERROR("garbled.gz");
    free(gz);
}

Test(idx, mnist_inconsistent_pairs)
{
    write_split("train", 6, 4, 3, false);
    uint8_t lb[5] = {0}, buf[64];
    size_t n = idx_bytes(buf, 1, (uint32_t[]){5}, lb);
    tdu_write(tdu_path("train-labels-idx1-ubyte"), buf, n);
    tg_tensor *x = (tg_tensor *)1, *y = (tg_tensor *)1;
    cr_expect_eq(tg_mnist_load(tdu_dir, TG_MNIST_TRAIN, &x, &y), TG_ERR_FORMAT);
    cr_expect(x == NULL && y == NULL);
    TDU_EXPECT_ERROR("6 images but 5 labels");
    tdu_write(tdu_path("train-images-idx3-ubyte"), buf, n);
    cr_expect_eq(tg_mnist_load(tdu_dir, TG_MNIST_TRAIN, &x, &y), TG_ERR_FORMAT);
    TDU_EXPECT_ERROR("expected 3");
    cr_expect_eq(tg_mnist_load(tdu_dir, TG_MNIST_TEST, &x, &y), TG_ERR_IO);
    TDU_EXPECT_ERROR("t10k-images-idx3-ubyte.gz");
    cr_expect_eq(tg_mnist_load(tdu_dir, (tg_mnist_split)3, &x, &y), TG_ERR_ARG);
}

Test(fashion_mnist, debian_package_test_split)
{
    const char *dir = tg_mnist_default_dir();
    char probe[512];
    snprintf(probe, sizeof probe, "%s/t10k-images-idx3-ubyte.gz", dir);
    struct stat st;
    if (stat(probe, &st) != 0) cr_skip_test("Fashion-MNIST not found in %s", dir);
    tg_tensor *x, *y;
    cr_assert_eq(tg_mnist_load(NULL, TG_MNIST_TEST, &x, &y), TG_OK, "%s", tg_last_error());
    cr_expect(x->shape[0] == 10000 && x->shape[1] == 1 && x->shape[2] == 28 && x->shape[3] == 28);
    int64_t per_class[10] = {0};
    for (int i = 0; i < 10000; i++) {
        cr_assert(y->idata[i] >= 0 && y->idata[i] < 10);
        per_class[y->idata[i]]++;
    }
    for (int c = 0; c < 10; c++) cr_expect_eq(per_class[c], 1000, "class %d", c); /* the test split is balanced */
    cr_expect_eq(y->idata[0], 9); /* the first test image is an ankle boot */
    float lo = 1, hi = 0;
    for (int64_t i = 0; i < x->numel; i++) lo = x->data[i] < lo ? x->data[i] : lo, hi = x->data[i] > hi ? x->data[i] : hi;
    cr_expect(lo == 0.0f && hi == 1.0f);
    tg_tensor_free(x);
    tg_tensor_free(y);
}
