#!/usr/bin/env python3
"""A PyHessian-style torch loop for bench/bench_hessian.c: per-layer
Hutchinson traces of the CNN example's loss Hessian on its 256 calibration
samples, in float64.

As PyHessian's hessian.trace() does it: the gradient is taken once with
create_graph=True over the whole batch, then every sample draws one
Rademacher vector over all layer weights at once, computes the
Hessian-vector product with torch.autograd.grad(grads, params, v,
retain_graph=True), and records v_i^T (Hv)_i per layer.  Sampling stops when
every layer's relative standard error is at most --tol (at least --min
samples), after --samples samples, or after --max-seconds; in the last case
the samples still needed are projected from the current standard errors
(samples * max_i (rel_se_i / tol)^2) and the time from the measured rate.

Prints one JSON object on stdout:
  {"threads", "setup_seconds", "samples", "seconds", "per_sample_seconds",
   "done", "projected_samples", "projected_seconds", "layers": {NAME:
   {"trace", "rel_se"}}}

Run with Debian's Python: /usr/bin/python3 bench/pyhessian_ref.py --tol 0.02
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
EX = os.path.join(HERE, "..", "examples")
sys.path.insert(0, EX)
import hessian_reference as ref  # noqa: E402  (model loading)
import make_examples as mk  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tol", type=float, default=0.02)
    ap.add_argument("--min", type=int, default=30)
    ap.add_argument("--samples", type=int, default=0,
                    help="stop after exactly this many samples")
    ap.add_argument("--max-seconds", type=float, default=600.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(False)
    torch.manual_seed(args.seed)

    model = ref.load_model(mk.CNN, os.path.join(EX, "cnn.onnx"))
    x = torch.from_numpy(np.load(os.path.join(EX, "digits_calib_x.npy"))).double()
    y = torch.from_numpy(np.load(os.path.join(EX, "digits_calib_y.npy"))).long()
    layers = ref.layer_weights(model)
    names = [n for n, _ in layers]
    params = [p for _, p in layers]
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)

    t0 = time.time()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    setup = time.time() - t0

    m = 0
    mean = [0.0] * len(params)
    m2 = [0.0] * len(params)
    t0 = time.time()
    done = False
    while True:
        vs = [torch.randint_like(p, high=2) * 2 - 1 for p in params]
        hv = torch.autograd.grad(grads, params, grad_outputs=vs,
                                 retain_graph=True)
        m += 1
        for i, (v, h) in enumerate(zip(vs, hv)):
            s = float((v * h).sum())
            d = s - mean[i]
            mean[i] += d / m
            m2[i] += d * (s - mean[i])
        rel = [math.sqrt(m2[i] / (m - 1) / m) / abs(mean[i]) if m > 1 else
               math.inf for i in range(len(params))]
        elapsed = time.time() - t0
        if args.samples:
            if m >= args.samples:
                done = True
                break
            continue
        if m >= args.min and max(rel) <= args.tol:
            done = True
            break
        if elapsed >= args.max_seconds:
            break
    elapsed = time.time() - t0
    per = elapsed / m
    worst = max(rel)
    proj = m if done else int(math.ceil(m * (worst / args.tol) ** 2))
    print(json.dumps({
        "threads": args.threads,
        "setup_seconds": setup,
        "samples": m,
        "seconds": elapsed,
        "per_sample_seconds": per,
        "done": done,
        "projected_samples": proj,
        "projected_seconds": setup + proj * per,
        "layers": {n: {"trace": mean[i], "rel_se": rel[i]}
                   for i, n in enumerate(names)},
    }))


if __name__ == "__main__":
    main()
