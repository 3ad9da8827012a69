#!/usr/bin/env python3
"""Writes the reference .npy files that tests/check_npy.c reads, so the
reader is checked against files made by numpy itself (the tests then run
without Python).  Run from anywhere: python3 tests/data/npy/make.py

Every value is an exact literal so the C test can compare with ==."""
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def save(name, a, version=None):
    path = os.path.join(HERE, name)
    if version is None:
        np.save(path, a)
    else:
        with open(path, "wb") as f:
            np.lib.format.write_array(f, a, version=version)


save("f32_3x2.npy", np.array([[-1.0, -0.5], [0.0, 0.5], [1.0, 1.5]], np.float32))
save("f64_2x2x2.npy", np.array([[[3.141592653589793, -1e300], [1e-300, 0.1]],
                                [[-0.0, 2.5], [-7.0, 1024.0]]], np.float64))
save("i64_4.npy", np.array([-9223372036854775808, -1, 0, 9223372036854775807],
                           np.int64))
save("u8_2x3.npy", np.array([[0, 1, 127], [128, 254, 255]], np.uint8))
save("i8_5.npy", np.array([-128, -1, 0, 1, 127], np.int8))
save("i32_scalar.npy", np.array(-123456789, np.int32))
save("bool_4.npy", np.array([True, False, False, True]))
save("v2_f32_2x2.npy", np.array([[1.0, 2.0], [3.0, 4.0]], np.float32), (2, 0))
save("v3_i32_3.npy", np.array([7, -8, 9], np.int32), (3, 0))
save("fortran_f64_2x3.npy",
     np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3)))
