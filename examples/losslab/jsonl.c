/* --jsonl: one case per input line, one result line per case; ids are echoed as written. */
#include <stdlib.h>
#include <string.h>

#include "losslab.h"

bool ll_run_case(const cJSON *obj, bool details, ll_buf *b, ll_case *c, ll_result *r, char *err, size_t n)
{
    if (!ll_case_from_json(obj, c, err, n)) return false;
    if (!ll_run(c, details, r, err, n)) return false;
    ll_json_result(b, c, r, details);
    return true;
}

/* As cJSON: every byte from 1 to 32 is whitespace. */
static const char *skip_ws(const char *p)
{
    while (*p && (unsigned char)*p <= 32) p++;
    return p;
}

/* p at '"': past the closing quote (NULL if the string does not end). */
static const char *skip_string(const char *p)
{
    for (p++; *p; p++) {
        if (*p == '\\' && p[1]) p++;
        else if (*p == '"') return p + 1;
    }
    return NULL;
}

/* Past one JSON value (NULL if malformed); bare NaN/Infinity are scalars like numbers. */
static const char *skip_value(const char *p)
{
    if (*p == '"') return skip_string(p);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (*p) {
            if (*p == '"') {
                if (!(p = skip_string(p))) return NULL;
                continue;
            }
            if (*p == '{' || *p == '[') depth++;
            else if ((*p == '}' || *p == ']') && --depth == 0) return p + 1;
            p++;
        }
        return NULL;
    }
    const char *s = p;
    while (*p && (unsigned char)*p > 32 && !strchr(",}]", *p)) p++;
    return p > s ? p : NULL;
}

bool ll_json_raw_member(const char *text, const char *key, const char **start, size_t *len)
{
    size_t klen = strlen(key);
    const char *p = skip_ws(text);
    if (*p++ != '{') return false;
    for (;;) {
        p = skip_ws(p);
        if (*p != '"') return false;
        const char *k = p + 1, *kend = skip_string(p);
        if (!kend) return false;
        bool match = (size_t)(kend - 1 - k) == klen && memcmp(k, key, klen) == 0;
        p = skip_ws(kend);
        if (*p++ != ':') return false;
        p = skip_ws(p);
        const char *v = p;
        if (!(p = skip_value(p))) return false;
        if (match) {
            *start = v;
            *len = (size_t)(p - v);
            return true;
        }
        p = skip_ws(p);
        if (*p++ != ',') return false;
    }
}

/* s[0..n) is a number as JSON writes them: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? (cJSON also
 * reads "+1", "1." or ".5", which are no JSON to echo). */
static bool is_json_number(const char *s, size_t n)
{
    size_t i = 0;
#define DIGITS(min)                                                   \
    do {                                                              \
        size_t k = 0;                                                 \
        while (i < n && s[i] >= '0' && s[i] <= '9') i++, k++;         \
        if (k < (min)) return false;                                  \
    } while (0)
    if (i < n && s[i] == '-') i++;
    if (i < n && s[i] == '0') i++;
    else DIGITS(1);
    if (i < n && s[i] == '.') {
        i++;
        DIGITS(1);
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        DIGITS(1);
    }
#undef DIGITS
    return i == n;
}

/* A numeric id as the line wrote it (a 20-digit integer stays those digits), else as cJSON prints it. */
static void write_id(ll_buf *b, const char *line, const cJSON *obj)
{
    const cJSON *id = cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, "id") : NULL;
    const char *raw;
    size_t len;
    if (cJSON_IsNumber(id) && ll_json_raw_member(line, "id", &raw, &len) && is_json_number(raw, len)) {
        ll_buf_printf(b, "{\"id\": %.*s", (int)len, raw);
        return;
    }
    char *s = id ? cJSON_PrintUnformatted(id) : NULL;
    ll_buf_printf(b, "{\"id\": %s", s ? s : "null");
    free(s);
}

void ll_jsonl_line(const char *line, ll_buf *out)
{
    char err[LL_ERR_LEN] = "";
    ll_case c = {0};
    ll_result r = {0};
    cJSON *obj = ll_json_parse(line);
    size_t start = out->len;
    write_id(out, line, obj);
    size_t head = out->len;
    bool ok;
    if (!obj) {
        snprintf(err, sizeof err, "malformed JSON line (expected one JSON object per line)");
        ok = false;
    } else {
        ll_buf_printf(out, ", ");
        ok = ll_run_case(obj, false, out, &c, &r, err, sizeof err);
    }
    if (!ok) {
        out->len = head;
        ll_buf_printf(out, ", \"error\": ");
        ll_buf_str(out, err);
    }
    ll_buf_printf(out, "}\n");
    (void)start;
    ll_result_free(&r);
    ll_case_free(&c);
    cJSON_Delete(obj);
}
