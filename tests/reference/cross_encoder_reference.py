"""A BERT cross-encoder (Hugging Face's BertForSequenceClassification) in plain PyTorch, for checking ours.

transformers is not installed here, so the model is written out from modeling_bert.py's definitions: embeddings
(word + position + token type, LayerNorm), post-LN encoder layers with exact-erf GELU, the pooler (tanh of a dense
layer on the first token) and the classifier on the pooler output. The pair layout and the longest_first truncation
follow Hugging Face tokenizers (tokenizers/src/utils/truncation.rs, with max_length minus the 3 special tokens).

Usage:
  /usr/bin/python3 cross_encoder_reference.py write OUT_DIR VOCAB_SIZE SEED
      A random-weight BertForSequenceClassification (1 label) as a Hugging Face folder: config.json and
      pytorch_model.bin (torch.save of the state dict, keys "bert.*" and "classifier.*").
  /usr/bin/python3 cross_encoder_reference.py score MODEL_DIR PAIRS.json
      PAIRS.json: {"max_length": N, "cls": id, "sep": id, "pad": id, "pairs": [[ids of text a], [ids of text b]], ...]}
      with each text's ids without special tokens and untruncated. Prints {"logits": [...], "input_ids": [[...], ...],
      "token_type_ids": [[...], ...]} (the rows without padding).
"""
import json
import math
import os
import sys

try:
    import torch
except ImportError:
    sys.exit("python3-torch is needed for /usr/bin/python3")

CONFIG = {
    "architectures": ["BertForSequenceClassification"], "model_type": "bert", "hidden_size": 32, "num_hidden_layers": 2,
    "num_attention_heads": 4, "intermediate_size": 48, "hidden_act": "gelu", "max_position_embeddings": 64,
    "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
    "initializer_range": 0.02, "pad_token_id": 0, "id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0},
    "position_embedding_type": "absolute",
}


def random_state(vocab_size, seed):
    """Every tensor of the checkpoint, drawn with a spread wide enough that token types and the pooler matter."""
    generator = torch.Generator().manual_seed(seed)
    hidden, inner = CONFIG["hidden_size"], CONFIG["intermediate_size"]

    def normal(*shape, std=0.2):
        return torch.randn(*shape, generator=generator) * std

    state = {
        "bert.embeddings.word_embeddings.weight": normal(vocab_size, hidden, std=0.5),
        "bert.embeddings.position_embeddings.weight": normal(CONFIG["max_position_embeddings"], hidden, std=0.5),
        "bert.embeddings.token_type_embeddings.weight": normal(CONFIG["type_vocab_size"], hidden, std=0.5),
        "bert.embeddings.LayerNorm.weight": 1 + normal(hidden, std=0.1),
        "bert.embeddings.LayerNorm.bias": normal(hidden, std=0.1),
        "bert.embeddings.position_ids": torch.arange(CONFIG["max_position_embeddings"]).unsqueeze(0),
    }
    for layer in range(CONFIG["num_hidden_layers"]):
        prefix = f"bert.encoder.layer.{layer}."
        for name in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            state[prefix + name + ".weight"] = normal(hidden, hidden)
            state[prefix + name + ".bias"] = normal(hidden, std=0.05)
        state[prefix + "intermediate.dense.weight"] = normal(inner, hidden)
        state[prefix + "intermediate.dense.bias"] = normal(inner, std=0.05)
        state[prefix + "output.dense.weight"] = normal(hidden, inner)
        state[prefix + "output.dense.bias"] = normal(hidden, std=0.05)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            state[prefix + norm + ".weight"] = 1 + normal(hidden, std=0.1)
            state[prefix + norm + ".bias"] = normal(hidden, std=0.1)
    state["bert.pooler.dense.weight"] = normal(hidden, hidden, std=0.5)
    state["bert.pooler.dense.bias"] = normal(hidden, std=0.1)
    state["classifier.weight"] = normal(1, hidden, std=1.0)
    state["classifier.bias"] = normal(1, std=0.5)
    return state


def write(out_dir, vocab_size, seed):
    os.makedirs(out_dir, exist_ok=True)
    config = dict(CONFIG, vocab_size=vocab_size)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    torch.save(random_state(vocab_size, seed), os.path.join(out_dir, "pytorch_model.bin"))


def pair_lengths(n1, n2, budget):
    """tokenizers' LongestFirst for a pair: the kept lengths of both texts."""
    if n1 + n2 <= budget:
        return n1, n2
    swap = n1 > n2
    if swap:
        n1, n2 = n2, n1
    n2 = n1 if n1 > budget else max(n1, budget - n1)
    if n1 + n2 > budget:
        n1 = budget // 2
        n2 = n1 + budget % 2
    return (n2, n1) if swap else (n1, n2)


def layer_norm(x, weight, bias, eps):
    mean = x.mean(-1, keepdim=True)
    variance = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(variance + eps) * weight + bias


def linear(state, name, x):
    return x @ state[name + ".weight"].T + state[name + ".bias"]


def forward(state, config, input_ids, token_type_ids, attention_mask):
    eps = config["layer_norm_eps"]
    batch, length = input_ids.shape
    positions = torch.arange(length).unsqueeze(0).expand(batch, length)
    hidden = (state["bert.embeddings.word_embeddings.weight"][input_ids]
              + state["bert.embeddings.position_embeddings.weight"][positions]
              + state["bert.embeddings.token_type_embeddings.weight"][token_type_ids])
    hidden = layer_norm(hidden, state["bert.embeddings.LayerNorm.weight"], state["bert.embeddings.LayerNorm.bias"], eps)
    heads = config["num_attention_heads"]
    size = config["hidden_size"] // heads
    # modeling_bert's extended mask: 0 where attended, the dtype's minimum where padded.
    additive = (1.0 - attention_mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
    for layer in range(config["num_hidden_layers"]):
        p = f"bert.encoder.layer.{layer}."

        def split(x):
            return x.view(batch, length, heads, size).transpose(1, 2)

        q = split(linear(state, p + "attention.self.query", hidden))
        k = split(linear(state, p + "attention.self.key", hidden))
        v = split(linear(state, p + "attention.self.value", hidden))
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(size) + additive, dim=-1)
        context = (weights @ v).transpose(1, 2).reshape(batch, length, heads * size)
        attended = layer_norm(linear(state, p + "attention.output.dense", context) + hidden,
                              state[p + "attention.output.LayerNorm.weight"], state[p + "attention.output.LayerNorm.bias"], eps)
        inner = linear(state, p + "intermediate.dense", attended)
        inner = 0.5 * inner * (1.0 + torch.erf(inner / math.sqrt(2.0)))
        hidden = layer_norm(linear(state, p + "output.dense", inner) + attended,
                            state[p + "output.LayerNorm.weight"], state[p + "output.LayerNorm.bias"], eps)
    pooled = torch.tanh(linear(state, "bert.pooler.dense", hidden[:, 0]))
    return linear(state, "classifier", pooled)[:, 0]


def score(model_dir, pairs_path):
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    state = {k: v.float() if v.is_floating_point() else v for k, v in torch.load(os.path.join(model_dir, "pytorch_model.bin")).items()}
    with open(pairs_path) as f:
        request = json.load(f)
    budget = request["max_length"] - 3
    rows, types = [], []
    for a, b in request["pairs"]:
        keep_a, keep_b = pair_lengths(len(a), len(b), budget)
        first = [request["cls"]] + a[:keep_a] + [request["sep"]]
        second = b[:keep_b] + [request["sep"]]
        rows.append(first + second)
        types.append([0] * len(first) + [1] * len(second))
    longest = max(len(r) for r in rows)
    input_ids = torch.tensor([r + [request["pad"]] * (longest - len(r)) for r in rows])
    token_type_ids = torch.tensor([t + [0] * (longest - len(t)) for t in types])
    attention_mask = torch.tensor([[1] * len(r) + [0] * (longest - len(r)) for r in rows])
    with torch.no_grad():
        logits = forward(state, config, input_ids, token_type_ids, attention_mask)
    print(json.dumps({"logits": logits.tolist(), "input_ids": rows, "token_type_ids": types}))


if __name__ == "__main__":
    torch.set_num_threads(1)
    if sys.argv[1] == "write":
        write(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif sys.argv[1] == "score":
        score(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
