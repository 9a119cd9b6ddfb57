/* Testing interface of the convolution kernels (tests and benchmarks; not public API, not
 * installed). conv2d picks, per shape and instruction set, among its kernel paths; these calls
 * force one path or cap the instruction set, so a test can run every path this CPU and build
 * support on the same data, and a benchmark can emulate an AVX2-only machine on an AVX-512 one.
 * The setting is process-wide: change it between ops, never while one runs on another thread.
 *
 *   tg_testing_conv_path(TG_CONV_PATH_IM2COL, TG_CONV_ISA_BEST)   every conv2d through im2col + sgemm
 *   tg_testing_conv_path(TG_CONV_PATH_DIRECT, TG_CONV_ISA_AVX2)   3x3 layers on the AVX2 direct kernels
 *   tg_testing_conv_path(TG_CONV_PATH_AUTO, TG_CONV_ISA_AVX2)     what an AVX2-only CPU would run
 *   tg_testing_conv_path(TG_CONV_PATH_WINOGRAD, TG_CONV_ISA_BEST) 3x3 fwd and dx on oneDNN's Winograd
 *   tg_testing_conv_path(TG_CONV_PATH_WINOGRAD_OWN, TG_CONV_ISA_BEST) 3x3 layers on tapegrad's Winograd
 *   tg_testing_conv_path(TG_CONV_PATH_AUTO, TG_CONV_ISA_BEST)     back to normal
 *
 * Outside tests, the environment variable TG_WINOGRAD=AUTO|ON|OFF (read at the first conv2d)
 * steers the automatic choice: AUTO (default) Winograd where it measured faster, ON on every 3x3
 * stride-1 pad-1 layer it can take, OFF never (the results of earlier versions, bit for bit).
 *
 * oneDNN (when built with it) runs at the instruction set of its own setting: the first call
 * with an ISA cap below AVX-512 also caps oneDNN (dnnl_set_max_cpu_isa), which only works before
 * oneDNN's first convolution in the process (or start it with ONEDNN_MAX_CPU_ISA=AVX2). OpenBLAS's
 * kernels are chosen at its start: OPENBLAS_CORETYPE=Haswell emulates an AVX2 machine's sgemm. */
#ifndef TG_CONV_TESTING_H
#define TG_CONV_TESTING_H

#include <stdbool.h>

/* Instruction sets of the direct kernels (the values are ordered: a cap allows those below). */
typedef enum { TG_CONV_ISA_BEST = -1, TG_CONV_ISA_GENERIC = 0, TG_CONV_ISA_AVX2 = 1, TG_CONV_ISA_AVX512 = 2 } tg_conv_isa;

typedef enum {
    TG_CONV_PATH_AUTO,   /* per shape and instruction set, the fastest measured path (ops/conv_select.c) */
    TG_CONV_PATH_DIRECT, /* 3x3 stride-1 pad-1 layers on the direct kernels (ops/conv3x3.c), others im2col */
    TG_CONV_PATH_IM2COL, /* im2col + sgemm for every layer (1x1 stride-1 layers: sgemm on the planes) */
    TG_CONV_PATH_ONEDNN, /* every conv2d through oneDNN (only when built with it) */
    TG_CONV_PATH_WINOGRAD, /* 3x3 stride-1 pad-1 layers: forward and both gradients through oneDNN's
                            * Winograd F(4x4,3x3); others
                            * im2col (only with oneDNN on an AVX-512 CPU, tg_testing_conv_winograd_ok) */
    TG_CONV_PATH_WINOGRAD_OWN, /* 3x3 stride-1 pad-1 layers: forward and both gradients through our
                                 * Winograd F(4x4,3x3) (ops/conv_winograd.c, an AVX2 CPU); others im2col */
} tg_conv_path;

/* Force path and cap the instruction set of the direct kernels (TG_CONV_ISA_BEST: what the CPU
 * has). false, with tg_last_error() set and the setting unchanged, if this CPU lacks the ISA or
 * this build lacks oneDNN. */
bool tg_testing_conv_path(tg_conv_path path, tg_conv_isa isa);
/* The best instruction set this CPU runs, and whether this build has the oneDNN path. */
tg_conv_isa tg_testing_conv_isa_best(void);
bool tg_testing_conv_onednn_built(void);
/* Whether TG_CONV_PATH_WINOGRAD can run: oneDNN built, an AVX-512 (F+BW+VL+DQ) CPU, oneDNN not
 * capped below AVX-512. */
bool tg_testing_conv_winograd_ok(void);
/* Drop oneDNN's primitives that conv2d keeps per shape: the next call creates them again (with
 * the thread count of that moment; a test of thread-count independence needs that). */
void tg_testing_conv_forget_primitives(void);
/* Names for messages and command lines: "auto", "direct", "im2col", "onednn", "winograd", "winograd-own";
 * "best", "generic",
 * "avx2", "avx512". The parsers return false on an unknown name. */
const char *tg_testing_conv_path_name(tg_conv_path path);
const char *tg_testing_conv_isa_name(tg_conv_isa isa);
bool tg_testing_conv_path_parse(const char *s, tg_conv_path *path);
bool tg_testing_conv_isa_parse(const char *s, tg_conv_isa *isa);

#endif
