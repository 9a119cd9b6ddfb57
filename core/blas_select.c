/* Picks OpenBLAS's fast kernels for users. Debian's OpenBLAS (DYNAMIC_ARCH)
 * sometimes misdetects a CPU and falls back to its generic "Prescott" kernels
 * (~6x slower sgemm on AVX-512 machines). OpenBLAS reads OPENBLAS_CORETYPE only
 * when it loads, before main, so the fix is to re-execute the program once with
 * the variable set. */
#include "core_internal.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Set once the process has said what it will about the kernels (restart failed, or warned). */
static atomic_bool kernel_checked;

/* Before any shared library's constructor, OpenBLAS's included: refuse an address-space limit
 * under which OpenBLAS would spin at load (blas_limits.c). In this file because every program
 * calls tg_blas_select_kernel, so the linker always keeps it. Executables only: the loader
 * ignores .preinit_array in a shared library (and OpenBLAS, its dependency, loads first). */
void tg_blas_check_address_space(char **envp);
#ifndef TG_SHARED_LIBRARY
static void preinit(int argc, char **argv, char **envp)
{
    (void)argc, (void)argv;
    tg_blas_check_address_space(envp);
}
__attribute__((used, section(".preinit_array"))) static void (*const tg_preinit_entry)(int, char **, char **) = preinit;
#endif

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

static void cpu_features(bool *avx512, bool *avx2_fma)
{
    const tg_cpu_isa c = tg_cpu();
    *avx512 = c.avx512_skx;
    *avx2_fma = c.avx2_fma;
}

bool tg_blas_select_kernel(int argc, char **argv)
{
    (void)argc;
    if (getenv("TG_BLAS_REEXECUTED")) return false; /* never loop */
    const char *want = NULL, *current = tg_blas_core();
    const char *opt = getenv("TG_BLAS_AUTO");
    bool avx512 = false, avx2 = false;
    if (!getenv("OPENBLAS_CORETYPE") && !(opt && !strcmp(opt, "0"))) { /* else the user's choice */
        cpu_features(&avx512, &avx2);
        want = tg_blas_recommended_core(current, avx512, avx2);
    }
    const char *spin = tg_omp_spincount_wanted(); /* omp_policy.c */
    if ((!want && !spin) || !argv || !argv[0]) return false;
    if (want)
        fprintf(stderr,
                "tapegrad: OpenBLAS chose its '%s' kernels on a CPU with %s; restarting with "
                "OPENBLAS_CORETYPE=%s (set OPENBLAS_CORETYPE yourself, or TG_BLAS_AUTO=0, to skip this)\n",
                current, avx512 ? "AVX-512" : "AVX2/FMA", want);
    fflush(NULL);
    if (want) setenv("OPENBLAS_CORETYPE", want, 1);
    if (spin) setenv("GOMP_SPINCOUNT", spin, 1);
    setenv("TG_BLAS_REEXECUTED", "1", 1);
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the slow kernels and libgomp's spinning */
    if (want) unsetenv("OPENBLAS_CORETYPE");
    if (spin) unsetenv("GOMP_SPINCOUNT");
    unsetenv("TG_BLAS_REEXECUTED");
    if (want) {
        fprintf(stderr, "tapegrad: could not restart (%s is unreadable); continuing with '%s'\n", "/proc/self/exe",
                current);
        atomic_store(&kernel_checked, true); /* said so: no second warning at the first BLAS op */
    }
    return false;
}

/* For programs that do not call tg_blas_select_kernel (a library's users): results are
 * the same with any kernel, only slower, so one line on stderr says so and how to fix it. */
const char *tg_blas_warning_text(const char *current, bool has_avx512, bool has_avx2_fma, const char *auto_opt,
                                 char *buf, size_t size)
{
    if (auto_opt && !strcmp(auto_opt, "0")) return NULL; /* TG_BLAS_AUTO=0: the user knows */
    const char *want = tg_blas_recommended_core(current, has_avx512, has_avx2_fma);
    if (!want || !buf || !size) return NULL;
    snprintf(buf, size,
             "tapegrad: OpenBLAS runs its generic '%s' kernels on a CPU with %s (several times slower; results "
             "are correct): set OPENBLAS_CORETYPE=%s or call tg_blas_select_kernel(argc, argv) first in main "
             "(TG_BLAS_AUTO=0 hides this)",
             current, has_avx512 ? "AVX-512" : "AVX2/FMA", want);
    return buf;
}

void tg_blas_check_kernel(void)
{
    if (atomic_load_explicit(&kernel_checked, memory_order_relaxed)) return;
    if (atomic_exchange(&kernel_checked, true)) return; /* another thread got here first */
    bool avx512, avx2;
    cpu_features(&avx512, &avx2);
    char line[400];
    if (tg_blas_warning_text(tg_blas_core(), avx512, avx2, getenv("TG_BLAS_AUTO"), line, sizeof line))
        fprintf(stderr, "%s\n", line);
}
