/* Tensor tracing (nn/trace.h): a per-thread list of named tensors, written with the safetensors
 * writer at tg_trace_end. */
#include "trace.h"

#include <stdlib.h>
#include <string.h>

#include "../core/core_internal.h"
#include "nn_internal.h"

typedef struct {
    char name[TG_ST_NAME_LEN];
    tg_tensor *t;
    uint32_t gen;          /* tape generation when traced (tape tensors) */
    bool with_grad;
} traced;

typedef struct {
    char *path;
    traced *items;
    int n, cap;
    tg_status deferred;    /* first recording error, reported by tg_trace_end */
    char message[256];
} trace_state;

_Thread_local bool tg_trace_on_ = false;
static _Thread_local trace_state S;

static void state_reset(void)
{
    free(S.path);
    free(S.items);
    memset(&S, 0, sizeof S);
    tg_trace_on_ = false;
}

tg_status tg_trace_begin(const char *path)
{
    if (tg_trace_on_)
        return tg_error(TG_ERR_STATE, "tg_trace_begin: a trace to '%s' is already active on this thread "
                        "(tg_trace_end or tg_trace_abort first)", S.path);
    if (!path || !path[0]) return tg_error(TG_ERR_ARG, "tg_trace_begin: path is NULL or empty");
    memset(&S, 0, sizeof S);
    if (!(S.path = strdup(path))) return tg_error(TG_ERR_NOMEM, "tg_trace_begin: out of memory");
    tg_trace_on_ = true;
    return TG_OK;
}

bool tg_trace_active(void) { return tg_trace_on_; }

static void defer(tg_status st, const char *msg, const char *name)
{
    if (S.deferred != TG_OK) return;
    S.deferred = st;
    snprintf(S.message, sizeof S.message, "%s '%.160s'", msg, name ? name : "(NULL)");
}

tg_tensor *tg_trace_record_(const char *name, tg_tensor *t, bool with_grad)
{
    if (!tg_trace_on_ || !t) return t;
    if (!name || !name[0] || strlen(name) + 5 >= TG_ST_NAME_LEN) {
        defer(TG_ERR_ARG, "a traced tensor's name is empty or too long:", name);
        return t;
    }
    if (S.n == S.cap) {
        int cap = S.cap ? 2 * S.cap : 32;
        traced *items = realloc(S.items, (size_t)cap * sizeof *items);
        if (!items) {
            defer(TG_ERR_NOMEM, "out of memory recording", name);
            return t;
        }
        S.items = items;
        S.cap = cap;
    }
    traced *it = &S.items[S.n++];
    snprintf(it->name, sizeof it->name, "%s", name);
    it->t = t;
    it->gen = t->tape_gen;
    it->with_grad = with_grad;
    return t;
}

void tg_trace_abort(void) { state_reset(); }

static tg_st_entry entry_of(const char *name, const tg_tensor *t, const void *data, tg_st_dtype dtype)
{
    tg_st_entry e;
    memset(&e, 0, sizeof e);
    snprintf(e.name, sizeof e.name, "%s", name);
    e.dtype = dtype;
    e.ndim = t->ndim;
    for (int d = 0; d < t->ndim; d++) e.shape[d] = t->shape[d];
    e.data = data;
    return e;
}

static int cmp_entry_name(const void *a, const void *b)
{
    return strcmp(((const tg_st_entry *const *)a)[0]->name, ((const tg_st_entry *const *)b)[0]->name);
}

tg_status tg_trace_end(const tg_param_list *params, const tg_meta *meta)
{
    const char *who = "tg_trace_end";
    if (!tg_trace_on_) return tg_error(TG_ERR_STATE, "%s: no trace is active on this thread (tg_trace_begin)", who);
    tg_status st = TG_OK;
    if (S.deferred != TG_OK) st = tg_error(S.deferred, "%s: %s", who, S.message);
    const uint32_t gen = tg_tape_generation();
    for (int i = 0; st == TG_OK && i < S.n; i++)
        if (S.items[i].t->tape_owned && S.items[i].gen != gen)
            st = tg_error(TG_ERR_STATE, "%s: traced tensor '%s' was released by tg_tape_clear() before the trace "
                          "was written (call tg_trace_end after backward, before clearing the tape)", who,
                          S.items[i].name);
    int n_params = params ? params->count : 0;
    tg_st_entry *entries = NULL;
    const tg_st_entry **sorted = NULL;
    int n = 0;
    if (st == TG_OK) {
        entries = malloc(((size_t)2 * (size_t)S.n + (size_t)n_params + 1) * sizeof *entries);
        if (!entries) st = tg_error(TG_ERR_NOMEM, "%s: out of memory", who);
    }
    for (int i = 0; st == TG_OK && i < S.n; i++) {
        const tg_tensor *t = S.items[i].t;
        entries[n++] = entry_of(S.items[i].name, t, t->dtype == TG_F32 ? (const void *)t->data : (const void *)t->idata,
                                t->dtype == TG_F32 ? TG_ST_F32 : TG_ST_I64);
    }
    char name[TG_ST_NAME_LEN];
    for (int i = 0; st == TG_OK && i < S.n; i++) {
        const tg_tensor *t = S.items[i].t;
        if (!S.items[i].with_grad || !t->grad) continue;
        if (snprintf(name, sizeof name, "grad.%s", S.items[i].name) >= (int)sizeof name) continue; /* checked above */
        entries[n++] = entry_of(name, t, t->grad, TG_ST_F32);
    }
    for (int i = 0; st == TG_OK && i < n_params; i++) {
        const tg_param_entry *p = &params->entries[i];
        if (p->kind != TG_KIND_PARAM || !p->tensor->grad) continue;
        if (snprintf(name, sizeof name, "grad.%s", p->name) >= (int)sizeof name) continue; /* 128 + 5 < 160 */
        entries[n++] = entry_of(name, p->tensor, p->tensor->grad, TG_ST_F32);
    }
    /* names must be unique: sort pointers and compare neighbours */
    if (st == TG_OK && n > 1) {
        sorted = malloc((size_t)n * sizeof *sorted);
        if (!sorted) st = tg_error(TG_ERR_NOMEM, "%s: out of memory", who);
        for (int i = 0; st == TG_OK && i < n; i++) sorted[i] = &entries[i];
        if (st == TG_OK) qsort(sorted, (size_t)n, sizeof *sorted, cmp_entry_name);
        for (int i = 1; st == TG_OK && i < n; i++)
            if (!strcmp(sorted[i - 1]->name, sorted[i]->name))
                st = tg_error(TG_ERR_ARG, "%s: the name '%s' appears twice in the trace (a tensor traced twice, or a "
                              "name that clashes with a parameter gradient)", who, sorted[i]->name);
    }
    tg_st_pair *pairs = NULL;
    int n_pairs = 0;
    if (st == TG_OK) st = tg_meta_to_pairs(meta, &pairs, &n_pairs);
    if (st == TG_OK) st = tg_st_write(S.path, entries, n, pairs, n_pairs, who);
    tg_free(pairs);
    free(sorted);
    free(entries);
    state_reset();
    return st;
}
