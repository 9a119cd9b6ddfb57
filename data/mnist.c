/* MNIST-format IDX files (gzip-compressed or raw, read through zlib's gzread,
 * which passes raw files through) and the MNIST / Fashion-MNIST splits.
 * IDX: two zero bytes, a type byte (0x08: unsigned byte), the number of
 * dimensions, then each dimension as a big-endian uint32, then the data. */
#include "data_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define TG_IDX_MAX_BYTES ((int64_t)1 << 31)
/* The magic number: 00 00, the data type, the number of dimensions. */
#define IDX_MAGIC_BYTES 4
#define IDX_TYPE_UBYTE 0x08
/* gzread takes an unsigned count: read at most this much per call. */
#define GZ_CHUNK_MAX (1u << 30)
/* read_data's first buffer (it doubles as data arrives). */
#define IDX_FIRST_READ ((int64_t)1 << 20)

void tg_idx_free(tg_idx *idx)
{
    if (!idx) return;
    tg_free(idx->data);
    tg_free(idx);
}

/* Reads exactly n bytes; false with an error naming path otherwise. */
static bool gz_read_exact(gzFile f, const char *path, void *out, size_t n, const char *what)
{
    size_t done = 0;
    while (done < n) {
        unsigned chunk = n - done > GZ_CHUNK_MAX ? GZ_CHUNK_MAX : (unsigned)(n - done);
        int got = gzread(f, (uint8_t *)out + done, chunk);
        if (got < 0) {
            int code;
            const char *msg = gzerror(f, &code);
            tg_error(TG_ERR_FORMAT, "%s: corrupt gzip data while reading the %s (%s)", path, what, msg);
            return false;
        }
        if (got == 0) {
            tg_error(TG_ERR_FORMAT, "%s: truncated: the %s needs %zu bytes, the file ends after %zu", path, what, n,
                     done);
            return false;
        }
        done += (size_t)got;
    }
    return true;
}

/* Reads the count data bytes, growing the buffer as they arrive: a header announcing 2 GB in a
 * short (or endless) file costs what the file holds, not what it claims. */
static uint8_t *read_data(gzFile f, const char *path, int64_t count)
{
    size_t cap = count < IDX_FIRST_READ ? (size_t)count : (size_t)IDX_FIRST_READ, done = 0;
    uint8_t *data = tg_malloc(cap);
    while (data) {
        unsigned chunk = cap - done > GZ_CHUNK_MAX ? GZ_CHUNK_MAX : (unsigned)(cap - done);
        int got = gzread(f, data + done, chunk);
        if (got < 0) {
            int code;
            const char *msg = gzerror(f, &code);
            tg_error(TG_ERR_FORMAT, "%s: corrupt gzip data while reading the data (%s)", path, msg);
            break;
        }
        if (got == 0) {
            tg_error(TG_ERR_FORMAT, "%s: truncated: the data needs %lld bytes, the file ends after %zu", path,
                     (long long)count, done);
            break;
        }
        done += (size_t)got;
        if ((int64_t)done == count) return data;
        if (done < cap) continue;
        size_t next = (int64_t)(2 * cap) < count ? 2 * cap : (size_t)count;
        uint8_t *bigger = tg_malloc(next);
        if (bigger) memcpy(bigger, data, done);
        tg_free(data);
        data = bigger;
        cap = next;
    }
    tg_free(data);
    return NULL;
}

/* The magic number: unsigned bytes in 1 to TG_IDX_MAX_DIMS dimensions; sets idx->ndim. */
static bool idx_read_magic(gzFile f, const char *path, tg_idx *idx)
{
    uint8_t head[IDX_MAGIC_BYTES];
    if (!gz_read_exact(f, path, head, sizeof head, "header")) return false;
    if (head[0] != 0 || head[1] != 0) {
        tg_error(TG_ERR_FORMAT, "%s: not an IDX file (magic number starts with %02x %02x, expected 00 00)", path,
                 head[0], head[1]);
        return false;
    }
    if (head[2] != IDX_TYPE_UBYTE) {
        tg_error(TG_ERR_FORMAT, "%s: IDX data type 0x%02x is not supported (only unsigned bytes, 0x%02x)", path,
                 head[2], IDX_TYPE_UBYTE);
        return false;
    }
    if (head[3] < 1 || head[3] > TG_IDX_MAX_DIMS) {
        tg_error(TG_ERR_FORMAT, "%s: IDX file with %d dimensions (supported: 1 to %d)", path, head[3],
                 TG_IDX_MAX_DIMS);
        return false;
    }
    idx->ndim = head[3];
    return true;
}

/* The dimensions (big-endian u32 each, none 0) and their product, at most TG_IDX_MAX_BYTES; sets
 * idx->dims and idx->count. */
static bool idx_read_dims(gzFile f, const char *path, tg_idx *idx)
{
    double total = 1; /* exact below 2^53, enough to tell absurd */
    char dims[128] = "";
    for (int d = 0; d < idx->ndim; d++) {
        uint8_t b[4];
        if (!gz_read_exact(f, path, b, sizeof b, "dimensions")) return false;
        idx->dims[d] = (int64_t)b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3];
        if (idx->dims[d] == 0) {
            tg_error(TG_ERR_FORMAT, "%s: IDX dimension %d is 0 (an empty file)", path, d);
            return false;
        }
        total *= (double)idx->dims[d];
        size_t used = strlen(dims);
        snprintf(dims + used, sizeof dims - used, "%s%lld", d ? " x " : "", (long long)idx->dims[d]);
    }
    if (total > (double)TG_IDX_MAX_BYTES) {
        int worst = 0; /* the dimension that is absurd on its own, else the first (the count) */
        for (int d = 1; d < idx->ndim; d++)
            if (idx->dims[d] > idx->dims[worst]) worst = d;
        tg_error(TG_ERR_FORMAT,
                 "%s: IDX dimensions %s announce %.0f bytes (limit %lld): dimension %d (%lld%s) is absurd or the "
                 "header is corrupt",
                 path, dims, total, (long long)TG_IDX_MAX_BYTES, worst, (long long)idx->dims[worst],
                 worst == 0 ? ", the number of items" : "");
        return false;
    }
    idx->count = (int64_t)total;
    return true;
}

/* After the data: the end of a complete stream, nothing more. */
static bool idx_check_end(gzFile f, const char *path, int64_t count)
{
    uint8_t extra;
    int more = gzread(f, &extra, 1);
    int code;
    const char *msg = gzerror(f, &code);
    if (more == 0 && code != Z_OK) {
        tg_error(TG_ERR_FORMAT, "%s: truncated gzip stream after the data (%s)", path, msg);
        return false;
    }
    if (more != 0) {
        tg_error(TG_ERR_FORMAT, "%s: %s after the %lld data bytes the header announces", path,
                 more < 0 ? msg : "extra bytes", (long long)count);
        return false;
    }
    return true;
}

tg_idx *tg_idx_load(const char *path)
{
    if (!path) {
        tg_error(TG_ERR_ARG, "tg_idx_load: path is NULL");
        return NULL;
    }
    int fd = tg_open_regular(path, NULL); /* never blocks on a FIFO; refuses directories and devices */
    if (fd < 0) return NULL;
    gzFile f = gzdopen(fd, "rb");
    if (!f) {
        tg_error(TG_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    tg_idx *idx = tg_calloc(1, sizeof *idx);
    bool ok = idx && idx_read_magic(f, path, idx) && idx_read_dims(f, path, idx) &&
              (idx->data = read_data(f, path, idx->count)) != NULL && idx_check_end(f, path, idx->count);
    gzclose(f);
    if (ok) return idx;
    tg_idx_free(idx);
    return NULL;
}

const char *tg_mnist_default_dir(void)
{
    const char *env = getenv("TG_MNIST_DIR");
    return env && env[0] ? env : "/usr/share/datasets/fashion-mnist";
}

/* dir/name.gz if it exists, else dir/name; loads it (stat, not fopen: a FIFO must not block). */
static tg_idx *load_either(const char *dir, const char *name)
{
    char path[4096];
    struct stat sb;
    snprintf(path, sizeof path, "%s/%s.gz", dir, name);
    if (stat(path, &sb) != 0) snprintf(path, sizeof path, "%s/%s", dir, name);
    if (stat(path, &sb) != 0) {
        tg_error(TG_ERR_IO, "MNIST: neither %s/%s.gz nor %s/%s exists", dir, name, dir, name);
        return NULL;
    }
    return tg_idx_load(path);
}

tg_status tg_mnist_load(const char *dir, tg_mnist_split split, tg_tensor **images, tg_tensor **labels)
{
    if (!images || !labels) return tg_error(TG_ERR_ARG, "tg_mnist_load: NULL output");
    *images = *labels = NULL;
    if (split != TG_MNIST_TRAIN && split != TG_MNIST_TEST)
        return tg_error(TG_ERR_ARG, "tg_mnist_load: unknown split %d", (int)split);
    if (!dir) dir = tg_mnist_default_dir();
    const char *prefix = split == TG_MNIST_TRAIN ? "train" : "t10k";
    char name[64];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte", prefix);
    tg_idx *im = load_either(dir, name);
    if (!im) return tg_last_status();
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte", prefix);
    tg_idx *lb = load_either(dir, name);
    if (!lb) {
        tg_idx_free(im);
        return tg_last_status();
    }
    tg_status st = TG_OK;
    if (im->ndim != 3)
        st = tg_error(TG_ERR_FORMAT, "MNIST %s: the images file has %d dimensions, expected 3 (N, rows, cols)",
                      dir, im->ndim);
    else if (lb->ndim != 1)
        st = tg_error(TG_ERR_FORMAT, "MNIST %s: the labels file has %d dimensions, expected 1 (N)", dir, lb->ndim);
    else if (im->dims[0] != lb->dims[0])
        st = tg_error(TG_ERR_FORMAT, "MNIST %s: %lld images but %lld labels", dir, (long long)im->dims[0],
                      (long long)lb->dims[0]);
    if (st == TG_OK) {
        *images = tg_tensor_new(TG_F32, TG_SHAPE(im->dims[0], 1, im->dims[1], im->dims[2]));
        *labels = tg_tensor_new(TG_I64, TG_SHAPE(lb->dims[0]));
        if (!*images || !*labels) {
            st = TG_ERR_NOMEM;
        } else {
            for (int64_t i = 0; i < im->count; i++) (*images)->data[i] = (float)im->data[i] / 255.0f;
            for (int64_t i = 0; i < lb->count; i++) (*labels)->idata[i] = lb->data[i];
        }
    }
    if (st != TG_OK) {
        tg_tensor_free(*images);
        tg_tensor_free(*labels);
        *images = *labels = NULL;
    }
    tg_idx_free(im);
    tg_idx_free(lb);
    return st;
}
