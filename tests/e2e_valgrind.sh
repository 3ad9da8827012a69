#!/bin/sh
# valgrind --leak-check=full on the everyday commands over the examples:
# no leak, no invalid access (issue 6).  Skipped (77) without valgrind.
. "$SRCDIR/tests/lib.sh"
command -v valgrind >/dev/null 2>&1 || { echo "valgrind not installed"; exit 77; }
B=$(dirname "$BITPLAN")
# run the real binary, not libtool's wrapper script
REAL="$B/.libs/bitplan"
[ -x "$REAL" ] || REAL="$BITPLAN"
export LD_LIBRARY_PATH="$B/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
VG="valgrind --leak-check=full --show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99 --quiet"

vg() { # vg NAME CMD...: passes when valgrind reports nothing
    name=$1; shift
    # OpenBLAS threads keep allocations alive past exit: one thread under valgrind
    OPENBLAS_NUM_THREADS=1 $VG "$@" >"$TMP/vg.out" 2>"$TMP/vg.err"
    rc=$?
    if [ "$rc" -eq 99 ] || grep -q "==[0-9]*==" "$TMP/vg.err"; then
        fail "$name: valgrind reports errors:"; grep "==" "$TMP/vg.err" | head -30
    elif [ "$rc" -gt 2 ]; then
        fail "$name: exit $rc: $(tail -3 "$TMP/vg.err")"
    else
        pass "$name: valgrind clean (exit $rc)"
    fi
}

vg "solve --sensitivity" "$REAL" solve "$EX/cnn.onnx" --sensitivity "$TD/ilp/cnn_sens.json" \
    --profile nvidia-t4 --budget size=20% --budget latency=99.99% -o "$TMP/plan.json"
vg "solve, unreachable budget" "$REAL" solve --sensitivity "$TD/ilp/cnn_sens.json" \
    --profile bops --budget size=1KiB -o "$TMP/never.json"
vg "solve MODEL --data" "$REAL" solve "$EX/mlp.onnx" --data "$EX/digits_calib_flat.npy" \
    --labels "$EX/digits_calib_y.npy" --samples 64 --profile bops --budget bops=30% -o "$TMP/plan2.json"
vg "eval" "$REAL" eval "$EX/cnn.onnx" --data "$EX/digits_test_x.npy" --samples 64
vg "eval, bad labels" "$REAL" eval "$EX/mlp.onnx" --data "$EX/digits_test_flat.npy" \
    --labels "$EX/digits_calib_y.npy"
if "$BITPLAN" --help | grep -q "^  run "; then
    vg "run" "$REAL" run "$EX/cnn.onnx" --plan "$TMP/plan.json" --data "$EX/digits_test_x.npy" \
        --labels "$EX/digits_test_y.npy" --samples 64 --calib "$EX/digits_calib_x.npy" --repeat 1
    vg "run, streamed batches, calibration from the data, --profile, --out" "$REAL" run \
        "$EX/mlp.onnx" --plan "$SRCDIR/tests/data/plans/mlp_w4a4.json" \
        --data "$EX/digits_test_flat.npy" --labels "$EX/digits_test_y.npy" --samples 37 \
        --batch 10 --calib-samples 15 --repeat 1 --profile "$TD/profiles/fitted.json" \
        --out "$TMP/q.npy"
fi
vg "eval --out, streamed" "$REAL" eval "$EX/cnn.onnx" --data "$EX/digits_test_x.npy" \
    --labels "$EX/digits_test_y.npy" --samples 70 --batch 32 --out "$TMP/o.npy"
vg "sweep --validate, timed (pareto_latency.svg)" "$REAL" sweep "$EX/cnn.onnx" \
    --sensitivity "$TD/ilp/cnn_sens.json" --profile bops --axis size --points 3 --validate \
    --repeat 2 --data "$EX/digits_test_x.npy" --labels "$EX/digits_test_y.npy" --samples 40 \
    -o "$TMP/sw"
vg "solve on a fitted profile" "$REAL" solve "$EX/cnn.onnx" --sensitivity "$TD/ilp/cnn_sens.json" \
    --profile "$TD/profiles/fitted.json" --budget size=50% -o "$TMP/plan3.json"
finish
