/* The safetensors file format (huggingface/safetensors, "Format" section):
 *   8 bytes: N, little-endian u64 | N bytes: JSON header, UTF-8, may end in spaces |
 *   the byte buffer. Header: {"__metadata__": {str: str}, name: {"dtype": "F32",
 *   "shape": [..], "data_offsets": [begin, end]}, ...}; offsets are relative to the
 *   byte buffer, and the tensors cover it exactly, without holes or overlaps.
 * Writes are atomic (temp file, checked writes, fsync, rename, fsync of the dir).
 * The bottom of nn/: it knows tensors only as entries and metadata only as string pairs, and
 * calls nothing in the checkpoint layer (nn/checkpoint.c, nn/meta.c) above it. */
#define _POSIX_C_SOURCE 200809L
#include "nn_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/core_internal.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "tapegrad's safetensors code assumes a little-endian host"
#endif

static const struct {
    const char *name;
    size_t size;
} DTYPES[TG_ST_N_DTYPES] = {
    [TG_ST_F32] = {"F32", 4},   [TG_ST_I64] = {"I64", 8},         [TG_ST_F64] = {"F64", 8},
    [TG_ST_BOOL] = {"BOOL", 1}, [TG_ST_U8] = {"U8", 1},           [TG_ST_I8] = {"I8", 1},
    [TG_ST_F8_E5M2] = {"F8_E5M2", 1}, [TG_ST_F8_E4M3] = {"F8_E4M3", 1}, [TG_ST_I16] = {"I16", 2},
    [TG_ST_U16] = {"U16", 2},   [TG_ST_F16] = {"F16", 2},         [TG_ST_BF16] = {"BF16", 2},
    [TG_ST_I32] = {"I32", 4},   [TG_ST_U32] = {"U32", 4},         [TG_ST_U64] = {"U64", 8},
};
_Static_assert(sizeof DTYPES / sizeof DTYPES[0] == TG_ST_N_DTYPES, "one row per dtype");

const char *tg_st_dtype_name(tg_st_dtype d) { return (unsigned)d < TG_ST_N_DTYPES ? DTYPES[d].name : "?"; }
size_t tg_st_dtype_size(tg_st_dtype d) { return (unsigned)d < TG_ST_N_DTYPES ? DTYPES[d].size : 0; }

/* The writer pads the header with spaces to a multiple of this (as the reference writer). */
#define ST_HEADER_ALIGN 8
/* JSON numbers are doubles: integers are exact up to 2^53, the largest shape or offset accepted. */
#define ST_MAX_EXACT_INT (UINT64_C(1) << 53)
/* Room for a path and the temporary file's suffix. */
#define ST_TMP_PATH_LEN 4096

static uint64_t entry_numel(const tg_st_entry *e)
{
    uint64_t n = 1;
    for (int d = 0; d < e->ndim; d++) n *= (uint64_t)e->shape[d];
    return n;
}

/* ---- writing ----------------------------------------------------------- */

static int64_t g_fail_after = -1;
void tg_st_set_write_fail_after(int64_t bytes) { g_fail_after = bytes; }

typedef struct {
    FILE *f;
    int64_t written;
} writer;

static bool put(writer *w, const void *p, size_t n)
{
    if (g_fail_after >= 0 && w->written + (int64_t)n > g_fail_after) {
        size_t part = (size_t)(g_fail_after - w->written);
        if (part) fwrite(p, 1, part, w->f);
        w->written += (int64_t)part;
        errno = ENOSPC;
        return false;
    }
    if (n && fwrite(p, 1, n, w->f) != n) return false;
    w->written += (int64_t)n;
    return true;
}

/* The header JSON, padded with spaces to a multiple of ST_HEADER_ALIGN bytes. */
static char *build_header(const tg_st_entry *entries, int n, const tg_st_pair *meta, int n_meta, const char *who,
                          size_t *len)
{
    cJSON *root = cJSON_CreateObject();
    bool ok = root != NULL;
    if (ok && n_meta > 0) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        ok = m != NULL;
        for (int i = 0; ok && i < n_meta; i++) ok = cJSON_AddStringToObject(m, meta[i].key, meta[i].value);
    }
    uint64_t offset = 0;
    for (int i = 0; ok && i < n; i++) {
        const tg_st_entry *e = &entries[i];
        cJSON *t = cJSON_AddObjectToObject(root, e->name);
        cJSON *shape = t ? cJSON_AddArrayToObject(t, "shape") : NULL;
        cJSON *offs = shape ? cJSON_AddArrayToObject(t, "data_offsets") : NULL;
        ok = offs && cJSON_AddStringToObject(t, "dtype", tg_st_dtype_name(e->dtype));
        for (int d = 0; ok && d < e->ndim; d++) ok = cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)e->shape[d]));
        uint64_t bytes = entry_numel(e) * tg_st_dtype_size(e->dtype);
        ok = ok && cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)offset)) &&
             cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(offset + bytes)));
        offset += bytes;
    }
    char *json = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!json) {
        tg_error(TG_ERR_NOMEM, "%s: out of memory building the safetensors header", who);
        return NULL;
    }
    size_t raw = strlen(json), padded = (raw + ST_HEADER_ALIGN - 1) / ST_HEADER_ALIGN * ST_HEADER_ALIGN;
    char *out = tg_malloc(padded + 1);
    if (out) {
        memcpy(out, json, raw);
        memset(out + raw, ' ', padded - raw);
        out[padded] = 0;
        *len = padded;
    }
    free(json);
    return out;
}

static void fsync_dir_of(const char *path)
{
    char buf[ST_TMP_PATH_LEN];
    snprintf(buf, sizeof buf, "%s", path);
    int fd = open(dirname(buf), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

tg_status tg_st_write(const char *path, const tg_st_entry *entries, int n, const tg_st_pair *meta, int n_meta,
                      const char *who)
{
    if (!path || !path[0]) return tg_error(TG_ERR_ARG, "%s: path is NULL or empty", who);
    char tmp[ST_TMP_PATH_LEN];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof tmp)
        return tg_error(TG_ERR_ARG, "%s: path too long", who);
    size_t hlen = 0;
    char *header = build_header(entries, n, meta, n_meta, who, &hlen);
    if (!header) return tg_last_status();
    int fd = mkstemp(tmp);
    if (fd < 0) {
        tg_free(header);
        return tg_error(TG_ERR_IO, "%s: cannot create a temporary file beside '%s': %s", who, path, strerror(errno));
    }
    fchmod(fd, 0644);
    writer w = {fdopen(fd, "wb"), 0};
    if (!w.f) {
        int err = errno;
        close(fd);
        unlink(tmp);
        tg_free(header);
        return tg_error(TG_ERR_IO, "%s: fdopen failed: %s", who, strerror(err));
    }
    uint8_t len8[TG_ST_LEN_BYTES];
    for (int i = 0; i < TG_ST_LEN_BYTES; i++) len8[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    bool ok = put(&w, len8, TG_ST_LEN_BYTES) && put(&w, header, hlen);
    for (int i = 0; ok && i < n; i++)
        ok = put(&w, entries[i].data, (size_t)(entry_numel(&entries[i]) * tg_st_dtype_size(entries[i].dtype)));
    int err = ok ? 0 : errno;
    if (ok && (fflush(w.f) != 0 || fsync(fd) != 0)) {
        ok = false;
        err = errno;
    }
    if (fclose(w.f) != 0 && ok) {
        ok = false;
        err = errno;
    }
    tg_free(header);
    if (!ok) {
        unlink(tmp);
        return tg_error(TG_ERR_IO, "%s: writing '%s' failed (%s); the previous file is unchanged", who, path,
                        strerror(err ? err : EIO));
    }
    if (rename(tmp, path) != 0) {
        err = errno;
        unlink(tmp);
        return tg_error(TG_ERR_IO, "%s: cannot rename the temporary file to '%s': %s", who, path, strerror(err));
    }
    fsync_dir_of(path);
    return TG_OK;
}

/* ---- reading and validation ------------------------------------------- */

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const tg_st_entry *)a)->name, ((const tg_st_entry *)b)->name);
}

static int cmp_begin(const void *a, const void *b)
{
    const tg_st_entry *x = *(tg_st_entry *const *)a, *y = *(tg_st_entry *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* A JSON number that is a non-negative integer up to 2^53. */
static bool json_uint(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= 0.0 && d <= (double)ST_MAX_EXACT_INT) || floor(d) != d) return false;
    *out = (uint64_t)d;
    return true;
}

static tg_status parse_entry(const tg_st_file *st, const cJSON *item, tg_st_entry *e)
{
    const char *who = st->who, *path = st->path;
    if (strlen(item->string) >= TG_ST_NAME_LEN)
        return tg_error(TG_ERR_FORMAT, "%s: '%s': tensor name '%.40s...' longer than %d characters", who, path,
                        item->string, TG_ST_NAME_LEN - 1);
    snprintf(e->name, TG_ST_NAME_LEN, "%s", item->string);
    if (!cJSON_IsObject(item))
        return tg_error(TG_ERR_FORMAT, "%s: '%s': tensor '%s' is not a JSON object", who, path, e->name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dt) || !cJSON_IsArray(shape) || !cJSON_IsArray(offs))
        return tg_error(TG_ERR_FORMAT, "%s: '%s': tensor '%s' needs a string \"dtype\" and arrays \"shape\" and "
                        "\"data_offsets\"", who, path, e->name);
    e->dtype = TG_ST_N_DTYPES;
    for (int d = 0; d < TG_ST_N_DTYPES; d++)
        if (strcmp(dt->valuestring, DTYPES[d].name) == 0) e->dtype = (tg_st_dtype)d;
    if (e->dtype == TG_ST_N_DTYPES)
        return tg_error(TG_ERR_FORMAT, "%s: '%s': tensor '%s' has unknown dtype \"%s\"", who, path, e->name,
                        dt->valuestring);
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > TG_MAX_DIMS)
        return tg_error(TG_ERR_FORMAT, "%s: '%s': tensor '%s' has %d dimensions (tapegrad supports up to %d)", who,
                        path, e->name, ndim, TG_MAX_DIMS);
    e->ndim = ndim;
    uint64_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        uint64_t v;
        if (!json_uint(cJSON_GetArrayItem(shape, d), &v) || (v && numel > ST_MAX_EXACT_INT / v))
            return tg_error(TG_ERR_FORMAT, "%s: '%s': tensor '%s' has an invalid shape (dim %d)", who, path, e->name,
                            d);
        e->shape[d] = (int64_t)v;
        numel *= v;
    }
    if (cJSON_GetArraySize(offs) != 2 || !json_uint(cJSON_GetArrayItem(offs, 0), &e->begin) ||
        !json_uint(cJSON_GetArrayItem(offs, 1), &e->end) || e->end < e->begin)
        return tg_error(TG_ERR_FORMAT, "%s: '%s': tensor '%s' needs data_offsets [begin, end] with 0 <= begin <= end",
                        who, path, e->name);
    if (e->end - e->begin != numel * DTYPES[e->dtype].size)
        return tg_error(TG_ERR_FORMAT,
                        "%s: '%s': tensor '%s' has data_offsets [%llu, %llu] (%llu bytes) but its shape and dtype %s "
                        "need %llu bytes", who, path, e->name, (unsigned long long)e->begin,
                        (unsigned long long)e->end, (unsigned long long)(e->end - e->begin), DTYPES[e->dtype].name,
                        (unsigned long long)(numel * DTYPES[e->dtype].size));
    return TG_OK;
}

/* "__metadata__" into st->meta: one block holding the pairs, then their strings. */
static tg_status parse_meta(tg_st_file *st, const cJSON *m)
{
    if (!cJSON_IsObject(m))
        return tg_error(TG_ERR_FORMAT, "%s: '%s': __metadata__ is not an object", st->who, st->path);
    if (st->meta) return tg_error(TG_ERR_FORMAT, "%s: '%s': __metadata__ appears twice", st->who, st->path);
    int n = 0;
    size_t bytes = 0;
    for (const cJSON *kv = m->child; kv; kv = kv->next) {
        if (!cJSON_IsString(kv))
            return tg_error(TG_ERR_FORMAT, "%s: '%s': __metadata__ value of '%s' is not a string", st->who, st->path,
                            kv->string);
        n++;
        bytes += strlen(kv->string) + strlen(kv->valuestring) + 2;
    }
    if (n == 0) return TG_OK;
    tg_st_pair *pairs = tg_malloc((size_t)n * sizeof *pairs + bytes);
    if (!pairs) return tg_last_status();
    char *at = (char *)(pairs + n);
    int i = 0;
    for (const cJSON *kv = m->child; kv; kv = kv->next, i++) {
        size_t k = strlen(kv->string) + 1, v = strlen(kv->valuestring) + 1;
        pairs[i] = (tg_st_pair){memcpy(at, kv->string, k), memcpy(at + k, kv->valuestring, v)};
        at += k + v;
    }
    st->meta = pairs;
    st->n_meta = n;
    return TG_OK;
}

/* Validates offsets: sorted by begin they must tile [0, data_size) exactly. */
static tg_status check_coverage(tg_st_file *st)
{
    const char *who = st->who;
    tg_st_entry **order = tg_malloc((size_t)(st->n ? st->n : 1) * sizeof *order);
    if (!order) return tg_last_status();
    for (int i = 0; i < st->n; i++) order[i] = &st->entries[i];
    qsort(order, (size_t)st->n, sizeof *order, cmp_begin);
    uint64_t at = 0;
    tg_status s = TG_OK;
    for (int i = 0; i < st->n && !s; i++) {
        const tg_st_entry *e = order[i];
        if (e->end > st->data_size)
            s = tg_error(TG_ERR_FORMAT, "%s: '%s': tensor '%s' data_offsets [%llu, %llu] run past the %llu data bytes "
                         "(truncated file?)", who, st->path, e->name, (unsigned long long)e->begin,
                         (unsigned long long)e->end, (unsigned long long)st->data_size);
        else if (e->begin < at)
            s = tg_error(TG_ERR_FORMAT, "%s: '%s': tensor '%s' data_offsets [%llu, %llu] overlap '%s'", who, st->path,
                         e->name, (unsigned long long)e->begin, (unsigned long long)e->end, order[i - 1]->name);
        else if (e->begin > at)
            s = tg_error(TG_ERR_FORMAT, "%s: '%s': bytes [%llu, %llu) before tensor '%s' belong to no tensor", who,
                         st->path, (unsigned long long)at, (unsigned long long)e->begin, e->name);
        at = e->end;
    }
    if (!s && at != st->data_size)
        s = tg_error(TG_ERR_FORMAT, "%s: '%s': the tensors cover %llu of the %llu data bytes (trailing bytes)", who,
                     st->path, (unsigned long long)at, (unsigned long long)st->data_size);
    tg_free(order);
    return s;
}

static tg_status parse_header(tg_st_file *st, const char *json, size_t len)
{
    const char *who = st->who, *path = st->path;
    if (len == 0 || json[0] != '{')
        return tg_error(TG_ERR_FORMAT, "%s: '%s': the header does not start with '{' (not a safetensors file?)", who,
                        path);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, false);
    if (!root) {
        size_t at = cJSON_GetErrorPtr() ? (size_t)(cJSON_GetErrorPtr() - json) : 0;
        return tg_error(TG_ERR_FORMAT, "%s: '%s': the JSON header is invalid near byte %zu", who, path, at);
    }
    tg_status s = TG_OK;
    for (const char *p = end; p < json + len && !s; p++)
        if (*p != ' ' && *p != '\n' && *p != '\t' && *p != '\r')
            s = tg_error(TG_ERR_FORMAT, "%s: '%s': unexpected bytes after the JSON header", who, path);
    if (!s && !cJSON_IsObject(root)) s = tg_error(TG_ERR_FORMAT, "%s: '%s': the header is not a JSON object", who, path);
    int n = 0;
    for (const cJSON *it = s ? NULL : root->child; it; it = it->next) n += strcmp(it->string, "__metadata__") != 0;
    if (!s && !(st->entries = tg_calloc((size_t)(n ? n : 1), sizeof *st->entries))) s = tg_last_status();
    for (const cJSON *it = s ? NULL : root->child; it && !s; it = it->next) {
        if (strcmp(it->string, "__metadata__") == 0) s = parse_meta(st, it);
        else s = parse_entry(st, it, &st->entries[st->n++]);
    }
    cJSON_Delete(root);
    if (s) return s;
    qsort(st->entries, (size_t)st->n, sizeof *st->entries, cmp_name);
    for (int i = 1; i < st->n; i++)
        if (strcmp(st->entries[i].name, st->entries[i - 1].name) == 0)
            return tg_error(TG_ERR_FORMAT, "%s: '%s': tensor '%s' appears twice in the header", who, path,
                            st->entries[i].name);
    return check_coverage(st);
}

tg_status tg_st_open(const char *path, tg_st_file *st, const char *who)
{
    memset(st, 0, sizeof *st);
    st->who = who;
    if (!path) return tg_error(TG_ERR_ARG, "%s: path is NULL", who);
    snprintf(st->path, sizeof st->path, "%s", path);
    st->f = tg_fopen_regular(path, who); /* never blocks on a FIFO; refuses directories and devices */
    if (!st->f) return tg_last_status();
    struct stat sb;
    uint8_t len8[TG_ST_LEN_BYTES];
    tg_status s = TG_OK;
    if (fstat(fileno(st->f), &sb) != 0 || !S_ISREG(sb.st_mode))
        s = tg_error(TG_ERR_IO, "%s: '%s' is not a regular file", who, path);
    else if (sb.st_size < TG_ST_LEN_BYTES || fread(len8, 1, TG_ST_LEN_BYTES, st->f) != TG_ST_LEN_BYTES)
        s = tg_error(TG_ERR_FORMAT, "%s: '%s' is %lld bytes, too short for a safetensors header", who, path,
                     (long long)sb.st_size);
    uint64_t hlen = 0;
    for (int i = 0; i < TG_ST_LEN_BYTES; i++) hlen |= (uint64_t)len8[i] << (8 * i);
    if (!s && (hlen > TG_ST_MAX_HEADER || hlen > (uint64_t)sb.st_size - TG_ST_LEN_BYTES))
        s = tg_error(TG_ERR_FORMAT, "%s: '%s': header length %llu is impossible (file has %lld bytes, limit %llu)", who,
                     path, (unsigned long long)hlen, (long long)sb.st_size, (unsigned long long)TG_ST_MAX_HEADER);
    char *json = s ? NULL : tg_malloc((size_t)hlen + 1);
    if (!s && !json) s = tg_last_status();
    if (!s && fread(json, 1, (size_t)hlen, st->f) != hlen)
        s = tg_error(TG_ERR_IO, "%s: '%s': cannot read the %llu-byte header", who, path, (unsigned long long)hlen);
    if (!s) {
        json[hlen] = 0;
        st->data_start = TG_ST_LEN_BYTES + hlen;
        st->data_size = (uint64_t)sb.st_size - st->data_start;
        s = parse_header(st, json, (size_t)hlen);
    }
    tg_free(json);
    if (s) tg_st_close(st);
    return s;
}

tg_st_entry *tg_st_find(tg_st_file *st, const char *name)
{
    tg_st_entry key;
    snprintf(key.name, sizeof key.name, "%s", name);
    return st->n ? bsearch(&key, st->entries, (size_t)st->n, sizeof key, cmp_name) : NULL;
}

tg_status tg_st_read(tg_st_file *st, const tg_st_entry *e, void *dst)
{
    size_t n = (size_t)(e->end - e->begin);
    if (n == 0) return TG_OK;
    if (fseeko(st->f, (off_t)(st->data_start + e->begin), SEEK_SET) != 0 || fread(dst, 1, n, st->f) != n)
        return tg_error(TG_ERR_IO, "%s: '%s': cannot read tensor '%s'", st->who, st->path, e->name);
    return TG_OK;
}

void tg_st_close(tg_st_file *st)
{
    if (st->f) fclose(st->f);
    tg_free(st->entries);
    tg_free(st->meta);
    st->f = NULL;
    st->entries = NULL;
    st->n = 0;
    st->meta = NULL;
    st->n_meta = 0;
}
