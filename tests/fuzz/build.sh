#!/bin/sh
# Builds the libFuzzer targets with clang (Debian: clang, libclang-rt-14-dev;
# `scripts/install-deps --fuzz`).  Called by `make fuzz` with the source and
# build directories; the library is compiled straight into each target so
# that every line of it is instrumented.
#   tests/fuzz/build.sh SRCDIR BUILDDIR
set -eu
src=$1 build=$2
out="$build/tests/fuzz"
mkdir -p "$out"
CC=${FUZZ_CC:-clang}
FLAGS="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
FLAGS="$FLAGS -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -I$src/src -I$build/src -I$build"
LIBSRC=$(ls "$src"/src/*.c "$src"/sensitivity/*.c "$src"/ilp/*.c 2>/dev/null | grep -v '_tmp\.c$' || true)
LIBS="$(pkg-config --libs openblas lapacke libcjson libprotobuf-c) -lglpk -lm -lpthread"
for t in "$src"/tests/fuzz/fuzz_*.c; do
    name=$(basename "$t" .c)
    echo "  CC $out/$name"
    # shellcheck disable=SC2086
    $CC $FLAGS $(pkg-config --cflags openblas lapacke libcjson libprotobuf-c) \
        $LIBSRC "$build/src/onnx.pb-c.c" "$t" $LIBS -o "$out/$name"
done
