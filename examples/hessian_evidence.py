#!/usr/bin/env python3
"""Does the Hessian guidance work?  The evidence, by execution.

    python3 examples/hessian_evidence.py [--bitplan PATH] [--random 10] [--seed 1]

For every example model and a budget of 3 and of 4 average weight bits
(activations at 8 bits), three kinds of plan of the same size are run in
bitplan's integer-only executor on the test set:

  hessian  `bitplan solve` (sensitivity from the calibration set, the exact
           integer program over 2,3,4,5,6,8-bit weights, --budget size = the
           uniform plan's size), with the default --metric trace (HAWQ's
           Omega); the plan of --metric loss (the loss increase measured
           per layer and width, first-order term removed) is shown too
  uniform  every layer at 3 (or 4) bits
  random   N plans with random widths from 2,3,4,5,6,8, grown at random
           until no layer can take the next width within the same size
           budget (mean over N)

and the script prints, per model and budget, the increase of the test
cross-entropy over the float model (integer minus float: the primary figure;
accuracy on 500 samples moves in 0.2-point steps) and the accuracy of each.
The claim checked: the Hessian plan raises the loss less than the uniform
plan and less than the random mean, and its accuracy is at least theirs.
Next to each comparison it prints the paired difference of the per-sample
test losses (from `bitplan run --out`) and its standard error, so that a
difference the 500 test samples cannot resolve is told from a real one.

Where the budget admits few plans (at most --enumerate maximal plans: the
MLP's three layers give 5 and 9), every maximal plan is run too, on the test
set and on the calibration set the sensitivity was measured on, and the
script prints where the Hessian plan and the uniform plan rank.  That tells
a wrong choice (the calibration data already ranks it low) from test-set
noise (calibration ranks it first, the 500 test samples do not), and shows
when the uniform plan is itself the best there is, so that no plan can beat
it.  There, each layer is also run alone below 8 bits on both sets: its
loss increase against the all-8-bit plan with its standard error, and
for the Hessian, uniform and best plans the sum of their layers'
increases beside the measured one (close: the layers hardly interact, and
a plan's rank follows single-layer effects, which may differ between the
sets by more than their noise).  Exit status 0 when every comparison
holds, 1 otherwise.  Standard library only; deterministic with --seed.  Takes
about a minute.
"""
import argparse
import array
import ast
import hashlib
import itertools
import json
import math
import os
import random
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
# the candidate weight widths: those `bitplan sensitivity` prices by default
WIDTHS = [2, 3, 4, 5, 6, 8]
MODELS = [
    ("cnn", "cnn.onnx", "digits_calib_x.npy", "digits_test_x.npy"),
    ("mlp", "mlp.onnx", "digits_calib_flat.npy", "digits_test_flat.npy"),
]


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode not in (0, 1):
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr}")
    return p


def layer_bytes(numel, channels, w):
    # the cost model's and the executor's per-layer bytes (ilp/cost.h,
    # src/qgraph.h): packed weights + 4 bytes of scale + 4 of bias per channel
    return math.ceil(numel * w / 8) + 8 * channels


def write_plan(path, model, sha, layers, bits):
    plan = {
        "format": "bitplan-plan", "version": 1,
        "model": {"path": model, "sha256": sha}, "profile": "bops", "budgets": [],
        "layers": [{"name": l["name"], "w_bits": w, "a_bits": 8,
                    "size_bytes": layer_bytes(l["numel"], l["channels"], w),
                    "latency_s": None, "bops": l["macs"] * w * 8, "omega": 0}
                   for l, w in zip(layers, bits)],
        "predicted": {"size_bytes": sum(layer_bytes(l["numel"], l["channels"], w)
                                        for l, w in zip(layers, bits)),
                      "latency_s": None,
                      "bops": sum(l["macs"] * w * 8 for l, w in zip(layers, bits)),
                      "objective": 0},
        "status": "hand", "gap": 0,
    }
    with open(path, "w") as f:
        json.dump(plan, f)


def random_plan(rng, layers, budget):
    """Random widths 2..8, repaired into the budget, then grown at random
    until no layer can take one more bit: a plan 'of the same size'."""
    up = {w: WIDTHS[i + 1] for i, w in enumerate(WIDTHS[:-1])}
    down = {v: k for k, v in up.items()}
    bits = [rng.choice(WIDTHS) for _ in layers]
    cost = lambda b: sum(layer_bytes(l["numel"], l["channels"], w) for l, w in zip(layers, b))
    while cost(bits) > budget:
        i = rng.choice([k for k, w in enumerate(bits) if w in down])
        bits[i] = down[bits[i]]
    while True:
        grow = [k for k, w in enumerate(bits) if w in up and
                cost(bits[:k] + [up[w]] + bits[k + 1:]) <= budget]
        if not grow:
            return bits
        k = rng.choice(grow)
        bits[k] = up[bits[k]]


def maximal_plans(layers, budget, limit):
    """Every plan within budget in which no layer can take the next width
    (None when there are more than limit)."""
    up = {w: WIDTHS[i + 1] for i, w in enumerate(WIDTHS[:-1])}
    cost = lambda b: sum(layer_bytes(l["numel"], l["channels"], w) for l, w in zip(layers, b))
    if len(WIDTHS) ** len(layers) > 50 * limit:
        return None
    out = []
    for bits in itertools.product(WIDTHS, repeat=len(layers)):
        if cost(bits) > budget:
            continue
        if any(w in up and cost(bits[:k] + (up[w],) + bits[k + 1:]) <= budget
               for k, w in enumerate(bits)):
            continue
        out.append(list(bits))
        if len(out) > limit:
            return None
    return out


def rank_of(plan, plans, losses):
    """1-based rank of plan by loss among plans (ties share the best rank)."""
    mine = losses[plans.index(plan)]
    return 1 + sum(l < mine for l in losses)


def load_npy(path):
    """A little-endian float32 or int64 .npy in C order, as a flat array."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:6] != b"\x93NUMPY":
        sys.exit(f"{path}: not a .npy file")
    hlen, start = ((raw[8] | raw[9] << 8), 10) if raw[6] == 1 else \
        (int.from_bytes(raw[8:12], "little"), 12)
    head = ast.literal_eval(raw[start:start + hlen].decode("latin1"))
    code = {"<f4": "f", "<i8": "q"}.get(head["descr"])
    if code is None or head["fortran_order"]:
        sys.exit(f"{path}: expected C-order <f4 or <i8, got {head}")
    a = array.array(code)
    a.frombytes(raw[start + hlen:])
    if sys.byteorder != "little":
        a.byteswap()
    return a, head["shape"]


def sample_losses(logits_path, labels):
    """Cross-entropy of every sample from the integer model's logits."""
    q, shape = load_npy(logits_path)
    c = shape[1]
    out = []
    for i, y in enumerate(labels):
        row = q[i * c:(i + 1) * c]
        m = max(row)
        out.append(math.log(sum(math.exp(v - m) for v in row)) + m - row[y])
    return out


def paired(a, b):
    """Mean of a - b over the samples and its standard error: how far two
    plans' test losses differ, sample by sample, against the noise of the
    500-sample set."""
    d = [x - y for x, y in zip(a, b)]
    n = len(d)
    m = sum(d) / n
    sd = math.sqrt(sum((x - m) ** 2 for x in d) / (n - 1)) if n > 1 else 0.0
    return m, sd / math.sqrt(n)


def measure(bitplan, model, plan, calib, test, labels):
    """(loss increase, accuracy, packed layer bytes, per-sample int losses)."""
    out = plan + ".logits.npy"
    p = run([bitplan, "run", model, "--plan", plan, "--data", test, "--labels", labels,
             "--calib", calib, "--repeat", "0", "--json", "--out", out])
    j = json.loads(p.stdout)
    per = sample_losses(out, load_npy(labels)[0])
    os.remove(out)
    return (j["int_loss"] - j["float_loss"], j["int_accuracy"],
            j["size_bytes"] - j["overhead_bytes"], per)


def const_bytes(bitplan, model, sha, layers, tmp, data):
    """The bytes every plan of the model carries besides its layers (the
    integer executor's activation scales and dyadic numbers), as `bitplan
    run` counts them: solve's size budget includes them, the layer bytes
    this script compares do not."""
    path = os.path.join(tmp, "const_w8.json")
    write_plan(path, model, sha, layers, [8] * len(layers))
    p = run([bitplan, "run", model, "--plan", path, "--data", data,
             "--samples", "1", "--repeat", "0", "--json"])
    if p.returncode != 0:
        sys.exit(f"bitplan run failed:\n{p.stderr}")
    return json.loads(p.stdout)["overhead_bytes"]


def singles(bitplan, model, sha, layers, tmp, name, calib, calib_y, test, labels,
            named, known):
    """Each layer alone below 8 bits (the others at 8), on the test and the
    calibration set: its loss increase against the all-8-bit plan, paired
    over the samples, and for the named plans the sum of their layers'
    increases beside the measured one (from known, plan tuple -> (test,
    calibration) loss increase, where the caller ran it already).  Tells
    interactions between layers
    (measured far from the sum) from single-layer effects that differ
    between the data sets, and shows those effects against their noise."""
    L = len(layers)
    sets = (("test", test, labels), ("calibration", calib, calib_y))
    base, one = {}, {}
    for tag, data, lab in sets:
        bp = os.path.join(tmp, f"{name}_s8.json")
        write_plan(bp, model, sha, layers, [8] * L)
        base[tag] = measure(bitplan, model, bp, calib, data, lab)
        for i in range(L):
            for w in sorted({bits[i] for bits in named.values()} - {8}):
                sp = os.path.join(tmp, f"{name}_s{i}_{w}.json")
                write_plan(sp, model, sha, layers, [w if j == i else 8 for j in range(L)])
                one[tag, i, w] = measure(bitplan, model, sp, calib, data, lab)
    print("  one layer below 8 bits, against all-8-bit, paired (test | calibration):")
    for i, l in enumerate(layers):
        for w in sorted({bits[i] for bits in named.values()} - {8}):
            cells = []
            for tag, _, _ in sets:
                dm, se = paired(one[tag, i, w][3], base[tag][3])
                cells.append(f"{dm:+.5f} +- {se:.5f}")
            print(f"    {l['name']} at {w} bits: {cells[0]} | {cells[1]}")
    print("  loss increase measured, and as the sum of its layers' (test | calibration):")
    merged = {}
    for what, bits in named.items():  # one line per distinct plan
        key = tuple(bits)
        merged[key] = merged[key] + ", " + what if key in merged else what
    for key, what in merged.items():
        bits = list(key)
        cells = []
        for k, (tag, data, lab) in enumerate(sets):
            if key in known:
                got = known[key][k]
            else:
                pp = os.path.join(tmp, f"{name}_sp.json")
                write_plan(pp, model, sha, layers, bits)
                got = measure(bitplan, model, pp, calib, data, lab)[0]
            add = base[tag][0] + sum(one[tag, i, w][0] - base[tag][0]
                                     for i, w in enumerate(bits) if w != 8)
            cells.append(f"{got:.5f} (sum {add:.5f})")
        print(f"    {what:12s} {str(bits):12s} {cells[0]} | {cells[1]}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bitplan", default=os.environ.get("BITPLAN", "bitplan"))
    ap.add_argument("--random", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--enumerate", type=int, default=64,
                    help="run every maximal plan when there are at most this many")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    labels = os.path.join(HERE, "digits_test_y.npy")
    calib_y = os.path.join(HERE, "digits_calib_y.npy")
    ok_all = True
    with tempfile.TemporaryDirectory() as tmp:
        for name, onnx, calib, test in MODELS:
            model = os.path.join(HERE, onnx)
            calib = os.path.join(HERE, calib)
            test = os.path.join(HERE, test)
            sha = hashlib.sha256(open(model, "rb").read()).hexdigest()
            layers = json.loads(run([a.bitplan, "inspect", model, "--json"]).stdout)["layers"]
            for l in layers:
                # output channels: conv dim 0, Gemm (transB=1 in the examples) dim 0
                l["channels"] = l["shape"][0]
            fixed = const_bytes(a.bitplan, model, sha, layers, tmp, test)
            for b in (3, 4):
                budget = sum(layer_bytes(l["numel"], l["channels"], b) for l in layers)
                up = os.path.join(tmp, f"{name}_u{b}.json")
                write_plan(up, model, sha, layers, [b] * len(layers))
                hp = os.path.join(tmp, f"{name}_h{b}.json")
                lp = os.path.join(tmp, f"{name}_l{b}.json")
                s = run([a.bitplan, "solve", model, "--data", calib, "--labels", calib_y,
                         "--profile", "bops", "--bits", ",".join(map(str, WIDTHS)), "--abits", "8",
                         "--budget", f"size={budget + fixed}", "--seed", str(a.seed), "-o", hp])
                if s.returncode != 0:
                    sys.exit(f"bitplan solve failed:\n{s.stderr}")
                s = run([a.bitplan, "solve", model, "--data", calib, "--labels", calib_y,
                         "--metric", "loss",
                         "--profile", "bops", "--bits", ",".join(map(str, WIDTHS)), "--abits", "8",
                         "--budget", f"size={budget + fixed}", "--seed", str(a.seed), "-o", lp])
                if s.returncode != 0:
                    sys.exit(f"bitplan solve --metric loss failed:\n{s.stderr}")
                hbits = [l["w_bits"] for l in json.load(open(hp))["layers"]]
                lbits = [l["w_bits"] for l in json.load(open(lp))["layers"]]
                h = measure(a.bitplan, model, hp, calib, test, labels)
                hl = measure(a.bitplan, model, lp, calib, test, labels)
                u = measure(a.bitplan, model, up, calib, test, labels)
                rs = []
                for k in range(a.random):
                    rp = os.path.join(tmp, f"{name}_r{b}_{k}.json")
                    write_plan(rp, model, sha, layers, random_plan(rng, layers, budget))
                    rs.append(measure(a.bitplan, model, rp, calib, test, labels))
                r_loss = sum(r[0] for r in rs) / len(rs)
                r_acc = sum(r[1] for r in rs) / len(rs)
                r_size = sum(r[2] for r in rs) / len(rs)
                ok = h[0] < u[0] and h[0] < r_loss and h[1] >= u[1] and h[1] >= r_acc
                ok_all &= ok
                print(f"{name} at {b} average weight bits (budget {budget} B; a_bits 8):")
                print(f"  {'plan':10s} {'bytes':>7s} {'loss increase':>14s} {'accuracy':>9s}")
                print(f"  {'hessian':10s} {h[2]:7.0f} {h[0]:14.5f} {100 * h[1]:8.1f}%   w_bits {hbits}")
                print(f"  {'  (loss)':10s} {hl[2]:7.0f} {hl[0]:14.5f} {100 * hl[1]:8.1f}%   w_bits {lbits}"
                      f"   (--metric loss)")
                print(f"  {'uniform':10s} {u[2]:7.0f} {u[0]:14.5f} {100 * u[1]:8.1f}%")
                print(f"  {'random':10s} {r_size:7.0f} {r_loss:14.5f} {100 * r_acc:8.1f}%   "
                      f"(mean of {len(rs)}; loss from {min(r[0] for r in rs):.5f} "
                      f"to {max(r[0] for r in rs):.5f})")
                if hbits == [b] * len(layers):
                    print("  the Hessian plan is the uniform plan itself")
                else:
                    dm, se = paired(h[3], u[3])
                    print(f"  hessian - uniform, paired over the {len(h[3])} test samples: "
                          f"{dm:+.5f} +- {se:.5f} (standard error; {dm / se:+.1f} SE)")
                rmean = [sum(r[3][i] for r in rs) / len(rs) for i in range(len(h[3]))]
                dm, se = paired(h[3], rmean)
                print(f"  hessian - random mean, paired: {dm:+.5f} +- {se:.5f} "
                      f"({dm / se:+.1f} SE)")
                plans = maximal_plans(layers, budget, a.enumerate)
                if plans:
                    if hbits not in plans:
                        plans.append(hbits)
                    tl, cl = [], []
                    for k, bits in enumerate(plans):
                        ep = os.path.join(tmp, f"{name}_e{b}_{k}.json")
                        write_plan(ep, model, sha, layers, bits)
                        tl.append(measure(a.bitplan, model, ep, calib, test, labels)[0])
                        cl.append(measure(a.bitplan, model, ep, calib, calib, calib_y)[0])
                    best = plans[min(range(len(plans)), key=lambda k: tl[k])]
                    n = len(plans)
                    print(f"  all {n} maximal plans run: by test loss the Hessian plan ranks "
                          f"{rank_of(hbits, plans, tl)}/{n}, the uniform plan "
                          f"{rank_of([b] * len(layers), plans, tl)}/{n} (best: {best}, "
                          f"{min(tl):.5f}); by calibration loss the Hessian plan ranks "
                          f"{rank_of(hbits, plans, cl)}/{n}, the uniform plan "
                          f"{rank_of([b] * len(layers), plans, cl)}/{n}")
                    singles(a.bitplan, model, sha, layers, tmp, name, calib, calib_y,
                            test, labels, {"hessian": hbits, "uniform": [b] * len(layers),
                                           "best on test": best},
                            {tuple(p): (tl[k], cl[k]) for k, p in enumerate(plans)})
                print(f"  the Hessian plan {'wins' if ok else 'does NOT win'} on loss and accuracy")
    print("all comparisons hold" if ok_all else "some comparisons fail")
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
