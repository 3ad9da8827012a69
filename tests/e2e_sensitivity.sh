#!/bin/sh
# e2e_sensitivity.sh - `bitplan sensitivity` end to end: the file's keys,
# byte-identical output for one seed, the density CSV, and every bad input
# (exit 2, one line naming the file, no output file left behind).
# Needs $BITPLAN (the built binary) and $SRCDIR from the environment.
set -u
: "${BITPLAN:?}" "${SRCDIR:?}"
D="$SRCDIR/tests/data/sens"
EX="$SRCDIR/examples"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0

ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

# --- a normal run: keys scripts rely on -------------------------------------
"$BITPLAN" sensitivity "$EX/mlp.onnx" --data "$EX/digits_calib_flat.npy" \
    --labels "$EX/digits_calib_y.npy" -o "$T/mlp.json" 2>"$T/err"
rc=$?
if [ $rc -eq 0 ] && [ -s "$T/mlp.json" ]; then ok "mlp sensitivity runs"; else
    bad "mlp sensitivity exit $rc: $(cat "$T/err")"; fi
for key in '"layers"' '"name"' '"op"' '"numel"' '"trace"' '"mean"' \
    '"stderr"' '"samples"' '"method"' '"top_eigenvalue"' '"value"' \
    '"iterations"' '"perturbation"' '"omega"' '"loss"' '"seed"' '"stop_reason"'; do
    grep -q "$key" "$T/mlp.json" || bad "key $key missing"
done
ok "file has the keys scripts rely on"
for b in 2 3 4 5 6 8; do
    grep -q "\"$b\":[[:space:]]*[0-9]" "$T/mlp.json" || bad "default bits: $b missing"
done
ok "default bits 2,3,4,5,6,8"

# --- determinism: same inputs and seed, byte-identical ------------------------
for s in 1 2; do
    "$BITPLAN" sensitivity "$EX/mlp.onnx" --data "$EX/digits_calib_flat.npy" \
        --labels "$EX/digits_calib_y.npy" --threads 2 --seed 9 \
        -o "$T/m$s.json" 2>/dev/null || bad "mlp run $s failed"
done
cmp -s "$T/m1.json" "$T/m2.json" && ok "mlp defaults, 2 threads, twice: byte-identical" \
    || bad "mlp runs differ"
for s in 1 2; do
    "$BITPLAN" sensitivity "$D/tiny_tanh.onnx" --data "$D/x6.npy" \
        --labels "$D/y6.npy" --trace hutchpp --sketch 4 --tol 0.05 \
        --seed 17 --batch 5 -o "$T/a$s.json" 2>/dev/null || bad "run $s failed"
done
if cmp -s "$T/a1.json" "$T/a2.json"; then ok "seed 17 twice: byte-identical"
else bad "seed 17 twice differs"; fi
"$BITPLAN" sensitivity "$D/tiny_tanh.onnx" --data "$D/x6.npy" \
    --labels "$D/y6.npy" --trace hutchpp --sketch 4 --tol 0.05 --seed 18 \
    --batch 5 -o "$T/b.json" 2>/dev/null
if cmp -s "$T/a1.json" "$T/b.json"; then bad "seeds 17 and 18 agree"
else ok "another seed gives other estimates"; fi
for s in 1 2; do
    "$BITPLAN" sensitivity "$D/tiny_tanh.onnx" --data "$D/x6.npy" \
        --trace hutchinson --scope auto --seed 3 --threads 2 \
        -o "$T/c$s.json" 2>/dev/null || bad "hutchinson run $s failed"
done
cmp -s "$T/c1.json" "$T/c2.json" && ok "hutchinson, no labels: byte-identical" \
    || bad "hutchinson runs differ"
grep -q '"targets":[[:space:]]*"top-1"' "$T/c1.json" && ok "no labels: own top-1 targets" \
    || bad "no labels: targets not recorded"

# --- density -----------------------------------------------------------------------
"$BITPLAN" sensitivity "$D/tiny_tanh.onnx" --data "$D/x6.npy" -o "$T/d.json" \
    --density "$T/d.csv" --density-steps 20 2>/dev/null
head -1 "$T/d.csv" 2>/dev/null | grep -q '^eigenvalue,density$' \
    && [ "$(wc -l < "$T/d.csv")" -eq 1001 ] && ok "density CSV written" \
    || bad "density CSV missing or malformed"

# --- bad input: exit 2, one line, no output ------------------------------------
expect_bad() {
    what=$1
    shift
    rm -f "$T/out.json"
    "$BITPLAN" sensitivity "$@" -o "$T/out.json" >/dev/null 2>"$T/err"
    rc=$?
    lines=$(wc -l < "$T/err")
    if [ $rc -ne 2 ]; then bad "$what: exit $rc, expected 2 ($(cat "$T/err"))"
    elif [ "$lines" -ne 1 ]; then bad "$what: $lines lines on stderr"
    elif [ -e "$T/out.json" ]; then bad "$what: output file left behind"
    elif ls -a "$T" | grep -q '^\.out\.json'; then bad "$what: temporary left"
    else ok "$what: exit 2: $(cat "$T/err")"; fi
}
expect_bad "labels out of range" "$D/tiny_tanh.onnx" --data "$D/x6.npy" \
    --labels "$D/y6_bad.npy"
expect_bad "labels length mismatch" "$D/tiny_tanh.onnx" --data "$D/x6.npy" \
    --labels "$D/y6_short.npy"
expect_bad "NaN in data" "$D/tiny_tanh.onnx" --data "$D/x6_nan.npy"
expect_bad "Inf in data" "$D/tiny_tanh.onnx" --data "$D/x6_inf.npy"
expect_bad "NaN in weights" "$D/nanweight.onnx" --data "$D/x6.npy"
expect_bad "no quantizable layer" "$D/noquant.onnx" --data "$D/x4.npy"
expect_bad "--bits 0" "$D/tiny_tanh.onnx" --data "$D/x6.npy" --bits 0
expect_bad "--bits 17" "$D/tiny_tanh.onnx" --data "$D/x6.npy" --bits 2,17
expect_bad "--bits malformed" "$D/tiny_tanh.onnx" --data "$D/x6.npy" --bits 4,,8
expect_bad "data shape mismatch" "$D/tiny_tanh.onnx" --data "$D/x4.npy"
expect_bad "missing model" "$D/nonexistent.onnx" --data "$D/x6.npy"

# --- no figure depends on the thread count: 500 samples make batches of 256
# and 244, on which OpenBLAS's threaded dgemm ends on other last bits than
# its single-threaded one (BLAS stays on one thread; workers share the rest)
for t in 1 2 3 default; do
    opt="--threads $t"; [ "$t" = default ] && opt=
    "$BITPLAN" sensitivity "$EX/mlp.onnx" --data "$EX/digits_test_flat.npy" \
        --trace hutchpp $opt -o "$T/th_$t.json" 2>/dev/null || bad "threads $t: exit $?"
done
cmp -s "$T/th_1.json" "$T/th_2.json" && cmp -s "$T/th_1.json" "$T/th_3.json" &&
    cmp -s "$T/th_1.json" "$T/th_default.json" &&
    ok "--threads 1, 2, 3 and the default: byte-identical files" ||
    bad "the file depends on --threads"

# --- 200 classes: auto samples the Gauss-Newton traces in the output space;
# a checkpoint taken after that stage resumes to the same bytes
W="$D/tiny_wide.onnx"
if "$BITPLAN" sensitivity "$W" --data "$D/x6.npy" --tol 0.1 --eig none \
        --checkpoint "$T/w.ck" --checkpoint-every 0 -o "$T/w1.json" 2>"$T/err"; then
    n=$(grep -c '"method":[[:space:]]*"gn-hutchinson"' "$T/w1.json")
    [ "$n" = 2 ] && ok "tiny_wide: both layers gn-hutchinson" ||
        bad "tiny_wide: $n gn-hutchinson layers"
    grep -q '"trace":[[:space:]]*"auto"' "$T/w1.json" && ok "settings.trace auto" ||
        bad "settings.trace"
    "$BITPLAN" sensitivity "$W" --data "$D/x6.npy" --tol 0.1 --eig none \
        --resume "$T/w.ck" -o "$T/w2.json" 2>"$T/err2" &&
        cmp -s "$T/w1.json" "$T/w2.json" && ok "gn-hutchinson: resumed file identical" ||
        bad "gn-hutchinson resume: $(cat "$T/err2")"
else
    bad "tiny_wide sensitivity: $(cat "$T/err")"
fi
# --tol that sampling cannot reach in fewer draws than classes: exact traces
"$BITPLAN" sensitivity "$W" --data "$D/x6.npy" --tol 1e-9 --eig none -o "$T/w3.json" 2>/dev/null
"$BITPLAN" sensitivity "$W" --data "$D/x6.npy" --trace exact --eig none -o "$T/w4.json" 2>/dev/null
n=$(grep -c '"method":[[:space:]]*"exact"' "$T/w3.json")
[ "$n" = 2 ] && ok "tiny_wide --tol 1e-9: the pilot falls back to exact traces" ||
    bad "tiny_wide --tol 1e-9: $n exact layers"
# the traces themselves (the lines after "trace") agree to the bit
grep -A1 '"trace":[[:space:]]*{' "$T/w3.json" >"$T/w3.tr"
grep -A1 '"trace":[[:space:]]*{' "$T/w4.json" >"$T/w4.tr"
cmp -s "$T/w3.tr" "$T/w4.tr" && ok "fallback traces equal --trace exact's" ||
    bad "fallback traces differ from --trace exact's"
expect_bad "unknown --trace" "$W" --data "$D/x6.npy" --trace gn

"$BITPLAN" sensitivity --help >/dev/null && ok "--help exits 0" || bad "--help"

if [ $fails -ne 0 ]; then
    echo "$fails check(s) failed"
    exit 1
fi
echo "all sensitivity end-to-end checks passed"
