#!/bin/sh
# bitplan inspect: layers, shapes, MACs, totals, JSON keys.
. "$SRCDIR/tests/lib.sh"

"$BITPLAN" inspect "$EX/cnn.onnx" --json >"$TMP/cnn.json" 2>"$TMP/cnn.txt" \
    && pass "inspect cnn" || fail "inspect cnn: $(cat "$TMP/cnn.txt")"
j=$(cat "$TMP/cnn.json")
for key in '"layers":\[' '"name":"stem.conv.weight"' '"op":"Conv"' '"shape":\[16,1,3,3\]' \
    '"numel":144' '"macs":9216' '"name":"down_proj.conv.weight","op":"Conv","shape":\[32,16,1,1\],"numel":512,"macs":8192' \
    '"name":"fc.weight","op":"Gemm","shape":\[10,32\],"numel":320,"macs":320' \
    '"total_params":19994' '"total_macs":533824' '"float32_bytes":79976'; do
    echo "$j" | grep -Eq "$key" && pass "cnn json has $key" || fail "cnn json lacks $key: $j"
done
[ "$(echo "$j" | grep -o '"name":' | wc -l)" -eq 7 ] && pass "cnn has 7 layers" || fail "cnn layer count"
grep -q "stem.conv.weight" "$TMP/cnn.txt" && pass "human table on stderr" || fail "no human table"

"$BITPLAN" inspect "$EX/mlp.onnx" --json 2>/dev/null | \
    grep -q '"name":"fc1.weight","op":"Gemm","shape":\[128,64\],"numel":8192,"macs":8192' \
    && pass "mlp fc1" || fail "mlp fc1"
"$BITPLAN" inspect --help | grep -q "usage: bitplan inspect" && pass "--help on stdout" || fail "--help"
"$BITPLAN" --help | grep -q "inspect" && pass "bitplan --help" || fail "bitplan --help"
finish
