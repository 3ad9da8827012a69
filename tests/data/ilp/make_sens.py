#!/usr/bin/python3
"""Writes cnn_sens.json and mlp_sens.json: sensitivity files for the bundled
example models, for bitplan's solve/sweep tests (the build never runs this).

Perturbations ||Q_b(W) - W||^2 are exact, computed from the models' weights
with bitplan's quantizer (src/quant.h: symmetric, per output channel,
qmax = 2^(b-1)-1, round half away from zero).  The Hessian traces and top
eigenvalues are NOT estimated: they are illustrative, hand-picked values of
plausible size (first and last layers most sensitive), so that the tests do
not depend on the sensitivity estimator.  Regenerate with
    /usr/bin/python3 tests/data/ilp/make_sens.py
"""
import hashlib
import json
import os

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
BITS = [2, 3, 4, 5, 6, 8]

# illustrative trace per weight (Tr(H)/n) and top eigenvalue / trace ratio
TRACE_PER_WEIGHT = {
    "stem.conv.weight": 0.40, "res1a.conv.weight": 0.060,
    "res1b.conv.weight": 0.045, "down_a.conv.weight": 0.030,
    "down_b.conv.weight": 0.012, "down_proj.conv.weight": 0.090,
    "fc.weight": 0.25,
    "fc1.weight": 0.020, "fc2.weight": 0.010, "fc3.weight": 0.15,
}


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def perturbation(w, bits, channel_first):
    w = w.astype(np.float64)
    m = w.reshape(w.shape[0], -1) if channel_first else w.T.reshape(w.shape[-1], -1)
    qmax = 2 ** (bits - 1) - 1
    total = 0.0
    for row in m:
        mx = np.abs(row).max()
        scale = mx / qmax if mx > 0 else 1.0
        x = row / scale
        q = np.sign(x) * np.floor(np.abs(x) + 0.5)
        q = np.clip(q, -qmax, qmax)
        total += float(((q * scale - row) ** 2).sum())
    return total


def numel(shape):
    return int(np.prod(shape)) if shape else 1


def make(model_name, data_name):
    path = os.path.join(ROOT, "examples", model_name + ".onnx")
    m = onnx.load(path)
    inf = shape_inference.infer_shapes(m)
    dims = {}
    for vi in list(inf.graph.value_info) + list(inf.graph.input) + list(inf.graph.output):
        dims[vi.name] = [d.dim_value if d.HasField("dim_value") else 1
                         for d in vi.type.tensor_type.shape.dim]
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    # as bitplan counts them: every float constant after folding, so an
    # Identity of an initializer (torch's export of a shared tensor) twice
    float_params = sum(a.size for a in inits.values() if a.dtype.kind == "f")
    float_params += sum(inits[n.input[0]].size for n in m.graph.node
                        if n.op_type == "Identity" and n.input[0] in inits)
    # the integer executor's per-graph constants (src/qgraph.h): 4 bytes for
    # the input's scale, 5 per residual Add (fused into its conv in these
    # models) and per global pooling; the last Gemm's int32 output needs none
    ops = [n.op_type for n in m.graph.node]
    const_bytes = 4 + 5 * ops.count("Add") + 5 * ops.count("GlobalAveragePool")
    layers = []
    for node in m.graph.node:
        if node.op_type not in ("Conv", "Gemm"):
            continue
        wname = node.input[1]
        w = inits[wname]
        trans_b = any(a.name == "transB" and a.i for a in node.attribute)
        channel_first = node.op_type == "Conv" or trans_b
        out_ch = w.shape[0] if channel_first else w.shape[-1]
        xin, yout = dims[node.input[0]], dims[node.output[0]]
        in_numel, out_numel = numel(xin[1:]), numel(yout[1:])
        if node.op_type == "Conv":
            macs = out_numel * numel(w.shape[1:])
        else:
            # the Gemm's input comes through a Reshape shape inference
            # cannot follow: (1, K) @ W -> (1, N)
            in_numel = w.shape[1] if trans_b else w.shape[0]
            out_numel = w.shape[0] if trans_b else w.shape[1]
            macs = int(w.size)
        tr = TRACE_PER_WEIGHT[wname] * w.size
        pert = {str(b): perturbation(w, b, channel_first) for b in BITS}
        layers.append({
            "name": wname, "op": node.op_type, "numel": int(w.size),
            "macs": int(macs), "out_channels": int(out_ch),
            "in_numel": int(in_numel), "out_numel": int(out_numel),
            "trace": {"mean": tr, "stderr": 0.05 * tr, "samples": 64,
                      "method": "hutchinson"},
            "top_eigenvalue": {"value": 0.2 * tr / np.sqrt(w.size) * 10,
                               "iterations": 20},
            "perturbation": pert,
            "omega": {b: tr / w.size * v for b, v in pert.items()},
        })
    data = os.path.join(ROOT, "examples", data_name)
    doc = {
        "format": "bitplan-sensitivity", "version": 1,
        "model": {"path": "examples/%s.onnx" % model_name, "sha256": sha256(path),
                  "float_params": int(float_params), "other_params": 0,
                  "const_bytes": const_bytes},
        "data": {"path": "examples/" + data_name, "sha256": sha256(data),
                 "samples": 256},
        "loss": 0.05, "seed": 1,
        "settings": {"note": "illustrative traces (tests/data/ilp/make_sens.py)"},
        "stop_reason": "exact",
        "layers": layers,
    }
    out = os.path.join(HERE, model_name + "_sens.json")
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print("wrote", out)


make("cnn", "digits_calib_x.npy")
make("mlp", "digits_calib_flat.npy")
