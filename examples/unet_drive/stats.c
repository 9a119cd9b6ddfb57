/* Small-sample statistics for the multi-seed report (see stats.h). The t distribution's CDF is
 * the regularized incomplete beta function, evaluated by its continued fraction (modified Lentz);
 * quantiles by bisection on the CDF. */
#include "stats.h"

#include <math.h>
#include <stdio.h>

double unet_mean(const double *x, int n)
{
    if (n < 1) return NAN;
    double s = 0;
    for (int i = 0; i < n; i++) s += x[i];
    return s / n;
}

double unet_sample_std(const double *x, int n)
{
    if (n < 2) return NAN;
    const double m = unet_mean(x, n);
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (x[i] - m) * (x[i] - m);
    return sqrt(ss / (n - 1));
}

/* Continued fraction of the incomplete beta function I_x(a, b) (valid for x < (a+1)/(a+b+2)). */
static double beta_cf(double a, double b, double x)
{
    const double tiny = 1e-300, eps = 1e-15;
    double c = 1.0, d = 1.0 - (a + b) * x / (a + 1.0);
    if (fabs(d) < tiny) d = tiny;
    d = 1.0 / d;
    double h = d;
    for (int m = 1; m <= 10000; m++) {
        const double m2 = 2.0 * m;
        double num = m * (b - m) * x / ((a + m2 - 1.0) * (a + m2)); /* even step */
        d = 1.0 + num * d;
        if (fabs(d) < tiny) d = tiny;
        c = 1.0 + num / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1.0 / d;
        h *= d * c;
        num = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0)); /* odd step */
        d = 1.0 + num * d;
        if (fabs(d) < tiny) d = tiny;
        c = 1.0 + num / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1.0 / d;
        const double delta = d * c;
        h *= delta;
        if (fabs(delta - 1.0) < eps) break;
    }
    return h;
}

/* Regularized incomplete beta I_x(a, b), 0 <= x <= 1. */
static double beta_inc(double a, double b, double x)
{
    if (x <= 0) return 0;
    if (x >= 1) return 1;
    const double front = exp(lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x));
    if (x < (a + 1.0) / (a + b + 2.0)) return front * beta_cf(a, b, x) / a;
    return 1.0 - front * beta_cf(b, a, 1.0 - x) / b;
}

double unet_t_cdf(double t, double df)
{
    if (!(df > 0) || isnan(t)) return NAN;
    if (isinf(t)) return t > 0 ? 1.0 : 0.0;
    /* P(|T| > |t|) = I_{df/(df+t^2)}(df/2, 1/2) */
    const double tail = 0.5 * beta_inc(0.5 * df, 0.5, df / (df + t * t));
    return t >= 0 ? 1.0 - tail : tail;
}

double unet_t_quantile(double p, double df)
{
    if (!(p > 0 && p < 1) || !(df > 0)) return NAN;
    if (p == 0.5) return 0.0;
    if (p < 0.5) return -unet_t_quantile(1.0 - p, df);
    double lo = 0, hi = 1;
    while (unet_t_cdf(hi, df) < p && hi < 1e300) hi *= 2; /* df = 1, p = 1 - 1e-12: hi ~ 3e11 */
    for (int i = 0; i < 200 && hi - lo > 1e-12 * (1.0 + hi); i++) {
        const double mid = 0.5 * (lo + hi);
        if (unet_t_cdf(mid, df) < p) lo = mid;
        else hi = mid;
    }
    return 0.5 * (lo + hi);
}

unet_paired unet_paired_diff(const double *a, const double *b, int n, double level)
{
    unet_paired r = {.n = n, .mean = NAN, .std = NAN, .lo = NAN, .hi = NAN};
    if (n < 1 || n > 4096) return r;
    double d[4096];
    for (int i = 0; i < n; i++) d[i] = b[i] - a[i];
    r.mean = unet_mean(d, n);
    if (n < 2) return r;
    r.std = unet_sample_std(d, n);
    const double half = unet_t_quantile(0.5 * (1.0 + level), n - 1) * r.std / sqrt((double)n);
    r.lo = r.mean - half;
    r.hi = r.mean + half;
    return r;
}

void unet_paired_reading(const unet_paired *p, const char *name_a, const char *name_b, double level, char *buf,
                         int size)
{
    const int pct = (int)lround(100 * level);
    if (p->n < 2 || !isfinite(p->lo) || !isfinite(p->hi)) {
        snprintf(buf, (size_t)size, "no interval with %d seed%s (run two or more seeds)", p->n, p->n == 1 ? "" : "s");
        return;
    }
    if (p->lo <= 0 && p->hi >= 0)
        snprintf(buf, (size_t)size, "no difference detectable with %d seeds (%d%% CI %.4f to %.4f)", p->n, pct, p->lo,
                 p->hi);
    else if (p->lo > 0)
        snprintf(buf, (size_t)size, "%s higher by %.4f (%d%% CI %.4f to %.4f)", name_b, p->mean, pct, p->lo, p->hi);
    else
        snprintf(buf, (size_t)size, "%s higher by %.4f (%d%% CI %.4f to %.4f)", name_a, -p->mean, pct, -p->hi, -p->lo);
}
