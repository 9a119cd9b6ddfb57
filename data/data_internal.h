/* Shared between the data/ files; not part of the public API. */
#ifndef TG_DATA_INTERNAL_H
#define TG_DATA_INTERNAL_H

#include "../core/core_internal.h"
#include "data.h"

/* A new zero-filled image after checking the dimensions decoded from `path`
 * (NULL + an error naming path if absurd or out of memory). */
tg_image *tg_image_alloc_checked(const char *path, int64_t width, int64_t height, int channels);

/* Decoders working on the whole file in memory; `path` is for messages only. */
tg_image *tg_image_decode_png(const char *path, const uint8_t *buf, size_t n);
tg_image *tg_image_decode_tiff(const char *path, const uint8_t *buf, size_t n);

/* Reads a whole file (caller frees *buf with tg_free); TG_ERR_IO naming path. */
tg_status tg_read_file(const char *path, uint8_t **buf, size_t *n);

/* Seeds rng with a well-mixed function of (a, b, c). */
void tg_rng_seed3(tg_rng *rng, uint64_t a, uint64_t b, uint64_t c);

#endif
