"""The training step of bench/LlmEmbedder.Bench/TrainStepBench.cs in PyTorch (Debian python3-torch), for a
side-by-side speed comparison on the same machine and thread count: a BERT encoder (Hugging Face layout, written out
here because Debian has no transformers package), CLS pooling, cosine contrastive loss over B queries and B*G keys,
backward, gradient clipping, AdamW. bf16 uses torch.autocast on the CPU (fp32 master weights).

usage: /usr/bin/python3 bench/pytorch/train_step.py --config CONFIG.json [--batch 16 --group 8 --query-len 32
       --key-len 128 --steps 5 --warmup 1 --threads 2 --dtype fp32|bf16]
"""
import argparse
import json
import resource
import time

import torch
import torch.nn.functional as F


class Layer(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        h, i = c["hidden_size"], c["intermediate_size"]
        self.heads = c["num_attention_heads"]
        self.query, self.key, self.value = (torch.nn.Linear(h, h) for _ in range(3))
        self.attention_output = torch.nn.Linear(h, h)
        self.attention_norm = torch.nn.LayerNorm(h, eps=c.get("layer_norm_eps", 1e-12))
        self.intermediate = torch.nn.Linear(h, i)
        self.output = torch.nn.Linear(i, h)
        self.output_norm = torch.nn.LayerNorm(h, eps=c.get("layer_norm_eps", 1e-12))
        self.dropout = torch.nn.Dropout(c.get("hidden_dropout_prob", 0.1))
        self.attention_dropout = c.get("attention_probs_dropout_prob", 0.1)

    def forward(self, x, mask):
        b, t, h = x.shape

        def heads(projection):
            return projection(x).view(b, t, self.heads, h // self.heads).transpose(1, 2)

        # Hugging Face's eager attention (torch 1.13 has no public scaled_dot_product_attention).
        q, k, v = heads(self.query), heads(self.key), heads(self.value)
        probabilities = torch.softmax(q @ k.transpose(-1, -2) / (q.shape[-1] ** 0.5) + mask, dim=-1)
        context = F.dropout(probabilities, self.attention_dropout, self.training) @ v
        context = context.transpose(1, 2).reshape(b, t, h)
        x = self.attention_norm(self.dropout(self.attention_output(context)) + x)
        return self.output_norm(self.dropout(self.output(F.gelu(self.intermediate(x)))) + x)


class Bert(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        h = c["hidden_size"]
        self.words = torch.nn.Embedding(c["vocab_size"], h, padding_idx=c.get("pad_token_id", 0))
        self.positions = torch.nn.Embedding(c.get("max_position_embeddings", 512), h)
        self.types = torch.nn.Embedding(c.get("type_vocab_size", 2), h)
        self.norm = torch.nn.LayerNorm(h, eps=c.get("layer_norm_eps", 1e-12))
        self.dropout = torch.nn.Dropout(c.get("hidden_dropout_prob", 0.1))
        self.layers = torch.nn.ModuleList(Layer(c) for _ in range(c["num_hidden_layers"]))

    def forward(self, ids, attention_mask):
        positions = torch.arange(ids.shape[1]).unsqueeze(0)
        x = self.dropout(self.norm(self.words(ids) + self.positions(positions) + self.types(torch.zeros_like(positions))))
        mask = ((1.0 - attention_mask.to(x.dtype)) * torch.finfo(x.dtype).min)[:, None, None, :]
        for layer in self.layers:
            x = layer(x, mask.to(x.dtype))
        return x


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--query-len", type=int, default=32)
    parser.add_argument("--key-len", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    config = json.load(open(args.config))
    model = Bert(config).train()
    decay = [p for n, p in model.named_parameters() if not (n.endswith("bias") or "norm" in n)]
    no_decay = [p for n, p in model.named_parameters() if n.endswith("bias") or "norm" in n]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}], lr=1e-5)
    vocab = config["vocab_size"]

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.dtype == "bf16"):
            q = model(torch.randint(1000, vocab, (args.batch, args.query_len)), torch.ones(args.batch, args.query_len))[:, 0]
            k = model(torch.randint(1000, vocab, (args.batch * args.group, args.key_len)),
                      torch.ones(args.batch * args.group, args.key_len))[:, 0]
        q, k = F.normalize(q.float(), dim=-1), F.normalize(k.float(), dim=-1)
        scores = q @ k.T / 0.02
        loss = F.cross_entropy(scores, torch.arange(args.batch) * args.group)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()

    for _ in range(args.warmup):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = (time.perf_counter() - start) / args.steps
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10
    print(f"PyTorch {torch.__version__} {config['num_hidden_layers']}L/{config['hidden_size']}H {args.dtype} batch {args.batch} x group "
          f"{args.group}, q{args.query_len}/k{args.key_len}, {torch.get_num_threads()} threads: {seconds:.3f} s/step, "
          f"{args.batch / seconds:.2f} queries/s; peak RSS {peak} MiB")


if __name__ == "__main__":
    main()
