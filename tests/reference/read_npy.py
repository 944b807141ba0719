"""Reads a .npy file with NumPy itself and prints {"dtype", "shape", "fortran_order", "values"} as JSON.

Used to check that llm-embedder's .npy output is a standard NumPy file."""
import json
import sys

import numpy as np

array = np.load(sys.argv[1], allow_pickle=False)
print(json.dumps({
    "dtype": array.dtype.str,
    "shape": list(array.shape),
    "fortran_order": bool(np.isfortran(array)) and array.ndim > 1,
    "values": array.astype(np.float64).ravel().tolist(),
}))
