/* unet_drive step-dump / init: one training step written out for another framework to check.
 *
 *   unet_drive step-dump --checkpoint F --head sigmoid|softmax --base-c C --batch B --crop S [--data DIR]
 *                        [--mean M0,M1,M2 --std S0,S1,S2] [--class-weight W0,W1] [--trace] [--threads T] --out F
 *   unet_drive init --head H --base-c C --seed S --out F
 *
 * step-dump loads F (a safetensors state_dict in PyTorch names, BN running statistics included,
 * strictly: nothing missing, nothing extra), takes the first B training images in name order,
 * centre-crops image and target to S x S (top-left corner ((H-S)//2, (W-S)//2)), normalises them
 * as training does (dataset.c: DRIVE's mean and std, computed for other folders, or --mean/--std;
 * no augmentation), runs one training-mode forward, the
 * head's training loss (head_loss.c) and backward, no optimizer step, and writes "input"
 * (B,3,S,S) F32, "target" (B,S,S) I64 (0/1/255, as the loss sees it), "logits", "loss" (a scalar)
 * and "grad.<name>" for every parameter. --trace adds the UNet's block outputs (in_conv,
 * down1..4, up1..4, out_conv) and their gradients "grad.<block>" (nn/trace.h).
 * init writes freshly initialised weights, drawn exactly as training draws them for that seed.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/cli.h"
#include "dataset.h"
#include "head_loss.h"
#include "stepdump.h"

static const char *SD_USAGE =
    "usage: unet_drive step-dump --checkpoint F --head sigmoid|softmax --base-c C --out FILE [options]\n"
    "       unet_drive init --head sigmoid|softmax --out FILE [--base-c C] [--seed S]\n"
    "step-dump: one training step (forward, loss, backward; no optimizer step) on the first B training\n"
    "images, centre-cropped to S x S, written as safetensors: input, target, logits, loss, grad.<param>\n"
    "  --checkpoint F      safetensors state_dict with PyTorch names (as torch writes it), loaded strictly\n"
    "  --head H            sigmoid (1 channel, BCE) or softmax (2 channels, CE): the training loss\n"
    "  --base-c C          UNet base width of the checkpoint [16]\n"
    "  --batch B [2]   --crop S [64]   --class-weight W0,W1 [1,2]   --threads T [all cores]\n"
    "  --data DIR          DRIVE, or DIR/training and DIR/test with images/ labels/ [masks/], as training\n"
    "                      takes it [$TG_DRIVE_DIR or the default DRIVE root]\n"
    "  --mean M0,M1,M2 --std S0,S1,S2   normalisation [as training: DRIVE's, or computed over the images]\n"
    "  --trace             also the UNet's block outputs and their gradients (in_conv, down1..4, up1..4,\n"
    "                      out_conv; grad.<block>)\n"
    "init: fresh weights as training draws them for --seed S [0], same format, with unet_drive metadata\n";

typedef struct {
    const char *ckpt, *data, *out;
    int head, base_c, batch, crop, threads;
    long long seed;
    double cw[2];
    float mean[3], std[3];
    bool trace, mean_given, std_given;
} sd_config;

static int sd_usage_error(const char *cmd, const char *fmt, const char *arg)
{
    fprintf(stderr, "unet_drive %s: ", cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(unet_drive %s --help lists the options)\n", cmd);
    return 2;
}

static int sd_fail(const char *cmd, const char *what)
{
    fprintf(stderr, "unet_drive %s: %s: %s\n", cmd, what, tg_last_error());
    return 1;
}

static bool parse_class_weight(const char *v, double cw[2])
{
    char *end;
    errno = 0;
    cw[0] = strtod(v, &end);
    if (errno || end == v || *end != ',') return false;
    const char *second = end + 1;
    cw[1] = strtod(second, &end);
    return !errno && end != second && !*end && cw[0] > 0 && cw[1] > 0 && isfinite(cw[0]) && isfinite(cw[1]);
}

/* 0 on success, else the exit code (-1: --help printed). */
static int sd_parse(const char *cmd, int argc, char **argv, sd_config *c)
{
    *c = (sd_config){.head = -1, .base_c = 16, .batch = 2, .crop = 64, .cw = {1.0, 2.0}};
    const bool init = !strcmp(cmd, "init");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(SD_USAGE, stdout);
            return -1;
        }
        if (!init && !strcmp(a, "--trace")) {
            c->trace = true;
            continue;
        }
        static const char *const DUMP_OPTS[] = {"--checkpoint", "--head", "--base-c", "--batch", "--crop", "--data",
                                                "--out", "--class-weight", "--threads", "--mean", "--std"};
        static const char *const INIT_OPTS[] = {"--head", "--base-c", "--seed", "--out"};
        const char *const *opts = init ? INIT_OPTS : DUMP_OPTS;
        const size_t n_opts = init ? sizeof INIT_OPTS / sizeof *INIT_OPTS : sizeof DUMP_OPTS / sizeof *DUMP_OPTS;
        bool known = false;
        for (size_t k = 0; k < n_opts; k++) known |= !strcmp(a, opts[k]);
        if (!known) return sd_usage_error(cmd, strncmp(a, "--", 2) ? "unexpected argument '%s'" : "unknown option '%s'", a);
        if (i + 1 >= argc) return sd_usage_error(cmd, "option %s needs a value", a);
        const char *v = argv[++i];
        long long n;
        if (!strcmp(a, "--head")) {
            if (!strcmp(v, "sigmoid")) c->head = HEAD_SIGMOID;
            else if (!strcmp(v, "softmax")) c->head = HEAD_SOFTMAX;
            else return sd_usage_error(cmd, "--head must be sigmoid or softmax, not '%s'", v);
        } else if (!strcmp(a, "--base-c")) {
            if (!cli_parse_long(v, 1, 512, &n)) return sd_usage_error(cmd, "--base-c takes a whole number 1..512, not '%s'", v);
            c->base_c = (int)n;
        } else if (!strcmp(a, "--batch")) {
            if (!cli_parse_long(v, 1, 1024, &n)) return sd_usage_error(cmd, "--batch takes a whole number 1..1024, not '%s'", v);
            c->batch = (int)n;
        } else if (!strcmp(a, "--crop")) {
            if (!cli_parse_long(v, 16, 4096, &n)) return sd_usage_error(cmd, "--crop takes a whole number 16..4096, not '%s'", v);
            c->crop = (int)n;
        } else if (!strcmp(a, "--threads")) {
            if (!cli_parse_long(v, 1, 1024, &n)) return sd_usage_error(cmd, "--threads takes a whole number 1..1024, not '%s'", v);
            c->threads = (int)n;
        } else if (!strcmp(a, "--seed")) {
            if (!cli_parse_long(v, 0, INT64_MAX, &c->seed)) return sd_usage_error(cmd, "--seed takes a whole number >= 0, not '%s'", v);
        } else if (!strcmp(a, "--class-weight")) {
            if (!parse_class_weight(v, c->cw))
                return sd_usage_error(cmd, "--class-weight takes two positive numbers W0,W1 (e.g. 1,2), not '%s'", v);
        } else if (!strcmp(a, "--mean")) {
            if (!unet_norm_parse(v, false, c->mean)) return sd_usage_error(cmd, "--mean takes three numbers M0,M1,M2, not '%s'", v);
            c->mean_given = true;
        } else if (!strcmp(a, "--std")) {
            if (!unet_norm_parse(v, true, c->std)) return sd_usage_error(cmd, "--std takes three positive numbers S0,S1,S2, not '%s'", v);
            c->std_given = true;
        } else if (!strcmp(a, "--checkpoint")) c->ckpt = v;
        else if (!strcmp(a, "--data")) c->data = v;
        else if (!strcmp(a, "--out")) c->out = v;
    }
    if (c->head < 0) return sd_usage_error(cmd, "%s", "--head sigmoid|softmax is required");
    if (!c->out) return sd_usage_error(cmd, "%s", "--out FILE is required");
    if (!init && !c->ckpt) return sd_usage_error(cmd, "%s", "--checkpoint F is required");
    if (c->mean_given != c->std_given) return sd_usage_error(cmd, "%s", "--mean and --std go together");
    return 0;
}

static void meta_num(tg_meta *m, const char *key, double v)
{
    char buf[48];
    snprintf(buf, sizeof buf, "%.17g", v);
    tg_meta_set(m, key, buf);
}

static int run_init(const sd_config *c)
{
    tg_rng rng;
    tg_rng_seed(&rng, (uint64_t)c->seed); /* as train_head: the same draws for the same seed */
    tg_unet *m = tg_unet_new(3, c->head == HEAD_SIGMOID ? 1 : 2, c->base_c, &rng);
    if (!m) return sd_fail("init", "cannot build the model");
    tg_meta meta = {0};
    tg_meta_set(&meta, "head", HEAD_NAME[c->head]);
    meta_num(&meta, "num_classes", c->head == HEAD_SIGMOID ? 1 : 2);
    meta_num(&meta, "in_channels", 3);
    meta_num(&meta, "base_c", c->base_c);
    meta_num(&meta, "seed", (double)c->seed);
    tg_meta_set(&meta, "made_by", "unet_drive init");
    tg_ckpt_opts so = {.meta = &meta};
    int rc = 0;
    if (tg_checkpoint_save(c->out, m->params, &so) != TG_OK) rc = sd_fail("init", "cannot write the weights");
    else
        printf("unet_drive init: %s head, base width %d, seed %lld: %lld parameters written to %s\n", HEAD_NAME[c->head],
               c->base_c, c->seed, (long long)tg_param_list_numel(m->params, TG_KIND_PARAM), c->out);
    tg_meta_clear(&meta);
    tg_unet_free(m);
    return rc;
}

/* The first B training samples, centre-cropped and normalised as training does, into x (B,3,S,S) and
 * y (B,S,S); the normalisation used into mean/std. */
static tg_status load_batch(const sd_config *c, tg_tensor **x, tg_tensor **y, float mean[3], float std[3])
{
    const char *root = c->data ? c->data : tg_drive_default_root();
    unet_data data;
    tg_status st0 = unet_data_open(root, true, c->mean_given ? c->mean : NULL, c->std_given ? c->std : NULL, &data);
    if (st0 != TG_OK) {
        unet_data_close(&data);
        return st0;
    }
    memcpy(mean, data.mean, sizeof data.mean);
    memcpy(std, data.std, sizeof data.std);
    const tg_seg_dataset *ds = data.train;
    const int64_t B = c->batch, S = c->crop;
    tg_status st = TG_OK;
    if (tg_seg_dataset_length(ds) < B)
        st = tg_error(TG_ERR_ARG, "%s has %lld training images, fewer than --batch %lld", root,
                      (long long)tg_seg_dataset_length(ds), (long long)B);
    *x = st == TG_OK ? tg_tensor_zeros(TG_SHAPE(B, 3, S, S)) : NULL;
    *y = st == TG_OK ? tg_tensor_new(TG_I64, TG_SHAPE(B, S, S)) : NULL;
    if (st == TG_OK && (!*x || !*y)) st = tg_last_status();
    for (int64_t i = 0; i < B && st == TG_OK; i++) {
        tg_image *img = NULL, *tgt = NULL, *ci = NULL, *ct = NULL;
        st = tg_seg_dataset_get(ds, i, &img, &tgt);
        if (st == TG_OK && (img->width < S || img->height < S))
            st = tg_error(TG_ERR_ARG, "%s is %dx%d (width x height), smaller than --crop %lld",
                          tg_seg_dataset_image_path(ds, i), img->width, img->height, (long long)S);
        if (st == TG_OK) {
            const int top = (int)((img->height - S) / 2), left = (int)((img->width - S) / 2);
            ci = tg_image_crop(img, left, top, (int)S, (int)S);
            ct = tg_image_crop(tgt, left, top, (int)S, (int)S);
            if (!ci || !ct) st = tg_last_status();
        }
        if (st == TG_OK)
            st = tg_seg_to_tensor(ci, ct, mean, std, (*x)->data + i * 3 * S * S,
                                  (*y)->idata + i * S * S);
        tg_image_free(img);
        tg_image_free(tgt);
        tg_image_free(ci);
        tg_image_free(ct);
    }
    unet_data_close(&data);
    if (st != TG_OK) {
        tg_tensor_free(*x);
        tg_tensor_free(*y);
        *x = *y = NULL;
    }
    return st;
}

static int run_step_dump(const sd_config *c)
{
    const char *cmd = "step-dump";
    tg_set_num_threads(c->threads);
    tg_set_flush_denormal(true); /* as training */
    tg_unet *m = tg_unet_new(3, c->head == HEAD_SIGMOID ? 1 : 2, c->base_c, NULL);
    if (!m) return sd_fail(cmd, "cannot build the model");
    tg_ckpt_opts strict = {0}; /* strict: the default */
    if (tg_checkpoint_load(c->ckpt, m->params, &strict, NULL) != TG_OK) {
        tg_unet_free(m);
        return sd_fail(cmd, "cannot load the checkpoint (check --head and --base-c)");
    }
    tg_tensor *x = NULL, *y = NULL;
    float mean[3], std[3];
    if (load_batch(c, &x, &y, mean, std) != TG_OK) {
        tg_unet_free(m);
        return sd_fail(cmd, "cannot read the training images");
    }
    tg_param_list_train(m->params, true);
    loss_buffers lb = {0};
    int rc = 0;
    tg_status st = c->trace ? tg_trace_begin(c->out) : TG_OK;
    tg_tensor *logits = st == TG_OK ? tg_unet_forward(m, x) : NULL;
    tg_tensor *loss = logits ? head_loss(c->head, logits, y, c->cw, &lb) : NULL;
    if (loss && !c->trace) st = tg_trace_begin(c->out); /* only the named values below */
    if (!loss || st != TG_OK || tg_backward(loss) != TG_OK) {
        rc = sd_fail(cmd, "the training step failed");
        tg_trace_abort();
    } else {
        tg_trace_value("input", x);
        tg_trace_value("target", y);
        tg_trace_value("logits", logits);
        tg_trace_value("loss", loss);
        tg_meta meta = {0};
        tg_meta_set(&meta, "made_by", "unet_drive step-dump");
        tg_meta_set(&meta, "checkpoint", c->ckpt);
        tg_meta_set(&meta, "head", HEAD_NAME[c->head]);
        meta_num(&meta, "base_c", c->base_c);
        meta_num(&meta, "batch", c->batch);
        meta_num(&meta, "crop", c->crop);
        meta_num(&meta, "class_weight_0", c->cw[0]);
        meta_num(&meta, "class_weight_1", c->cw[1]);
        char norm[96];
        unet_norm_format(mean, norm, sizeof norm);
        tg_meta_set(&meta, "norm_mean", norm);
        unet_norm_format(std, norm, sizeof norm);
        tg_meta_set(&meta, "norm_std", norm);
        if (tg_trace_end(m->params, &meta) != TG_OK) rc = sd_fail(cmd, "cannot write the dump");
        else
            printf("unet_drive step-dump: %s head, %d images %dx%d, loss %.6f; %s written%s\n", HEAD_NAME[c->head],
                   c->batch, c->crop, c->crop, (double)loss->data[0], c->out,
                   c->trace ? " (with the block outputs and their gradients)" : "");
        tg_meta_clear(&meta);
    }
    tg_tape_clear();
    loss_buffers_free(&lb);
    tg_tensor_free(x);
    tg_tensor_free(y);
    tg_unet_free(m);
    return rc;
}

int unet_stepdump_main(int argc, char **argv)
{
    const char *cmd = argv[0];
    sd_config c;
    int rc = sd_parse(cmd, argc, argv, &c);
    if (rc) return rc < 0 ? 0 : rc;
    return strcmp(cmd, "init") ? run_step_dump(&c) : run_init(&c);
}
