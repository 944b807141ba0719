"""What SentenceTransformer(folder).encode(texts, prompt_name=...) computes, written from sentence-transformers' and
Hugging Face transformers' semantics with nothing but json, numpy and torch (neither package is installed here).

The folder is read the way sentence-transformers reads it: modules.json in order, each module loaded from its own
path and dispatched on its type (Transformer, Pooling, Dense, Normalize); nothing else in the folder (in particular
no file of llm-embedder's own) is looked at. The Transformer is a BERT forward pass written here (HF BertModel:
embeddings word + position + token type, LayerNorm; per layer self-attention with the padding mask, LayerNorm,
exact-erf GELU feed-forward, LayerNorm; the pooler is not used), computed in float64.

Python has no BERT tokenizer here, so prompts and tokens come from the test: `describe` prints what the folder says
(module types in order, prompts, max_seq_length), the test prepends the prompt it read there and tokenizes with
Hugging Face tokenizers, and `encode` runs the pipeline on those token ids.

Usage:
  /usr/bin/python3 sentence_transformers_reference.py describe FOLDER
      -> {"modules": ["Transformer", ...], "prompts": {...}, "default_prompt_name": ..., "similarity_fn_name": ...,
          "max_seq_length": N, "do_lower_case": bool}
  /usr/bin/python3 sentence_transformers_reference.py encode FOLDER IDS.json OUT.npy
      IDS.json: {"input_ids": [[101, ..., 102], ...]} (one list per text, unpadded; padded here as tokenizer(padding=True))
      -> OUT.npy float32 [texts, dimension]; prints {"modules": [...], "rows": n, "dimension": d}
"""
import json
import math
import os
import struct
import sys

try:
    import numpy as np
    import torch
except ImportError as e:
    sys.exit(f"{e.name} is not installed for /usr/bin/python3 (apt-get install python3-torch python3-numpy)")

MODULE_NAMESPACE = "sentence_transformers.models."
SAFETENSORS_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4"}


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def load_weights(folder):
    """model.safetensors parsed with numpy (header length, JSON header, raw little-endian data), else pytorch_model.bin."""
    path = os.path.join(folder, "model.safetensors")
    if not os.path.exists(path):
        return {k: v.double() for k, v in torch.load(os.path.join(folder, "pytorch_model.bin"), map_location="cpu").items()}
    with open(path, "rb") as f:
        blob = f.read()
    (header_length,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + header_length].decode("utf-8"))
    header.pop("__metadata__", None)
    data = blob[8 + header_length:]
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        raw = data[begin:end]
        if entry["dtype"] == "BF16":
            values = (np.frombuffer(raw, dtype="<u2").astype("<u4") << 16).view("<f4")
        else:
            values = np.frombuffer(raw, dtype=SAFETENSORS_DTYPES[entry["dtype"]])
        tensors[name] = torch.from_numpy(values.astype(np.float64).reshape(entry["shape"]))
    return tensors


class Transformer:
    """models.Transformer: AutoModel (here: BertModel) on the folder at its path; token_embeddings = last hidden state."""

    def __init__(self, folder):
        self.config = read_json(os.path.join(folder, "config.json"))
        if self.config.get("model_type", "bert") != "bert":
            sys.exit(f"{folder}: model_type {self.config.get('model_type')} is not BERT")
        if self.config.get("hidden_act", "gelu") != "gelu":
            sys.exit(f"{folder}: hidden_act {self.config.get('hidden_act')} (this reference computes exact gelu)")
        if self.config.get("position_embedding_type", "absolute") != "absolute":
            sys.exit(f"{folder}: position_embedding_type {self.config.get('position_embedding_type')} (absolute only)")
        weights = load_weights(folder)
        # BertModel's own keys, or BertFor*'s with a "bert." prefix.
        self.w = {k[len("bert."):] if k.startswith("bert.") else k: v for k, v in weights.items()}
        bert_config_path = os.path.join(folder, "sentence_bert_config.json")
        self.st_config = read_json(bert_config_path) if os.path.exists(bert_config_path) else {}

    def layer_norm(self, x, prefix):
        return torch.nn.functional.layer_norm(x, (x.shape[-1],), self.w[prefix + ".weight"], self.w[prefix + ".bias"],
                                              float(self.config.get("layer_norm_eps", 1e-12)))

    def linear(self, x, prefix):
        return x @ self.w[prefix + ".weight"].T + self.w[prefix + ".bias"]

    def forward(self, features):
        ids, mask = features["input_ids"], features["attention_mask"]
        batch, length = ids.shape
        heads = self.config["num_attention_heads"]
        hidden = self.config["hidden_size"]
        head_size = hidden // heads
        token_types = torch.zeros_like(ids)
        x = (self.w["embeddings.word_embeddings.weight"][ids]
             + self.w["embeddings.position_embeddings.weight"][torch.arange(length)][None, :, :]
             + self.w["embeddings.token_type_embeddings.weight"][token_types])
        x = self.layer_norm(x, "embeddings.LayerNorm")
        # get_extended_attention_mask: 0 where attended, the dtype's minimum where padded.
        additive = (1.0 - mask[:, None, None, :].double()) * torch.finfo(torch.float64).min
        for i in range(self.config["num_hidden_layers"]):
            p = f"encoder.layer.{i}"

            def split(t):
                return t.view(batch, length, heads, head_size).permute(0, 2, 1, 3)

            q = split(self.linear(x, p + ".attention.self.query"))
            k = split(self.linear(x, p + ".attention.self.key"))
            v = split(self.linear(x, p + ".attention.self.value"))
            scores = q @ k.transpose(-1, -2) / math.sqrt(head_size) + additive
            context = (torch.softmax(scores, dim=-1) @ v).permute(0, 2, 1, 3).reshape(batch, length, hidden)
            x = self.layer_norm(self.linear(context, p + ".attention.output.dense") + x, p + ".attention.output.LayerNorm")
            inner = self.linear(x, p + ".intermediate.dense")
            inner = 0.5 * inner * (1.0 + torch.erf(inner / math.sqrt(2.0)))
            x = self.layer_norm(self.linear(inner, p + ".output.dense") + x, p + ".output.LayerNorm")
        features["token_embeddings"] = x
        return features


class Pooling:
    """models.Pooling: cls_token (the first token) or mean_tokens (mean over attended tokens, sum_mask clamped at 1e-9)."""

    def __init__(self, folder):
        self.config = read_json(os.path.join(folder, "config.json"))
        modes = [m for m in ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens", "weightedmean_tokens", "lasttoken")
                 if self.config.get("pooling_mode_" + m, False)]
        if modes not in (["cls_token"], ["mean_tokens"]):
            sys.exit(f"{folder}: pooling modes {modes} (this reference computes cls_token or mean_tokens alone)")
        if not self.config.get("include_prompt", True):
            sys.exit(f"{folder}: include_prompt false is not computed by this reference")
        self.mode = modes[0]

    def forward(self, features):
        tokens, mask = features["token_embeddings"], features["attention_mask"]
        if self.mode == "cls_token":
            features["sentence_embedding"] = tokens[:, 0]
        else:
            expanded = mask.unsqueeze(-1).expand(tokens.size()).double()
            features["sentence_embedding"] = (tokens * expanded).sum(1) / torch.clamp(expanded.sum(1), min=1e-9)
        return features


class Dense:
    """models.Dense: activation(linear(x)); linear.weight [out, in], linear.bias when config.bias."""

    ACTIVATIONS = {"torch.nn.modules.linear.Identity": lambda t: t, "torch.nn.modules.activation.Tanh": torch.tanh}

    def __init__(self, folder):
        self.config = read_json(os.path.join(folder, "config.json"))
        weights = load_weights(folder)
        self.weight = weights["linear.weight"]
        if list(self.weight.shape) != [self.config["out_features"], self.config["in_features"]]:
            sys.exit(f"{folder}: linear.weight {list(self.weight.shape)} vs config [{self.config['out_features']}, {self.config['in_features']}]")
        self.bias = weights["linear.bias"] if self.config.get("bias", True) else None
        if self.config.get("bias", True) != ("linear.bias" in weights):
            sys.exit(f"{folder}: config bias {self.config.get('bias', True)} but weights {sorted(weights)}")
        activation = self.config.get("activation_function", "torch.nn.modules.activation.Tanh")
        if activation not in self.ACTIVATIONS:
            sys.exit(f"{folder}: activation_function {activation}")
        self.activation = self.ACTIVATIONS[activation]

    def forward(self, features):
        x = features["sentence_embedding"] @ self.weight.T
        if self.bias is not None:
            x = x + self.bias
        features["sentence_embedding"] = self.activation(x)
        return features


class Normalize:
    def __init__(self, folder):
        pass

    def forward(self, features):
        features["sentence_embedding"] = torch.nn.functional.normalize(features["sentence_embedding"], p=2, dim=1)
        return features


MODULE_TYPES = {"Transformer": Transformer, "Pooling": Pooling, "Dense": Dense, "Normalize": Normalize}


def module_types(folder):
    names = []
    for module in sorted(read_json(os.path.join(folder, "modules.json")), key=lambda m: m["idx"]):
        kind = module["type"]
        if not kind.startswith(MODULE_NAMESPACE) or kind[len(MODULE_NAMESPACE):] not in MODULE_TYPES:
            sys.exit(f"{folder}: module type {kind} is not one this reference computes")
        names.append((kind[len(MODULE_NAMESPACE):], os.path.join(folder, module["path"])))
    return names


def describe(folder):
    config_path = os.path.join(folder, "config_sentence_transformers.json")
    config = read_json(config_path) if os.path.exists(config_path) else {}
    bert_config_path = os.path.join(folder, "sentence_bert_config.json")
    bert_config = read_json(bert_config_path) if os.path.exists(bert_config_path) else {}
    return {
        "modules": [kind for kind, _ in module_types(folder)],
        "prompts": config.get("prompts", {}),
        "default_prompt_name": config.get("default_prompt_name"),
        "similarity_fn_name": config.get("similarity_fn_name"),
        "max_seq_length": bert_config.get("max_seq_length"),
        "do_lower_case": bert_config.get("do_lower_case", False),
    }


def encode(folder, ids_path, output_path):
    modules = module_types(folder)
    pipeline = [MODULE_TYPES[kind](path) for kind, path in modules]
    rows = read_json(ids_path)["input_ids"]
    pad_id = pipeline[0].config.get("pad_token_id", 0) if isinstance(pipeline[0], Transformer) else 0
    longest = max(len(r) for r in rows)
    ids = torch.tensor([r + [pad_id] * (longest - len(r)) for r in rows], dtype=torch.long)
    mask = torch.tensor([[1] * len(r) + [0] * (longest - len(r)) for r in rows], dtype=torch.long)
    features = {"input_ids": ids, "attention_mask": mask}
    with torch.no_grad():
        for module in pipeline:
            features = module.forward(features)
    embeddings = features["sentence_embedding"].numpy().astype("<f4")
    np.save(output_path, embeddings)
    return {"modules": [kind for kind, _ in modules], "rows": int(embeddings.shape[0]), "dimension": int(embeddings.shape[1])}


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "describe":
        print(json.dumps(describe(sys.argv[2]), ensure_ascii=False))
    elif len(sys.argv) == 5 and sys.argv[1] == "encode":
        print(json.dumps(encode(sys.argv[2], sys.argv[3], sys.argv[4])))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
