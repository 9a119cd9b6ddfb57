/* Tensors: construction, ownership, element access, printing. */
#include "core_internal.h"

#include <math.h>
#include <string.h>

char *tg_dims_str(int ndim, const int64_t *shape, char *buf, size_t n)
{
    size_t k = 0;
    k += (size_t)snprintf(buf + k, n - k, "(");
    for (int d = 0; d < ndim && k < n; d++)
        k += (size_t)snprintf(buf + k, n - k, d ? ", %lld" : "%lld", (long long)shape[d]);
    if (ndim == 1 && k < n) k += (size_t)snprintf(buf + k, n - k, ",");
    if (k < n) snprintf(buf + k, n - k, ")");
    return buf;
}

char *tg_shape_str(const tg_tensor *t, char *buf, size_t n)
{
    if (!t) {
        snprintf(buf, n, "(null)");
        return buf;
    }
    return tg_dims_str(t->ndim, t->shape, buf, n);
}

/* Validates a shape and computes numel; false + error otherwise. */
static bool shape_numel(const char *who, int ndim, const int64_t *shape, int64_t *numel)
{
    if (ndim < 0 || ndim > TG_MAX_DIMS) {
        tg_error(TG_ERR_SHAPE, "%s: %d dimensions requested, tapegrad supports 0 to %d", who, ndim,
                 TG_MAX_DIMS);
        return false;
    }
    if (ndim > 0 && !shape) {
        tg_error(TG_ERR_ARG, "%s: shape is NULL", who);
        return false;
    }
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0 || (shape[d] > 0 && n > INT64_MAX / 8 / shape[d])) {
            char buf[128];
            tg_error(TG_ERR_SHAPE, "%s: invalid shape %s", who, tg_dims_str(ndim, shape, buf, sizeof buf));
            return false;
        }
        n *= shape[d];
    }
    *numel = n;
    return true;
}

/* Fills the header fields shared by caller-owned and tape-owned tensors. */
static void header_init(tg_tensor *t, tg_dtype dtype, int ndim, const int64_t *shape, int64_t numel)
{
    memset(t, 0, sizeof *t);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++) t->shape[d] = shape[d];
    t->numel = numel;
}

tg_tensor *tg_tensor_new(tg_dtype dtype, int ndim, const int64_t *shape)
{
    int64_t numel;
    if (dtype != TG_F32 && dtype != TG_I64) {
        tg_error(TG_ERR_ARG, "tg_tensor_new: unknown dtype %d", (int)dtype);
        return NULL;
    }
    if (!shape_numel("tg_tensor_new", ndim, shape, &numel)) return NULL;
    tg_tensor *t = tg_malloc(sizeof *t);
    if (!t) return NULL;
    header_init(t, dtype, ndim, shape, numel);
    size_t bytes = (size_t)numel * (dtype == TG_F32 ? sizeof(float) : sizeof(int64_t));
    void *mem = tg_aligned_alloc(bytes);
    if (!mem) {
        tg_free(t);
        return NULL;
    }
    memset(mem, 0, bytes);
    if (dtype == TG_F32) t->data = mem;
    else t->idata = mem;
    return t;
}

tg_tensor *tg_tensor_zeros(int ndim, const int64_t *shape) { return tg_tensor_new(TG_F32, ndim, shape); }

tg_tensor *tg_tensor_full(int ndim, const int64_t *shape, float value)
{
    tg_tensor *t = tg_tensor_new(TG_F32, ndim, shape);
    if (t)
        for (int64_t i = 0; i < t->numel; i++) t->data[i] = value;
    return t;
}

tg_tensor *tg_tensor_ones(int ndim, const int64_t *shape) { return tg_tensor_full(ndim, shape, 1.0f); }

tg_tensor *tg_tensor_from_data(int ndim, const int64_t *shape, const float *data)
{
    tg_tensor *t = tg_tensor_new(TG_F32, ndim, shape);
    if (t && t->numel) {
        if (!data) {
            tg_tensor_free(t);
            tg_error(TG_ERR_ARG, "tg_tensor_from_data: data is NULL");
            return NULL;
        }
        memcpy(t->data, data, (size_t)t->numel * sizeof(float));
    }
    return t;
}

tg_tensor *tg_tensor_from_i64(int ndim, const int64_t *shape, const int64_t *data)
{
    tg_tensor *t = tg_tensor_new(TG_I64, ndim, shape);
    if (t && t->numel) {
        if (!data) {
            tg_tensor_free(t);
            tg_error(TG_ERR_ARG, "tg_tensor_from_i64: data is NULL");
            return NULL;
        }
        memcpy(t->idata, data, (size_t)t->numel * sizeof(int64_t));
    }
    return t;
}

tg_tensor *tg_tensor_scalar(float value) { return tg_tensor_full(0, NULL, value); }

tg_tensor *tg_tensor_arange(float start, float end, float step)
{
    if (step == 0.0f || !isfinite(start) || !isfinite(end) || !isfinite(step) ||
        (end - start) / step < 0) {
        tg_error(TG_ERR_ARG, "tg_tensor_arange: cannot go from %g to %g in steps of %g", start, end, step);
        return NULL;
    }
    int64_t n = (int64_t)ceil(((double)end - start) / step);
    tg_tensor *t = tg_tensor_new(TG_F32, 1, &n);
    if (t)
        for (int64_t i = 0; i < n; i++) t->data[i] = (float)(start + (double)i * step);
    return t;
}

tg_tensor *tg_tensor_rand(int ndim, const int64_t *shape, tg_rng *rng)
{
    if (!rng) rng = tg_rng_global();
    tg_tensor *t = tg_tensor_new(TG_F32, ndim, shape);
    if (t)
        for (int64_t i = 0; i < t->numel; i++) t->data[i] = tg_rng_uniform(rng);
    return t;
}

tg_tensor *tg_tensor_randn(int ndim, const int64_t *shape, tg_rng *rng)
{
    if (!rng) rng = tg_rng_global();
    tg_tensor *t = tg_tensor_new(TG_F32, ndim, shape);
    if (t)
        for (int64_t i = 0; i < t->numel; i++) t->data[i] = tg_rng_normal(rng);
    return t;
}

tg_tensor *tg_tensor_clone(const tg_tensor *t)
{
    if (!t) return NULL; /* keep the earlier error */
    if (!tg_check_live("tg_tensor_clone", "the tensor", t)) return NULL;
    tg_tensor *c = t->dtype == TG_F32 ? tg_tensor_from_data(t->ndim, t->shape, t->data)
                                      : tg_tensor_from_i64(t->ndim, t->shape, t->idata);
    if (c) memcpy(c->name, t->name, sizeof c->name);
    return c;
}

void tg_tensor_free(tg_tensor *t)
{
    if (!t || t->tape_owned) return;
    tg_free(t->data);
    tg_free(t->idata);
    tg_free(t->grad);
    tg_free(t);
}

tg_tensor *tg_tensor_set_requires_grad(tg_tensor *t, bool requires_grad)
{
    if (!t) return NULL;
    if (requires_grad && t->dtype != TG_F32) {
        tg_error(TG_ERR_ARG, "tg_tensor_set_requires_grad: only float tensors can require grad ('%s' is int64)",
                 t->name);
        return NULL;
    }
    t->requires_grad = requires_grad;
    return t;
}

tg_tensor *tg_tensor_set_name(tg_tensor *t, const char *name)
{
    if (!t) return NULL;
    snprintf(t->name, sizeof t->name, "%s", name ? name : "");
    return t;
}

void tg_tensor_zero_grad(tg_tensor *t)
{
    if (t && t->grad) memset(t->grad, 0, (size_t)t->numel * sizeof(float));
}

tg_status tg_tensor_copy_data(tg_tensor *dst, const tg_tensor *src)
{
    if (!dst || !src) return tg_error(TG_ERR_ARG, "tg_tensor_copy_data: NULL tensor");
    if (dst->dtype != src->dtype || dst->numel != src->numel) {
        char a[96], b[96];
        return tg_error(TG_ERR_SHAPE, "tg_tensor_copy_data: destination %s does not match source %s",
                        tg_shape_str(dst, a, sizeof a), tg_shape_str(src, b, sizeof b));
    }
    if (dst->dtype == TG_F32) memmove(dst->data, src->data, (size_t)src->numel * sizeof(float));
    else memmove(dst->idata, src->idata, (size_t)src->numel * sizeof(int64_t));
    return TG_OK;
}

bool tg_tensor_same_shape(const tg_tensor *a, const tg_tensor *b)
{
    if (!a || !b || a->ndim != b->ndim) return false;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return false;
    return true;
}

static int64_t offset_of(const char *who, const tg_tensor *t, const int64_t *index)
{
    if (!t || !index) {
        tg_error(TG_ERR_ARG, "%s: %s is NULL", who, t ? "index" : "tensor");
        return -1;
    }
    int64_t off = 0;
    for (int d = 0; d < t->ndim; d++) {
        if (index[d] < 0 || index[d] >= t->shape[d]) {
            char b[96];
            tg_error(TG_ERR_ARG, "%s: index %lld is out of range for dim %d of a tensor of shape %s", who,
                     (long long)index[d], d, tg_shape_str(t, b, sizeof b));
            return -1;
        }
        off = off * t->shape[d] + index[d];
    }
    return off;
}

int64_t tg_tensor_offset(const tg_tensor *t, const int64_t *index) { return offset_of("tg_tensor_offset", t, index); }

float tg_tensor_get(const tg_tensor *t, const int64_t *index)
{
    int64_t off = offset_of("tg_tensor_get", t, index);
    if (off < 0) return NAN;
    return t->dtype == TG_F32 ? t->data[off] : (float)t->idata[off];
}

tg_status tg_tensor_set(tg_tensor *t, const int64_t *index, float value)
{
    int64_t off = offset_of("tg_tensor_set", t, index);
    if (off < 0) return TG_ERR_ARG;
    if (t->dtype == TG_F32) t->data[off] = value;
    else t->idata[off] = (int64_t)value;
    return TG_OK;
}

float tg_item(const tg_tensor *t)
{
    if (!t || !tg_check_live("tg_item", "the tensor", t)) return NAN;
    if (t->numel != 1) {
        char b[96];
        tg_error(TG_ERR_SHAPE, "tg_item: tensor of shape %s has %lld elements, not 1", tg_shape_str(t, b, sizeof b),
                 (long long)t->numel);
        return NAN;
    }
    return t->dtype == TG_F32 ? t->data[0] : (float)t->idata[0];
}

void tg_tensor_print(const tg_tensor *t, FILE *out, int max_items)
{
    char b[128];
    if (!t) {
        fprintf(out, "tensor(NULL)\n");
        return;
    }
    fprintf(out, "tensor%s%s%s %s [", t->name[0] ? " " : "", t->name, "", tg_shape_str(t, b, sizeof b));
    int64_t n = t->numel < max_items ? t->numel : max_items;
    for (int64_t i = 0; i < n; i++) {
        if (t->dtype == TG_F32) fprintf(out, i ? ", %.6g" : "%.6g", t->data[i]);
        else fprintf(out, i ? ", %lld" : "%lld", (long long)t->idata[i]);
    }
    fprintf(out, "%s]\n", n < t->numel ? ", ..." : "");
}
