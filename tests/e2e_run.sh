#!/bin/sh
# e2e_run.sh - `bitplan run` end to end on the bundled examples: the
# all-8-bit plans keep accuracy within 0.5 points, packed bytes match the
# plans' predictions to the byte (the per-graph scales, under 1%, priced
# too), both instruction sets give the same figures, a budget
# exceeded or an accuracy drop over --max-drop exits 1, and bad input (a plan
# for another model, unknown or missing layers, bit-widths the executor
# lacks, data of the wrong shape) exits 2 with one line naming the file;
# `--out` writes the integer logits, identical across ISAs and batches;
# `bitplan profile --measure` writes a table profile.
set -u
: "${BITPLAN:?}" "${SRCDIR:?}"
EX="$SRCDIR/examples"
PL="$SRCDIR/tests/data/plans"
NPYCMP="$(dirname "$BITPLAN")/tests/npycmp"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }

# value of a numeric / boolean JSON key in file $1
jget() { sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" "$1"; }

cnn() { "$BITPLAN" run "$EX/cnn.onnx" --data "$EX/digits_test_x.npy" \
          --labels "$EX/digits_test_y.npy" --calib "$EX/digits_calib_x.npy" "$@"; }
mlp() { "$BITPLAN" run "$EX/mlp.onnx" --data "$EX/digits_test_flat.npy" \
          --labels "$EX/digits_test_y.npy" --calib "$EX/digits_calib_flat.npy" "$@"; }

# --- the all-8-bit plans: accuracy and size ---------------------------------
for m in cnn mlp; do
    if $m --plan "$PL/${m}_w8a8.json" --max-drop 0.5 --repeat 2 --json \
          >"$TMP/$m.json" 2>"$TMP/$m.err"; then
        ok "$m all-8-bit: exit 0 with --max-drop 0.5"
    else
        bad "$m all-8-bit: exit $?"; cat "$TMP/$m.err"
    fi
    for k in float_accuracy int_accuracy float_loss int_loss agreement sqnr_db \
             size_bytes latency_s predicted_latency_s budgets_met; do
        grep -q "\"$k\":" "$TMP/$m.json" || bad "$m: --json lacks $k"
    done
    # no --batch: the automatic batch is the historical 64 for the examples
    # (their activations are far below the 256 MiB bound)
    [ "$(jget "$TMP/$m.json" batch)" = 64 ] && grep -q "samples, batch 64," "$TMP/$m.err" &&
        ok "$m: automatic batch 64, in --json and the text" ||
        bad "$m: automatic batch $(jget "$TMP/$m.json" batch), want 64"
    fa=$(jget "$TMP/$m.json" float_accuracy); ia=$(jget "$TMP/$m.json" int_accuracy)
    drop=$(awk -v f="$fa" -v i="$ia" 'BEGIN { printf "%.2f", (f - i) * 100 }')
    awk -v d="$drop" 'BEGIN { exit !(d <= 0.5) }' &&
        ok "$m all-8-bit: accuracy $fa -> $ia (drop $drop points)" ||
        bad "$m all-8-bit: drop $drop points"
    lo=$(jget "$TMP/$m.json" latency_p10_s); md=$(jget "$TMP/$m.json" latency_s)
    hi=$(jget "$TMP/$m.json" latency_p90_s)
    awk -v a="$lo" -v b="$md" -v c="$hi" 'BEGIN { exit !(a > 0 && a <= b && b <= c) }' &&
        ok "$m: latency runs 10-90% $lo <= median $md <= $hi" ||
        bad "$m: latency p10 $lo, median $md, p90 $hi"
    size=$(jget "$TMP/$m.json" size_bytes); lb=$(jget "$TMP/$m.json" layer_bytes)
    ob=$(jget "$TMP/$m.json" overhead_bytes); pb=$(jget "$TMP/$m.json" predicted_size_bytes)
    [ "$size" = "$pb" ] && ok "$m: packed bytes $size = plan's predicted $pb" ||
        bad "$m: packed bytes $size, predicted $pb"
    [ "$size" -eq $((lb + ob)) ] && awk -v o="$ob" -v s="$size" 'BEGIN { exit !(o < 0.01 * s) }' &&
        ok "$m: packed $size = $lb + $ob scale bytes (< 1%)" ||
        bad "$m: packed $size, layers $lb, scales $ob"
done

# --- every plan: size to the byte; both kernel sets agree -------------------
for p in cnn_w4a8 cnn_mixed; do
    cnn --plan "$PL/$p.json" --repeat 1 --json --out "$TMP/a.npy" >"$TMP/a.json" \
        2>/dev/null || bad "$p: exit $?"
    cnn --plan "$PL/$p.json" --repeat 0 --isa portable --threads 1 --json \
        --out "$TMP/b.npy" >"$TMP/b.json" 2>/dev/null || bad "$p portable: exit $?"
    cnn --plan "$PL/$p.json" --repeat 0 --batch 7 --json --out "$TMP/c.npy" \
        >"$TMP/c.json" 2>/dev/null || bad "$p --batch 7: exit $?"
    [ "$(jget "$TMP/c.json" batch)" = 7 ] && ok "$p: --batch 7 reported as 7" ||
        bad "$p: --batch 7 reported as $(jget "$TMP/c.json" batch)"
    # --out: the integer logits, one row per sample, whatever the ISA or batch
    r=$("$NPYCMP" "$TMP/a.npy" "$EX/cnn_test_logits.npy" 1e9) &&
        "$NPYCMP" "$TMP/a.npy" "$TMP/b.npy" 0 >/dev/null &&
        "$NPYCMP" "$TMP/a.npy" "$TMP/c.npy" 0 >/dev/null &&
        ok "$p --out: (500, 10) integer logits, identical across ISAs and batches (vs float: $r)" ||
        bad "$p --out: $r"
    [ "$(jget "$TMP/a.json" size_bytes)" = "$(jget "$TMP/a.json" predicted_size_bytes)" ] &&
        ok "$p: packed bytes = predicted ($(jget "$TMP/a.json" size_bytes))" ||
        bad "$p: packed bytes $(jget "$TMP/a.json" size_bytes) vs $(jget "$TMP/a.json" predicted_size_bytes)"
    for k in int_accuracy int_loss agreement sqnr_db size_bytes; do
        [ "$(jget "$TMP/a.json" $k)" = "$(jget "$TMP/b.json" $k)" ] ||
            bad "$p: $k differs between kernel sets"
    done
    ok "$p: portable kernels, 1 thread, give identical figures"
done
mlp --plan "$PL/mlp_w4a4.json" --repeat 0 --json >"$TMP/m4.json" 2>/dev/null
[ "$(jget "$TMP/m4.json" size_bytes)" = "$(jget "$TMP/m4.json" predicted_size_bytes)" ] &&
    ok "mlp_w4a4: packed bytes = predicted" || bad "mlp_w4a4 bytes"
[ "$(jget "$TMP/m4.json" latency_s)$(jget "$TMP/m4.json" latency_p10_s)$(jget "$TMP/m4.json" latency_p90_s)" = nullnullnull ] &&
    ok "--repeat 0: latency and its percentiles null" || bad "--repeat 0 latency: $(cat "$TMP/m4.json")"

# --out into a directory that does not exist: exit 2, nothing written
cnn --plan "$PL/cnn_w4a8.json" --repeat 0 --out "$TMP/nodir/q.npy" >/dev/null 2>"$TMP/e"
rc=$?; [ $rc -eq 2 ] && [ ! -e "$TMP/nodir" ] && [ "$(wc -l <"$TMP/e")" -eq 1 ] &&
    grep -q "nodir/q.npy" "$TMP/e" && ok "--out unwritable: exit 2: $(cat "$TMP/e")" ||
    bad "--out unwritable: exit $rc: $(cat "$TMP/e")"

# --- checks that fail: exit 1 ----------------------------------------------
cnn --plan "$PL/cnn_w8a8_tight.json" --repeat 0 >/dev/null 2>"$TMP/e"
rc=$?; [ $rc -eq 1 ] && grep -q EXCEEDED "$TMP/e" &&
    ok "size budget exceeded: exit 1" || bad "size budget exceeded: exit $rc"
mlp --plan "$PL/mlp_w4a4.json" --repeat 0 --max-drop 0.1 >/dev/null 2>"$TMP/e"
rc=$?; [ $rc -eq 1 ] && ok "accuracy drop over --max-drop: exit 1" ||
    bad "accuracy drop over --max-drop: exit $rc"

# --- calibration on the data, said so ---------------------------------------
"$BITPLAN" run "$EX/mlp.onnx" --plan "$PL/mlp_w8a8.json" \
    --data "$EX/digits_test_flat.npy" --repeat 0 2>"$TMP/e" >/dev/null &&
    grep -q "no --calib given" "$TMP/e" && ok "without --calib the output says so" ||
    bad "without --calib"

# --- bad input: exit 2, one line naming the file ----------------------------
expect2() { # what file-to-name args...
    what=$1; name=$2; shift 2
    "$BITPLAN" run "$@" >/dev/null 2>"$TMP/e"
    rc=$?
    if [ $rc -eq 2 ] && [ "$(wc -l <"$TMP/e")" -eq 1 ] && grep -q "$name" "$TMP/e"; then
        ok "$what: exit 2: $(cat "$TMP/e")"
    else
        bad "$what: exit $rc"; cat "$TMP/e"
    fi
}
for p in bad_other_model bad_unknown_layer bad_missing_layer bad_wbits bad_abits; do
    expect2 "$p" "$p.json" "$EX/cnn.onnx" --plan "$PL/$p.json" --data "$EX/digits_test_x.npy"
done
expect2 "plan for the MLP on the CNN" "mlp_w8a8.json" "$EX/cnn.onnx" \
    --plan "$PL/mlp_w8a8.json" --data "$EX/digits_test_x.npy"
expect2 "data of the wrong shape" "digits_test_flat.npy" "$EX/cnn.onnx" \
    --plan "$PL/cnn_w8a8.json" --data "$EX/digits_test_flat.npy"
expect2 "calibration data of the wrong shape" "digits_calib_flat.npy" "$EX/cnn.onnx" \
    --plan "$PL/cnn_w8a8.json" --data "$EX/digits_test_x.npy" \
    --calib "$EX/digits_calib_flat.npy"
printf '{"layers": 3}' >"$TMP/broken.json"
expect2 "malformed plan" "broken.json" "$EX/cnn.onnx" --plan "$TMP/broken.json" \
    --data "$EX/digits_test_x.npy"
expect2 "missing plan file" "nothere.json" "$EX/cnn.onnx" --plan "$TMP/nothere.json" \
    --data "$EX/digits_test_x.npy"
"$BITPLAN" run --help | grep -q "usage: bitplan run" && ok "--help" || bad "--help"

# --- profile --measure -> solve -> run -------------------------------------
if "$BITPLAN" profile --measure --quick --bits 4,8 --model "$EX/mlp.onnx" \
       -o "$TMP/hw.json" 2>"$TMP/e"; then
    ok "profile --measure wrote a table profile and its roofline"
    for k in '"format": *"bitplan-profile"' '"kind": *"table"' '"entries":' \
             '"fallback": *"hw-roofline.json"' '"layer":"fc1.weight"' \
             '"w_bits":4' '"a_bits":8' '"latency_s":'; do
        grep -q "$k" "$TMP/hw.json" || bad "profile lacks $k"
    done
    for k in '"kind": *"roofline"' '"peak_ops":' '"bytes_per_s":' \
             '"launch_overhead":' '"missing_bits":'; do
        grep -q "$k" "$TMP/hw-roofline.json" || bad "roofline lacks $k"
    done
    n=$(grep -c '"layer":' "$TMP/hw.json")
    [ "$n" -eq 6 ] && ok "3 layers x 2 widths measured" || bad "profile has $n entries"
    if "$BITPLAN" solve "$EX/mlp.onnx" --data "$EX/digits_calib_flat.npy" \
           --labels "$EX/digits_calib_y.npy" --samples 64 --profile "$TMP/hw.json" \
           --bits 4,8 --abits 8 --budget size=14000 -o "$TMP/solved.json" 2>"$TMP/e"; then
        mlp --plan "$TMP/solved.json" --repeat 50 --json >"$TMP/s.json" 2>"$TMP/e" ||
            bad "run of the solved plan: exit $?"
        sz=$(jget "$TMP/s.json" size_bytes); pb=$(jget "$TMP/s.json" predicted_size_bytes)
        [ "$sz" = "$pb" ] && ok "solved plan: packed bytes $sz = solve's prediction" ||
            bad "solved plan: packed bytes $sz, solve predicted $pb"
        lat=$(jget "$TMP/s.json" latency_s); pl=$(jget "$TMP/s.json" predicted_latency_s)
        # timing on a shared CI machine is noisy: report, and only catch a
        # prediction off by more than 3x
        awk -v m="$lat" -v p="$pl" 'BEGIN { exit !(m > 0 && p > 0 && m < 3 * p && p < 3 * m) }' &&
            ok "solved plan: measured $lat s per sample, the profile predicted $pl s" ||
            bad "solved plan: measured $lat s, predicted $pl s"
    else
        bad "solve with the measured profile: exit $?"; cat "$TMP/e"
    fi
else
    bad "profile --measure: exit $?"; cat "$TMP/e"
fi
"$BITPLAN" profile -o "$TMP/x.json" >/dev/null 2>"$TMP/e"
[ $? -eq 2 ] && ok "profile without --measure: exit 2" || bad "profile without --measure"
"$BITPLAN" profile --measure --bits 9 -o "$TMP/x.json" >/dev/null 2>"$TMP/e"
[ $? -eq 2 ] && ok "profile --bits 9: exit 2" || bad "profile --bits 9"
[ ! -e "$TMP/x.json" ] && ok "no partial profile written" || bad "partial profile"

# plans mixing activation widths: a layer reading fewer bits than its input
# tensor holds reads a REQUANT copy (5 bytes), which solve prices too, so
# the packed bytes are the prediction and every size budget solve met holds
for pct in 11 12 13 15; do
    "$BITPLAN" solve "$EX/cnn.onnx" --sensitivity "$SRCDIR/tests/data/ilp/cnn_sens.json" --profile bops \
        --abits 4,8 --budget size=$pct% -o "$TMP/mx.json" 2>/dev/null || bad "solve size=$pct%"
    cnn --plan "$TMP/mx.json" --repeat 0 --json >"$TMP/mx.out" 2>/dev/null ||
        bad "run of the size=$pct% plan: exit $?"
    sz=$(jget "$TMP/mx.out" size_bytes); pb=$(jget "$TMP/mx.out" predicted_size_bytes)
    [ "$sz" = "$pb" ] && [ "$(jget "$TMP/mx.out" budgets_met)" = true ] &&
        ok "--abits 4,8 size=$pct%: packed $sz = predicted, budget met ($(jget "$TMP/mx.out" overhead_bytes) scale bytes)" ||
        bad "--abits 4,8 size=$pct%: packed $sz, predicted $pb, met $(jget "$TMP/mx.out" budgets_met)"
done

# models the integer executor once got wrong or refused (tests/data/qzoo):
# a Clip after the last layer, a (1,C,1,1) constant bias and a Pad of zeros
# before AveragePool, and Pads of zeros before a Conv and a counting
# AveragePool run at 8 bits close to torch; a (C,) constant, which ONNX
# broadcasts along the width, is refused rather than taken for a bias
QZ="$SRCDIR/tests/data/qzoo"
expect2() { # exit 2 with one line
    "$@" >/dev/null 2>"$TMP/e"; rc=$?
    [ $rc -eq 2 ] && [ "$(wc -l <"$TMP/e")" -eq 1 ] && ok "exit 2: $(cat "$TMP/e")" ||
        bad "exit $rc: $* :: $(cat "$TMP/e")"
}
expect2 "$BITPLAN" eval "$QZ/qzoo5_train.onnx" --data "$QZ/qzoo5_x.npy"
for k in 1 2 3 4 5; do
    m="$QZ/qzoo$k"
    "$BITPLAN" eval "$m.onnx" --data "${m}_x.npy" --out "$TMP/qe.npy" 2>/dev/null &&
        r=$("$NPYCMP" "$TMP/qe.npy" "${m}_ref.npy" 1e-4) &&
        ok "qzoo$k: eval matches torch ($r)" || bad "qzoo$k eval: $r"
    if ! "$BITPLAN" solve "$m.onnx" --data "${m}_x.npy" --labels "${m}_y.npy" \
             --profile bops --bits 8 -o "$TMP/q8.json" 2>"$TMP/e"; then
        bad "qzoo$k solve: $(cat "$TMP/e")"; continue
    fi
    "$BITPLAN" run "$m.onnx" --plan "$TMP/q8.json" --data "${m}_x.npy" --repeat 0 \
        --json >"$TMP/q.json" 2>"$TMP/e"
    rc=$?
    if [ $k = 3 ]; then
        [ $rc -eq 2 ] && [ "$(wc -l <"$TMP/e")" -eq 1 ] &&
            grep -q "a constant operand of shape (8); .* a bias along the channel axis" "$TMP/e" &&
            ok "qzoo3: a (C,) constant after a conv refused: $(cat "$TMP/e")" ||
            bad "qzoo3: exit $rc, $(cat "$TMP/e")"
    else
        q=$(jget "$TMP/q.json" sqnr_db)
        [ $rc -eq 0 ] && awk -v q="$q" 'BEGIN { exit !(q > 25) }' &&
            ok "qzoo$k: w8a8 logits at $q dB from float" || bad "qzoo$k run: exit $rc, SQNR $q"
    fi
done

# --profile takes a shipped name too; a bad one is refused before --out is
# touched
mlp --plan "$PL/mlp_w8a8.json" --repeat 1 --profile nvidia-t4 --json >"$TMP/t4.json" \
    2>/dev/null && [ "$(jget "$TMP/t4.json" profile_latency_s)" != null ] &&
    ok "run --profile nvidia-t4: predicts $(jget "$TMP/t4.json" profile_latency_s) s" ||
    bad "run --profile nvidia-t4: $(cat "$TMP/t4.json")"
echo keep >"$TMP/keep.npy"
printf '{bad' >"$TMP/badprof.json"
mlp --plan "$PL/mlp_w8a8.json" --repeat 0 --profile "$TMP/badprof.json" \
    --out "$TMP/keep.npy" >/dev/null 2>&1
rc=$?
[ $rc -eq 2 ] && [ "$(cat "$TMP/keep.npy")" = keep ] &&
    ok "a bad --profile: exit 2, --out left as it was" ||
    bad "a bad --profile: exit $rc, --out $(head -c 20 "$TMP/keep.npy")"
exit $fail
