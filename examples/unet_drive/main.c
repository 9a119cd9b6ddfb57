/* unet_drive: the experiment of the cross-entropy article, section 4. A binary segmentation
 * head can be 1 channel + sigmoid + BCE or 2 channels + softmax + CE; which is better? Trains
 * the reference UNet (nn/unet.h) on the DRIVE retinal-vessel images both ways, with the same
 * seed, batches and initial weights, evaluates each epoch on the 20 test images with the
 * reference metrics (Dice, IoU, accuracy; outside the field of view ignored) and writes a
 * side-by-side report with curves and overlays.
 *
 *   unet_drive [--head both|sigmoid|softmax] [--epochs N] [--out DIR] [--data DIR] ...  (--help)
 *   unet_drive --eval CKPT [--data DIR]
 *   unet_drive --report-only [--out DIR]
 *   mpirun -np N unet_drive ...   data parallel (tapegrad_dist): --batch-size is the global batch;
 *                                 rank 0 evaluates and writes logs, checkpoints and the report
 *   unet_drive step-dump ... / unet_drive init ...   (stepdump.c)
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dataset.h"
#include "common/cli.h"
#include "dist/dist.h"
#include "head_loss.h"
#include "report.h"
#include "seeds.h"
#include "run.h"
#include "stepdump.h"

typedef struct {
    const char *data, *out, *eval_ckpt;
    const char *preset;                       /* "cpu", "paper" or NULL (the defaults) */
    const char *predict_ckpt, *image, *mask, *prob; /* --predict CKPT --image IMG [--mask M] --out PRED [--prob P] */
    bool head[2];
    int epochs, batch, crop, base_c, warmup_epochs, threads, workers, eval_every, overlays, stop_after;
    double lr, momentum, weight_decay, class_weight[2];
    uint64_t seed;
    int64_t limit_train, limit_test;
    bool resume, report_only, sync_bn, allow_config_change;
    bool resume_fresh_ok;            /* --resume: another head has a checkpoint, so a head never started may start */
    int argc;                        /* the command line, to print the command that resumes */
    char **argv;
    /* --seeds: every seed trains both heads into OUT/seed_S/HEAD (n_seeds 0: --seed alone, OUT/HEAD) */
    long long seeds[UNET_MAX_SEEDS];
    int n_seeds;
    /* --mean/--std (given), then the normalisation in use once the data is open; --base-size (0: from the images) */
    float mean[3], std[3];
    bool mean_given, std_given;
    int base_size;
} config;

static const char *USAGE =
    "usage: unet_drive [options]          train and compare the two heads, then report\n"
    "       unet_drive --eval CKPT        evaluate a checkpoint on the DRIVE test images\n"
    "       unet_drive --report-only      rebuild the report from OUT's logs and checkpoints\n"
    "       unet_drive --predict CKPT --image IMG [--mask M] --out PRED.png [--prob PROB.png]\n"
    "                                     segment one image: PRED 0/255 vessel mask (0 outside the mask M),\n"
    "                                     PROB the vessel probability as 8-bit grey; head, base width and\n"
    "                                     normalisation come from the checkpoint\n"
    "       unet_drive step-dump ... | init ...   one training step as safetensors | fresh weights (step-dump --help)\n"
    "options (defaults in brackets):\n"
    "  --preset cpu|paper  cpu: base width 16, crop 256, batch 4, 150 epochs (a 2-core machine);\n"
    "                      paper: the reference's train.py, base width 32, crop 480, batch 4, 150 epochs;\n"
    "                      flags given as well override the preset's values\n"
    "  --head both|sigmoid|softmax  which heads to train [both: sigmoid, then softmax]\n"
    "  --epochs N          epochs per head [40]\n"
    "  --batch-size N      [4]      --crop N   random crop side [480 for DRIVE; else from the image size]\n"
    "  --base-size N       random resize base (shorter side drawn in [0.5N, 1.2N]) [the smallest image side: 565 for DRIVE]\n"
    "  --base-c N          UNet base width [16] (the reference's train.py uses 32, 200 epochs on a GPU)\n"
    "  --lr LR [0.01]  --momentum M [0.9]  --weight-decay WD [1e-4]  --warmup-epochs N [1]\n"
    "  --class-weight W0,W1  background and vessel loss weights [1,2]\n"
    "  --seed S [0]  --threads T [all cores]  --workers W  data-loading threads [1]\n"
    "  --seeds S1,S2,...   train both heads for every seed into OUT/seed_S/<head>; the report gives mean +- std\n"
    "                      per head and the paired difference softmax - sigmoid with a 95%% t interval\n"
    "  --mean M0,M1,M2 --std S0,S1,S2  input normalisation on [0,1] values [DRIVE: its published values;\n"
    "                      other datasets: computed over the training images inside their masks]\n"
    "  --eval-every K      evaluate on the test images every K epochs (and after the last) [1]\n"
    "  --overlays K        test images drawn in overlay PNGs by the report [3]\n"
    "  --limit-train N / --limit-test N   use only the first N images (smoke tests)\n"
    "  --resume            continue OUT/<head>/last.safetensors (model, optimizer, schedule, epoch);\n"
    "                      settings that differ from the checkpoint's are listed and refused\n"
    "  --allow-config-change   resume even so (the change of settings is intended)\n"
    "  --stop-after K      stop each head after epoch K (the schedule still plans --epochs; --resume goes on)\n"
    "  --sync-bn           under mpirun: BatchNorm statistics over the whole global batch (SyncBatchNorm)\n"
    "  --data DIR          DRIVE's layout, or DIR/training and DIR/test each with images/, labels/ and\n"
    "                      optional masks/ (detected) [$TG_DRIVE_DIR or ";

static void print_usage(FILE *f) { fprintf(f, "%s%s]\n  --out DIR           [runs/unet_drive]\n", USAGE, tg_drive_default_root()); }

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "unet_drive: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(unet_drive --help lists the options)\n");
    return 2;
}

/* 0 on success, else the exit code. */
static int parse_args(int argc, char **argv, config *c)
{
    *c = (config){.out = "runs/unet_drive", .head = {true, true}, .epochs = 40, .batch = 4, .crop = 0,
                  .base_c = 16, .warmup_epochs = 1, .workers = 1, .eval_every = 1, .overlays = 3, .lr = 0.01,
                  .momentum = 0.9, .weight_decay = 1e-4, .class_weight = {1.0, 2.0}, .argc = argc, .argv = argv};
    bool seed_given = false;
    /* a preset sets defaults first, whatever its place on the line: the flags then override them */
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--preset")) {
            const char *v = argv[++i];
            if (!strcmp(v, "cpu")) c->base_c = 16, c->crop = 256, c->batch = 4, c->epochs = 150;
            else if (!strcmp(v, "paper")) c->base_c = 32, c->crop = 480, c->batch = 4, c->epochs = 150;
            else return usage_error("--preset must be cpu or paper, not '%s'", v);
            c->preset = v;
        }
    bool out_given = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            print_usage(stdout);
            exit(0);
        }
        if (!strcmp(a, "--resume")) {
            c->resume = true;
            continue;
        }
        if (!strcmp(a, "--report-only")) {
            c->report_only = true;
            continue;
        }
        if (!strcmp(a, "--sync-bn")) {
            c->sync_bn = true;
            continue;
        }
        if (!strcmp(a, "--allow-config-change")) {
            c->allow_config_change = true;
            continue;
        }
        if (strncmp(a, "--", 2)) return usage_error("unexpected argument '%s'", a);
        static const char *const WITH_VALUE[] = {
            "--head", "--epochs", "--batch-size", "--crop", "--base-c", "--warmup-epochs", "--threads", "--workers",
            "--eval-every", "--overlays", "--lr", "--momentum", "--weight-decay", "--class-weight", "--seed",
            "--limit-train", "--limit-test", "--data", "--out", "--eval", "--stop-after", "--seeds", "--mean", "--std",
            "--base-size", "--preset", "--predict", "--image", "--mask", "--prob"};
        bool known = false;
        for (size_t k = 0; k < sizeof WITH_VALUE / sizeof *WITH_VALUE; k++) known |= !strcmp(a, WITH_VALUE[k]);
        if (!known) return usage_error("unknown option '%s'", a);
        if (i + 1 >= argc) return usage_error("option %s needs a value", a);
        const char *v = argv[++i];
        long long n;
#define INT_OPT(name, field, lo, hi)                                                                                  \
    else if (!strcmp(a, name)) {                                                                                       \
        if (!cli_parse_long(v, lo, hi, &n)) return usage_error(name " takes a whole number " #lo ".." #hi ", not '%s'", v); \
        c->field = (int)n;                                                                                             \
    }
        if (!strcmp(a, "--head")) {
            bool both = !strcmp(v, "both"), sig = !strcmp(v, "sigmoid"), soft = !strcmp(v, "softmax");
            if (!both && !sig && !soft) return usage_error("--head must be both, sigmoid or softmax, not '%s'", v);
            c->head[HEAD_SIGMOID] = both || sig;
            c->head[HEAD_SOFTMAX] = both || soft;
        }
        INT_OPT("--epochs", epochs, 1, 100000)
        INT_OPT("--batch-size", batch, 1, 1024)
        INT_OPT("--crop", crop, 16, 4096)
        INT_OPT("--base-c", base_c, 1, 512)
        INT_OPT("--warmup-epochs", warmup_epochs, 0, 100000)
        INT_OPT("--threads", threads, 1, 1024)
        INT_OPT("--workers", workers, 0, 16)
        INT_OPT("--eval-every", eval_every, 1, 100000)
        INT_OPT("--overlays", overlays, 0, 20)
        INT_OPT("--stop-after", stop_after, 1, 100000)
        INT_OPT("--base-size", base_size, 16, 4096)
        else if (!strcmp(a, "--seeds")) {
            if (!unet_seeds_parse(v, c->seeds, &c->n_seeds))
                return usage_error("--seeds takes distinct whole numbers >= 0 separated by commas (e.g. 0,1,2), "
                                   "not '%s'", v);
        } else if (!strcmp(a, "--mean")) {
            if (!unet_norm_parse(v, false, c->mean)) return usage_error("--mean takes three numbers M0,M1,M2, not '%s'", v);
            c->mean_given = true;
        } else if (!strcmp(a, "--std")) {
            if (!unet_norm_parse(v, true, c->std))
                return usage_error("--std takes three positive numbers S0,S1,S2, not '%s'", v);
            c->std_given = true;
        }
        else if (!strcmp(a, "--lr")) {
            if (!cli_parse_double(v, &c->lr) || c->lr <= 0) return usage_error("--lr takes a positive number, not '%s'", v);
        } else if (!strcmp(a, "--momentum")) {
            if (!cli_parse_double(v, &c->momentum) || c->momentum < 0 || c->momentum >= 1)
                return usage_error("--momentum takes a number in [0, 1), not '%s'", v);
        } else if (!strcmp(a, "--weight-decay")) {
            if (!cli_parse_double(v, &c->weight_decay) || c->weight_decay < 0)
                return usage_error("--weight-decay takes a number >= 0, not '%s'", v);
        } else if (!strcmp(a, "--class-weight")) {
            char *end;
            errno = 0;
            c->class_weight[0] = strtod(v, &end);
            bool ok = !errno && end != v && *end == ',';
            if (ok) {
                const char *second = end + 1;
                c->class_weight[1] = strtod(second, &end);
                ok = !errno && end != second && !*end;
            }
            if (!ok || !(c->class_weight[0] > 0) || !(c->class_weight[1] > 0) || !isfinite(c->class_weight[0]) ||
                !isfinite(c->class_weight[1]))
                return usage_error("--class-weight takes two positive numbers W0,W1 (e.g. 1,2), not '%s'", v);
        } else if (!strcmp(a, "--seed")) {
            if (!cli_parse_long(v, 0, INT64_MAX, &n)) return usage_error("--seed takes a whole number >= 0, not '%s'", v);
            c->seed = (uint64_t)n;
            seed_given = true;
        } else if (!strcmp(a, "--limit-train")) {
            if (!cli_parse_long(v, 1, INT64_MAX, &n)) return usage_error("--limit-train takes a whole number >= 1, not '%s'", v);
            c->limit_train = n;
        } else if (!strcmp(a, "--limit-test")) {
            if (!cli_parse_long(v, 1, INT64_MAX, &n)) return usage_error("--limit-test takes a whole number >= 1, not '%s'", v);
            c->limit_test = n;
        } else if (!strcmp(a, "--data")) c->data = v;
        else if (!strcmp(a, "--out")) c->out = v, out_given = true;
        else if (!strcmp(a, "--eval")) c->eval_ckpt = v;
        else if (!strcmp(a, "--preset")) continue; /* applied above */
        else if (!strcmp(a, "--predict")) c->predict_ckpt = v;
        else if (!strcmp(a, "--image")) c->image = v;
        else if (!strcmp(a, "--mask")) c->mask = v;
        else if (!strcmp(a, "--prob")) c->prob = v;
        else return usage_error("unknown option '%s'", a);
#undef INT_OPT
    }
    if (c->eval_ckpt && c->report_only) return usage_error("%s", "--eval and --report-only are separate commands");
    if (seed_given && c->n_seeds) return usage_error("%s", "give --seed S or --seeds S1,S2,..., not both");
    if (c->mean_given != c->std_given) return usage_error("%s", "--mean and --std go together (give both)");
    if (c->predict_ckpt && (c->eval_ckpt || c->report_only || c->resume))
        return usage_error("%s", "--predict is a command of its own (not with --eval, --report-only or --resume)");
    if (c->predict_ckpt && (!c->image || !out_given))
        return usage_error("%s", "--predict CKPT needs --image IMG and --out PRED.png");
    if (!c->predict_ckpt && (c->image || c->mask || c->prob))
        return usage_error("%s", "--image, --mask and --prob go with --predict CKPT");
    return 0;
}

static int fail(const char *what)
{
    fprintf(stderr, "unet_drive: %s: %s\n", what, tg_last_error());
    return 1;
}

/* Data parallel: each rank's loss is a weighted mean over its own pixels. Scaled by
 * W * (its weight sum) / (the whole batch's), the ranks' average is the whole batch's weighted mean
 * (with --sync-bn the run then differs from one process only in float summation order). */
static tg_tensor *whole_batch_mean(tg_tensor *loss, const tg_tensor *y, const double cw[2])
{
    if (!loss || tg_dist_world_size() == 1) return loss;
    double mine = 0.0, all;
    for (int64_t i = 0; i < y->numel; i++) mine += y->idata[i] == 0 || y->idata[i] == 1 ? cw[y->idata[i]] : 0.0;
    all = mine;
    if (tg_dist_allreduce_sum(&all, 1) != TG_OK) return NULL;
    return tg_mul_scalar(loss, (float)(tg_dist_world_size() * mine / all));
}

/* ---- data ----------------------------------------------------------------------------------- */

typedef struct {
    unet_data data;           /* the segmentation datasets, layout and normalisation (dataset.h) */
    tg_seg_dataset *train_seg, *test_seg; /* borrowed from data */
    tg_dataset *train, *test;
    tg_seg_augment aug;
} drive_data;

static void drive_data_free(drive_data *d)
{
    tg_dataset_free(d->train);
    tg_dataset_free(d->test);
    unet_data_close(&d->data);
    memset(d, 0, sizeof *d);
}

/* Opens the dataset at --data (DRIVE's layout or folders, printed if verbose). Normalisation:
 * norm_mean/norm_std if given (a checkpoint's), else --mean/--std, else the dataset's (dataset.h);
 * the one in use is copied to c->mean/std. Resolves --base-size and --crop from the images. */
static tg_status drive_data_open(config *c, bool need_train, const float *norm_mean, const float *norm_std,
                                 bool verbose, drive_data *d)
{
    memset(d, 0, sizeof *d);
    const char *root = c->data ? c->data : tg_drive_default_root();
    if (!norm_mean && c->mean_given) norm_mean = c->mean, norm_std = c->std;
    tg_status st = unet_data_open(root, need_train, norm_mean, norm_std, &d->data);
    if (st != TG_OK) return st;
    d->train_seg = d->data.train;
    d->test_seg = d->data.test;
    memcpy(c->mean, d->data.mean, sizeof c->mean);
    memcpy(c->std, d->data.std, sizeof c->std);
    const bool drive = d->data.layout == UNET_LAYOUT_DRIVE;
    if (!c->base_size) c->base_size = drive ? 565 : d->data.min_side;
    if (!c->crop) c->crop = unet_default_crop(c->base_size);
    if (verbose) {
        char m[64], s[64];
        unet_norm_format(c->mean, m, sizeof m);
        unet_norm_format(c->std, s, sizeof s);
        printf("data: %s at %s: %lld training, %lld test images; normalisation mean %s, std %s (%s); base size %d, "
               "crop %d\n",
               unet_layout_describe(d->data.layout, d->data.masks), root,
               (long long)tg_seg_dataset_length(d->train_seg), (long long)tg_seg_dataset_length(d->test_seg), m, s,
               d->data.norm_source, c->base_size, c->crop);
    }
    d->aug = tg_seg_augment_drive(c->base_size, c->crop);
    memcpy(d->aug.mean, c->mean, sizeof d->aug.mean);
    memcpy(d->aug.std, c->std, sizeof d->aug.std);
    if (need_train && !(d->train = tg_seg_dataset_train(d->train_seg, &d->aug))) return tg_last_status();
    if (!(d->test = tg_seg_dataset_eval(d->test_seg, c->mean, c->std))) return tg_last_status();
    /* --limit-*: the first N samples (datasets read only indices below length) */
    if (d->train && c->limit_train && c->limit_train < d->train->length) d->train->length = c->limit_train;
    if (c->limit_test && c->limit_test < d->test->length) d->test->length = c->limit_test;
    return TG_OK;
}

/* ---- evaluation ----------------------------------------------------------------------------- */

/* Test metrics and loss of m over the test images (one at a time, full size, no gradients). */
static tg_status evaluate(const tg_unet *m, int head, const config *c, const tg_dataset *test, unet_epoch *e)
{
    tg_loader_options lo = tg_loader_defaults(1, 0);
    lo.shuffle = false;
    lo.workers = 1;
    tg_loader *l = tg_loader_new(test, &lo);
    if (!l) return tg_last_status();
    tg_seg_metrics sm;
    tg_status st = tg_seg_metrics_init(&sm, 2, 255);
    loss_buffers lb = {0};
    bool prev_grad = tg_set_grad_enabled(false);
    tg_param_list_train(m->params, false);
    double loss_sum = 0, forward_seconds = 0, t_start = tg_now();
    int64_t images = 0;
    tg_batch b;
    while (st == TG_OK && (st = tg_loader_next(l, &b)) == TG_OK && b.x) {
        double t0 = tg_now();
        tg_tensor *logits = tg_unet_forward(m, b.x);
        forward_seconds += tg_now() - t0;
        tg_tensor *loss = logits ? head_loss(head, logits, b.y, c->class_weight, &lb) : NULL;
        if (!loss) st = tg_last_status();
        else {
            loss_sum += loss->data[0];
            images++;
            st = tg_seg_metrics_update(&sm, logits, b.y);
        }
        tg_tape_clear();
        tg_batch_free(&b);
    }
    tg_set_grad_enabled(prev_grad);
    tg_param_list_train(m->params, true);
    if (st == TG_OK) {
        tg_seg_scores s = tg_seg_metrics_compute(&sm);
        e->evaluated = true;
        e->test_loss = loss_sum / (double)images;
        e->dice = s.dice;
        e->miou = s.mean_iou;
        e->global_acc = s.global_acc;
        e->acc[0] = s.acc[0], e->acc[1] = s.acc[1];
        e->iou[0] = s.iou[0], e->iou[1] = s.iou[1];
        e->eval_seconds = tg_now() - t_start;
        e->infer_ms = 1e3 * forward_seconds / (double)images;
    }
    loss_buffers_free(&lb);
    tg_seg_metrics_free(&sm);
    tg_loader_free(l);
    return st;
}

/* ---- checkpoints ---------------------------------------------------------------------------- */

static void meta_int(tg_meta *m, const char *key, long long v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", v);
    tg_meta_set(m, key, buf);
}

static void meta_double(tg_meta *m, const char *key, double v)
{
    char buf[48];
    snprintf(buf, sizeof buf, "%.17g", v);
    tg_meta_set(m, key, buf);
}

static void fill_meta(tg_meta *meta, const config *c, int head, int epoch, const unet_epoch *best)
{
    tg_meta_set(meta, "head", HEAD_NAME[head]);
    tg_meta_set(meta, "preset", c->preset ? c->preset : "none");
    meta_int(meta, "num_classes", head == HEAD_SIGMOID ? 1 : 2);
    meta_int(meta, "in_channels", 3);
    meta_int(meta, "base_c", c->base_c);
    meta_int(meta, "epoch", epoch);
    meta_int(meta, "epochs", c->epochs);
    meta_int(meta, "crop", c->crop);
    meta_int(meta, "batch", c->batch);
    meta_int(meta, "seed", (long long)c->seed);
    meta_double(meta, "lr", c->lr);
    meta_double(meta, "momentum", c->momentum);
    meta_double(meta, "weight_decay", c->weight_decay);
    meta_int(meta, "warmup_epochs", c->warmup_epochs);
    meta_double(meta, "class_weight_0", c->class_weight[0]);
    meta_double(meta, "class_weight_1", c->class_weight[1]);
    char norm[64];
    unet_norm_format(c->mean, norm, sizeof norm); /* the input normalisation, for --eval and --predict */
    tg_meta_set(meta, "norm_mean", norm);
    unet_norm_format(c->std, norm, sizeof norm);
    tg_meta_set(meta, "norm_std", norm);
    meta_int(meta, "limit_train", (long long)c->limit_train);
    if (best) {
        meta_double(meta, "best_dice", best->dice);
        meta_int(meta, "best_epoch", best->epoch);
    }
}

static bool meta_get_int(const tg_meta *m, const char *key, long long lo, long long hi, long long *out)
{
    const char *v = tg_meta_get(m, key);
    return v && cli_parse_long(v, lo, hi, out);
}

/* The settings a resumed run would write that differ from the checkpoint's (keys the checkpoint
 * does not have are not compared), as "key: checkpoint A, now B" lines into a new string; NULL
 * if none differ. */
static char *config_differences(const tg_meta *saved, const config *c, int head)
{
    /* progress, and the preset's name (its values are compared one by one) */
    static const char *const NOT_COMPARED[] = {"epoch", "best_dice", "best_epoch", "preset"};
    tg_meta now = {0};
    fill_meta(&now, c, head, 0, NULL);
    char *out = NULL;
    size_t len = 0;
    for (int i = 0; i < now.count; i++) {
        bool skip = false;
        for (size_t k = 0; k < sizeof NOT_COMPARED / sizeof *NOT_COMPARED; k++) skip |= !strcmp(now.keys[i], NOT_COMPARED[k]);
        const char *was = tg_meta_get(saved, now.keys[i]);
        if (skip || !was || !strcmp(was, now.values[i])) continue;
        char *line = run_path("  %s: checkpoint %s, now %s\n", now.keys[i], was, now.values[i]);
        char *grown = line ? realloc(out, len + strlen(line) + 1) : NULL;
        if (!grown) {
            free(line);
            break;
        }
        out = grown;
        memcpy(out + len, line, strlen(line) + 1);
        len += strlen(line);
        free(line);
    }
    tg_meta_clear(&now);
    return out;
}

/* The name of the first parameter or buffer with a NaN or infinite value, or NULL. */
static const char *first_non_finite(const tg_param_list *list)
{
    for (int i = 0; i < list->count; i++) {
        const tg_tensor *t = list->entries[i].tensor;
        if (t->dtype != TG_F32) continue;
        for (int64_t k = 0; k < t->numel; k++)
            if (!isfinite(t->data[k])) return list->entries[i].name;
    }
    return NULL;
}

/* A model for the checkpoint's metadata (head, base_c), with its weights; the normalisation its
 * training used into mean/std (DRIVE's if the checkpoint does not say; both may be NULL).
 * A checkpoint with non-finite weights is refused (a diverged run). */
static tg_unet *load_model(const char *path, int *head, float mean[3], float std[3])
{
    tg_meta meta = {0};
    tg_param_list *probe = tg_param_list_new();
    tg_ckpt_opts opts = {.meta = &meta, .non_strict = true};
    tg_status st = probe ? tg_checkpoint_load(path, probe, &opts, NULL) : TG_ERR_NOMEM;
    tg_param_list_free(probe);
    if (st != TG_OK) {
        tg_meta_clear(&meta);
        return NULL;
    }
    long long classes, base_c;
    const char *h = tg_meta_get(&meta, "head");
    if (!h || (strcmp(h, "sigmoid") && strcmp(h, "softmax")) || !meta_get_int(&meta, "num_classes", 1, 2, &classes) ||
        !meta_get_int(&meta, "base_c", 1, 512, &base_c)) {
        tg_error(TG_ERR_FORMAT, "%s: not a unet_drive checkpoint (needs \"head\", \"num_classes\" and \"base_c\" "
                 "in its metadata)", path);
        tg_meta_clear(&meta);
        return NULL;
    }
    *head = strcmp(h, "sigmoid") ? HEAD_SOFTMAX : HEAD_SIGMOID;
    const char *nm = tg_meta_get(&meta, "norm_mean"), *ns = tg_meta_get(&meta, "norm_std");
    if (!nm && !ns) {
        memcpy(mean, TG_DRIVE_MEAN, 3 * sizeof *mean);
        memcpy(std, TG_DRIVE_STD, 3 * sizeof *std);
    } else if (!unet_norm_parse(nm, false, mean) || !unet_norm_parse(ns, true, std)) {
        tg_error(TG_ERR_FORMAT, "%s: bad \"norm_mean\"/\"norm_std\" in the metadata ('%s', '%s'; expected three "
                 "numbers each)", path, nm ? nm : "", ns ? ns : "");
        tg_meta_clear(&meta);
        return NULL;
    }
    tg_meta_clear(&meta);
    tg_unet *m = tg_unet_new(3, (int)classes, (int)base_c, NULL);
    if (!m) return NULL;
    if (tg_checkpoint_load(path, m->params, NULL, NULL) != TG_OK) {
        tg_unet_free(m);
        return NULL;
    }
    const char *bad = first_non_finite(m->params);
    if (bad) {
        tg_error(TG_ERR_FORMAT, "%s: %s holds NaN or infinite values (the run diverged): no valid model", path, bad);
        tg_unet_free(m);
        return NULL;
    }
    return m;
}

/* ---- training one head ---------------------------------------------------------------------- */

static tg_status epoch_line(const unet_run *run, const unet_epoch *e, FILE *log, const char *path)
{
    char line[2048];
    unet_epoch_json(run, e, line, sizeof line);
    size_t len = strlen(line); /* + the number of data-parallel processes */
    if (len && line[len - 1] == '}') snprintf(line + len - 1, sizeof line - len + 1, ", \"world_size\": %d}", tg_dist_world_size());
    if (fprintf(log, "%s\n", line) < 0 || fflush(log) != 0)
        return tg_error(TG_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    return TG_OK;
}

/* Does a checkpoint exist at path? (errors other than "no such file" count as yes: loading says why) */
static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 || errno != ENOENT;
}

/* The best Dice a checkpoint's metadata records (-1 if none). */
static double saved_best_dice(const tg_meta *meta)
{
    const char *v = tg_meta_get(meta, "best_dice");
    double d;
    return v && cli_parse_double(v, &d) ? d : -1.0;
}

static double best_dice_of(const char *path)
{
    tg_meta meta = {0};
    tg_param_list *probe = tg_param_list_new();
    tg_ckpt_opts opts = {.meta = &meta, .non_strict = true};
    double d = probe && tg_checkpoint_load(path, probe, &opts, NULL) == TG_OK ? saved_best_dice(&meta) : -1.0;
    tg_param_list_free(probe);
    tg_meta_clear(&meta);
    return d;
}

/* Prints how to continue after an interrupt, naming what was kept. */
static void print_resume_hint(const config *c, const char *last_path, int saved_epoch)
{
    char *cmd = run_shell_command(c->argc, c->argv, saved_epoch > 0 ? "--resume" : NULL);
    if (saved_epoch > 0)
        fprintf(stderr, "unet_drive: interrupted (%s); %s (epoch %d) is kept. Resume with:\n  %s\n",
                strsignal(run_interrupted), last_path, saved_epoch, cmd ? cmd : "(out of memory)");
    else
        fprintf(stderr, "unet_drive: interrupted (%s) before the first epoch was saved. Start again with:\n  %s\n",
                strsignal(run_interrupted), cmd ? cmd : "(out of memory)");
    free(cmd);
}

/* Exit code of a run stopped by signal sig (as a shell reports it). */
static int interrupted_code(void) { return 128 + (int)run_interrupted; }

/* The effective configuration (preset, then flags) as a JSON object, for log.jsonl and the report. */
static void config_json(const config *c, char *buf, size_t size)
{
    snprintf(buf, size,
             "{\"preset\": \"%s\", \"base_c\": %d, \"crop\": %d, \"batch\": %d, \"epochs\": %d, \"lr\": %.17g, "
             "\"momentum\": %.17g, \"weight_decay\": %.17g, \"warmup_epochs\": %d, \"class_weight\": [%.17g, %.17g], "
             "\"seed\": %llu, \"eval_every\": %d, \"limit_train\": %lld, \"limit_test\": %lld, "
             "\"norm_mean\": [%.9g, %.9g, %.9g], \"norm_std\": [%.9g, %.9g, %.9g]}",
             c->preset ? c->preset : "none", c->base_c, c->crop, c->batch, c->epochs, c->lr, c->momentum,
             c->weight_decay, c->warmup_epochs, c->class_weight[0], c->class_weight[1], (unsigned long long)c->seed,
             c->eval_every, (long long)c->limit_train, (long long)c->limit_test, (double)c->mean[0],
             (double)c->mean[1], (double)c->mean[2], (double)c->std[0], (double)c->std[1],
             (double)c->std[2]);
}

typedef struct {
    char *dir, *log, *last, *best;
} head_paths;

static void head_paths_free(head_paths *p)
{
    free(p->dir), free(p->log), free(p->last), free(p->best);
    memset(p, 0, sizeof *p);
}

static tg_status head_paths_make(const config *c, int head, head_paths *p)
{
    p->dir = run_path("%s/%s", c->out, HEAD_NAME[head]);
    p->log = run_path("%s/log.jsonl", p->dir ? p->dir : "");
    p->last = run_path("%s/last.safetensors", p->dir ? p->dir : "");
    p->best = run_path("%s/best.safetensors", p->dir ? p->dir : "");
    if (!p->dir || !p->log || !p->last || !p->best) {
        head_paths_free(p);
        return tg_error(TG_ERR_NOMEM, "out of memory");
    }
    return TG_OK;
}

static int train_head(const config *c, int head, const drive_data *d)
{
    head_paths P;
    if (head_paths_make(c, head, &P) != TG_OK) return fail("cannot start");
    const char *log_path = P.log, *last_path = P.last, *best_path = P.best;
    int rc = 0;
    tg_unet *m = NULL;
    tg_optimizer *opt = NULL;
    tg_loader *loader = NULL;
    FILE *log = NULL;
    loss_buffers lb = {0};
    unet_run run = {0};
    if (!cli_make_dirs(P.dir)) {
        fprintf(stderr, "unet_drive: cannot create %s: %s\n", P.dir, strerror(errno));
        rc = 1;
        goto done;
    }
    static const char *const SAVED[] = {"last.safetensors", "best.safetensors"};
    if (tg_dist_is_main() && run_remove_stale_temps(P.dir, SAVED, 2) < 0) {
        fprintf(stderr, "unet_drive: cannot list %s: %s\n", P.dir, strerror(errno));
        rc = 1;
        goto done;
    }
    const bool have_last = file_exists(last_path);
    if (c->resume && !have_last) {
        unet_run old;
        bool logged = unet_run_load(log_path, &old) == TG_OK && old.n_epochs > 0;
        if (logged) unet_run_free(&old);
        if (logged || !c->resume_fresh_ok) {
            fprintf(stderr, "unet_drive: --resume: there is no %s to continue%s; start a new run without --resume "
                    "(it rewrites %s)\n", last_path, logged ? " (its log has epochs: the checkpoint was removed)" : "",
                    P.dir);
            rc = 1;
            goto done;
        }
        printf("%s head: not started before, starting it\n", HEAD_NAME[head]);
    }
    const int classes = head == HEAD_SIGMOID ? 1 : 2;
    tg_rng init_rng;
    tg_rng_seed(&init_rng, c->seed); /* same draws for every layer but out_conv in both heads */
    m = tg_unet_new(3, classes, c->base_c, &init_rng);
    if (!m) {
        rc = fail("cannot build the model");
        goto done;
    }
    opt = tg_sgd_new(m->params, (tg_sgd_opts){.lr = c->lr, .momentum = c->momentum, .weight_decay = c->weight_decay});
    tg_loader_options lo = tg_loader_defaults(c->batch, c->seed);
    lo.shuffle = true;
    lo.workers = c->workers;
    lo.shard_rank = tg_dist_rank(); /* data parallel: this rank's slice of every batch */
    lo.shard_count = tg_dist_world_size();
    tg_loader *probe = opt ? tg_loader_new(d->train, &lo) : NULL;
    if (!probe) {
        rc = fail("cannot set up training");
        goto done;
    }
    const int64_t steps_per_epoch = tg_loader_batches_per_epoch(probe);
    tg_loader_free(probe);
    /* Warmup needs at least one epoch after it (the reference's poly term divides by the rest). */
    const int warmup = c->warmup_epochs < c->epochs ? c->warmup_epochs : c->epochs - 1;
    if (warmup != c->warmup_epochs)
        printf("%s head: warmup shortened to %d epoch%s (--epochs %d leaves no epoch after it)\n", HEAD_NAME[head],
               warmup, warmup == 1 ? "" : "s", c->epochs);
    tg_lr_sched sched;
    if (tg_lr_sched_init_warmup_poly(&sched, opt, warmup * steps_per_epoch, c->epochs * steps_per_epoch, 1e-3, 0.9) !=
        TG_OK) {
        rc = fail("cannot set up the learning-rate schedule");
        goto done;
    }

    run = (unet_run){.num_classes = classes, .params = tg_param_list_numel(m->params, TG_KIND_PARAM),
                     .base_c = c->base_c, .crop = c->crop, .batch = c->batch, .epochs_planned = c->epochs};
    snprintf(run.head, sizeof run.head, "%s", HEAD_NAME[head]);
    unet_norm_format(c->mean, run.norm_mean, sizeof run.norm_mean);
    unet_norm_format(c->std, run.norm_std, sizeof run.norm_std);
    config_json(c, run.config, sizeof run.config);
    int start_epoch = 0;
    double best_dice = -1;
    if (c->resume && have_last) {
        tg_meta meta = {0};
        tg_ckpt_opts ro = {.optim = opt, .sched = &sched, .meta = &meta};
        long long e = 0;
        if (tg_checkpoint_load(last_path, m->params, &ro, NULL) != TG_OK) {
            tg_meta_clear(&meta);
            rc = fail("cannot resume");
            goto done;
        }
        if (!meta_get_int(&meta, "epoch", 0, 100000, &e)) {
            tg_meta_clear(&meta);
            fprintf(stderr, "unet_drive: %s has no \"epoch\" in its metadata: not a unet_drive checkpoint\n", last_path);
            rc = 1;
            goto done;
        }
        char *diff = config_differences(&meta, c, head);
        best_dice = saved_best_dice(&meta);
        tg_meta_clear(&meta);
        if (diff && (!c->allow_config_change || strstr(diff, "  base_c:") || strstr(diff, "  num_classes:"))) {
            fprintf(stderr, "unet_drive: %s was written with other settings:\n%sresume with the checkpoint's settings, "
                    "pass --allow-config-change if the change is intended%s, or start afresh without --resume\n",
                    last_path, diff, strstr(diff, "  base_c:") ? " (base_c cannot change)" : "");
            free(diff);
            rc = 2;
            goto done;
        }
        if (diff) printf("%s head: resuming with changed settings (--allow-config-change):\n%s", HEAD_NAME[head], diff);
        free(diff);
        if (first_non_finite(m->params)) {
            fprintf(stderr, "unet_drive: %s holds NaN or infinite weights: nothing valid to resume\n", last_path);
            rc = 1;
            goto done;
        }
        start_epoch = (int)e;
        /* The log must hold epochs 1..start_epoch: a corrupt or shortened log would lose the
         * history and the best Dice, and a worse model could then replace best.safetensors. */
        if (unet_run_load(log_path, &run) != TG_OK || run_log_check(&run, log_path, HEAD_NAME[head], start_epoch) != TG_OK) {
            unet_run_free(&run);
            fprintf(stderr, "unet_drive: cannot resume: %s\n(fix or remove that line, or start afresh without --resume; "
                    "%s and %s are untouched)\n", tg_last_error(), last_path, best_path);
            rc = 1;
            goto done;
        }
        run.num_classes = classes;
        run.params = tg_param_list_numel(m->params, TG_KIND_PARAM);
        run.base_c = c->base_c, run.crop = c->crop, run.batch = c->batch, run.epochs_planned = c->epochs;
        snprintf(run.head, sizeof run.head, "%s", HEAD_NAME[head]);
        config_json(c, run.config, sizeof run.config);
        log = fopen(tg_dist_is_main() ? log_path : "/dev/null", "w");
        for (int i = 0; log && i < run.n_epochs; i++)
            if (epoch_line(&run, &run.epochs[i], log, log_path) != TG_OK) {
                rc = fail("cannot resume");
                goto done;
            }
        printf("%s head: resuming after epoch %d of %d from %s\n", HEAD_NAME[head], start_epoch, c->epochs, last_path);
    } else {
        log = fopen(tg_dist_is_main() ? log_path : "/dev/null", "w");
    }
    if (!log) {
        fprintf(stderr, "unet_drive: cannot write %s: %s\n", log_path, strerror(errno));
        rc = 1;
        goto done;
    }
    /* best.safetensors is replaced only by a better model than every one saved before */
    const unet_epoch *prev_best = unet_run_best(&run);
    if (prev_best && prev_best->dice > best_dice) best_dice = prev_best->dice;
    if (file_exists(best_path)) {
        const double b = best_dice_of(best_path);
        if (b > best_dice) best_dice = b;
    }
    lo.start_epoch = start_epoch;
    loader = tg_loader_new(d->train, &lo);
    if (loader && (tg_dist_broadcast_state(m->params) != TG_OK || tg_dist_sync_batchnorm(m->params, c->sync_bn) != TG_OK)) {
        tg_loader_free(loader);
        loader = NULL;
    }
    if (!loader) {
        rc = fail("cannot start the data loader");
        goto done;
    }
    printf("%s head (%d output channel%s): %lld parameters, %lld training images, %lld test images, %lld steps per "
           "epoch\n",
           HEAD_NAME[head], classes, classes == 1 ? "" : "s", (long long)run.params, (long long)d->train->length,
           (long long)d->test->length, (long long)steps_per_epoch);

    int saved_epoch = start_epoch;
    tg_param_list_train(m->params, true);
    const int last_epoch = c->stop_after && c->stop_after < c->epochs ? c->stop_after : c->epochs;
    for (int epoch = start_epoch + 1; epoch <= last_epoch && rc == 0 && !run_interrupted; epoch++) {
        char label[48], status[96] = "";
        snprintf(label, sizeof label, "%s %d/%d", HEAD_NAME[head], epoch, c->epochs);
        tg_progress bar;
        tg_progress_begin(&bar, tg_dist_progress_stream(), label, steps_per_epoch, c->batch, "img");
        const double wait0 = tg_loader_get_stats(loader).wait_seconds;
        double loss_sum = 0;
        int64_t steps = 0, images = 0;
        tg_batch b;
        tg_status st;
        while (!run_interrupted && (st = tg_loader_next(loader, &b)) == TG_OK && b.x) {
            tg_tensor *loss = whole_batch_mean(head_loss(head, tg_unet_forward(m, b.x), b.y, c->class_weight, &lb), b.y,
                                               c->class_weight);
            if (!loss || tg_backward(loss) != TG_OK ||
                tg_dist_allreduce_grads(m->params, b.x->shape[0], b.global_size) != TG_OK || tg_optimizer_step(opt) != TG_OK) {
                st = tg_last_status();
                tg_batch_free(&b);
                break;
            }
            tg_lr_sched_step(&sched);
            const char *bad = isfinite(loss->data[0]) ? first_non_finite(m->params) : "the loss";
            if (bad) {
                st = isfinite(loss->data[0])
                         ? tg_error(TG_ERR_STATE, "the weights diverged at epoch %d step %lld (%s holds NaN or infinite "
                                    "values; loss %g): try a lower --lr", epoch, (long long)steps + 1, bad,
                                    (double)loss->data[0])
                         : tg_error(TG_ERR_STATE, "the training loss became %g at epoch %d step %lld (try a lower --lr)",
                                    (double)loss->data[0], epoch, (long long)steps + 1);
                tg_batch_free(&b);
                break;
            }
            loss_sum += loss->data[0];
            images += b.global_size;
            steps++;
            tg_optimizer_zero_grad(opt);
            tg_tape_clear();
            tg_batch_free(&b);
            snprintf(status, sizeof status, "loss %.4f lr %.2e", loss_sum / (double)steps, opt->groups[0].lr);
            tg_progress_update(&bar, steps, status);
        }
        tg_tape_clear();
        if (run_interrupted) { /* the epoch's steps are abandoned: resuming redoes the epoch from its start */
            fprintf(stderr, "\n");
            break;
        }
        if (st != TG_OK) {
            fprintf(stderr, "\n");
            rc = fail("training failed");
            fprintf(stderr, "unet_drive: nothing of epoch %d was saved; %s %s\n", epoch, saved_epoch ? last_path : "no checkpoint",
                    saved_epoch ? "keeps the last finite model" : "was written");
            break;
        }
        tg_dist_allreduce_sum(&loss_sum, 1); /* the ranks' mean losses, averaged */
        unet_epoch e = {.epoch = epoch, .lr = opt->groups[0].lr, .train_loss = loss_sum / (double)steps / tg_dist_world_size()};
        e.train_seconds = tg_progress_end(&bar, status);
        e.images_per_second = (double)images / e.train_seconds;
        e.wait_share = (tg_loader_get_stats(loader).wait_seconds - wait0) / e.train_seconds;
        if ((epoch % c->eval_every == 0 || epoch == c->epochs) && tg_dist_is_main()) {
            if (evaluate(m, head, c, d->test, &e) != TG_OK) {
                rc = fail("evaluation failed");
                break;
            }
            printf("%s epoch %d/%d: train loss %.4f, test loss %.4f, Dice %.4f, mIoU %.4f, acc %.4f, %.1f s "
                   "(%.2f img/s, data wait %.1f%%), eval %.1f s\n",
                   HEAD_NAME[head], epoch, c->epochs, e.train_loss, e.test_loss, e.dice, e.miou, e.global_acc,
                   e.train_seconds, e.images_per_second, 100 * e.wait_share, e.eval_seconds);
        } else {
            printf("%s epoch %d/%d: train loss %.4f, %.1f s (%.2f img/s, data wait %.1f%%)\n", HEAD_NAME[head], epoch,
                   c->epochs, e.train_loss, e.train_seconds, e.images_per_second, 100 * e.wait_share);
        }
        run.peak_rss_mb = cli_peak_rss_mb();
        if (!unet_run_push(&run, &e)) {
            rc = fail("out of memory");
            break;
        }
        if (epoch_line(&run, &e, log, log_path) != TG_OK) {
            rc = fail("cannot log the epoch");
            break;
        }
        tg_meta meta = {0};
        fill_meta(&meta, c, head, epoch, unet_run_best(&run));
        tg_ckpt_opts so = {.optim = opt, .sched = &sched, .meta = &meta};
        if (tg_dist_is_main() && tg_checkpoint_save(last_path, m->params, &so) != TG_OK)
            rc = fail("cannot save the checkpoint");
        else saved_epoch = epoch;
        if (rc == 0 && e.evaluated && e.dice > best_dice) { /* rank 0 only evaluates */
            best_dice = e.dice;
            tg_ckpt_opts bo = {.meta = &meta};
            if (tg_checkpoint_save(best_path, m->params, &bo) != TG_OK) rc = fail("cannot save the best checkpoint");
        }
        tg_meta_clear(&meta);
    }
    if (rc == 0 && run_interrupted) {
        print_resume_hint(c, last_path, saved_epoch);
        rc = interrupted_code();
    }
    if (rc == 0)
        printf("%s head done: log %s, checkpoints %s and %s, peak memory %.0f MB\n", HEAD_NAME[head], log_path,
               last_path, best_path, cli_peak_rss_mb());
done:
    if (log && fclose(log) != 0 && rc == 0) {
        fprintf(stderr, "unet_drive: cannot write %s: %s\n", log_path, strerror(errno));
        rc = 1;
    }
    loss_buffers_free(&lb);
    tg_loader_free(loader);
    tg_optimizer_free(opt);
    tg_unet_free(m);
    unet_run_free(&run);
    head_paths_free(&P);
    return rc;
}

/* ---- report ---------------------------------------------------------------------------------- */

/* Overlays of the first K test images with each head's best checkpoint in models_dir, into c->out. */
static tg_status write_overlays(const config *c, const char *models_dir, const drive_data *d, int k_images)
{
    tg_unet *models[2] = {NULL, NULL};
    float mean[2][3], std[2][3];
    int heads[2], n = 0;
    for (int h = 0; h < 2; h++) {
        char *path = run_path("%s/%s/best.safetensors", models_dir, HEAD_NAME[h]);
        if (!path || !file_exists(path)) {
            free(path);
            continue;
        }
        models[n] = load_model(path, &heads[n], mean[n], std[n]);
        free(path);
        if (!models[n]) {
            for (int i = 0; i < n; i++) tg_unet_free(models[i]);
            return tg_last_status();
        }
        n++;
    }
    if (!n) return TG_OK;
    tg_status st = TG_OK;
    const int64_t count = k_images < d->test->length ? k_images : d->test->length;
    bool prev_grad = tg_set_grad_enabled(false);
    for (int64_t i = 0; i < count && st == TG_OK; i++) {
        tg_image *img = NULL, *tgt = NULL;
        if ((st = tg_seg_dataset_get(d->test_seg, i, &img, &tgt)) != TG_OK) break;
        const int64_t P = (int64_t)img->width * img->height;
        tg_tensor *x = tg_tensor_zeros(TG_SHAPE(1, 3, img->height, img->width));
        uint8_t *preds[2] = {malloc((size_t)P), malloc((size_t)P)};
        if (!x || !preds[0] || !preds[1]) st = tg_error(TG_ERR_NOMEM, "out of memory");
        for (int k = 0; k < n && st == TG_OK; k++) {
            if ((st = tg_seg_to_tensor(img, NULL, mean[k], std[k], x->data, NULL)) != TG_OK) break;
            tg_param_list_train(models[k]->params, false);
            tg_tensor *logits = tg_unet_forward(models[k], x);
            if (!logits) st = tg_last_status();
            else tg_seg_predict(logits->data, logits->shape[1], P, preds[k]);
            tg_tape_clear();
        }
        char *path = st == TG_OK ? run_path("%s/overlay_%02lld.png", c->out, (long long)i + 1) : NULL;
        if (st == TG_OK && !path) st = tg_last_status();
        if (st == TG_OK) {
            st = unet_overlay_save(path, img, tgt->data, (const uint8_t *const *)preds, n);
            if (st == TG_OK) {
                printf("overlay %s: test image %lld; panels: image", path, (long long)i + 1);
                for (int k = 0; k < n; k++) printf(", %s", HEAD_NAME[heads[k]]);
                printf("\n");
            }
        }
        free(path);
        free(preds[0]);
        free(preds[1]);
        tg_tensor_free(x);
        tg_image_free(img);
        tg_image_free(tgt);
    }
    tg_set_grad_enabled(prev_grad);
    for (int k = 0; k < n; k++) tg_unet_free(models[k]);
    return st;
}

static int report(const config *c, const drive_data *d)
{
    unet_run runs[2];
    int n = 0;
    for (int h = 0; h < 2; h++) {
        char *path = run_path("%s/%s/log.jsonl", c->out, HEAD_NAME[h]);
        if (!path) return fail("cannot read the logs");
        struct stat st;
        if (stat(path, &st) != 0 && errno == ENOENT) {
            free(path);
            continue;
        }
        tg_status ls = unet_run_load(path, &runs[n]);
        free(path);
        if (ls != TG_OK) {
            for (int i = 0; i < n; i++) unet_run_free(&runs[i]);
            return fail("cannot read the logs");
        }
        n++;
    }
    if (!n) {
        fprintf(stderr, "unet_drive: no logs in %s/sigmoid or %s/softmax: train first (or pass --out DIR)\n", c->out,
                c->out);
        return 1;
    }
    int rc = 0;
    printf("\n");
    if (unet_report_write(c->out, runs, n) != TG_OK) rc = fail("cannot write the report");
    char *path = run_path("%s/curves.png", c->out);
    if (rc == 0 && !path) rc = fail("cannot draw the curves");
    if (rc == 0) {
        tg_status ps = unet_plot_curves(path, runs, n);
        if (ps == TG_OK) printf("\ncurves: %s\n", path);
        else if (ps == TG_ERR_IO) rc = fail("cannot draw the curves"); /* a failed write, not a missing PLplot */
        else fprintf(stderr, "unet_drive: no curves.png: %s\n", tg_last_error());
    }
    free(path);
    if (rc == 0 && d && c->overlays && write_overlays(c, c->out, d, c->overlays) != TG_OK)
        rc = fail("cannot draw the overlays");
    if (rc == 0) printf("report: %s/report.md\n", c->out);
    for (int i = 0; i < n; i++) unet_run_free(&runs[i]);
    return rc;
}

/* --seeds: OUT/report.md over the seeds (seeds.c), curves with bands, overlays of the first seed's models. */
static int report_seeds(const config *c, const drive_data *d)
{
    long long found[UNET_MAX_SEEDS];
    int n = c->n_seeds;
    const long long *seeds = c->seeds;
    if (!n) {
        if (unet_seeds_find(c->out, found, &n) != TG_OK) return fail("cannot list the seeds");
        seeds = found;
    }
    printf("\n");
    if (unet_seeds_report(c->out, seeds, n) != TG_OK) return fail("cannot write the report");
    int rc = 0;
    char *dir = run_path("%s/seed_%lld", c->out, seeds[0]);
    if (!dir) return fail("cannot draw the overlays");
    if (d && c->overlays && write_overlays(c, dir, d, c->overlays) != TG_OK) rc = fail("cannot draw the overlays");
    free(dir);
    if (rc == 0) printf("report: %s/report.md\n", c->out);
    return rc;
}

static tg_status need_regular_file(const char *what, const char *path);

static int run_eval(config *c)
{
    int head;
    float mean[3], std[3];
    tg_unet *m = load_model(c->eval_ckpt, &head, mean, std);
    if (!m) return fail("cannot load the checkpoint");
    drive_data d;
    if (drive_data_open(c, false, c->mean_given ? NULL : mean, c->mean_given ? NULL : std, false, &d) != TG_OK) {
        tg_unet_free(m);
        drive_data_free(&d);
        return fail("cannot open the dataset");
    }
    unet_epoch e = {0};
    int rc = 0;
    if (evaluate(m, head, c, d.test, &e) != TG_OK) rc = fail("evaluation failed");
    else
        printf("%s (%s head): Dice %.4f, mIoU %.4f, global accuracy %.4f, vessel accuracy %.4f, vessel IoU %.4f, "
               "test loss %.4f on %lld test images (%.0f ms per image)\n",
               c->eval_ckpt, HEAD_NAME[head], e.dice, e.miou, e.global_acc, e.acc[1], e.iou[1], e.test_loss,
               (long long)d.test->length, e.infer_ms);
    drive_data_free(&d);
    tg_unet_free(m);
    return rc;
}

/* path names a regular file (a FIFO or a device would block or never end); else an error naming it. */
static tg_status need_regular_file(const char *what, const char *path)
{
    (void)what; /* the core helper's message names the path and what it is (FIFO, directory, ...) */
    FILE *f = tg_fopen_regular(path, NULL);
    if (!f) return tg_last_status();
    fclose(f);
    return TG_OK;
}

/* --predict: one image through a checkpoint's model, written as a 0/255 vessel mask (and the
 * vessel probability as 8-bit grey); pixels outside --mask are 0 in both. */
static int run_predict(const config *c)
{
    if (need_regular_file("checkpoint", c->predict_ckpt) != TG_OK || need_regular_file("image", c->image) != TG_OK ||
        (c->mask && need_regular_file("mask", c->mask) != TG_OK))
        return fail("cannot predict");
    int head;
    float mean[3], std[3];
    tg_unet *m = load_model(c->predict_ckpt, &head, mean, std);
    if (!m) return fail("cannot load the checkpoint");
    int rc = 0;
    tg_image *loaded = tg_image_load(c->image), *img = NULL, *mask_loaded = NULL, *mask = NULL, *pred = NULL,
             *prob = NULL;
    tg_tensor *x = NULL;
    uint8_t *labels = NULL;
    if (!loaded || !(img = loaded->channels == 3 ? loaded : tg_image_to_rgb(loaded))) {
        rc = fail("cannot read the image");
        goto done;
    }
    if (c->mask) {
        if (!(mask_loaded = tg_image_load(c->mask)) ||
            !(mask = mask_loaded->channels == 1 ? mask_loaded : tg_image_to_gray(mask_loaded))) {
            rc = fail("cannot read the mask");
            goto done;
        }
        if (mask->width != img->width || mask->height != img->height) {
            fprintf(stderr, "unet_drive: the mask %s is %dx%d, the image %s %dx%d: they must be the same size\n", c->mask,
                    mask->width, mask->height, c->image, img->width, img->height);
            rc = 1;
            goto done;
        }
    }
    const int W = img->width, H = img->height;
    const int64_t P = (int64_t)W * H;
    x = tg_tensor_zeros(TG_SHAPE(1, 3, H, W));
    labels = malloc((size_t)P);
    pred = tg_image_new(W, H, 1);
    prob = c->prob ? tg_image_new(W, H, 1) : NULL;
    if (!x || !labels || !pred || (c->prob && !prob)) {
        rc = fail("out of memory");
        goto done;
    }
    if (tg_seg_to_tensor(img, NULL, mean, std, x->data, NULL) != TG_OK) {
        rc = fail("cannot prepare the image");
        goto done;
    }
    bool prev_grad = tg_set_grad_enabled(false);
    tg_param_list_train(m->params, false);
    const double t0 = tg_now();
    tg_tensor *logits = tg_unet_forward(m, x);
    const double ms = 1e3 * (tg_now() - t0);
    tg_set_grad_enabled(prev_grad);
    if (!logits) {
        tg_tape_clear();
        rc = fail("the forward pass failed");
        goto done;
    }
    const int64_t K = logits->shape[1];
    tg_seg_predict(logits->data, K, P, labels);
    int64_t vessel = 0, inside = 0;
    for (int64_t i = 0; i < P; i++) {
        const bool in = !mask || mask->data[i] != 0;
        const bool v = in && labels[i] == 1;
        pred->data[i] = v ? 255 : 0;
        vessel += v;
        inside += in;
        if (prob) {
            /* vessel probability: sigmoid(z) for one channel, softmax's p1 = sigmoid(z1 - z0) for two */
            const double z = K == 1 ? logits->data[i] : (double)logits->data[P + i] - logits->data[i];
            const double p = 1.0 / (1.0 + exp(-z));
            prob->data[i] = in ? (uint8_t)lround(255.0 * p) : 0;
        }
    }
    tg_tape_clear();
    if (tg_image_save_png(pred, c->out) != TG_OK) {
        rc = fail("cannot write the prediction");
        goto done;
    }
    if (prob && tg_image_save_png(prob, c->prob) != TG_OK) {
        rc = fail("cannot write the probability image");
        goto done;
    }
    printf("%s: %s head, base width %lld; %s (%dx%d): %lld vessel pixels of %lld inside the mask (%.1f%%), %.0f ms\n",
           c->predict_ckpt, HEAD_NAME[head], (long long)m->base_c, c->image, W, H, (long long)vessel, (long long)inside,
           inside ? 100.0 * (double)vessel / (double)inside : 0.0, ms);
    printf("prediction (0/255): %s%s%s\n", c->out, prob ? "; probability (8-bit grey): " : "", prob ? c->prob : "");
done:
    tg_tensor_free(x);
    free(labels);
    tg_image_free(pred);
    tg_image_free(prob);
    if (mask != mask_loaded) tg_image_free(mask);
    tg_image_free(mask_loaded);
    if (img != loaded) tg_image_free(img);
    tg_image_free(loaded);
    tg_unet_free(m);
    return rc;
}

/* Refuses a configuration whose training step would need more memory than there is (the
 * kernel's OOM killer would end it with no message), warns when it is close. */
static int check_memory(const config *c, const drive_data *d)
{
    const int64_t n_train = d->train ? d->train->length : 0;
    const int batch = n_train && n_train < c->batch ? (int)n_train : c->batch;
    const double need = run_memory_estimate_mb(c->base_c, c->crop, batch, 565, 584);
    const double avail = run_memory_available_mb();
    if (need > avail) {
        fprintf(stderr, "unet_drive: base width %d, crop %d, batch %d needs about %.1f GB (estimate), more than the "
                "%.1f GB available: use a smaller --crop, --batch-size or --base-c\n", c->base_c, c->crop, batch,
                need / 1024.0, avail / 1024.0);
        return 1;
    }
    if (need > 0.8 * avail)
        printf("unet_drive: warning: this configuration needs about %.1f GB (estimate) of the %.1f GB available\n",
               need / 1024.0, avail / 1024.0);
    return 0;
}

int main(int argc, char **argv)
{
    cli_ignore_file_size_signal(); /* past ulimit -f: EFBIG and a message, not a silent kill */
    tg_blas_select_kernel(argc, argv);
    if (tg_dist_init(&argc, &argv) != TG_OK) return fail("cannot join the MPI job");
    tg_dist_quiet_others(); /* only rank 0 prints */
    setvbuf(stdout, NULL, _IOLBF, 0); /* epoch lines appear at once in a log file too */
    if (argc > 1 && (!strcmp(argv[1], "step-dump") || !strcmp(argv[1], "init")))
        return unet_stepdump_main(argc - 1, argv + 1);
    config c;
    int rc = parse_args(argc, argv, &c);
    if (rc) return rc;
    tg_set_num_threads(c.threads);
    if (c.eval_ckpt) return run_eval(&c);
    if (c.predict_ckpt) return run_predict(&c);
    drive_data d;
    if (drive_data_open(&c, !c.report_only, NULL, NULL, !c.report_only, &d) != TG_OK) {
        drive_data_free(&d);
        return fail("cannot open the dataset");
    }
    if (!c.report_only) {
        if (check_memory(&c, &d) != 0) {
            drive_data_free(&d);
            return 1;
        }
        if (!cli_make_dirs(c.out)) {
            fprintf(stderr, "unet_drive: cannot create the output directory %s: %s\n", c.out, strerror(errno));
            drive_data_free(&d);
            return 1;
        }
        if (tg_dist_is_main() && run_lock_dir(c.out) != TG_OK) { /* data-parallel ranks: rank 0 writes */
            drive_data_free(&d);
            return fail("cannot start");
        }
        if (c.resume) { /* (--seeds: the first seed's directory) */
            int have = 0, selected_have = 0;
            char first_seed[32] = "";
            if (c.n_seeds) snprintf(first_seed, sizeof first_seed, "/seed_%lld", c.seeds[0]);
            for (int h = 0; h < 2; h++) {
                char *p = run_path("%s%s/%s/last.safetensors", c.out, first_seed, HEAD_NAME[h]);
                const bool e = p && file_exists(p);
                have += e;
                selected_have += e && c.head[h];
                free(p);
            }
            c.resume_fresh_ok = have > 0 && selected_have > 0;
            if (!have) {
                fprintf(stderr, "unet_drive: --resume: nothing to resume in %s (no sigmoid/ or softmax/ "
                        "last.safetensors); start a new run without --resume\n", c.out);
                drive_data_free(&d);
                return 1;
            }
        }
        run_catch_interrupts();
        const int threads = tg_get_num_threads();
        char seeds[UNET_MAX_SEEDS * 21 + 8];
        unet_seeds_format(c.n_seeds ? c.seeds : (const long long[]){(long long)c.seed}, c.n_seeds ? c.n_seeds : 1,
                          seeds, sizeof seeds);
        printf("unet_drive: data at %s, output in %s; %s%s%sbase width %d, crop %d, batch %d, %d epoch%s, lr %g, seed%s %s, "
               "%d thread%s\n",
               c.data ? c.data : tg_drive_default_root(), c.out, c.preset ? "preset " : "", c.preset ? c.preset : "",
               c.preset ? " (with the flags given): " : "", c.base_c, c.crop, c.batch, c.epochs,
               c.epochs == 1 ? "" : "s", c.lr, c.n_seeds > 1 ? "s" : "", seeds, threads, threads == 1 ? "" : "s");
        printf("flush-to-zero: %s (denormal floats become 0, as torch.set_flush_denormal(True)); OpenBLAS kernels: "
               "%s\n",
               tg_set_flush_denormal(true) ? "on" : "unavailable on this CPU", tg_blas_core());
        for (int i = 0; i < (c.n_seeds ? c.n_seeds : 1) && rc == 0; i++) {
            config cs = c; /* --seeds: each seed into OUT/seed_S */
            char *out = NULL;
            if (c.n_seeds) {
                if (!(out = run_path("%s/seed_%lld", c.out, c.seeds[i]))) {
                    rc = fail("cannot start");
                    break;
                }
                cs.out = out;
                cs.resume_fresh_ok = c.resume_fresh_ok || i > 0; /* a later seed may not have started */
                cs.seed = (uint64_t)c.seeds[i];
                printf("seed %lld (%d of %d): %s\n", c.seeds[i], i + 1, c.n_seeds, out);
            }
            for (int h = 0; h < 2 && rc == 0; h++)
                if (c.head[h]) rc = train_head(&cs, h, &d);
            free(out);
        }
    }
    if (rc == 0 && tg_dist_is_main()) rc = c.n_seeds || (c.report_only && unet_seeds_present(c.out)) ? report_seeds(&c, &d) : report(&c, &d);
    drive_data_free(&d);
    return tg_dist_finish(rc);
}
