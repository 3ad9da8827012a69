#!/bin/sh
# Bad input: exit 2, one line naming the file and what was wrong, no output.
. "$SRCDIR/tests/lib.sh"

head -c 3000 "$EX/mlp.onnx" >"$TMP/truncated.onnx"
printf 'this is not an ONNX model\n' >"$TMP/text.onnx"
: >"$TMP/empty.onnx"
D="--data $EX/digits_test_flat.npy"

expect_error 2 'truncated.onnx: not a valid ONNX model' -- "$BITPLAN" eval "$TMP/truncated.onnx" $D
expect_error 2 'text.onnx: not a valid ONNX model' -- "$BITPLAN" inspect "$TMP/text.onnx"
expect_error 2 'empty.onnx: empty file' -- "$BITPLAN" inspect "$TMP/empty.onnx"
expect_error 2 'nonexistent.onnx: cannot open' -- "$BITPLAN" inspect "$TMP/nonexistent.onnx"
expect_error 2 "missing_initializer.onnx: node '/fc1/Gemm' reads 'fc1.weight'" -- \
    "$BITPLAN" eval "$TD/onnx/missing_initializer.onnx" $D
expect_error 2 "unsupported_op.onnx: node '/Relu' has op type 'Mish'" -- \
    "$BITPLAN" eval "$TD/onnx/unsupported_op.onnx" $D
expect_error 2 "external_data.onnx: initializer 'fc1.weight' keeps its data in an external file" -- \
    "$BITPLAN" inspect "$TD/onnx/external_data.onnx"
expect_error 2 "huge_tensor.onnx: initializer 'fc1.weight' declares 1000000000000 elements" -- \
    "$BITPLAN" inspect "$TD/onnx/huge_tensor.onnx"
expect_error 2 "cycle.onnx: node '/Relu' reads its own output" -- "$BITPLAN" inspect "$TD/onnx/cycle.onnx"
expect_error 2 "bad_shape.onnx: node '/fc2/Gemm' \(Gemm\): A has 128 columns but B has 64 rows" -- \
    "$BITPLAN" inspect "$TD/onnx/bad_shape.onnx"

# data that does not fit the model
expect_error 2 'digits_test_x.npy: samples have shape \(500,1,8,8\); model input .input. expects \(500,64\)' -- \
    "$BITPLAN" eval "$EX/mlp.onnx" --data "$EX/digits_test_x.npy"
expect_error 2 'fortran_f64_2x3.npy: Fortran-order' -- \
    "$BITPLAN" eval "$EX/mlp.onnx" --data "$TD/npy/fortran_f64_2x3.npy"
expect_error 2 'digits_calib_y.npy: 256 labels for 500 samples' -- \
    "$BITPLAN" eval "$EX/mlp.onnx" $D --labels "$EX/digits_calib_y.npy" --out "$TMP/never.npy"
[ ! -e "$TMP/never.npy" ] && pass "no output file after a failed eval" || fail "partial output left"
ls -a "$TMP" | grep -q '^\.never' && fail "temporary file left behind" || pass "no temporary file left"
expect_error 2 'labels must be a 1-D integer array' -- \
    "$BITPLAN" eval "$EX/mlp.onnx" $D --labels "$EX/digits_test_flat.npy"
head -c 200 "$EX/digits_test_flat.npy" >"$TMP/short.npy"
expect_error 2 'short.npy: .*' -- "$BITPLAN" eval "$EX/mlp.onnx" --data "$TMP/short.npy"

# integer samples are read as their values (their dtype check once read a
# closed file and crashed); float16 is no dtype bitplan reads; a NaN among
# the samples is refused with the sample named, by every command
{ head -c 128 "$EX/digits_test_flat.npy" | LC_ALL=C sed 's/<f4/<i8/'
  head -c 256000 /dev/zero; } >"$TMP/int64.npy"
"$BITPLAN" eval "$EX/mlp.onnx" --data "$TMP/int64.npy" --json >"$TMP/i64.json" 2>/dev/null &&
    grep -q '"samples":500' "$TMP/i64.json" && pass "int64 samples evaluated" ||
    fail "int64 samples: $(cat "$TMP/i64.json")"
{ head -c 128 "$EX/digits_test_flat.npy" | LC_ALL=C sed 's/<f4/<f2/'
  head -c 64000 /dev/zero; } >"$TMP/f16.npy"
expect_error 2 'f16.npy: .*<f2' -- "$BITPLAN" eval "$EX/mlp.onnx" --data "$TMP/f16.npy"
cp "$EX/digits_test_flat.npy" "$TMP/nan.npy"
printf '\000\000\300\177' | dd of="$TMP/nan.npy" bs=1 seek=$((128 + (3 * 64 + 5) * 4)) \
    conv=notrunc 2>/dev/null
for cmd in eval sensitivity; do
    expect_error 2 'nan.npy: sample 3 holds NaN at element 5; expected finite values' -- \
        "$BITPLAN" $cmd "$EX/mlp.onnx" --data "$TMP/nan.npy" -o "$TMP/never.json"
done
[ ! -e "$TMP/never.json" ] && pass "no output after NaN samples" || fail "output after NaN samples"

# usage errors: one line each, naming the argument
expect_error 2 "run: unknown option '--bogus'" -- "$BITPLAN" run "$EX/mlp.onnx" --bogus
expect_error 2 "eval: option '--data' needs a value" -- "$BITPLAN" eval "$EX/mlp.onnx" --data
expect_error 2 "--max-drop expects a number from 0 to 100, got ''" -- \
    "$BITPLAN" run "$EX/mlp.onnx" --plan x.json $D --labels "$EX/digits_test_y.npy" --max-drop ''
expect_error 2 "--max-drop expects a number from 0 to 100, got '0x1C'" -- \
    "$BITPLAN" run "$EX/mlp.onnx" --plan x.json $D --labels "$EX/digits_test_y.npy" --max-drop 0x1C
expect_error 2 "run: --max-drop needs --labels" -- \
    "$BITPLAN" run "$EX/mlp.onnx" --plan x.json $D --max-drop 1
# a --json result lost to a full disk is no success (the human table on
# stderr comes first)
if [ -w /dev/full ]; then
    "$BITPLAN" inspect "$EX/mlp.onnx" --json >/dev/full 2>"$TMP/err"
    rc=$?
    [ $rc -eq 2 ] && tail -1 "$TMP/err" | grep -q '^bitplan: stdout: cannot write: ' &&
        pass "--json into /dev/full: exit 2, $(tail -1 "$TMP/err")" ||
        fail "--json into /dev/full: exit $rc, $(tail -1 "$TMP/err")"
fi
expect_error 2 'eval: --data is required' -- "$BITPLAN" eval "$EX/mlp.onnx"
expect_error 2 '--batch expects an integer' -- "$BITPLAN" eval "$EX/mlp.onnx" $D --batch 0
expect_error 2 "unknown command 'frobnicate'" -- "$BITPLAN" frobnicate
finish
