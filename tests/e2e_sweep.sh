#!/bin/sh
# e2e_sweep.sh - `bitplan sweep` on the example CNN: pareto.csv (one row per
# budget, objective never increasing as the budget loosens), pareto.svg
# (points marked, axes labelled with units), one plan per point, byte-
# identical reruns, and its errors (exit 2, one line, no directory made).
. "$SRCDIR/tests/lib.sh"
export BITPLAN_PROFILE_PATH="$SRCDIR/profiles"
S="$TD/ilp/cnn_sens.json"

# the objective column (2) never increases down the rows
monotone() {
    awk -F, 'NR > 1 && $2 != "" { if (seen && $2 > prev * (1 + 1e-12)) bad = 1;
             prev = $2; seen = 1 } END { exit bad }' "$1"
}

for axis in size latency bops; do
    D="$TMP/sweep_$axis"
    if "$BITPLAN" sweep "$EX/cnn.onnx" --sensitivity "$S" --profile nvidia-t4 \
            --axis $axis --points 12 -o "$D" --json >"$TMP/json" 2>"$TMP/err"; then
        pass "sweep --axis $axis"
    else
        fail "sweep --axis $axis: $(cat "$TMP/err")"
        continue
    fi
    rows=$(($(wc -l <"$D/pareto.csv") - 1))
    [ "$rows" = 12 ] && pass "$axis: 12 rows" || fail "$axis: $rows rows"
    head -1 "$D/pareto.csv" | grep -q '^budget,objective,size_bytes,latency_s,bops,status,gap,plan,w:stem.conv.weight,' &&
        head -1 "$D/pareto.csv" | grep -q ',a:fc.weight$' &&
        pass "$axis: CSV header" || fail "$axis: header $(head -1 "$D/pareto.csv")"
    monotone "$D/pareto.csv" && pass "$axis: objective never increases" ||
        fail "$axis: objective increases: $(cut -d, -f1,2 "$D/pareto.csv" | tr '\n' ' ')"
    n=$(ls "$D"/plan_*.json | wc -l)
    [ "$n" = 12 ] && pass "$axis: 12 plans" || fail "$axis: $n plans"
    c=$(grep -c '<circle' "$D/pareto.svg")
    [ "$c" = 12 ] && pass "$axis: 12 points marked" || fail "$axis: $c circles"
    grep -q '<svg xmlns' "$D/pareto.svg" && grep -q 'objective: summed Omega' "$D/pareto.svg" &&
        pass "$axis: SVG with labelled axes" || fail "$axis: SVG"
    grep -q '"axis":"'$axis'","points":\[{"budget":' "$TMP/json" &&
        pass "$axis: --json" || fail "$axis: --json $(head -c 200 "$TMP/json")"
    # the first point is the smallest plan, the last the unconstrained one
    last=$(tail -1 "$D/pareto.csv" | cut -d, -f9-15)
    [ "$last" = "8,8,8,8,8,8,8" ] && pass "$axis: loosest point all 8 bits" ||
        fail "$axis: loosest point $last"
done
grep -q 'model size (KiB)' "$TMP/sweep_size/pareto.svg" && pass "size axis label with unit" ||
    fail "size axis label: $(grep -o '<text[^>]*>[^<]*(.*)</text>' "$TMP/sweep_size/pareto.svg")"
grep -q 'predicted latency (us)' "$TMP/sweep_latency/pareto.svg" && pass "latency axis label with unit" ||
    fail "latency axis label"
head -2 "$TMP/sweep_size/pareto.csv" | tail -1 | grep -q ',2,2,2,2,2,2,2,8,8,8,8,8,8,8$' &&
    pass "tightest size point: all 2 bits, activations 8" ||
    fail "tightest point: $(head -2 "$TMP/sweep_size/pareto.csv" | tail -1)"

# a latency sweep ends at the best plan's latency, not at the slowest plan's:
# on a profile where 2-bit kernels are the slowest and 4-bit the fastest (as
# on a CPU), the old upper end repeated the all-8-bit plan over the top points
sed -e 's/{"w_bits": 4, "tile_positions": 4, "per_mac": 2e-12, "per_weight": 1e-10}/{"w_bits": 2, "per_mac": 4e-12, "per_weight": 1e-10}, {"w_bits": 4, "tile_positions": 4, "per_mac": 5e-13, "per_weight": 1e-10}/' \
    -e 's/{"w_bits": 4, "per_mac": 1e-12, "per_weight": 1e-11}/{"w_bits": 2, "per_mac": 2e-12, "per_weight": 1e-11}, {"w_bits": 4, "per_mac": 2.5e-13, "per_weight": 1e-11}/' \
    "$TD/profiles/fitted.json" >"$TMP/slow2.json"
[ "$(grep -c '"w_bits": 2' "$TMP/slow2.json")" = 2 ] || fail "slow2 profile not made"
if "$BITPLAN" sweep --sensitivity "$S" --profile "$TMP/slow2.json" --axis latency \
        --points 6 -o "$TMP/s2" 2>"$TMP/err"; then
    all8=$(grep -c ',plan_[0-9]*\.json,8,8,8,8,8,8,8,' "$TMP/s2/pareto.csv")
    [ "$all8" = 1 ] && pass "latency sweep: one all-8-bit point, at the top" ||
        fail "latency sweep: $all8 all-8-bit points: $(cut -d, -f1,4,8- "$TMP/s2/pareto.csv" | tr '\n' ' ')"
    tail -1 "$TMP/s2/pareto.csv" | awk -F, '{ exit !($1 == $4) }' &&
        pass "latency sweep: top budget is the best plan's latency" ||
        fail "latency sweep: top row $(tail -1 "$TMP/s2/pareto.csv" | cut -d, -f1-5)"
    rows=$(($(wc -l <"$TMP/s2/pareto.csv") - 1))
    [ "$rows" = 6 ] && pass "latency sweep: 6 points" || fail "latency sweep: $rows rows"
else
    fail "latency sweep on slow2: $(cat "$TMP/err")"
fi
# with another budget, the range ends at the best plan under it: the top
# point is what solve gives for that budget alone
for sb in size=15% size=12%; do
    if "$BITPLAN" sweep --sensitivity "$S" --profile "$TMP/slow2.json" --axis latency \
            --points 4 --budget $sb -o "$TMP/s2b" 2>"$TMP/err" &&
        "$BITPLAN" solve --sensitivity "$S" --profile "$TMP/slow2.json" --budget $sb \
            --json >"$TMP/sj" 2>/dev/null; then
        top=$(tail -1 "$TMP/s2b/pareto.csv" | cut -d, -f2)
        sol=$(grep -o '"objective":[^,}]*' "$TMP/sj" | cut -d: -f2)
        awk -v a="$top" -v b="$sol" 'BEGIN { exit !(a != "" && (a - b) * (a - b) <= 1e-24 * b * b) }' &&
            pass "latency sweep under $sb: top point = solve's plan ($top)" ||
            fail "latency sweep under $sb: top objective $top, solve $sol"
    else
        fail "latency sweep under $sb: $(cat "$TMP/err")"
    fi
done
# where the fastest plan is the best one, every budget gives it: one point
if "$BITPLAN" sweep --sensitivity "$S" --profile "$TD/profiles/fitted.json" \
        --axis latency --points 6 -o "$TMP/f1" 2>"$TMP/err"; then
    rows=$(($(wc -l <"$TMP/f1/pareto.csv") - 1))
    [ "$rows" = 1 ] && [ "$(ls "$TMP/f1"/plan_*.json | wc -l)" = 1 ] &&
        grep -q 'also the best: one point, not 6' "$TMP/err" &&
        pass "latency sweep, fastest plan is the best: one point, said so" ||
        fail "one-point sweep: $rows rows; $(cat "$TMP/err")"
else
    fail "latency sweep on fitted: $(cat "$TMP/err")"
fi

# reruns are byte-identical; another profile and extra budgets work
"$BITPLAN" sweep --sensitivity "$S" --profile bops --axis bops --points 6 \
    -o "$TMP/a" --budget size=20% 2>/dev/null
"$BITPLAN" sweep --sensitivity "$S" --profile bops --axis bops --points 6 \
    -o "$TMP/b" --budget size=20% 2>/dev/null
diff -r "$TMP/a" "$TMP/b" >/dev/null && pass "deterministic sweep" ||
    fail "two sweeps differ"
monotone "$TMP/a/pareto.csv" && pass "bops sweep under size=20%: monotone" ||
    fail "bops sweep under size=20%"
awk -F, 'NR > 1 && $3 > 0.2 * 4 * 19994 { bad = 1 } END { exit bad }' "$TMP/a/pareto.csv" &&
    pass "the extra size budget holds at every point" || fail "size budget broken"

# errors: exit 2, one line, no directory made
expect_error 2 "validate runs the plans on MODEL.onnx with --data" -- \
    "$BITPLAN" sweep --sensitivity "$S" --profile nvidia-t4 --axis size \
    --validate -o "$TMP/v"
[ ! -e "$TMP/v" ] && pass "--validate: nothing written" || fail "--validate wrote $TMP/v"
expect_error 2 "models no latency" -- \
    "$BITPLAN" sweep --sensitivity "$S" --profile bops --axis latency -o "$TMP/v"
[ ! -e "$TMP/v" ] && pass "latency on bops: nothing written" || fail "wrote $TMP/v"
expect_error 2 "sweep varies this kind itself" -- \
    "$BITPLAN" sweep --sensitivity "$S" --profile bops --axis size \
    --budget size=20% -o "$TMP/v"
expect_error 2 "axis expects size, latency or bops" -- \
    "$BITPLAN" sweep --sensitivity "$S" --profile bops --axis speed -o "$TMP/v"
expect_error 2 "cannot create the output directory" -- \
    "$BITPLAN" sweep --sensitivity "$S" --profile bops --axis size -o /nonexistent/x/y
expect_error 2 "layers\[0\]\.numel: missing" -- \
    sh -c "awk '!d && /\"numel\": 144,/ {d=1; next} {print}' '$S' >'$TMP/s.json' &&
           '$BITPLAN' sweep --sensitivity '$TMP/s.json' --profile bops --axis size -o '$TMP/v'"
[ ! -e "$TMP/v" ] && pass "bad sensitivity: nothing written" || fail "wrote $TMP/v"

# --validate: every plan run by the integer executor
if "$BITPLAN" sweep "$EX/cnn.onnx" --sensitivity "$S" --profile bops --axis size --points 5 \
    --validate --data "$EX/digits_test_x.npy" --labels "$EX/digits_test_y.npy" \
    --calib "$EX/digits_calib_x.npy" --json -o "$TMP/val" >"$TMP/val.json" 2>"$TMP/val.err"; then
    pass "sweep --validate"
    head -1 "$TMP/val/pareto.csv" | grep -q ',plan,float_accuracy,int_accuracy,float_loss,int_loss,agreement,measured_size_bytes,w:' \
        && pass "pareto.csv has the measured columns" || fail "pareto.csv header: $(head -1 "$TMP/val/pareto.csv")"
    [ -s "$TMP/val/pareto_accuracy.svg" ] && grep -q "top-1 accuracy" "$TMP/val/pareto_accuracy.svg" \
        && pass "pareto_accuracy.svg" || fail "no pareto_accuracy.svg"
    # the loosest point is the all-8-bit plan: within 0.5 points of float
    last=$(tail -1 "$TMP/val/pareto.csv" | cut -d, -f9,10)
    awk -F, -v l="$last" 'BEGIN { split(l, a, ","); exit !(a[1] - a[2] <= 0.005) }' \
        && pass "loosest point: float,int accuracy = $last" || fail "loosest point lost accuracy: $last"
    grep -q '"int_accuracy":' "$TMP/val.json" && pass "--json carries int_accuracy" \
        || fail "--json lacks int_accuracy"
    # measured latency: the last column, one positive figure per plan, in
    # --json too, and the measured Pareto curve with a mark per plan
    head -1 "$TMP/val/pareto.csv" | grep -q ',a:fc.weight,measured_latency_s$' &&
        awk -F, 'NR > 1 { n++; if (!($NF > 0 && $NF < 1)) bad++ } END { exit !(n == 5 && !bad) }' \
            "$TMP/val/pareto.csv" &&
        [ "$(grep -o '"measured_latency_s":[0-9.e-]*' "$TMP/val.json" | wc -l)" -eq 5 ] &&
        pass "measured_latency_s: $(awk -F, 'NR > 1 { printf "%s ", $NF }' "$TMP/val/pareto.csv")" ||
        fail "measured_latency_s: $(head -2 "$TMP/val/pareto.csv")"
    [ "$(grep -c '<circle' "$TMP/val/pareto_latency.svg")" -eq 5 ] &&
        grep -q "measured latency per sample" "$TMP/val/pareto_latency.svg" &&
        pass "pareto_latency.svg: 5 plans against measured latency" || fail "pareto_latency.svg"
else
    fail "sweep --validate: $(cat "$TMP/val.err")"
fi
# --repeat 0: validated, not timed
"$BITPLAN" sweep "$EX/cnn.onnx" --sensitivity "$S" --profile bops --axis size --points 2 \
    --validate --repeat 0 --data "$EX/digits_test_x.npy" --labels "$EX/digits_test_y.npy" \
    --calib "$EX/digits_calib_x.npy" -o "$TMP/val0" 2>/dev/null &&
    [ ! -e "$TMP/val0/pareto_latency.svg" ] &&
    awk -F, 'NR > 1 && $NF != "" { bad++ } END { exit bad > 0 }' "$TMP/val0/pareto.csv" &&
    pass "--validate --repeat 0: no latency column values, no pareto_latency.svg" ||
    fail "--validate --repeat 0"
expect_error 2 "--repeat" -- "$BITPLAN" sweep "$EX/cnn.onnx" --sensitivity "$S" \
    --profile bops --axis size --validate --repeat -1 --data "$EX/digits_test_x.npy" -o "$TMP/v3"
expect_error 2 "validate runs the plans on MODEL.onnx" -- \
    "$BITPLAN" sweep --sensitivity "$S" --profile bops --axis size --validate -o "$TMP/v2"
# without labels there is no accuracy to put in the CSV (it held nan)
expect_error 2 "with --data X.npy --labels Y.npy" -- "$BITPLAN" sweep "$EX/cnn.onnx" \
    --sensitivity "$S" --profile bops --axis size --validate --data "$EX/digits_test_x.npy" \
    -o "$TMP/v4"
expect_error 2 "--repeat or --threads goes with --validate" -- \
    "$BITPLAN" sweep --sensitivity "$S" --profile bops --axis size --repeat 3 -o "$TMP/v5"

# -o DIR/ names DIR; a reused DIR keeps only this sweep's plans
"$BITPLAN" sweep --sensitivity "$S" --profile bops --axis size --points 5 -o "$TMP/re/" \
    2>/dev/null && [ -e "$TMP/re/plan_005.json" ] && pass "-o DIR/ with a trailing slash" ||
    fail "-o DIR/: exit $?"
"$BITPLAN" sweep --sensitivity "$S" --profile bops --axis size --points 3 -o "$TMP/re" \
    2>/dev/null && [ -e "$TMP/re/plan_003.json" ] && [ ! -e "$TMP/re/plan_004.json" ] &&
    [ ! -e "$TMP/re/plan_005.json" ] && pass "a reused DIR: the 5-point sweep's last plans gone" ||
    fail "a reused DIR: $(ls "$TMP/re")"

# fixed budgets that rule out every point: exit 1 with the reason, nothing written
"$BITPLAN" sweep --sensitivity "$S" --profile bops --axis bops --points 3 \
    --budget size=1% -o "$TMP/none" 2>"$TMP/err"
rc=$?
[ $rc -eq 1 ] && tail -1 "$TMP/err" |
    grep -q "no point of the sweep is feasible: budget size=1% cannot be met" &&
    pass "an infeasible sweep: exit 1, $(tail -1 "$TMP/err")" ||
    fail "an infeasible sweep: exit $rc, $(cat "$TMP/err")"
[ ! -e "$TMP/none" ] && pass "no DIR made for an infeasible sweep" || fail "infeasible sweep wrote $TMP/none"
# ruled out by a BOPs budget that 4-bit activations would meet: said so
"$BITPLAN" sweep --sensitivity "$S" --profile nvidia-t4 --axis size --points 3 \
    --budget bops=20% -o "$TMP/none" 2>"$TMP/err"
rc=$?
[ $rc -eq 1 ] && tail -1 "$TMP/err" | grep -q "no point of the sweep is feasible: budget bops=20% cannot be met: .*; activations are 8-bit by default, and with --abits 4,8 .* a plan meets the budgets$" &&
    pass "an infeasible sweep with the --abits hint" ||
    fail "infeasible sweep, bops=20%: exit $rc, $(cat "$TMP/err")"
finish
