/* JSON in and out: a tolerant reader (bare NaN/Infinity become strings before
 * cJSON sees them) and a small writer that formats numbers itself (%.9g, so
 * float32 values round-trip; NaN, Infinity, -Infinity as JSON extensions). */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "losslab.h"

static bool starts_with(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

cJSON *ll_json_parse(const char *text)
{
    size_t n = strlen(text);
    char *out = malloc(2 * n + 1); /* each 3+ char token grows by 2 quotes at most */
    if (!out) return NULL;
    size_t o = 0;
    bool in_string = false;
    for (size_t i = 0; i < n;) {
        char ch = text[i];
        if (in_string) {
            out[o++] = ch;
            if (ch == '\\' && i + 1 < n) out[o++] = text[++i];
            else if (ch == '"') in_string = false;
            i++;
            continue;
        }
        if (ch == '"') in_string = true;
        const char *tok = starts_with(text + i, "-Infinity") ? "-Infinity"
                          : starts_with(text + i, "Infinity") ? "Infinity"
                          : starts_with(text + i, "NaN")      ? "NaN"
                                                              : NULL;
        if (tok) {
            size_t k = strlen(tok);
            out[o++] = '"';
            memcpy(out + o, tok, k);
            o += k;
            out[o++] = '"';
            i += k;
        } else {
            out[o++] = ch;
            i++;
        }
    }
    out[o] = '\0';
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(out, &end, true); /* nothing but whitespace after the value */
    free(out);
    return root;
}

bool ll_json_number(const cJSON *v, double *out)
{
    if (cJSON_IsNumber(v)) {
        *out = v->valuedouble;
        return true;
    }
    if (cJSON_IsString(v)) {
        if (strcmp(v->valuestring, "NaN") == 0) *out = NAN;
        else if (strcmp(v->valuestring, "Infinity") == 0) *out = INFINITY;
        else if (strcmp(v->valuestring, "-Infinity") == 0) *out = -INFINITY;
        else return false;
        return true;
    }
    return false;
}

/* ---- writer --------------------------------------------------------------- */

static void buf_reserve(ll_buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) abort(); /* out of memory in a CLI: nothing sensible to do */
    b->s = s;
    b->cap = cap;
}

void ll_buf_printf(ll_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k < 0) return;
    buf_reserve(b, (size_t)k);
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)k + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)k;
}

void ll_buf_num(ll_buf *b, double v)
{
    if (isnan(v)) ll_buf_printf(b, "NaN");
    else if (isinf(v)) ll_buf_printf(b, v > 0 ? "Infinity" : "-Infinity");
    else ll_buf_printf(b, "%.9g", v);
}

void ll_buf_str(ll_buf *b, const char *s)
{
    ll_buf_printf(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') ll_buf_printf(b, "\\%c", *p);
        else if (*p == '\n') ll_buf_printf(b, "\\n");
        else if (*p < 0x20) ll_buf_printf(b, "\\u%04x", *p);
        else ll_buf_printf(b, "%c", *p);
    }
    ll_buf_printf(b, "\"");
}

static void tensor_json_rec(ll_buf *b, const tg_tensor *t, int dim, int64_t *offset)
{
    if (dim == t->ndim) {
        if (t->dtype == TG_I64) ll_buf_printf(b, "%lld", (long long)t->idata[*offset]);
        else ll_buf_num(b, t->data[*offset]);
        (*offset)++;
        return;
    }
    ll_buf_printf(b, "[");
    for (int64_t i = 0; i < t->shape[dim]; i++) {
        if (i) ll_buf_printf(b, ", ");
        tensor_json_rec(b, t, dim + 1, offset);
    }
    ll_buf_printf(b, "]");
}

void ll_buf_tensor_json(ll_buf *b, const tg_tensor *t)
{
    if (!t) {
        ll_buf_printf(b, "null");
        return;
    }
    int64_t offset = 0;
    tensor_json_rec(b, t, 0, &offset);
}

void ll_buf_free(ll_buf *b)
{
    free(b->s);
    *b = (ll_buf){0};
}
