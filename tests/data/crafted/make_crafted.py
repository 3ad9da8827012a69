"""Crafted hostile inputs for tests/e2e_limits.sh: tiny files that claim
huge or impossible things.  Each must fail in microseconds with exit 2 and
no large allocation.

Run with Debian's python3-onnx: /usr/bin/python3 tests/data/crafted/make_crafted.py"""
import os
import struct
import onnx
from onnx import helper, TensorProto

here = os.path.dirname(os.path.abspath(__file__))


def model(nodes, inits, inputs=None, outputs=None, opset=13):
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])]
    outputs = outputs or [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])]
    g = helper.make_graph(nodes, "g", inputs, outputs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.producer_name = ""
    return m


def raw(name, dims, data):
    t = TensorProto()
    t.name = name
    t.data_type = TensorProto.FLOAT
    t.dims.extend(dims)
    t.raw_data = data
    return t


def save(m, name):
    data = m.SerializeToString()
    with open(os.path.join(here, name), "wb") as f:
        f.write(data)
    print(name, len(data), "bytes")


# 10^12 elements declared, 4 bytes of data
w = raw("w", [1000000, 1000000], b"\0\0\0\0")
save(model([helper.make_node("MatMul", ["x", "w"], ["y"])], [w]), "huge_tensor.onnx")

# dims whose product overflows int64
w = raw("w", [1 << 62, 1 << 62, 16], b"")
save(model([helper.make_node("MatMul", ["x", "w"], ["y"])], [w]), "overflow_dims.onnx")

# a negative dim
w = raw("w", [4, -4], b"\0" * 64)
save(model([helper.make_node("MatMul", ["x", "w"], ["y"])], [w]), "negative_dim.onnx")

# rank 40
w = raw("w", [1] * 40, b"\0" * 4)
save(model([helper.make_node("MatMul", ["x", "w"], ["y"])], [w]), "absurd_rank.onnx")

# a node that reads its own output
save(model([helper.make_node("Relu", ["y"], ["y"])], []), "self_reference.onnx")

# a two-node cycle
save(model([helper.make_node("Relu", ["b"], ["a"]), helper.make_node("Relu", ["a"], ["b"]),
            helper.make_node("Add", ["x", "a"], ["y"])], []), "cycle.onnx")

# a Reshape to 10^12 elements from a tiny input
shape = helper.make_tensor("s", TensorProto.INT64, [2], [1000000, 1000000])
save(model([helper.make_node("Reshape", ["x", "s"], ["y"])], [shape]), "reshape_huge.onnx")

# a graph input with an absurd static dim
save(model([helper.make_node("Relu", ["x"], ["y"])], [],
           inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1 << 50])]),
     "input_huge.onnx")

# .npy whose header claims far more data than the file holds
hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000, 1000000), }"
hdr += " " * (64 - (10 + len(hdr) + 1) % 64) + "\n"
with open(os.path.join(here, "huge_claim.npy"), "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode() + b"\0" * 16)
print("huge_claim.npy")
