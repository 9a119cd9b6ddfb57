/* tg_meta: the string -> string map a checkpoint carries as its safetensors "__metadata__",
 * and its conversion to and from the format layer's plain pairs (nn/safetensors.c). */
#include <string.h>

#include "../core/core_internal.h"
#include "nn_internal.h"

/* The first slot count of a new map (it doubles when full). */
#define META_FIRST_CAP 8

/* Makes room for one more key; false + error if out of memory. */
static bool meta_grow(tg_meta *m)
{
    if (m->count < m->cap) return true;
    int cap = m->cap ? 2 * m->cap : META_FIRST_CAP;
    char **k = tg_malloc((size_t)cap * sizeof *k), **v = k ? tg_malloc((size_t)cap * sizeof *v) : NULL;
    if (!v) {
        tg_free(k);
        return false;
    }
    if (m->count) {
        memcpy(k, m->keys, (size_t)m->count * sizeof *k);
        memcpy(v, m->values, (size_t)m->count * sizeof *v);
    }
    tg_free(m->keys);
    tg_free(m->values);
    m->keys = k;
    m->values = v;
    m->cap = cap;
    return true;
}

tg_status tg_meta_set(tg_meta *m, const char *key, const char *value)
{
    if (!m || !key || !value) return tg_error(TG_ERR_ARG, "tg_meta_set: map, key or value is NULL");
    for (int i = 0; i < m->count; i++)
        if (strcmp(m->keys[i], key) == 0) {
            char *v = tg_strdup(value);
            if (!v) return tg_last_status();
            tg_free(m->values[i]);
            m->values[i] = v;
            return TG_OK;
        }
    if (!meta_grow(m)) return tg_last_status();
    char *k = tg_strdup(key), *v = k ? tg_strdup(value) : NULL;
    if (!v) {
        tg_free(k);
        return tg_last_status();
    }
    m->keys[m->count] = k;
    m->values[m->count++] = v;
    return TG_OK;
}

const char *tg_meta_get(const tg_meta *m, const char *key)
{
    if (!m || !key) return NULL;
    for (int i = 0; i < m->count; i++)
        if (strcmp(m->keys[i], key) == 0) return m->values[i];
    return NULL;
}

void tg_meta_clear(tg_meta *m)
{
    if (!m) return;
    for (int i = 0; i < m->count; i++) {
        tg_free(m->keys[i]);
        tg_free(m->values[i]);
    }
    tg_free(m->keys);
    tg_free(m->values);
    memset(m, 0, sizeof *m);
}

tg_status tg_meta_to_pairs(const tg_meta *m, tg_st_pair **pairs, int *n)
{
    *pairs = NULL;
    *n = 0;
    if (!m || m->count == 0) return TG_OK;
    if (!(*pairs = tg_malloc((size_t)m->count * sizeof **pairs))) return tg_last_status();
    for (int i = 0; i < m->count; i++) (*pairs)[i] = (tg_st_pair){m->keys[i], m->values[i]};
    *n = m->count;
    return TG_OK;
}

tg_status tg_meta_from_pairs(tg_meta *m, const tg_st_pair *pairs, int n)
{
    for (int i = 0; i < n; i++)
        if (tg_meta_set(m, pairs[i].key, pairs[i].value)) return tg_last_status();
    return TG_OK;
}
