"""The reference's dense pooler and the sentence-transformers Dense/Normalize modules, with torch and numpy only.

Usage:
  /usr/bin/python3 dense_pooler_reference.py write OUT.bin DIM SEED
      torch.save of a bias-free torch.nn.Linear(DIM, DIM)'s state_dict ({"weight": [DIM, DIM]}), as run_dense.py
      saves dense_pooler.bin.
  /usr/bin/python3 dense_pooler_reference.py pipeline EXPORT_DIR POOLED.npy OUT.npy DENSE_POOLER.bin
      Reads EXPORT_DIR/modules.json as sentence-transformers does and applies the modules after Pooling to the pooled
      vectors in POOLED.npy: Dense (config.json + model.safetensors "linear.weight"/"linear.bias", read with numpy)
      and Normalize. Writes OUT.npy and prints {"modules": [...], "max_weight_difference": max |W_export - W_bin|}.
  /usr/bin/python3 dense_pooler_reference.py read DENSE_POOLER.bin OUT.npy
      Loads the file as run_dense.py does (torch.load, then load_state_dict into a bias-free torch.nn.Linear, strict),
      writes the weight to OUT.npy and prints {"keys": [...], "dtype": "...", "shape": [...], "zip_methods": [...]}
      (zip_methods: the compression method of each entry, 0 = stored, as torch.save writes them).
  /usr/bin/python3 dense_pooler_reference.py apply DENSE_POOLER.bin POOLED.npy OUT.npy
      The reference's encode after pooling with a dense pooler and the cos metric: normalize(dense_pooler(pooled)).
"""
import json
import os
import struct
import sys
import zipfile

try:
    import numpy as np
    import torch
except ImportError:
    sys.exit("python3-torch and python3-numpy are needed for /usr/bin/python3")

IDENTITY = "torch.nn.modules.linear.Identity"


def write(out, dim, seed):
    torch.manual_seed(seed)
    pooler = torch.nn.Linear(dim, dim, bias=False)
    torch.save(pooler.state_dict(), out)


def load_pooler(path):
    state = torch.load(path, map_location="cpu")
    dim = state["weight"].shape[1]
    pooler = torch.nn.Linear(dim, dim, bias=False)
    pooler.load_state_dict(state)
    return state, pooler


def read(path, out_path):
    state, pooler = load_pooler(path)
    np.save(out_path, pooler.weight.detach().numpy())
    weight = state["weight"]
    with zipfile.ZipFile(path) as archive:
        methods = sorted({entry.compress_type for entry in archive.infolist()})
    print(json.dumps({"keys": list(state.keys()), "dtype": str(weight.dtype), "shape": list(weight.shape), "zip_methods": methods}))


def apply(path, pooled_path, out_path):
    _, pooler = load_pooler(path)
    with torch.no_grad():
        projected = pooler(torch.from_numpy(np.load(pooled_path)))
        np.save(out_path, torch.nn.functional.normalize(projected, dim=-1).numpy())


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (length,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + length])
    header.pop("__metadata__", None)
    data = blob[8 + length:]
    tensors = {}
    for name, entry in header.items():
        if entry["dtype"] != "F32":
            sys.exit(f"{path}: {name} is {entry['dtype']}, expected F32")
        begin, end = entry["data_offsets"]
        tensors[name] = np.frombuffer(data[begin:end], dtype="<f4").reshape(entry["shape"])
    return tensors


def pipeline(export_dir, pooled_path, out_path, dense_pooler):
    with open(os.path.join(export_dir, "modules.json")) as f:
        modules = json.load(f)
    vectors = np.load(pooled_path).astype(np.float64)
    names, weight_difference = [], None
    for module in modules:
        kind = module["type"].rsplit(".", 1)[-1]
        names.append(kind)
        folder = os.path.join(export_dir, module["path"])
        if kind == "Dense":
            with open(os.path.join(folder, "config.json")) as f:
                config = json.load(f)
            if config["activation_function"] != IDENTITY:
                sys.exit(f"unexpected activation {config['activation_function']}")
            tensors = read_safetensors(os.path.join(folder, "model.safetensors"))
            weight = tensors["linear.weight"]
            if list(weight.shape) != [config["out_features"], config["in_features"]]:
                sys.exit(f"linear.weight shape {weight.shape} disagrees with config.json")
            vectors = vectors @ weight.astype(np.float64).T
            if config["bias"]:
                vectors = vectors + tensors["linear.bias"].astype(np.float64)
            original = torch.load(dense_pooler, map_location="cpu")["weight"].numpy()
            weight_difference = float(np.abs(original - weight).max())
        elif kind == "Normalize":
            vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    np.save(out_path, vectors.astype(np.float32))
    print(json.dumps({"modules": names, "max_weight_difference": weight_difference}))


def main():
    torch.set_num_threads(1)
    if sys.argv[1] == "write":
        write(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif sys.argv[1] == "read":
        read(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "apply":
        apply(sys.argv[2], sys.argv[3], sys.argv[4])
    elif sys.argv[1] == "pipeline":
        pipeline(*sys.argv[2:6])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
