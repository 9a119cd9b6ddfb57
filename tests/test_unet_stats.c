/* examples/unet_drive/stats.c: Student's t quantiles against the printed table (df 1..30) and
 * closed forms (df 1, 2, 4), the normal limit, sample std, and a paired interval over three
 * seeds computed by hand. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "../examples/unet_drive/stats.c"

/* t_{0.975}(df), df = 1..30, as printed in every statistics table (3 decimals). */
static const double T975[30] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                                2.201,  2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                                2.080,  2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};

Test(unet_stats, t_quantile_matches_the_table)
{
    for (int df = 1; df <= 30; df++) {
        double q = unet_t_quantile(0.975, df);
        cr_expect(fabs(q - T975[df - 1]) <= 5e-4, "t_0.975(%d) = %.6f, table %.3f", df, q, T975[df - 1]);
        cr_expect(fabs(unet_t_quantile(0.025, df) + q) < 1e-12, "symmetry at df %d", df);
    }
    cr_expect(fabs(unet_t_quantile(0.995, 10) - 3.169) <= 5e-4);
    cr_expect(fabs(unet_t_quantile(0.95, 5) - 2.015) <= 5e-4);
    cr_expect(fabs(unet_t_quantile(0.975, 1e7) - 1.959964) < 1e-5, "normal limit");
}

Test(unet_stats, t_quantile_matches_closed_forms)
{
    const double ps[] = {0.6, 0.9, 0.975, 0.995, 0.9995, 0.2};
    for (size_t i = 0; i < sizeof ps / sizeof *ps; i++) {
        const double p = ps[i];
        /* df 1: Cauchy; df 2: (2p-1)/sqrt(2p(1-p)); df 4: 2 sqrt(q-1), q = cos(acos(sqrt(a))/3)/sqrt(a), a = 4p(1-p) */
        const double t1 = tan(M_PI * (p - 0.5)), t2 = (2 * p - 1) / sqrt(2 * p * (1 - p));
        const double a = 4 * p * (1 - p), q = cos(acos(sqrt(a)) / 3) / sqrt(a);
        const double t4 = (p > 0.5 ? 1 : -1) * 2 * sqrt(q - 1);
        cr_expect(fabs(unet_t_quantile(p, 1) - t1) < 1e-8 * (1 + fabs(t1)), "df 1, p %g: %.10f vs %.10f", p,
                  unet_t_quantile(p, 1), t1);
        cr_expect(fabs(unet_t_quantile(p, 2) - t2) < 1e-8, "df 2, p %g: %.10f vs %.10f", p, unet_t_quantile(p, 2), t2);
        cr_expect(fabs(unet_t_quantile(p, 4) - t4) < 1e-8, "df 4, p %g: %.10f vs %.10f", p, unet_t_quantile(p, 4), t4);
    }
    cr_expect(isnan(unet_t_quantile(1.0, 3)));
    cr_expect(isnan(unet_t_quantile(0.9, 0)));
    cr_expect(unet_t_quantile(0.5, 3) == 0.0);
}

Test(unet_stats, mean_and_sample_std)
{
    const double x[] = {2, 4, 4, 4, 5, 5, 7, 9};
    cr_expect(fabs(unet_mean(x, 8) - 5.0) < 1e-15);
    cr_expect(fabs(unet_sample_std(x, 8) - sqrt(32.0 / 7.0)) < 1e-14, "divisor n - 1");
    cr_expect(isnan(unet_sample_std(x, 1)));
    cr_expect(isnan(unet_mean(x, 0)));
}

/* Three seeds; differences softmax - sigmoid 0.01, -0.02, 0.03: mean 1/150, sample std
 * sqrt(0.0012666.../2) = 0.0251661, standard error 0.0145297, t_{0.975}(2) = 4.3026527,
 * half width 0.0625164: 95% CI [-0.0558497, 0.0691830]. */
Test(unet_stats, paired_interval_by_hand)
{
    const double sig[] = {0.80, 0.82, 0.79}, soft[] = {0.81, 0.80, 0.82};
    unet_paired p = unet_paired_diff(sig, soft, 3, 0.95);
    cr_expect_eq(p.n, 3);
    cr_expect(fabs(p.mean - 0.0066667) < 1e-6, "mean %.7f", p.mean);
    cr_expect(fabs(p.std - 0.0251661) < 1e-6, "std %.7f", p.std);
    cr_expect(fabs(p.lo - -0.0558497) < 1e-6, "lo %.7f", p.lo);
    cr_expect(fabs(p.hi - 0.0691830) < 1e-6, "hi %.7f", p.hi);
    char line[160];
    unet_paired_reading(&p, "sigmoid", "softmax", 0.95, line, sizeof line);
    cr_expect_str_eq(line, "no difference detectable with 3 seeds (95% CI -0.0558 to 0.0692)");

    /* a clear win: differences 0.02, 0.03, 0.025 -> mean 0.025, std 0.005, half 4.3026527 * 0.005 / sqrt(3) */
    const double b[] = {0.82, 0.85, 0.815}, a[] = {0.80, 0.82, 0.79};
    p = unet_paired_diff(a, b, 3, 0.95);
    cr_expect(fabs(p.lo - (0.025 - 0.0124207)) < 1e-6 && fabs(p.hi - (0.025 + 0.0124207)) < 1e-6, "%.7f %.7f", p.lo,
              p.hi);
    unet_paired_reading(&p, "sigmoid", "softmax", 0.95, line, sizeof line);
    cr_expect_str_eq(line, "softmax higher by 0.0250 (95% CI 0.0126 to 0.0374)");
    p = unet_paired_diff(b, a, 3, 0.95);
    unet_paired_reading(&p, "sigmoid", "softmax", 0.95, line, sizeof line);
    cr_expect_str_eq(line, "sigmoid higher by 0.0250 (95% CI 0.0126 to 0.0374)");

    p = unet_paired_diff(a, b, 1, 0.95);
    cr_expect(isnan(p.lo) && fabs(p.mean - 0.02) < 1e-12);
    unet_paired_reading(&p, "sigmoid", "softmax", 0.95, line, sizeof line);
    cr_expect_str_eq(line, "no interval with 1 seed (run two or more seeds)");
}
