#!/usr/bin/env python3
"""Optional sanity check that the sample data carries a learnable signal. Needs PyTorch.

Trains a small randomly initialised BERT-shaped encoder (Chinese vocab of bert-base-chinese,
CLS or mean pooling, cosine / temperature, contrastive loss over the group and the batch) for a
wall-clock or step budget on the sample training files, and reports MRR@10 and Recall@10 on the
held-out eval queries before and after. It is a stand-in for `llm-embedder train`, not a
reference implementation of it; the tokenizer is a simplified BERT basic+wordpiece.

  /usr/bin/python3 samples/tools/check_learnable.py --vocab tests/fixtures/bert-base-chinese/vocab.txt
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
import unicodedata
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

SAMPLES = Path(__file__).resolve().parent.parent


class Tokenizer:
    def __init__(self, vocab_path: Path):
        tokens = vocab_path.read_text(encoding="utf-8").split("\n")
        self.ids = {t: i for i, t in enumerate(tokens) if t}
        self.unk, self.cls, self.sep, self.pad = (self.ids[t] for t in ("[UNK]", "[CLS]", "[SEP]", "[PAD]"))

    def words(self, text: str):
        word = ""
        for ch in text.lower():
            if ch.isspace():
                if word:
                    yield word
                word = ""
            elif ch.isascii() and ch.isalnum():
                word += ch
            else:
                if word:
                    yield word
                word = ""
                yield ch
        if word:
            yield word

    def encode(self, text: str, max_len: int) -> list[int]:
        out = [self.cls]
        for w in self.words(text):
            if w in self.ids:
                out.append(self.ids[w])
                continue
            start, pieces = 0, []
            while start < len(w):
                end = len(w)
                while end > start:
                    piece = w[start:end] if start == 0 else "##" + w[start:end]
                    if piece in self.ids:
                        pieces.append(self.ids[piece])
                        break
                    end -= 1
                if end == start:
                    pieces = [self.unk]
                    break
                start = end
            out.extend(pieces)
        return out[: max_len - 1] + [self.sep]


class Encoder(nn.Module):
    def __init__(self, vocab: int, hidden: int, layers: int, heads: int, pooling: str, max_len: int = 256):
        super().__init__()
        self.pooling = pooling
        self.tok = nn.Embedding(vocab, hidden)
        self.pos = nn.Embedding(max_len, hidden)
        self.norm = nn.LayerNorm(hidden, eps=1e-12)
        layer = nn.TransformerEncoderLayer(hidden, heads, 4 * hidden, dropout=0.1, activation="gelu",
                                           batch_first=True)
        self.layers = nn.TransformerEncoder(layer, layers)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(ids.shape[1]).unsqueeze(0)
        x = self.norm(self.tok(ids) + self.pos(pos))
        x = self.layers(x, src_key_padding_mask=~mask)
        if self.pooling == "mean":
            m = mask.unsqueeze(-1).float()
            return F.normalize((x * m).sum(1) / m.sum(1), dim=-1)
        return F.normalize(x[:, 0], dim=-1)


def batchify(tok: Tokenizer, texts: list[str], max_len: int):
    seqs = [tok.encode(t, max_len) for t in texts]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), tok.pad)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
    return ids, ids != tok.pad


@torch.no_grad()
def evaluate(model, tok, queries, corpus, key_template="{title} {text}", show_failures=False):
    model.eval()
    keys = [key_template.format(**c) for c in corpus]
    k = torch.cat([model(*batchify(tok, keys[i:i + 64], 128)) for i in range(0, len(keys), 64)])
    q = model(*batchify(tok, [r["query"] for r in queries], 64))
    top = (q @ k.T).topk(10, dim=1).indices.tolist()
    if show_failures:
        for r, ranked in zip(queries, top):
            if not set(ranked) & set(r["pos_index"]):
                print("  miss:", r["query"], "->", " / ".join(corpus[i]["title"] for i in ranked[:5]))
    mrr = recall = 0.0
    for r, ranked in zip(queries, top):
        hits = [i for i, idx in enumerate(ranked) if idx in r["pos_index"]]
        mrr += 1.0 / (hits[0] + 1) if hits else 0.0
        recall += len(set(ranked) & set(r["pos_index"])) / len(r["pos_index"])
    model.train()
    return mrr / len(queries), recall / len(queries)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vocab", type=Path, required=True)
    ap.add_argument("--seconds", type=float, default=180)
    ap.add_argument("--steps", type=int, default=0, help="stop after this many steps (0: only the time budget)")
    ap.add_argument("--eval_every", type=int, default=0)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--temperature", type=float, default=0.02)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--data", type=Path, default=SAMPLES, help="folder with train/ and eval/")
    ap.add_argument("--tasks", default="qa,icl", help="training datasets to use")
    ap.add_argument("--pooling", choices=["cls", "mean"], default="cls")
    ap.add_argument("--show_failures", action="store_true")
    ap.add_argument("--key_template", default="{title} {text}", help="how corpus rows become keys at evaluation")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    tok = Tokenizer(args.vocab)
    load = lambda p: [json.loads(l) for l in (args.data / p).read_text(encoding="utf-8").splitlines() if l]
    datasets = {t: load(f"train/{t}/train.jsonl") for t in args.tasks.split(",")}
    corpus, queries = load("eval/corpus.jsonl"), load("eval/queries.jsonl")
    trained = {t for r in datasets["qa"] for t in r["pos"] + r["neg"]}
    subsets = {
        "all": queries,
        "seen passages": [r for r in queries if corpus[r["pos_index"][0]]["text"] in trained],
        "unseen passages": [r for r in queries if corpus[r["pos_index"][0]]["text"] not in trained],
    }

    model = Encoder(len(tok.ids), args.hidden, args.layers, max(2, args.hidden // 64), args.pooling)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)

    def report(label):
        parts = []
        for name, qs in subsets.items():
            mrr, rec = evaluate(model, tok, qs, corpus, args.key_template)
            parts.append(f"{name} ({len(qs)}): MRR@10 {mrr:.3f} R@10 {rec:.3f}")
        print(f"{label}: " + " | ".join(parts), flush=True)

    report("before training")
    start, step, epoch = time.time(), 0, 0
    done = lambda: time.time() - start >= args.seconds or (args.steps and step >= args.steps)
    while not done():
        epoch += 1
        batches = []
        for name, rows in datasets.items():      # one dataset per batch, like inbatch_same_dataset=epoch
            order = rows[:]
            rng.shuffle(order)
            batches += [order[i:i + args.batch] for i in range(0, len(order) - args.batch + 1, args.batch)]
        rng.shuffle(batches)
        for rows in batches:
            if done():
                break
            qs, ks = [], []
            for r in rows:
                qs.append(r["query"])
                negs = r["neg"] * math.ceil((args.group - 1) / len(r["neg"]))
                ks += [rng.choice(r["pos"])] + rng.sample(negs, args.group - 1)
            # Linear warm-up over the first 50 steps, then constant: the budget is in seconds.
            for g in opt.param_groups:
                g["lr"] = args.lr * min(1.0, (step + 1) / 50)
            q = model(*batchify(tok, qs, 64))
            k = model(*batchify(tok, ks, 128))
            scores = q @ k.T / args.temperature
            loss = F.cross_entropy(scores, torch.arange(len(qs)) * args.group)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            if step % 100 == 0:
                print(f"step {step} epoch {epoch} loss {loss.item():.3f} ({time.time() - start:.0f}s)", flush=True)
            if args.eval_every and step % args.eval_every == 0:
                report(f"step {step}")
    print(f"trained {step} steps, {epoch} epochs, {time.time() - start:.0f}s")
    report("after training")
    if args.show_failures:
        evaluate(model, tok, queries, corpus, args.key_template, show_failures=True)


if __name__ == "__main__":
    main()
