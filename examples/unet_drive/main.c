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
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dataset.h"
#include "dist/dist.h"
#include "report.h"
#include "seeds.h"

enum { HEAD_SIGMOID = 0, HEAD_SOFTMAX = 1 };
static const char *const HEAD_NAME[2] = {"sigmoid", "softmax"};

typedef struct {
    const char *data, *out, *eval_ckpt;
    bool head[2];
    int epochs, batch, crop, base_c, warmup_epochs, threads, workers, eval_every, overlays, stop_after;
    double lr, momentum, weight_decay, class_weight[2];
    uint64_t seed;
    int64_t limit_train, limit_test;
    bool resume, report_only, sync_bn;
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
    "options (defaults in brackets):\n"
    "  --head both|sigmoid|softmax  which heads to train [both: sigmoid, then softmax]\n"
    "  --epochs N          epochs per head [40]\n"
    "  --batch-size N      [4]      --crop N   random crop side [480 for DRIVE; else from the image size]\n"
    "  --base-size N       random resize base (shorter side drawn in [0.5N, 1.2N]) [the smallest image side: 565 for DRIVE]\n"
    "  --base-c N          UNet base width [16] (the reference uses 64 and 200 epochs on a GPU)\n"
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
    "  --resume            continue OUT/<head>/last.safetensors (model, optimizer, schedule, epoch)\n"
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
                  .momentum = 0.9, .weight_decay = 1e-4, .class_weight = {1.0, 2.0}};
    bool seed_given = false;
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
        if (strncmp(a, "--", 2)) return usage_error("unexpected argument '%s'", a);
        static const char *const WITH_VALUE[] = {
            "--head", "--epochs", "--batch-size", "--crop", "--base-c", "--warmup-epochs", "--threads", "--workers",
            "--eval-every", "--overlays", "--lr", "--momentum", "--weight-decay", "--class-weight", "--seed",
            "--limit-train", "--limit-test", "--data", "--out", "--eval", "--stop-after", "--seeds", "--mean", "--std",
            "--base-size"};
        bool known = false;
        for (size_t k = 0; k < sizeof WITH_VALUE / sizeof *WITH_VALUE; k++) known |= !strcmp(a, WITH_VALUE[k]);
        if (!known) return usage_error("unknown option '%s'", a);
        if (i + 1 >= argc) return usage_error("option %s needs a value", a);
        const char *v = argv[++i];
        long long n;
#define INT_OPT(name, field, lo, hi)                                                                                  \
    else if (!strcmp(a, name)) {                                                                                       \
        if (!tg_cli_parse_long(v, lo, hi, &n)) return usage_error(name " takes a whole number " #lo ".." #hi ", not '%s'", v); \
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
            if (!tg_cli_parse_double(v, &c->lr) || c->lr <= 0) return usage_error("--lr takes a positive number, not '%s'", v);
        } else if (!strcmp(a, "--momentum")) {
            if (!tg_cli_parse_double(v, &c->momentum) || c->momentum < 0 || c->momentum >= 1)
                return usage_error("--momentum takes a number in [0, 1), not '%s'", v);
        } else if (!strcmp(a, "--weight-decay")) {
            if (!tg_cli_parse_double(v, &c->weight_decay) || c->weight_decay < 0)
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
            if (!tg_cli_parse_long(v, 0, INT64_MAX, &n)) return usage_error("--seed takes a whole number >= 0, not '%s'", v);
            c->seed = (uint64_t)n;
            seed_given = true;
        } else if (!strcmp(a, "--limit-train")) {
            if (!tg_cli_parse_long(v, 1, INT64_MAX, &n)) return usage_error("--limit-train takes a whole number >= 1, not '%s'", v);
            c->limit_train = n;
        } else if (!strcmp(a, "--limit-test")) {
            if (!tg_cli_parse_long(v, 1, INT64_MAX, &n)) return usage_error("--limit-test takes a whole number >= 1, not '%s'", v);
            c->limit_test = n;
        } else if (!strcmp(a, "--data")) c->data = v;
        else if (!strcmp(a, "--out")) c->out = v;
        else if (!strcmp(a, "--eval")) c->eval_ckpt = v;
        else return usage_error("unknown option '%s'", a);
#undef INT_OPT
    }
    if (c->eval_ckpt && c->report_only) return usage_error("%s", "--eval and --report-only are separate commands");
    if (seed_given && c->n_seeds) return usage_error("%s", "give --seed S or --seeds S1,S2,..., not both");
    if (c->mean_given != c->std_given) return usage_error("%s", "--mean and --std go together (give both)");
    return 0;
}

static int fail(const char *what)
{
    fprintf(stderr, "unet_drive: %s: %s\n", what, tg_last_error());
    return 1;
}

/* ---- the two heads' losses ------------------------------------------------------------------ */

/* Per-batch target tensors, remade only when the batch shape changes (the last batch). */
typedef struct {
    tg_tensor *class_weight;  /* (2) for cross-entropy */
    tg_tensor *t, *w;         /* sigmoid head: (N,1,H,W) float target and per-pixel weight */
} loss_buffers;

static void loss_buffers_free(loss_buffers *b)
{
    tg_tensor_free(b->class_weight);
    tg_tensor_free(b->t);
    tg_tensor_free(b->w);
    memset(b, 0, sizeof *b);
}

/* The same loss for both heads, as a function of z = z1 - z0 (sigmoid head: z is its logit):
 *   sum over counted pixels of w_y * BCE(sigmoid(z), y) / sum of w_y,
 * which is exactly PyTorch's weighted cross-entropy with ignore_index 255 (reduction 'mean'). */
static tg_tensor *head_loss(int head, tg_tensor *logits, const tg_tensor *y, const double cw[2], loss_buffers *b)
{
    if (!b->class_weight) {
        b->class_weight = tg_tensor_from_data(TG_SHAPE(2), (const float[]){(float)cw[0], (float)cw[1]});
        if (!b->class_weight) return NULL;
    }
    if (head == HEAD_SOFTMAX)
        return tg_cross_entropy(logits, (tg_tensor *)y,
                                (tg_ce_opts){.weight = b->class_weight, .ignore_index = 255, .has_ignore_index = true});
    const int64_t N = y->shape[0], H = y->shape[1], W = y->shape[2];
    if (!b->t || b->t->shape[0] != N || b->t->shape[2] != H || b->t->shape[3] != W) {
        tg_tensor_free(b->t);
        tg_tensor_free(b->w);
        b->t = tg_tensor_zeros(TG_SHAPE(N, 1, H, W));
        b->w = tg_tensor_zeros(TG_SHAPE(N, 1, H, W));
        if (!b->t || !b->w) return NULL;
    }
    double wsum = 0.0;
    for (int64_t i = 0; i < y->numel; i++) {
        const int64_t v = y->idata[i];
        const bool counted = v == 0 || v == 1;
        b->t->data[i] = v == 1 ? 1.0f : 0.0f;
        b->w->data[i] = counted ? (float)cw[v] : 0.0f;
        wsum += counted ? cw[v] : 0.0;
    }
    tg_tensor *sum = tg_binary_cross_entropy_with_logits(logits, b->t,
                                                         (tg_bce_opts){.weight = b->w, .reduction = TG_REDUCTION_SUM});
    return tg_mul_scalar(sum, (float)(1.0 / wsum)); /* no counted pixel: NaN, as cross-entropy */
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
    meta_int(meta, "num_classes", head == HEAD_SIGMOID ? 1 : 2);
    meta_int(meta, "in_channels", 3);
    meta_int(meta, "base_c", c->base_c);
    meta_int(meta, "epoch", epoch);
    meta_int(meta, "epochs", c->epochs);
    meta_int(meta, "crop", c->crop);
    meta_int(meta, "batch", c->batch);
    meta_int(meta, "seed", (long long)c->seed);
    meta_double(meta, "lr", c->lr);
    meta_double(meta, "weight_decay", c->weight_decay);
    meta_double(meta, "class_weight_0", c->class_weight[0]);
    meta_double(meta, "class_weight_1", c->class_weight[1]);
    char norm[64];
    unet_norm_format(c->mean, norm, sizeof norm); /* the input normalisation, for --eval and --predict */
    tg_meta_set(meta, "norm_mean", norm);
    unet_norm_format(c->std, norm, sizeof norm);
    tg_meta_set(meta, "norm_std", norm);
    if (best) {
        meta_double(meta, "best_dice", best->dice);
        meta_int(meta, "best_epoch", best->epoch);
    }
}

static bool meta_get_int(const tg_meta *m, const char *key, long long lo, long long hi, long long *out)
{
    const char *v = tg_meta_get(m, key);
    return v && tg_cli_parse_long(v, lo, hi, out);
}

/* A model for the checkpoint's metadata (head, base_c), with its weights; its normalisation
 * ("norm_mean"/"norm_std"; checkpoints without them were trained on DRIVE with DRIVE's values). */
static tg_unet *load_model(const char *path, int *head, float mean[3], float std[3])
{
    tg_meta meta = {0};
    tg_param_list *probe = tg_param_list_new();
    tg_ckpt_opts opts = {.meta = &meta};
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
    tg_ckpt_opts strict = {.strict = true};
    if (tg_checkpoint_load(path, m->params, &strict, NULL) != TG_OK) {
        tg_unet_free(m);
        return NULL;
    }
    return m;
}

/* ---- training one head ---------------------------------------------------------------------- */

static void epoch_line(const unet_run *run, const unet_epoch *e, FILE *log)
{
    char line[2048];
    unet_epoch_json(run, e, line, sizeof line);
    size_t len = strlen(line); /* + the number of data-parallel processes */
    if (len && line[len - 1] == '}') snprintf(line + len - 1, sizeof line - len + 1, ", \"world_size\": %d}", tg_dist_world_size());
    fprintf(log, "%s\n", line);
    fflush(log);
}

/* Keeps the log lines of epochs <= last_epoch (a resumed run rewrites what came after). */
static tg_status trim_log(const char *path, int last_epoch, unet_run *kept)
{
    unet_run old;
    tg_status st = unet_run_load(path, &old);
    memset(kept, 0, sizeof *kept);
    if (st != TG_OK) return st;
    for (int i = 0; i < old.n_epochs; i++)
        if (old.epochs[i].epoch <= last_epoch && !unet_run_push(kept, &old.epochs[i])) {
            unet_run_free(&old);
            return tg_error(TG_ERR_NOMEM, "out of memory");
        }
    unet_run_free(&old);
    return TG_OK;
}

static int train_head(const config *c, int head, const drive_data *d)
{
    char dir[1100], log_path[1200], last_path[1200], best_path[1200];
    snprintf(dir, sizeof dir, "%s/%s", c->out, HEAD_NAME[head]);
    snprintf(log_path, sizeof log_path, "%s/log.jsonl", dir);
    snprintf(last_path, sizeof last_path, "%s/last.safetensors", dir);
    snprintf(best_path, sizeof best_path, "%s/best.safetensors", dir);
    if (!tg_cli_make_dirs(dir)) {
        fprintf(stderr, "unet_drive: cannot create %s: %s\n", dir, strerror(errno));
        return 1;
    }
    const int classes = head == HEAD_SIGMOID ? 1 : 2;
    tg_rng init_rng;
    tg_rng_seed(&init_rng, c->seed); /* same draws for every layer but out_conv in both heads */
    tg_unet *m = tg_unet_new(3, classes, c->base_c, &init_rng);
    if (!m) return fail("cannot build the model");
    tg_optimizer *opt = tg_sgd_new(m->params, (tg_sgd_opts){.lr = c->lr, .momentum = c->momentum,
                                                            .weight_decay = c->weight_decay});
    tg_loader_options lo = tg_loader_defaults(c->batch, c->seed);
    lo.workers = c->workers;
    lo.shard_rank = tg_dist_rank(); /* data parallel: this rank's slice of every batch */
    lo.shard_count = tg_dist_world_size();
    tg_loader *probe = opt ? tg_loader_new(d->train, &lo) : NULL;
    if (!probe) {
        tg_optimizer_free(opt);
        tg_unet_free(m);
        return fail("cannot set up training");
    }
    const int64_t steps_per_epoch = tg_loader_batches_per_epoch(probe);
    tg_loader_free(probe);
    /* Warmup needs at least one epoch after it (the reference's poly term divides by the rest). */
    const int warmup = c->warmup_epochs < c->epochs ? c->warmup_epochs : c->epochs - 1;
    if (warmup != c->warmup_epochs)
        printf("%s head: warmup shortened to %d epoch%s (--epochs %d leaves no epoch after it)\n", HEAD_NAME[head],
               warmup, warmup == 1 ? "" : "s", c->epochs);
    tg_lr_sched sched;
    if (tg_sched_warmup_poly(&sched, opt, warmup * steps_per_epoch, c->epochs * steps_per_epoch, 1e-3, 0.9) !=
        TG_OK) {
        tg_optimizer_free(opt);
        tg_unet_free(m);
        return fail("cannot set up the learning-rate schedule");
    }

    unet_run run = {.num_classes = classes, .params = tg_param_list_numel(m->params, TG_KIND_PARAM),
                    .base_c = c->base_c, .crop = c->crop, .batch = c->batch, .epochs_planned = c->epochs};
    snprintf(run.head, sizeof run.head, "%s", HEAD_NAME[head]);
    unet_norm_format(c->mean, run.norm_mean, sizeof run.norm_mean);
    unet_norm_format(c->std, run.norm_std, sizeof run.norm_std);
    int start_epoch = 0;
    FILE *log = NULL;
    struct stat st_last;
    if (c->resume && stat(last_path, &st_last) == 0) {
        tg_meta meta = {0};
        tg_ckpt_opts ro = {.optim = opt, .sched = &sched, .meta = &meta, .strict = true};
        long long e = 0, base = 0, ep = 0;
        if (tg_checkpoint_load(last_path, m->params, &ro, NULL) != TG_OK) {
            tg_meta_clear(&meta);
            tg_optimizer_free(opt);
            tg_unet_free(m);
            return fail("cannot resume");
        }
        bool same = meta_get_int(&meta, "epoch", 0, 100000, &e) && meta_get_int(&meta, "base_c", 1, 512, &base) &&
                    meta_get_int(&meta, "epochs", 1, 100000, &ep) && base == c->base_c && ep == c->epochs;
        tg_meta_clear(&meta);
        if (!same) {
            fprintf(stderr, "unet_drive: %s was written with other settings (base_c %lld, epochs %lld); resume with "
                    "the same --base-c and --epochs, or start afresh without --resume\n", last_path, base, ep);
            tg_optimizer_free(opt);
            tg_unet_free(m);
            return 2;
        }
        start_epoch = (int)e;
        unet_run kept;
        if (trim_log(log_path, start_epoch, &kept) == TG_OK) {
            for (int i = 0; i < kept.n_epochs; i++) unet_run_push(&run, &kept.epochs[i]);
            unet_run_free(&kept);
        }
        log = fopen(tg_dist_is_main() ? log_path : "/dev/null", "w");
        for (int i = 0; log && i < run.n_epochs; i++) epoch_line(&run, &run.epochs[i], log);
        printf("%s head: resuming after epoch %d of %d from %s\n", HEAD_NAME[head], start_epoch, c->epochs, last_path);
    } else {
        log = fopen(tg_dist_is_main() ? log_path : "/dev/null", "w");
    }
    if (!log) {
        fprintf(stderr, "unet_drive: cannot write %s: %s\n", log_path, strerror(errno));
        tg_optimizer_free(opt);
        tg_unet_free(m);
        unet_run_free(&run);
        return 1;
    }
    lo.start_epoch = start_epoch;
    tg_loader *loader = tg_loader_new(d->train, &lo);
    if (loader && (tg_dist_broadcast_state(m->params) != TG_OK || tg_dist_sync_batchnorm(m->params, c->sync_bn) != TG_OK)) {
        tg_loader_free(loader);
        loader = NULL;
    }
    if (!loader) {
        fclose(log);
        tg_optimizer_free(opt);
        tg_unet_free(m);
        unet_run_free(&run);
        return fail("cannot start the data loader");
    }
    printf("%s head (%d output channel%s): %lld parameters, %lld training images, %lld test images, %lld steps per "
           "epoch\n",
           HEAD_NAME[head], classes, classes == 1 ? "" : "s", (long long)run.params, (long long)d->train->length,
           (long long)d->test->length, (long long)steps_per_epoch);

    loss_buffers lb = {0};
    int rc = 0;
    double best_dice = -1;
    const unet_epoch *prev_best = unet_run_best(&run);
    if (prev_best) best_dice = prev_best->dice;
    tg_param_list_train(m->params, true);
    const int last_epoch = c->stop_after && c->stop_after < c->epochs ? c->stop_after : c->epochs;
    for (int epoch = start_epoch + 1; epoch <= last_epoch && rc == 0; epoch++) {
        char label[48], status[96] = "";
        snprintf(label, sizeof label, "%s %d/%d", HEAD_NAME[head], epoch, c->epochs);
        tg_progress bar;
        tg_progress_begin(&bar, tg_dist_progress_stream(), label, steps_per_epoch, c->batch, "img");
        const double wait0 = tg_loader_get_stats(loader).wait_seconds;
        double loss_sum = 0;
        int64_t steps = 0, images = 0;
        tg_batch b;
        tg_status st;
        while ((st = tg_loader_next(loader, &b)) == TG_OK && b.x) {
            tg_tensor *loss = whole_batch_mean(head_loss(head, tg_unet_forward(m, b.x), b.y, c->class_weight, &lb), b.y,
                                               c->class_weight);
            if (!loss || tg_backward(loss) != TG_OK ||
                tg_dist_allreduce_grads(m->params, b.x->shape[0], b.global_size) != TG_OK || tg_optimizer_step(opt) != TG_OK) {
                st = tg_last_status();
                tg_batch_free(&b);
                break;
            }
            tg_lr_sched_step(&sched);
            if (!isfinite(loss->data[0])) {
                st = tg_error(TG_ERR_STATE, "the training loss became %g at epoch %d step %lld (try a lower --lr)",
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
            snprintf(status, sizeof status, "loss %.4f lr %.2e", loss_sum / (double)steps, opt->lr);
            tg_progress_update(&bar, steps, status);
        }
        tg_tape_clear();
        if (st != TG_OK) {
            fprintf(stderr, "\n");
            rc = fail("training failed");
            break;
        }
        tg_dist_allreduce_sum(&loss_sum, 1); /* the ranks' mean losses, averaged */
        unet_epoch e = {.epoch = epoch, .lr = opt->lr, .train_loss = loss_sum / (double)steps / tg_dist_world_size()};
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
        run.peak_rss_mb = tg_cli_peak_rss_mb();
        if (!unet_run_push(&run, &e)) {
            rc = fail("out of memory");
            break;
        }
        epoch_line(&run, &e, log);
        tg_meta meta = {0};
        fill_meta(&meta, c, head, epoch, unet_run_best(&run));
        tg_ckpt_opts so = {.optim = opt, .sched = &sched, .meta = &meta};
        if (tg_dist_is_main() && tg_checkpoint_save(last_path, m->params, &so) != TG_OK)
            rc = fail("cannot save the checkpoint");
        if (rc == 0 && e.evaluated && e.dice > best_dice) { /* rank 0 only evaluates */
            best_dice = e.dice;
            tg_ckpt_opts bo = {.meta = &meta};
            if (tg_checkpoint_save(best_path, m->params, &bo) != TG_OK) rc = fail("cannot save the best checkpoint");
        }
        tg_meta_clear(&meta);
    }
    if (rc == 0)
        printf("%s head done: log %s, checkpoints %s and %s, peak memory %.0f MB\n", HEAD_NAME[head], log_path,
               last_path, best_path, tg_cli_peak_rss_mb());
    fclose(log);
    loss_buffers_free(&lb);
    tg_loader_free(loader);
    tg_optimizer_free(opt);
    tg_unet_free(m);
    unet_run_free(&run);
    return rc;
}

/* ---- report ---------------------------------------------------------------------------------- */

/* Overlays of the first K test images with each head's best checkpoint in models_dir, into c->out. */
static tg_status write_overlays(const config *c, const char *models_dir, const drive_data *d, int k_images)
{
    tg_unet *models[2] = {NULL, NULL};
    int heads[2], n = 0;
    float mean[2][3], std[2][3];
    for (int h = 0; h < 2; h++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s/best.safetensors", models_dir, HEAD_NAME[h]);
        struct stat st;
        if (stat(path, &st) != 0) continue;
        if (!(models[n] = load_model(path, &heads[n], mean[n], std[n]))) {
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
        if (st == TG_OK) {
            char path[1200];
            snprintf(path, sizeof path, "%s/overlay_%02lld.png", c->out, (long long)i + 1);
            st = unet_overlay_save(path, img, tgt->data, (const uint8_t *const *)preds, n);
            if (st == TG_OK) {
                printf("overlay %s: test image %lld; panels: image", path, (long long)i + 1);
                for (int k = 0; k < n; k++) printf(", %s", HEAD_NAME[heads[k]]);
                printf("\n");
            }
        }
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
        char path[1200];
        snprintf(path, sizeof path, "%s/%s/log.jsonl", c->out, HEAD_NAME[h]);
        struct stat st;
        if (stat(path, &st) != 0) continue;
        if (unet_run_load(path, &runs[n]) != TG_OK) {
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
    char path[1200];
    snprintf(path, sizeof path, "%s/curves.png", c->out);
    if (rc == 0) {
        if (unet_plot_curves(path, runs, n) == TG_OK) printf("\ncurves: %s\n", path);
        else fprintf(stderr, "unet_drive: no curves.png: %s\n", tg_last_error());
    }
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
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/seed_%lld", c->out, seeds[0]);
    if (d && c->overlays && write_overlays(c, dir, d, c->overlays) != TG_OK) rc = fail("cannot draw the overlays");
    if (rc == 0) printf("report: %s/report.md\n", c->out);
    return rc;
}

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

int main(int argc, char **argv)
{
    tg_blas_select_kernel(argc, argv);
    if (tg_dist_init(&argc, &argv) != TG_OK) return fail("cannot join the MPI job");
    tg_dist_quiet_others(); /* only rank 0 prints */
    setvbuf(stdout, NULL, _IOLBF, 0); /* epoch lines appear at once in a log file too */
    config c;
    int rc = parse_args(argc, argv, &c);
    if (rc) return rc;
    tg_set_num_threads(c.threads);
    if (c.eval_ckpt) return run_eval(&c);
    drive_data d;
    if (drive_data_open(&c, !c.report_only, NULL, NULL, !c.report_only, &d) != TG_OK) {
        drive_data_free(&d);
        return fail("cannot open the dataset");
    }
    if (!c.report_only) {
        if (!tg_cli_make_dirs(c.out)) {
            fprintf(stderr, "unet_drive: cannot create the output directory %s: %s\n", c.out, strerror(errno));
            drive_data_free(&d);
            return 1;
        }
        const int threads = tg_get_num_threads();
        char seeds[UNET_MAX_SEEDS * 21 + 8];
        unet_seeds_format(c.n_seeds ? c.seeds : (const long long[]){(long long)c.seed}, c.n_seeds ? c.n_seeds : 1,
                          seeds, sizeof seeds);
        printf("unet_drive: data at %s, output in %s; base width %d, crop %d, batch %d, %d epoch%s, lr %g, seed%s %s, "
               "%d thread%s\n",
               c.data ? c.data : tg_drive_default_root(), c.out, c.base_c, c.crop, c.batch, c.epochs,
               c.epochs == 1 ? "" : "s", c.lr, c.n_seeds > 1 ? "s" : "", seeds, threads, threads == 1 ? "" : "s");
        printf("flush-to-zero: %s (denormal floats become 0, as torch.set_flush_denormal(True)); OpenBLAS kernels: "
               "%s\n",
               tg_set_flush_denormal(true) ? "on" : "unavailable on this CPU", tg_blas_core());
        for (int i = 0; i < (c.n_seeds ? c.n_seeds : 1) && rc == 0; i++) {
            config cs = c; /* --seeds: each seed into OUT/seed_S */
            char out[1100];
            if (c.n_seeds) {
                snprintf(out, sizeof out, "%s/seed_%lld", c.out, c.seeds[i]);
                cs.out = out;
                cs.seed = (uint64_t)c.seeds[i];
                printf("seed %lld (%d of %d): %s\n", c.seeds[i], i + 1, c.n_seeds, out);
            }
            for (int h = 0; h < 2 && rc == 0; h++)
                if (c.head[h]) rc = train_head(&cs, h, &d);
        }
    }
    if (rc == 0 && tg_dist_is_main()) rc = c.n_seeds || (c.report_only && unet_seeds_present(c.out)) ? report_seeds(&c, &d) : report(&c, &d);
    drive_data_free(&d);
    return tg_dist_finish(rc);
}
