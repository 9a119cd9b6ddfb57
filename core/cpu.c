/* The CPU's instruction sets, detected once: the one place that asks the CPU (hand-written kernels
 * pick their variant from it at run time; compiler-made variants use TG_CLONES instead, see
 * ops/fastmath_internal.h). */
#include "core_internal.h"

#include <stdatomic.h>

static tg_cpu_isa detect(void)
{
    tg_cpu_isa c = {0};
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    c.avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    c.avx512f = __builtin_cpu_supports("avx512f");
    c.avx512_skx = c.avx512f && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                   __builtin_cpu_supports("avx512dq");
#endif
    return c;
}

tg_cpu_isa tg_cpu(void)
{
    static atomic_int state; /* 0 not yet, 1 detected */
    static tg_cpu_isa cached;
    if (!atomic_load_explicit(&state, memory_order_acquire)) {
        cached = detect(); /* idempotent: two threads racing here store the same values */
        atomic_store_explicit(&state, 1, memory_order_release);
    }
    return cached;
}
