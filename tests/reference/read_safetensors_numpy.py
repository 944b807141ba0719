"""Reads a safetensors file with nothing but json and numpy (no safetensors package), checking the format rules
a Python loader relies on, and prints its tensors as JSON for a test to compare with what it wrote.

Usage: /usr/bin/python3 read_safetensors_numpy.py FILE.safetensors > tensors.json

Output: {"metadata": {...}, "tensors": {name: {"dtype": "F32", "shape": [...], "values": [flat, row-major]}}}
Float values are printed as Python floats (float64), which every F32/F16/BF16 value converts to exactly.
"""
import json
import struct
import sys

try:
    import numpy as np
except ImportError:
    sys.exit("numpy is not installed for /usr/bin/python3 (apt-get install python3-numpy)")

NUMPY_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
                "U8": "u1", "BOOL": "?"}


def fail(message):
    sys.exit(f"{sys.argv[1]}: {message}")


def decode(dtype, raw):
    if dtype == "BF16":
        # bfloat16 is the upper half of a float32: widen the bits and reinterpret.
        return (np.frombuffer(raw, dtype="<u2").astype("<u4") << 16).view("<f4")
    if dtype not in NUMPY_DTYPES:
        fail(f"unknown dtype {dtype}")
    return np.frombuffer(raw, dtype=NUMPY_DTYPES[dtype])


def main():
    with open(sys.argv[1], "rb") as f:
        blob = f.read()
    (header_length,) = struct.unpack("<Q", blob[:8])
    if 8 + header_length > len(blob):
        fail("header runs past the end of the file")
    header = json.loads(blob[8:8 + header_length].decode("utf-8"))
    data = blob[8 + header_length:]
    metadata = header.pop("__metadata__", None)
    if metadata is not None and not all(isinstance(v, str) for v in metadata.values()):
        fail("__metadata__ values must be strings")

    tensors, spans = {}, []
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        values = decode(entry["dtype"], data[begin:end])
        if values.size != int(np.prod(entry["shape"], dtype=np.int64)):
            fail(f"tensor {name}: {values.size} elements for shape {entry['shape']}")
        spans.append((begin, end))
        tensors[name] = {"dtype": entry["dtype"], "shape": entry["shape"], "values": values.tolist()}

    # The format has no gaps or overlaps: sorted spans tile the data section exactly.
    position = 0
    for begin, end in sorted(spans):
        if begin != position:
            fail(f"data_offsets leave a gap or overlap at byte {begin} (expected {position})")
        position = end
    if position != len(data):
        fail(f"data section has {len(data)} bytes but the tensors cover {position}")

    json.dump({"metadata": metadata, "tensors": tensors}, sys.stdout)


if __name__ == "__main__":
    main()
