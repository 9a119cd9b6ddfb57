/* unet_drive's command line: the usage text, the table of options and their checks, and the
 * configuration as JSON (unet_drive.h). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"
#include "head_loss.h"
#include "unet_drive.h"

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

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "unet_drive: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(unet_drive --help lists the options)\n");
    va_end(ap);
    return 2;
}

int fail(const char *what)
{
    fprintf(stderr, "unet_drive: %s: %s\n", what, tg_last_error());
    return 1;
}

/* ---- the options whose values need more than a range check ---------------------------------------- */

static bool opt_head(config *c, const char *v)
{
    bool both = !strcmp(v, "both"), sig = !strcmp(v, "sigmoid"), soft = !strcmp(v, "softmax");
    c->head[HEAD_SIGMOID] = both || sig;
    c->head[HEAD_SOFTMAX] = both || soft;
    return both || sig || soft;
}

static bool opt_seeds(config *c, const char *v) { return unet_seeds_parse(v, c->seeds, &c->n_seeds); }
static bool opt_mean(config *c, const char *v) { return c->mean_given = unet_norm_parse(v, false, c->mean); }
static bool opt_std(config *c, const char *v) { return c->std_given = unet_norm_parse(v, true, c->std); }
static bool opt_lr(config *c, const char *v) { return cli_parse_double(v, &c->lr) && c->lr > 0; }
static bool opt_momentum(config *c, const char *v)
{
    return cli_parse_double(v, &c->momentum) && c->momentum >= 0 && c->momentum < 1;
}
static bool opt_weight_decay(config *c, const char *v)
{
    return cli_parse_double(v, &c->weight_decay) && c->weight_decay >= 0;
}

/* "W0,W1", both positive and finite */
static bool opt_class_weight(config *c, const char *v)
{
    char *end;
    errno = 0;
    c->class_weight[0] = strtod(v, &end);
    bool ok = !errno && end != v && *end == ',';
    if (ok) {
        const char *second = end + 1;
        c->class_weight[1] = strtod(second, &end);
        ok = !errno && end != second && !*end;
    }
    return ok && c->class_weight[0] > 0 && c->class_weight[1] > 0 && isfinite(c->class_weight[0]) &&
           isfinite(c->class_weight[1]);
}

static bool opt_seed(config *c, const char *v)
{
    long long n;
    if (!cli_parse_long(v, 0, INT64_MAX, &n)) return false;
    c->seed = (uint64_t)n;
    return c->seed_given = true;
}

static bool opt_limit_train(config *c, const char *v)
{
    long long n;
    return cli_parse_long(v, 1, INT64_MAX, &n) && ((c->limit_train = n), true);
}

static bool opt_limit_test(config *c, const char *v)
{
    long long n;
    return cli_parse_long(v, 1, INT64_MAX, &n) && ((c->limit_test = n), true);
}

static bool opt_out(config *c, const char *v) { return c->out = v, c->out_given = true; }
static bool opt_preset(config *c, const char *v) { return (void)c, (void)v, true; } /* applied first */

/* ---- the table of options ---------------------------------------------------------------------- */

typedef enum {
    OPT_FLAG, /* no value: sets a bool */
    OPT_INT,  /* an int in [lo, hi] */
    OPT_TEXT, /* a string kept as given */
    OPT_FUNC, /* parse(); on failure the message error ('%s': the value) */
} opt_kind;

typedef struct {
    const char *name;
    opt_kind kind;
    size_t field; /* offset in config: bool (FLAG), int (INT), const char * (TEXT) */
    int lo, hi;
    bool (*parse)(config *c, const char *v);
    const char *error;
} option;

#define FLAG(name, f) {name, OPT_FLAG, offsetof(config, f), 0, 0, NULL, NULL}
#define INT(name, f, lo, hi) {name, OPT_INT, offsetof(config, f), lo, hi, NULL, NULL}
#define TEXT(name, f) {name, OPT_TEXT, offsetof(config, f), 0, 0, NULL, NULL}
#define FUNC(name, fn, msg) {name, OPT_FUNC, 0, 0, 0, fn, msg}

static const option OPTIONS[] = {
    FLAG("--resume", resume),
    FLAG("--report-only", report_only),
    FLAG("--sync-bn", sync_bn),
    FLAG("--allow-config-change", allow_config_change),
    FUNC("--head", opt_head, "--head must be both, sigmoid or softmax, not '%s'"),
    INT("--epochs", epochs, 1, 100000),
    INT("--batch-size", batch, 1, 1024),
    INT("--crop", crop, 16, 4096),
    INT("--base-c", base_c, 1, 512),
    INT("--warmup-epochs", warmup_epochs, 0, 100000),
    INT("--threads", threads, 1, 1024),
    INT("--workers", workers, 0, 16),
    INT("--eval-every", eval_every, 1, 100000),
    INT("--overlays", overlays, 0, 20),
    INT("--stop-after", stop_after, 1, 100000),
    INT("--base-size", base_size, 16, 4096),
    FUNC("--seeds", opt_seeds,
         "--seeds takes distinct whole numbers >= 0 separated by commas (e.g. 0,1,2), not '%s'"),
    FUNC("--mean", opt_mean, "--mean takes three numbers M0,M1,M2, not '%s'"),
    FUNC("--std", opt_std, "--std takes three positive numbers S0,S1,S2, not '%s'"),
    FUNC("--lr", opt_lr, "--lr takes a positive number, not '%s'"),
    FUNC("--momentum", opt_momentum, "--momentum takes a number in [0, 1), not '%s'"),
    FUNC("--weight-decay", opt_weight_decay, "--weight-decay takes a number >= 0, not '%s'"),
    FUNC("--class-weight", opt_class_weight, "--class-weight takes two positive numbers W0,W1 (e.g. 1,2), not '%s'"),
    FUNC("--seed", opt_seed, "--seed takes a whole number >= 0, not '%s'"),
    FUNC("--limit-train", opt_limit_train, "--limit-train takes a whole number >= 1, not '%s'"),
    FUNC("--limit-test", opt_limit_test, "--limit-test takes a whole number >= 1, not '%s'"),
    TEXT("--data", data),
    FUNC("--out", opt_out, NULL),
    TEXT("--eval", eval_ckpt),
    FUNC("--preset", opt_preset, NULL),
    TEXT("--predict", predict_ckpt),
    TEXT("--image", image),
    TEXT("--mask", mask),
    TEXT("--prob", prob),
};
#undef FLAG
#undef INT
#undef TEXT
#undef FUNC

static const option *find_option(const char *name)
{
    for (size_t k = 0; k < sizeof OPTIONS / sizeof *OPTIONS; k++)
        if (!strcmp(name, OPTIONS[k].name)) return &OPTIONS[k];
    return NULL;
}

/* Stores the value v of option o into c; 0 or the exit code of a usage error. */
static int apply_option(const option *o, config *c, const char *v)
{
    char *field = (char *)c + o->field;
    long long n;
    switch (o->kind) {
    case OPT_INT:
        if (!cli_parse_long(v, o->lo, o->hi, &n))
            return usage_error("%s takes a whole number %d..%d, not '%s'", o->name, o->lo, o->hi, v);
        *(int *)field = (int)n;
        return 0;
    case OPT_TEXT:
        *(const char **)field = v;
        return 0;
    case OPT_FUNC:
        return o->parse(c, v) ? 0 : usage_error(o->error, v);
    case OPT_FLAG:
        break;
    }
    *(bool *)field = true;
    return 0;
}

/* --preset NAME: base width, crop, batch and epochs. cpu: a 2-core machine; paper: the
 * reference's train.py (which runs 200 epochs on a GPU). */
static const struct {
    const char *name;
    int base_c, crop, batch, epochs;
} PRESETS[] = {
    {"cpu", 16, 256, 4, 150},
    {"paper", 32, UNET_DRIVE_CROP, 4, 150},
};

/* --preset sets defaults first, whatever its place on the line: the flags then override them. */
static int apply_preset(int argc, char **argv, config *c)
{
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--preset")) {
            const char *v = argv[++i];
            size_t k = 0;
            while (k < sizeof PRESETS / sizeof *PRESETS && strcmp(v, PRESETS[k].name)) k++;
            if (k == sizeof PRESETS / sizeof *PRESETS) return usage_error("--preset must be cpu or paper, not '%s'", v);
            c->base_c = PRESETS[k].base_c, c->crop = PRESETS[k].crop;
            c->batch = PRESETS[k].batch, c->epochs = PRESETS[k].epochs;
            c->preset = v;
        }
    return 0;
}

/* Options that do not go together. */
static int check_combinations(const config *c)
{
    if (c->eval_ckpt && c->report_only) return usage_error("%s", "--eval and --report-only are separate commands");
    if (c->seed_given && c->n_seeds) return usage_error("%s", "give --seed S or --seeds S1,S2,..., not both");
    if (c->mean_given != c->std_given) return usage_error("%s", "--mean and --std go together (give both)");
    if (c->predict_ckpt && (c->eval_ckpt || c->report_only || c->resume))
        return usage_error("%s", "--predict is a command of its own (not with --eval, --report-only or --resume)");
    if (c->predict_ckpt && (!c->image || !c->out_given))
        return usage_error("%s", "--predict CKPT needs --image IMG and --out PRED.png");
    if (!c->predict_ckpt && (c->image || c->mask || c->prob))
        return usage_error("%s", "--image, --mask and --prob go with --predict CKPT");
    return 0;
}

int parse_args(int argc, char **argv, config *c)
{
    *c = (config){.out = "runs/unet_drive", .head = {true, true}, .epochs = 40, .batch = 4, .crop = 0,
                  .base_c = 16, .warmup_epochs = 1, .workers = 1, .eval_every = 1, .overlays = 3, .lr = 0.01,
                  .momentum = 0.9, .weight_decay = 1e-4, .class_weight = {1.0, 2.0}, .argc = argc, .argv = argv};
    int rc = apply_preset(argc, argv, c);
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            print_usage(stdout);
            exit(0);
        }
        const option *o = find_option(a);
        if (o && o->kind == OPT_FLAG) rc = apply_option(o, c, NULL);
        else if (strncmp(a, "--", 2)) rc = usage_error("unexpected argument '%s'", a);
        else if (!o) rc = usage_error("unknown option '%s'", a);
        else if (i + 1 >= argc) rc = usage_error("option %s needs a value", a);
        else rc = apply_option(o, c, argv[++i]);
    }
    return rc ? rc : check_combinations(c);
}

void config_json(const config *c, char *buf, size_t size)
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
