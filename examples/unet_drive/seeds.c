/* unet_drive's report over several seeds (see seeds.h). */
#include "seeds.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "report.h"
#include "stats.h"

#ifdef TG_HAVE_PLPLOT
#include <plplot.h>
#endif

static const char *const HEADS[2] = {"sigmoid", "softmax"};

bool unet_seeds_parse(const char *s, long long *seeds, int *n)
{
    *n = 0;
    const char *p = s;
    while (*p) {
        if (*n == UNET_MAX_SEEDS || *p < '0' || *p > '9') return false;
        char *end;
        errno = 0;
        const long long v = strtoll(p, &end, 10);
        if (errno || (*end && *end != ',')) return false;
        for (int i = 0; i < *n; i++)
            if (seeds[i] == v) return false;
        seeds[(*n)++] = v;
        p = *end ? end + 1 : end;
        if (*end && !*p) return false; /* trailing comma */
    }
    return *n > 0;
}

void unet_seeds_format(const long long *seeds, int n, char *buf, size_t size)
{
    size_t k = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && k < size; i++) k += (size_t)snprintf(buf + k, size - k, i ? ",%lld" : "%lld", seeds[i]);
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

tg_status unet_seeds_find(const char *out, long long *seeds, int *n)
{
    *n = 0;
    DIR *d = opendir(out);
    if (!d) return tg_error(TG_ERR_IO, "cannot read the directory %s: %s", out, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)) && *n < UNET_MAX_SEEDS) {
        if (strncmp(e->d_name, "seed_", 5) || e->d_name[5] < '0' || e->d_name[5] > '9') continue;
        char *end;
        const long long v = strtoll(e->d_name + 5, &end, 10);
        char path[4200];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", out, e->d_name);
        if (*end || stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) continue;
        seeds[(*n)++] = v;
    }
    closedir(d);
    qsort(seeds, (size_t)*n, sizeof *seeds, cmp_ll);
    if (!*n) return tg_error(TG_ERR_IO, "no seed_S directories in %s", out);
    return TG_OK;
}

bool unet_seeds_present(const char *out)
{
    long long s[UNET_MAX_SEEDS];
    int n;
    bool ok = unet_seeds_find(out, s, &n) == TG_OK;
    tg_clear_error();
    return ok;
}

/* ---- the metrics, from a run's log ---------------------------------------------------------- */

typedef struct {
    const char *label;
    const char *fmt;
    double (*get)(const unet_run *r);
} metric;

#define LAST(field)                                                                                                     \
    static double last_##field(const unet_run *r)                                                                      \
    {                                                                                                                   \
        const unet_epoch *e = unet_run_last_eval(r);                                                                   \
        return e ? e->field : NAN;                                                                                      \
    }
LAST(dice)
LAST(miou)
LAST(global_acc)
LAST(test_loss)
#undef LAST
static double last_vessel_acc(const unet_run *r)
{
    const unet_epoch *e = unet_run_last_eval(r);
    return e ? e->acc[1] : NAN;
}
static double last_vessel_iou(const unet_run *r)
{
    const unet_epoch *e = unet_run_last_eval(r);
    return e ? e->iou[1] : NAN;
}
static double best_dice(const unet_run *r)
{
    const unet_epoch *e = unet_run_best(r);
    return e ? e->dice : NAN;
}
static double train_minutes(const unet_run *r)
{
    double s = 0;
    for (int i = 0; i < r->n_epochs; i++) s += isfinite(r->epochs[i].train_seconds) ? r->epochs[i].train_seconds : 0;
    return s / 60.0;
}
static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static double infer_ms(const unet_run *r) /* median over evaluated epochs */
{
    double v[4096];
    int n = 0;
    for (int i = 0; i < r->n_epochs && n < 4096; i++)
        if (r->epochs[i].evaluated && isfinite(r->epochs[i].infer_ms)) v[n++] = r->epochs[i].infer_ms;
    if (!n) return NAN;
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static const metric METRICS[] = {
    {"final test Dice", "%.4f", last_dice},          {"best test Dice", "%.4f", best_dice},
    {"final mean IoU", "%.4f", last_miou},           {"final global accuracy", "%.4f", last_global_acc},
    {"final vessel accuracy", "%.4f", last_vessel_acc}, {"final vessel IoU", "%.4f", last_vessel_iou},
    {"final test loss", "%.4f", last_test_loss},     {"train time (min)", "%.2f", train_minutes},
    {"inference ms/test image", "%.0f", infer_ms},
};
enum { N_METRICS = sizeof METRICS / sizeof *METRICS };

/* ---- report.md ------------------------------------------------------------------------------- */

typedef struct {
    int n;
    const long long *seeds;
    unet_run (*runs)[2];
    bool (*have)[2];
} seed_runs;

static void cell(char *buf, size_t size, const char *fmt, double v)
{
    if (isfinite(v)) snprintf(buf, size, fmt, v);
    else snprintf(buf, size, "-");
}

/* mean ± std of a metric over the seeds that have head h. */
static void mean_std_cell(const seed_runs *s, int m, int h, char *buf, size_t size)
{
    double v[UNET_MAX_SEEDS];
    int k = 0;
    for (int i = 0; i < s->n; i++)
        if (s->have[i][h] && isfinite(METRICS[m].get(&s->runs[i][h]))) v[k++] = METRICS[m].get(&s->runs[i][h]);
    if (!k) {
        snprintf(buf, size, "-");
        return;
    }
    char a[32], b[32];
    cell(a, sizeof a, METRICS[m].fmt, unet_mean(v, k));
    if (k < 2) snprintf(buf, size, "%s (1 seed)", a);
    else {
        cell(b, sizeof b, METRICS[m].fmt, unet_sample_std(v, k));
        snprintf(buf, size, "%s ± %s", a, b);
    }
}

static unet_paired paired(const seed_runs *s, int m)
{
    double a[UNET_MAX_SEEDS], b[UNET_MAX_SEEDS];
    int k = 0;
    for (int i = 0; i < s->n; i++) {
        if (!s->have[i][0] || !s->have[i][1]) continue;
        const double x = METRICS[m].get(&s->runs[i][0]), y = METRICS[m].get(&s->runs[i][1]);
        if (isfinite(x) && isfinite(y)) a[k] = x, b[k] = y, k++;
    }
    return unet_paired_diff(a, b, k, 0.95);
}

static void write_tables(FILE *f, const seed_runs *s, const unet_run *r0)
{
    char seeds[UNET_MAX_SEEDS * 21 + 8];
    unet_seeds_format(s->seeds, s->n, seeds, sizeof seeds);
    fprintf(f, "# UNet: 1 channel + sigmoid + BCE vs 2 channels + softmax + CE over %d seed%s\n\n", s->n,
            s->n == 1 ? "" : "s");
    fprintf(f,
            "Reference UNet (bilinear), base width %d, crop %d, batch %d, %d epochs; seeds %s. For every seed both "
            "heads see the same batches and start from the same weights in every layer but the last; the seeds "
            "differ in the initial weights and the data order. Values are the final epoch's test metrics. "
            "Trained with %s.\n\n",
            r0->base_c, r0->crop, r0->batch, r0->epochs_planned, seeds, r0->framework[0] ? r0->framework : "tapegrad");
    if (r0->norm_mean[0])
        fprintf(f, "Input normalisation (on values in [0, 1]): mean %s, std %s.\n\n", r0->norm_mean, r0->norm_std);

    fprintf(f, "## Each seed\n\n| seed | head |");
    for (int m = 0; m < N_METRICS; m++) fprintf(f, " %s |", METRICS[m].label);
    fprintf(f, "\n|---|---|");
    for (int m = 0; m < N_METRICS; m++) fprintf(f, "---|");
    fprintf(f, "\n");
    for (int i = 0; i < s->n; i++)
        for (int h = 0; h < 2; h++) {
            if (!s->have[i][h]) continue;
            fprintf(f, "| %lld | %s |", s->seeds[i], HEADS[h]);
            for (int m = 0; m < N_METRICS; m++) {
                char c[32];
                cell(c, sizeof c, METRICS[m].fmt, METRICS[m].get(&s->runs[i][h]));
                fprintf(f, " %s |", c);
            }
            fprintf(f, "\n");
        }

    fprintf(f, "\n## Over the seeds\n\nmean ± sample standard deviation per head; the paired difference "
               "softmax − sigmoid (per seed, then its mean) with a 95%% Student t interval over the seeds.\n\n");
    fprintf(f, "| metric | sigmoid (mean ± std) | softmax (mean ± std) | softmax − sigmoid [95%% CI] | reading |\n");
    fprintf(f, "|---|---|---|---|---|\n");
    for (int m = 0; m < N_METRICS; m++) {
        char a[96], b[96], d[128], reading[160];
        mean_std_cell(s, m, 0, a, sizeof a);
        mean_std_cell(s, m, 1, b, sizeof b);
        const unet_paired p = paired(s, m);
        if (p.n >= 2) {
            char x[32], lo[32], hi[32];
            cell(x, sizeof x, "%+.4f", p.mean);
            cell(lo, sizeof lo, "%.4f", p.lo);
            cell(hi, sizeof hi, "%.4f", p.hi);
            snprintf(d, sizeof d, "%s [%s, %s]", x, lo, hi);
        } else if (p.n == 1) {
            cell(d, sizeof d, "%+.4f", p.mean);
        } else {
            snprintf(d, sizeof d, "-");
        }
        if (p.n >= 1) unet_paired_reading(&p, "sigmoid", "softmax", 0.95, reading, sizeof reading);
        else snprintf(reading, sizeof reading, "needs both heads");
        fprintf(f, "| %s | %s | %s | %s | %s |\n", METRICS[m].label, a, b, d, reading);
    }
    const unet_paired dice = paired(s, 0);
    char line[160];
    unet_paired_reading(&dice, "sigmoid", "softmax", 0.95, line, sizeof line);
    fprintf(f, "\n**Final test Dice: %s.**\n", dice.n ? line : "needs both heads");
}

/* ---- curves.png: mean curves with a ±1 std band per head ---------------------------------- */

#ifdef TG_HAVE_PLPLOT
/* Per epoch 1..max: mean and std over the seeds of the loss (dice false) or Dice; n 0 where none. */
static int curve(const seed_runs *s, int h, bool dice, double *x, double *mean, double *sd)
{
    int m = 0;
    for (int epoch = 1; epoch <= 4096; epoch++) {
        double v[UNET_MAX_SEEDS];
        int k = 0;
        bool any_later = false;
        for (int i = 0; i < s->n; i++) {
            if (!s->have[i][h]) continue;
            const unet_run *r = &s->runs[i][h];
            for (int j = 0; j < r->n_epochs; j++) {
                const unet_epoch *e = &r->epochs[j];
                if (e->epoch >= epoch) any_later = true;
                if (e->epoch != epoch) continue;
                const double val = dice ? (e->evaluated ? e->dice : NAN) : e->train_loss;
                if (isfinite(val)) v[k++] = val;
            }
        }
        if (!any_later) break;
        if (!k) continue;
        x[m] = epoch;
        mean[m] = unet_mean(v, k);
        sd[m] = k > 1 ? unet_sample_std(v, k) : 0;
        m++;
    }
    return m;
}

static void band_panel(const seed_runs *s, bool dice)
{
    static double x[2][4096], mean[2][4096], sd[2][4096];
    int m[2];
    double xmax = 1, ymin = INFINITY, ymax = -INFINITY;
    for (int h = 0; h < 2; h++) {
        m[h] = curve(s, h, dice, x[h], mean[h], sd[h]);
        for (int i = 0; i < m[h]; i++) {
            if (x[h][i] > xmax) xmax = x[h][i];
            if (mean[h][i] - sd[h][i] < ymin) ymin = mean[h][i] - sd[h][i];
            if (mean[h][i] + sd[h][i] > ymax) ymax = mean[h][i] + sd[h][i];
        }
    }
    if (!(ymin <= ymax)) ymin = 0, ymax = 1;
    const double pad = (ymax - ymin) * 0.08 + 1e-3;
    plcol0(15);
    plenv(0.5, xmax + 0.5, ymin - pad, ymax + pad, 0, 0);
    plcol0(3);
    plbox("g", 0, 0, "g", 0, 0);
    plcol0(15);
    plbox("bcnst", 0, 0, "bcnstv", 0, 0);
    char title[96];
    snprintf(title, sizeof title, "%s, mean ± 1 std over %d seed%s", dice ? "Test Dice" : "Training loss",
             s->n, s->n == 1 ? "" : "s");
    pllab("epoch", dice ? "test Dice (vessel)" : "training loss", title);
    for (int h = 0; h < 2; h++) {
        if (!m[h]) continue;
        PLFLT px[8192], py[8192];
        for (int i = 0; i < m[h]; i++) {
            px[i] = x[h][i], py[i] = mean[h][i] + sd[h][i];
            px[2 * m[h] - 1 - i] = x[h][i], py[2 * m[h] - 1 - i] = mean[h][i] - sd[h][i];
        }
        plcol0(4 + h); /* translucent band */
        if (m[h] > 1) plfill(2 * m[h], px, py);
    }
    for (int h = 0; h < 2; h++) { /* the mean curves over both bands */
        if (!m[h]) continue;
        plcol0(1 + h);
        plwidth(2.0);
        if (m[h] > 1) plline(m[h], x[h], mean[h]);
        plpoin(m[h], x[h], mean[h], 17);
        char label[32];
        snprintf(label, sizeof label, "%s (%d ch)", HEADS[h], h + 1);
        if (dice) plmtex("b", -1.2 - 1.3 * (1 - h), 0.97, 1.0, label);
        else plmtex("t", -1.5 - 1.3 * h, 0.97, 1.0, label);
    }
    plwidth(1.0);
}

#endif

#ifdef TG_HAVE_PLPLOT
static void bands_panel(const void *ctx, bool dice) { band_panel(ctx, dice); }
#else
static void bands_panel(const void *ctx, bool dice) { (void)ctx, (void)dice; }
#endif

static tg_status plot_bands(const char *path, const seed_runs *s) { return unet_plot_panels(path, bands_panel, s); }

tg_status unet_seeds_report(const char *out, const long long *seeds, int n)
{
    if (n < 1 || n > UNET_MAX_SEEDS) return tg_error(TG_ERR_ARG, "unet_seeds_report: %d seeds", n);
    unet_run runs[UNET_MAX_SEEDS][2];
    bool have[UNET_MAX_SEEDS][2];
    memset(runs, 0, sizeof runs);
    memset(have, 0, sizeof have);
    tg_status st = TG_OK;
    const unet_run *r0 = NULL;
    for (int i = 0; i < n && st == TG_OK; i++)
        for (int h = 0; h < 2 && st == TG_OK; h++) {
            char path[4200];
            struct stat sb;
            snprintf(path, sizeof path, "%s/seed_%lld/%s/log.jsonl", out, seeds[i], HEADS[h]);
            if (stat(path, &sb) != 0) continue;
            if ((st = unet_run_load(path, &runs[i][h])) == TG_OK) {
                have[i][h] = true;
                if (!r0) r0 = &runs[i][h];
            }
        }
    if (st == TG_OK && !r0) st = tg_error(TG_ERR_IO, "no logs in %s/seed_S/sigmoid or .../softmax: train first", out);
    if (st == TG_OK) {
        const seed_runs s = {n, seeds, runs, have};
        char path[4200], tmp[4220];
        snprintf(path, sizeof path, "%s/report.md", out);
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        FILE *md = fopen(tmp, "w");
        if (!md) st = tg_error(TG_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
        else {
            write_tables(md, &s, r0);
            fprintf(md, "\nFigures: curves.png (training loss and test Dice per epoch: mean over the seeds, band ± 1 "
                        "std); overlay_NN.png (the first seed's best checkpoints). Per-epoch values and checkpoints: "
                        "seed_S/<head>/log.jsonl, last.safetensors, best.safetensors.\n");
            bool ok = !ferror(md);
            ok &= fclose(md) == 0;
            if (!ok || rename(tmp, path) != 0) {
                remove(tmp);
                st = tg_error(TG_ERR_IO, "cannot write %s: %s", path, strerror(errno));
            }
        }
        if (st == TG_OK) {
            write_tables(stdout, &s, r0);
            snprintf(path, sizeof path, "%s/curves.png", out);
            if (plot_bands(path, &s) == TG_OK) printf("\ncurves: %s\n", path);
            else fprintf(stderr, "unet_drive: no curves.png: %s\n", tg_last_error());
        }
    }
    for (int i = 0; i < n; i++)
        for (int h = 0; h < 2; h++) unet_run_free(&runs[i][h]);
    return st;
}
