#!/bin/sh
# Hostile files: tiny inputs claiming huge or impossible shapes fail with
# exit 2 and one line, fast, and without any large allocation.
. "$SRCDIR/tests/lib.sh"
C="$TD/crafted"
LIMIT_KB=51200  # 50 MB peak resident memory

# limited CODE PATTERN -- CMD...: expect_error plus a peak-memory bound
limited() {
    code=$1; pat=$2; shift 3
    if [ -x /usr/bin/time ]; then
        /usr/bin/time -f "%M" -o "$TMP/rss" "$@" >/dev/null 2>"$TMP/err2"
        kb=$(tail -n 1 "$TMP/rss")
        if [ "$kb" -lt "$LIMIT_KB" ]; then
            pass "peak memory ${kb} KB < $LIMIT_KB KB: $*"
        else
            fail "peak memory ${kb} KB >= $LIMIT_KB KB: $*"
        fi
    fi
    expect_error "$code" "$pat" -- "$@"
}

limited 2 "huge_tensor.onnx: initializer 'w' declares 1000000000000 elements but holds 1" -- \
    "$BITPLAN" inspect "$C/huge_tensor.onnx"
limited 2 "overflow_dims.onnx: initializer 'w' has an invalid shape" -- "$BITPLAN" inspect "$C/overflow_dims.onnx"
limited 2 "negative_dim.onnx: initializer 'w' has an invalid shape" -- "$BITPLAN" inspect "$C/negative_dim.onnx"
limited 2 "absurd_rank.onnx: initializer 'w' has rank 40" -- "$BITPLAN" inspect "$C/absurd_rank.onnx"
limited 2 "self_reference.onnx: node 'Relu_0' reads its own output 'y'" -- "$BITPLAN" inspect "$C/self_reference.onnx"
limited 2 "cycle.onnx: node 'Relu_0' is on a cycle" -- "$BITPLAN" inspect "$C/cycle.onnx"
limited 2 "reshape_huge.onnx: node 'Reshape_0' \(Reshape\): cannot reshape 4 elements" -- \
    "$BITPLAN" inspect "$C/reshape_huge.onnx"
limited 2 "input_huge.onnx: graph input 'x' axis 1 has size 1125899906842624" -- \
    "$BITPLAN" inspect "$C/input_huge.onnx"
limited 2 "huge_claim.npy: header declares 1000000000000000 float32 values .* but the file holds 16 bytes" -- \
    "$BITPLAN" eval "$EX/mlp.onnx" --data "$C/huge_claim.npy"
finish
