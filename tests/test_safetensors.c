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
    cr_assert_eq(tg_checkpoint_load(p, b.l, &(tg_ckpt_opts){.strict = true, .meta = &got}, &rep), TG_OK, "%s",
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
    cr_assert_eq(tg_checkpoint_load(TG_FIXTURE_DIR "/torch_seq.safetensors", l, &(tg_ckpt_opts){0}, &rep), TG_OK, "%s",
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
    cr_expect_eq(tg_checkpoint_load(TG_FIXTURE_DIR "/torch_seq.safetensors", l, &(tg_ckpt_opts){.strict = true}, NULL),
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
    tg_sched_warmup_poly(&sa, oa, 3, total, 1e-3, 0.9);
    train(&a, oa, &sa, &ra, total);
    /* interrupted at `cut`, saved, restored into fresh objects made differently */
    small b = small_new(5);
    tg_rng rb;
    tg_rng_seed(&rb, 77);
    tg_optimizer *ob = make_opt(&b, which);
    tg_lr_sched sb;
    tg_sched_warmup_poly(&sb, ob, 3, total, 1e-3, 0.9);
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
    tg_sched_warmup_poly(&scc, oc, 3, total, 1e-3, 0.9);
    tg_ckpt_opts load = {.optim = oc, .sched = &scc, .rngs = {&rc}, .rng_names = {"data"}, .n_rngs = 1, .strict = true};
    cr_assert_eq(tg_checkpoint_load(p, c.l, &load, NULL), TG_OK, "%s", tg_last_error());
    cr_expect_eq(oc->step_count, cut);
    cr_expect_eq(scc.last_epoch, cut);
    train(&c, oc, &scc, &rc, total - cut);
    expect_same_model(&a, &c);
    cr_expect_eq(oa->lr, oc->lr);
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
    cr_assert_eq(tg_checkpoint_load(p, c.l, &(tg_ckpt_opts){.strict = true}, NULL), TG_OK);
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
    cr_expect_eq(tg_checkpoint_load(path, l, &(tg_ckpt_opts){.strict = true}, NULL), status, "%s: %s", path,
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
                                    l, &(tg_ckpt_opts){.strict = true}, NULL),
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
