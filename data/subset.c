/* Dataset subsets as torch.utils.data.Subset and random_split: a view of another dataset
 * through a list of indices. */
#include "data.h"

#include <string.h>

#include "../core/core_internal.h"

typedef struct {
    const tg_dataset *base; /* borrowed */
    int64_t *indices;       /* owned */
} subset_ctx;

static tg_status subset_shape(const tg_dataset *d, int64_t index, int *xn, int64_t *xs, int *yn, int64_t *ys)
{
    const subset_ctx *s = d->ctx;
    return s->base->sample_shape(s->base, s->indices[index], xn, xs, yn, ys);
}

static tg_status subset_get(const tg_dataset *d, int64_t index, tg_rng *rng, float *x, int64_t *y)
{
    const subset_ctx *s = d->ctx;
    return s->base->get(s->base, s->indices[index], rng, x, y);
}

static void subset_destroy(tg_dataset *d)
{
    subset_ctx *s = d->ctx;
    if (s) tg_free(s->indices);
    tg_free(s);
}

tg_dataset *tg_dataset_subset(const tg_dataset *ds, const int64_t *indices, int64_t n)
{
    const char *who = "tg_dataset_subset";
    if (!ds || (n > 0 && !indices)) {
        tg_error(TG_ERR_ARG, "%s: %s is NULL", who, ds ? "indices" : "dataset");
        return NULL;
    }
    if (n < 1) {
        tg_error(TG_ERR_ARG, "%s: a subset needs at least one index, got %lld", who, (long long)n);
        return NULL;
    }
    for (int64_t i = 0; i < n; i++)
        if (indices[i] < 0 || indices[i] >= ds->length) {
            tg_error(TG_ERR_ARG, "%s: index %lld (position %lld) is out of range for a dataset of %lld samples", who,
                     (long long)indices[i], (long long)i, (long long)ds->length);
            return NULL;
        }
    subset_ctx *s = tg_calloc(1, sizeof *s);
    int64_t *idx = s ? tg_malloc((size_t)n * sizeof *idx) : NULL;
    tg_dataset *d = idx ? tg_calloc(1, sizeof *d) : NULL;
    if (!d) {
        tg_free(idx);
        tg_free(s);
        return NULL;
    }
    memcpy(idx, indices, (size_t)n * sizeof *idx);
    s->base = ds;
    s->indices = idx;
    d->length = n;
    d->sample_shape = subset_shape;
    d->get = subset_get;
    d->destroy = subset_destroy;
    d->ctx = s;
    return d;
}

tg_status tg_dataset_random_split(const tg_dataset *ds, const int64_t *lengths, int n_parts, uint64_t seed,
                                  tg_dataset **parts)
{
    const char *who = "tg_dataset_random_split";
    if (!ds || !lengths || !parts || n_parts < 1)
        return tg_error(TG_ERR_ARG, "%s: needs a dataset, lengths, an output array and n_parts >= 1", who);
    for (int k = 0; k < n_parts; k++) parts[k] = NULL;
    int64_t total = 0;
    for (int k = 0; k < n_parts; k++) {
        if (lengths[k] < 1) return tg_error(TG_ERR_ARG, "%s: length %d is %lld (each part needs >= 1)", who, k, (long long)lengths[k]);
        if (lengths[k] > ds->length - total)
            return tg_error(TG_ERR_ARG, "%s: the lengths add up to more than the dataset's %lld samples", who,
                            (long long)ds->length);
        total += lengths[k];
    }
    if (total != ds->length)
        return tg_error(TG_ERR_ARG, "%s: the lengths add up to %lld, the dataset has %lld samples", who,
                        (long long)total, (long long)ds->length);
    int64_t *perm = tg_malloc((size_t)total * sizeof *perm);
    if (!perm) return tg_last_status();
    tg_rng r;
    tg_rng_seed(&r, seed);
    tg_rng_permutation(&r, perm, total);
    int64_t at = 0;
    for (int k = 0; k < n_parts; k++) {
        parts[k] = tg_dataset_subset(ds, perm + at, lengths[k]);
        if (!parts[k]) {
            for (int j = 0; j < k; j++) {
                tg_dataset_free(parts[j]);
                parts[j] = NULL;
            }
            tg_free(perm);
            return tg_last_status();
        }
        at += lengths[k];
    }
    tg_free(perm);
    return TG_OK;
}
