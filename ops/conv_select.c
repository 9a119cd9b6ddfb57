/* Which kernel path runs a convolution: the CPU's instruction set, the per-shape choice between
 * the direct 3x3 kernels, im2col + sgemm and oneDNN, and the testing interface that forces one
 * (ops/conv_testing.h). */
#include "../core/core_internal.h"
#include "conv_internal.h"
#include "conv_testing.h"
#include "conv_onednn.h"

#include <string.h>

static tg_conv_path g_path = TG_CONV_PATH_AUTO;
static int g_isa_cap = -1; /* -1: the CPU's best */

tg_conv_isa tg_testing_conv_isa_best(void)
{
    const tg_cpu_isa c = tg_cpu();
    return c.avx512f ? TG_CONV_ISA_AVX512 : c.avx2_fma ? TG_CONV_ISA_AVX2 : TG_CONV_ISA_GENERIC;
}

int tg_conv_isa_active(void) { return g_isa_cap >= 0 ? g_isa_cap : (int)tg_testing_conv_isa_best(); }

bool tg_testing_conv_onednn_built(void) { return tg_conv_onednn_built(); }

bool tg_testing_conv_path(tg_conv_path path, tg_conv_isa isa)
{
    if ((int)isa < TG_CONV_ISA_BEST || (int)isa > TG_CONV_ISA_AVX512 || (int)path < TG_CONV_PATH_AUTO ||
        (int)path > TG_CONV_PATH_ONEDNN) {
        tg_error(TG_ERR_ARG, "tg_testing_conv_path: unknown path %d or instruction set %d", (int)path, (int)isa);
        return false;
    }
    if (isa > tg_testing_conv_isa_best()) {
        tg_error(TG_ERR_ARG, "tg_testing_conv_path: this CPU does not run %s (best: %s)", tg_testing_conv_isa_name(isa),
                 tg_testing_conv_isa_name(tg_testing_conv_isa_best()));
        return false;
    }
    if (path == TG_CONV_PATH_ONEDNN && !tg_conv_onednn_built()) {
        tg_error(TG_ERR_ARG, "tg_testing_conv_path: this build has no oneDNN (configure with libdnnl-dev installed)");
        return false;
    }
    g_path = path;
    g_isa_cap = isa == TG_CONV_ISA_BEST ? -1 : (int)isa;
    if (isa != TG_CONV_ISA_BEST && isa < TG_CONV_ISA_AVX512) tg_conv_onednn_cap_isa(isa);
    return true;
}

static const char *const PATH_NAMES[] = {"auto", "direct", "im2col", "onednn"};
static const char *const ISA_NAMES[] = {"generic", "avx2", "avx512"};

const char *tg_testing_conv_path_name(tg_conv_path path)
{
    return (int)path >= 0 && (int)path <= TG_CONV_PATH_ONEDNN ? PATH_NAMES[path] : "?";
}

const char *tg_testing_conv_isa_name(tg_conv_isa isa)
{
    return isa == TG_CONV_ISA_BEST ? "best" : (int)isa >= 0 && (int)isa <= TG_CONV_ISA_AVX512 ? ISA_NAMES[isa] : "?";
}

bool tg_testing_conv_path_parse(const char *s, tg_conv_path *path)
{
    for (int i = 0; s && i <= TG_CONV_PATH_ONEDNN; i++)
        if (!strcmp(s, PATH_NAMES[i])) {
            *path = (tg_conv_path)i;
            return true;
        }
    return false;
}

bool tg_testing_conv_isa_parse(const char *s, tg_conv_isa *isa)
{
    if (s && !strcmp(s, "best")) {
        *isa = TG_CONV_ISA_BEST;
        return true;
    }
    for (int i = 0; s && i <= TG_CONV_ISA_AVX512; i++)
        if (!strcmp(s, ISA_NAMES[i])) {
            *isa = (tg_conv_isa)i;
            return true;
        }
    return false;
}

/* Automatic choice, measured with bench_conv and a per-phase timer (1 thread, CPU time, ms per
 * fwd / dx / dW of the UNet's layers at batch 4) on Zen 4 running AVX2 code (ISA cap avx2,
 * OPENBLAS_CORETYPE=Haswell, oneDNN capped at AVX2):
 *   3->16 @256     direct 6.1 / 12.0 / 12.1    oneDNN 4.4 / 11.1 / 9.8
 *   16->16 @256    direct 16.8 / 24.0 / 29.9   oneDNN 17.4 / 21.7 / 24.0
 *   32->32 @128    direct 17.5 / 19.2 / 26.9   oneDNN 13.0 / 15.8 / 17.8
 *   128->128 @32   direct 17.9 / 18.3 / 25.9   oneDNN 11.5 / 11.6 / 14.7  (im2col 13.0 / 13.1 / 14.2)
 * On AVX2 oneDNN takes the 3x3 layers' weight gradient, and their forward and input gradient from
 * 32 channels on (and below 8 input channels); the direct kernels keep the 8-31 channel layers'.
 * On AVX-512 the direct kernels match or beat oneDNN on every layer (0.96-1.00x of PyTorch against
 * oneDNN's 0.97-1.08x) and keep the results of earlier versions bit for bit. 1x1 and other
 * convolutions stay on im2col + sgemm (oneDNN's 1x1 16->2: 3x slower). */
tg_conv_plan tg_conv_choose(int64_t C, int64_t O, int64_t H, int64_t W, int kh, int kw, bool direct_ok,
                            bool onednn_ok)
{
    (void)H, (void)W, (void)kh, (void)kw;
    if (g_path == TG_CONV_PATH_IM2COL || (g_path == TG_CONV_PATH_DIRECT && !direct_ok) ||
        (g_path == TG_CONV_PATH_ONEDNN && !onednn_ok))
        return (tg_conv_plan){TG_CONV_RUN_IM2COL, TG_CONV_RUN_IM2COL, TG_CONV_RUN_IM2COL};
    if (g_path == TG_CONV_PATH_DIRECT) return (tg_conv_plan){TG_CONV_RUN_DIRECT, TG_CONV_RUN_DIRECT, TG_CONV_RUN_DIRECT};
    if (g_path == TG_CONV_PATH_ONEDNN) return (tg_conv_plan){TG_CONV_RUN_ONEDNN, TG_CONV_RUN_ONEDNN, TG_CONV_RUN_ONEDNN};
    if (!direct_ok) return (tg_conv_plan){TG_CONV_RUN_IM2COL, TG_CONV_RUN_IM2COL, TG_CONV_RUN_IM2COL};
    if (onednn_ok && tg_conv_isa_active() == TG_CONV_ISA_AVX2) {
        const tg_conv_run fd = C >= 8 && (C < 32 || O < 32) ? TG_CONV_RUN_DIRECT : TG_CONV_RUN_ONEDNN;
        return (tg_conv_plan){fd, fd, TG_CONV_RUN_ONEDNN};
    }
    return (tg_conv_plan){TG_CONV_RUN_DIRECT, TG_CONV_RUN_DIRECT, TG_CONV_RUN_DIRECT};
}
