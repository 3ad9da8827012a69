#!/usr/bin/env python3
"""Exact per-layer Hessian references for the example models, with torch.

For every quantizable layer of mlp.onnx and cnn.onnx (the weight tensors
`bitplan inspect` lists) this computes the block H_ii of the Hessian of the
mean cross-entropy over the 256 calibration samples (against their labels)
w.r.t. that weight tensor, in float64, densely and exactly:

  - both models are piecewise linear in every weight tensor (ReLU, MaxPool,
    eval-mode BatchNorm, residual Add), so H_ii = (1/N) sum_n J_n^T M_n J_n
    with J_n the per-sample Jacobian of the logits (functorch vmap(jacrev))
    and M_n = diag(p_n) - p_n p_n^T.  With M_n = L_n L_n^T, H_ii = B^T B / N
    for the dense (N*C, numel) matrix B of the L_n^T J_n: the trace is
    ||B||_F^2 / N and the eigenvalues are the squared singular values of B
    over N (torch.linalg.svdvals), no estimate anywhere;
  - that identity is not taken on faith: for 32 columns of every block, the
    true Hessian column by double backward (torch.autograd.grad of the
    create_graph=True gradient) must equal the column of B^T B / N to 1e-9
    relative, or the script stops.

Writes examples/hessian_reference.json:
  {"models": {"cnn.onnx": {"loss", "samples", "layers": {NAME: {"numel",
   "trace", "top_eigenvalue", "frobenius", "diag_sq", "checked_columns",
   "max_rel_diff"}}}, "mlp.onnx": ...}}
(trace = sum of the diagonal, top_eigenvalue = largest eigenvalue,
frobenius = ||H_ii||_F, diag_sq = sum of squared diagonal entries, which give
the variance of one Hutchinson sample, 2 (frobenius^2 - diag_sq)).

The torch models are the classes of make_examples.py with the ONNX files'
initializers loaded by name (the exports keep torch's parameter names).
Run with Debian's Python (torch 1.13, functorch):

    /usr/bin/python3 examples/hessian_reference.py [--threads 2]

A few minutes on two cores.
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


def hessian_columns(model, x, y, w, cols):
    """True Hessian columns H[:, cols] of weight w by double backward."""
    for p in model.parameters():
        p.requires_grad_(False)
    w.requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    (g,) = torch.autograd.grad(loss, w, create_graph=True)
    g = g.reshape(-1)
    E = torch.zeros(len(cols), g.numel(), dtype=torch.float64)
    E[torch.arange(len(cols)), torch.tensor(cols)] = 1.0
    (out,) = torch.autograd.grad(g, w, grad_outputs=E, is_grads_batched=True)
    w.requires_grad_(False)
    return loss.item(), out.reshape(len(cols), -1).T


def gauss_newton_factor(model, x, name, w):
    """B (N*C, numel) with H_ii = B^T B / N (see the module docstring)."""
    import functorch
    from torch.nn.utils.stateless import functional_call

    def logits(wv, xs):
        return functional_call(model, {name: wv}, (xs.unsqueeze(0),)).squeeze(0)

    J = functorch.vmap(functorch.jacrev(logits), in_dims=(None, 0))(
        w.detach(), x)
    n, c = J.shape[0], J.shape[1]
    J = J.reshape(n, c, -1)
    with torch.no_grad():
        p = torch.softmax(model(x), dim=1)
    M = torch.diag_embed(p) - p.unsqueeze(2) * p.unsqueeze(1)
    lam, U = torch.linalg.eigh(M)
    L = U * lam.clamp(min=0).sqrt().unsqueeze(1)      # M = L L^T
    B = torch.bmm(L.transpose(1, 2), J)               # (n, c, numel)
    return B.reshape(n * c, -1)


def reference(cls, onnx_name, x_name, y_name):
    model = load_model(cls, os.path.join(HERE, onnx_name))
    x = torch.from_numpy(np.load(os.path.join(HERE, x_name))).double()
    y = torch.from_numpy(np.load(os.path.join(HERE, y_name))).long()
    layers = {}
    loss = None
    gen = torch.Generator().manual_seed(0)
    n_samples = x.shape[0]
    for name, w in layer_weights(model):
        t0 = time.time()
        B = gauss_newton_factor(model, x, name, w)
        n = B.shape[1]
        cols = torch.randperm(n, generator=gen)[:32].tolist()
        loss, Hc = hessian_columns(model, x, y, w, cols)
        Gc = B.T @ B[:, cols] / n_samples
        rel = ((Hc - Gc).abs().max() / Hc.abs().max()).item()
        if not rel <= 1e-9:
            raise SystemExit("%s %s: the Hessian differs from its "
                             "Gauss-Newton part (%.3g)" % (onnx_name, name, rel))
        sv = torch.linalg.svdvals(B)
        ev = sv * sv / n_samples
        diag = (B * B).sum(0) / n_samples
        layers[name] = {
            "numel": int(n),
            "trace": float(diag.sum()),
            "top_eigenvalue": float(ev[0]),
            "frobenius": float((ev * ev).sum().sqrt()),
            "diag_sq": float((diag * diag).sum()),
            "checked_columns": len(cols),
            "max_rel_diff": rel,
        }
        print("%s %-24s n=%-5d trace %.10g  top %.10g  |H-GN| %.1e  %.0f s"
              % (onnx_name, name, n, layers[name]["trace"],
                 layers[name]["top_eigenvalue"], rel, time.time() - t0),
              flush=True)
    return {"data": x_name, "labels": y_name, "samples": int(x.shape[0]),
            "loss": loss, "layers": layers}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("-o", "--out",
                    default=os.path.join(HERE, "hessian_reference.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(False)
    result = {
        "generator": "examples/hessian_reference.py",
        "method": "dense block H = B^T B / N from per-sample Jacobians "
                  "(exact for these piecewise-linear models, verified on 32 "
                  "columns per block by double backward), float64; "
                  "trace = ||B||_F^2 / N, eigenvalues = svdvals(B)^2 / N",
        "loss": "mean cross-entropy against the labels",
        "torch": torch.__version__,
        "models": {
            "mlp.onnx": reference(mk.MLP, "mlp.onnx", "digits_calib_flat.npy",
                                  "digits_calib_y.npy"),
            "cnn.onnx": reference(mk.CNN, "cnn.onnx", "digits_calib_x.npy",
                                  "digits_calib_y.npy"),
        },
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
