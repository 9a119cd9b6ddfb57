/* `unet_drive step-dump` and `unet_drive init` against PyTorch (tests/gen_stepdump_fixtures.py): on a
 * committed PyTorch-made checkpoint and a tiny committed image folder, the dump's input and target
 * equal PyTorch's, logits and loss agree, and every parameter gradient (and, with --trace, every
 * block output and its gradient, as forward hooks + retain_grad see them) is within 1e-3 relative
 * L2. init writes the weights training starts from. Bad input fails clearly. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../nn/nn_internal.h"
#include "tapegrad.h"
#include "test_support.h"
#include "dataset_skip.h"

#define UNET_BIN TG_BIN_DIR "/unet_drive"
#define FIX TG_FIXTURE_DIR
/* the generator normalises with DRIVE's values; a folder dataset would otherwise get computed ones */
#define DRIVE_NORM "--mean 0.709,0.381,0.224 --std 0.127,0.079,0.043"

static char tmpdir[256];
static char output[1 << 16];

static void make_tmp(void) { tgt_make_tmpdir(tmpdir, sizeof tmpdir, "stepdump_test"); }
static void remove_tmp(void) { tgt_remove_tree(tmpdir); }

static int run(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(cmd, sizeof cmd, "%s ", UNET_BIN);
    vsnprintf(cmd + n, sizeof cmd - (size_t)n, fmt, ap);
    va_end(ap);
    return tgt_run_capture(cmd, output, sizeof output);
}

/* A whole safetensors file in memory. */
typedef struct {
    tg_st_file f;
    void **data;
} st_all;

static void st_load(const char *path, st_all *s)
{
    cr_assert_eq(tg_st_open(path, &s->f, "test_unet_stepdump"), TG_OK, "%s: %s", path, tg_last_error());
    s->data = calloc((size_t)s->f.n, sizeof *s->data);
    for (int i = 0; i < s->f.n; i++) {
        const tg_st_entry *e = &s->f.entries[i];
        s->data[i] = malloc(e->end - e->begin + 1);
        cr_assert_eq(tg_st_read(&s->f, e, s->data[i]), TG_OK, "%s: %s", e->name, tg_last_error());
    }
}

static void st_free(st_all *s)
{
    for (int i = 0; i < s->f.n; i++) free(s->data[i]);
    free(s->data);
    tg_st_close(&s->f);
}

static int st_index(const st_all *s, const char *name)
{
    for (int i = 0; i < s->f.n; i++)
        if (!strcmp(s->f.entries[i].name, name)) return i;
    return -1;
}

/* ||a - e|| / ||e|| in double (0 if both are zero). */
static double rel_l2(const float *a, const float *e, int64_t n)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        num += ((double)a[i] - e[i]) * ((double)a[i] - e[i]);
        den += (double)e[i] * e[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* Every tensor of the expected file is in the dump with the same dtype and shape; no extra
 * tensors; target exact, input to float rounding, logits, loss and every gradient within tol
 * relative L2. Returns the number of "grad." entries compared. */
static int compare_dump(const char *actual_path, const char *expected_path, double tol)
{
    st_all a, e;
    st_load(actual_path, &a);
    st_load(expected_path, &e);
    cr_expect_eq(a.f.n, e.f.n, "%s has %d tensors, PyTorch's dump %d", actual_path, a.f.n, e.f.n);
    int grads = 0;
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < e.f.n; i++) {
        const tg_st_entry *ee = &e.f.entries[i];
        int k = st_index(&a, ee->name);
        cr_assert_geq(k, 0, "the dump has no '%s'", ee->name);
        const tg_st_entry *ae = &a.f.entries[k];
        cr_assert_eq(ae->dtype, ee->dtype, "'%s': dtype %s, expected %s", ee->name, tg_st_dtype_name(ae->dtype),
                     tg_st_dtype_name(ee->dtype));
        cr_assert_eq(ae->ndim, ee->ndim, "'%s': %d dimensions, expected %d", ee->name, ae->ndim, ee->ndim);
        int64_t n = 1;
        for (int d = 0; d < ee->ndim; d++) {
            cr_assert_eq(ae->shape[d], ee->shape[d], "'%s': dim %d is %lld, expected %lld", ee->name, d,
                         (long long)ae->shape[d], (long long)ee->shape[d]);
            n *= ee->shape[d];
        }
        if (ee->dtype == TG_ST_I64) {
            cr_assert(!memcmp(a.data[k], e.data[i], (size_t)n * 8), "'%s' differs from PyTorch's", ee->name);
            continue;
        }
        const float *av = a.data[k], *ev = e.data[i];
        if (!strcmp(ee->name, "input")) {
            tgt_expect_close("input", av, ev, n, 1e-6, 1e-6);
            continue;
        }
        double r = rel_l2(av, ev, n);
        cr_expect_leq(r, tol, "'%s': relative L2 difference %.3g from PyTorch (tolerance %g)", ee->name, r, tol);
        if (r > worst) worst = r, worst_name = ee->name;
        grads += !strncmp(ee->name, "grad.", 5);
    }
    cr_log_info("%s: worst relative L2 %.3g (%s)", expected_path, worst, worst_name);
    st_free(&a);
    st_free(&e);
    return grads;
}

Test(unet_stepdump, softmax_head_matches_pytorch, .init = make_tmp, .fini = remove_tmp)
{
    char out[512];
    snprintf(out, sizeof out, "%s/step.safetensors", tmpdir);
    int rc = run("step-dump --checkpoint " FIX "/stepdump_softmax_ckpt.safetensors --head softmax --base-c 2 "
                 "--batch 2 --crop 32 --data " FIX "/stepdump_data " DRIVE_NORM " --threads 2 --out %s", out);
    cr_assert_eq(rc, 0, "step-dump failed:\n%s", output);
    /* 56 parameters of UNet(3, 2, base 2): 9 DoubleConvs x (2 conv weights + 2 BN x 2) + out_conv weight, bias */
    cr_expect_eq(compare_dump(out, FIX "/stepdump_softmax_expected.safetensors", 1e-3), 56);
}

Test(unet_stepdump, sigmoid_head_and_trace_match_pytorch, .init = make_tmp, .fini = remove_tmp)
{
    char out[512];
    snprintf(out, sizeof out, "%s/step.safetensors", tmpdir);
    int rc = run("step-dump --checkpoint " FIX "/stepdump_sigmoid_ckpt.safetensors --head sigmoid --base-c 2 "
                 "--batch 2 --crop 24 --class-weight 1,3 --data " FIX "/stepdump_data " DRIVE_NORM " --threads 2 --trace --out %s",
                 out);
    cr_assert_eq(rc, 0, "step-dump failed:\n%s", output);
    /* 56 parameter gradients + the 10 block gradients (grad.in_conv ... grad.out_conv) */
    cr_expect_eq(compare_dump(out, FIX "/stepdump_sigmoid_expected.safetensors", 1e-3), 66);
}

Test(unet_stepdump, init_writes_the_training_initialisation, .init = make_tmp, .fini = remove_tmp)
{
    char a[512], b[512], c[512];
    snprintf(a, sizeof a, "%s/a.safetensors", tmpdir);
    snprintf(b, sizeof b, "%s/b.safetensors", tmpdir);
    snprintf(c, sizeof c, "%s/c.safetensors", tmpdir);
    cr_assert_eq(run("init --head sigmoid --base-c 3 --seed 5 --out %s", a), 0, "%s", output);
    cr_assert_eq(run("init --head sigmoid --base-c 3 --seed 5 --out %s", b), 0, "%s", output);
    cr_assert_eq(run("init --head sigmoid --base-c 3 --seed 6 --out %s", c), 0, "%s", output);
    /* the draws training makes for that seed (train_head: tg_rng_seed(seed), tg_unet_new) */
    tg_rng rng;
    tg_rng_seed(&rng, 5);
    tg_unet *ref = tg_unet_new(3, 1, 3, &rng);
    tg_unet *m = tg_unet_new(3, 1, 3, NULL);
    cr_assert(ref && m);
    tg_ckpt_opts strict = {0}; /* strict: the default */
    cr_assert_eq(tg_checkpoint_load(a, m->params, &strict, NULL), TG_OK, "%s", tg_last_error());
    for (int i = 0; i < m->params->count; i++) {
        const tg_tensor *t = m->params->entries[i].tensor, *r = ref->params->entries[i].tensor;
        if (t->dtype == TG_F32)
            cr_assert(!memcmp(t->data, r->data, (size_t)t->numel * 4), "%s differs", m->params->entries[i].name);
    }
    tg_unet_free(ref);
    tg_unet_free(m);
    st_all sa, sb, sc;
    st_load(a, &sa);
    st_load(b, &sb);
    st_load(c, &sc);
    int k = st_index(&sa, "in_conv.0.weight");
    cr_assert_geq(k, 0);
    cr_expect(!memcmp(sa.data[k], sb.data[k], 3 * 3 * 9 * 4), "the same seed drew other weights");
    cr_expect(memcmp(sa.data[k], sc.data[k], 3 * 3 * 9 * 4), "another seed drew the same weights");
    st_free(&sa);
    st_free(&sb);
    st_free(&sc);
    /* and step-dump takes it */
    snprintf(b, sizeof b, "%s/step.safetensors", tmpdir);
    cr_expect_eq(run("step-dump --checkpoint %s --head sigmoid --base-c 3 --batch 1 --crop 32 --data "
                     FIX "/stepdump_data --out %s", a, b), 0, "%s", output);
}

Test(unet_stepdump, bad_input_fails_clearly, .init = make_tmp, .fini = remove_tmp)
{
    char out[512];
    snprintf(out, sizeof out, "%s/step.safetensors", tmpdir);
    const char *data = "--data " FIX "/stepdump_data " DRIVE_NORM;
    cr_expect_eq(run("step-dump --checkpoint %s/missing.safetensors --head softmax --base-c 2 %s --out %s", tmpdir,
                     data, out), 1);
    cr_expect(strstr(output, "missing.safetensors"), "%s", output);
    /* the softmax checkpoint (2 output channels) given as a sigmoid head */
    cr_expect_eq(run("step-dump --checkpoint " FIX "/stepdump_softmax_ckpt.safetensors --head sigmoid --base-c 2 %s "
                     "--out %s", data, out), 1);
    cr_expect(strstr(output, "out_conv.0.weight"), "%s", output);
    /* a crop larger than the images */
    cr_expect_eq(run("step-dump --checkpoint " FIX "/stepdump_softmax_ckpt.safetensors --head softmax --base-c 2 "
                     "--crop 64 %s --out %s", data, out), 1);
    cr_expect(strstr(output, "img_01.png") && strstr(output, "smaller than --crop 64"), "%s", output);
    cr_expect_eq(run("step-dump --checkpoint " FIX "/stepdump_softmax_ckpt.safetensors --head softmax --base-c 2 "
                     "--batch 4 %s --out %s", data, out), 1);
    cr_expect(strstr(output, "fewer than --batch 4"), "%s", output);
    cr_expect_eq(run("step-dump --checkpoint " FIX "/stepdump_softmax_ckpt.safetensors --head softmax --base-c 2 "
                     "--data %s --out %s", tmpdir, out), 1);
    cr_expect(strstr(output, tmpdir), "%s", output);
    cr_expect_eq(run("step-dump --head softmax --out %s", out), 2);
    cr_expect(strstr(output, "--checkpoint F is required"), "%s", output);
    cr_expect_eq(run("init --head softmax --out %s --trace", out), 2);
    cr_expect(strstr(output, "unknown option '--trace'"), "%s", output);
    cr_expect_eq(run("init --head both --out %s", out), 2);
    cr_expect_eq(run("step-dump --checkpoint x --head softmax --mean 0.5,0.5,0.5 --out %s", out), 2);
    cr_expect(strstr(output, "--mean and --std go together"), "%s", output);
    struct stat st;
    cr_expect_neq(stat(out, &st), 0, "a failed run left %s behind", out);
}

/* On DRIVE itself (skipped without it): the first 2 training images in name order (21, 22), their
 * centre crop at ((H-S)//2, (W-S)//2) of the normalised full image, and its target. */
Test(unet_stepdump, drive_centre_crop, .init = make_tmp, .fini = remove_tmp)
{
    char probe[1024], ckpt[512], out[512];
    struct stat st;
    snprintf(probe, sizeof probe, "%s/training/images/21_training.tif", tg_drive_default_root());
    if (stat(probe, &st) != 0) cr_skip_test("DRIVE not found at %s (see README: TG_DRIVE_DIR)", tg_drive_default_root());
    snprintf(ckpt, sizeof ckpt, "%s/init.safetensors", tmpdir);
    snprintf(out, sizeof out, "%s/step.safetensors", tmpdir);
    cr_assert_eq(run("init --head softmax --base-c 2 --out %s", ckpt), 0, "%s", output);
    cr_assert_eq(run("step-dump --checkpoint %s --head softmax --base-c 2 --batch 2 --crop 64 --threads 2 --out %s",
                     ckpt, out), 0, "%s", output);
    st_all d;
    st_load(out, &d);
    const int ki = st_index(&d, "input"), kt = st_index(&d, "target");
    cr_assert(ki >= 0 && kt >= 0);
    const float *x = d.data[ki];
    const int64_t *y = d.data[kt];
    tg_seg_dataset *ds = tg_drive_open(NULL, TG_DRIVE_TRAINING);
    cr_assert_not_null(ds, "%s", tg_last_error());
    cr_expect(strstr(tg_seg_dataset_image_path(ds, 0), "21_training.tif"));
    bool seen[3] = {false, false, false};
    for (int b = 0; b < 2; b++) {
        tg_image *img, *tgt;
        cr_assert_eq(tg_seg_dataset_get(ds, b, &img, &tgt), TG_OK, "%s", tg_last_error());
        const int H = img->height, W = img->width, S = 64, top = (H - S) / 2, left = (W - S) / 2;
        float *full = malloc((size_t)3 * H * W * sizeof *full);
        int64_t *fy = malloc((size_t)H * W * sizeof *fy);
        cr_assert_eq(tg_seg_to_tensor(img, tgt, TG_DRIVE_MEAN, TG_DRIVE_STD, full, fy), TG_OK);
        for (int r = 0; r < S; r++)
            for (int c = 0; c < S; c++) {
                for (int ch = 0; ch < 3; ch++)
                    cr_assert_eq(x[((b * 3 + ch) * S + r) * S + c], full[((int64_t)ch * H + top + r) * W + left + c],
                                 "image %d channel %d pixel (%d, %d)", b, ch, r, c);
                const int64_t v = y[(b * S + r) * S + c];
                cr_assert_eq(v, fy[(int64_t)(top + r) * W + left + c], "target %d pixel (%d, %d)", b, r, c);
                seen[v == 255 ? 2 : v] = true;
            }
        free(full);
        free(fy);
        tg_image_free(img);
        tg_image_free(tgt);
    }
    cr_expect(seen[0] && seen[1], "the centre crops hold background and vessel pixels");
    tg_seg_dataset_free(ds);
    st_free(&d);
}
