/* libgomp's wait policy for tapegrad's programs. Unless told otherwise, libgomp's idle
 * threads spin for about 300000 iterations (milliseconds) at the end of every parallel region
 * before they sleep. On a machine whose cores also run other work, the spinning threads take
 * the cores from the threads still working (ours, or another program's). Measured (UNet step,
 * batch 2, crop 128, 2 threads, a shared machine at load average ~9 on 2 cores): 550-1070 ms
 * with libgomp's default, 225-450 ms with GOMP_SPINCOUNT=1000; alone on the cores (SCHED_FIFO)
 * 1000 costs 2-3% against the default, 0 (passive) 9%.
 * libgomp reads the environment once, in its constructor, before main and before the
 * executable's .preinit_array could change libc's environment (libc sets `environ` after
 * that), so tg_blas_select_kernel sets GOMP_SPINCOUNT and re-executes the program once,
 * together with its OpenBLAS choice (blas_select.c). */
#include "core_internal.h"

#include <stdlib.h>
#include <string.h>

#define TG_DEFAULT_SPINCOUNT "1000"

const char *tg_omp_spincount_wanted(void)
{
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return NULL; /* the user's choice */
    const char *v = getenv("TG_OMP_SPINCOUNT");
    if (v && !strcmp(v, "default")) return NULL; /* libgomp's own default */
    return v && *v ? v : TG_DEFAULT_SPINCOUNT;
}
