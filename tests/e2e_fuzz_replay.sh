#!/bin/sh
# Replays the fuzz seed corpora and every regression input through the fuzz
# targets (built without libFuzzer): none may crash or fail a sanitizer.
. "$SRCDIR/tests/lib.sh"
B=$(dirname "$BITPLAN")/tests/fuzz
for t in onnx npy sens plan profile ckpt; do
    case $t in
        onnx) seeds="$EX $TD/onnx $TD/crafted $TD/zoo $TD/qzoo" ;;
        npy) seeds="$TD/npy $TD/crafted" ;;
        *) seeds="$SRCDIR/tests/fuzz/seeds/$t" ;;
    esac
    # shellcheck disable=SC2086
    if out=$("$B/replay_$t" $seeds "$SRCDIR/tests/fuzz/regress/$t" 2>&1); then
        pass "fuzz_$t: $out"
    else
        fail "fuzz_$t: $out"
    fi
done
finish
