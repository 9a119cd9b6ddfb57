/* Issue 13 item 16: under an address-space limit (ulimit -v) too small for what OpenBLAS reserves
 * when it loads (128 MB per OpenMP thread, before main), a tapegrad program spun at 100% CPU
 * forever inside OpenBLAS's allocation retry loop. It now stops at once with a message that says
 * what the limit must be, or how many threads fit, and with that advice it runs. Skipped under
 * AddressSanitizer, which needs terabytes of address space for its shadow memory. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tapegrad.h"
#include "test_support.h"

#if defined(__SANITIZE_ADDRESS__)
#define TG_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TG_ASAN 1
#endif
#endif

static int run_limited(long limit_kb, int threads, char *out, size_t n)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "ulimit -v %ld && OMP_NUM_THREADS=%d timeout 30 %s/toyfit --steps 1", limit_kb, threads,
             TG_BIN_DIR);
    return tgt_run_capture(cmd, out, n);
}

Test(blas_limits, too_small_an_address_space_fails_at_once_with_advice, .timeout = 120)
{
#ifdef TG_ASAN
    cr_skip_test("AddressSanitizer reserves its shadow memory: no run fits under ulimit -v");
#endif
    static char out[1 << 14];
    int rc = run_limited(500000, 8, out, sizeof out); /* 8 threads need about 1.25 GB */
    cr_assert_neq(rc, 124, "the program spun until killed (OpenBLAS's allocation loop)");
    cr_expect_eq(rc, 1, "%s", out);
    cr_expect(strstr(out, "the address-space limit (ulimit -v 500000 KB) is too small to start") != NULL, "%s", out);
    const char *fit = strstr(out, "OMP_NUM_THREADS=");
    cr_assert_not_null(fit, "%s", out);
    int threads = atoi(fit + strlen("OMP_NUM_THREADS="));
    cr_assert(threads >= 1 && threads < 8, "%s", out);
    rc = run_limited(500000, threads, out, sizeof out); /* the advice works */
    cr_expect_neq(rc, 124, "spun with OMP_NUM_THREADS=%d", threads);
    cr_expect(strstr(out, "address-space") == NULL, "%s", out);
    cr_expect(strstr(out, "final: loss") != NULL, "%s", out);
    rc = run_limited(100000, 1, out, sizeof out); /* not even one thread fits */
    cr_expect_eq(rc, 1, "%s", out);
    cr_expect(strstr(out, "Raise the limit (ulimit -v ") != NULL, "%s", out);
}
