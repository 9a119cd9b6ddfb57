/* Kernels compiled for one instruction set inside a file built for the baseline: clang and GCC
 * spell "these functions target ISA" differently. Wrap the functions in
 * TG_TARGET_BEGIN("avx2,fma") ... TG_TARGET_END and call them only when tg_cpu() says so. */
#ifndef TG_ISA_TARGET_H
#define TG_ISA_TARGET_H

#define TG_TARGET_STR(x) #x
#if defined(__clang__)
#define TG_TARGET_BEGIN(isa) \
    _Pragma(TG_TARGET_STR(clang attribute push(__attribute__((target(isa))), apply_to = function)))
#define TG_TARGET_END _Pragma("clang attribute pop")
#else
#define TG_TARGET_BEGIN(isa) _Pragma("GCC push_options") _Pragma(TG_TARGET_STR(GCC target(isa)))
#define TG_TARGET_END _Pragma("GCC pop_options")
#endif

#endif
