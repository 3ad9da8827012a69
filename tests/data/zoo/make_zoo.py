"""Exports small torch models that together use every op of bitplan's float
executor, with inputs and torch's outputs, for tests/e2e_zoo.sh.

Run with Debian's torch: /usr/bin/python3 tests/data/zoo/make_zoo.py
Outputs (committed, a few KB each): zoo<K>_op<V>.onnx, zoo<K>_x.npy,
zoo<K>_y.npy for each model K and opsets V in (11, 13, 17)."""
import os
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(7)
torch.set_num_threads(1)
here = os.path.dirname(os.path.abspath(__file__))


class Conv(nn.Module):
    """Conv variants, pools, BN, activations, residual arithmetic."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, stride=2, padding=(1, 2), dilation=1)
        self.bn = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=8)
        self.g2 = nn.Conv2d(8, 8, 1, groups=2, bias=False)
        self.c1d = nn.Conv1d(8, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 5, 6)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.5, 0.5)
            self.bn.running_var.uniform_(0.5, 2.0)
            self.bn.weight.uniform_(0.5, 1.5)
            self.bn.bias.uniform_(-0.2, 0.2)


class Mix(nn.Module):
    """MatMul with batch broadcasting, Transpose, Concat, Gather, Slice,
    Squeeze/Unsqueeze, Softmax, Flatten, Gemm without transB."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(6, 5) * 0.4)
        self.b = nn.Parameter(torch.randn(4, 5, 3) * 0.3)
        self.fc = nn.Linear(35, 7)

    def forward(self, x):                                    # (N,4,6)
        x = x.unsqueeze(2).squeeze(2)                        # Unsqueeze + Squeeze
        h = torch.matmul(x, self.w)                          # (N,4,5)
        t = torch.matmul(h.unsqueeze(1), self.b.unsqueeze(0))  # (N,4,4,3) batch bcast
        t = t.transpose(1, 3)                                # (N,3,4,4)
        a = t[:, 1:3, :, ::2]                                # Slice -> (N,2,4,2)
        c = torch.cat([a, t[:, 0:1, :, 1:3]], dim=1)         # (N,3,4,2)
        g = c[:, :, 2]                                       # Gather axis 2 -> (N,3,2)
        s = F.softmax(c.flatten(2) * 2.0, dim=-1)            # (N,3,8)
        z = torch.cat([s.flatten(1), g.flatten(1), h[:, 0, :].squeeze(1)[:, :5] * 0 + g.flatten(1)[:, :5]], 1)
        return self.fc(z) - x.mean(dim=(1, 2), keepdim=False).unsqueeze(1)


def export(model, x, name):
    model.eval()
    with torch.no_grad():
        y = model(x)
    np.save(os.path.join(here, name + "_x.npy"), x.numpy())
    np.save(os.path.join(here, name + "_y.npy"), y.numpy())
    for v in (11, 13, 17):
        torch.onnx.export(model, (x,), os.path.join(here, "%s_op%d.onnx" % (name, v)),
                          opset_version=v, input_names=["input"], output_names=["out"],
                          dynamic_axes={"input": {0: "batch"}, "out": {0: "batch"}},
                          training=torch.onnx.TrainingMode.PRESERVE,
                          do_constant_folding=False)


class Conv2(Conv):
    def forward(self, x):
        y = F.leaky_relu(self.bn(self.c1(x)), 0.1)
        y = y + torch.sigmoid(self.dw(y)) * 0.5 - 0.1
        y = torch.clamp(self.g2(y), -1.0, 2.0) / 1.5
        y = F.avg_pool2d(y, 2, stride=1, padding=1, count_include_pad=True)
        y = y + F.avg_pool2d(y, 3, stride=1, padding=1, count_include_pad=False)
        y = F.max_pool2d(y, 2, stride=2, ceil_mode=True)     # (N,8,4,4)
        y = torch.tanh(y).mean(dim=2)                        # (N,8,4)
        y = F.relu(self.c1d(y[:, :, :]))                     # Conv1d -> (N,4,4)
        y = torch.cat([y, y[:, :, :1]], dim=2)               # (N,4,5)
        return self.fc(y.reshape(y.shape[0], -1))


export(Conv2(), torch.rand(5, 3, 9, 10), "zoo1")
export(Mix(), torch.randn(5, 4, 6), "zoo2")
