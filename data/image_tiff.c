/* TIFF through libtiff, from memory. TIFFReadRGBAImageOriented handles every
 * compression, strips and tiles, palettes and bit depths; the result is 8-bit
 * gray (one sample, min-is-black or min-is-white), RGB, or RGBA when the file
 * has an alpha sample. libtiff's messages go to per-file handlers that keep
 * the first error for our message (nothing is printed). */
#include "data_internal.h"

#include <stdarg.h>
#include <string.h>
#include <tiffio.h>

typedef struct {
    const uint8_t *buf;
    size_t n, pos;
    char message[256];
} tiff_io;

static int on_tiff_error(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
    (void)tif;
    tiff_io *io = user;
    if (!io->message[0]) {
        int k = snprintf(io->message, sizeof io->message, "%s: ", module ? module : "libtiff");
        if (k < 0 || (size_t)k >= sizeof io->message) k = 0;
        vsnprintf(io->message + k, sizeof io->message - (size_t)k, fmt, ap);
    }
    return 1; /* handled: libtiff prints nothing */
}

static int on_tiff_warning(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
    (void)tif, (void)user, (void)module, (void)fmt, (void)ap;
    return 1;
}

static tmsize_t mem_read(thandle_t h, void *out, tmsize_t len)
{
    tiff_io *io = (tiff_io *)h;
    if (len < 0) return -1;
    size_t k = (size_t)len;
    if (k > io->n - io->pos) k = io->n - io->pos;
    memcpy(out, io->buf + io->pos, k);
    io->pos += k;
    return (tmsize_t)k;
}

static tmsize_t mem_write(thandle_t h, void *in, tmsize_t len)
{
    (void)h, (void)in, (void)len;
    return -1;
}

static toff_t mem_seek(thandle_t h, toff_t off, int whence)
{
    tiff_io *io = (tiff_io *)h;
    uint64_t base = whence == SEEK_CUR ? io->pos : whence == SEEK_END ? io->n : 0;
    uint64_t to = base + off; /* off is unsigned: a negative SEEK_CUR wraps around, as intended */
    if (to > io->n) return (toff_t)-1;
    io->pos = (size_t)to;
    return to;
}

static int mem_close(thandle_t h)
{
    (void)h;
    return 0;
}

static toff_t mem_size(thandle_t h) { return ((tiff_io *)h)->n; }

static int mem_map(thandle_t h, void **base, toff_t *size)
{
    (void)h, (void)base, (void)size;
    return 0; /* no mapping: libtiff reads through mem_read */
}

static void mem_unmap(thandle_t h, void *base, toff_t size) { (void)h, (void)base, (void)size; }

tg_image *tg_image_decode_tiff(const char *path, const uint8_t *buf, size_t n)
{
    tiff_io io = {buf, n, 0, ""};
    TIFFOpenOptions *opts = TIFFOpenOptionsAlloc();
    if (!opts) {
        tg_error(TG_ERR_NOMEM, "%s: out of memory starting libtiff", path);
        return NULL;
    }
    TIFFOpenOptionsSetErrorHandlerExtR(opts, on_tiff_error, &io);
    TIFFOpenOptionsSetWarningHandlerExtR(opts, on_tiff_warning, &io);
    TIFFOpenOptionsSetMaxSingleMemAlloc(opts, (tmsize_t)1 << 30);
    TIFF *tif = TIFFClientOpenExt(path, "rm", (thandle_t)&io, mem_read, mem_write, mem_seek, mem_close, mem_size,
                                  mem_map, mem_unmap, opts);
    TIFFOpenOptionsFree(opts);
    if (!tif) {
        tg_error(TG_ERR_FORMAT, "%s: corrupt TIFF (%s)", path, io.message[0] ? io.message : "cannot open");
        return NULL;
    }
    uint32_t w = 0, h = 0;
    uint16_t spp = 1, photometric = PHOTOMETRIC_RGB, extra = 0;
    uint16_t *extra_types = NULL;
    TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w);
    TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &h);
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &spp);
    TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &photometric);
    TIFFGetFieldDefaulted(tif, TIFFTAG_EXTRASAMPLES, &extra, &extra_types);
    bool gray = spp - extra == 1 && (photometric == PHOTOMETRIC_MINISBLACK || photometric == PHOTOMETRIC_MINISWHITE);
    int channels = (gray ? 1 : 3) + (extra > 0 ? 1 : 0);
    char why[1024];
    if (!TIFFRGBAImageOK(tif, why)) {
        tg_error(TG_ERR_FORMAT, "%s: unsupported TIFF (%s)", path, why);
        TIFFClose(tif);
        return NULL;
    }
    tg_image *img = tg_image_alloc_checked(path, w, h, channels);
    uint32_t *raster = img ? tg_malloc((size_t)w * h * sizeof(uint32_t)) : NULL;
    if (!raster) {
        tg_image_free(img);
        TIFFClose(tif);
        return NULL;
    }
    int ok = TIFFReadRGBAImageOriented(tif, w, h, raster, ORIENTATION_TOPLEFT, 1);
    TIFFClose(tif);
    if (!ok) {
        tg_error(TG_ERR_FORMAT, "%s: corrupt or truncated TIFF (%s)", path,
                 io.message[0] ? io.message : "cannot decode the image data");
        tg_free(raster);
        tg_image_free(img);
        return NULL;
    }
    size_t np = (size_t)w * h;
    uint8_t *d = img->data;
    for (size_t i = 0; i < np; i++) {
        uint32_t p = raster[i];
        if (channels == 1) {
            d[i] = (uint8_t)TIFFGetR(p);
        } else if (channels == 2) {
            d[i * 2] = (uint8_t)TIFFGetR(p);
            d[i * 2 + 1] = (uint8_t)TIFFGetA(p);
        } else {
            uint8_t *q = d + i * channels;
            q[0] = (uint8_t)TIFFGetR(p);
            q[1] = (uint8_t)TIFFGetG(p);
            q[2] = (uint8_t)TIFFGetB(p);
            if (channels == 4) q[3] = (uint8_t)TIFFGetA(p);
        }
    }
    tg_free(raster);
    return img;
}
