/* Thread count (OpenMP and OpenBLAS together), flush-to-zero, BLAS identity. */
#include "core.h"

#include <cblas.h>
#include <omp.h>
#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#define TG_HAVE_MXCSR 1
#else
#define TG_HAVE_MXCSR 0
#endif

static int g_threads = 0;

void tg_set_num_threads(int n)
{
    if (n <= 0) n = omp_get_num_procs();
    g_threads = n;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int tg_get_num_threads(void) { return g_threads > 0 ? g_threads : omp_get_max_threads(); }

bool tg_set_flush_denormal(bool enabled)
{
#if TG_HAVE_MXCSR
    /* MXCSR is per thread: set it here and on every OpenMP worker. */
    const unsigned bits = 0x8040; /* FTZ (bit 15) | DAZ (bit 6) */
#pragma omp parallel
    {
        unsigned csr = _mm_getcsr();
        _mm_setcsr(enabled ? (csr | bits) : (csr & ~bits));
    }
    unsigned csr = _mm_getcsr();
    _mm_setcsr(enabled ? (csr | bits) : (csr & ~bits));
    return true;
#else
    (void)enabled;
    return false;
#endif
}

const char *tg_blas_config(void) { return openblas_get_config(); }

const char *tg_blas_core(void) { return openblas_get_corename(); }
