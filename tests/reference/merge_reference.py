"""LM-Cocktail's merge (mix_models / merge_param) recomputed with numpy in float32, compared with a merged folder.

Usage: /usr/bin/python3 merge_reference.py MERGED_DIR W1 DIR1 W2 DIR2 [W3 DIR3 ...]

For every tensor of MERGED_DIR/model.safetensors (and dense_pooler.bin when MERGED_DIR has one), the reference is
    float32(W1) * t1 + float32(W2) * t2 + ...
accumulated left to right in float32, each product and sum rounded to float32, as merge_param does with torch
tensors; the inputs are read from each DIR's model.safetensors (numpy, no safetensors package) and dense_pooler.bin
(torch.load). Prints {"tensors": {name: {"shape": [...], "unequal": n, "max_abs_diff": x}}, "missing": [...],
"extra": [...]}; "missing" lists input tensors the merged file lacks, "extra" merged tensors no input has.
"""
import json
import sys

try:
    import numpy as np
    import torch
except ImportError:
    sys.exit("python3-torch and python3-numpy are needed for /usr/bin/python3")

from dense_pooler_reference import read_safetensors

def read_folder(folder):
    tensors = read_safetensors(f"{folder}/model.safetensors")
    try:
        state = torch.load(f"{folder}/dense_pooler.bin", map_location="cpu")
    except FileNotFoundError:
        state = {}
    for name, tensor in state.items():
        tensors["dense_pooler." + name] = tensor.numpy()
    return tensors


def main():
    merged_dir, pairs = sys.argv[1], sys.argv[2:]
    weights = [np.float32(float(w)) for w in pairs[0::2]]
    inputs = [read_folder(d) for d in pairs[1::2]]
    merged = read_folder(merged_dir)
    report = {"tensors": {}, "missing": sorted(set(inputs[0]) - set(merged)), "extra": sorted(set(merged) - set(inputs[0]))}
    for name, actual in merged.items():
        if name not in inputs[0]:
            continue
        if not np.issubdtype(actual.dtype, np.floating):
            expected = inputs[0][name]
        else:
            expected = weights[0] * inputs[0][name].astype(np.float32)
            for weight, tensors in zip(weights[1:], inputs[1:]):
                expected = (expected + weight * tensors[name].astype(np.float32)).astype(np.float32)
        report["tensors"][name] = {
            "shape": list(actual.shape),
            "unequal": int(np.sum(expected != actual)),
            "max_abs_diff": float(np.max(np.abs(expected.astype(np.float64) - actual.astype(np.float64)))) if actual.size else 0.0,
        }
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
