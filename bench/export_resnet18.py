#!/usr/bin/python3
"""Export torchvision's ResNet-18 (seeded random weights) to ONNX for the
integer-executor benchmark, with random calibration images.

    /usr/bin/python3 bench/export_resnet18.py [OUTDIR]   (default: bench/)

Writes OUTDIR/resnet18.onnx (opset 13, batch axis dynamic, BatchNormalization
kept as nodes so bitplan folds them itself) and OUTDIR/resnet18_calib.npy
(16 x 3 x 224 x 224 float32, N(0, 1): normalised-image statistics).  The
outputs are not committed; they are made on demand (Debian's python3-torch
and python3-torchvision).  Deterministic: fixed seeds, one thread.
"""
import os
import sys

import numpy as np
import torch
import torchvision


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(20240601)
    torch.set_num_threads(1)
    model = torchvision.models.resnet18(weights=None)
    # give BatchNorm non-trivial running statistics, as a trained model has
    g = torch.Generator().manual_seed(7)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
            m.weight.data.copy_(0.5 + 0.5 * torch.rand(m.num_features, generator=g))
            m.bias.data.copy_(0.1 * torch.randn(m.num_features, generator=g))
    model.eval()
    x = torch.randn(1, 3, 224, 224)
    path = os.path.join(out, "resnet18.onnx")
    torch.onnx.export(model, x, path, opset_version=13,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                      training=torch.onnx.TrainingMode.PRESERVE,
                      do_constant_folding=False)
    rs = np.random.RandomState(3)
    calib = rs.standard_normal((16, 3, 224, 224)).astype(np.float32)
    np.save(os.path.join(out, "resnet18_calib.npy"), calib)
    print(f"wrote {path} and resnet18_calib.npy")


if __name__ == "__main__":
    main()
