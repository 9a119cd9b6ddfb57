/* libFuzzer target for tg_idx_load, plain and gzip (clang only; scripts/fuzz.sh builds and runs it).
 * Each input is loaded twice: as the file's bytes (gzip seeds exercise zlib's inflate, plain ones
 * the raw path) and gzip-compressed by zlib. Unless the input itself starts with the gzip magic
 * byte, both loads must agree: both fail with a message, or both succeed with the same dimensions
 * and data, whose size is the product of the dimensions and no larger than the input. With
 * TG_FUZZ_SEED_DIR set, initialisation first writes small valid IDX files there, plain and gzip. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "tapegrad.h"

static char raw_path[256], gz_path[256];

static void write_gz(const char *path, const uint8_t *data, size_t size)
{
    gzFile g = gzopen(path, "wb");
    if (!g) abort();
    if (size && gzwrite(g, data, (unsigned)size) != (int)size) abort();
    gzclose(g);
}

static void write_raw(const char *path, const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    fwrite(data, 1, size, f);
    fclose(f);
}

/* An IDX file of ndim dimensions dims (data: a counter). */
static void seed(const char *dir, const char *name, int ndim, const uint32_t *dims)
{
    uint8_t buf[4096];
    size_t n = 0, count = 1;
    buf[n++] = 0, buf[n++] = 0, buf[n++] = 0x08, buf[n++] = (uint8_t)ndim;
    for (int d = 0; d < ndim; d++) {
        for (int k = 3; k >= 0; k--) buf[n++] = (uint8_t)(dims[d] >> (8 * k));
        count *= dims[d];
    }
    for (size_t i = 0; i < count; i++) buf[n++] = (uint8_t)(i * 37);
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    write_raw(path, buf, n);
    snprintf(path, sizeof path, "%s/%s.gz", dir, name);
    write_gz(path, buf, n);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    snprintf(raw_path, sizeof raw_path, "/tmp/tg_fuzz_idx_%d", (int)getpid());
    snprintf(gz_path, sizeof gz_path, "/tmp/tg_fuzz_idx_%d.gz", (int)getpid());
    const char *dir = getenv("TG_FUZZ_SEED_DIR");
    if (dir) {
        seed(dir, "labels-idx1", 1, (const uint32_t[]){10});
        seed(dir, "images-idx3", 3, (const uint32_t[]){3, 4, 5});
        seed(dir, "images-idx4", 4, (const uint32_t[]){2, 1, 3, 3});
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    write_raw(raw_path, data, size);
    write_gz(gz_path, data, size);
    tg_idx *a = tg_idx_load(raw_path);
    if (!a && strlen(tg_last_error()) == 0) abort(); /* an error must say what it is */
    tg_clear_error();
    tg_idx *b = tg_idx_load(gz_path);
    if (!b && strlen(tg_last_error()) == 0) abort();
    for (int k = 0; k < 2; k++) {
        tg_idx *x = k ? b : a;
        if (!x) continue;
        int64_t count = 1;
        for (int d = 0; d < x->ndim; d++) count *= x->dims[d];
        if (x->ndim < 1 || x->ndim > TG_IDX_MAX_DIMS || count != x->count) abort();
        if (k == 1 && (size_t)x->count > size) abort(); /* the gzip copy holds exactly the input */
    }
    if (size && data[0] != 0x1f) { /* not itself gzip: both views are the same bytes */
        if (!a != !b) abort();
        if (a && (a->ndim != b->ndim || memcmp(a->dims, b->dims, sizeof a->dims) != 0 ||
                  memcmp(a->data, b->data, (size_t)a->count) != 0))
            abort();
    }
    tg_idx_free(a);
    tg_idx_free(b);
    return 0;
}
