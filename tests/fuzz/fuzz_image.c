/* libFuzzer target for tg_image_load, the entry point of every image decoder (TIFF through libtiff,
 * PNG through libpng, GIF, JPEG and BMP through a structural check and stb_image; clang only:
 * scripts/fuzz.sh builds and runs it). Each input is written to a file and loaded; a failure must
 * say what it is, a success must be a well-formed image that the conversions accept. With
 * TG_FUZZ_SEED_DIR set, initialisation first writes small valid images of every format there. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tiffio.h>
#include <unistd.h>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBIW_ASSERT(x) ((void)0)
#include <stb/stb_image_write.h>

#include "tapegrad.h"

static char path[256];

static void seed_tiff(const char *file, int w, int h, int spp, uint16_t compression)
{
    TIFF *t = TIFFOpen(file, "w");
    if (!t) return;
    TIFFSetField(t, TIFFTAG_IMAGEWIDTH, w);
    TIFFSetField(t, TIFFTAG_IMAGELENGTH, h);
    TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, spp);
    TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, 8);
    TIFFSetField(t, TIFFTAG_PHOTOMETRIC, spp == 1 ? PHOTOMETRIC_MINISBLACK : PHOTOMETRIC_RGB);
    TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
    TIFFSetField(t, TIFFTAG_COMPRESSION, compression);
    TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, 2);
    uint8_t row[64];
    for (int y = 0; y < h; y++) {
        for (int i = 0; i < w * spp; i++) row[i] = (uint8_t)(y * 40 + i * 9);
        TIFFWriteScanline(t, row, (uint32_t)y, 0);
    }
    TIFFClose(t);
}

/* A w x h GIF with a 4-colour palette; LZW codes of 3 bits, a clear code every 2 pixels. */
static void seed_gif(const char *file, int w, int h)
{
    uint8_t b[512];
    size_t n = 0;
    memcpy(b, "GIF89a", 6), n = 6;
    b[n++] = (uint8_t)w, b[n++] = 0, b[n++] = (uint8_t)h, b[n++] = 0;
    b[n++] = 0x81, b[n++] = 0, b[n++] = 0; /* global table of 4 colours */
    const uint8_t pal[12] = {0, 0, 0, 255, 255, 255, 200, 30, 30, 20, 90, 220};
    memcpy(b + n, pal, 12), n += 12;
    b[n++] = 0x2C;
    memset(b + n, 0, 4), n += 4;
    b[n++] = (uint8_t)w, b[n++] = 0, b[n++] = (uint8_t)h, b[n++] = 0, b[n++] = 0;
    b[n++] = 2; /* LZW minimum code size */
    uint8_t codes[256];
    int nc = 0;
    for (int i = 0; i < w * h; i++) {
        if (i % 2 == 0) codes[nc++] = 4; /* clear */
        codes[nc++] = (uint8_t)((i * 7 + i / w) % 4);
    }
    codes[nc++] = 5; /* end */
    uint8_t data[256] = {0};
    int bits = 0;
    for (int i = 0; i < nc; i++, bits += 3)
        for (int k = 0; k < 3; k++)
            if (codes[i] >> k & 1) data[(bits + k) / 8] |= (uint8_t)(1 << ((bits + k) % 8));
    int len = (bits + 7) / 8;
    b[n++] = (uint8_t)len;
    memcpy(b + n, data, (size_t)len), n += (size_t)len;
    b[n++] = 0, b[n++] = 0x3B;
    FILE *f = fopen(file, "wb");
    if (!f) return;
    fwrite(b, 1, n, f);
    fclose(f);
}

static void seeds(const char *dir)
{
    char file[512];
    uint8_t px[8 * 6 * 4];
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)(i * 13);
    for (int c = 1; c <= 4; c++) {
        tg_image img = {8, 6, c, px};
        snprintf(file, sizeof file, "%s/png_%d.png", dir, c);
        tg_image_save_png(&img, file);
    }
    snprintf(file, sizeof file, "%s/rgb.jpg", dir);
    stbi_write_jpg(file, 8, 6, 3, px, 80);
    snprintf(file, sizeof file, "%s/gray.jpg", dir);
    stbi_write_jpg(file, 8, 6, 1, px, 80);
    snprintf(file, sizeof file, "%s/rgb.bmp", dir);
    stbi_write_bmp(file, 5, 3, 3, px);
    snprintf(file, sizeof file, "%s/gray.tif", dir);
    seed_tiff(file, 5, 4, 1, COMPRESSION_NONE);
    snprintf(file, sizeof file, "%s/rgb_lzw.tif", dir);
    seed_tiff(file, 5, 4, 3, COMPRESSION_LZW);
    snprintf(file, sizeof file, "%s/rgb_deflate.tif", dir);
    seed_tiff(file, 6, 3, 3, COMPRESSION_ADOBE_DEFLATE);
    snprintf(file, sizeof file, "%s/palette.gif", dir);
    seed_gif(file, 4, 3);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    snprintf(path, sizeof path, "/tmp/tg_fuzz_image_%d", (int)getpid());
    TIFFSetWarningHandler(NULL);
    const char *dir = getenv("TG_FUZZ_SEED_DIR");
    if (dir) seeds(dir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    tg_image *img = tg_image_load(path);
    if (!img) {
        if (strlen(tg_last_error()) == 0) abort(); /* an error must say what it is */
        return 0;
    }
    if (img->width < 1 || img->height < 1 || img->width > TG_IMAGE_MAX_SIDE || img->height > TG_IMAGE_MAX_SIDE ||
        (int64_t)img->width * img->height > TG_IMAGE_MAX_PIXELS || img->channels < 1 || img->channels > 4 ||
        !img->data)
        abort();
    tg_image *g = tg_image_to_gray(img), *rgb = tg_image_to_rgb(img);
    if (!g || !rgb) abort();
    unsigned sum = 0; /* every byte is read: MSan-free check that the buffers are whole */
    size_t n = (size_t)img->width * img->height;
    for (size_t i = 0; i < n; i++) sum += g->data[i] + rgb->data[3 * i + 2];
    if (sum == 0xFFFFFFFFu) fprintf(stderr, " ");
    tg_image_free(g);
    tg_image_free(rgb);
    tg_image_free(img);
    return 0;
}
