/* The parameter/buffer registry: named tensors in state_dict order, parameter
 * values and gradients in two contiguous blocks (64-byte aligned segments). */
#include "nn.h"

#include <string.h>

#include "../core/core_internal.h"

#define SEG_ALIGN 16 /* floats: 64 bytes */

tg_param_list *tg_param_list_new(void)
{
    tg_param_list *l = tg_calloc(1, sizeof *l);
    if (l) l->training = true;
    return l;
}

void tg_param_list_free(tg_param_list *list)
{
    if (!list) return;
    for (int i = 0; i < list->count; i++) {
        tg_tensor *t = list->entries[i].tensor;
        if (list->entries[i].kind == TG_KIND_PARAM) tg_free(t); /* data and grad live in the blocks */
        else tg_tensor_free(t);
    }
    tg_free(list->entries);
    tg_free(list->data);
    tg_free(list->grad);
    tg_free(list);
}

bool tg_param_name(char *out, const char *prefix, const char *name)
{
    int n = (prefix && prefix[0]) ? snprintf(out, TG_PARAM_NAME_LEN, "%s.%s", prefix, name)
                                   : snprintf(out, TG_PARAM_NAME_LEN, "%s", name);
    if (n < 0 || n >= TG_PARAM_NAME_LEN) {
        tg_error(TG_ERR_ARG, "tg_param_name: name '%s.%s' is longer than %d characters", prefix ? prefix : "",
                 name, TG_PARAM_NAME_LEN - 1);
        return false;
    }
    return true;
}

tg_param_entry *tg_param_list_find(const tg_param_list *list, const char *name)
{
    if (!list || !name) return NULL;
    for (int i = 0; i < list->count; i++)
        if (strcmp(list->entries[i].name, name) == 0) return &list->entries[i];
    return NULL;
}

/* Checks the name and makes room for one more entry. */
static bool entry_room(tg_param_list *list, const char *who, const char *name)
{
    if (!list || !name) {
        tg_error(TG_ERR_ARG, "%s: %s is NULL", who, list ? "name" : "list");
        return false;
    }
    size_t len = strlen(name);
    if (len == 0 || len >= TG_PARAM_NAME_LEN) {
        tg_error(TG_ERR_ARG, "%s: name '%s' must have 1 to %d characters", who, name, TG_PARAM_NAME_LEN - 1);
        return false;
    }
    if (tg_param_list_find(list, name)) {
        tg_error(TG_ERR_ARG, "%s: a tensor named '%s' is already registered", who, name);
        return false;
    }
    if (list->count == list->cap) {
        int cap = list->cap ? 2 * list->cap : 16;
        tg_param_entry *e = tg_malloc((size_t)cap * sizeof *e);
        if (!e) return false;
        if (list->count) memcpy(e, list->entries, (size_t)list->count * sizeof *e);
        tg_free(list->entries);
        list->entries = e;
        list->cap = cap;
    }
    return true;
}

/* Grows both blocks to hold `need` floats, moving every parameter's data/grad pointer. */
static bool grow_blocks(tg_param_list *list, int64_t need)
{
    if (need <= list->block_cap) return true;
    int64_t cap = list->block_cap ? list->block_cap : 1024;
    while (cap < need) cap *= 2;
    float *d = tg_aligned_alloc((size_t)cap * sizeof(float));
    float *g = d ? tg_aligned_alloc((size_t)cap * sizeof(float)) : NULL;
    if (!g) {
        tg_free(d);
        return false;
    }
    size_t used = (size_t)list->block_numel * sizeof(float);
    if (used) {
        memcpy(d, list->data, used);
        memcpy(g, list->grad, used);
    }
    memset(d + list->block_numel, 0, (size_t)(cap - list->block_numel) * sizeof(float));
    memset(g + list->block_numel, 0, (size_t)(cap - list->block_numel) * sizeof(float));
    tg_free(list->data);
    tg_free(list->grad);
    list->data = d;
    list->grad = g;
    list->block_cap = cap;
    for (int i = 0; i < list->count; i++) {
        tg_param_entry *e = &list->entries[i];
        if (e->kind != TG_KIND_PARAM) continue;
        e->tensor->data = d + e->offset;
        e->tensor->grad = g + e->offset;
    }
    return true;
}

tg_tensor *tg_param_list_add_param(tg_param_list *list, const char *name, int ndim, const int64_t *shape)
{
    const char *who = "tg_param_list_add_param";
    if (!entry_room(list, who, name)) return NULL;
    if (ndim < 0 || ndim > TG_MAX_DIMS || (ndim > 0 && !shape)) {
        tg_error(TG_ERR_SHAPE, "%s: '%s' has %d dimensions (0 to %d supported)", who, name, ndim, TG_MAX_DIMS);
        return NULL;
    }
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0 || (shape[d] > 0 && numel > INT64_MAX / 16 / shape[d])) {
            char b[128];
            tg_error(TG_ERR_SHAPE, "%s: '%s' has invalid shape %s", who, name, tg_dims_str(ndim, shape, b, sizeof b));
            return NULL;
        }
        numel *= shape[d];
    }
    tg_tensor *t = tg_calloc(1, sizeof *t);
    if (!t) return NULL;
    t->dtype = TG_F32;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++) t->shape[d] = shape[d];
    t->numel = numel;
    int64_t offset = (list->block_numel + SEG_ALIGN - 1) / SEG_ALIGN * SEG_ALIGN;
    if (!grow_blocks(list, offset + t->numel)) {
        tg_free(t);
        return NULL;
    }
    list->block_numel = offset + t->numel;
    t->data = list->data + offset;
    t->grad = list->grad + offset;
    t->requires_grad = true;
    snprintf(t->name, TG_NAME_LEN, "%s", name);
    tg_param_entry *e = &list->entries[list->count++];
    memset(e, 0, sizeof *e);
    snprintf(e->name, TG_PARAM_NAME_LEN, "%s", name);
    e->tensor = t;
    e->kind = TG_KIND_PARAM;
    e->offset = offset;
    return t;
}

tg_tensor *tg_param_list_add_buffer(tg_param_list *list, const char *name, tg_dtype dtype, int ndim,
                                    const int64_t *shape)
{
    if (!entry_room(list, "tg_param_list_add_buffer", name)) return NULL;
    tg_tensor *t = tg_tensor_new(dtype, ndim, shape);
    if (!t) return NULL;
    snprintf(t->name, TG_NAME_LEN, "%s", name);
    tg_param_entry *e = &list->entries[list->count++];
    memset(e, 0, sizeof *e);
    snprintf(e->name, TG_PARAM_NAME_LEN, "%s", name);
    e->tensor = t;
    e->kind = TG_KIND_BUFFER;
    e->offset = -1;
    return t;
}

void tg_param_list_zero_grad(tg_param_list *list)
{
    if (list && list->grad) memset(list->grad, 0, (size_t)list->block_numel * sizeof(float));
}

void tg_param_list_train(tg_param_list *list, bool training)
{
    if (list) list->training = training;
}

int64_t tg_param_list_numel(const tg_param_list *list, tg_param_kind kind)
{
    int64_t n = 0;
    if (list)
        for (int i = 0; i < list->count; i++)
            if (list->entries[i].kind == kind) n += list->entries[i].tensor->numel;
    return n;
}

int tg_param_list_no_decay_1d(tg_param_list *list)
{
    int n = 0;
    if (list)
        for (int i = 0; i < list->count; i++) {
            tg_param_entry *e = &list->entries[i];
            if (e->kind == TG_KIND_PARAM && e->tensor->ndim <= 1) {
                e->no_weight_decay = true;
                n++;
            }
        }
    return n;
}

void tg_param_list_print(const tg_param_list *list, FILE *out)
{
    if (!list || !out) return;
    char b[128];
    int64_t n_params = 0, n_buffers = 0;
    for (int i = 0; i < list->count; i++) {
        const tg_param_entry *e = &list->entries[i];
        const tg_tensor *t = e->tensor;
        const bool buffer = e->kind == TG_KIND_BUFFER;
        fprintf(out, "%s %s%s%s%s\n", e->name, tg_shape_str(t, b, sizeof b), t->dtype == TG_I64 ? " int64" : "",
                buffer ? " buffer" : "", !buffer && !t->requires_grad ? " frozen" : "");
        if (buffer) n_buffers += t->numel;
        else n_params += t->numel;
    }
    fprintf(out, "%d tensors: %lld parameter values, %lld buffer values\n", list->count, (long long)n_params,
            (long long)n_buffers);
}
