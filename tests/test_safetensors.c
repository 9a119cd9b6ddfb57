/* safetensors checkpoints: round trip, metadata, exact resume of training state,
 * atomic writes under injected failures, and corrupt or mismatching files. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/core_internal.h"
#include "../nn/nn_internal.h"
#include "test_support.h"

#define TMP TG_BIN_DIR "/nn_st_tmp"

static const char *tmp_path(const char *name)
{
    static char buf[512];
    mkdir(TMP, 0755);
    snprintf(buf, sizeof buf, TMP "/%s", name);
    return buf;
}

/* A small model: w (3,4), b (4), a float buffer and an int64 counter. */
typedef struct {
    tg_param_list *l;
    tg_tensor *w, *b, *rm, *n;
} small;

static small small_new(uint64_t seed)
{
    small s;
    tg_rng r;
    tg_rng_seed(&r, seed);
    s.l = tg_param_list_new();
    s.w = tg_param_list_add_param(s.l, "layer.weight", TG_SHAPE(3, 4));
    s.b = tg_param_list_add_param(s.l, "layer.bias", TG_SHAPE(4));
    s.rm = tg_param_list_add_buffer(s.l, "layer.running_mean", TG_F32, TG_SHAPE(4));
    s.n = tg_param_list_add_buffer(s.l, "layer.num_batches_tracked", TG_I64, 0, NULL);
    cr_assert(s.w && s.b && s.rm && s.n);
    tg_init_uniform(s.w, 1.0f, &r);
    tg_init_uniform(s.b, 1.0f, &r);
    tg_init_uniform(s.rm, 1.0f, &r);
    *s.n->idata = (int64_t)seed * 1000 + 7;
    return s;
}

static void expect_same_model(const small *a, const small *b)
{
    cr_expect_eq(memcmp(a->w->data, b->w->data, 12 * sizeof(float)), 0, "weight differs");
    cr_expect_eq(memcmp(a->b->data, b->b->data, 4 * sizeof(float)), 0, "bias differs");
    cr_expect_eq(memcmp(a->rm->data, b->rm->data, 4 * sizeof(float)), 0, "buffer differs");
    cr_expect_eq(*a->n->idata, *b->n->idata);
}

static long file_bytes(const char *path, char *out, long cap)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    long n = (long)fread(out, 1, (size_t)cap, f);
    fclose(f);
    return n;
}

Test(safetensors, round_trip_with_metadata)
{
    small a = small_new(1), b = small_new(2);
    tg_meta meta = {0}, got = {0};
    tg_meta_set(&meta, "epoch", "12");
    tg_meta_set(&meta, "config", "{\"lr\": 0.01}");
    tg_meta_set(&meta, "epoch", "13"); /* replaces */
    const char *p = tmp_path("roundtrip.safetensors");
    cr_assert_eq(tg_checkpoint_save(p, a.l, &(tg_ckpt_opts){.meta = &meta}), TG_OK, "%s", tg_last_error());
    tg_ckpt_report rep;
    cr_assert_eq(tg_checkpoint_load(p, b.l, &(tg_ckpt_opts){.meta = &got}, &rep), TG_OK, "%s",
                 tg_last_error());
    expect_same_model(&a, &b);
    cr_expect_eq(rep.n_loaded, 4);
    cr_expect_eq(rep.n_missing + rep.n_unexpected, 0);
    cr_expect_str_eq(tg_meta_get(&got, "epoch"), "13");
    cr_expect_str_eq(tg_meta_get(&got, "config"), "{\"lr\": 0.01}");
    cr_expect_eq(got.count, 2);
    /* header layout: length is a multiple of 8, JSON starts with '{' */
    char buf[4096];
    long n = file_bytes(p, buf, sizeof buf);
    uint64_t hlen = 0;
    memcpy(&hlen, buf, 8);
    cr_expect_eq(hlen % 8, 0);
    cr_expect_eq(buf[8], '{');
    cr_expect_eq((long)(8 + hlen + 12 * 4 + 4 * 4 + 4 * 4 + 8), n);
    tg_meta_clear(&meta);
    tg_meta_clear(&got);
    tg_param_list_free(a.l);
    tg_param_list_free(b.l);
}

Test(safetensors, reads_the_pytorch_made_file)
{
    tg_param_list *l = tg_param_list_new();
    /* a model with only some of the names: non-strict reports missing and unexpected by name */
    tg_tensor *w = tg_param_list_add_param(l, "0.weight", TG_SHAPE(4, 3, 3, 3));
    tg_param_list_add_param(l, "extra.bias", TG_SHAPE(2));
    tg_ckpt_report rep;
    cr_assert_eq(tg_checkpoint_load(TG_FIXTURE_DIR "/torch_seq.safetensors", l, &(tg_ckpt_opts){.non_strict = true}, &rep), TG_OK, "%s",
                 tg_last_error());
    cr_expect_eq(rep.n_loaded, 1);
    cr_expect_eq(rep.n_missing, 1);
    cr_expect_str_eq(rep.missing, "extra.bias");
    cr_expect_eq(rep.n_unexpected, 7);
    cr_expect(strstr(rep.unexpected, "1.num_batches_tracked") != NULL, "%s", rep.unexpected);
    bool nonzero = false;
    for (int i = 0; i < 108; i++) nonzero |= w->data[i] != 0.0f;
    cr_expect(nonzero);
    /* strict: the same mismatch is an error naming the tensors, and nothing is copied */
    memset(w->data, 0, 108 * sizeof(float));
    cr_expect_eq(tg_checkpoint_load(TG_FIXTURE_DIR "/torch_seq.safetensors", l, &(tg_ckpt_opts){0}, NULL),
                 TG_ERR_FORMAT);
    cr_expect(strstr(tg_last_error(), "missing [extra.bias]") != NULL, "%s", tg_last_error());
    cr_expect(strstr(tg_last_error(), "3.bias") != NULL, "%s", tg_last_error());
    for (int i = 0; i < 108; i++) cr_expect_eq(w->data[i], 0.0f);
    tg_param_list_free(l);
}

/* ---- exact resume --------------------------------------------------------- */

/* g = (p - 0.5) * 0.7 + 0.1 * N(0,1) with an odd count of normals per step (the Box-Muller spare matters). */
static void fake_grads(small *s, tg_rng *rng)
{
    float *p = s->l->data, *g = s->l->grad;
    for (int64_t i = 0; i < s->l->block_numel; i++) g[i] = (p[i] - 0.5f) * 0.7f + 0.1f * tg_rng_normal(rng);
    (void)tg_rng_normal(rng);
    (void)tg_rng_normal(rng);
    (void)tg_rng_normal(rng);
}

static tg_optimizer *make_opt(small *s, int which)
{
    if (which == 0)
        return tg_sgd_new(s->l, (tg_sgd_opts){.lr = 0.1, .momentum = 0.9, .nesterov = true, .weight_decay = 1e-3});
    tg_adam_opts o = tg_adamw_defaults();
    o.lr = 0.05;
    o.amsgrad = true;
    return which == 1 ? tg_adamw_new(s->l, o) : tg_adam_new(s->l, o);
}

static void train(small *s, tg_optimizer *o, tg_lr_sched *sc, tg_rng *rng, int steps)
{
    for (int k = 0; k < steps; k++) {
        tg_optimizer_zero_grad(o);
        fake_grads(s, rng);
        cr_assert_eq(tg_optimizer_step(o), TG_OK);
        tg_lr_sched_step(sc);
        s->rm->data[*s->n->idata % 4] += 0.25f * tg_rng_uniform(rng);
        *s->n->idata += 1;
    }
}

static void resume_case(int which)
{
    const int total = 10, cut = 3; /* odd: 23 normals per step leave a Box-Muller spare */
    /* uninterrupted */
    small a = small_new(5);
    tg_rng ra;
    tg_rng_seed(&ra, 77);
    tg_optimizer *oa = make_opt(&a, which);
    tg_lr_sched sa;
    tg_lr_sched_init_warmup_poly(&sa, oa, 3, total, 1e-3, 0.9);
    train(&a, oa, &sa, &ra, total);
    /* interrupted at `cut`, saved, restored into fresh objects made differently */
    small b = small_new(5);
    tg_rng rb;
    tg_rng_seed(&rb, 77);
    tg_optimizer *ob = make_opt(&b, which);
    tg_lr_sched sb;
    tg_lr_sched_init_warmup_poly(&sb, ob, 3, total, 1e-3, 0.9);
    train(&b, ob, &sb, &rb, cut);
    const char *p = tmp_path("resume.safetensors");
    tg_ckpt_opts save = {.optim = ob, .sched = &sb, .rngs = {&rb}, .rng_names = {"data"}, .n_rngs = 1};
    cr_assert_eq(tg_checkpoint_save(p, b.l, &save), TG_OK, "%s", tg_last_error());
    tg_optimizer_free(ob);
    tg_param_list_free(b.l);
    small c = small_new(6);
    tg_rng rc;
    tg_rng_seed(&rc, 1);
    tg_optimizer *oc = make_opt(&c, which);
    tg_lr_sched scc;
    tg_lr_sched_init_warmup_poly(&scc, oc, 3, total, 1e-3, 0.9);
    tg_ckpt_opts load = {.optim = oc, .sched = &scc, .rngs = {&rc}, .rng_names = {"data"}, .n_rngs = 1};
    cr_assert_eq(tg_checkpoint_load(p, c.l, &load, NULL), TG_OK, "%s", tg_last_error());
    cr_expect_eq(oc->step_count, cut);
    cr_expect_eq(scc.last_epoch, cut);
    train(&c, oc, &scc, &rc, total - cut);
    expect_same_model(&a, &c);
    cr_expect_eq(oa->groups[0].lr, oc->groups[0].lr);
    cr_expect_eq(oa->step_count, oc->step_count);
    size_t bytes = (size_t)a.l->block_numel * sizeof(float);
    cr_expect_eq(memcmp(oa->buf, oc->buf, bytes), 0, "first state differs");
    if (which) {
        cr_expect_eq(memcmp(oa->sq, oc->sq, bytes), 0);
        cr_expect_eq(memcmp(oa->max_sq, oc->max_sq, bytes), 0);
    }
    cr_expect_eq(memcmp(&ra, &rc, sizeof ra), 0, "rng state differs");
    tg_optimizer_free(oa);
    tg_optimizer_free(oc);
    tg_param_list_free(a.l);
    tg_param_list_free(c.l);
}

Test(safetensors, resume_equals_uninterrupted_sgd) { resume_case(0); }
Test(safetensors, resume_equals_uninterrupted_adamw) { resume_case(1); }
Test(safetensors, resume_equals_uninterrupted_adam) { resume_case(2); }

Test(safetensors, optimizer_state_missing_is_an_error)
{
    small a = small_new(1);
    const char *p = tmp_path("noopt.safetensors");
    cr_assert_eq(tg_checkpoint_save(p, a.l, NULL), TG_OK);
    tg_optimizer *o = tg_adam_new(a.l, tg_adam_defaults());
    cr_expect_eq(tg_checkpoint_load(p, a.l, &(tg_ckpt_opts){.optim = o}, NULL), TG_ERR_FORMAT);
    cr_expect(strstr(tg_last_error(), "optim.step") != NULL, "%s", tg_last_error());
    tg_optimizer_free(o);
    tg_param_list_free(a.l);
}

/* ---- atomic writes ---------------------------------------------------- */

static int count_tmp_files(void)
{
    DIR *d = opendir(TMP);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += strstr(e->d_name, ".tmp.") != NULL;
    if (d) closedir(d);
    return n;
}

static int g_allocs_left;
static void *failing_alloc(size_t n)
{
    return g_allocs_left-- > 0 ? malloc(n ? n : 1) : NULL;
}

Test(safetensors, failed_saves_leave_the_previous_file_intact)
{
    small a = small_new(1), b = small_new(2);
    const char *p = tmp_path("atomic.safetensors");
    cr_assert_eq(tg_checkpoint_save(p, a.l, NULL), TG_OK);
    static char before[4096], after[4096];
    long n0 = file_bytes(p, before, sizeof before);
    cr_assert_gt(n0, 0);
    int64_t cuts[] = {0, 3, 8, 40, n0 - 20, n0 - 1};
    for (int i = 0; i < 6; i++) {
        tg_st_set_write_fail_after(cuts[i]);
        cr_expect_eq(tg_checkpoint_save(p, b.l, NULL), TG_ERR_IO, "cut at %lld", (long long)cuts[i]);
        cr_expect(strstr(tg_last_error(), "previous file is unchanged") != NULL, "%s", tg_last_error());
        tg_st_set_write_fail_after(-1);
        cr_expect_eq(file_bytes(p, after, sizeof after), n0);
        cr_expect_eq(memcmp(before, after, (size_t)n0), 0, "file changed by a failed save (cut %lld)",
                     (long long)cuts[i]);
        cr_expect_eq(count_tmp_files(), 0, "temporary file left behind");
    }
    for (int k = 0; k < 3; k++) { /* allocation failures */
        g_allocs_left = k;
        tg_set_alloc_hook(failing_alloc);
        tg_status s = tg_checkpoint_save(p, b.l, NULL);
        tg_set_alloc_hook(NULL);
        if (s == TG_OK) break;
        cr_expect_eq(s, TG_ERR_NOMEM);
        cr_expect_eq(file_bytes(p, after, sizeof after), n0);
        cr_expect_eq(memcmp(before, after, (size_t)n0), 0);
    }
    cr_expect_eq(tg_checkpoint_save(TMP "/no/such/dir/x.safetensors", a.l, NULL), TG_ERR_IO);
    cr_expect(strstr(tg_last_error(), "no/such/dir") != NULL, "%s", tg_last_error());
    cr_expect_eq(tg_checkpoint_save(p, b.l, NULL), TG_OK); /* and a good save replaces it */
    small c = small_new(3);
    cr_assert_eq(tg_checkpoint_load(p, c.l, &(tg_ckpt_opts){0}, NULL), TG_OK);
    expect_same_model(&b, &c);
    tg_param_list_free(a.l);
    tg_param_list_free(b.l);
    tg_param_list_free(c.l);
}

/* ---- corrupt files ------------------------------------------------------ */

static const char *write_raw(const char *name, uint64_t hlen, const char *header, const void *data, size_t n)
{
    const char *p = tmp_path(name);
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f);
    fwrite(&hlen, 8, 1, f);
    if (header) fwrite(header, 1, strlen(header), f);
    if (n) fwrite(data, 1, n, f);
    fclose(f);
    return p;
}

/* Loads path into a model with one F32 param "t" of shape (2,); expects an error containing `needle`. */
static void expect_bad(const char *path, tg_status status, const char *needle)
{
    tg_param_list *l = tg_param_list_new();
    tg_tensor *t = tg_param_list_add_param(l, "t", TG_SHAPE(2));
    t->data[0] = 42.0f;
    cr_expect_eq(tg_checkpoint_load(path, l, &(tg_ckpt_opts){0}, NULL), status, "%s: %s", path,
                 tg_last_error());
    cr_expect(strstr(tg_last_error(), needle) != NULL, "expected '%s' in: %s", needle, tg_last_error());
    cr_expect_eq(t->data[0], 42.0f, "model changed by a failed load");
    tg_param_list_free(l);
}

static const char *raw_json(const char *name, const char *json, size_t data_bytes)
{
    static const char zeros[64];
    return write_raw(name, strlen(json), json, zeros, data_bytes);
}

Test(safetensors, corrupt_files_give_clear_errors)
{
    /* a valid file first, so every failure below is the corruption's */
    tg_param_list *l = tg_param_list_new();
    tg_param_list_add_param(l, "t", TG_SHAPE(2));
    cr_assert_eq(tg_checkpoint_load(raw_json("ok.st", "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8),
                                    l, &(tg_ckpt_opts){0}, NULL),
                 TG_OK, "%s", tg_last_error());
    tg_param_list_free(l);

    expect_bad(tmp_path("does_not_exist.st"), TG_ERR_IO, "cannot open");
    FILE *f4 = fopen(tmp_path("short.st"), "wb");
    fwrite("\x08\0\0\0", 1, 4, f4);
    fclose(f4);
    expect_bad(tmp_path("short.st"), TG_ERR_FORMAT, "too short");
    expect_bad(write_raw("zero_hdr.st", 0, NULL, NULL, 0), TG_ERR_FORMAT, "does not start with '{'");
    expect_bad(raw_json("empty_hdr.st", "", 0), TG_ERR_FORMAT, "does not start with '{'");
    expect_bad(write_raw("huge.st", UINT64_MAX, "{}", NULL, 0), TG_ERR_FORMAT, "header length");
    expect_bad(write_raw("huge2.st", 200000000ULL, "{}", NULL, 0), TG_ERR_FORMAT, "header length");
    expect_bad(write_raw("past_end.st", 1000, "{}", NULL, 0), TG_ERR_FORMAT, "header length");
    expect_bad(raw_json("badjson.st", "{\"t\": [1, 2", 0), TG_ERR_FORMAT, "JSON header is invalid");
    expect_bad(raw_json("notjson.st", "[1, 2, 3]", 0), TG_ERR_FORMAT, "does not start with '{'");
    expect_bad(raw_json("trailing.st", "{} x      ", 0), TG_ERR_FORMAT, "after the JSON header");
    expect_bad(raw_json("dtype.st", "{\"t\":{\"dtype\":\"F99\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8),
               TG_ERR_FORMAT, "unknown dtype \"F99\"");
    expect_bad(raw_json("wrongdtype.st", "{\"t\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16),
               TG_ERR_FORMAT, "tensor 't' has dtype F64, expected F32");
    expect_bad(raw_json("wrongshape.st", "{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}", 12),
               TG_ERR_SHAPE, "tensor 't' has shape (3,) in the file but (2,) in the model");
    expect_bad(raw_json("negshape.st", "{\"t\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8),
               TG_ERR_FORMAT, "invalid shape");
    expect_bad(raw_json("sizes.st", "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,12]}}", 12),
               TG_ERR_FORMAT, "need 8 bytes");
    expect_bad(raw_json("range.st", "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4),
               TG_ERR_FORMAT, "run past");
    expect_bad(raw_json("reversed.st", "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8),
               TG_ERR_FORMAT, "begin <= end");
    expect_bad(raw_json("overlap.st",
                        "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                        "\"u\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12),
               TG_ERR_FORMAT, "overlap");
    expect_bad(raw_json("hole.st",
                        "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                        "\"u\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}", 16),
               TG_ERR_FORMAT, "belong to no tensor");
    expect_bad(raw_json("tail.st", "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 12),
               TG_ERR_FORMAT, "trailing bytes");
    expect_bad(raw_json("dup.st",
                        "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                        "\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8),
               TG_ERR_FORMAT, "appears twice");
    expect_bad(raw_json("meta.st",
                        "{\"__metadata__\":{\"epoch\":3},"
                        "\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8),
               TG_ERR_FORMAT, "not a string");
    expect_bad(raw_json("meta2.st",
                        "{\"__metadata__\":{\"epoch\":\"3\"},\"__metadata__\":{\"epoch\":\"4\"},"
                        "\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8),
               TG_ERR_FORMAT, "__metadata__ appears twice");
    expect_bad(raw_json("fields.st", "{\"t\":{\"dtype\":\"F32\",\"shape\":[2]}}", 0), TG_ERR_FORMAT, "data_offsets");
    expect_bad(raw_json("strict.st",
                        "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                        "\"extra.w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12),
               TG_ERR_FORMAT, "unexpected [extra.w]");
    /* every truncation of a good checkpoint is an error, never a crash */
    small a = small_new(1);
    const char *p = tmp_path("trunc_src.st");
    cr_assert_eq(tg_checkpoint_save(p, a.l, NULL), TG_OK);
    static char buf[4096];
    long n = file_bytes(p, buf, sizeof buf);
    for (long cut = 0; cut < n; cut++) {
        const char *q = tmp_path("trunc.st");
        FILE *f = fopen(q, "wb");
        fwrite(buf, 1, (size_t)cut, f);
        fclose(f);
        small b = small_new(2);
        cr_expect_neq(tg_checkpoint_load(q, b.l, NULL, NULL), TG_OK, "truncated at %ld of %ld loaded", cut, n);
        tg_param_list_free(b.l);
    }
    tg_param_list_free(a.l);
}

/* ---- random corruptions ------------------------------------------------- */

/* Everything a load may write: model values, the int64 buffer, optimizer state, schedule, RNG. */
typedef struct {
    float data[256], rm[4], buf[256], sq[256], max_sq[256];
    int64_t n, step_count, last_epoch;
    double lr;
    tg_rng rng;
} train_state;

static void snapshot(const small *s, const tg_optimizer *o, const tg_lr_sched *sc, const tg_rng *r, train_state *t)
{
    cr_assert_leq(s->l->block_numel, 256);
    memset(t, 0, sizeof *t);
    memcpy(t->data, s->l->data, (size_t)s->l->block_numel * sizeof(float));
    memcpy(t->rm, s->rm->data, sizeof t->rm);
    memcpy(t->buf, o->buf, (size_t)o->numel * sizeof(float));
    memcpy(t->sq, o->sq, (size_t)o->numel * sizeof(float));
    memcpy(t->max_sq, o->max_sq, (size_t)o->numel * sizeof(float));
    t->n = *s->n->idata;
    t->step_count = o->step_count;
    t->last_epoch = sc->last_epoch;
    t->lr = o->groups[0].lr;
    t->rng = *r;
}

static void restore(small *s, tg_optimizer *o, tg_lr_sched *sc, tg_rng *r, const train_state *t)
{
    memcpy(s->l->data, t->data, (size_t)s->l->block_numel * sizeof(float));
    memcpy(s->rm->data, t->rm, sizeof t->rm);
    memcpy(o->buf, t->buf, (size_t)o->numel * sizeof(float));
    memcpy(o->sq, t->sq, (size_t)o->numel * sizeof(float));
    memcpy(o->max_sq, t->max_sq, (size_t)o->numel * sizeof(float));
    *s->n->idata = t->n;
    o->step_count = t->step_count;
    sc->last_epoch = t->last_epoch;
    o->groups[0].lr = t->lr;
    *r = t->rng;
}

/* 3000 seeded corruptions of a full checkpoint (model, Adam state, schedule, RNG, metadata):
 * bit flips, JSON punctuation and digits written over the header, bytes deleted or inserted, a
 * changed header length. Every load succeeds or fails with a message, never crashes (the
 * sanitizer build runs this too), and a failed load leaves the model, the optimizer, the
 * schedule and the RNG exactly as they were. */
/* A small model with an amsgrad Adam, a warmup+poly schedule and an RNG, trained `steps` steps. */
typedef struct {
    small m;
    tg_rng rng;
    tg_optimizer *opt;
    tg_lr_sched sched;
} trained;

static void trained_new(trained *t, uint64_t model_seed, uint64_t rng_seed, int steps)
{
    t->m = small_new(model_seed);
    tg_rng_seed(&t->rng, rng_seed);
    t->opt = make_opt(&t->m, 2);
    tg_lr_sched_init_warmup_poly(&t->sched, t->opt, 3, 10, 1e-3, 0.9);
    train(&t->m, t->opt, &t->sched, &t->rng, steps);
}

static void trained_free(trained *t)
{
    tg_optimizer_free(t->opt);
    tg_param_list_free(t->m.l);
}

Test(safetensors, random_corruptions_fail_cleanly_and_change_nothing)
{
    static trained ta, tb;
    trained_new(&ta, 5, 77, 3);
    tg_meta meta = {0};
    cr_assert_eq(tg_meta_set(&meta, "epoch", "3"), TG_OK);
    cr_assert_eq(tg_meta_set(&meta, "config", "{\"lr\": 0.01, \"head\": \"softmax\"}"), TG_OK);
    const char *src = tmp_path("fuzz_src.st");
    tg_ckpt_opts save = {.optim = ta.opt, .sched = &ta.sched, .rngs = {&ta.rng}, .rng_names = {"data"}, .n_rngs = 1,
                         .meta = &meta};
    cr_assert_eq(tg_checkpoint_save(src, ta.m.l, &save), TG_OK, "%s", tg_last_error());
    static char good[16384], bad[16384 + 64];
    const long n = file_bytes(src, good, sizeof good);
    cr_assert(n > 8 && n < (long)sizeof good);
    uint64_t hlen;
    memcpy(&hlen, good, 8);

    trained_new(&tb, 9, 1, 1); /* the loading side, one step in so its optimizer has state */
    static train_state before, after;
    snapshot(&tb.m, tb.opt, &tb.sched, &tb.rng, &before);
    tg_meta got = {0};
    tg_ckpt_opts load = {.optim = tb.opt, .sched = &tb.sched, .rngs = {&tb.rng}, .rng_names = {"data"}, .n_rngs = 1,
                         .meta = &got};

    static const char punct[] = "{}[]\":,0123456789-+eE. \\\x00\xff";
    tg_rng r;
    tg_rng_seed(&r, 2024);
    int loaded = 0, refused = 0;
    const char *dst = tmp_path("fuzz.st");
    for (int it = 0; it < 3000; it++) {
        memcpy(bad, good, (size_t)n);
        long m = n;
        const int edits = 1 + (int)(tg_rng_uniform(&r) * 3);
        for (int e = 0; e < edits; e++) {
            /* mostly inside the JSON header, where the parsing is */
            const bool in_header = tg_rng_uniform(&r) < 0.8f && (long)hlen + 8 <= m;
            long pos = in_header ? 8 + (long)(tg_rng_uniform(&r) * (float)hlen) : (long)(tg_rng_uniform(&r) * (float)m);
            if (pos >= m) pos = m - 1;
            const int k = 1 + (int)(tg_rng_uniform(&r) * 8);
            switch ((it + e) % 6) {
            case 0: bad[pos] ^= (char)(1u << (int)(tg_rng_uniform(&r) * 8)); break;
            case 5: /* a digit of the header for another: valid JSON, other shapes and offsets */
                for (long q = 0; q < (long)hlen && in_header; q++) {
                    char *c = bad + 8 + (pos - 8 + q) % (long)hlen;
                    if (*c >= '0' && *c <= '9') {
                        *c = (char)('0' + (int)(tg_rng_uniform(&r) * 10));
                        break;
                    }
                }
                break;
            case 1: bad[pos] = punct[(int)(tg_rng_uniform(&r) * (float)(sizeof punct - 1))]; break;
            case 2: /* delete k bytes */
                if (pos + k <= m) {
                    memmove(bad + pos, bad + pos + k, (size_t)(m - pos - k));
                    m -= k;
                }
                break;
            case 3: /* insert k bytes */
                memmove(bad + pos + k, bad + pos, (size_t)(m - pos));
                for (int i = 0; i < k; i++) bad[pos + i] = punct[(int)(tg_rng_uniform(&r) * (float)(sizeof punct - 1))];
                m += k;
                break;
            case 4: { /* header length off by a little */
                uint64_t h;
                memcpy(&h, bad, 8);
                h += (uint64_t)(int64_t)(k - 4);
                memcpy(bad, &h, 8);
            }
            }
            if (m + 8 > (long)sizeof bad) break;
        }
        FILE *f = fopen(dst, "wb");
        cr_assert_not_null(f);
        fwrite(bad, 1, (size_t)m, f);
        fclose(f);
        const tg_status s = tg_checkpoint_load(dst, tb.m.l, &load, NULL);
        if (s == TG_OK) { /* e.g. a flipped bit in a float: fine, but put the state back */
            loaded++;
            restore(&tb.m, tb.opt, &tb.sched, &tb.rng, &before);
            continue;
        }
        refused++;
        cr_expect_gt(strlen(tg_last_error()), 10, "iteration %d: status %d with no message", it, (int)s);
        snapshot(&tb.m, tb.opt, &tb.sched, &tb.rng, &after);
        if (memcmp(&before, &after, sizeof before) != 0) {
            cr_expect_fail("iteration %d: a failed load (%s) changed the training state", it, tg_last_error());
            restore(&tb.m, tb.opt, &tb.sched, &tb.rng, &before);
        }
    }
    cr_expect_gt(refused, 2000, "only %d of 3000 corruptions refused (%d loaded)", refused, loaded);
    tg_meta_clear(&meta);
    tg_meta_clear(&got);
    trained_free(&ta);
    trained_free(&tb);
}
