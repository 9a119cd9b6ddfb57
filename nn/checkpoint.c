/* Checkpoints: a model's state_dict plus optional training state (optimizer,
 * scheduler, RNGs, metadata) in one safetensors file, so training resumes exactly.
 * Built on the format layer (nn/safetensors.c) and the metadata map (nn/meta.c). */
#include <stdlib.h>
#include <string.h>

#include "../core/core_internal.h"
#include "nn_internal.h"

/* ---- what goes into the file -------------------------------------------- */

static const char SAVE[] = "tg_checkpoint_save", LOAD[] = "tg_checkpoint_load";

/* Optimizer state tensors per parameter: SGD's momentum_buffer; Adam's exp_avg, exp_avg_sq, max_exp_avg_sq. */
#define OPT_STATES 3
/* A generator's state words (xoshiro256**), stored as one I64 tensor of this length. */
#define RNG_STATE_WORDS 4
_Static_assert(sizeof ((tg_rng *)0)->s == RNG_STATE_WORDS * sizeof(uint64_t), "tg_rng's state is 4 words");
/* Tensors per generator: state, has_spare, spare. */
#define RNG_TENSORS 3

static bool starts_with(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

static bool is_training_state(const char *name)
{
    return starts_with(name, "optim.") || starts_with(name, "sched.") || starts_with(name, "rng.");
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

static const char *OPT_STATE_NAMES[TG_OPTIM_ADAMW + 1][OPT_STATES] = {
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
    static const int64_t state_words = RNG_STATE_WORDS;
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
        for (int k = 0; k < OPT_STATES; k++) {
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
        if (!push(v, TG_ST_I64, 1, &state_words, o->rngs[r]->s, "rng.%s.%s", nm, "state") ||
            !push(v, TG_ST_I64, 0, NULL, &sc->has_spare[r], "rng.%s.%s", nm, "has_spare") ||
            !push(v, TG_ST_F32, 0, NULL, &o->rngs[r]->spare, "rng.%s.%s", nm, "spare"))
            return tg_last_status();
    }
    return TG_OK;
}

tg_status tg_checkpoint_save(const char *path, const tg_param_list *list, const tg_ckpt_opts *opts)
{
    if (!list) return tg_error(TG_ERR_ARG, "%s: parameter list is NULL", SAVE);
    entry_vec v = {0};
    scratch sc;
    tg_st_pair *meta = NULL;
    int n_meta = 0;
    tg_status s = collect(&v, list, opts, &sc);
    for (int i = 0; !s && i < v.n; i++)
        if (!v.e[i].data && v.e[i].ndim > 0 && v.e[i].shape[0] > 0)
            s = tg_error(TG_ERR_STATE, "%s: '%s' has no data", SAVE, v.e[i].name);
    if (!s) s = tg_meta_to_pairs(opts ? opts->meta : NULL, &meta, &n_meta);
    if (!s) s = tg_st_write(path, v.e, v.n, meta, n_meta, SAVE);
    tg_free(meta);
    tg_free(v.e);
    return s;
}

/* ---- loading ------------------------------------------------------------ */

/* Appends sep + item to the list in buf while there is room for it and a later "...", else "..." once. */
static void list_append(char *buf, size_t cap, const char *sep, const char *item)
{
    static const char more[] = "...";
    const size_t len = strlen(buf), more_len = strlen(more);
    if (len + strlen(sep) + strlen(item) + more_len + 1 >= cap) {
        bool ends_more = len >= more_len && strcmp(buf + len - more_len, more) == 0;
        if (!ends_more && len + more_len + 1 < cap) strcat(buf, more);
        return;
    }
    if (len) strcat(buf, sep);
    strcat(buf, item);
}

/* Finds `name` in the file and checks its dtype and shape. required: absence is an error. */
static tg_status match(tg_st_file *st, const char *name, tg_st_dtype dtype, int ndim, const int64_t *shape,
                       bool required, tg_st_entry **out)
{
    tg_st_entry *e = tg_st_find(st, name);
    *out = e;
    if (!e) return required ? tg_error(TG_ERR_FORMAT, "%s: '%s' has no tensor '%s'", LOAD, st->path, name) : TG_OK;
    e->used = true;
    char a[96], b[96];
    if (e->dtype != dtype)
        return tg_error(TG_ERR_FORMAT, "%s: '%s': tensor '%s' has dtype %s, expected %s", LOAD, st->path, name,
                        tg_st_dtype_name(e->dtype), tg_st_dtype_name(dtype));
    bool same = e->ndim == ndim;
    for (int d = 0; same && d < ndim; d++) same = e->shape[d] == shape[d];
    if (!same)
        return tg_error(TG_ERR_SHAPE, "%s: '%s': tensor '%s' has shape %s in the file but %s in the model", LOAD,
                        st->path, name, tg_dims_str(e->ndim, e->shape, a, sizeof a), tg_dims_str(ndim, shape, b, sizeof b));
    return TG_OK;
}

typedef struct {
    tg_st_entry *e;
    void *dst;
} copy_job;

/* A load in progress: everything is matched first, then copied (jobs), then committed: values
 * that are not tensors of the model are staged here until then. */
typedef struct {
    tg_st_file st;
    copy_job *jobs;
    int nj;
    tg_meta meta;                           /* the file's __metadata__ */
    int64_t step, *frozen;                  /* optimizer: step_count, frozen_steps per list entry */
    double lr[TG_OPTIM_MAX_GROUPS];
    int64_t has_spare[TG_CKPT_MAX_RNGS];
} ckpt_load;

static void add_job(ckpt_load *ld, tg_st_entry *e, void *dst) { ld->jobs[ld->nj++] = (copy_job){e, dst}; }

static tg_status check_load_args(const tg_param_list *list, const tg_ckpt_opts *opts)
{
    if (!list) return tg_error(TG_ERR_ARG, "%s: parameter list is NULL", LOAD);
    if (opts && opts->optim && opts->optim->params != list)
        return tg_error(TG_ERR_ARG, "%s: the optimizer belongs to another parameter list", LOAD);
    if (opts && (opts->n_rngs < 0 || opts->n_rngs > TG_CKPT_MAX_RNGS))
        return tg_error(TG_ERR_ARG, "%s: n_rngs must be 0 to %d", LOAD, TG_CKPT_MAX_RNGS);
    return TG_OK;
}

/* Opens path and makes room for every copy the load can plan. */
static tg_status load_open(ckpt_load *ld, const char *path, const tg_param_list *list, bool want_meta)
{
    tg_status s = tg_st_open(path, &ld->st, LOAD);
    if (s) return s;
    if (want_meta && (s = tg_meta_from_pairs(&ld->meta, ld->st.meta, ld->st.n_meta))) return s;
    /* per list entry: the tensor, its frozen_steps and its optimizer states; then optim.step,
     * optim.lr and sched.last_epoch (with room to spare), one lr per group, and the generators */
    int max_jobs = list->count * (2 + OPT_STATES) + 8 + TG_OPTIM_MAX_GROUPS + RNG_TENSORS * TG_CKPT_MAX_RNGS;
    ld->jobs = tg_malloc((size_t)max_jobs * sizeof *ld->jobs);
    ld->frozen = ld->jobs ? tg_calloc((size_t)list->count + 1, sizeof *ld->frozen) : NULL;
    return ld->frozen ? TG_OK : tg_last_status();
}

/* Why the file's tensor e cannot load into the model's p (into what; TG_OK if it can). */
static tg_status model_tensor_differs(const tg_st_entry *e, const tg_param_entry *p, char *what, size_t cap)
{
    const tg_tensor *t = p->tensor;
    tg_st_dtype want = t->dtype == TG_F32 ? TG_ST_F32 : TG_ST_I64;
    bool same = e->ndim == t->ndim;
    for (int d = 0; same && d < t->ndim; d++) same = e->shape[d] == t->shape[d];
    char a[96], b[96];
    if (e->dtype != want) {
        snprintf(what, cap, "tensor '%s' has dtype %s, expected %s", p->name, tg_st_dtype_name(e->dtype),
                 tg_st_dtype_name(want));
        return TG_ERR_FORMAT;
    }
    if (!same) {
        snprintf(what, cap, "tensor '%s' has shape %s in the file but %s in the model", p->name,
                 tg_dims_str(e->ndim, e->shape, a, sizeof a), tg_dims_str(t->ndim, t->shape, b, sizeof b));
        return TG_ERR_SHAPE;
    }
    return TG_OK;
}

/* The model's tensors, all at once, so one message names every difference (as load_state_dict's
 * missing / unexpected / size mismatch); strict: a missing or unexpected tensor is one too. */
static tg_status plan_model(ckpt_load *ld, const tg_param_list *list, bool strict, tg_ckpt_report *report)
{
    char differ[1024] = "", what[TG_ST_NAME_LEN + 128];
    tg_status differ_status = TG_OK;
    for (int i = 0; i < list->count; i++) {
        const tg_param_entry *p = &list->entries[i];
        tg_st_entry *e = tg_st_find(&ld->st, p->name);
        if (!e) {
            report->n_missing++;
            list_append(report->missing, sizeof report->missing, ", ", p->name);
            continue;
        }
        e->used = true;
        tg_status d = model_tensor_differs(e, p, what, sizeof what);
        if (!d) {
            add_job(ld, e, p->tensor->dtype == TG_F32 ? (void *)p->tensor->data : (void *)p->tensor->idata);
            continue;
        }
        if (!differ_status) differ_status = d;
        list_append(differ, sizeof differ, "; ", what);
    }
    for (int i = 0; i < ld->st.n; i++)
        if (!ld->st.entries[i].used && !is_training_state(ld->st.entries[i].name)) {
            report->n_unexpected++;
            list_append(report->unexpected, sizeof report->unexpected, ", ", ld->st.entries[i].name);
        }
    if (!differ_status && !(strict && (report->n_missing || report->n_unexpected))) return TG_OK;
    return tg_error(differ_status ? differ_status : TG_ERR_FORMAT,
                    "%s: '%s' does not match the model%s: %s%smissing [%s], unexpected [%s]%s", LOAD, ld->st.path,
                    strict ? "" : " (non-strict load)", differ, differ[0] ? "; " : "", report->missing,
                    report->unexpected, strict && !differ_status ? " (tg_ckpt_opts.non_strict loads the tensors that match)" : "");
}

/* optim.step, optim.lr, further groups' lrs and the frozen parameters' skipped steps. */
static tg_status plan_optim_scalars(ckpt_load *ld, const tg_optimizer *op, const tg_param_list *list)
{
    tg_st_file *st = &ld->st;
    tg_st_entry *e;
    tg_status s;
    if ((s = match(st, "optim.step", TG_ST_I64, 0, NULL, true, &e))) return s;
    add_job(ld, e, &ld->step);
    if ((s = match(st, "optim.lr", TG_ST_F64, 0, NULL, true, &e))) return s;
    add_job(ld, e, &ld->lr[0]);
    char name[TG_ST_NAME_LEN];
    for (int g = 1; g <= op->n_groups; g++) {
        snprintf(name, sizeof name, "optim.group%d.lr", g);
        bool want = g < op->n_groups;
        if ((s = match(st, name, TG_ST_F64, 0, NULL, want, &e))) return s;
        if (!want && e)
            return tg_error(TG_ERR_FORMAT, "%s: '%s' has more parameter groups than the optimizer (%d)", LOAD,
                            st->path, op->n_groups);
        if (want) add_job(ld, e, &ld->lr[g]);
    }
    for (int i = 0; i < list->count; i++) {
        ld->frozen[i] = 0;
        if (list->entries[i].kind != TG_KIND_PARAM) continue;
        snprintf(name, sizeof name, "optim.%s.frozen_steps", list->entries[i].name);
        if ((s = match(st, name, TG_ST_I64, 0, NULL, false, &e))) return s;
        if (e) add_job(ld, e, &ld->frozen[i]);
    }
    return TG_OK;
}

/* The per-parameter state tensors the file's step count implies (allocated zero-filled if the
 * optimizer has not stepped yet). */
static tg_status plan_optim_state(ckpt_load *ld, tg_optimizer *op, const tg_param_list *list)
{
    tg_st_file *st = &ld->st;
    int64_t file_step = 0;
    tg_status s = tg_st_read(st, tg_st_find(st, "optim.step"), &file_step);
    if (s) return s;
    if (file_step < 0) return tg_error(TG_ERR_FORMAT, "%s: '%s': optim.step is negative", LOAD, st->path);
    tg_optimizer probe = *op;
    probe.step_count = file_step;
    char name[TG_ST_NAME_LEN];
    tg_st_entry *e;
    for (int k = 0; k < OPT_STATES; k++) {
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
            add_job(ld, e, opt_state(op, k) + p->offset);
        }
    }
    return TG_OK;
}

static tg_status plan_optim(ckpt_load *ld, tg_optimizer *op, const tg_param_list *list)
{
    if (op->numel != list->block_numel)
        return tg_error(TG_ERR_STATE, "%s: parameters were added to the list after the optimizer was made", LOAD);
    if (!tg_optim_sync_entries(op)) return tg_last_status();
    tg_status s = plan_optim_scalars(ld, op, list);
    return s ? s : plan_optim_state(ld, op, list);
}

/* sched.last_epoch and each generator's rng.<name>.state, .has_spare and .spare. */
static tg_status plan_sched_rngs(ckpt_load *ld, const tg_ckpt_opts *opts)
{
    static const int64_t state_words = RNG_STATE_WORDS;
    tg_st_entry *e;
    tg_status s = TG_OK;
    if (opts->sched && !(s = match(&ld->st, "sched.last_epoch", TG_ST_I64, 0, NULL, true, &e)))
        add_job(ld, e, &opts->sched->last_epoch);
    for (int r = 0; !s && r < opts->n_rngs; r++) {
        char name[TG_ST_NAME_LEN];
        const char *nm = opts->rng_names[r] ? opts->rng_names[r] : "";
        if (!opts->rngs[r]) return tg_error(TG_ERR_ARG, "%s: rng %d is NULL", LOAD, r);
        snprintf(name, sizeof name, "rng.%s.state", nm);
        if (!(s = match(&ld->st, name, TG_ST_I64, 1, &state_words, true, &e))) add_job(ld, e, opts->rngs[r]->s);
        snprintf(name, sizeof name, "rng.%s.has_spare", nm);
        if (!s && !(s = match(&ld->st, name, TG_ST_I64, 0, NULL, true, &e))) add_job(ld, e, &ld->has_spare[r]);
        snprintf(name, sizeof name, "rng.%s.spare", nm);
        if (!s && !(s = match(&ld->st, name, TG_ST_F32, 0, NULL, true, &e))) add_job(ld, e, &opts->rngs[r]->spare);
    }
    return s;
}

/* Everything is copied: the staged values go to the optimizer, the generators and opts->meta. */
static void commit(ckpt_load *ld, const tg_param_list *list, const tg_ckpt_opts *opts, tg_ckpt_report *report)
{
    report->n_loaded = ld->nj;
    if (!opts) return;
    tg_optimizer *op = opts->optim;
    if (op) {
        op->step_count = ld->step;
        for (int g = 0; g < op->n_groups; g++) op->groups[g].lr = ld->lr[g];
        memcpy(op->frozen_steps, ld->frozen, (size_t)list->count * sizeof *ld->frozen);
    }
    for (int r = 0; r < opts->n_rngs; r++) opts->rngs[r]->has_spare = ld->has_spare[r] != 0;
    if (opts->meta) {
        tg_meta_clear(opts->meta);
        *opts->meta = ld->meta;
        ld->meta = (tg_meta){0};
    }
}

tg_status tg_checkpoint_load(const char *path, tg_param_list *list, const tg_ckpt_opts *opts, tg_ckpt_report *report)
{
    tg_ckpt_report local;
    if (!report) report = &local;
    memset(report, 0, sizeof *report);
    tg_status s = check_load_args(list, opts);
    if (s) return s;
    ckpt_load ld = {0};
    /* 1. match everything (no copying yet) */
    s = load_open(&ld, path, list, opts && opts->meta);
    if (!s) s = plan_model(&ld, list, !(opts && opts->non_strict), report);
    if (!s && opts && opts->optim) s = plan_optim(&ld, opts->optim, list);
    if (!s && opts) s = plan_sched_rngs(&ld, opts);
    /* 2. copy, 3. commit */
    for (int j = 0; !s && j < ld.nj; j++) s = tg_st_read(&ld.st, ld.jobs[j].e, ld.jobs[j].dst);
    if (!s) commit(&ld, list, opts, report);
    tg_meta_clear(&ld.meta);
    tg_free(ld.jobs);
    tg_free(ld.frozen);
    tg_st_close(&ld.st);
    return s;
}
