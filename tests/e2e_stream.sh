#!/bin/sh
# e2e_stream.sh - `bitplan run` and `sweep --validate` read the data set in
# batches: their figures are byte-identical to those of the whole-set
# implementation they replace (goldens in tests/data/stream/, made by that
# implementation with `--repeat 0`, so no timing), for data sets whose size
# is and is not a multiple of --batch, with and without --calib, labels and
# --samples; and bad data still fails up front with one line.
#   BITPLAN_STREAM_REGEN=DIR writes the goldens into DIR instead.
. "$SRCDIR/tests/lib.sh"
export BITPLAN_PROFILE_PATH="$SRCDIR/profiles"
PL="$TD/plans"
G="$TD/stream"
OUT=${BITPLAN_STREAM_REGEN:-$TMP}

# name, model, plan, data, then the rest of the arguments
run_case() {
    name=$1 model=$2 plan=$3 data=$4
    shift 4
    "$BITPLAN" run "$EX/$model.onnx" --plan "$PL/$plan.json" --data "$EX/$data.npy" \
        --repeat 0 --threads 2 --isa portable --json "$@" >"$TMP/raw" 2>"$TMP/err" ||
        { fail "$name: exit $?: $(head -c 300 "$TMP/err")"; return; }
    # the integer figures do not depend on the instruction set (qexec.h);
    # paths do depend on where the tree is
    sed "s|$EX/|EX/|g" "$TMP/raw" >"$OUT/$name.json"
    [ -n "${BITPLAN_STREAM_REGEN:-}" ] && return
    if cmp -s "$OUT/$name.json" "$G/$name.json"; then
        pass "$name: --json byte-identical to the whole-set run"
    elif d=$(same_figures "$G/$name.json" "$OUT/$name.json" "$FLOATY"); then
        pass "$name: --json equal to the whole-set run (float figures to 1e-4)"
    else
        fail "$name: --json differs: $d"
    fi
}

# figures that pass through the float executor (OpenBLAS's kernel for this
# CPU): the goldens' last digits are those of the machine that made them
FLOATY=float_loss,int_loss,sqnr_db
Y="--labels $EX/digits_test_y.npy"
# 500 samples: batch 64 leaves 52, batch 100 divides it, batch 7 leaves 3
run_case cnn_w8a8_b64 cnn cnn_w8a8 digits_test_x $Y --calib "$EX/digits_calib_x.npy"
run_case cnn_mixed_b100 cnn cnn_mixed digits_test_x $Y --calib "$EX/digits_calib_x.npy" --batch 100
run_case cnn_w4a8_b7 cnn cnn_w4a8 digits_test_x $Y --calib "$EX/digits_calib_x.npy" --batch 7
run_case cnn_w8a8_nocalib cnn cnn_w8a8 digits_test_x $Y --batch 33
run_case cnn_mixed_samples cnn cnn_mixed digits_test_x $Y --samples 77 --batch 10 --calib-samples 50
run_case cnn_w8a8_nolabels cnn cnn_w8a8 digits_test_x --calib "$EX/digits_calib_x.npy" --batch 64
run_case cnn_w8a8_onebatch cnn cnn_w8a8 digits_test_x $Y --batch 1000 --calib-method minmax
run_case mlp_w4a4_b64 mlp mlp_w4a4 digits_test_flat $Y --calib "$EX/digits_calib_flat.npy"
run_case mlp_w8a8_b9 mlp mlp_w8a8 digits_test_flat $Y --batch 9 --calib-method percentile

# sweep --validate shares the data path: pareto.csv (measured columns) as before
if "$BITPLAN" sweep "$EX/cnn.onnx" --sensitivity "$TD/ilp/cnn_sens.json" --profile bops \
        --axis size --points 4 --validate --repeat 0 --data "$EX/digits_test_x.npy" $Y \
        --calib "$EX/digits_calib_x.npy" -o "$TMP/sw" >/dev/null 2>"$TMP/err"; then
    if [ -n "${BITPLAN_STREAM_REGEN:-}" ]; then
        cp "$TMP/sw/pareto.csv" "$OUT/sweep_pareto.csv"
    elif cmp -s "$TMP/sw/pareto.csv" "$G/sweep_pareto.csv"; then
        pass "sweep --validate: pareto.csv byte-identical"
    elif d=$(same_figures "$G/sweep_pareto.csv" "$TMP/sw/pareto.csv" "$FLOATY"); then
        pass "sweep --validate: pareto.csv equal (float figures to 1e-4)"
    else
        fail "sweep --validate: pareto.csv differs: $d"
    fi
else
    fail "sweep --validate: $(head -c 300 "$TMP/err")"
fi
[ -n "${BITPLAN_STREAM_REGEN:-}" ] && exit 0

# bad data is refused before any work, in one line
python_free_npy() { # a float32 .npy of shape (N, 1, 8, 8) from digits_test_x's rows
    head -c 128 "$EX/digits_test_x.npy" | sed "s/(500,/($1,/" >"$2"
    tail -c +129 "$EX/digits_test_x.npy" | head -c $(($1 * 256)) >>"$2"
}
python_free_npy 120 "$TMP/x120.npy"
expect_error 2 "digits_test_y.npy: 500 labels for 120 samples" -- \
    "$BITPLAN" run "$EX/cnn.onnx" --plan "$PL/cnn_w8a8.json" --data "$TMP/x120.npy" $Y
finish
