/* OpenBLAS on generic kernels: programs that never call tg_blas_select_kernel (a library's
 * users) get one line on stderr at the first BLAS-backed op, saying how to fix it; the
 * decision and its wording (tg_blas_warning_text). tests/consumer/run.sh checks the line
 * end to end (OPENBLAS_CORETYPE=Prescott). Also the version: header and library agree. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <string.h>

#include "core/core_internal.h"
#include "tapegrad.h"

Test(blas_warning, generic_kernels_on_avx_cpus)
{
    char buf[400];
    const char *w = tg_blas_warning_text("Prescott", true, true, NULL, buf, sizeof buf);
    cr_assert_not_null(w);
    cr_expect_eq(w, buf);
    cr_expect_null(strchr(w, '\n'), "one line: %s", w);
    cr_expect(strstr(w, "'Prescott'") && strstr(w, "AVX-512") && strstr(w, "OPENBLAS_CORETYPE=SkylakeX") &&
                  strstr(w, "tg_blas_select_kernel") && strstr(w, "TG_BLAS_AUTO=0"),
              "%s", w);
    w = tg_blas_warning_text("Sandybridge", false, true, "1", buf, sizeof buf);
    cr_assert_not_null(w);
    cr_expect(strstr(w, "AVX2/FMA") && strstr(w, "OPENBLAS_CORETYPE=Haswell"), "%s", w);
}

Test(blas_warning, none_when_the_kernels_fit_or_the_user_opted_out)
{
    char buf[400];
    cr_expect_null(tg_blas_warning_text("SkylakeX", true, true, NULL, buf, sizeof buf));
    cr_expect_null(tg_blas_warning_text("Haswell", false, true, NULL, buf, sizeof buf));
    cr_expect_null(tg_blas_warning_text("Prescott", false, false, NULL, buf, sizeof buf)); /* no AVX2: right */
    cr_expect_null(tg_blas_warning_text("Prescott", true, true, "0", buf, sizeof buf));    /* TG_BLAS_AUTO=0 */
    cr_expect_null(tg_blas_warning_text(NULL, true, true, NULL, buf, sizeof buf));
    cr_expect_null(tg_blas_warning_text("Prescott", true, true, NULL, NULL, 0));
}

/* On this machine's kernels (whatever OpenBLAS picked) BLAS ops still compute, and the
 * check runs at most once: a second op prints nothing more (stderr captured). */
Test(blas_warning, at_most_once_per_process, .init = cr_redirect_stderr)
{
    tg_tensor *a = tg_tensor_ones(TG_SHAPE(2, 3)), *b = tg_tensor_ones(TG_SHAPE(3, 2));
    for (int i = 0; i < 3; i++) {
        tg_tensor *c = tg_matmul(a, b);
        cr_assert_not_null(c, "%s", tg_last_error());
        cr_expect_float_eq(c->data[0], 3.0f, 0);
    }
    tg_tape_clear();
    fflush(stderr);
    char line[400];
    bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    const char *want = tg_blas_warning_text(tg_blas_core(), avx512, avx2, getenv("TG_BLAS_AUTO"), line, sizeof line);
    char expected[402] = "";
    if (want) snprintf(expected, sizeof expected, "%s\n", want);
    cr_expect_stderr_eq_str(expected);
    tg_tensor_free(a);
    tg_tensor_free(b);
}

Test(version, header_and_library_agree)
{
    char v[32];
    snprintf(v, sizeof v, "%d.%d.%d", TG_VERSION_MAJOR, TG_VERSION_MINOR, TG_VERSION_PATCH);
    cr_expect_str_eq(TG_VERSION_STRING, v);
    cr_expect_str_eq(tg_version(), TG_VERSION_STRING);
}
