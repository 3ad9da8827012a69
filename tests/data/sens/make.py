#!/usr/bin/env python3
"""Writes the tiny ONNX models and .npy files the sensitivity tests read
(tests/check_autodiff.c, tests/check_estimators.c, tests/e2e_sensitivity.sh),
so that `make check` needs no Python.  Run with Debian's Python (onnx, numpy):

    /usr/bin/python3 tests/data/sens/make.py

Deterministic: fixed seeds, no doc strings, so reruns give identical files.

op_*.onnx: one model per differentiable op (or op variant): input x (N, 3)
-> Gemm (a parameter-dependent activation) -> Reshape to the op's input
shape -> the op -> Reshape (N, -1) -> Gemm -> logits (N, 3).  Ops with two
activation inputs get two such branches.  Every float initializer that sits
at a differentiable input is a parameter of the finite-difference tests.

tiny_*.onnx: small networks whose Hessian blocks are dense-diagonalisable
(tiny_wide: 200 classes).
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
C = 3  # classes


class Model:
    def __init__(self, name, opset=13, in_shape=(3,), seed=0):
        self.name = name
        self.opset = opset
        self.nodes = []
        self.inits = []
        self.k = 0
        self.rng = np.random.RandomState(seed)
        self.in_shape = in_shape

    def fresh(self, base):
        if "." in base:  # a torch-style parameter name, kept as is
            return base
        self.k += 1
        return "%s_%d" % (base, self.k)

    def init(self, arr, base="p"):
        name = self.fresh(base)
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def w(self, *shape, scale=0.6, base="w"):
        return self.init((self.rng.randn(*shape) * scale).astype(np.float32),
                         base)

    def i64(self, vals):
        return self.init(np.array(vals, dtype=np.int64), "c")

    def f32(self, vals):
        return self.init(np.array(vals, dtype=np.float32), "c")

    def node(self, op, inputs, nout=1, **attrs):
        outs = [self.fresh(op.lower()) for _ in range(nout)]
        self.nodes.append(helper.make_node(op, inputs, outs,
                                           name=self.fresh("n_" + op), **attrs))
        return outs[0] if nout == 1 else outs

    def pre(self, shape, x="x", scale=0.6):
        """x (N, 3) -> Gemm -> (N, *shape), a parameter-dependent activation."""
        f = int(np.prod(shape))
        h = self.node("Gemm", [x, self.w(self.in_shape[0], f, scale=scale),
                               self.w(f, scale=0.3)])
        return self.node("Reshape", [h, self.i64([0] + list(shape))])

    def post(self, t, numel):
        f = self.node("Reshape", [t, self.i64([0, -1])])
        return self.node("Gemm", [f, self.w(numel, C, scale=0.5),
                                  self.w(C, scale=0.2)])

    def save(self, logits, classes=C):
        nodes = self.nodes
        # rename the final value to "logits"
        for n in nodes:
            for i, o in enumerate(n.output):
                if o == logits:
                    n.output[i] = "logits"
            for i, o in enumerate(n.input):
                if o == logits:
                    n.input[i] = "logits"
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                          ["N"] + list(self.in_shape))
        y = helper.make_tensor_value_info("logits", TensorProto.FLOAT,
                                          ["N", classes])
        g = helper.make_graph(nodes, self.name, [x], [y], self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", self.opset)],
                              producer_name="bitplan-tests")
        m.ir_version = 7
        onnx.checker.check_model(m)
        onnx.save(m, os.path.join(HERE, self.name + ".onnx"))


def unary_model(name, op, shape=(6,), opset=13, seed=0, **attrs):
    m = Model(name, opset, seed=seed)
    h = m.pre(shape, scale=1.0)
    t = m.node(op, [h], **attrs)
    m.save(m.post(t, int(np.prod(shape))))


def main():
    seed = [100]

    def S():
        seed[0] += 1
        return seed[0]

    # --- convolution ---------------------------------------------------------
    m = Model("op_conv", seed=S())
    h = m.pre((2, 4, 4))
    t = m.node("Conv", [h, m.w(3, 2, 3, 3), m.w(3, scale=0.3)], pads=[1, 1, 1, 1])
    m.save(m.post(t, 3 * 4 * 4))

    m = Model("op_conv_strided", seed=S())
    h = m.pre((4, 5, 6))
    # group 2, stride (2,1), pads t0 l1 b1 r0, dilation (1,2): out (4,2,5)
    t = m.node("Conv", [h, m.w(4, 2, 3, 2)], group=2, strides=[2, 1],
               pads=[0, 1, 1, 0], dilations=[1, 2])
    m.save(m.post(t, 4 * 2 * 5))

    m = Model("op_conv1d", seed=S())
    h = m.pre((2, 7))
    t = m.node("Conv", [h, m.w(3, 2, 3), m.w(3, scale=0.3)], pads=[1, 1],
               strides=[2])
    m.save(m.post(t, 3 * 4))

    m = Model("op_conv_pointwise", seed=S())
    h = m.pre((3, 3, 3))
    t = m.node("Conv", [h, m.w(2, 3, 1, 1)])
    m.save(m.post(t, 2 * 9))

    # --- gemm / matmul -----------------------------------------------------------
    m = Model("op_gemm_tb", seed=S())
    h = m.pre((6,))
    t = m.node("Gemm", [h, m.w(5, 6), m.w(5, scale=0.3)], transB=1, alpha=0.8,
               beta=1.2)
    m.save(m.post(t, 5))

    m = Model("op_gemm_cmat", seed=S())
    h = m.pre((6,))
    t = m.node("Gemm", [h, m.w(6, 5), m.w(1, 5, scale=0.3)])
    m.save(m.post(t, 5))

    m = Model("op_gemm_ta", seed=S())
    h = m.pre((6,))
    ht = m.node("Transpose", [h], perm=[1, 0])
    t = m.node("Gemm", [ht, m.w(6, 5), m.w(1, 1, scale=0.3)], transA=1, beta=0.5)
    m.save(m.post(t, 5))

    m = Model("op_gemm_act", seed=S())
    h1 = m.pre((4,))
    h2 = m.pre((4,))
    # a Gemm whose weight is itself an activation: B = h2 reshaped (1, 4)
    # broadcast through Mul after a parameter Gemm, both operands active
    t = m.node("Gemm", [h1, m.w(4, 4)], transB=1)
    t = m.node("Mul", [t, h2])
    m.save(m.post(t, 4))

    m = Model("op_matmul", seed=S())
    h = m.pre((6,))
    t = m.node("MatMul", [h, m.w(6, 5)])
    m.save(m.post(t, 5))

    m = Model("op_matmul_3d", seed=S())
    h = m.pre((3, 4))
    t = m.node("MatMul", [h, m.w(4, 5)])
    m.save(m.post(t, 15))

    m = Model("op_matmul_batched", seed=S())
    h = m.pre((1, 3, 4))
    t = m.node("MatMul", [h, m.w(2, 4, 5)])
    m.save(m.post(t, 2 * 3 * 5))

    m = Model("op_matmul_act", seed=S())
    h1 = m.pre((3, 4))
    h2 = m.pre((4, 2))
    t = m.node("MatMul", [h1, h2])
    m.save(m.post(t, 6))

    m = Model("op_matmul_vec", seed=S())
    h = m.pre((3, 4))
    t = m.node("MatMul", [h, m.w(4)])
    m.save(m.post(t, 3))

    # --- elementwise binary ---------------------------------------------------------
    m = Model("op_add", seed=S())
    h = m.pre((3, 2, 2))
    t = m.node("Add", [h, m.w(3, 1, 1)])
    h2 = m.pre((1, 2, 2))
    t = m.node("Add", [t, h2])
    m.save(m.post(t, 12))

    m = Model("op_sub", seed=S())
    h1 = m.pre((5,))
    h2 = m.pre((5,))
    t = m.node("Sub", [h1, h2])
    t = m.node("Sub", [m.w(5), t])
    m.save(m.post(t, 5))

    m = Model("op_mul", seed=S())
    h1 = m.pre((3, 4))
    h2 = m.pre((3, 4))
    t = m.node("Mul", [h1, m.w(4)])
    t = m.node("Mul", [t, h2])
    m.save(m.post(t, 12))

    m = Model("op_div", seed=S())
    h1 = m.pre((5,))
    h2 = m.pre((5,))
    den = m.node("Add", [m.node("Sigmoid", [h2]), m.f32([0.5])])
    t = m.node("Div", [h1, den])
    pos = (np.abs(m.rng.randn(5)) + 0.7).astype(np.float32)
    t = m.node("Div", [t, m.init(pos, "w")])
    t = m.node("Div", [m.w(1, 5), m.node("Add", [m.node("Sigmoid", [t]),
                                                 m.f32([0.5])])])
    m.save(m.post(t, 5))

    # --- elementwise unary ------------------------------------------------------------
    unary_model("op_relu", "Relu", seed=S())
    unary_model("op_leakyrelu", "LeakyRelu", seed=S(), alpha=0.2)
    unary_model("op_sigmoid", "Sigmoid", seed=S())
    unary_model("op_tanh", "Tanh", seed=S())
    m = Model("op_clip", seed=S())
    h = m.pre((6,), scale=1.0)
    t = m.node("Clip", [h, m.f32(-0.3), m.f32(0.4)])
    m.save(m.post(t, 6))
    m = Model("op_clip10", opset=10, seed=S())
    h = m.pre((6,), scale=1.0)
    t = m.node("Clip", [h], min=-0.5, max=0.6)
    m.save(m.post(t, 6))

    # --- softmax ------------------------------------------------------------------------
    m = Model("op_softmax_inner", seed=S())
    h = m.pre((3, 4), scale=1.0)
    t = m.node("Softmax", [h], axis=1)
    m.save(m.post(t, 12))
    m = Model("op_softmax_last", seed=S())
    h = m.pre((3, 4), scale=1.0)
    t = m.node("Softmax", [h], axis=-1)
    m.save(m.post(t, 12))
    m = Model("op_softmax11", opset=11, seed=S())
    h = m.pre((3, 4), scale=1.0)
    t = m.node("Softmax", [h], axis=1)
    m.save(m.post(t, 12))

    # --- pools and means -------------------------------------------------------------------
    m = Model("op_maxpool", seed=S())
    h = m.pre((2, 4, 4), scale=1.0)
    t = m.node("MaxPool", [h], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    m.save(m.post(t, 32))
    m = Model("op_maxpool_s2", seed=S())
    h = m.pre((2, 4, 5), scale=1.0)
    t = m.node("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)
    m.save(m.post(t, 2 * 2 * 3))
    m = Model("op_maxpool_dil", seed=S())
    h = m.pre((2, 5, 5), scale=1.0)
    t = m.node("MaxPool", [h], kernel_shape=[2, 2], dilations=[2, 2])
    m.save(m.post(t, 2 * 3 * 3))
    m = Model("op_avgpool", seed=S())
    h = m.pre((2, 5, 5))
    t = m.node("AveragePool", [h], kernel_shape=[3, 3], strides=[2, 2],
               pads=[1, 1, 1, 1])
    m.save(m.post(t, 2 * 3 * 3))
    m = Model("op_avgpool_cip", seed=S())
    h = m.pre((2, 5, 5))
    t = m.node("AveragePool", [h], kernel_shape=[3, 3], strides=[2, 2],
               pads=[1, 1, 1, 1], count_include_pad=1)
    m.save(m.post(t, 2 * 3 * 3))
    m = Model("op_gap", seed=S())
    h = m.pre((3, 3, 3))
    t = m.node("GlobalAveragePool", [h])
    m.save(m.post(t, 3))
    m = Model("op_reducemean", seed=S())
    h = m.pre((2, 3, 4))
    t = m.node("ReduceMean", [h], axes=[2, 3], keepdims=1)
    h2 = m.pre((3, 4))
    t2 = m.node("ReduceMean", [h2], axes=[1], keepdims=0)
    t = m.node("Concat", [m.node("Reshape", [t, m.i64([0, -1])]), t2], axis=1)
    m.save(m.post(t, 6))

    # --- batch norm -------------------------------------------------------------------------
    m = Model("op_batchnorm", seed=S())
    h = m.pre((3, 2, 2))
    var = (np.abs(m.rng.randn(3)) + 0.5).astype(np.float32)
    t = m.node("BatchNormalization",
               [h, m.w(3, base="scale"), m.w(3, base="bias"),
                m.init((m.rng.randn(3) * 0.2).astype(np.float32), "mean"),
                m.init(var, "var")], epsilon=1e-3)
    m.save(m.post(t, 12))

    # --- data movement ----------------------------------------------------------------------
    m = Model("op_flatten", seed=S())
    h = m.pre((2, 3))
    t = m.node("Flatten", [h], axis=1)
    m.save(m.node("Gemm", [t, m.w(6, C), m.w(C, scale=0.2)]))

    m = Model("op_squeeze", seed=S())
    h = m.pre((1, 6))
    t = m.node("Squeeze", [h, m.i64([1])])
    t = m.node("Unsqueeze", [t, m.i64([2])])
    t = m.node("Identity", [t])
    t = m.node("Dropout", [t])
    t = m.node("Cast", [t], to=TensorProto.FLOAT)
    m.save(m.post(t, 6))

    m = Model("op_transpose", seed=S())
    h = m.pre((2, 3, 4))
    t = m.node("Transpose", [h], perm=[0, 3, 1, 2])
    t = m.node("Mul", [t, m.w(4, 2, 1)])
    m.save(m.post(t, 24))

    m = Model("op_concat", seed=S())
    h1 = m.pre((2, 3))
    h2 = m.pre((1, 3))
    h3 = m.pre((3, 3))
    t = m.node("Concat", [h1, h2, h3], axis=1)
    h4 = m.pre((6, 2))
    t = m.node("Concat", [t, h4], axis=2)
    m.save(m.post(t, 30))

    m = Model("op_gather", seed=S())
    h = m.pre((5, 3))
    t = m.node("Gather", [h, m.i64([4, -1, 0, 2, 2])], axis=1)
    m.save(m.post(t, 15))

    m = Model("op_slice", seed=S())
    h = m.pre((6, 5))
    t = m.node("Slice", [h, m.i64([1, 4]), m.i64([6, 0]), m.i64([1, 2]),
                         m.i64([2, -1])])
    m.save(m.post(t, 12))

    # --- tiny networks for the estimator tests -------------------------------------------------
    m = Model("tiny_cnn", in_shape=(1, 5, 5), seed=7)
    t = m.node("Conv", ["x", m.w(4, 1, 3, 3, base="c1.weight")], pads=[1, 1, 1, 1])
    var = (np.abs(m.rng.randn(4)) + 0.5).astype(np.float32)
    t = m.node("BatchNormalization", [t, m.w(4, base="bn.s"), m.w(4, base="bn.b"),
                                      m.init((m.rng.randn(4) * 0.1).astype(np.float32)),
                                      m.init(var)])
    r = m.node("Relu", [t])
    t = m.node("Conv", [r, m.w(4, 4, 3, 3, scale=0.4, base="c2.weight"),
                        m.w(4, scale=0.2, base="c2.bias")], pads=[1, 1, 1, 1])
    t = m.node("Relu", [m.node("Add", [t, r])])
    t = m.node("MaxPool", [t], kernel_shape=[2, 2], strides=[2, 2])
    t = m.node("GlobalAveragePool", [t])
    t = m.node("Flatten", [t])
    m.save(m.node("Gemm", [t, m.w(C, 4, scale=0.8, base="fc.weight"),
                           m.w(C, scale=0.2, base="fc.bias")], transB=1))

    m = Model("tiny_tanh", in_shape=(6,), seed=8)
    t = m.node("Gemm", ["x", m.w(8, 6, scale=0.7, base="fc1.weight"),
                        m.w(8, scale=0.3, base="fc1.bias")], transB=1)
    t = m.node("Relu", [t])
    t = m.node("Gemm", [t, m.w(8, 8, scale=0.7, base="fc2.weight"),
                        m.w(8, scale=0.3, base="fc2.bias")], transB=1)
    t = m.node("Tanh", [t])
    t = m.node("MatMul", [t, m.w(8, C, base="fc3.weight")])
    m.save(t)

    # 200 classes: where auto samples the Gauss-Newton trace in the output
    # space rather than take one backward pass per class
    m = Model("tiny_wide", in_shape=(6,), seed=12)
    t = m.node("Gemm", ["x", m.w(10, 6, scale=0.7, base="fc1.weight"),
                        m.w(10, scale=0.3, base="fc1.bias")], transB=1)
    t = m.node("Relu", [t])
    m.save(m.node("Gemm", [t, m.w(200, 10, scale=0.5, base="fc2.weight"),
                           m.w(200, scale=0.2, base="fc2.bias")], transB=1),
           classes=200)

    # --- bad inputs for the command-line tests ----------------------------------------------------
    m = Model("noquant", in_shape=(4,), seed=9)
    t = m.node("Add", ["x", m.w(4)])
    t = m.node("Relu", [t])
    t = m.node("Gather", [t, m.i64([0, 1, 2])], axis=1)
    m.save(t)

    m = Model("nanweight", in_shape=(6,), seed=10)
    w = (m.rng.randn(5, 6) * 0.5).astype(np.float32)
    w[2, 3] = np.nan
    t = m.node("Gemm", ["x", m.init(w, "fc1.weight")], transB=1)
    t = m.node("Relu", [t])
    m.save(m.node("Gemm", [t, m.w(5, C)]))

    rng = np.random.RandomState(11)
    x = rng.randn(16, 6).astype(np.float32)
    np.save(os.path.join(HERE, "x6.npy"), x)
    np.save(os.path.join(HERE, "y6.npy"), rng.randint(0, C, 16).astype(np.int64))
    xn = x.copy()
    xn[5, 2] = np.nan
    np.save(os.path.join(HERE, "x6_nan.npy"), xn)
    xi = x.copy()
    xi[9, 0] = np.inf
    np.save(os.path.join(HERE, "x6_inf.npy"), xi)
    np.save(os.path.join(HERE, "y6_bad.npy"),
            np.array([0, 1, 2, 3] + [0] * 12, dtype=np.int64))
    np.save(os.path.join(HERE, "y6_short.npy"), np.zeros(15, dtype=np.int64))
    np.save(os.path.join(HERE, "x4.npy"), rng.randn(8, 4).astype(np.float32))


if __name__ == "__main__":
    main()
