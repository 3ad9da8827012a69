#!/usr/bin/env python3
"""Exact per-layer Hessian references for the example models, with torch.

For every quantizable layer of mlp.onnx and cnn.onnx (the weight tensors
`bitplan inspect` lists) this computes the block H_ii of the Hessian of the
mean cross-entropy over the 256 calibration samples (against their labels)
w.r.t. that weight tensor, in float64, column by column: column j is
d(grad)/dW_j by double backward (torch.autograd.grad of the gradient, with
create_graph=True, batched over columns with is_grads_batched).  No
estimator and no structural shortcut (such as Gauss-Newton) is used: the
block is the true Hessian as autograd defines it (ReLU'' = 0), symmetrised
only to cancel rounding, and diagonalised with torch.linalg.eigvalsh.

Writes examples/hessian_reference.json:
  {"models": {"cnn.onnx": {"loss", "samples", "layers": {NAME: {"numel",
   "trace", "top_eigenvalue", "frobenius", "diag_sq"}}}, "mlp.onnx": ...}}
(trace = sum of the diagonal, top_eigenvalue = largest eigenvalue,
frobenius = ||H_ii||_F, diag_sq = sum of squared diagonal entries, which give
the variance of one Hutchinson sample, 2 (frobenius^2 - diag_sq)).

The torch models are the classes of make_examples.py with the ONNX files'
initializers loaded by name (the exports keep torch's parameter names).
Run with Debian's Python (torch 1.13):

    /usr/bin/python3 examples/hessian_reference.py [--threads 2]

It takes about half an hour on two cores (the CNN's 19,408 columns).
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import onnx
import torch
from onnx import numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_examples as mk  # noqa: E402  (the model classes)


def load_model(cls, path):
    """A float64 eval-mode torch model with the ONNX file's weights."""
    model = cls()
    inits = {i.name: numpy_helper.to_array(i)
             for i in onnx.load(path).graph.initializer}
    sd = model.state_dict()
    for k in sd:
        if k in inits:
            sd[k] = torch.from_numpy(inits[k].copy())
        elif k == "down_proj.bn.bias":
            # deduplicated by the exporter into Identity(down_b.bn.bias)
            sd[k] = torch.from_numpy(inits["down_b.bn.bias"].copy())
        elif not k.endswith("num_batches_tracked"):
            raise SystemExit("%s: no initializer for %s" % (path, k))
    model.load_state_dict(sd)
    return model.double().eval()


def layer_weights(model):
    """(name, parameter) of every Conv / Linear weight, in graph order."""
    out = []
    for name, mod in model.named_modules():
        if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)):
            out.append((name + ".weight", mod.weight))
    return out


def block_hessian(model, x, y, w, chunk):
    """Dense H_ii for weight w, column by column by double backward."""
    for p in model.parameters():
        p.requires_grad_(False)
    w.requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    (g,) = torch.autograd.grad(loss, w, create_graph=True)
    g = g.reshape(-1)
    n = g.numel()
    H = torch.empty(n, n, dtype=torch.float64)
    for j0 in range(0, n, chunk):
        k = min(chunk, n - j0)
        E = torch.zeros(k, n, dtype=torch.float64)
        E[torch.arange(k), torch.arange(j0, j0 + k)] = 1.0
        (cols,) = torch.autograd.grad(g, w, grad_outputs=E,
                                      is_grads_batched=True,
                                      retain_graph=True)
        H[:, j0:j0 + k] = cols.reshape(k, n).T
    w.requires_grad_(False)
    return loss.item(), H


def reference(cls, onnx_name, x_name, y_name, chunk):
    model = load_model(cls, os.path.join(HERE, onnx_name))
    x = torch.from_numpy(np.load(os.path.join(HERE, x_name))).double()
    y = torch.from_numpy(np.load(os.path.join(HERE, y_name))).long()
    layers = {}
    loss = None
    for name, w in layer_weights(model):
        t0 = time.time()
        loss, H = block_hessian(model, x, y, w, chunk)
        asym = (H - H.T).abs().max().item()
        H = (H + H.T) / 2
        ev = torch.linalg.eigvalsh(H)
        d = torch.diagonal(H)
        layers[name] = {
            "numel": int(w.numel()),
            "trace": float(d.sum()),
            "top_eigenvalue": float(ev[-1]),
            "frobenius": float(torch.linalg.norm(H)),
            "diag_sq": float((d * d).sum()),
        }
        print("%s %-24s n=%-5d trace %.10g  top %.10g  |H-H^T| %.1e  %.0f s"
              % (onnx_name, name, w.numel(), layers[name]["trace"],
                 layers[name]["top_eigenvalue"], asym, time.time() - t0),
              flush=True)
        del H
    return {"data": x_name, "labels": y_name, "samples": int(x.shape[0]),
            "loss": loss, "layers": layers}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=64,
                    help="Hessian columns per batched double backward")
    ap.add_argument("-o", "--out",
                    default=os.path.join(HERE, "hessian_reference.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(False)
    result = {
        "generator": "examples/hessian_reference.py",
        "method": "dense block Hessian by double backward, column by column, "
                  "float64; eigvalsh",
        "loss": "mean cross-entropy against the labels",
        "torch": torch.__version__,
        "models": {
            "mlp.onnx": reference(mk.MLP, "mlp.onnx", "digits_calib_flat.npy",
                                  "digits_calib_y.npy", args.chunk),
            "cnn.onnx": reference(mk.CNN, "cnn.onnx", "digits_calib_x.npy",
                                  "digits_calib_y.npy", args.chunk),
        },
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
