/* What the spatial ops (conv2d, pooling, upsampling) share: their opening check and output
 * shape. Private to ops/, not public API. */
#ifndef TG_SPATIAL_INTERNAL_H
#define TG_SPATIAL_INTERNAL_H

#include "../core/core_internal.h"

/* A tensor of (..., H, W) read as `planes` planes of H x W (planes: the product of the leading dims). */
typedef struct {
    int64_t planes, H, W;
} tg_planes;

/* The opening check of a spatial op: t is a live float tensor of min_ndim..4 dims (min_ndim >= 2);
 * fills *p. false + an error naming op and arg otherwise. */
static inline bool tg_check_planes(const char *op, const char *arg, const tg_tensor *t, int min_ndim, tg_planes *p)
{
    if (!tg_check_f32(op, arg, t) || !tg_check_ndim(op, arg, t, min_ndim, 4)) return false;
    p->H = t->shape[t->ndim - 2];
    p->W = t->shape[t->ndim - 1];
    p->planes = 1;
    for (int d = 0; d < t->ndim - 2; d++) p->planes *= t->shape[d];
    return true;
}

/* A tape output shaped like t with its last two dims replaced by (Ho, Wo) (data uninitialised). */
static inline tg_tensor *tg_planes_output(const tg_tensor *t, int64_t Ho, int64_t Wo)
{
    int64_t shape[4];
    for (int d = 0; d < t->ndim; d++) shape[d] = t->shape[d];
    shape[t->ndim - 2] = Ho;
    shape[t->ndim - 1] = Wo;
    return tg_output_new(TG_F32, t->ndim, shape);
}

#endif
