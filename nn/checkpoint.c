/* Checkpoints: a model's state_dict plus optional training state (optimizer,
 * scheduler, RNGs, metadata) in one safetensors file, so training resumes exactly. */
#include <stdlib.h>
#include <string.h>

#include "../core/core_internal.h"
#include "nn_internal.h"

/* ---- metadata map ------------------------------------------------------- */

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = tg_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

tg_status tg_meta_set(tg_meta *m, const char *key, const char *value)
{
    if (!m || !key || !value) return tg_error(TG_ERR_ARG, "tg_meta_set: map, key or value is NULL");
    for (int i = 0; i < m->count; i++)
        if (strcmp(m->keys[i], key) == 0) {
            char *v = dup_str(value);
            if (!v) return tg_last_status();
            tg_free(m->values[i]);
            m->values[i] = v;
            return TG_OK;
        }
    if (m->count == m->cap) {
        int cap = m->cap ? 2 * m->cap : 8;
        char **k = tg_malloc((size_t)cap * sizeof *k), **v = k ? tg_malloc((size_t)cap * sizeof *v) : NULL;
        if (!v) {
            tg_free(k);
            return tg_last_status();
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
    }
    char *k = dup_str(key), *v = k ? dup_str(value) : NULL;
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

/* ---- what goes into the file -------------------------------------------- */

static bool is_training_state(const char *name)
{
    return strncmp(name, "optim.", 6) == 0 || strncmp(name, "sched.", 6) == 0 || strncmp(name, "rng.", 4) == 0;
}

/* Scalars converted to int64 for the file (and read back through here). */
typedef struct {
    int64_t has_spare[TG_CKPT_MAX_RNGS];
} scratch;

typedef struct {
    tg_st_entry *e;
    int n, cap;
} entry_vec;

static tg_st_entry *push(entry_vec *v, tg_st_dtype dtype, int ndim, const int64_t *shape, const void *data,
                         const char *fmt, const char *a, const char *b)
{
    if (v->n == v->cap) {
        int cap = v->cap ? 2 * v->cap : 32;
        tg_st_entry *e = tg_malloc((size_t)cap * sizeof *e);
        if (!e) return NULL;
        if (v->n) memcpy(e, v->e, (size_t)v->n * sizeof *e);
        tg_free(v->e);
        v->e = e;
        v->cap = cap;
    }
    tg_st_entry *e = &v->e[v->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, fmt, a, b);
    e->dtype = dtype;
    e->ndim = ndim;
    for (int d = 0; d < ndim; d++) e->shape[d] = shape[d];
    e->data = data;
    return e;
}

static const char *OPT_STATE_NAMES[3][3] = {
    [TG_OPTIM_SGD] = {"momentum_buffer", NULL, NULL},
    [TG_OPTIM_ADAM] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
    [TG_OPTIM_ADAMW] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
};

static float *opt_state(const tg_optimizer *o, int k)
{
    return k == 0 ? o->buf : k == 1 ? o->sq : o->max_sq;
}

static bool opt_state_wanted(const tg_optimizer *o, int k)
{
    if (o->step_count == 0) return false;
    if (o->kind == TG_OPTIM_SGD) {
        bool any_momentum = false;
        for (int g = 0; g < o->n_groups; g++) any_momentum |= o->groups[g].momentum != 0.0;
        return k == 0 && any_momentum;
    }
    return k < 2 || o->amsgrad;
}

/* Lists every tensor of the checkpoint, pointing at its live memory. */
static tg_status collect(entry_vec *v, const tg_param_list *list, const tg_ckpt_opts *o, scratch *sc)
{
    static const int64_t four = 4;
    for (int i = 0; i < list->count; i++) {
        const tg_param_entry *p = &list->entries[i];
        const tg_tensor *t = p->tensor;
        const void *data = t->dtype == TG_F32 ? (const void *)t->data : (const void *)t->idata;
        if (!push(v, t->dtype == TG_F32 ? TG_ST_F32 : TG_ST_I64, t->ndim, t->shape, data, "%s%s", p->name, ""))
            return tg_last_status();
    }
    if (!o) return TG_OK;
    if (o->optim) {
        const tg_optimizer *op = o->optim;
        if (op->params != list)
            return tg_error(TG_ERR_ARG, "tg_checkpoint: the optimizer belongs to another parameter list");
        if (!push(v, TG_ST_I64, 0, NULL, &op->step_count, "optim.step%s%s", "", "") ||
            !push(v, TG_ST_F64, 0, NULL, &op->groups[0].lr, "optim.lr%s%s", "", ""))
            return tg_last_status();
        /* further groups' lrs, and the steps a frozen parameter skipped: only when there are any,
         * so a one-group optimizer that never froze anything writes the same file as before */
        for (int g = 1; g < op->n_groups; g++) {
            char id[16];
            snprintf(id, sizeof id, "%d", g);
            if (!push(v, TG_ST_F64, 0, NULL, &op->groups[g].lr, "optim.group%s.lr%s", id, "")) return tg_last_status();
        }
        for (int i = 0; op->frozen_steps && i < op->n_entries && i < list->count; i++)
            if (op->frozen_steps[i] &&
                !push(v, TG_ST_I64, 0, NULL, &op->frozen_steps[i], "optim.%s.%s", list->entries[i].name, "frozen_steps"))
                return tg_last_status();
        for (int k = 0; k < 3; k++) {
            if (!opt_state_wanted(op, k)) continue;
            for (int i = 0; i < list->count; i++) {
                const tg_param_entry *p = &list->entries[i];
                if (p->kind != TG_KIND_PARAM) continue;
                const float *s = opt_state(op, k);
                if (!push(v, TG_ST_F32, p->tensor->ndim, p->tensor->shape, s ? s + p->offset : NULL,
                          "optim.%s.%s", p->name, OPT_STATE_NAMES[op->kind][k]))
                    return tg_last_status();
            }
        }
    }
    if (o->sched && !push(v, TG_ST_I64, 0, NULL, &o->sched->last_epoch, "sched.last_epoch%s%s", "", ""))
        return tg_last_status();
    if (o->n_rngs < 0 || o->n_rngs > TG_CKPT_MAX_RNGS)
        return tg_error(TG_ERR_ARG, "tg_checkpoint: n_rngs must be 0 to %d, got %d", TG_CKPT_MAX_RNGS, o->n_rngs);
    for (int r = 0; r < o->n_rngs; r++) {
        const char *nm = o->rng_names[r];
        if (!o->rngs[r] || !nm || !nm[0]) return tg_error(TG_ERR_ARG, "tg_checkpoint: rng %d or its name is missing", r);
        sc->has_spare[r] = o->rngs[r]->has_spare;
        if (!push(v, TG_ST_I64, 1, &four, o->rngs[r]->s, "rng.%s.%s", nm, "state") ||
            !push(v, TG_ST_I64, 0, NULL, &sc->has_spare[r], "rng.%s.%s", nm, "has_spare") ||
            !push(v, TG_ST_F32, 0, NULL, &o->rngs[r]->spare, "rng.%s.%s", nm, "spare"))
            return tg_last_status();
    }
    return TG_OK;
}

tg_status tg_checkpoint_save(const char *path, const tg_param_list *list, const tg_ckpt_opts *opts)
{
    if (!list) return tg_error(TG_ERR_ARG, "tg_checkpoint_save: parameter list is NULL");
    entry_vec v = {0};
    scratch sc;
    tg_status s = collect(&v, list, opts, &sc);
    for (int i = 0; !s && i < v.n; i++)
        if (!v.e[i].data && v.e[i].ndim > 0 && v.e[i].shape[0] > 0)
            s = tg_error(TG_ERR_STATE, "tg_checkpoint_save: '%s' has no data", v.e[i].name);
    if (!s) s = tg_st_write(path, v.e, v.n, opts ? opts->meta : NULL);
    tg_free(v.e);
    return s;
}

/* ---- loading ------------------------------------------------------------ */

static void note(char *buf, size_t cap, const char *name)
{
    size_t len = strlen(buf);
    if (len + strlen(name) + 6 >= cap) {
        if (len + 4 < cap && (len < 3 || strcmp(buf + len - 3, "...") != 0)) strcat(buf, "...");
        return;
    }
    if (len) strcat(buf, ", ");
    strcat(buf, name);
}

/* Finds `name` in the file and checks its dtype and shape. required: absence is an error. */
static tg_status match(tg_st_file *st, const char *name, tg_st_dtype dtype, int ndim, const int64_t *shape,
                       bool required, tg_st_entry **out)
{
    const char *who = "tg_checkpoint_load";
    tg_st_entry *e = tg_st_find(st, name);
    *out = e;
    if (!e) return required ? tg_error(TG_ERR_FORMAT, "%s: '%s' has no tensor '%s'", who, st->path, name) : TG_OK;
    e->used = true;
    char a[96], b[96];
    if (e->dtype != dtype)
        return tg_error(TG_ERR_FORMAT, "%s: '%s': tensor '%s' has dtype %s, expected %s", who, st->path, name,
                        tg_st_dtype_name(e->dtype), tg_st_dtype_name(dtype));
    bool same = e->ndim == ndim;
    for (int d = 0; same && d < ndim; d++) same = e->shape[d] == shape[d];
    if (!same)
        return tg_error(TG_ERR_SHAPE, "%s: '%s': tensor '%s' has shape %s in the file but %s in the model", who,
                        st->path, name, tg_dims_str(e->ndim, e->shape, a, sizeof a), tg_dims_str(ndim, shape, b, sizeof b));
    return TG_OK;
}

typedef struct {
    tg_st_entry *e;
    void *dst;
} copy_job;

static tg_status plan_optim(tg_st_file *st, tg_optimizer *op, const tg_param_list *list, copy_job *jobs, int *nj,
                            int64_t *step, double *lr, int64_t *frozen)
{
    tg_st_entry *e;
    tg_status s;
    if ((s = match(st, "optim.step", TG_ST_I64, 0, NULL, true, &e))) return s;
    jobs[(*nj)++] = (copy_job){e, step};
    if ((s = match(st, "optim.lr", TG_ST_F64, 0, NULL, true, &e))) return s;
    jobs[(*nj)++] = (copy_job){e, &lr[0]};
    char name[TG_ST_NAME_LEN];
    for (int g = 1; g <= op->n_groups; g++) {
        snprintf(name, sizeof name, "optim.group%d.lr", g);
        bool want = g < op->n_groups;
        if ((s = match(st, name, TG_ST_F64, 0, NULL, want, &e))) return s;
        if (!want && e)
            return tg_error(TG_ERR_FORMAT, "tg_checkpoint_load: '%s' has more parameter groups than the optimizer (%d)",
                            st->path, op->n_groups);
        if (want) jobs[(*nj)++] = (copy_job){e, &lr[g]};
    }
    for (int i = 0; i < list->count; i++) {
        frozen[i] = 0;
        if (list->entries[i].kind != TG_KIND_PARAM) continue;
        snprintf(name, sizeof name, "optim.%s.frozen_steps", list->entries[i].name);
        if ((s = match(st, name, TG_ST_I64, 0, NULL, false, &e))) return s;
        if (e) jobs[(*nj)++] = (copy_job){e, &frozen[i]};
    }
    int64_t file_step = 0;
    if ((s = tg_st_read(st, tg_st_find(st, "optim.step"), &file_step))) return s;
    if (file_step < 0) return tg_error(TG_ERR_FORMAT, "tg_checkpoint_load: '%s': optim.step is negative", st->path);
    tg_optimizer probe = *op;
    probe.step_count = file_step;
    for (int k = 0; k < 3; k++) {
        if (!opt_state_wanted(&probe, k)) continue;
        if (!opt_state(op, k)) {
            float **slot = k == 0 ? &op->buf : k == 1 ? &op->sq : &op->max_sq;
            if (!(*slot = tg_aligned_alloc((size_t)(op->numel ? op->numel : 1) * sizeof(float))))
                return tg_last_status();
            memset(*slot, 0, (size_t)op->numel * sizeof(float));
        }
        for (int i = 0; i < list->count; i++) {
            const tg_param_entry *p = &list->entries[i];
            if (p->kind != TG_KIND_PARAM) continue;
            snprintf(name, sizeof name, "optim.%s.%s", p->name, OPT_STATE_NAMES[op->kind][k]);
            if ((s = match(st, name, TG_ST_F32, p->tensor->ndim, p->tensor->shape, true, &e))) return s;
            jobs[(*nj)++] = (copy_job){e, opt_state(op, k) + p->offset};
        }
    }
    return TG_OK;
}

tg_status tg_checkpoint_load(const char *path, tg_param_list *list, const tg_ckpt_opts *opts, tg_ckpt_report *report)
{
    const char *who = "tg_checkpoint_load";
    tg_ckpt_report local;
    if (!report) report = &local;
    memset(report, 0, sizeof *report);
    if (!list) return tg_error(TG_ERR_ARG, "%s: parameter list is NULL", who);
    if (opts && opts->optim && opts->optim->params != list)
        return tg_error(TG_ERR_ARG, "%s: the optimizer belongs to another parameter list", who);
    if (opts && (opts->n_rngs < 0 || opts->n_rngs > TG_CKPT_MAX_RNGS))
        return tg_error(TG_ERR_ARG, "%s: n_rngs must be 0 to %d", who, TG_CKPT_MAX_RNGS);
    tg_meta meta = {0};
    tg_st_file st;
    tg_status s = tg_st_open(path, &st, opts && opts->meta ? &meta : NULL);
    if (s) { /* the header may have failed after its __metadata__ was read */
        tg_meta_clear(&meta);
        return s;
    }
    int max_jobs = list->count * 5 + 8 + TG_OPTIM_MAX_GROUPS + 3 * TG_CKPT_MAX_RNGS;
    copy_job *jobs = tg_malloc((size_t)max_jobs * sizeof *jobs);
    int64_t *frozen = jobs ? tg_calloc((size_t)list->count + 1, sizeof *frozen) : NULL;
    if (!frozen) s = tg_last_status();
    int nj = 0;
    /* 1. match everything (no copying yet); the model's tensors all at once, so one message
     * names every difference (as load_state_dict's missing / unexpected / size mismatch) */
    char differ[1024] = "";
    tg_status differ_status = TG_OK;
    for (int i = 0; !s && i < list->count; i++) {
        tg_param_entry *p = &list->entries[i];
        tg_tensor *t = p->tensor;
        tg_st_entry *e = tg_st_find(&st, p->name);
        if (!e) {
            report->n_missing++;
            note(report->missing, sizeof report->missing, p->name);
            continue;
        }
        e->used = true;
        tg_st_dtype want = t->dtype == TG_F32 ? TG_ST_F32 : TG_ST_I64;
        bool same = e->ndim == t->ndim;
        for (int d = 0; same && d < t->ndim; d++) same = e->shape[d] == t->shape[d];
        char what[TG_ST_NAME_LEN + 128], a[96], b[96];
        if (e->dtype != want)
            snprintf(what, sizeof what, "tensor '%s' has dtype %s, expected %s", p->name, tg_st_dtype_name(e->dtype),
                     tg_st_dtype_name(want));
        else if (!same)
            snprintf(what, sizeof what, "tensor '%s' has shape %s in the file but %s in the model", p->name,
                     tg_dims_str(e->ndim, e->shape, a, sizeof a), tg_dims_str(t->ndim, t->shape, b, sizeof b));
        else {
            jobs[nj++] = (copy_job){e, t->dtype == TG_F32 ? (void *)t->data : (void *)t->idata};
            continue;
        }
        if (!differ_status) differ_status = e->dtype != want ? TG_ERR_FORMAT : TG_ERR_SHAPE;
        size_t len = strlen(differ);
        if (len + strlen(what) + 8 < sizeof differ) snprintf(differ + len, sizeof differ - len, "%s%s", len ? "; " : "", what);
        else if (len + 4 < sizeof differ && strcmp(differ + len - 3, "...") != 0) strcat(differ, "...");
    }
    for (int i = 0; !s && i < st.n; i++)
        if (!st.entries[i].used && !is_training_state(st.entries[i].name)) {
            report->n_unexpected++;
            note(report->unexpected, sizeof report->unexpected, st.entries[i].name);
        }
    bool strict = !(opts && opts->non_strict);
    if (!s && (differ_status || (strict && (report->n_missing || report->n_unexpected))))
        s = tg_error(differ_status ? differ_status : TG_ERR_FORMAT,
                     "%s: '%s' does not match the model%s: %s%smissing [%s], unexpected [%s]%s", who, path,
                     strict ? "" : " (non-strict load)", differ, differ[0] ? "; " : "", report->missing,
                     report->unexpected,
                     strict && !differ_status ? " (tg_ckpt_opts.non_strict loads the tensors that match)" : "");
    int64_t step = 0, has_spare[TG_CKPT_MAX_RNGS] = {0};
    double lr[TG_OPTIM_MAX_GROUPS] = {0};
    tg_optimizer *op = opts ? opts->optim : NULL;
    if (!s && op && op->numel != list->block_numel)
        s = tg_error(TG_ERR_STATE, "%s: parameters were added to the list after the optimizer was made", who);
    if (!s && op && !tg_optim_sync_entries(op)) s = tg_last_status();
    if (!s && op) s = plan_optim(&st, op, list, jobs, &nj, &step, lr, frozen);
    tg_st_entry *e;
    if (!s && opts && opts->sched) {
        s = match(&st, "sched.last_epoch", TG_ST_I64, 0, NULL, true, &e);
        if (!s) jobs[nj++] = (copy_job){e, &opts->sched->last_epoch};
    }
    static const int64_t four = 4;
    for (int r = 0; !s && opts && r < opts->n_rngs; r++) {
        char name[TG_ST_NAME_LEN];
        const char *nm = opts->rng_names[r] ? opts->rng_names[r] : "";
        if (!opts->rngs[r]) s = tg_error(TG_ERR_ARG, "%s: rng %d is NULL", who, r);
        snprintf(name, sizeof name, "rng.%s.state", nm);
        if (!s && !(s = match(&st, name, TG_ST_I64, 1, &four, true, &e))) jobs[nj++] = (copy_job){e, opts->rngs[r]->s};
        snprintf(name, sizeof name, "rng.%s.has_spare", nm);
        if (!s && !(s = match(&st, name, TG_ST_I64, 0, NULL, true, &e))) jobs[nj++] = (copy_job){e, &has_spare[r]};
        snprintf(name, sizeof name, "rng.%s.spare", nm);
        if (!s && !(s = match(&st, name, TG_ST_F32, 0, NULL, true, &e))) jobs[nj++] = (copy_job){e, &opts->rngs[r]->spare};
    }
    /* 2. copy */
    for (int j = 0; !s && j < nj; j++) s = tg_st_read(&st, jobs[j].e, jobs[j].dst);
    if (!s) {
        report->n_loaded = nj;
        if (op) {
            op->step_count = step;
            for (int g = 0; g < op->n_groups; g++) op->groups[g].lr = lr[g];
            memcpy(op->frozen_steps, frozen, (size_t)list->count * sizeof *frozen);
        }
        for (int r = 0; opts && r < opts->n_rngs; r++) opts->rngs[r]->has_spare = has_spare[r] != 0;
        if (opts && opts->meta) {
            tg_meta_clear(opts->meta);
            *opts->meta = meta;
            meta = (tg_meta){0};
        }
    }
    tg_meta_clear(&meta);
    tg_free(jobs);
    tg_free(frozen);
    tg_st_close(&st);
    return s;
}
