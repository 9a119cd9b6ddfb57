/* losslab plot: loss and gradient curves over a range of logits, as the cross-entropy article
 * discusses them.
 *
 *   losslab plot --losses binary_cross_entropy_with_logits,cross_entropy,sigmoid_focal_loss
 *                --range -8:8 --target 1 [--out curves.png] [--csv curves.csv] [--points N] [--OPTION V ...]
 *
 * One-logit losses (tensor arguments input and a float target) get input z at each point and the
 * target --target; 2-class losses (cross_entropy, multi_margin_loss) get the logits (0, z), so z
 * is z1 - z0, and the target --target as a class index (0 or 1) or, for cross_entropy, a
 * probability t (target (1 - t, t)). Every loss runs with reduction 'none': the curves are one
 * element's loss and d loss / d z (the 2-class losses: the gradient of logit 1, which is d/dz
 * exactly). Options (--pos-weight '[3]', --weight '[1,2]', --label-smoothing 0.1, --gamma 2, ...)
 * go to every listed loss that takes them, as losslab NAME takes them.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"
#include "losslab.h"
#include "plot.h"

#ifdef TG_HAVE_PLPLOT
#include <plplot.h>
#endif

#define LP_MAX_LOSSES 8

static const char *PLOT_USAGE =
    "usage: losslab plot --losses NAME[,NAME...] [--range A:B] [--target T] [--points N]\n"
    "                    [--out FILE.png] [--csv FILE.csv] [--OPTION VALUE ...]\n"
    "  per loss, one element's loss and d loss / d z for z over [A, B] [-8:8], N points [401]\n"
    "  one-logit losses (input, float target): input z, target T [1];\n"
    "  cross_entropy, multi_margin_loss: logits (0, z), i.e. z = z1 - z0; target T as class 0/1\n"
    "  (cross_entropy also takes a probability T: target (1 - T, T))\n"
    "  options go to every listed loss that takes them (losslab --list): --pos-weight '[3]',\n"
    "  --weight '[1,2]', --label-smoothing 0.1, --gamma 2, --alpha 0.25 ...; reduction is 'none'\n"
    "  --out: PNG (PLplot pngcairo, 1200x480: loss left, gradient right); --csv: the numbers\n"
    "  (columns z, NAME.loss, NAME.dloss_dz ...). At least one of --out and --csv.\n";

typedef struct {
    const ll_loss *loss;
    bool two_class;
    double *value, *grad; /* points */
} lp_curve;

typedef struct {
    lp_curve curves[LP_MAX_LOSSES];
    int n_curves, points;
    double lo, hi, target;
    double *z;
    const char *out, *csv;
    char options[256]; /* the options as given, for the title */
    size_t options_len;
} lp_plot;

static int lp_usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "losslab plot: ");
    fprintf(stderr, msg, arg);
    fprintf(stderr, "\n(losslab plot --help shows the usage)\n");
    return 2;
}

static bool two_class_loss(const ll_loss *l) { return !strcmp(l->name, "cross_entropy") || !strcmp(l->name, "multi_margin_loss"); }

static bool one_logit_loss(const ll_loss *l)
{
    return ll_n_args(l) == 2 && l->args[0].kind == LL_ARG_GRAD && l->args[1].kind == LL_ARG_FLOAT;
}

static bool parse_range(const char *v, double *lo, double *hi)
{
    char *end;
    *lo = strtod(v, &end);
    if (end == v || *end != ':') return false;
    const char *second = end + 1;
    *hi = strtod(second, &end);
    return end != second && !*end && isfinite(*lo) && isfinite(*hi) && *lo < *hi;
}

/* The JSON case of one loss over all points (reduction 'none'). */
static cJSON *case_json(const lp_plot *p, const lp_curve *cv, const cJSON *options, char *err, size_t n)
{
    cJSON *obj = cJSON_CreateObject(), *input = cJSON_CreateArray(), *target = cJSON_CreateArray();
    cJSON_AddStringToObject(obj, "loss", cv->loss->name);
    cJSON_AddItemToObject(obj, "input", input);
    cJSON_AddItemToObject(obj, "target", target);
    const bool index_target = p->target == 0.0 || p->target == 1.0;
    if (cv->two_class && !index_target && strcmp(cv->loss->name, "cross_entropy")) {
        snprintf(err, n, "%s takes a class index: --target 0 or 1, not %g", cv->loss->name, p->target);
        cJSON_Delete(obj);
        return NULL;
    }
    if (cv->two_class && !index_target && !(p->target > 0 && p->target < 1)) {
        snprintf(err, n, "cross_entropy takes --target 0 or 1 (a class) or a probability in (0, 1), not %g", p->target);
        cJSON_Delete(obj);
        return NULL;
    }
    for (int i = 0; i < p->points; i++) {
        if (cv->two_class) {
            cJSON *row = cJSON_CreateArray();
            cJSON_AddItemToArray(row, cJSON_CreateNumber(0.0));
            cJSON_AddItemToArray(row, cJSON_CreateNumber(p->z[i]));
            cJSON_AddItemToArray(input, row);
            if (index_target) {
                cJSON_AddItemToArray(target, cJSON_CreateNumber(p->target));
            } else {
                cJSON *t = cJSON_CreateArray();
                cJSON_AddItemToArray(t, cJSON_CreateNumber(1.0 - p->target));
                cJSON_AddItemToArray(t, cJSON_CreateNumber(p->target));
                cJSON_AddItemToArray(target, t);
            }
        } else {
            cJSON_AddItemToArray(input, cJSON_CreateNumber(p->z[i]));
            cJSON_AddItemToArray(target, cJSON_CreateNumber(p->target));
        }
    }
    cJSON *opts = cJSON_CreateObject();
    cJSON_AddItemToObject(obj, "options", opts);
    for (const cJSON *o = options->child; o; o = o->next)
        if (ll_takes_opt(cv->loss, (ll_opt_id)ll_find_opt(o->string)))
            cJSON_AddItemToObject(opts, o->string, cJSON_Duplicate(o, true));
    if (ll_takes_opt(cv->loss, LL_OPT_REDUCTION)) cJSON_AddStringToObject(opts, "reduction", "none");
    return obj;
}

static bool compute(lp_plot *p, const cJSON *options, char *err, size_t n)
{
    for (int k = 0; k < p->n_curves; k++) {
        lp_curve *cv = &p->curves[k];
        cJSON *obj = case_json(p, cv, options, err, n);
        if (!obj) return false;
        ll_case c;
        ll_result r = {0};
        char msg[LL_ERR_LEN] = "";
        bool ok = ll_case_from_json(obj, &c, msg, sizeof msg) && ll_run(&c, false, &r, msg, sizeof msg);
        cJSON_Delete(obj);
        if (ok && (r.loss->numel != p->points || !r.grads[0])) {
            snprintf(msg, sizeof msg, "does not give one loss per element");
            ok = false;
        }
        cv->value = ok ? malloc((size_t)p->points * sizeof(double)) : NULL;
        cv->grad = ok ? malloc((size_t)p->points * sizeof(double)) : NULL;
        if (ok && (!cv->value || !cv->grad)) {
            snprintf(msg, sizeof msg, "out of memory");
            ok = false;
        }
        for (int i = 0; ok && i < p->points; i++) {
            cv->value[i] = r.loss->data[i];
            cv->grad[i] = r.grads[0]->data[cv->two_class ? 2 * i + 1 : i]; /* logits (0, z): d/dz = d/d logit 1 */
        }
        ll_result_free(&r);
        ll_case_free(&c); /* also after a failure (as losslab --jsonl) */
        if (!ok) {
            snprintf(err, n, "%s: %s", cv->loss->name, msg);
            return false;
        }
    }
    return true;
}

static bool write_csv(const lp_plot *p, char *err, size_t n)
{
    FILE *f = fopen(p->csv, "w");
    if (!f) {
        snprintf(err, n, "cannot write %s: %s", p->csv, strerror(errno));
        return false;
    }
    fprintf(f, "z");
    for (int k = 0; k < p->n_curves; k++) fprintf(f, ",%s.loss,%s.dloss_dz", p->curves[k].loss->name, p->curves[k].loss->name);
    fprintf(f, "\n");
    for (int i = 0; i < p->points; i++) {
        fprintf(f, "%.9g", p->z[i]);
        for (int k = 0; k < p->n_curves; k++) fprintf(f, ",%.9g,%.9g", p->curves[k].value[i], p->curves[k].grad[i]);
        fprintf(f, "\n");
    }
    bool ok = !ferror(f);
    ok &= fclose(f) == 0;
    if (!ok) snprintf(err, n, "cannot write %s: %s", p->csv, strerror(errno));
    return ok;
}

#ifdef TG_HAVE_PLPLOT
static bool lp_failed;
static char lp_message[256];
static int lp_exit_handler(PLCHAR_VECTOR msg)
{
    snprintf(lp_message, sizeof lp_message, "PLplot: %s", msg);
    lp_failed = true;
    return 0; /* do not exit the program */
}

static bool have_pngcairo(void)
{
    const char *menu_store[128], *devs_store[128];
    const char **menu = menu_store, **devs = devs_store;
    int n = 128;
    plgDevs(&menu, &devs, &n);
    for (int i = 0; i < n; i++)
        if (devs[i] && !strcmp(devs[i], "pngcairo")) return true;
    return false;
}

static const PLINT CURVE_COLORS[6] = {1, 2, 4, 5, 6, 7}; /* 3 is the grid's grey */

static void panel(const lp_plot *p, bool grad)
{
    double ymin = INFINITY, ymax = -INFINITY;
    for (int k = 0; k < p->n_curves; k++)
        for (int i = 0; i < p->points; i++) {
            double v = grad ? p->curves[k].grad[i] : p->curves[k].value[i];
            if (isfinite(v)) ymin = fmin(ymin, v), ymax = fmax(ymax, v);
        }
    if (!(ymin <= ymax)) ymin = -1, ymax = 1;
    if (grad) ymin = fmin(ymin, 0), ymax = fmax(ymax, 0);
    else ymin = fmin(ymin, 0);
    const double pad = (ymax - ymin) * 0.06 + 1e-6;
    plcol0(15);
    plenv(p->lo, p->hi, ymin - pad, ymax + pad, 0, -2);
    plcol0(3);
    plbox("g", 0, 0, "g", 0, 0);
    pljoin(p->lo, 0, p->hi, 0);
    pljoin(0, ymin - pad, 0, ymax + pad);
    plcol0(15);
    plbox("bcnst", 0, 0, "bcnstv", 0, 0);
    char title[96];
    snprintf(title, sizeof title, "%s, target %g", grad ? "d loss / d z" : "loss of one element", p->target);
    pllab("z: the logit (2-class losses: z1 - z0, logits (0, z))", grad ? "d loss / d z" : "loss", title);
    if (p->options[0]) { /* the options, small, under the title */
        plschr(0, 0.75);
        plmtex("t", 0.7, 0.5, 0.5, p->options);
        plschr(0, 1.0);
    }
    PLINT opt[LP_MAX_LOSSES], colors[LP_MAX_LOSSES], styles[LP_MAX_LOSSES], tcolors[LP_MAX_LOSSES];
    PLFLT widths[LP_MAX_LOSSES];
    const char *text[LP_MAX_LOSSES];
    char labels[LP_MAX_LOSSES][96];
    PLFLT *x = malloc((size_t)p->points * sizeof *x), *y = malloc((size_t)p->points * sizeof *y);
    for (int k = 0; x && y && k < p->n_curves; k++) {
        const lp_curve *cv = &p->curves[k];
        colors[k] = CURVE_COLORS[k % 6];
        styles[k] = k == 0 ? 1 : 2 + (k - 1) % 3; /* later curves dashed, so coinciding curves both show */
        widths[k] = k == 0 ? 5.0 : 2.0;
        opt[k] = PL_LEGEND_LINE;
        tcolors[k] = 15;
        snprintf(labels[k], sizeof labels[k], "%s%s", cv->loss->name, cv->two_class ? " (2 logits)" : "");
        text[k] = labels[k];
        plcol0(colors[k]);
        pllsty(styles[k]);
        plwidth(widths[k]);
        int m = 0; /* runs of finite points */
        for (int i = 0; i <= p->points; i++) {
            double v = i < p->points ? (grad ? cv->grad[i] : cv->value[i]) : NAN;
            if (isfinite(v)) {
                x[m] = p->z[i], y[m] = v, m++;
            } else {
                if (m > 1) plline(m, x, y);
                m = 0;
            }
        }
    }
    free(x);
    free(y);
    pllsty(1);
    plwidth(1.0);
    /* one legend, in the loss panel (same colours on the right), in the top corner away from the
     * side the target pulls the loss down to */
    if (grad) return;
    PLFLT lw, lh;
    pllegend(&lw, &lh, PL_LEGEND_BACKGROUND | PL_LEGEND_BOUNDING_BOX,
             PL_POSITION_INSIDE | PL_POSITION_TOP | (p->target >= 0.5 ? PL_POSITION_RIGHT : PL_POSITION_LEFT), 0.02,
             0.03, 0.07, 0, 15, 1, 0, 0, p->n_curves, opt, 0.8, 0.6, 2.2, 0.0, tcolors, text, NULL, NULL, NULL, NULL,
             colors, styles, widths, NULL, NULL, NULL, NULL);
}
#endif

static bool write_png(const lp_plot *p, char *err, size_t n)
{
#ifdef TG_HAVE_PLPLOT
    if (!have_pngcairo()) {
        snprintf(err, n, "PLplot's pngcairo driver is missing (install plplot-driver-cairo; scripts/setup.sh does)");
        return false;
    }
    FILE *probe = fopen(p->out, "wb"); /* PLplot does not report an unwritable file */
    if (!probe) {
        snprintf(err, n, "cannot write %s: %s", p->out, strerror(errno));
        return false;
    }
    fclose(probe);
    lp_failed = false;
    plsexit(lp_exit_handler);
    plsdev("pngcairo");
    plsfnam(p->out);
    plspage(0, 0, 1200, 480, 0, 0);
    plscolbg(255, 255, 255);
    plscol0(15, 0, 0, 0);
    plscol0(1, 31, 119, 180);
    plscol0(2, 214, 39, 40);
    plscol0(3, 215, 215, 215);
    plscol0(4, 44, 160, 44);
    plscol0(5, 148, 103, 189);
    plscol0(6, 255, 127, 14);
    plscol0(7, 140, 86, 75);
    plssub(2, 1);
    plinit();
    if (!lp_failed) {
        panel(p, false);
        panel(p, true);
    }
    plend();
    if (lp_failed) snprintf(err, n, "%s", lp_message);
    return !lp_failed;
#else
    (void)p;
    snprintf(err, n, "built without PLplot (install libplplot-dev and plplot-driver-cairo, then rebuild; "
             "scripts/setup.sh does); --csv still works");
    return false;
#endif
}

/* One option --KEY V (key: KEY with '-' as '_'; id its losslab option or -1) into p, losses or
 * options (the losses' options, also listed in p->options for the title); 0 or the exit code. */
static int lp_set_option(lp_plot *p, const char **losses, cJSON *options, const char *a, const char *key, int id,
                         const char *v)
{
    long long n;
    if (!strcmp(key, "losses")) *losses = v;
    else if (!strcmp(key, "out")) p->out = v;
    else if (!strcmp(key, "csv")) p->csv = v;
    else if (!strcmp(key, "range")) {
        if (!parse_range(v, &p->lo, &p->hi)) return lp_usage_error("--range takes A:B with A < B (e.g. -8:8), not '%s'", v);
    } else if (!strcmp(key, "target")) {
        if (!cli_parse_double(v, &p->target)) return lp_usage_error("--target takes a number, not '%s'", v);
    } else if (!strcmp(key, "points")) {
        if (!cli_parse_long(v, 2, 100000, &n)) return lp_usage_error("--points takes a whole number 2..100000, not '%s'", v);
        p->points = (int)n;
    } else if (id == LL_OPT_REDUCTION) {
        return lp_usage_error("%s: the curves are per element (reduction 'none')", a);
    } else if (id >= 0) {
        if (cJSON_GetObjectItemCaseSensitive(options, key)) return lp_usage_error("%s is given twice", a);
        cJSON *val = ll_json_parse(v);
        if (!val) val = cJSON_CreateString(v);
        cJSON_AddItemToObject(options, key, val);
        size_t len = p->options_len;
        len += (size_t)snprintf(p->options + len, len < sizeof p->options ? sizeof p->options - len : 0, "%s%s %s",
                                len ? ", " : "", key, v);
        p->options_len = len < sizeof p->options ? len : sizeof p->options;
    } else {
        return lp_usage_error("unknown option '%s' (losslab --list shows the losses' options)", a);
    }
    return 0;
}

/* The command line into p, losses and options; *help if --help was given (then nothing else is
 * done). 0 or the exit code of a usage error. */
static int lp_parse_args(int argc, char **argv, lp_plot *p, const char **losses, cJSON *options, bool *help)
{
    int rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            *help = true;
            return 0;
        }
        if (strncmp(a, "--", 2) || !a[2]) return lp_usage_error("unexpected argument '%s'", a);
        char key[64];
        snprintf(key, sizeof key, "%s", a + 2);
        for (char *c = key; *c; c++)
            if (*c == '-') *c = '_';
        const int id = ll_find_opt(key);
        const bool flag = id >= 0 && ll_opt_infos[id].kind == LL_VAL_BOOL &&
                          !(i + 1 < argc && (!strcmp(argv[i + 1], "true") || !strcmp(argv[i + 1], "false")));
        if (!flag && i + 1 >= argc) return lp_usage_error("option %s needs a value", a);
        const char *v = flag ? "true" : argv[++i];
        rc = lp_set_option(p, losses, options, a, key, id, v);
    }
    return rc;
}

/* The curves of the comma-separated losses: each a function of one logit (or of z1 - z0), at most
 * LP_MAX_LOSSES, none twice. 0 or the exit code. */
static int lp_add_losses(lp_plot *p, const char *losses)
{
    char *list = strdup(losses);
    if (!list) {
        fprintf(stderr, "losslab plot: out of memory\n");
        return 1;
    }
    int rc = 0;
    for (char *save = NULL, *name = strtok_r(list, ",", &save); rc == 0 && name; name = strtok_r(NULL, ",", &save)) {
        const ll_loss *l = ll_find_loss(name);
        if (!l) rc = lp_usage_error("unknown loss '%s' (losslab --list)", name);
        else if (!one_logit_loss(l) && !two_class_loss(l))
            rc = lp_usage_error("%s is not a function of one logit (or of z1 - z0): plot takes losses with an input "
                                "and a float target, cross_entropy and multi_margin_loss", name);
        else if (p->n_curves == LP_MAX_LOSSES) rc = lp_usage_error("at most 8 losses, got more in '%s'", losses);
        else {
            for (int k = 0; k < p->n_curves && rc == 0; k++)
                if (p->curves[k].loss == l) rc = lp_usage_error("%s is listed twice", name);
            p->curves[p->n_curves].loss = l;
            p->curves[p->n_curves++].two_class = two_class_loss(l);
        }
    }
    free(list);
    if (rc == 0 && !p->n_curves) rc = lp_usage_error("%s", "--losses names no loss");
    return rc;
}

/* Every option must reach some listed loss; 0 or the exit code. */
static int lp_check_options(const lp_plot *p, const cJSON *options)
{
    for (const cJSON *o = options->child; o; o = o->next) {
        bool used = false;
        for (int k = 0; k < p->n_curves; k++) used |= ll_takes_opt(p->curves[k].loss, (ll_opt_id)ll_find_opt(o->string));
        if (!used) return lp_usage_error("no listed loss takes the option '%s'", o->string);
    }
    return 0;
}

/* The points z over [lo, hi], then each loss's values and gradients, the CSV and the PNG asked for. */
static bool lp_run(lp_plot *p, const cJSON *options, char *err, size_t n)
{
    p->z = malloc((size_t)p->points * sizeof *p->z);
    if (!p->z) {
        snprintf(err, n, "out of memory");
        return false;
    }
    for (int i = 0; i < p->points; i++) p->z[i] = p->lo + (p->hi - p->lo) * i / (p->points - 1);
    return compute(p, options, err, n) && (!p->csv || write_csv(p, err, n)) && (!p->out || write_png(p, err, n));
}

int ll_plot_main(int argc, char **argv)
{
    lp_plot p = {.lo = -8, .hi = 8, .target = 1, .points = 401};
    const char *losses = NULL;
    cJSON *options = cJSON_CreateObject();
    if (!options) {
        fprintf(stderr, "losslab plot: out of memory\n");
        return 1;
    }
    bool help = false;
    int rc = lp_parse_args(argc, argv, &p, &losses, options, &help);
    if (help) {
        fputs(PLOT_USAGE, stdout);
        cJSON_Delete(options);
        return 0;
    }
    if (rc == 0 && !losses) rc = lp_usage_error("%s", "--losses NAME[,NAME...] is required");
    if (rc == 0 && !p.out && !p.csv) rc = lp_usage_error("%s", "give --out FILE.png, --csv FILE.csv or both");
    if (rc == 0) rc = lp_add_losses(&p, losses);
    if (rc == 0) rc = lp_check_options(&p, options);
    char err[LL_ERR_LEN] = "";
    if (rc == 0 && !lp_run(&p, options, err, sizeof err)) {
        fprintf(stderr, "losslab plot: %s\n", err);
        rc = 1;
    }
    if (rc == 0) {
        printf("losslab plot: %d loss%s over [%g, %g], %d points, target %g:", p.n_curves, p.n_curves == 1 ? "" : "es",
               p.lo, p.hi, p.points, p.target);
        if (p.out) printf(" %s", p.out);
        if (p.csv) printf(" %s", p.csv);
        printf("\n");
    }
    for (int k = 0; k < p.n_curves; k++) {
        free(p.curves[k].value);
        free(p.curves[k].grad);
    }
    free(p.z);
    cJSON_Delete(options);
    return rc;
}
