/* Images: the struct, loading by content (TIFF, PNG, GIF, JPEG, BMP), PIL's
 * 'L' and 'RGB' conversions, flips, padding and crops. PNG and TIFF decoding
 * live in image_png.c and image_tiff.c; GIF, JPEG and BMP go through stb_image
 * after a structural check here, because stb_image quietly zero-fills data
 * missing from a truncated file. */
#include "data_internal.h"

#include <errno.h>
#include <stb/stb_image.h>
#include <string.h>

#define TG_MAX_FILE_BYTES ((size_t)1 << 30)

tg_image *tg_image_alloc_checked(const char *path, int64_t width, int64_t height, int channels)
{
    if (width <= 0 || height <= 0 || width > TG_IMAGE_MAX_SIDE || height > TG_IMAGE_MAX_SIDE ||
        width * height > TG_IMAGE_MAX_PIXELS) {
        tg_error(TG_ERR_FORMAT, "%s: image dimensions %lld x %lld are invalid or absurd (limit %d per side, %lld pixels)",
                 path, (long long)width, (long long)height, TG_IMAGE_MAX_SIDE, (long long)TG_IMAGE_MAX_PIXELS);
        return NULL;
    }
    if (channels < 1 || channels > 4) {
        tg_error(TG_ERR_FORMAT, "%s: %d channels (supported: 1 to 4)", path, channels);
        return NULL;
    }
    tg_image *img = tg_malloc(sizeof *img);
    if (!img) return NULL;
    size_t bytes = (size_t)width * (size_t)height * (size_t)channels;
    img->data = tg_calloc(bytes, 1);
    if (!img->data) {
        tg_free(img);
        tg_error(TG_ERR_NOMEM, "%s: out of memory for a %lld x %lld x %d image", path, (long long)width,
                 (long long)height, channels);
        return NULL;
    }
    img->width = (int)width;
    img->height = (int)height;
    img->channels = channels;
    return img;
}

tg_image *tg_image_new(int width, int height, int channels)
{
    return tg_image_alloc_checked("tg_image_new", width, height, channels);
}

void tg_image_free(tg_image *img)
{
    if (!img) return;
    tg_free(img->data);
    tg_free(img);
}

static size_t image_bytes(const tg_image *img)
{
    return (size_t)img->width * (size_t)img->height * (size_t)img->channels;
}

tg_image *tg_image_clone(const tg_image *img)
{
    if (!img) {
        tg_error(TG_ERR_ARG, "tg_image_clone: image is NULL");
        return NULL;
    }
    tg_image *c = tg_image_new(img->width, img->height, img->channels);
    if (c) memcpy(c->data, img->data, image_bytes(img));
    return c;
}

tg_status tg_read_file(const char *path, uint8_t **buf, size_t *n)
{
    *buf = NULL;
    *n = 0;
    if (!path) return tg_error(TG_ERR_ARG, "read: path is NULL");
    FILE *f = tg_fopen_regular(path, NULL); /* never blocks on a FIFO; refuses directories and devices */
    if (!f) return tg_last_status();
    size_t cap = 1 << 16, len = 0;
    uint8_t *data = tg_malloc(cap);
    while (data) {
        if (len == cap) {
            if (cap >= TG_MAX_FILE_BYTES) {
                tg_free(data);
                fclose(f);
                return tg_error(TG_ERR_FORMAT, "%s: file larger than %zu bytes", path, TG_MAX_FILE_BYTES);
            }
            uint8_t *bigger = tg_realloc(data, cap * 2);
            if (!bigger) {
                tg_free(data);
                fclose(f);
                return tg_error(TG_ERR_NOMEM, "%s: out of memory reading the file", path);
            }
            data = bigger;
            cap *= 2;
        }
        size_t got = fread(data + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    if (!data) {
        fclose(f);
        return TG_ERR_NOMEM;
    }
    if (ferror(f)) {
        tg_free(data);
        fclose(f);
        return tg_error(TG_ERR_IO, "%s: read error: %s", path, strerror(errno));
    }
    fclose(f);
    *buf = data;
    *n = len;
    return TG_OK;
}

/* ---- structural checks before stb_image -------------------------------- */

/* GIF (89a): the header and logical screen descriptor (13 bytes, its packed field at byte 10),
 * then blocks, each introduced by one byte, up to the trailer. An image descriptor has 9 bytes
 * after its introducer, its packed field last. A packed field's top bit announces a color table
 * of 3 * 2^(k+1) bytes, k its low 3 bits. */
enum { GIF_SCREEN_END = 13, GIF_SCREEN_PACKED = 10, GIF_IMAGE_DESC_BYTES = 9 };
enum { GIF_EXTENSION = 0x21, GIF_IMAGE = 0x2C, GIF_TRAILER = 0x3B, GIF_HAS_COLOR_TABLE = 0x80 };

static size_t gif_color_table_bytes(uint8_t packed)
{
    return packed & GIF_HAS_COLOR_TABLE ? (size_t)3 << ((packed & 7) + 1) : 0;
}

/* Walks a GIF up to the end of its first image's data. */
static bool gif_check(const char *path, const uint8_t *b, size_t n)
{
    size_t p = GIF_SCREEN_END;
    if (n < p) goto truncated;
    p += gif_color_table_bytes(b[GIF_SCREEN_PACKED]);
    for (;;) {
        if (p >= n) goto truncated;
        uint8_t kind = b[p++];
        if (kind == GIF_EXTENSION) { /* extension: label, then data sub-blocks */
            p++;
            for (;;) {
                if (p >= n) goto truncated;
                uint8_t len = b[p++];
                if (!len) break;
                p += len;
            }
        } else if (kind == GIF_IMAGE) { /* image descriptor, color table, LZW code size, sub-blocks */
            if (p + GIF_IMAGE_DESC_BYTES > n) goto truncated;
            uint8_t packed = b[p + GIF_IMAGE_DESC_BYTES - 1];
            p += GIF_IMAGE_DESC_BYTES;
            p += gif_color_table_bytes(packed);
            p++;
            for (;;) {
                if (p >= n) goto truncated;
                uint8_t len = b[p++];
                if (!len) return true;
                p += len;
            }
        } else if (kind == GIF_TRAILER) {
            tg_error(TG_ERR_FORMAT, "%s: GIF without an image", path);
            return false;
        } else {
            tg_error(TG_ERR_FORMAT, "%s: corrupt GIF (unknown block 0x%02x at byte %zu)", path, kind, p - 1);
            return false;
        }
    }
truncated:
    tg_error(TG_ERR_FORMAT, "%s: truncated GIF (image data ends early; %zu bytes)", path, n);
    return false;
}

/* JPEG markers: 0xFF then a code; start of image, start of scan, end of image. */
enum { JPEG_MARK = 0xFF, JPEG_SOI = 0xD8, JPEG_SOS = 0xDA, JPEG_EOI = 0xD9 };

/* A JPEG needs its end-of-image marker after the first start-of-scan. */
static bool jpeg_check(const char *path, const uint8_t *b, size_t n)
{
    size_t p = 2; /* after SOI */
    while (p + 4 <= n) { /* marker segments up to SOS: marker, 2-byte big-endian length, data */
        if (b[p] != JPEG_MARK) break;
        uint8_t m = b[p + 1];
        if (m == JPEG_MARK) { /* fill byte */
            p++;
            continue;
        }
        size_t len = ((size_t)b[p + 2] << 8) | b[p + 3];
        p += 2 + len;
        if (m == JPEG_SOS) {
            for (; p + 1 < n; p++)
                if (b[p] == JPEG_MARK && b[p + 1] == JPEG_EOI) return true;
            break;
        }
    }
    tg_error(TG_ERR_FORMAT, "%s: truncated or corrupt JPEG (no end-of-image marker after the scan data)", path);
    return false;
}

static uint32_t le32(const uint8_t *b) { return b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24; }

/* An uncompressed BMP must hold all its rows. */
static bool bmp_check(const char *path, const uint8_t *b, size_t n)
{
    if (n < 30) goto truncated;
    uint32_t offset = le32(b + 10), hsize = le32(b + 14);
    int64_t w, h;
    unsigned bpp, compression = 0;
    if (hsize == 12) {
        w = b[18] | b[19] << 8;
        h = b[20] | b[21] << 8;
        bpp = b[24] | b[25] << 8;
    } else {
        if (n < 34) goto truncated;
        w = (int32_t)le32(b + 18);
        h = (int32_t)le32(b + 22);
        bpp = b[28] | b[29] << 8;
        compression = le32(b + 30);
    }
    if (h < 0) h = -h;
    if (w <= 0 || h <= 0 || w > TG_IMAGE_MAX_SIDE || h > TG_IMAGE_MAX_SIDE) {
        tg_error(TG_ERR_FORMAT, "%s: BMP dimensions %lld x %lld are invalid or absurd", path, (long long)w,
                 (long long)h);
        return false;
    }
    if (compression == 0 || compression == 3 || compression == 6) {
        uint64_t row = ((uint64_t)bpp * (uint64_t)w + 31) / 32 * 4;
        if ((uint64_t)offset + row * (uint64_t)h > n) goto truncated;
    }
    return true;
truncated:
    tg_error(TG_ERR_FORMAT, "%s: truncated BMP (%zu bytes)", path, n);
    return false;
}

static tg_image *decode_stb(const char *path, const char *format, const uint8_t *buf, size_t n)
{
    if (n > INT32_MAX) {
        tg_error(TG_ERR_FORMAT, "%s: %s file too large", path, format);
        return NULL;
    }
    int w = 0, h = 0, c = 0;
    if (!stbi_info_from_memory(buf, (int)n, &w, &h, &c)) {
        tg_error(TG_ERR_FORMAT, "%s: corrupt %s (%s)", path, format, stbi_failure_reason());
        return NULL;
    }
    tg_image *probe = tg_image_alloc_checked(path, w, h, 1); /* checks dims before stb allocates */
    if (!probe) return NULL;
    tg_image_free(probe);
    uint8_t *px = stbi_load_from_memory(buf, (int)n, &w, &h, &c, 0);
    if (!px) {
        tg_error(TG_ERR_FORMAT, "%s: corrupt %s (%s)", path, format, stbi_failure_reason());
        return NULL;
    }
    int keep = c;
    if (strcmp(format, "GIF") == 0 && c == 4) { /* palette image: drop alpha unless something is transparent */
        keep = 3;
        for (size_t i = 0; i < (size_t)w * (size_t)h; i++)
            if (px[i * 4 + 3] != 255) {
                keep = 4;
                break;
            }
    }
    tg_image *img = tg_image_alloc_checked(path, w, h, keep);
    if (img) {
        if (keep == c)
            memcpy(img->data, px, image_bytes(img));
        else
            for (size_t i = 0; i < (size_t)w * (size_t)h; i++) memcpy(img->data + i * 3, px + i * 4, 3);
    }
    stbi_image_free(px);
    return img;
}

tg_image *tg_image_load(const char *path)
{
    uint8_t *buf;
    size_t n;
    if (tg_read_file(path, &buf, &n) != TG_OK) return NULL;
    tg_image *img = NULL;
    if (n == 0) {
        tg_error(TG_ERR_FORMAT, "%s: empty file", path);
    } else if (n >= 8 && memcmp(buf, "\x89PNG\r\n\x1a\n", 8) == 0) {
        img = tg_image_decode_png(path, buf, n);
    } else if (n >= 4 && (memcmp(buf, "II*\0", 4) == 0 || memcmp(buf, "MM\0*", 4) == 0 ||
                          memcmp(buf, "II+\0", 4) == 0 || memcmp(buf, "MM\0+", 4) == 0)) {
        img = tg_image_decode_tiff(path, buf, n);
    } else if (n >= 6 && (memcmp(buf, "GIF87a", 6) == 0 || memcmp(buf, "GIF89a", 6) == 0)) {
        if (gif_check(path, buf, n)) img = decode_stb(path, "GIF", buf, n);
    } else if (n >= 3 && buf[0] == JPEG_MARK && buf[1] == JPEG_SOI && buf[2] == JPEG_MARK) {
        if (jpeg_check(path, buf, n)) img = decode_stb(path, "JPEG", buf, n);
    } else if (n >= 2 && buf[0] == 'B' && buf[1] == 'M') {
        if (bmp_check(path, buf, n)) img = decode_stb(path, "BMP", buf, n);
    } else {
        tg_error(TG_ERR_FORMAT, "%s: unsupported format (not TIFF, PNG, GIF, JPEG or BMP)", path);
    }
    tg_free(buf);
    return img;
}

/* ---- conversions ------------------------------------------------------- */

static bool check_image(const char *who, const tg_image *img)
{
    if (!img || !img->data) {
        tg_error(TG_ERR_ARG, "%s: image is NULL", who);
        return false;
    }
    if (img->channels < 1 || img->channels > 4 || img->width <= 0 || img->height <= 0) {
        tg_error(TG_ERR_ARG, "%s: invalid image %d x %d x %d", who, img->width, img->height, img->channels);
        return false;
    }
    return true;
}

/* ITU-R 601-2 luma L = 0.299 R + 0.587 G + 0.114 B in 16-bit fixed point, rounded (Pillow's "L"). */
enum { LUMA_SHIFT = 16 };
#define LUMA_R 19595u
#define LUMA_G 38470u
#define LUMA_B 7471u
#define LUMA_ROUND (1u << (LUMA_SHIFT - 1))

tg_image *tg_image_to_gray(const tg_image *img)
{
    if (!check_image("tg_image_to_gray", img)) return NULL;
    tg_image *g = tg_image_new(img->width, img->height, 1);
    if (!g) return NULL;
    size_t n = (size_t)img->width * (size_t)img->height;
    const uint8_t *s = img->data;
    int c = img->channels;
    if (c <= 2) {
        for (size_t i = 0; i < n; i++) g->data[i] = s[i * c];
    } else {
        for (size_t i = 0; i < n; i++) {
            const uint8_t *p = s + i * c;
            g->data[i] = (uint8_t)((p[0] * LUMA_R + p[1] * LUMA_G + p[2] * LUMA_B + LUMA_ROUND) >> LUMA_SHIFT);
        }
    }
    return g;
}

tg_image *tg_image_to_rgb(const tg_image *img)
{
    if (!check_image("tg_image_to_rgb", img)) return NULL;
    tg_image *r = tg_image_new(img->width, img->height, 3);
    if (!r) return NULL;
    size_t n = (size_t)img->width * (size_t)img->height;
    int c = img->channels;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = img->data + i * c;
        uint8_t *q = r->data + i * 3;
        if (c <= 2) {
            q[0] = q[1] = q[2] = p[0];
        } else {
            q[0] = p[0];
            q[1] = p[1];
            q[2] = p[2];
        }
    }
    return r;
}

/* ---- geometry ---------------------------------------------------------- */

void tg_image_flip(tg_image *img, bool horizontal)
{
    if (!check_image("tg_image_flip", img)) return;
    size_t c = (size_t)img->channels, w = (size_t)img->width, h = (size_t)img->height, row = w * c;
    if (horizontal) {
        for (size_t y = 0; y < h; y++) {
            uint8_t *r = img->data + y * row;
            for (size_t a = 0, b = w - 1; a < b; a++, b--)
                for (size_t k = 0; k < c; k++) {
                    uint8_t t = r[a * c + k];
                    r[a * c + k] = r[b * c + k];
                    r[b * c + k] = t;
                }
        }
    } else {
        for (size_t a = 0, b = h - 1; a < b; a++, b--)
            for (size_t i = 0; i < row; i++) {
                uint8_t t = img->data[a * row + i];
                img->data[a * row + i] = img->data[b * row + i];
                img->data[b * row + i] = t;
            }
    }
}

tg_image *tg_image_pad(const tg_image *img, int min_width, int min_height, uint8_t fill)
{
    if (!check_image("tg_image_pad", img)) return NULL;
    int w = img->width > min_width ? img->width : min_width;
    int h = img->height > min_height ? img->height : min_height;
    tg_image *p = tg_image_new(w, h, img->channels);
    if (!p) return NULL;
    memset(p->data, fill, image_bytes(p));
    size_t row = (size_t)img->width * (size_t)img->channels;
    for (int y = 0; y < img->height; y++) memcpy(tg_image_at(p, 0, y, 0), tg_image_at(img, 0, y, 0), row);
    return p;
}

tg_image *tg_image_crop(const tg_image *img, int x, int y, int width, int height)
{
    if (!check_image("tg_image_crop", img)) return NULL;
    if (x < 0 || y < 0 || width <= 0 || height <= 0 || x > img->width - width || y > img->height - height) {
        tg_error(TG_ERR_ARG, "tg_image_crop: region %d x %d at (%d, %d) is not inside the %d x %d image", width,
                 height, x, y, img->width, img->height);
        return NULL;
    }
    tg_image *c = tg_image_new(width, height, img->channels);
    if (!c) return NULL;
    size_t row = (size_t)width * (size_t)img->channels;
    for (int r = 0; r < height; r++) memcpy(tg_image_at(c, 0, r, 0), tg_image_at(img, x, y + r, 0), row);
    return c;
}
