#!/usr/bin/python3
"""PyTorch's own float32 and int8 latency on the benchmark ResNet-18, for
comparison with bitplan's integer executor (bench/bench_qexec.c runs this).

    /usr/bin/python3 bench/torch_int8.py [--threads 2] [--repeat 20] [--batch 1]

Same architecture and seeded weights as bench/export_resnet18.py; int8 is
PyTorch's FX graph-mode static quantization with the FBGEMM backend
(per-channel weights, calibrated on 16 random images); a torch built without
FBGEMM (Debian's python3-torch has only onednn and qnnpack) uses onednn, its
x86 int8 backend, and the line says so.  Prints one line per
path: "torch float32 batch B: X ms/sample" and "torch int8 ...", medians of
--repeat runs after warm-up.
"""
import argparse
import time

import numpy as np
import torch
import torchvision
from torch.ao.quantization import get_default_qconfig_mapping
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx


def build():
    torch.manual_seed(20240601)
    model = torchvision.models.resnet18(weights=None)
    g = torch.Generator().manual_seed(7)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
            m.weight.data.copy_(0.5 + 0.5 * torch.rand(m.num_features, generator=g))
            m.bias.data.copy_(0.1 * torch.randn(m.num_features, generator=g))
    return model.eval()


def median_ms(fn, x, repeat):
    with torch.no_grad():
        for _ in range(3):
            fn(x)
        t = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn(x)
            t.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(t))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--batch", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    engines = torch.backends.quantized.supported_engines
    backend = next(e for e in ("fbgemm", "onednn", "qnnpack") if e in engines)
    torch.backends.quantized.engine = backend
    model = build()
    x = torch.randn(a.batch, 3, 224, 224)
    ms = median_ms(model, x, a.repeat)
    print(f"torch float32 batch {a.batch}: {ms / a.batch:.2f} ms/sample ({a.threads} threads)")
    qmap = get_default_qconfig_mapping(backend)
    calib = torch.randn(16, 3, 224, 224)
    prepared = prepare_fx(build(), qmap, example_inputs=(calib[:1],))
    with torch.no_grad():
        for i in range(0, 16, 4):
            prepared(calib[i:i + 4])
    qmodel = convert_fx(prepared)
    ms = median_ms(qmodel, x, a.repeat)
    print(f"torch int8 batch {a.batch}: {ms / a.batch:.2f} ms/sample ({a.threads} threads, FX static, {backend})")


if __name__ == "__main__":
    main()
