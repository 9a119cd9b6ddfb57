/* Picks OpenBLAS's fast kernels for users. Debian's OpenBLAS (DYNAMIC_ARCH)
 * sometimes misdetects a CPU and falls back to its generic "Prescott" kernels
 * (~6x slower sgemm on AVX-512 machines). OpenBLAS reads OPENBLAS_CORETYPE only
 * when it loads, before main, so the fix is to re-execute the program once with
 * the variable set. */
#include "core.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool in_list(const char *name, const char *const *list)
{
    for (; *list; list++)
        if (!strcasecmp(name, *list)) return true;
    return false;
}

const char *tg_blas_recommended_core(const char *current, bool has_avx512, bool has_avx2_fma)
{
    static const char *const avx512_cores[] = {"SkylakeX", "Cooperlake", "SapphireRapids", NULL};
    static const char *const avx2_cores[] = {"Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids", NULL};
    if (!current) return NULL;
    if (has_avx512 && !in_list(current, avx512_cores)) return "SkylakeX";
    if (!has_avx512 && has_avx2_fma && !in_list(current, avx2_cores)) return "Haswell";
    return NULL;
}

bool tg_blas_select_kernel(int argc, char **argv)
{
    (void)argc;
    if (getenv("OPENBLAS_CORETYPE")) return false; /* the user's choice */
    const char *opt = getenv("TG_BLAS_AUTO");
    if (opt && !strcmp(opt, "0")) return false;
    if (getenv("TG_BLAS_REEXECUTED")) return false; /* never loop */
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    bool avx512 = false, avx2 = false;
#endif
    const char *current = tg_blas_core();
    const char *want = tg_blas_recommended_core(current, avx512, avx2);
    if (!want || !argv || !argv[0]) return false;
    fprintf(stderr,
            "tapegrad: OpenBLAS chose its '%s' kernels on a CPU with %s; restarting with "
            "OPENBLAS_CORETYPE=%s (set OPENBLAS_CORETYPE yourself, or TG_BLAS_AUTO=0, to skip this)\n",
            current, avx512 ? "AVX-512" : "AVX2/FMA", want);
    fflush(NULL);
    setenv("OPENBLAS_CORETYPE", want, 1);
    setenv("TG_BLAS_REEXECUTED", "1", 1);
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the slow kernels */
    unsetenv("OPENBLAS_CORETYPE");
    fprintf(stderr, "tapegrad: could not restart (%s is unreadable); continuing with '%s'\n", "/proc/self/exe",
            current);
    return false;
}
