#!/bin/sh
# The unit tests once more under AddressSanitizer + UBSan (issue 6): every
# library source and every tests/check_*.c compiled with the sanitizers and
# run, independent of how the main build was configured.  Set
# BP_SKIP_SANITIZERS=1 to skip locally; CI always runs it.
. "$SRCDIR/tests/lib.sh"
if [ "${BP_SKIP_SANITIZERS:-0}" = 1 ]; then
    echo "skipped (BP_SKIP_SANITIZERS=1)"
    exit 77
fi
B=$(dirname "$BITPLAN")
OUT="$B/tests/sanitized"
mkdir -p "$OUT"
CC=${CC:-cc}
FLAGS="-g -O1 -fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=undefined,float-cast-overflow -fno-omit-frame-pointer"
FLAGS="$FLAGS -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -I$SRCDIR/src -I$B/src -I$B"
# ilp/ and sensitivity/ headers, as tests/check_mckp.c includes "mckp.h"
FLAGS="$FLAGS -I$SRCDIR/ilp -I$SRCDIR/sensitivity"
FLAGS="$FLAGS -DBP_SRCDIR=\"$SRCDIR\" $(pkg-config --cflags openblas lapacke libcjson libprotobuf-c check)"
LIBS="$(pkg-config --libs openblas lapacke libcjson libprotobuf-c check) -lglpk -lm -lpthread"
# the library once, as objects shared by every test
objs=""
# (an in-tree build generates onnx.pb-c.c inside src/: the glob skips it and
# the build directory's copy is taken once, last)
for f in "$SRCDIR"/src/*.c "$SRCDIR"/sensitivity/*.c "$SRCDIR"/ilp/*.c GENERATED; do
    case $f in
        GENERATED) f="$B/src/onnx.pb-c.c" ;;
        *_tmp.c|*/onnx.pb-c.c) continue ;;
    esac
    [ -f "$f" ] || continue
    o="$OUT/$(basename "$f" .c).o"
    # rebuilt when the source or any header is newer: a changed struct
    # must never meet a stale object
    if [ ! -f "$o" ] || [ "$f" -nt "$o" ] || [ -n "$(find "$SRCDIR/src" "$SRCDIR/sensitivity" \
            "$SRCDIR/ilp" -name '*.h' -newer "$o" 2>/dev/null | head -1)" ]; then
        # shellcheck disable=SC2086
        $CC $FLAGS -c "$f" -o "$o" || { fail "compile $f"; finish; }
    fi
    objs="$objs $o"
done
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
for t in "$SRCDIR"/tests/check_*.c; do
    name=$(basename "$t" .c)
    # shellcheck disable=SC2086
    if ! $CC $FLAGS "$t" $objs $LIBS -o "$OUT/$name" 2>"$TMP/cc.err"; then
        fail "compile $name: $(head -c 500 "$TMP/cc.err")"
        continue
    fi
    if "$OUT/$name" >"$TMP/$name.log" 2>&1; then
        pass "$name under ASan+UBSan: $(grep -E '^[0-9]+%' "$TMP/$name.log" | tail -1)"
    else
        fail "$name under ASan+UBSan:"
        tail -40 "$TMP/$name.log"
    fi
done
# the fuzz targets replay their seeds and regressions under the sanitizers
for t in "$SRCDIR"/tests/fuzz/fuzz_*.c; do
    name=$(basename "$t" .c); tgt=${name#fuzz_}
    # shellcheck disable=SC2086
    if ! $CC $FLAGS "$SRCDIR/tests/fuzz/driver.c" "$t" $objs $LIBS -o "$OUT/replay_$tgt" 2>"$TMP/cc.err"; then
        fail "compile replay_$tgt: $(head -c 500 "$TMP/cc.err")"
        continue
    fi
    case $tgt in
        onnx) seeds="$EX $TD/onnx $TD/crafted $TD/zoo $TD/qzoo" ;;
        npy) seeds="$TD/npy $TD/crafted" ;;
        *) seeds="$SRCDIR/tests/fuzz/seeds/$tgt" ;;
    esac
    # shellcheck disable=SC2086
    if "$OUT/replay_$tgt" $seeds "$SRCDIR/tests/fuzz/regress/$tgt" >"$TMP/r.log" 2>&1; then
        pass "replay_$tgt under ASan+UBSan: $(tail -1 "$TMP/r.log")"
    else
        fail "replay_$tgt under ASan+UBSan:"
        tail -20 "$TMP/r.log"
    fi
done
finish
