#!/usr/bin/python3
"""Build bitplan's bundled example models and data.

Run with Debian's interpreter (it has torch 1.13, scikit-learn, onnx 1.12 and
numpy):

    /usr/bin/python3 examples/make_examples.py

Everything is written next to this script.  The script is deterministic: fixed
seeds, torch.use_deterministic_algorithms(True), one intra-op and one inter-op
thread, a fixed data split, and the exported ONNX files are stripped of every
doc_string, so two runs on the same machine give byte-identical files.

What it does:
  1. loads scikit-learn's bundled digits set (1797 8x8 images, 10 classes),
     scales pixels to [0, 1] and splits it into test (500), calibration (256)
     and train (the remaining 1041) with a fixed numpy RandomState permutation;
  2. trains an MLP and a small ResNet-style CNN with torch;
  3. exports each to ONNX at opset 13 and 17 (plus an MLP copy whose
     initializers use the typed float_data field instead of raw_data);
  4. writes the calibration/test data and the torch float32 test logits as .npy;
  5. checks every exported graph with onnx.checker and re-runs it with a small
     numpy interpreter of the ONNX op semantics, which must reproduce torch's
     logits (onnxruntime is not available here);
  6. writes README.md with the file list and the measured accuracies.
"""

import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import onnx
from onnx import numpy_helper
from sklearn.datasets import load_digits

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 20240601
N_TEST = 500
N_CALIB = 256

# ---------------------------------------------------------------------------
# determinism
# ---------------------------------------------------------------------------
torch.set_num_threads(1)
torch.set_num_interop_threads(1)
torch.use_deterministic_algorithms(True)
torch.manual_seed(SEED)
np.random.seed(SEED)


def out(name):
    return os.path.join(HERE, name)


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------
def load_data():
    d = load_digits()
    x = (d.data.astype(np.float32) / np.float32(16.0)).reshape(-1, 64)
    y = d.target.astype(np.int64)
    assert x.shape == (1797, 64) and x.min() >= 0.0 and x.max() <= 1.0
    # RandomState (legacy MT19937) permutations are stable across numpy versions.
    perm = np.random.RandomState(SEED).permutation(len(y))
    test = perm[:N_TEST]
    calib = perm[N_TEST:N_TEST + N_CALIB]
    train = perm[N_TEST + N_CALIB:]
    return {k: (np.ascontiguousarray(x[i]), np.ascontiguousarray(y[i]))
            for k, i in (("train", train), ("calib", calib), ("test", test))}


# ---------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------
class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 128)
        self.fc2 = nn.Linear(128, 64)
        self.fc3 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class ConvBN(nn.Sequential):
    """Conv (no bias, as in ResNet) followed by BatchNorm."""

    def __init__(self, cin, cout, k, stride=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2,
                              bias=False)
        self.bn = nn.BatchNorm2d(cout)


class CNN(nn.Module):
    """8x8x1 -> stem 16ch -> residual block (16) -> downsampling block (32, 4x4)
    -> MaxPool 3x3/s1/p1 (4x4) -> GlobalAveragePool -> view(N, -1) -> Linear."""

    def __init__(self):
        super().__init__()
        self.stem = ConvBN(1, 16, 3)
        # residual block, identity shortcut
        self.res1a = ConvBN(16, 16, 3)
        self.res1b = ConvBN(16, 16, 3)
        # downsampling block, projection shortcut
        self.down_a = ConvBN(16, 32, 3, stride=2)
        self.down_b = ConvBN(32, 32, 3)
        self.down_proj = ConvBN(16, 32, 1, stride=2)
        self.pool = nn.MaxPool2d(3, stride=1, padding=1)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = F.relu(self.stem(x))
        y = self.res1b(F.relu(self.res1a(x)))
        x = F.relu(y + x)
        y = self.down_b(F.relu(self.down_a(x)))
        x = F.relu(y + self.down_proj(x))
        x = self.pool(x)
        x = self.gap(x)
        x = x.view(x.size(0), -1)  # Shape/Gather/Unsqueeze/Concat/Reshape
        return self.fc(x)


def train(model, xtr, ytr, epochs, lr, wd, batch=64, shift_aug=False):
    g = torch.Generator().manual_seed(SEED)
    x = torch.from_numpy(xtr)
    y = torch.from_numpy(ytr)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
    steps = epochs * ((len(y) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr,
                                                total_steps=steps)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), batch):
            idx = order[i:i + batch]
            xb, yb = x[idx], y[idx]
            if shift_aug:
                xb = random_shift(xb, g)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    return model


def random_shift(xb, g):
    """Shift every image by up to one pixel in each direction, zero fill."""
    n = xb.shape[0]
    pad = F.pad(xb, (1, 1, 1, 1))
    d = torch.randint(0, 3, (n, 2), generator=g)
    return torch.stack([pad[i, :, d[i, 0]:d[i, 0] + 8, d[i, 1]:d[i, 1] + 8]
                        for i in range(n)])


@torch.no_grad()
def logits_of(model, x):
    model.eval()
    return model(torch.from_numpy(x)).numpy().astype(np.float32)


# ---------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------
def strip_doc_strings(m):
    m.doc_string = ""
    m.graph.doc_string = ""
    for n in m.graph.node:
        n.doc_string = ""
    for t in m.graph.initializer:
        t.doc_string = ""
    for v in list(m.graph.input) + list(m.graph.output) + \
            list(m.graph.value_info):
        v.doc_string = ""


def export(model, example, path, opset):
    # torch 1.13: training=TrainingMode.EVAL always runs the exporter's eval
    # peephole pass, which folds BatchNorm into the preceding Conv whatever
    # do_constant_folding says (checked: Conv+BN+ReLU exports as Conv+Relu with
    # both settings).  TrainingMode.PRESERVE with the module in eval() mode
    # keeps BatchNormalization nodes in inference form (one output; at opset
    # >= 14 with training_mode=0) and keeps parameter names as initializer
    # names.  do_constant_folding=False keeps the whole
    # Shape->Gather->Unsqueeze->Concat->Reshape chain of x.view(x.size(0), -1)
    # (with True the constant -1 is pre-unsqueezed) and avoids the exporter's
    # warning about folding in PRESERVE mode.
    model.eval()
    torch.onnx.export(
        model, example, path,
        export_params=True,
        opset_version=opset,
        training=torch.onnx.TrainingMode.PRESERVE,
        do_constant_folding=False,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )
    m = onnx.load(path)
    strip_doc_strings(m)
    onnx.checker.check_model(m)
    onnx.save(m, path)
    return m


def to_typed_fields(m):
    """Move every initializer's payload from raw_data to its typed field."""
    TP = onnx.TensorProto
    field = {TP.FLOAT: "float_data", TP.DOUBLE: "double_data",
             TP.INT64: "int64_data", TP.INT32: "int32_data",
             TP.UINT64: "uint64_data"}
    for t in m.graph.initializer:
        a = numpy_helper.to_array(t)
        t.ClearField("raw_data")
        getattr(t, field[t.data_type]).extend(a.ravel().tolist())
        assert np.array_equal(numpy_helper.to_array(t), a)
        assert not t.HasField("raw_data")
    return m


# ---------------------------------------------------------------------------
# a small numpy interpreter of the ONNX ops these graphs use, to check that the
# exported graphs mean what torch computed (no onnxruntime here)
# ---------------------------------------------------------------------------
def _attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _conv(x, w, b, a):
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    assert a.get("group", 1) == 1 and cg == c
    assert list(a.get("dilations", [1, 1])) == [1, 1]
    sh, sw = a.get("strides", [1, 1])
    pt, pl, pb, pr = a.get("pads", [0, 0, 0, 0])
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    oh = (h + pt + pb - kh) // sh + 1
    ow = (wd + pl + pr - kw) // sw + 1
    y = np.zeros((n, m, oh, ow), np.float64)
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw]
            y += np.einsum("nchw,mc->nmhw", patch, w[:, :, i, j])
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y


def _maxpool(x, a):
    kh, kw = a["kernel_shape"]
    sh, sw = a.get("strides", [1, 1])
    pt, pl, pb, pr = a.get("pads", [0, 0, 0, 0])
    assert a.get("ceil_mode", 0) == 0
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)),
                constant_values=-np.inf)
    oh = (h + pt + pb - kh) // sh + 1
    ow = (w + pl + pr - kw) // sw + 1
    y = np.full((n, c, oh, ow), -np.inf)
    for i in range(kh):
        for j in range(kw):
            y = np.maximum(y, xp[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw])
    return y


def run_onnx(m, x):
    env = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    env[m.graph.input[0].name] = x.astype(np.float64)
    for node in m.graph.node:
        a = _attrs(node)
        i = [env[k] if k else None for k in node.input]
        op = node.op_type
        if op == "Gemm":
            A = i[0].T if a.get("transA", 0) else i[0]
            B = i[1].T if a.get("transB", 0) else i[1]
            r = a.get("alpha", 1.0) * (A @ B)
            if len(i) > 2 and i[2] is not None:
                r = r + a.get("beta", 1.0) * i[2]
        elif op == "MatMul":
            r = i[0] @ i[1]
        elif op == "Relu":
            r = np.maximum(i[0], 0)
        elif op == "Add":
            r = i[0] + i[1]
        elif op == "Conv":
            r = _conv(i[0], i[1], i[2] if len(i) > 2 else None, a)
        elif op == "BatchNormalization":
            assert a.get("training_mode", 0) == 0 and len(node.output) == 1
            xx, s, bb, mean, var = i
            sh = (1, -1, 1, 1)
            r = (xx - mean.reshape(sh)) / np.sqrt(
                var.reshape(sh).astype(np.float64) + a.get("epsilon", 1e-5))
            r = r * s.reshape(sh) + bb.reshape(sh)
        elif op == "MaxPool":
            r = _maxpool(i[0], a)
        elif op == "GlobalAveragePool":
            r = i[0].mean(axis=(2, 3), keepdims=True)
        elif op == "Shape":
            r = np.array(i[0].shape, np.int64)
        elif op == "Constant":
            r = numpy_helper.to_array(a["value"])
        elif op == "Gather":
            r = np.take(i[0], i[1], axis=a.get("axis", 0))
        elif op == "Unsqueeze":
            r = i[0]
            for ax in sorted(int(v) for v in i[1]):
                r = np.expand_dims(r, ax)
        elif op == "Concat":
            r = np.concatenate([np.atleast_1d(v) for v in i],
                               axis=a.get("axis", 0))
        elif op == "Reshape":
            r = i[0].reshape([int(v) for v in i[1]])
        elif op == "Flatten":
            ax = a.get("axis", 1)
            r = i[0].reshape(int(np.prod(i[0].shape[:ax])), -1)
        elif op == "Identity":
            r = i[0]
        else:
            raise NotImplementedError(op)
        assert len(node.output) == 1, node
        env[node.output[0]] = r
    return env[m.graph.output[0].name]


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------
def save_npy(name, a, dtype):
    a = np.ascontiguousarray(a, dtype=dtype)
    np.save(out(name), a, allow_pickle=False)
    return a


def describe(m):
    ops = sorted({n.op_type for n in m.graph.node})
    bn = sum(n.op_type == "BatchNormalization" for n in m.graph.node)
    return ops, bn


def main():
    data = load_data()
    xtr, ytr = data["train"]
    xca, yca = data["calib"]
    xte, yte = data["test"]
    img = lambda a: a.reshape(-1, 1, 8, 8)

    # --- data files
    save_npy("digits_calib_x.npy", img(xca), "<f4")
    save_npy("digits_test_x.npy", img(xte), "<f4")
    save_npy("digits_calib_flat.npy", xca, "<f4")
    save_npy("digits_test_flat.npy", xte, "<f4")
    save_npy("digits_calib_y.npy", yca, "<i8")
    save_npy("digits_test_y.npy", yte, "<i8")

    results = {}

    # --- MLP
    torch.manual_seed(SEED)
    mlp = train(MLP(), xtr, ytr, epochs=60, lr=3e-3, wd=1e-4)
    # --- CNN
    torch.manual_seed(SEED + 1)
    cnn = train(CNN(), img(xtr), ytr, epochs=40, lr=3e-3, wd=1e-4,
                shift_aug=True)

    files = {}
    for name, model, xt, xc in (("mlp", mlp, xte, xca),
                                ("cnn", cnn, img(xte), img(xca))):
        lt = logits_of(model, xt)
        save_npy(name + "_test_logits.npy", lt, "<f4")
        acc_test = float((lt.argmax(1) == yte).mean())
        acc_calib = float((logits_of(model, xc).argmax(1) == yca).mean())
        results[name] = (acc_test, acc_calib)
        example = torch.from_numpy(xt[:2])
        for fname, opset in ((name + ".onnx", 13), (name + "_op17.onnx", 17)):
            m = export(model, example, out(fname), opset)
            files[fname] = m
            ref = run_onnx(m, xt)
            err = float(np.abs(ref - lt).max())
            assert err < 1e-4, (fname, err)
            print("%-16s opset %d  numpy-interpreter vs torch max|diff| %.2e"
                  % (fname, opset, err))
        if name == "mlp":
            m = to_typed_fields(onnx.load(out("mlp.onnx")))
            onnx.checker.check_model(m)
            onnx.save(m, out("mlp_typed.onnx"))
            files["mlp_typed.onnx"] = m
            ref = run_onnx(onnx.load(out("mlp_typed.onnx")), xt)
            assert np.abs(ref - lt).max() < 1e-4

    for name, (at, ac) in results.items():
        print("%s: test accuracy %.1f%% (%d/%d), calib accuracy %.1f%%"
              % (name, 100 * at, round(at * N_TEST), N_TEST, 100 * ac))
    for fname, m in files.items():
        ops, bn = describe(m)
        print("%-16s opset %d ops %s BatchNormalization nodes: %d"
              % (fname, m.opset_import[0].version, ops, bn))
    assert results["mlp"][0] >= 0.95 and results["cnn"][0] >= 0.97, results

    write_readme(results, files)


def write_readme(results, files):
    acc = {k: "%.1f%% (%d/%d)" % (100 * v[0], round(v[0] * N_TEST), N_TEST)
           for k, v in results.items()}
    cal = {k: "%.1f%%" % (100 * v[1]) for k, v in results.items()}
    ops = {k: ", ".join(describe(m)[0]) for k, m in files.items()}
    text = f"""# Example models and data

Small real models trained on scikit-learn's bundled *digits* data set (1797
grey-scale 8x8 images of the digits 0-9, pixel values 0..16 scaled to [0, 1]),
for the tests, the benchmarks and trying bitplan out.  Everything here is made
by `make_examples.py`; regenerate with

    /usr/bin/python3 examples/make_examples.py

(Debian's Python: it has torch 1.13, scikit-learn, onnx 1.12 and numpy).  The
script is deterministic (fixed seeds, deterministic torch algorithms, one
thread, doc_strings stripped from the ONNX files): two runs on one machine give
byte-identical files.  A different CPU or library build may change the trained
weights in the last bits.

## Split

A fixed permutation (`numpy.random.RandomState({SEED}).permutation(1797)`):
the first {N_TEST} indices are the test set, the next {N_CALIB} the calibration
set, the remaining {1797 - N_TEST - N_CALIB} the training set (not shipped).

## Accuracy (torch, float32)

| model | test ({N_TEST}) | calibration ({N_CALIB}) |
|---|---|---|
| mlp | {acc['mlp']} | {cal['mlp']} |
| cnn | {acc['cnn']} | {cal['cnn']} |

## Data (.npy, format version 1.0, C order, little-endian)

| file | shape | dtype | use |
|---|---|---|---|
| `digits_calib_x.npy` | (256, 1, 8, 8) | float32 | calibration / sensitivity inputs for the CNN |
| `digits_test_x.npy` | (500, 1, 8, 8) | float32 | test inputs for the CNN |
| `digits_calib_flat.npy` | (256, 64) | float32 | the same calibration images, flattened, for the MLP |
| `digits_test_flat.npy` | (500, 64) | float32 | the same test images, flattened, for the MLP |
| `digits_calib_y.npy` | (256,) | int64 | calibration labels 0-9 |
| `digits_test_y.npy` | (500,) | int64 | test labels 0-9 |
| `mlp_test_logits.npy` | (500, 10) | float32 | torch's float32 logits of the MLP on `digits_test_flat.npy` |
| `cnn_test_logits.npy` | (500, 10) | float32 | torch's float32 logits of the CNN on `digits_test_x.npy` |

The logits are the reference for the float executor: the script re-runs every
exported graph with a small float64 numpy interpreter of the ONNX operator
semantics and checks it matches these logits to within 1e-4.

## Models (.onnx)

All have one input `input` (float32, batch dimension symbolic: `batch`) and
one output `logits` (float32, `batch` x 10), initializers named after the
torch parameters (`fc1.weight`, `stem.bn.running_mean`, ...), node names like
`/fc1/Gemm`, and no doc_strings.  Exported with
`training=TrainingMode.PRESERVE` on the eval-mode model and
`do_constant_folding=False`: with `TrainingMode.EVAL` torch 1.13 folds every
BatchNorm into its Conv regardless of `do_constant_folding`, and this way the
BatchNormalization nodes stay (in inference form) for bitplan to fold itself.

| file | opset | ops | exercises |
|---|---|---|---|
| `mlp.onnx` | 13 | {ops['mlp.onnx']} | fully connected layers (Gemm, transB=1), raw_data initializers |
| `mlp_op17.onnx` | 17 | {ops['mlp_op17.onnx']} | the same weights at opset 17 |
| `mlp_typed.onnx` | 13 | {ops['mlp_typed.onnx']} | same as `mlp.onnx` but every initializer stored in the typed `float_data` field instead of `raw_data` (the loader's typed-field path) |
| `cnn.onnx` | 13 | {ops['cnn.onnx']} | Conv (3x3 pad 1, 3x3 stride 2, 1x1 stride 2 projection, no bias), BatchNormalization, residual Add, MaxPool 3x3/s1/p1, GlobalAveragePool, the `x.view(x.size(0), -1)` chain Shape -> Gather -> Unsqueeze -> Concat -> Reshape with Constant inputs, Gemm |
| `cnn_op17.onnx` | 17 | {ops['cnn_op17.onnx']} | the same at opset 17 (BatchNormalization carries `training_mode=0`) |

### mlp

input (N, 64) -> Linear(64, 128) -> ReLU -> Linear(128, 64) -> ReLU ->
Linear(64, 10).  17,226 parameters.

### cnn

input (N, 1, 8, 8) ->
stem: Conv 1->16 3x3 p1 -> BN -> ReLU ->
residual block: [Conv 16->16 3x3 -> BN -> ReLU -> Conv 16->16 3x3 -> BN] + input -> ReLU ->
downsampling block: [Conv 16->32 3x3 s2 -> BN -> ReLU -> Conv 32->32 3x3 -> BN] + [Conv 16->32 1x1 s2 -> BN] -> ReLU (4x4) ->
MaxPool 3x3 s1 p1 -> GlobalAveragePool -> `view(N, -1)` -> Linear(32, 10).
Convs followed by BN have no bias (as in ResNet).
Trained with random one-pixel shifts of the training images.
19,706 parameters (plus 288 BN running statistics).

Exporter quirks kept on purpose, as real torch exports have them:

- `down_proj.bn.bias` is not an initializer but the output of
  `Identity(down_b.bn.bias)`.  The two BN biases feed the same Add, so they
  get identical gradients from identical zero initialisation and stay exactly
  equal; torch's exporter deduplicates equal initializers into an Identity
  node (ResNets with projection shortcuts trained from scratch commonly show
  the same).
- The flatten is `Shape -> Gather(axis 0, scalar int64 index 0 from a
  Constant) -> Unsqueeze(axes [0] as a Constant input, opset 13 style)`,
  concatenated with `Unsqueeze(Constant -1)` into the Reshape target `[N, -1]`.
  At opset 17 Reshape also carries `allowzero=0`.

## Other files

- `make_examples.py`: the script that makes everything above.
- `README.md`: this file (written by the script).
"""
    with open(out("README.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    sys.exit(main())
