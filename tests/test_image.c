/* data/image: decoding each format from files the tests write, PNG writing,
 * PIL-compatible conversions, geometry helpers, and corrupt inputs (missing,
 * empty, truncated, random bytes, absurd dimensions, mutated bytes). */
#include <stb/stb_image_write.h>
#include <zlib.h>

#include "data_test_util.h"
#include "test_support.h"

TestSuite(image, .init = tdu_setup, .fini = tdu_teardown);

static tg_image *pattern(int w, int h, int c)
{
    tg_image *img = tg_image_new(w, h, c);
    cr_assert_not_null(img);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++) *tg_image_at(img, x, y, k) = (uint8_t)(x * 13 + y * 29 + k * 71 + x * y);
    return img;
}

static void expect_same(const tg_image *a, const tg_image *b, const char *what)
{
    cr_assert_not_null(b, "%s: %s", what, tg_last_error());
    cr_assert_eq(a->width, b->width, "%s width", what);
    cr_assert_eq(a->height, b->height, "%s height", what);
    cr_assert_eq(a->channels, b->channels, "%s channels %d vs %d", what, a->channels, b->channels);
    size_t n = (size_t)a->width * a->height * a->channels;
    for (size_t i = 0; i < n; i++) cr_assert_eq(a->data[i], b->data[i], "%s: byte %zu differs", what, i);
}

Test(image, png_round_trip_every_channel_count)
{
    for (int c = 1; c <= 4; c++) {
        tg_image *img = pattern(23, 17, c);
        char name[32];
        snprintf(name, sizeof name, "p%d.png", c);
        cr_assert_eq(tg_image_save_png(img, tdu_path(name)), TG_OK, "%s", tg_last_error());
        tg_image *back = tg_image_load(tdu_path(name));
        expect_same(img, back, name);
        tg_image_free(img);
        tg_image_free(back);
    }
}

Test(image, tiff_strips_and_tiles_gray_and_rgb)
{
    for (int c = 1; c <= 3; c += 2)
        for (int tiled = 0; tiled <= 1; tiled++) {
            tg_image *img = pattern(37, 21, c);
            const char *p = tdu_path("t.tif");
            tdu_write_tiff(p, 37, 21, c, img->data, tiled);
            tg_image *back = tg_image_load(p);
            expect_same(img, back, tiled ? "tiled TIFF" : "striped TIFF");
            tg_image_free(img);
            tg_image_free(back);
        }
}

static void gif_inputs(uint8_t palette[384], uint8_t *px, int w, int h)
{
    for (int i = 0; i < 128; i++) palette[3 * i] = (uint8_t)(2 * i), palette[3 * i + 1] = (uint8_t)(255 - i),
                                palette[3 * i + 2] = (uint8_t)(i * 7);
    for (int i = 0; i < w * h; i++) px[i] = (uint8_t)((i * 31 + i / w) % 128);
}

Test(image, gif_palette_expanded_to_rgb)
{
    enum { W = 41, H = 19 };
    uint8_t palette[384], px[W * H];
    gif_inputs(palette, px, W, H);
    tdu_write_gif(tdu_path("g.gif"), W, H, palette, px);
    tg_image *img = tg_image_load(tdu_path("g.gif"));
    cr_assert_not_null(img, "%s", tg_last_error());
    cr_expect_eq(img->channels, 3);
    cr_assert_eq(img->width, W);
    cr_assert_eq(img->height, H);
    for (int i = 0; i < W * H; i++)
        for (int k = 0; k < 3; k++) cr_assert_eq(img->data[i * 3 + k], palette[px[i] * 3 + k], "pixel %d", i);
    tg_image_free(img);
}

Test(image, jpeg_and_bmp_through_stb)
{
    tg_image *img = pattern(32, 24, 3);
    /* smooth content so JPEG at quality 100 stays close */
    for (int y = 0; y < 24; y++)
        for (int x = 0; x < 32; x++)
            for (int k = 0; k < 3; k++) *tg_image_at(img, x, y, k) = (uint8_t)(x * 4 + y * 3 + k * 20);
    cr_assert(stbi_write_jpg(tdu_path("a.jpg"), 32, 24, 3, img->data, 100));
    cr_assert(stbi_write_bmp(tdu_path("a.bmp"), 32, 24, 3, img->data));
    tg_image *j = tg_image_load(tdu_path("a.jpg"));
    cr_assert_not_null(j, "%s", tg_last_error());
    cr_assert_eq(j->channels, 3);
    cr_assert_eq(j->width, 32);
    int worst = 0;
    for (size_t i = 0; i < 32 * 24 * 3; i++) {
        int d = abs((int)j->data[i] - (int)img->data[i]);
        if (d > worst) worst = d;
    }
    cr_expect(worst <= 8, "JPEG quality 100 differs by %d", worst);
    tg_image *b = tg_image_load(tdu_path("a.bmp"));
    expect_same(img, b, "BMP");
    tg_image_free(img);
    tg_image_free(j);
    tg_image_free(b);
}

Test(image, pil_gray_conversion_matches_fixture)
{
    cJSON *root = tgt_json_load("data_resize.json");
    cJSON *row;
    cJSON_ArrayForEach(row, cJSON_GetObjectItem(root, "gray"))
    {
        tg_image *c = tg_image_new(1, 1, 4);
        for (int k = 0; k < 3; k++) c->data[k] = (uint8_t)cJSON_GetArrayItem(row, k)->valueint;
        c->data[3] = 7; /* alpha is ignored */
        tg_image *g = tg_image_to_gray(c);
        cr_expect_eq(g->data[0], cJSON_GetArrayItem(row, 3)->valueint, "L(%d, %d, %d) = %d", c->data[0], c->data[1],
                     c->data[2], g->data[0]);
        tg_image_free(c);
        tg_image_free(g);
    }
    cJSON_Delete(root);
}

Test(image, rgb_conversion_and_gray_of_gray)
{
    tg_image *ga = pattern(5, 4, 2);
    tg_image *rgb = tg_image_to_rgb(ga), *g = tg_image_to_gray(ga);
    for (int i = 0; i < 20; i++) {
        for (int k = 0; k < 3; k++) cr_assert_eq(rgb->data[i * 3 + k], ga->data[i * 2]);
        cr_assert_eq(g->data[i], ga->data[i * 2]);
    }
    tg_image_free(ga);
    tg_image_free(rgb);
    tg_image_free(g);
    cr_expect_null(tg_image_to_gray(NULL));
    TDU_EXPECT_ERROR("tg_image_to_gray");
}

Test(image, flip_pad_crop)
{
    tg_image *img = pattern(6, 5, 3), *f = tg_image_clone(img);
    tg_image_flip(f, true);
    cr_assert_eq(*tg_image_at(f, 0, 2, 1), *tg_image_at(img, 5, 2, 1));
    tg_image_flip(f, false);
    cr_assert_eq(*tg_image_at(f, 1, 0, 2), *tg_image_at(img, 4, 4, 2));
    tg_image *p = tg_image_pad(img, 8, 4, 9);
    cr_assert_eq(p->width, 8);
    cr_assert_eq(p->height, 5);
    cr_assert_eq(*tg_image_at(p, 3, 3, 0), *tg_image_at(img, 3, 3, 0));
    cr_assert_eq(*tg_image_at(p, 7, 4, 2), 9);
    tg_image *c = tg_image_crop(img, 2, 1, 3, 4);
    cr_assert_eq(*tg_image_at(c, 2, 3, 1), *tg_image_at(img, 4, 4, 1));
    cr_expect_null(tg_image_crop(img, 4, 0, 3, 1));
    TDU_EXPECT_ERROR("not inside");
    tg_image_free(img);
    tg_image_free(f);
    tg_image_free(p);
    tg_image_free(c);
    cr_expect_null(tg_image_new(0, 5, 3));
    cr_expect_null(tg_image_new(5, 5, 5));
}

Test(image, missing_empty_unsupported_and_directory)
{
    const char *p = tdu_path("nope.png");
    cr_expect_null(tg_image_load(p));
    cr_expect_eq(tg_last_status(), TG_ERR_IO);
    TDU_EXPECT_ERROR(p);
    TDU_EXPECT_ERROR("No such file");
    tdu_write(tdu_path("empty.tif"), "", 0);
    cr_expect_null(tg_image_load(tdu_path("empty.tif")));
    TDU_EXPECT_ERROR("empty file");
    tdu_write(tdu_path("text.png"), "hello, world\n", 13);
    cr_expect_null(tg_image_load(tdu_path("text.png")));
    cr_expect_eq(tg_last_status(), TG_ERR_FORMAT);
    TDU_EXPECT_ERROR("unsupported format");
    cr_expect_null(tg_image_load(tdu_dir));
    cr_expect_null(tg_image_load(NULL));
    tg_image *img = pattern(3, 3, 3);
    cr_expect_eq(tg_image_save_png(img, "/nonexistent_dir/x.png"), TG_ERR_IO);
    TDU_EXPECT_ERROR("/nonexistent_dir/x.png");
    cr_expect_eq(tg_image_save_png(NULL, tdu_path("x.png")), TG_ERR_ARG);
    tg_image_free(img);
}

/* Writes one valid file of each format; names[i] in the temp dir. */
static const char *const FORMATS[5] = {"v.png", "v.tif", "v.gif", "v.jpg", "v.bmp"};
static void write_valid_files(void)
{
    tg_image *img = pattern(40, 30, 3);
    cr_assert_eq(tg_image_save_png(img, tdu_path(FORMATS[0])), TG_OK);
    tdu_write_tiff(tdu_path(FORMATS[1]), 40, 30, 3, img->data, false);
    uint8_t palette[384], px[40 * 30];
    gif_inputs(palette, px, 40, 30);
    tdu_write_gif(tdu_path(FORMATS[2]), 40, 30, palette, px);
    cr_assert(stbi_write_jpg(tdu_path(FORMATS[3]), 40, 30, 3, img->data, 90));
    cr_assert(stbi_write_bmp(tdu_path(FORMATS[4]), 40, 30, 3, img->data));
    tg_image_free(img);
    for (int f = 0; f < 5; f++) {
        tg_image *ok = tg_image_load(tdu_path(FORMATS[f]));
        cr_assert_not_null(ok, "valid %s: %s", FORMATS[f], tg_last_error());
        tg_image_free(ok);
    }
}

Test(image, truncated_files_of_every_format)
{
    write_valid_files();
    for (int f = 0; f < 5; f++) {
        size_t n;
        free(tdu_read(tdu_path(FORMATS[f]), &n));
        /* a GIF's last byte is its optional trailer: cut the block terminator too */
        size_t tail = f == 2 ? 2 : 1;
        size_t cuts[] = {3, 8, 20, n / 4, n / 2, n * 3 / 4, n - tail};
        for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
            const char *t = tdu_path("cut.bin");
            tdu_truncate_copy(tdu_path(FORMATS[f]), t, cuts[k]);
            tg_clear_error();
            tg_image *img = tg_image_load(t);
            cr_expect_null(img, "%s cut to %zu of %zu bytes decoded", FORMATS[f], cuts[k], n);
            tg_image_free(img);
            cr_expect_eq(tg_last_status(), TG_ERR_FORMAT, "%s cut to %zu: %s", FORMATS[f], cuts[k], tg_last_error());
            TDU_EXPECT_ERROR(t);
        }
    }
}

Test(image, random_bytes_with_and_without_a_valid_magic)
{
    static const char *const magic[5] = {"\x89PNG\r\n\x1a\n", "II*\0", "GIF89a", "\xff\xd8\xff", "BM"};
    static const size_t magic_len[5] = {8, 4, 6, 3, 2};
    uint8_t buf[4096];
    for (uint64_t seed = 1; seed <= 40; seed++) {
        tdu_random_bytes(buf, sizeof buf, seed);
        int f = (int)(seed % 5);
        if (seed > 5) memcpy(buf, magic[f], magic_len[f]); /* the first five: pure noise */
        const char *p = tdu_path("noise.bin");
        tdu_write(p, buf, 64 + seed * 97);
        tg_clear_error();
        tg_image *img = tg_image_load(p);
        cr_expect_null(img, "random bytes (seed %llu, magic %d) decoded", (unsigned long long)seed, f);
        tg_image_free(img);
        TDU_EXPECT_ERROR(p);
    }
}

static uint32_t be32(const uint8_t *b) { return (uint32_t)b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3]; }
static void put_be32(uint8_t *b, uint32_t v) { b[0] = v >> 24, b[1] = v >> 16, b[2] = v >> 8, b[3] = (uint8_t)v; }

Test(image, absurd_dimensions_are_refused)
{
    write_valid_files();
    size_t n;
    /* PNG: IHDR claiming 100000 x 100000, with a correct CRC */
    uint8_t *b = tdu_read(tdu_path("v.png"), &n);
    cr_assert_eq(be32(b + 8), 13u);
    put_be32(b + 16, 100000);
    put_be32(b + 20, 100000);
    put_be32(b + 29, (uint32_t)crc32(0, b + 12, 17));
    tdu_write(tdu_path("huge.png"), b, n);
    free(b);
    cr_expect_null(tg_image_load(tdu_path("huge.png")));
    TDU_EXPECT_ERROR("huge.png");
    /* GIF: logical screen 65535 x 65535 and image descriptor to match */
    b = tdu_read(tdu_path("v.gif"), &n);
    b[6] = b[7] = b[8] = b[9] = 0xFF;
    size_t desc = 13 + 384;
    cr_assert_eq(b[desc], 0x2C);
    b[desc + 5] = b[desc + 6] = b[desc + 7] = b[desc + 8] = 0xFF;
    tdu_write(tdu_path("huge.gif"), b, n);
    free(b);
    cr_expect_null(tg_image_load(tdu_path("huge.gif")));
    TDU_EXPECT_ERROR("huge.gif");
    /* BMP: width 1,000,000 */
    b = tdu_read(tdu_path("v.bmp"), &n);
    b[18] = 0x40, b[19] = 0x42, b[20] = 0x0F, b[21] = 0;
    tdu_write(tdu_path("huge.bmp"), b, n);
    free(b);
    cr_expect_null(tg_image_load(tdu_path("huge.bmp")));
    TDU_EXPECT_ERROR("absurd");
    /* TIFF: ImageWidth and ImageLength patched to 100000 (LONG) */
    b = tdu_read(tdu_path("v.tif"), &n);
    uint32_t ifd = b[4] | b[5] << 8 | b[6] << 16 | (uint32_t)b[7] << 24;
    int entries = b[ifd] | b[ifd + 1] << 8;
    for (int e = 0; e < entries; e++) {
        uint8_t *t = b + ifd + 2 + 12 * e;
        int tag = t[0] | t[1] << 8;
        if (tag == 256 || tag == 257) {
            t[2] = 4, t[3] = 0;                          /* LONG */
            t[8] = 0xA0, t[9] = 0x86, t[10] = 1, t[11] = 0; /* 100000 */
        }
    }
    tdu_write(tdu_path("huge.tif"), b, n);
    free(b);
    cr_expect_null(tg_image_load(tdu_path("huge.tif")));
    TDU_EXPECT_ERROR("huge.tif");
}

/* Flipping random bytes of valid files must never crash (ASan checks our side);
 * a file that still decodes must have sane dimensions. */
Test(image, mutated_files_never_crash)
{
    write_valid_files();
    tg_rng r;
    tg_rng_seed(&r, 99);
    for (int f = 0; f < 5; f++) {
        size_t n;
        uint8_t *orig = tdu_read(tdu_path(FORMATS[f]), &n);
        uint8_t *b = malloc(n);
        for (int it = 0; it < 150; it++) {
            memcpy(b, orig, n);
            int flips = 1 + (int)tg_rng_below(&r, 8);
            for (int k = 0; k < flips; k++) b[tg_rng_below(&r, (int64_t)n)] = (uint8_t)tg_rng_u64(&r);
            const char *p = tdu_path("mut.bin");
            tdu_write(p, b, n);
            tg_image *img = tg_image_load(p);
            if (img) {
                cr_expect(img->width > 0 && img->width <= TG_IMAGE_MAX_SIDE && img->channels >= 1 &&
                          img->channels <= 4);
                tg_image_free(img);
            } else {
                TDU_EXPECT_ERROR(p);
            }
        }
        free(b);
        free(orig);
    }
}
