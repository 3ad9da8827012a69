#!/bin/sh
# e2e_profile.sh - the latency model of measured profiles, deterministically
# (no timing): a roofline with a fitted "layer_model" and "op_costs" of round
# numbers (tests/data/profiles/fitted.json) gives the plan latencies worked
# out by hand below, in `solve` and in `run --profile` alike; the ops
# between layers (input quantization, output dequantization, pooling) are
# charged to the layer that runs next; a fused residual add is priced; a
# table's entries by name already hold their ops, entries by shape do not;
# malformed new fields are refused with exit 2 and one line naming the
# file and the field; `profile --measure --quick` writes both objects and
# solve reads them.
. "$SRCDIR/tests/lib.sh"
export BITPLAN_PROFILE_PATH="$SRCDIR/profiles"
F="$TD/profiles/fitted.json"
S="$TD/ilp"

# close A B: |A - B| <= 1e-9 |B|
close() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d;
          m = b < 0 ? -b : b; exit !(d <= 1e-9 * m) }'; }
# the predicted total of a plan file
total() { tr -d ' \t\n' <"$1" | sed 's/.*"predicted":{[^}]*"latency_s":\([^,}]*\).*/\1/'; }
# the latency_s of layer $2 in plan $1
layer() { tr -d ' \t\n' <"$1" | sed "s/.*\"name\":\"$2\",\"w_bits\":[0-9]*,\"a_bits\":[0-9]*,\"size_bytes\":[^,]*,\"latency_s\":\([^,]*\).*/\1/"; }

solve() { # out model sens profile bits
    "$BITPLAN" solve "$EX/$2.onnx" --sensitivity "$S/$3_sens.json" --profile "$4" \
        --bits "$5" --budget size=100% -o "$1" 2>"$TMP/err" ||
        fail "solve $2 on $4: $(cat "$TMP/err")"
}

# MLP, 8-bit weights (all serial; Gemm: 1 position, a 16-row tile, K and N
# from the shape; tiles = 16-position x 16-channel tiles):
#  fc1 64->128: 1e-6 + 1e-8*8 tiles + 1e-12*16*64*128 + 1e-10*64 + 2e-10*128
#      = 1.243072e-6, + Quantize of 64 inputs: 2e-6 + 1e-8*64 = 2.64e-6
#                                                            -> 3.883072e-6
#  fc2 128->64: 1e-6 + 1e-8*4 + 1e-12*16*128*64 + 1e-10*128 + 2e-10*64
#                                                            =  1.196672e-6
#  fc3 64->10 (10 channels padded to 16): 1e-6 + 1e-8 + 1e-12*16*64*16
#      + 1e-10*64 + 2e-10*10 = 1.034784e-6, + Dequant of 10: 3e-6 + 1e-7*10
#      = 4e-6                                                -> 5.034784e-6
solve "$TMP/m8.json" mlp mlp "$F" 8
for kv in fc1.weight=3.883072e-6 fc2.weight=1.196672e-6 fc3.weight=5.034784e-6; do
    n=${kv%%=*} want=${kv#*=} got=$(layer "$TMP/m8.json" "$n")
    close "$got" "$want" && pass "mlp w8 $n: $got s" || fail "mlp w8 $n: $got, want $want"
done
close "$(total "$TMP/m8.json")" 1.0114528e-5 && pass "mlp w8: total 1.0114528e-5 s" ||
    fail "mlp w8 total $(total "$TMP/m8.json")"
# 4-bit weights: per_mac 2e-12 and per_weight 1e-10 x numel instead, and
# tiles of 4 positions (the serial w4 entry's tile_positions): 4 rows
#  fc1: 1e-6 + 8e-8 + 2e-12*4*64*128 + 6.4e-9 + 2.56e-8 + 1e-10*8192 + 2.64e-6
#                                                            =  4.636736e-6
#  fc2: 1e-6 + 4e-8 + 2e-12*4*128*64 + 1.28e-8 + 1.28e-8 + 8.192e-7
#                                                            =  1.950336e-6
#  fc3: 1e-6 + 1e-8 + 2e-12*4*64*16 + 6.4e-9 + 2e-9 + 1e-10*640 + 4e-6
#                                                            =  5.090592e-6
solve "$TMP/m4.json" mlp mlp "$F" 4
close "$(total "$TMP/m4.json")" 1.1677664e-5 && pass "mlp w4: total 1.1677664e-5 s (4-row tiles)" ||
    fail "mlp w4 total $(total "$TMP/m4.json")"
# run --profile prices a plan with the same cost model
"$BITPLAN" run "$EX/mlp.onnx" --plan "$TMP/m8.json" --data "$EX/digits_test_flat.npy" \
    --samples 8 --repeat 0 --profile "$F" --json >"$TMP/r.json" 2>"$TMP/err" &&
    got=$(sed 's/.*"profile_latency_s":\([^,}]*\).*/\1/' "$TMP/r.json") &&
    close "$got" 1.0114528e-5 && pass "run --profile: $got s" ||
    fail "run --profile: $(cat "$TMP/err" "$TMP/r.json")"

# CNN: res1a, res1b, down_b (147456 MACs >= parallel_macs 100000) take the
# parallel coefficients, the rest the serial ones; down_proj (serial, 4x4x32
# = 512 outputs) carries the second block's residual add: with the serial
# per_residual_output 3e-10 it costs 512 * 3e-10 = 1.536e-7 s more than
# without (res1b's add is parallel, priced 0 there).
solve "$TMP/c.json" cnn cnn "$F" 8
sed 's/"per_residual_output": 3e-10/"per_residual_output": 0/' "$F" >"$TMP/nores.json"
solve "$TMP/c0.json" cnn cnn "$TMP/nores.json" 8
d=$(awk -v a="$(total "$TMP/c.json")" -v b="$(total "$TMP/c0.json")" 'BEGIN { printf "%.10g", a - b }')
close "$d" 1.536e-7 && pass "cnn: the fused residual add of down_proj costs $d s" ||
    fail "cnn residual: $d s, want 1.536e-7"
# res1a (parallel): 8x8 positions (4 tiles), K 144, 16 channels:
#  5e-6 + 2e-8*4 + 5e-13*64*144*16 + 1e-11*64*144 + 1e-11*64*16 = 5.256128e-6
close "$(layer "$TMP/c.json" res1a.conv.weight)" 5.256128e-6 &&
    pass "cnn res1a (parallel regime): 5.256128e-6 s" ||
    fail "cnn res1a: $(layer "$TMP/c.json" res1a.conv.weight)"

# a table over the fitted roofline: fc1 by name (its ops included: exactly
# the entry), fc3 by shape (plus its Dequant, 4e-6), fc2 from the roofline
cat >"$TMP/table.json" <<EOT
{"format": "bitplan-profile", "version": 1, "name": "t", "kind": "table",
 "description": "d", "source": "test", "fallback": "$F",
 "entries": [{"layer": "fc1.weight", "w_bits": 8, "a_bits": 8, "latency_s": 1e-5},
             {"shape": [10, 64], "w_bits": 8, "a_bits": 8, "latency_s": 2e-6}]}
EOT
solve "$TMP/t.json" mlp mlp "$TMP/table.json" 8
close "$(layer "$TMP/t.json" fc1.weight)" 1e-5 && pass "table: by name, as measured" ||
    fail "table fc1: $(layer "$TMP/t.json" fc1.weight)"
close "$(layer "$TMP/t.json" fc3.weight)" 6e-6 && pass "table: by shape, plus its ops" ||
    fail "table fc3: $(layer "$TMP/t.json" fc3.weight)"
close "$(layer "$TMP/t.json" fc2.weight)" 1.196672e-6 && pass "table: the rest from the fallback" ||
    fail "table fc2: $(layer "$TMP/t.json" fc2.weight)"

# malformed new fields: exit 2, one line naming the file and the field
bad() { # pattern, sed expression
    sed "$2" "$F" >"$TMP/bad.json"
    expect_error 2 "bad.json: .*$1" -- "$BITPLAN" solve "$EX/mlp.onnx" \
        --sensitivity "$S/mlp_sens.json" --profile "$TMP/bad.json" \
        --budget size=100% -o "$TMP/never.json"
}
bad 'layer_model.serial.bits\[1\].per_mac' 's/"per_mac": 1e-12/"per_mac": -1e-12/'
bad 'layer_model.serial.seconds: .* \(expected 0..1\)' 's/"seconds": 1e-6, "per_tile"/"seconds": 2, "per_tile"/'
bad 'layer_model.source' 's/"source": "test: round numbers",\(.*\)"a_bits": 8,/\1"a_bits": 8,/; /"source": "test: round numbers",$/d'
bad 'layer_model.parallel.bits\[1\].w_bits: 4 \(expected widths in ascending order' 's/{"w_bits": 8, "per_mac": 5e-13/{"w_bits": 4, "per_mac": 5e-13/'
bad 'layer_model.parallel: missing' 's/"parallel": {"seconds": 5e-6/"parallel_": {"seconds": 5e-6/'
bad 'op_costs.ops\[2\].op: "Conv"' 's/"op": "MaxPool"/"op": "Conv"/'
bad 'op_costs.ops\[1\].op: "Quantize" also in op_costs.ops\[0\]' 's/"op": "Dequant"/"op": "Quantize"/'
bad 'op_costs.ops\[2\].parallel: expected an object' 's/"parallel": {"seconds": 4e-6, "per_element": 1e-10}/"parallel": 3/'
bad 'op_costs.parallel_elements' 's/"parallel_elements": 1000/"parallel_elements": -1/'
bad 'layer_model.a_bits' 's/"a_bits": 8,$/"a_bits": "8",/'
bad 'layer_model.serial.bits\[0\].tile_positions: expected a whole number from 1 to 256, got 0' 's/"tile_positions": 4/"tile_positions": 0/'
[ ! -e "$TMP/never.json" ] && pass "no plan from a bad profile" || fail "a plan from a bad profile"

# profile --measure --quick writes both objects, and solve reads them
if "$BITPLAN" profile --measure --quick --bits 4,8 -o "$TMP/hw.json" 2>"$TMP/err"; then
    for k in '"layer_model":' '"op_costs":' '"per_residual_output":' '"Quantize"' \
             '"tile_positions":'; do
        grep -q "$k" "$TMP/hw.json" && pass "measured profile has $k" ||
            fail "measured profile lacks $k"
    done
    solve "$TMP/mq.json" mlp mlp "$TMP/hw.json" 4,8
    t=$(total "$TMP/mq.json")
    awk -v t="$t" 'BEGIN { exit !(t > 0 && t < 1) }' && pass "priced by the measured profile: $t s" ||
        fail "measured profile priced $t"
else
    fail "profile --measure --quick: $(cat "$TMP/err")"
fi
# --json: the profile -o got, on one line of stdout, even through a device
"$BITPLAN" profile --measure --quick --threads 1 -o /dev/null --json >"$TMP/pj" 2>/dev/null &&
    [ "$(wc -l <"$TMP/pj")" -eq 1 ] && grep -q '^{"format":"bitplan-profile",' "$TMP/pj" &&
    grep -q '"kind":"roofline"' "$TMP/pj" && [ -c /dev/null ] &&
    pass "profile --json: one line, the roofline written" || fail "profile --json: $(head -c 200 "$TMP/pj")"
finish
