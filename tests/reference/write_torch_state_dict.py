"""Writes a small BertForMaskedLM-style state dict with torch.save, as transformers' save_pretrained does.

Usage: /usr/bin/python3 write_torch_state_dict.py OUT_DIR

OUT_DIR/pytorch_model.bin            torch.save(state_dict): "bert." prefix, pooler, "cls.*" head tied to the
                                     word embeddings, position_ids; fp32, fp16 and bf16 tensors; q/k/v of layer 0
                                     are slices of one fused tensor (views into a shared storage).
OUT_DIR/sharded/pytorch_model-0000{1,2}-of-00002.bin + pytorch_model.bin.index.json   the same, in two shards.
OUT_DIR/legacy/pytorch_model.bin     the same in torch.save's pre-1.6 format, which we refuse with a clear message.
OUT_DIR/reference.safetensors        every tensor again in its own dtype, written by the minimal writer below
                                     (no safetensors package), for the C# reader's output to be compared with.
"""
import collections
import json
import os
import struct
import sys

try:
    import torch
except ImportError:
    sys.exit("python3-torch is not installed for /usr/bin/python3 (apt-get install python3-torch)")

HIDDEN, INTERMEDIATE, VOCAB, POSITIONS, TYPES, LAYERS = 8, 16, 24, 16, 2, 2

DTYPE_NAMES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64"}


def state_dict():
    torch.manual_seed(20240611)
    sd = collections.OrderedDict()
    word = torch.randn(VOCAB, HIDDEN)
    sd["bert.embeddings.word_embeddings.weight"] = word
    sd["bert.embeddings.position_embeddings.weight"] = torch.randn(POSITIONS, HIDDEN).half()
    sd["bert.embeddings.token_type_embeddings.weight"] = torch.randn(TYPES, HIDDEN).bfloat16()
    sd["bert.embeddings.LayerNorm.weight"] = 1 + 0.1 * torch.randn(HIDDEN)
    sd["bert.embeddings.LayerNorm.bias"] = 0.1 * torch.randn(HIDDEN)
    sd["bert.embeddings.position_ids"] = torch.arange(POSITIONS).unsqueeze(0)
    for i in range(LAYERS):
        p = f"bert.encoder.layer.{i}."
        dtype = torch.float32 if i == 0 else torch.float16
        if i == 0:
            fused = torch.randn(3 * HIDDEN, HIDDEN)
            for j, name in enumerate(["query", "key", "value"]):
                sd[p + f"attention.self.{name}.weight"] = fused[j * HIDDEN:(j + 1) * HIDDEN]
        else:
            for name in ["query", "key", "value"]:
                sd[p + f"attention.self.{name}.weight"] = torch.randn(HIDDEN, HIDDEN).to(dtype)
        for name in ["query", "key", "value"]:
            sd[p + f"attention.self.{name}.bias"] = torch.randn(HIDDEN).to(dtype)
        sd[p + "attention.output.dense.weight"] = torch.randn(HIDDEN, HIDDEN).to(dtype)
        sd[p + "attention.output.dense.bias"] = torch.randn(HIDDEN).bfloat16()
        sd[p + "attention.output.LayerNorm.weight"] = (1 + 0.1 * torch.randn(HIDDEN)).to(dtype)
        sd[p + "attention.output.LayerNorm.bias"] = (0.1 * torch.randn(HIDDEN)).to(dtype)
        sd[p + "intermediate.dense.weight"] = torch.randn(INTERMEDIATE, HIDDEN).to(dtype)
        sd[p + "intermediate.dense.bias"] = torch.randn(INTERMEDIATE).to(dtype)
        sd[p + "output.dense.weight"] = torch.randn(HIDDEN, INTERMEDIATE).bfloat16()
        sd[p + "output.dense.bias"] = torch.randn(HIDDEN).to(dtype)
        sd[p + "output.LayerNorm.weight"] = (1 + 0.1 * torch.randn(HIDDEN)).to(dtype)
        sd[p + "output.LayerNorm.bias"] = (0.1 * torch.randn(HIDDEN)).to(dtype)
    sd["bert.pooler.dense.weight"] = torch.randn(HIDDEN, HIDDEN)
    sd["bert.pooler.dense.bias"] = torch.randn(HIDDEN)
    sd["cls.predictions.transform.dense.weight"] = torch.randn(HIDDEN, HIDDEN)
    sd["cls.predictions.transform.dense.bias"] = torch.randn(HIDDEN)
    sd["cls.predictions.transform.LayerNorm.weight"] = torch.ones(HIDDEN)
    sd["cls.predictions.transform.LayerNorm.bias"] = torch.zeros(HIDDEN)
    decoder_bias = torch.randn(VOCAB)
    sd["cls.predictions.bias"] = decoder_bias
    # BertForMaskedLM ties the decoder to the word embeddings: torch.save stores one storage for both.
    sd["cls.predictions.decoder.weight"] = word
    sd["cls.predictions.decoder.bias"] = decoder_bias
    sd._metadata = {"": {"version": 1}}
    return sd


def write_minimal_safetensors(path, tensors):
    header, chunks, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, tensor in tensors.items():
        tensor = tensor.contiguous()
        raw = tensor.view(torch.int16) if tensor.dtype == torch.bfloat16 else tensor  # numpy has no bfloat16
        data = raw.numpy().tobytes()
        header[name] = {"dtype": DTYPE_NAMES[tensor.dtype], "shape": list(tensor.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    header_bytes = json.dumps(header).encode("utf-8")
    header_bytes += b" " * (-len(header_bytes) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header_bytes)))
        f.write(header_bytes)
        for data in chunks:
            f.write(data)


def main():
    torch.set_num_threads(1)
    out = sys.argv[1]
    os.makedirs(os.path.join(out, "sharded"), exist_ok=True)
    os.makedirs(os.path.join(out, "legacy"), exist_ok=True)
    sd = state_dict()
    torch.save(sd, os.path.join(out, "pytorch_model.bin"))
    torch.save(sd, os.path.join(out, "legacy", "pytorch_model.bin"), _use_new_zipfile_serialization=False)
    write_minimal_safetensors(os.path.join(out, "reference.safetensors"), sd)

    names = list(sd.keys())
    halves = [names[: len(names) // 2], names[len(names) // 2:]]
    weight_map = {}
    for i, half in enumerate(halves):
        shard = f"pytorch_model-{i + 1:05d}-of-00002.bin"
        torch.save(collections.OrderedDict((n, sd[n]) for n in half), os.path.join(out, "sharded", shard))
        weight_map.update({n: shard for n in half})
    index = {"metadata": {"total_size": sum(t.numel() * t.element_size() for t in sd.values())}, "weight_map": weight_map}
    with open(os.path.join(out, "sharded", "pytorch_model.bin.index.json"), "w") as f:
        json.dump(index, f, indent=2)


if __name__ == "__main__":
    main()
