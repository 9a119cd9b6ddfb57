/* The one place tapegrad allocates memory, so tests can fail or count it. */
#include "core_internal.h"

#include <stdlib.h>
#include <string.h>

static tg_alloc_hook g_hook = NULL;

void tg_set_alloc_hook(tg_alloc_hook hook) { g_hook = hook; }

void *tg_malloc(size_t bytes)
{
    void *p = g_hook ? g_hook(bytes) : malloc(bytes ? bytes : 1);
    if (!p) tg_error(TG_ERR_NOMEM, "out of memory allocating %zu bytes", bytes);
    return p;
}

void *tg_calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size) {
        tg_error(TG_ERR_NOMEM, "allocation of %zu x %zu bytes overflows", n, size);
        return NULL;
    }
    void *p = tg_malloc(n * size);
    if (p) memset(p, 0, n * size);
    return p;
}

void *tg_aligned_alloc(size_t bytes)
{
    if (g_hook) return tg_malloc(bytes);
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) {
        tg_error(TG_ERR_NOMEM, "out of memory allocating %zu bytes", bytes);
        return NULL;
    }
    return p;
}

void *tg_realloc(void *p, size_t bytes)
{
    if (g_hook) { /* the hook decides whether this allocation succeeds (and counts it); realloc moves the data */
        void *gate = g_hook(bytes);
        if (!gate) {
            tg_error(TG_ERR_NOMEM, "out of memory allocating %zu bytes", bytes);
            return NULL;
        }
        free(gate);
    }
    void *q = realloc(p, bytes ? bytes : 1);
    if (!q) tg_error(TG_ERR_NOMEM, "out of memory allocating %zu bytes", bytes);
    return q;
}

char *tg_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *c = tg_malloc(n);
    if (c) memcpy(c, s, n);
    return c;
}

void tg_free(void *p) { free(p); }
