#!/bin/sh
# bitplan eval on every bundled model against torch's stored outputs.
. "$SRCDIR/tests/lib.sh"

for m in mlp mlp_op17 mlp_typed cnn cnn_op17; do
    case $m in mlp*) x=digits_test_flat; ref=mlp ;; *) x=digits_test_x; ref=cnn ;; esac
    if "$BITPLAN" eval "$EX/$m.onnx" --data "$EX/$x.npy" --labels "$EX/digits_test_y.npy" \
        --out "$TMP/$m.npy" --json >"$TMP/$m.json" 2>"$TMP/$m.err"; then
        if r=$("$NPYCMP" "$TMP/$m.npy" "$EX/${ref}_test_logits.npy" 1e-4 --argmax); then
            pass "$m vs torch: $r"
        else
            fail "$m vs torch: $r"
        fi
        grep -q '"samples":500' "$TMP/$m.json" && grep -q '"accuracy":0\.9' "$TMP/$m.json" \
            && pass "$m --json: $(cat "$TMP/$m.json")" || fail "$m --json: $(cat "$TMP/$m.json")"
        # no --batch: the examples' activations keep the automatic batch at 64
        grep -q '"batch":64,' "$TMP/$m.json" && grep -q 'samples (batch 64)' "$TMP/$m.err" \
            && pass "$m: automatic batch 64" || fail "$m: automatic batch: $(cat "$TMP/$m.json" "$TMP/$m.err")"
    else
        fail "$m: eval failed: $(cat "$TMP/$m.err")"
    fi
done

# opset 13 and 17 exports of one model give identical outputs
for ref in mlp cnn; do
    if r=$("$NPYCMP" "$TMP/$ref.npy" "$TMP/${ref}_op17.npy" 0); then
        pass "$ref opset 13 == opset 17: $r"
    else
        fail "$ref opset 13 != opset 17: $r"
    fi
done
r=$("$NPYCMP" "$TMP/mlp.npy" "$TMP/mlp_typed.npy" 0) && pass "raw_data == typed fields: $r" \
    || fail "raw_data != typed fields: $r"

# batch size does not change the numbers beyond float32 summation order
"$BITPLAN" eval "$EX/cnn.onnx" --data "$EX/digits_test_x.npy" --batch 1 --out "$TMP/b1.npy" 2>/dev/null
"$BITPLAN" eval "$EX/cnn.onnx" --data "$EX/digits_test_x.npy" --batch 256 --out "$TMP/b256.npy" 2>/dev/null
r=$("$NPYCMP" "$TMP/b1.npy" "$TMP/b256.npy" 1e-5 --argmax) && pass "batch 1 vs 256: $r" \
    || fail "batch 1 vs 256: $r"

# --samples keeps the first N (and the batch holds no more than those)
"$BITPLAN" eval "$EX/cnn.onnx" --data "$EX/digits_test_x.npy" --labels "$EX/digits_test_y.npy" \
    --samples 10 --json 2>/dev/null | grep -q '"samples":10,"batch":10,' && pass "--samples 10" || fail "--samples 10"
# an explicit --batch is used as given
"$BITPLAN" eval "$EX/mlp.onnx" --data "$EX/digits_test_flat.npy" --batch 7 --json 2>/dev/null |
    grep -q '"samples":500,"batch":7}' && pass "--batch 7 reported" || fail "--batch 7 not reported"

# the op zoo: every op of the float executor, three opsets, against torch
for z in zoo1 zoo2; do
    for v in 11 13 17; do
        if "$BITPLAN" eval "$TD/zoo/${z}_op$v.onnx" --data "$TD/zoo/${z}_x.npy" \
            --out "$TMP/$z.$v.npy" 2>"$TMP/err" &&
            r=$("$NPYCMP" "$TMP/$z.$v.npy" "$TD/zoo/${z}_y.npy" 1e-5); then
            pass "$z opset $v vs torch: $r"
        else
            fail "$z opset $v: $(cat "$TMP/err") ${r:-}"
        fi
    done
done
finish
