"""Exports small torch models whose structure the integer executor once got
wrong or refused, with inputs, labels and torch's outputs, for e2e_run.sh.

Run with Debian's torch: /usr/bin/python3 tests/data/qzoo/make_qzoo.py
Outputs (committed, a few KB each): qzoo<K>.onnx, qzoo<K>_x.npy,
qzoo<K>_y.npy (labels), qzoo<K>_ref.npy (torch's outputs).

  qzoo1  Linear-ReLU-Linear-clamp(-0.2, 0.2): a Clip after the last layer
         (run ignored it: the int32 output path kept no upper bound)
  qzoo2  Conv without bias + a (1,C,1,1) constant (a per-channel bias run
         refused), ReLU, F.avg_pool2d(2) (exported as a Pad of zeros and an
         AveragePool: refused by run and sensitivity), Linear
  qzoo3  Conv without bias + a (C,) constant on an 8x8 map with C = 8:
         ONNX broadcasts it along the width, not the channels (run treated
         it as a bias); run must refuse it
  qzoo4  ZeroPad2d before a Conv and before an AvgPool2d(count_include_pad)
         (run has no Pad kernel: the pads fold into the reader's own)
  qzoo5  Dropout with opset 12's ratio and training_mode inputs (false),
         then a Gemm (eval refused the bool input); qzoo5_train.onnx the
         same with training_mode true, which must be refused"""
import os
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import onnx
from onnx import TensorProto, helper, numpy_helper

torch.manual_seed(11)
torch.set_num_threads(1)
here = os.path.dirname(os.path.abspath(__file__))
N = 64


class ClipOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(32, 24)
        self.b = nn.Linear(24, 10)

    def forward(self, x):
        return torch.clamp(self.b(F.relu(self.a(x))), -0.2, 0.2)


class ConvBias(nn.Module):
    def __init__(self, bshape):
        super().__init__()
        self.c = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bias = nn.Parameter(torch.randn(*bshape) * 0.3)
        self.fc = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x):
        y = F.relu(self.c(x) + self.bias)
        return self.fc(torch.flatten(F.avg_pool2d(y, 2), 1))


class PadInto(nn.Module):
    def __init__(self):
        super().__init__()
        self.p = nn.ZeroPad2d((1, 2, 0, 1))
        self.c = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.p2 = nn.ZeroPad2d(1)
        self.a = nn.AvgPool2d(3, 1, count_include_pad=True)
        self.fc = nn.Linear(8 * 6 * 5, 10)

    def forward(self, x):
        y = self.a(self.p2(F.relu(self.c(self.p(x)))))
        return self.fc(torch.flatten(y, 1))


def export(name, model, x):
    model.eval()
    with torch.no_grad():
        ref = model(x).numpy().astype(np.float32)
    torch.onnx.export(model, x[:1], os.path.join(here, name + ".onnx"),
                      opset_version=13, input_names=["input"],
                      output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
                      do_constant_folding=True)
    np.save(os.path.join(here, name + "_x.npy"), x.numpy().astype(np.float32))
    np.save(os.path.join(here, name + "_y.npy"),
            np.random.RandomState(3).randint(0, 10, N).astype(np.int64))
    np.save(os.path.join(here, name + "_ref.npy"), ref)
    print("wrote", name)


export("qzoo1", ClipOut(), torch.randn(N, 32))
export("qzoo2", ConvBias((1, 8, 1, 1)), torch.rand(N, 3, 8, 8))
export("qzoo3", ConvBias((8,)), torch.rand(N, 3, 8, 8))
export("qzoo4", PadInto(), torch.rand(N, 3, 9, 8))


def dropout(name, training):
    rs = np.random.RandomState(5)
    w = (rs.randn(10, 32) * 0.2).astype(np.float32)
    b = (rs.randn(10) * 0.1).astype(np.float32)
    inits = [numpy_helper.from_array(w, "fc.weight"),
             numpy_helper.from_array(b, "fc.bias"),
             numpy_helper.from_array(np.array(0.5, np.float32), "ratio"),
             numpy_helper.from_array(np.array(training), "training_mode")]
    nodes = [helper.make_node("Dropout", ["input", "ratio", "training_mode"], ["d"]),
             helper.make_node("Gemm", ["d", "fc.weight", "fc.bias"], ["logits"],
                              transB=1)]
    g = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(m)
    onnx.save(m, os.path.join(here, name + ".onnx"))
    x = np.random.RandomState(6).randn(N, 32).astype(np.float32)
    if not training:
        np.save(os.path.join(here, name + "_x.npy"), x)
        np.save(os.path.join(here, name + "_y.npy"),
                np.random.RandomState(3).randint(0, 10, N).astype(np.int64))
        np.save(os.path.join(here, name + "_ref.npy"), x @ w.T + b)
    print("wrote", name)


dropout("qzoo5", False)
dropout("qzoo5_train", True)
