#!/bin/sh
# e2e_solve.sh - `bitplan solve` on the example CNN and MLP from their
# sensitivity files (tests/data/ilp/*_sens.json): plans, --json, HAWQ
# output, determinism, shipped profiles found with and without
# $BITPLAN_PROFILE_PATH; and every error of the acceptance list: exit code
# 1 (budget out of reach) or 2 (bad input), one line on stderr, no output
# file left behind.
. "$SRCDIR/tests/lib.sh"
export BITPLAN_PROFILE_PATH="$SRCDIR/profiles"
S="$TD/ilp/cnn_sens.json"
M="$EX/cnn.onnx"
OUT="$TMP/plan.json"

# nothing at OUT, nor a temporary file next to it
no_output() {
    if [ -e "$OUT" ] || ls -A "$TMP" | grep -q '^\.plan'; then
        fail "$1: output left behind: $(ls -A "$TMP")"
    else
        pass "$1: no output file left behind"
    fi
    rm -f "$OUT" "$TMP/plan_bit_config.py"
}

# --- plans ----------------------------------------------------------------
if "$BITPLAN" solve "$M" --sensitivity "$S" --profile nvidia-t4 \
        --budget size=25% --budget latency=100% -o "$OUT" --json \
        >"$TMP/stdout" 2>"$TMP/stderr"; then
    pass "solve cnn size=25% latency=100%"
else
    fail "solve cnn: $(cat "$TMP/stderr")"
fi
for key in '"layers":\[\{"name":"stem.conv.weight","w_bits":[0-9]+,"a_bits":8' \
           '"predicted":\{"size_bytes":[0-9.e+-]+,"latency_s":[0-9.e+-]+,"bops":[0-9.e+-]+,"objective":' \
           '"status":"optimal"' '"gap":0'; do
    if grep -Eq "$key" "$TMP/stdout"; then pass "--json has $key"
    else fail "--json lacks $key: $(cat "$TMP/stdout")"; fi
done
if tr -d '\n\t ' <"$OUT" | grep -qF "$(tr -d '\n\t ' <"$TMP/stdout" | cut -c1-200)"; then
    pass "plan.json holds the --json object"
else
    fail "plan.json and --json differ"
fi
for want in 'stem.conv.weight' 'budget size=25% ' 'met' 'solver: optimal'; do
    if grep -q -- "$want" "$TMP/stderr"; then pass "summary shows '$want'"
    else fail "summary lacks '$want': $(cat "$TMP/stderr")"; fi
done
if grep -q 'NOT MET' "$TMP/stderr"; then fail "a budget reported NOT MET"; fi

# same inputs, byte-identical plan
cp "$OUT" "$TMP/first.json"
"$BITPLAN" solve "$M" --sensitivity "$S" --profile nvidia-t4 \
    --budget size=25% --budget latency=100% -o "$OUT" 2>/dev/null
if cmp -s "$OUT" "$TMP/first.json"; then pass "deterministic plan"
else fail "two runs differ"; fi

# from the sensitivity file alone: the same bits
"$BITPLAN" solve --sensitivity "$S" --profile nvidia-t4 --budget size=25% \
    --budget latency=100% --json 2>/dev/null | grep -o '"w_bits":[0-9]*' >"$TMP/a"
grep -o '"w_bits":[0-9]*' "$TMP/stdout" >"$TMP/b"
if cmp -s "$TMP/a" "$TMP/b" && [ -s "$TMP/a" ]; then
    pass "graph facts and sensitivity-file facts give the same plan"
else
    fail "plans differ: $(tr '\n' ' ' <"$TMP/a") vs $(tr '\n' ' ' <"$TMP/b")"
fi

# tighter budgets cost sensitivity; the MLP and other profiles work
prev=""
for b in 50% 25% 15% 10%; do
    o=$("$BITPLAN" solve --sensitivity "$S" --profile bops --budget size=$b \
        --json 2>/dev/null | grep -o '"objective":[0-9.e+-]*' | cut -d: -f2)
    if [ -n "$prev" ] && ! awk -v a="$prev" -v b="$o" 'BEGIN{exit !(b >= a)}'; then
        fail "objective fell from $prev to $o as size tightened to $b"
    fi
    prev=$o
done
pass "objective grows as the size budget tightens (last $prev)"
for p in nvidia-t4 nvidia-a100 x86-avx512-vnni arm-cortex-a76 bops \
         hawq-v3-resnet18-t4 "$SRCDIR/profiles/nvidia-t4.json"; do
    if "$BITPLAN" solve "$EX/mlp.onnx" --sensitivity "$TD/ilp/mlp_sens.json" \
            --profile "$p" --budget size=3x --bits 2,4,8 --abits 4,8 \
            --tie fc1.weight,fc2.weight --keep-first-last 8 >/dev/null 2>"$TMP/err"; then
        pass "mlp on $p"
    else
        fail "mlp on $p: $(cat "$TMP/err")"
    fi
done
if env -u BITPLAN_PROFILE_PATH "$BITPLAN" solve --sensitivity "$S" \
        --profile arm-cortex-a76 --budget bops=50% >/dev/null 2>&1; then
    pass "shipped profile found without BITPLAN_PROFILE_PATH"
else
    fail "shipped profile not found without BITPLAN_PROFILE_PATH"
fi

# pins, ranges, ties, metric, uniform plans
"$BITPLAN" solve --sensitivity "$S" --profile nvidia-t4 --budget size=12% \
    --pin fc.weight=8 --bits-range res1a.conv.weight=4:6 \
    --tie down_a.conv.weight,down_proj.conv.weight --metric eig --json \
    >"$TMP/o" 2>"$TMP/err" || fail "pins: $(cat "$TMP/err")"
bits() { grep -o "\"name\":\"$1\",\"w_bits\":[0-9]*" "$TMP/o" | cut -d: -f3; }
if [ "$(bits fc.weight)" = 8 ] && [ "$(bits res1a.conv.weight)" -ge 4 ] &&
   [ "$(bits res1a.conv.weight)" -le 6 ] &&
   [ "$(bits down_a.conv.weight)" = "$(bits down_proj.conv.weight)" ]; then
    pass "pin, range and tie honoured"
else
    fail "pin/range/tie not honoured: $(cat "$TMP/o")"
fi
"$BITPLAN" solve --sensitivity "$S" --profile bops --bits 4 --json >"$TMP/o" 2>/dev/null
if [ "$(grep -o '"w_bits":4' "$TMP/o" | wc -l)" = 7 ]; then
    pass "--bits 4 gives the uniform 4-bit plan"
else
    fail "--bits 4: $(cat "$TMP/o")"
fi

# HAWQ-V3's bit_config next to the plan
"$BITPLAN" solve --sensitivity "$S" --profile nvidia-t4 --budget size=20% \
    --format hawq -o "$OUT" 2>/dev/null
H="$TMP/plan_bit_config.py"
if [ -f "$OUT" ] && grep -q '^bit_config_dict = {' "$H" &&
   grep -q "^'stem.conv': [0-9]*,$" "$H" && grep -q '^act_bit_config = {' "$H"; then
    pass "--format hawq writes plan_bit_config.py"
else
    fail "--format hawq: $(cat "$H" 2>&1 | head -5)"
fi
rm -f "$OUT" "$H"

# --- errors: exit code, one line, nothing written -------------------------
expect_error 1 '^bitplan: budget size=1KiB cannot be met: the smallest plan is 5\.96KiB \(all layers at 2 bits\)$' -- \
    "$BITPLAN" solve "$M" --sensitivity "$S" --profile nvidia-t4 --budget size=1KiB -o "$OUT"
no_output "unreachable size"
expect_error 1 'budget latency=10us cannot be met: the smallest plan is 35' -- \
    "$BITPLAN" solve --sensitivity "$S" --profile nvidia-t4 --budget size=50% \
    --budget latency=10us -o "$OUT" --format hawq
no_output "unreachable latency"
expect_error 1 'budget bops=1M cannot be met: the smallest plan is 8\.56M \(all layers at 2 bits but fc\.weight at 8\)$' -- \
    "$BITPLAN" solve --sensitivity "$S" --profile bops --budget bops=1M \
    --bits 2,8 --pin fc.weight=8 -o "$OUT"
no_output "unreachable bops"
# 8-bit activations floor the BOPs at 25%: where 4-bit ones would fit, the
# message says so; where they would not either, or --abits was given, not
expect_error 1 'bops=20% cannot be met: the smallest plan is 25% \(8\.54M\) \(all layers at 2 bits\); activations are 8-bit by default, and with --abits 4,8 .* a plan meets the budgets$' -- \
    "$BITPLAN" solve --sensitivity "$S" --profile nvidia-t4 --budget bops=20% -o "$OUT"
no_output "bops=20%"
expect_error 1 'bops=10% cannot be met: the smallest plan is 25% \(8\.54M\) \(all layers at 2 bits\)$' -- \
    "$BITPLAN" solve --sensitivity "$S" --profile nvidia-t4 --budget bops=10% -o "$OUT"
expect_error 1 'bops=20% cannot be met: the smallest plan is 25% \(8\.54M\) \(all layers at 2 bits\)$' -- \
    "$BITPLAN" solve --sensitivity "$S" --profile nvidia-t4 --budget bops=20% --abits 8 -o "$OUT"
"$BITPLAN" solve --sensitivity "$S" --profile nvidia-t4 --budget bops=20% \
    --abits 4,8 -o "$OUT" 2>"$TMP/err" && pass "bops=20% with --abits 4,8: solved" ||
    fail "bops=20% with --abits 4,8: $(cat "$TMP/err")"
rm -f "$OUT"
expect_error 2 "no layer named 'conv9.weight'" -- \
    "$BITPLAN" solve --sensitivity "$S" --profile nvidia-t4 --budget size=25% \
    --pin conv9.weight=4 -o "$OUT"
no_output "pin naming no layer"
expect_error 2 "tie fc.weight,down_b.conv.weight: the layers share no bit-width \(fc.weight allows 8, down_b.conv.weight allows 2,3\)" -- \
    "$BITPLAN" solve --sensitivity "$S" --profile nvidia-t4 --budget size=25% \
    --keep-first-last 8 --bits-range down_b.conv.weight=2:3 \
    --tie fc.weight,down_b.conv.weight -o "$OUT"
no_output "tie with no common choice"
expect_error 2 'pin fc.weight=7: .*can only take 2,3,4,5,6,8 bits' -- \
    "$BITPLAN" solve --sensitivity "$S" --profile nvidia-t4 --pin fc.weight=7 -o "$OUT"
no_output "pin to a width without sensitivity"
expect_error 2 "cnn_sens.json: layers\[0\] 'stem.conv.weight' has no loss_increase, which --metric loss needs" -- \
    "$BITPLAN" solve --sensitivity "$S" --profile bops --budget size=25% --metric loss -o "$OUT"
no_output "--metric loss on a file without loss_increase"

# --metric loss from a sensitivity measured on the way: the objective is
# twice the summed loss_increase of the chosen widths
if "$BITPLAN" solve "$M" --data "$EX/digits_calib_x.npy" --labels "$EX/digits_calib_y.npy" \
        --profile bops --budget size=12% --metric loss --save-sensitivity "$TMP/ls.json" \
        --json >"$TMP/o" 2>"$TMP/err"; then
    obj=$(grep -o '"objective":[-0-9.e+]*' "$TMP/o" | head -1 | cut -d: -f2)
    want=$(tr -d ' \n\t' <"$TMP/ls.json" | awk -v plan="$(tr -d ' \n\t' <"$TMP/o")" '
        BEGIN { RS = "\\{\"name\":\""; FS = "" }
        NR > 1 { name = substr($0, 1, index($0, "\"") - 1); rec[name] = $0 }
        END {
            n = split(plan, parts, "\\{\"name\":\"")
            sum = 0
            for (k = 2; k <= n; k++) {
                nm = substr(parts[k], 1, index(parts[k], "\"") - 1)
                if (!match(parts[k], /"w_bits":[0-9]+/)) continue
                b = substr(parts[k], RSTART + 9, RLENGTH - 9)
                r = rec[nm]
                if (!match(r, /"loss_increase":\{[^}]*\}/)) continue
                li = substr(r, RSTART, RLENGTH)
                if (match(li, "\"" b "\":[-0-9.e+]+")) sum += substr(li, RSTART + length(b) + 3, RLENGTH - length(b) - 3)
            }
            printf "%.9g", 2 * sum
        }')
    if awk -v a="$obj" -v b="$want" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(b != 0 && d <= 1e-9 * (b < 0 ? -b : b) + 1e-15) }'; then
        pass "--metric loss: objective $obj = 2 x summed loss_increase"
    else
        fail "--metric loss: objective $obj, 2 x summed loss_increase $want"
    fi
else
    fail "--metric loss: $(cat "$TMP/err")"
fi

# malformed profiles: a field missing, of the wrong type, not JSON, unknown
P="$TMP/hw.json"
grep -v '"memory"' "$SRCDIR/profiles/nvidia-t4.json" >"$P"
expect_error 2 "$P: memory: missing \(expected an object\)" -- \
    "$BITPLAN" solve --sensitivity "$S" --profile "$P" --budget size=25% -o "$OUT"
no_output "profile field missing"
sed 's/"ops_per_s": 260e12/"ops_per_s": "fast"/' "$SRCDIR/profiles/nvidia-t4.json" >"$P"
expect_error 2 "$P: peak_ops\[0\]\.ops_per_s: expected a number, got a string" -- \
    "$BITPLAN" solve --sensitivity "$S" --profile "$P" --budget size=25% -o "$OUT"
no_output "profile field mistyped"
sed 's/"source": "NVIDIA T4 product brief[^"]*"/"source": ""/' "$SRCDIR/profiles/nvidia-t4.json" >"$P"
expect_error 2 "$P: memory\.source: empty" -- \
    "$BITPLAN" solve --sensitivity "$S" --profile "$P" --budget size=25% -o "$OUT"
no_output "profile number without source"
printf '{"format": "bitplan-profile",' >"$P"
expect_error 2 "$P: not valid JSON" -- \
    "$BITPLAN" solve --sensitivity "$S" --profile "$P" -o "$OUT"
no_output "profile not JSON"
expect_error 2 "profile 'nvidia-t5' not found .*shipped profiles: .*nvidia-t4" -- \
    "$BITPLAN" solve --sensitivity "$S" --profile nvidia-t5 -o "$OUT"
no_output "unknown profile"

# malformed sensitivity files
B="$TMP/sens.json"
awk '!done && /"numel": 144,/ {done=1; next} {print}' "$S" >"$B"
expect_error 2 "$B: layers\[0\]\.numel: missing" -- \
    "$BITPLAN" solve --sensitivity "$B" --profile nvidia-t4 --budget size=25% -o "$OUT"
no_output "sensitivity field missing"
sed '0,/"mean": 57.6,/s//"mean": "big",/' "$S" >"$B"
expect_error 2 "$B: layers\[0\]\.trace\.mean: expected a number, got a string" -- \
    "$BITPLAN" solve --sensitivity "$B" --profile nvidia-t4 --budget size=25% -o "$OUT"
no_output "sensitivity field mistyped"
sed '0,/"samples": 256/s//"samples": "all"/' "$S" >"$B"
expect_error 2 "$B: data\.samples: expected a whole number" -- \
    "$BITPLAN" solve --sensitivity "$B" --profile nvidia-t4 -o "$OUT"
no_output "sensitivity top-level field mistyped"
expect_error 2 "/nonexistent/s\.json: cannot open" -- \
    "$BITPLAN" solve --sensitivity /nonexistent/s.json --profile nvidia-t4 -o "$OUT"
no_output "sensitivity file missing"
expect_error 2 "model\.sha256 .* is not .*mlp\.onnx's .*another model" -- \
    "$BITPLAN" solve "$EX/mlp.onnx" --sensitivity "$S" --profile nvidia-t4 -o "$OUT"
no_output "sensitivity of another model"

# bad arguments
expect_error 2 "models no latency" -- \
    "$BITPLAN" solve --sensitivity "$S" --profile bops --budget latency=1ms -o "$OUT"
no_output "latency on the bops profile"
expect_error 2 "unit 'M': ambiguous" -- \
    "$BITPLAN" solve --sensitivity "$S" --profile bops --budget size=1.5M -o "$OUT"
no_output "ambiguous unit"
expect_error 2 "unknown kind 'speed'" -- \
    "$BITPLAN" solve --sensitivity "$S" --profile bops --budget speed=2 -o "$OUT"
# sensitivity on the way: the same file `bitplan sensitivity` writes, and
# the same plan as solving from that file
X="$EX/digits_calib_x.npy"; Y="$EX/digits_calib_y.npy"
"$BITPLAN" sensitivity "$M" --data "$X" --labels "$Y" --seed 5 -o "$TMP/s1.json" 2>/dev/null
if "$BITPLAN" solve "$M" --data "$X" --labels "$Y" --seed 5 --profile bops \
    --budget size=25% --save-sensitivity "$TMP/s2.json" -o "$TMP/p2.json" 2>"$TMP/err"; then
    cmp -s "$TMP/s1.json" "$TMP/s2.json" && pass "solve --save-sensitivity == bitplan sensitivity" \
        || fail "solve --save-sensitivity differs from bitplan sensitivity"
    "$BITPLAN" solve "$M" --sensitivity "$TMP/s1.json" --profile bops --budget size=25% \
        -o "$TMP/p1.json" 2>/dev/null
    cmp -s "$TMP/p1.json" "$TMP/p2.json" && pass "solve MODEL --data == solve --sensitivity" \
        || fail "solve MODEL --data differs from solve --sensitivity"
else
    fail "solve MODEL --data: $(cat "$TMP/err")"
fi
# sensitivity's knobs on the way: --trace and --sens-batch are its --trace
# and --batch (the same file), and go only with --data
"$BITPLAN" sensitivity "$M" --data "$X" --labels "$Y" --samples 96 --trace exact \
    --batch 40 -o "$TMP/s4.json" 2>/dev/null
if "$BITPLAN" solve "$M" --data "$X" --labels "$Y" --samples 96 --trace exact \
    --sens-batch 40 --profile bops --budget size=25% --save-sensitivity "$TMP/s5.json" \
    -o "$TMP/p5.json" 2>"$TMP/err"; then
    cmp -s "$TMP/s4.json" "$TMP/s5.json" && grep -q '"batch":	40,' "$TMP/s5.json" &&
        pass "solve --trace exact --sens-batch 40 == sensitivity --trace exact --batch 40" ||
        fail "solve --trace/--sens-batch differ from sensitivity's"
else
    fail "solve --trace exact --sens-batch 40: $(cat "$TMP/err")"
fi
expect_error 2 "--sens-batch goes with MODEL.onnx --data" -- \
    "$BITPLAN" solve --sensitivity "$S" --profile bops --budget size=25% --sens-batch 8 -o "$OUT"
expect_error 2 "--trace expects auto, exact, hutchpp, hutchinson or gn-hutchinson, got 'fast'" -- \
    "$BITPLAN" solve "$M" --data "$X" --profile bops --budget size=25% --trace fast -o "$OUT"
expect_error 2 "digits_test_flat.npy: samples have shape" -- \
    "$BITPLAN" solve "$M" --data "$EX/digits_test_flat.npy" --profile bops \
    --budget size=25% --save-sensitivity "$TMP/s3.json" -o "$OUT"
no_output "sensitivity on the way, bad data"
[ ! -e "$TMP/s3.json" ] && pass "no sensitivity file after bad data" || fail "s3.json left behind"
expect_error 2 "format hawq .* give -o" -- \
    "$BITPLAN" solve --sensitivity "$S" --profile bops --format hawq
expect_error 2 "/nonexistent/dir/plan\.json: cannot create" -- \
    "$BITPLAN" solve --sensitivity "$S" --profile bops -o /nonexistent/dir/plan.json
expect_error 2 "--profile is required" -- "$BITPLAN" solve --sensitivity "$S"

# -o through a symbolic link replaces the file it names; into a FIFO or a
# device it writes in place (root renaming over /dev/null would break it)
echo old >"$TMP/real.json"
ln -s real.json "$TMP/link.json"
"$BITPLAN" solve --sensitivity "$S" --profile bops --budget size=25% -o "$TMP/link.json" \
    2>/dev/null && [ -L "$TMP/link.json" ] && grep -q bitplan-plan "$TMP/real.json" &&
    pass "-o LINK: the link stays, its file is the plan" || fail "-o LINK"
mkfifo "$TMP/fifo"
cat "$TMP/fifo" >"$TMP/fromfifo" &
"$BITPLAN" solve --sensitivity "$S" --profile bops --budget size=25% -o "$TMP/fifo" 2>/dev/null
rc=$?
wait
[ $rc -eq 0 ] && [ -p "$TMP/fifo" ] && grep -q bitplan-plan "$TMP/fromfifo" &&
    pass "-o FIFO: the plan went through the pipe" || fail "-o FIFO: exit $rc"
"$BITPLAN" solve --sensitivity "$S" --profile bops --budget size=25% -o /dev/null 2>/dev/null &&
    [ -c /dev/null ] && pass "-o /dev/null: still a device" || fail "-o /dev/null"
# an output that is also an input is refused before it is replaced
cp "$S" "$TMP/s_copy.json"
expect_error 2 "s_copy.json: is also an input" -- "$BITPLAN" solve --sensitivity "$TMP/s_copy.json" \
    --profile bops --budget size=25% -o "$TMP/s_copy.json"
# JSON with text after the object or a key twice: refused
{ cat "$S"; echo garbage; } >"$TMP/trail.json"
expect_error 2 "trail.json: not valid JSON \(line [0-9]+\): text after the top-level value" -- \
    "$BITPLAN" solve --sensitivity "$TMP/trail.json" --profile bops --budget size=25%
sed '0,/"loss":/s//"loss": 1, "loss":/' "$S" >"$TMP/dup.json"
expect_error 2 "dup.json: key 'loss' appears twice in its object" -- \
    "$BITPLAN" solve --sensitivity "$TMP/dup.json" --profile bops --budget size=25%
# --format hawq: a model path with a newline stays inside the comment
mkdir "$TMP/evil
print(1)
#"
cp "$EX/cnn.onnx" "$TMP/evil
print(1)
#/m.onnx"
"$BITPLAN" solve "$TMP/evil
print(1)
#/m.onnx" --sensitivity "$S" --profile bops --budget size=25% --format hawq \
    -o "$TMP/hq.json" 2>/dev/null &&
    ! grep -q '^print' "$TMP/hq_bit_config.py" && grep -q 'evil\\x0aprint' "$TMP/hq_bit_config.py" &&
    pass "--format hawq: the path's newlines escaped in the comment" ||
    fail "--format hawq: $(head -2 "$TMP/hq_bit_config.py")"
"$BITPLAN" solve --help >"$TMP/help" && grep -q 'size=25%' "$TMP/help" &&
    pass "solve --help" || fail "solve --help"
finish
