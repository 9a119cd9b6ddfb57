/* Helpers for the data/ tests: a temporary directory per test, writing and
 * truncating files, and small encoders (GIF, TIFF) so the tests make their own
 * inputs. Included by tests/test_{image,drive,transforms,mnist,loader}.c. */
#ifndef TG_DATA_TEST_UTIL_H
#define TG_DATA_TEST_UTIL_H

#include <criterion/criterion.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <tiffio.h>
#include <unistd.h>

#include "tapegrad.h"

static char tdu_dir[256];

/* Criterion .init / .fini: a fresh temporary directory, removed afterwards. */
static inline void tdu_setup(void)
{
    snprintf(tdu_dir, sizeof tdu_dir, "/tmp/tg_data_test_XXXXXX");
    cr_assert_not_null(mkdtemp(tdu_dir), "mkdtemp failed");
}

static inline int tdu_remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static inline void tdu_teardown(void)
{
    if (tdu_dir[0]) nftw(tdu_dir, tdu_remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A path inside the temporary directory (static buffers, 8 in rotation). */
static inline const char *tdu_path(const char *name)
{
    static char bufs[8][512];
    static int next = 0;
    char *p = bufs[next++ % 8];
    snprintf(p, 512, "%s/%s", tdu_dir, name);
    return p;
}

static inline void tdu_mkdir(const char *name) { cr_assert_eq(mkdir(tdu_path(name), 0755), 0, "mkdir %s", name); }

static inline void tdu_write(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot write %s", path);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

/* Whole file into a malloc'd buffer. */
static inline uint8_t *tdu_read(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot read %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)len + 1);
    cr_assert_eq(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

/* Copies the first n bytes of src into dst. */
static inline void tdu_truncate_copy(const char *src, const char *dst, size_t n)
{
    size_t len;
    uint8_t *b = tdu_read(src, &len);
    tdu_write(dst, b, n < len ? n : len);
    free(b);
}

/* A GIF with a 128-colour palette (colour i = palette[3*i..]) and pixels < 128,
 * LZW-coded as 8-bit literals with a clear code every 100 pixels. */
static inline void tdu_write_gif(const char *path, int w, int h, const uint8_t *palette, const uint8_t *pixels)
{
    size_t cap = 64 + 384 + (size_t)w * h * 2 + 1024;
    uint8_t *b = malloc(cap), *codes = malloc((size_t)w * h * 2 + 16);
    size_t n = 0, nc = 0;
    memcpy(b, "GIF89a", 6);
    n = 6;
    b[n++] = (uint8_t)w, b[n++] = (uint8_t)(w >> 8), b[n++] = (uint8_t)h, b[n++] = (uint8_t)(h >> 8);
    b[n++] = 0x80 | 0x70 | 6; /* global table of 2^(6+1) = 128 colours */
    b[n++] = 0, b[n++] = 0;
    memcpy(b + n, palette, 384);
    n += 384;
    b[n++] = 0x2C;
    for (int i = 0; i < 4; i++) b[n++] = 0;
    b[n++] = (uint8_t)w, b[n++] = (uint8_t)(w >> 8), b[n++] = (uint8_t)h, b[n++] = (uint8_t)(h >> 8);
    b[n++] = 0;
    b[n++] = 7; /* LZW minimum code size: codes start at 8 bits */
    for (int i = 0; i < w * h; i++) {
        if (i % 100 == 0) codes[nc++] = 128; /* clear */
        codes[nc++] = pixels[i];
    }
    codes[nc++] = 129; /* end of information */
    for (size_t i = 0; i < nc; i += 255) {
        size_t len = nc - i < 255 ? nc - i : 255;
        b[n++] = (uint8_t)len;
        memcpy(b + n, codes + i, len);
        n += len;
    }
    b[n++] = 0;
    b[n++] = 0x3B;
    tdu_write(path, b, n);
    free(b);
    free(codes);
}

/* An 8-bit TIFF through libtiff: LZW, in strips of 3 rows, or in 16x16 tiles. */
static inline void tdu_write_tiff(const char *path, int w, int h, int channels, const uint8_t *px, bool tiled)
{
    TIFF *t = TIFFOpen(path, "w");
    cr_assert_not_null(t);
    TIFFSetField(t, TIFFTAG_IMAGEWIDTH, (uint32_t)w);
    TIFFSetField(t, TIFFTAG_IMAGELENGTH, (uint32_t)h);
    TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, (uint16_t)channels);
    TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, (uint16_t)8);
    TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
    TIFFSetField(t, TIFFTAG_PHOTOMETRIC, channels >= 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK);
    TIFFSetField(t, TIFFTAG_COMPRESSION, COMPRESSION_LZW);
    if (tiled) {
        TIFFSetField(t, TIFFTAG_TILEWIDTH, 16u);
        TIFFSetField(t, TIFFTAG_TILELENGTH, 16u);
        uint8_t *tile = malloc((size_t)16 * 16 * channels);
        for (int ty = 0; ty < h; ty += 16)
            for (int tx = 0; tx < w; tx += 16) {
                memset(tile, 0, (size_t)16 * 16 * channels);
                for (int y = 0; y < 16 && ty + y < h; y++)
                    for (int x = 0; x < 16 && tx + x < w; x++)
                        memcpy(tile + ((size_t)y * 16 + x) * channels,
                               px + ((size_t)(ty + y) * w + tx + x) * channels, (size_t)channels);
                cr_assert(TIFFWriteTile(t, tile, (uint32_t)tx, (uint32_t)ty, 0, 0) >= 0);
            }
        free(tile);
    } else {
        TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, 3u);
        for (int y = 0; y < h; y++)
            cr_assert(TIFFWriteScanline(t, (void *)(px + (size_t)y * w * channels), (uint32_t)y, 0) >= 0);
    }
    TIFFClose(t);
}

/* Repeatable random bytes. */
static inline void tdu_random_bytes(uint8_t *b, size_t n, uint64_t seed)
{
    tg_rng r;
    tg_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)(tg_rng_u64(&r) >> 56);
}

/* Does the last error message contain s? */
#define TDU_EXPECT_ERROR(s) \
    cr_expect(strstr(tg_last_error(), (s)) != NULL, "error \"%s\" should mention \"%s\"", tg_last_error(), (s))

#endif
