/* Which kernel path runs a convolution: the CPU's instruction set, the per-shape choice between
 * the direct 3x3 kernels, im2col + sgemm and oneDNN, and the testing interface that forces one
 * (ops/conv_testing.h). */
#include "../core/core_internal.h"
#include "conv_internal.h"
#include "conv_testing.h"
#include "conv_onednn.h"

#include <stdio.h>
#include <stdlib.h>
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

bool tg_testing_conv_winograd_ok(void) { return tg_conv_onednn_winograd_ok(); }

void tg_testing_conv_forget_primitives(void) { tg_conv_onednn_forget(); }

bool tg_testing_conv_path(tg_conv_path path, tg_conv_isa isa)
{
    if ((int)isa < TG_CONV_ISA_BEST || (int)isa > TG_CONV_ISA_AVX512 || (int)path < TG_CONV_PATH_AUTO ||
        (int)path > TG_CONV_PATH_WINOGRAD_OWN) {
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
    if (path == TG_CONV_PATH_WINOGRAD && (!tg_conv_onednn_winograd_ok() || (isa != TG_CONV_ISA_BEST && isa < TG_CONV_ISA_AVX512))) {
        tg_error(TG_ERR_ARG, "tg_testing_conv_path: Winograd needs oneDNN built, an AVX-512 CPU (F+BW+VL+DQ) and "
                             "oneDNN not capped below AVX-512");
        return false;
    }
    if (path == TG_CONV_PATH_WINOGRAD_OWN && (!tg_conv3x3_winograd_ok() || isa == TG_CONV_ISA_GENERIC)) {
        tg_error(TG_ERR_ARG, "tg_testing_conv_path: tapegrad's Winograd needs an AVX2+FMA CPU and no cap below AVX2");
        return false;
    }
    g_path = path;
    g_isa_cap = isa == TG_CONV_ISA_BEST ? -1 : (int)isa;
    if (isa != TG_CONV_ISA_BEST && isa < TG_CONV_ISA_AVX512) tg_conv_onednn_cap_isa(isa);
    return true;
}

static const char *const PATH_NAMES[] = {"auto", "direct", "im2col", "onednn", "winograd", "winograd-own"};
static const char *const ISA_NAMES[] = {"generic", "avx2", "avx512"};

const char *tg_testing_conv_path_name(tg_conv_path path)
{
    return (int)path >= 0 && (int)path <= TG_CONV_PATH_WINOGRAD_OWN ? PATH_NAMES[path] : "?";
}

const char *tg_testing_conv_isa_name(tg_conv_isa isa)
{
    return isa == TG_CONV_ISA_BEST ? "best" : (int)isa >= 0 && (int)isa <= TG_CONV_ISA_AVX512 ? ISA_NAMES[isa] : "?";
}

bool tg_testing_conv_path_parse(const char *s, tg_conv_path *path)
{
    for (int i = 0; s && i <= TG_CONV_PATH_WINOGRAD_OWN; i++)
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

/* TG_WINOGRAD: -1 AUTO, 0 OFF, 1 ON; read at the first conv2d. */
static int winograd_env(void)
{
    static int v = -2;
    if (v == -2) {
        const char *e = getenv("TG_WINOGRAD");
        v = !e || !*e || !strcmp(e, "AUTO") || !strcmp(e, "auto") ? -1
            : !strcmp(e, "OFF") || !strcmp(e, "off") || !strcmp(e, "0") ? 0
            : !strcmp(e, "ON") || !strcmp(e, "on") || !strcmp(e, "1") ? 1
                                                                        : -3;
        if (v == -3) {
            fprintf(stderr, "tapegrad: TG_WINOGRAD=%s is not AUTO, ON or OFF; using AUTO\n", e);
            v = -1;
        }
    }
    return v;
}

/* Can oneDNN's Winograd take this layer (3x3, stride 1, pad 1, one group: direct_ok) here? */
static bool winograd_fits(int64_t N, int64_t H, int64_t W, bool direct_ok, bool onednn_ok)
{
    return direct_ok && onednn_ok && tg_conv_onednn_winograd_ok() &&
           N * ((H + 3) / 4) * ((W + 3) / 4) < TG_CONV_WINOGRAD_MAX_TILES;
}

/* Is oneDNN's Winograd F(4x4,3x3) (one image per call, ops/conv_onednn.c) faster than the direct
 * AVX-512 kernels for a convolution that sums over K channels into M (forward of a C -> O layer:
 * K = C, M = O; its input gradient: K = O, M = C)? And for the weight (and bias) gradient of a
 * C -> O layer? Measured on Zen 4 (1 thread, CPU time, batch 4, conv2d with its layout reorders,
 * best of 2 alternating rounds x 2), ms direct / Winograd (ratio):
 *   layer C->O @HW   forward             input gradient      weight + bias gradient
 *   3->16 @256       4.5 / 16.2 (3.63)   12.7 / 18.2 (1.44)  10.8 / 12.8 (1.18)
 *   16->16 @256      14.4 / 17.5 (1.21)  17.3 / 20.5 (1.18)  17.1 / 14.1 (0.83)
 *   16->32 @128      7.2 / 7.5 (1.05)    8.0 / 9.0 (1.11)    7.9 / 5.3 (0.67)
 *   32->32 @128      13.3 / 11.2 (0.85)  14.4 / 13.1 (0.91)  13.9 / 8.3 (0.60)
 *   32->64 @64       6.3 / 4.7 (0.73)    6.7 / 5.4 (0.80)    6.7 / 3.4 (0.51)
 *   64->64 @64       12.3 / 6.9 (0.56)   13.0 / 7.9 (0.61)   12.5 / 6.6 (0.53)
 *   128->128 @32     11.7 / 5.8 (0.50)   12.1 / 6.5 (0.54)   12.1 / 5.7 (0.47)
 *   128->128 @16     3.2 / 2.2 (0.70)    3.3 / 2.4 (0.74)    3.4 / 2.5 (0.74)
 *   256->128 @32     23.2 / 11.1 (0.48)  24.0 / 12.1 (0.50)  24.4 / 11.6 (0.47)
 *   64->32 @128      25.0 / 17.2 (0.69)  27.9 / 21.4 (0.77)  25.7 / 15.3 (0.59)
 *   32->16 @128      6.8 / 7.5 (1.10)    8.0 / 8.3 (1.03)    7.3 / 5.3 (0.72)
 *   32->16 @256      27.5 / 27.7 (1.01)  33.0 / 33.2 (1.01)  30.0 / 23.2 (0.77)
 * Forward and input gradient won when both K and M were 32 or more, the weight gradient from 16
 * channels. Our Winograd (below; 16 lanes on AVX-512) has since overtaken it, and it takes their
 * place (same measurement, ms fwd / dx / dW, oneDNN's Winograd against ours):
 *   16->16 @256      16.2 / 19.7 / 14.7 against 8.0 / 14.9 / 13.9
 *   32->32 @128      9.9 / 11.6 / 8.2 against 6.0 / 7.9 / 8.8
 *   64->64 @64       5.9 / 7.5 / 6.3 against 4.6 / 5.3 / 6.3
 *   128->128 @32     6.4 / 6.7 / 5.4 against 4.7 / 5.9 / 5.5
 *   256->64 @32      6.0 / 7.1 / 5.8 against 5.3 / 5.4 / 5.7
 * oneDNN's Winograd stays for TG_WINOGRAD=ON on the layers ours does not take. */

/* Our Winograd (ops/conv_winograd.c, 8 lanes) on an AVX2 machine, against the best of the direct
 * kernels and oneDNN there (1 thread, CPU time, batch 4, ms fwd / dx / dW; Zen 4 running AVX2
 * code, oneDNN capped at AVX2, OPENBLAS_CORETYPE=Haswell):
 *   layer            best other            ours
 *   3->16 @256       4.5 / 9.4 / 7.9       7.3 / 11.0 / 14.1
 *   16->16 @256      16.5 / 19.8 / 20.4    7.4 / 11.0 / 13.6
 *   32->32 @128      12.7 / 16.2 / 16.2    5.8 / 7.3 / 9.7
 *   64->64 @64       11.5 / 12.4 / 14.7    5.0 / 5.4 / 7.2
 *   128->128 @32     11.0 / 11.3 / 13.5    5.8 / 6.1 / 8.1
 *   256->64 @32      11.4 / 11.1 / 13.5    6.6 / 5.9 / 8.7
 * It takes every phase of the layers from 8 channels in and out, on AVX2 and on AVX-512. */
static bool winograd_own_faster(int64_t C, int64_t O)
{
    /* up to 512 x 512 channels (measured to 256 x 128): its transformed kernels take 36 floats per
     * channel pair, 4x the weights (38 MB there) */
    return tg_conv3x3_winograd_ok() && C >= 8 && O >= 8 && C * O <= 512 * 512;
}

/* Automatic choice, measured with bench_conv and a per-phase timer (1 thread, CPU time, ms per
 * fwd / dx / dW of the UNet's layers at batch 4) on Zen 4 running AVX2 code (ISA cap avx2,
 * OPENBLAS_CORETYPE=Haswell, oneDNN capped at AVX2):
 *   3->16 @256     direct 6.1 / 12.0 / 12.1    oneDNN 4.4 / 11.1 / 9.8
 *   16->16 @256    direct 16.8 / 24.0 / 29.9   oneDNN 17.4 / 21.7 / 24.0
 *   32->32 @128    direct 17.5 / 19.2 / 26.9   oneDNN 13.0 / 15.8 / 17.8
 *   128->128 @32   direct 17.9 / 18.3 / 25.9   oneDNN 11.5 / 11.6 / 14.7  (im2col 13.0 / 13.1 / 14.2)
 * Our Winograd takes the 3x3 layers with 8 or more channels in and out; on AVX2 oneDNN the rest's
 * weight gradient and, below 8 input channels, their forward and input gradient.
 * On AVX-512 the direct kernels match or beat oneDNN's direct ones on every layer (0.96-1.00x of
 * PyTorch against oneDNN's 0.97-1.08x); the Winograd kernels take the phases said above.
 * TG_WINOGRAD=OFF: no Winograd (the results of the versions before it, bit for bit); ON: Winograd
 * on every 3x3 layer one of them takes. 1x1 and other convolutions stay on im2col + sgemm (oneDNN's 1x1 16->2: 3x slower). */
tg_conv_plan tg_conv_choose(int64_t N, int64_t C, int64_t O, int64_t H, int64_t W, int kh, int kw, bool direct_ok,
                            bool onednn_ok)
{
    (void)kh, (void)kw;
    if (g_path == TG_CONV_PATH_WINOGRAD_OWN) {
        const tg_conv_run r = direct_ok ? TG_CONV_RUN_WINOGRAD_OWN : TG_CONV_RUN_IM2COL;
        return (tg_conv_plan){r, r, r};
    }
    if (g_path == TG_CONV_PATH_WINOGRAD) {
        if (!direct_ok) return (tg_conv_plan){TG_CONV_RUN_IM2COL, TG_CONV_RUN_IM2COL, TG_CONV_RUN_IM2COL};
        const tg_conv_run r = winograd_fits(N, H, W, direct_ok, onednn_ok) ? TG_CONV_RUN_WINOGRAD : TG_CONV_RUN_DIRECT;
        return (tg_conv_plan){r, r, r};
    }
    if (g_path == TG_CONV_PATH_IM2COL || (g_path == TG_CONV_PATH_DIRECT && !direct_ok) ||
        (g_path == TG_CONV_PATH_ONEDNN && !onednn_ok))
        return (tg_conv_plan){TG_CONV_RUN_IM2COL, TG_CONV_RUN_IM2COL, TG_CONV_RUN_IM2COL};
    if (g_path == TG_CONV_PATH_DIRECT) return (tg_conv_plan){TG_CONV_RUN_DIRECT, TG_CONV_RUN_DIRECT, TG_CONV_RUN_DIRECT};
    if (g_path == TG_CONV_PATH_ONEDNN) return (tg_conv_plan){TG_CONV_RUN_ONEDNN, TG_CONV_RUN_ONEDNN, TG_CONV_RUN_ONEDNN};
    if (!direct_ok) return (tg_conv_plan){TG_CONV_RUN_IM2COL, TG_CONV_RUN_IM2COL, TG_CONV_RUN_IM2COL};
    const int env = winograd_env();
    if (env != 0 && tg_conv_isa_active() == TG_CONV_ISA_AVX2 && winograd_own_faster(C, O))
        return (tg_conv_plan){TG_CONV_RUN_WINOGRAD_OWN, TG_CONV_RUN_WINOGRAD_OWN, TG_CONV_RUN_WINOGRAD_OWN};
    if (onednn_ok && tg_conv_isa_active() == TG_CONV_ISA_AVX2) {
        const tg_conv_run fd = C >= 8 && (C < 32 || O < 32) ? TG_CONV_RUN_DIRECT : TG_CONV_RUN_ONEDNN;
        return (tg_conv_plan){fd, fd, TG_CONV_RUN_ONEDNN};
    }
    tg_conv_plan p = {TG_CONV_RUN_DIRECT, TG_CONV_RUN_DIRECT, TG_CONV_RUN_DIRECT};
    if (env != 0 && tg_conv_isa_active() == TG_CONV_ISA_AVX512) {
        if (winograd_own_faster(C, O)) p = (tg_conv_plan){TG_CONV_RUN_WINOGRAD_OWN, TG_CONV_RUN_WINOGRAD_OWN,
                                                           TG_CONV_RUN_WINOGRAD_OWN};
        else if (env == 1 && winograd_fits(N, H, W, direct_ok, onednn_ok))
            p = (tg_conv_plan){TG_CONV_RUN_WINOGRAD, TG_CONV_RUN_WINOGRAD, TG_CONV_RUN_WINOGRAD};
    }
    return p;
}
