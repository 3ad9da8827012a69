#!/usr/bin/python3
"""The Hessian evidence of hessian_evidence.py, cross-validated.

    /usr/bin/python3 examples/hessian_cv.py [--bitplan PATH] [--models mlp,cnn]
                                            [--folds 5] [--random 10] [--seed 1]

hessian_evidence.py judges each example model on its one 500-sample test
set, where a plan's loss increase at 4 bits (about 0.005-0.02 for the MLP)
is the size of its standard error.  This script asks the same question with
every one of the 1797 digits as a test sample once: the data set is cut
into --folds folds; for each, a model of the same architecture is trained
by make_examples.py's recipe on the rest less 256 calibration samples,
exported to ONNX, and the three kinds of plan (`bitplan solve` with its
default --metric trace, the uniform plan, and the mean of --random random
plans of the same size; 3 and 4 average weight bits) are run on the fold in
bitplan's integer executor.  It prints each fold's loss increases (integer
minus float cross-entropy) and accuracies, and the differences pooled over
all folds' samples with their standard error.

Needs Debian's /usr/bin/python3 with torch, onnx and scikit-learn (it
trains); takes about a minute per fold for the MLP, several for the CNN.
Deterministic with --seed.  Exit status 0 when, pooled over the folds, the
Hessian plans raise the loss less than the uniform and the random plans at
both budgets, 1 otherwise.
"""
import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_examples as mk          # noqa: E402  (the models and the recipe)
import hessian_evidence as ev       # noqa: E402  (plans and measurements)


def folds_of(n, k, seed):
    perm = np.random.RandomState(seed).permutation(n)
    return [perm[i::k] for i in range(k)]


def train_fold(name, xtr, ytr, seed):
    """The model make_examples.py trains, on this fold's training part."""
    if name == "mlp":
        torch.manual_seed(seed)
        return mk.train(mk.MLP(), xtr, ytr, epochs=60, lr=3e-3, wd=1e-4)
    torch.manual_seed(seed + 1)
    return mk.train(mk.CNN(), xtr.reshape(-1, 1, 8, 8), ytr, epochs=40,
                    lr=3e-3, wd=1e-4, shift_aug=True)


def fold_run(a, name, k, test_idx, rest_idx, x, y, tmp, rng):
    """One fold: train, export, solve and run the plans; returns, per
    budget, (hessian, uniform, random list) measurements."""
    calib_idx, train_idx = rest_idx[:mk.N_CALIB], rest_idx[mk.N_CALIB:]
    shape = (-1, 1, 8, 8) if name == "cnn" else (-1, 64)
    model_t = train_fold(name, x[train_idx], y[train_idx], mk.SEED + k)
    paths = {}
    for part, idx in (("calib", calib_idx), ("test", test_idx)):
        paths[part] = os.path.join(tmp, f"{name}{k}_{part}_x.npy")
        np.save(paths[part], np.ascontiguousarray(x[idx].reshape(shape), "<f4"))
        paths[part + "_y"] = os.path.join(tmp, f"{name}{k}_{part}_y.npy")
        np.save(paths[part + "_y"], np.ascontiguousarray(y[idx], "<i8"))
    model = os.path.join(tmp, f"{name}{k}.onnx")
    mk.export(model_t, torch.from_numpy(x[test_idx[:2]].reshape(shape)), model, 13)
    sha = hashlib.sha256(open(model, "rb").read()).hexdigest()
    layers = json.loads(ev.run([a.bitplan, "inspect", model, "--json"]).stdout)["layers"]
    for l in layers:
        l["channels"] = l["shape"][0]
    out = {}
    fixed = ev.const_bytes(a.bitplan, model, sha, layers, tmp, paths["test"])
    for b in (3, 4):
        budget = sum(ev.layer_bytes(l["numel"], l["channels"], b) for l in layers)
        hp = os.path.join(tmp, f"{name}{k}_h{b}.json")
        s = ev.run([a.bitplan, "solve", model, "--data", paths["calib"],
                    "--labels", paths["calib_y"], "--profile", "bops",
                    "--bits", ",".join(map(str, ev.WIDTHS)), "--abits", "8",
                    "--budget", f"size={budget + fixed}", "--seed", str(a.seed), "-o", hp])
        if s.returncode != 0:
            sys.exit(f"bitplan solve failed:\n{s.stderr}")
        hbits = [l["w_bits"] for l in json.load(open(hp))["layers"]]
        up = os.path.join(tmp, f"{name}{k}_u{b}.json")
        ev.write_plan(up, model, sha, layers, [b] * len(layers))
        meas = lambda p: ev.measure(a.bitplan, model, p, paths["calib"],
                                    paths["test"], paths["test_y"])
        rs = []
        for j in range(a.random):
            rp = os.path.join(tmp, f"{name}{k}_r{b}_{j}.json")
            ev.write_plan(rp, model, sha, layers, ev.random_plan(rng, layers, budget))
            rs.append(meas(rp))
        out[b] = (meas(hp), meas(up), rs, hbits)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bitplan", default=os.environ.get("BITPLAN", "bitplan"))
    ap.add_argument("--models", default="mlp")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--random", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    x, y = mk.load_digits(return_X_y=True)
    x = (x.astype(np.float32) / np.float32(16.0)).reshape(-1, 64)
    y = y.astype(np.int64)
    folds = folds_of(len(y), a.folds, mk.SEED)
    ok_all = True
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.models.split(","):
            if name not in ("mlp", "cnn"):
                sys.exit(f"--models: mlp or cnn, not {name!r}")
            rng = random.Random(a.seed)
            per = {3: [], 4: []}
            for k, test_idx in enumerate(folds):
                rest = np.concatenate([f for j, f in enumerate(folds) if j != k])
                res = fold_run(a, name, k, test_idx, rest, x, y, tmp, rng)
                for b in (3, 4):
                    h, u, rs, hbits = res[b]
                    rl = sum(r[0] for r in rs) / len(rs)
                    ra = sum(r[1] for r in rs) / len(rs)
                    print(f"{name} fold {k + 1}/{a.folds} ({len(test_idx)} test samples), "
                          f"{b} bits: loss increase hessian {h[0]:.5f} uniform {u[0]:.5f} "
                          f"random {rl:.5f}; accuracy {100 * h[1]:.1f}% {100 * u[1]:.1f}% "
                          f"{100 * ra:.1f}%; w_bits {hbits}", flush=True)
                    per[b].append(res[b])
            for b in (3, 4):
                hs = [s for f in per[b] for s in f[0][3]]
                us = [s for f in per[b] for s in f[1][3]]
                rm = [sum(r[3][i] for r in f[2]) / len(f[2])
                      for f in per[b] for i in range(len(f[0][3]))]
                du, su = ev.paired(hs, us)
                dr, sr = ev.paired(hs, rm)
                wins_u = sum(f[0][0] < f[1][0] for f in per[b])
                same = sum(f[3] == [b] * len(f[3]) for f in per[b])
                wins_r = sum(f[0][0] < sum(r[0] for r in f[2]) / len(f[2]) for f in per[b])
                n = len(hs)
                print(f"{name} at {b} bits, pooled over {a.folds} folds ({n} test samples):")
                z = lambda d, e: f"{d / e:+.1f} SE" if e > 0 else "identical"
                print(f"  hessian - uniform: {du:+.5f} +- {su:.5f} ({z(du, su)}); "
                      f"hessian lower in {wins_u} of {a.folds} folds"
                      + (f" (the uniform plan itself in {same})" if same else ""))
                print(f"  hessian - random mean: {dr:+.5f} +- {sr:.5f} ({z(dr, sr)}); "
                      f"hessian lower in {wins_r} of {a.folds} folds")
                ok_all &= du <= 0 and dr < 0 and (du < 0 or same == a.folds)
    print("pooled, the Hessian plans win" if ok_all else "pooled, some comparisons fail")
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
