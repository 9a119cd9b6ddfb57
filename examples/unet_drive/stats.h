/* Small-sample statistics for unet_drive's multi-seed report: mean and sample standard
 * deviation, Student's t quantiles, and the paired t interval of a difference over seeds.
 * No allocation; nothing to free. */
#ifndef UNET_STATS_H
#define UNET_STATS_H

#include <stdbool.h>

/* Mean of x[0..n) (NaN if n < 1) and sample standard deviation (divisor n - 1; NaN if n < 2). */
double unet_mean(const double *x, int n);
double unet_sample_std(const double *x, int n);

/* P(T <= t) for Student's t with df > 0 degrees of freedom (df need not be whole). */
double unet_t_cdf(double t, double df);
/* The p-quantile of Student's t with df > 0 degrees of freedom, 0 < p < 1 (NaN otherwise);
 * |error| < 1e-9. unet_t_quantile(0.975, 2) = 4.302653. */
double unet_t_quantile(double p, double df);

typedef struct {
    int n;              /* pairs used */
    double mean;        /* mean of b[i] - a[i] */
    double std;         /* sample std of the differences (NaN if n < 2) */
    double lo, hi;      /* two-sided interval at `level` (NaN if n < 2) */
} unet_paired;

/* The paired difference b - a over n pairs and its t interval (level e.g. 0.95):
 *   mean(d) -/+ t_{(1+level)/2, n-1} * std(d) / sqrt(n). */
unet_paired unet_paired_diff(const double *a, const double *b, int n, double level);

/* One line reading an interval of b - a, e.g. "softmax higher by 0.0120 (95% CI 0.0031 to 0.0209)"
 * or "no difference detectable with 3 seeds (95% CI -0.0100 to 0.0080)". name_a/name_b name the
 * two sides; written into buf (size bytes). */
void unet_paired_reading(const unet_paired *p, const char *name_a, const char *name_b, double level, char *buf,
                         int size);

#endif
