"""Makes the malformed ONNX files the error tests feed to bitplan.

Run with Debian's python3-onnx: /usr/bin/python3 tests/data/onnx/make_bad.py
Each file is derived from examples/mlp.onnx with one defect."""
import os
import onnx
from onnx import TensorProto, numpy_helper
import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
src = os.path.join(here, "..", "..", "..", "examples", "mlp.onnx")


def load():
    return onnx.load(src)


def save(m, name):
    with open(os.path.join(here, name), "wb") as f:
        f.write(m.SerializeToString())


# an initializer the graph reads is gone
m = load()
del m.graph.initializer[0]  # fc1.weight
save(m, "missing_initializer.onnx")

# an op bitplan does not run
m = load()
for n in m.graph.node:
    if n.op_type == "Relu":
        n.op_type = "Mish"
        break
save(m, "unsupported_op.onnx")

# an initializer whose data lives in an external file
m = load()
t = m.graph.initializer[0]
t.ClearField("raw_data")
t.data_location = TensorProto.EXTERNAL
e = t.external_data.add()
e.key, e.value = "location", "weights.bin"
save(m, "external_data.onnx")

# 10^12 elements declared, 4 bytes present
m = load()
t = m.graph.initializer[0]
del t.dims[:]
t.dims.extend([1000000, 1000000])
t.raw_data = b"\0\0\0\0"
save(m, "huge_tensor.onnx")

# a node that reads its own output (a cycle)
m = load()
n = m.graph.node[1]
n.input[0] = n.output[0]
save(m, "cycle.onnx")

# shapes that do not fit: fc2 expects 128 inputs, give it 64 rows
m = load()
for t in m.graph.initializer:
    if t.name == "fc2.weight":
        a = np.zeros((64, 64), dtype=np.float32)
        t.CopyFrom(numpy_helper.from_array(a, "fc2.weight"))
save(m, "bad_shape.onnx")
