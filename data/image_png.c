/* PNG through libpng: decoding from memory and writing 8-bit files. libpng
 * reports errors through a callback that must not return: ours records the
 * message and longjmps back to the setjmp in the calling function. */
#include "data_internal.h"

#include <errno.h>
#include <png.h>
#include <string.h>

typedef struct {
    const char *path;
    const uint8_t *buf;
    size_t n, pos;
    char message[256];
} png_io;

static void on_png_error(png_structp png, png_const_charp msg)
{
    png_io *io = png_get_error_ptr(png);
    snprintf(io->message, sizeof io->message, "%s", msg);
    png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg; /* warnings (e.g. a bad ancillary chunk) do not stop decoding */
}

static void read_from_memory(png_structp png, png_bytep out, png_size_t len)
{
    png_io *io = png_get_io_ptr(png);
    if (len > io->n - io->pos) png_error(png, "file is truncated");
    memcpy(out, io->buf + io->pos, len);
    io->pos += len;
}

tg_image *tg_image_decode_png(const char *path, const uint8_t *buf, size_t n)
{
    png_io io = {path, buf, n, 0, ""};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &io, on_png_error, on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        tg_error(TG_ERR_NOMEM, "%s: out of memory starting libpng", path);
        return NULL;
    }
    /* Written after setjmp and read after a longjmp: volatile. */
    tg_image *volatile img = NULL;
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        tg_error(TG_ERR_FORMAT, "%s: corrupt PNG (%s)", path, io.message);
        tg_free(rows);
        tg_image_free(img);
        png_destroy_read_struct(&png, &info, NULL);
        return NULL;
    }
    png_set_read_fn(png, &io, read_from_memory);
    png_set_user_limits(png, TG_IMAGE_MAX_SIDE, TG_IMAGE_MAX_SIDE);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    png_set_expand(png);   /* palette -> RGB, gray < 8 bits -> 8, tRNS -> alpha */
    png_set_strip_16(png); /* 16 -> 8 bits */
    png_set_packing(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int channels = png_get_channels(png, info);
    tg_image *im = tg_image_alloc_checked(path, w, h, channels);
    if (!im) {
        png_destroy_read_struct(&png, &info, NULL);
        return NULL;
    }
    img = im;
    if (png_get_rowbytes(png, info) != (size_t)w * (size_t)channels) png_error(png, "unexpected row size");
    png_bytep *r = tg_malloc(sizeof(png_bytep) * h);
    if (!r) png_error(png, "out of memory for row pointers");
    rows = r;
    for (png_uint_32 y = 0; y < h; y++) r[y] = tg_image_at(im, 0, (int)y, 0);
    png_read_image(png, r);
    png_read_end(png, NULL);
    tg_free(r);
    png_destroy_read_struct(&png, &info, NULL);
    return im;
}

tg_status tg_image_save_png(const tg_image *img, const char *path)
{
    if (!path) return tg_error(TG_ERR_ARG, "tg_image_save_png: path is NULL");
    if (!img || !img->data) return tg_error(TG_ERR_ARG, "tg_image_save_png: %s: image is NULL", path);
    if (img->channels < 1 || img->channels > 4 || img->width <= 0 || img->height <= 0)
        return tg_error(TG_ERR_ARG, "tg_image_save_png: %s: invalid image %d x %d x %d", path, img->width,
                        img->height, img->channels);
    static const int types[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                 PNG_COLOR_TYPE_RGB_ALPHA};
    FILE *f = fopen(path, "wb");
    if (!f) return tg_error(TG_ERR_IO, "tg_image_save_png: %s: cannot create: %s", path, strerror(errno));
    png_io io = {path, NULL, 0, 0, ""};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &io, on_png_error, on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_bytep *volatile rows = NULL;
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        fclose(f);
        remove(path);
        return tg_error(TG_ERR_NOMEM, "tg_image_save_png: %s: out of memory starting libpng", path);
    }
    if (setjmp(png_jmpbuf(png))) {
        tg_free(rows);
        png_destroy_write_struct(&png, &info);
        fclose(f);
        remove(path);
        return tg_error(TG_ERR_IO, "tg_image_save_png: %s: %s", path, io.message);
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)img->width, (png_uint_32)img->height, 8, types[img->channels],
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_bytep *r = tg_malloc(sizeof(png_bytep) * (size_t)img->height);
    if (!r) png_error(png, "out of memory for row pointers");
    rows = r;
    for (int y = 0; y < img->height; y++) r[y] = tg_image_at(img, 0, y, 0);
    png_write_info(png, info);
    png_write_image(png, r);
    png_write_end(png, NULL);
    tg_free(r);
    png_destroy_write_struct(&png, &info);
    if (fclose(f) != 0) {
        remove(path);
        return tg_error(TG_ERR_IO, "tg_image_save_png: %s: write error: %s", path, strerror(errno));
    }
    return TG_OK;
}
