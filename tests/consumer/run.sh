#!/usr/bin/env bash
# tapegrad used from another program, each way the README describes, in nested builds that
# compile only the library (~2-3 minutes on 2 cores). CTest runs it (test "consumer").
#   tests/consumer/run.sh SOURCE_DIR WORK_DIR [SANITIZE]     (SANITIZE 1/ON: skipped, exit 77)
# 1. installed static library + find_package(tapegrad)
# 2. the same install + pkg-config --static with plain cc
# 3. add_subdirectory and FetchContent of the source tree (only library targets in the build)
# 4. BUILD_SHARED_LIBS=ON: SONAME, only tg_/TG_ symbols exported, find_package and pkg-config
# The examples' helpers (examples/common: flag parsing, mkdir -p) are no part of the library:
# neither the static nor the shared library defines them.
# Also: the install tree holds headers under include/tapegrad/ (no *_internal.h), the CMake
# package, tapegrad.pc, and no trace of the source or build paths; a generic OpenBLAS kernel
# on an AVX2/AVX-512 CPU gives one warning line, and the same correct results.
set -euo pipefail
src=$(cd "${1:?source dir}" && pwd)
work=${2:?work dir}
case "${3:-0}" in 1|ON|on|TRUE|true)
  echo "consumer: skipped in the sanitizer build (the nested builds are the normal build's; run there)"
  exit 77 ;;
esac
mkdir -p "$work"
work=$(cd "$work" && pwd)
cc=${CC:-cc}
jobs=2
here="$src/tests/consumer"
lib_only=(-DCMAKE_BUILD_TYPE=Debug -DTG_BUILD_EXAMPLES=OFF -DTG_BUILD_TESTS=OFF -DTG_BUILD_BENCHMARKS=OFF)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
unset PKG_CONFIG_PATH CMAKE_PREFIX_PATH

fail() { echo "consumer: FAILED: $*" >&2; exit 1; }
# step NAME CMD...: runs CMD with its output in $work/NAME.log, shown if it fails.
step() {
  local name=$1; shift
  local t0=$SECONDS
  if ! "$@" >"$work/$name.log" 2>&1; then
    echo "---- $name: $* ----" >&2; tail -n 60 "$work/$name.log" >&2
    fail "$name"
  fi
  echo "consumer: $name ok ($((SECONDS - t0)) s)"
}
# The OpenMP OpenBLAS, when the build used it, is what every program loads (not the default).
openmp_blas=/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)/openblas-openmp
# run_consumer NAME PROGRAM: runs it in its own directory; it checks its own results.
run_consumer() {
  local name=$1 prog=$2 out="$work/out-$1"
  if [ -f "$openmp_blas/pkgconfig/openblas.pc" ]; then
    local loaded; loaded=$(ldd "$prog")
    [[ "$loaded" == *"libopenblas.so.0 => $openmp_blas/"* ]] || fail "$name: loads another OpenBLAS: $loaded"
  fi
  rm -rf "$out"; mkdir -p "$out"
  step "$name" "$prog" "$out"
  grep -q "round trips exact" "$work/$name.log" || fail "$name: no success line"
}
# check_install PREFIX: what an install must and must not hold.
check_install() {
  local p=$1
  for f in include/tapegrad/tapegrad.h include/tapegrad/core/core.h include/tapegrad/core/version.h \
           include/tapegrad/nn/nn.h include/tapegrad/data/data.h include/tapegrad/ops/tensor_ops.h \
           lib/cmake/tapegrad/tapegradConfig.cmake lib/cmake/tapegrad/tapegradConfigVersion.cmake \
           lib/cmake/tapegrad/tapegradTargets.cmake lib/pkgconfig/tapegrad.pc; do
    [ -f "$p/$f" ] || fail "install: $f missing in $p"
  done
  [ -z "$(find "$p" -name '*_internal.h')" ] || fail "install: internal headers installed"
  # nothing of this machine's source or build trees in any installed file (binaries included)
  local hits
  hits=$(grep -rlaF -e "$src" -e "$work" "$p" || true)
  [ -z "$hits" ] || fail "install: build-machine paths in $hits"
  # every installed header compiles on its own, as strict C11
  local h
  for h in $(cd "$p/include/tapegrad" && find . -name '*.h'); do
    echo "#include \"$h\"" | $cc -std=c11 -pedantic -Wall -Wextra -Werror -fsyntax-only -I"$p/include/tapegrad" -x c - ||
      fail "install: $h does not compile alone"
  done
}

echo "consumer: tapegrad from $src, nested builds in $work"
rm -rf "$work"/prefix-* "$work"/app-* "$work"/out-* "$work"/*.log

# ---- 1. static install + find_package ------------------------------------------------
static_prefix="$work/prefix-static"
step lib-static-configure cmake -S "$src" -B "$work/lib-static" "${lib_only[@]}" -DBUILD_SHARED_LIBS=OFF
step lib-static-build cmake --build "$work/lib-static" -j "$jobs"
step lib-static-install cmake --install "$work/lib-static" --prefix "$static_prefix"
[ -f "$static_prefix/lib/libtapegrad.a" ] || fail "no lib/libtapegrad.a in the static install"
[ -z "$(find "$static_prefix" -name 'libtapegrad.so*')" ] || fail "a shared library in the static install"
static_syms=$(nm --defined-only "$static_prefix/lib/libtapegrad.a" 2>/dev/null | awk 'NF == 3 {print $3}')
grep -qx tg_matmul <<<"$static_syms" || fail "nm finds no tg_matmul in the static library"
! grep -Eq '^(tg_)?cli_' <<<"$static_syms" || fail "the static library defines the examples' cli_ helpers (examples/common)"
step check-install-static check_install "$static_prefix"
step app-package-configure cmake -S "$here" -B "$work/app-package" -DTG_CONSUMER_MODE=package \
  -DCMAKE_PREFIX_PATH="$static_prefix" -DCMAKE_BUILD_TYPE=Debug
step app-package-build cmake --build "$work/app-package" -j "$jobs"
run_consumer run-package "$work/app-package/consumer"

# ---- 2. pkg-config with plain cc (static library only: --static) ------------------------
export PKG_CONFIG_PATH="$static_prefix/lib/pkgconfig"
[ "$(pkg-config --modversion tapegrad)" = "$(sed -n 's/^#define TG_VERSION_STRING "\(.*\)"/\1/p' \
    "$static_prefix/include/tapegrad/core/version.h")" ] || fail "tapegrad.pc's version is not the header's"
[[ " $(pkg-config --static --libs tapegrad) " == *" -fopenmp "* ]] || fail "tapegrad.pc: no -fopenmp in the static libs"
step app-pkgconfig-build $cc -std=c11 -o "$work/app-pkgconfig" "$here/consumer.c" \
  $(pkg-config --cflags tapegrad) $(pkg-config --static --libs tapegrad)
run_consumer run-pkgconfig "$work/app-pkgconfig"
# README's example program, compiled as README says (pkg-config), and README's link line
# without pkg-config (Debian x86-64 paths), P standing for the prefix.
readme="$src/README.md"
sed -n '/^<!-- example: app.c -->$/,/^```$/p' "$readme" | sed '1,2d;$d' >"$work/readme_app.c"
[ -s "$work/readme_app.c" ] || fail "README: no example block after <!-- example: app.c -->"
step readme-app-pkgconfig-build $cc -std=c11 -Wall -Wextra -Werror -o "$work/readme-app" "$work/readme_app.c" \
  $(pkg-config --cflags tapegrad) $(pkg-config --libs --static tapegrad)
mkdir -p "$work/out-readme-app"
step readme-app-run bash -c 'cd "$1" && "$2" && [ -s model.safetensors ]' _ "$work/out-readme-app" "$work/readme-app"
if [ -d "$openmp_blas" ] && [ "$openmp_blas" = /usr/lib/x86_64-linux-gnu/openblas-openmp ]; then
  line=$(sed -n '/^cc app.c -o app -IP\/include/,/[^\\]$/p' "$readme" | tr -d '\\\n')
  [ -n "$line" ] || fail "README: no plain link line"
  line=${line//P\//$static_prefix/}
  line=${line/app.c -o app/$work/readme_app.c -o $work/readme-app-plain}
  step readme-link-line bash -c "$line"
  step readme-link-line-run bash -c 'cd "$1" && "$2"' _ "$work/out-readme-app" "$work/readme-app-plain"
fi
unset PKG_CONFIG_PATH

# ---- 3. add_subdirectory and FetchContent: only the library is built -----------------------
for mode in subdirectory fetchcontent; do
  b="$work/app-$mode"
  step "app-$mode-configure" cmake -S "$here" -B "$b" -DTG_CONSUMER_MODE=$mode -DTAPEGRAD_SOURCE_DIR="$src" \
    -DCMAKE_BUILD_TYPE=Debug
  cmake --build "$b" --target help >"$work/app-$mode-targets.log"
  if grep -E '^\.\.\. (test_|bench_|fuzz_|toyfit|mnist|unet_drive|losslab|tg_test_support|tg_examples_common)' \
      "$work/app-$mode-targets.log"; then
    fail "$mode: the consumer's build has tapegrad's examples/tests/benchmarks (above)"
  fi
  grep -q '^\.\.\. tapegrad$' "$work/app-$mode-targets.log" || fail "$mode: no tapegrad target"
  # FetchContent_MakeAvailable is add_subdirectory underneath: configuring it (tapegrad::tapegrad
  # resolved, checked by CMake's generate step) is the part that differs; one build is enough.
  if [ $mode = subdirectory ]; then
    step "app-$mode-build" cmake --build "$b" -j "$jobs"
    run_consumer "run-$mode" "$b/consumer"
  fi
done

# ---- 4. shared library -----------------------------------------------------------------
shared_prefix="$work/prefix-shared"
step lib-shared-configure cmake -S "$src" -B "$work/lib-shared" "${lib_only[@]}" -DBUILD_SHARED_LIBS=ON
step lib-shared-build cmake --build "$work/lib-shared" -j "$jobs"
step lib-shared-install cmake --install "$work/lib-shared" --prefix "$shared_prefix"
so="$shared_prefix/lib/libtapegrad.so"
[ -f "$so.0" ] && [ -L "$so" ] || fail "no libtapegrad.so -> libtapegrad.so.0 in the shared install"
major=$(sed -n 's/^#define TG_VERSION_MAJOR \(.*\)/\1/p' "$shared_prefix/include/tapegrad/core/version.h")
# (outputs captured first: grep -q closing a pipe early would fail the pipeline under pipefail)
dynamic=$(readelf -d "$so")
[[ "$dynamic" == *"(SONAME)"*"[libtapegrad.so.$major]"* ]] || fail "SONAME is not libtapegrad.so.$major"
[[ "$dynamic" != *TEXTREL* ]] || fail "text relocations: objects not built with -fPIC"
exports=$(nm -D --defined-only "$so" | awk '{print $NF}')
others=$(grep -Ev '^(tg_|TG_)' <<<"$exports" || true)
[ -z "$others" ] || fail "the shared library exports non-tg_ symbols: $(echo $others | head -c 300)"
grep -qx tg_matmul <<<"$exports" || fail "tg_matmul is not exported"
! grep -Eq '^(tg_)?cli_' <<<"$exports" || fail "the shared library exports the examples' cli_ helpers (examples/common)"
step check-install-shared check_install "$shared_prefix"
step app-shared-configure cmake -S "$here" -B "$work/app-shared" -DTG_CONSUMER_MODE=package \
  -DCMAKE_PREFIX_PATH="$shared_prefix" -DCMAKE_BUILD_TYPE=Debug
step app-shared-build cmake --build "$work/app-shared" -j "$jobs"
loaded=$(ldd "$work/app-shared/consumer")
[[ "$loaded" == *"libtapegrad.so.$major => $shared_prefix/lib/"* ]] ||
  fail "the find_package program does not load the installed libtapegrad.so.$major: $loaded"
run_consumer run-shared "$work/app-shared/consumer"
export PKG_CONFIG_PATH="$shared_prefix/lib/pkgconfig"
step app-shared-pkgconfig-build $cc -std=c11 -o "$work/app-shared-pkgconfig" "$here/consumer.c" \
  $(pkg-config --cflags --libs tapegrad) -Wl,-rpath,"$shared_prefix/lib"
unset PKG_CONFIG_PATH
run_consumer run-shared-pkgconfig "$work/app-shared-pkgconfig"

# ---- OpenBLAS on generic kernels: same results, one warning line (none with TG_BLAS_AUTO=0) ----
app="$work/app-package/consumer"
step run-generic-kernels env OPENBLAS_CORETYPE=Prescott "$app" "$work/out-run-package"
warnings=$(grep -c "^tapegrad: OpenBLAS runs its generic" "$work/run-generic-kernels.log" || true)
if grep -qE '^flags.* avx2( |$)' /proc/cpuinfo && grep -qE '^flags.* fma( |$)' /proc/cpuinfo; then
  [ "$warnings" = 1 ] || fail "generic kernels on an AVX2 CPU: $warnings warning lines, want 1"
else
  [ "$warnings" = 0 ] || fail "no AVX2 here, yet $warnings warning lines"
fi
step run-generic-kernels-quiet env OPENBLAS_CORETYPE=Prescott TG_BLAS_AUTO=0 "$app" "$work/out-run-package"
! grep -q "^tapegrad:" "$work/run-generic-kernels-quiet.log" || fail "TG_BLAS_AUTO=0 still warns"
echo "consumer: all routes ok"
