#!/usr/bin/python3
"""PyTorch reference values for the retrieval losses (docs/REFERENCE.md §4).

Writes tests/LlmEmbedder.Tests/Training/Losses/losses_reference.json: fixed inputs, and for each
case the loss value and its gradients with respect to the (raw, un-normalised) query and key
embeddings. The C# tests in tests/LlmEmbedder.Tests/Training/Losses load that file and compare;
LossesReferenceReproductionTests re-runs this script to check the committed file still matches.
PyTorch's CPU kernels round differently on different processors, so a run on another machine changes
the last float32 bits of many values; that test allows for it, so regenerate only when this script changes.

The semantics follow FlagEmbedding research/llm_embedder/src/retrieval/modeling_dense.py
(_compute_loss, _gather_tensors): keys flattened [q0_pos, q0_negs..., q1_pos, ...]; cos metric
L2-normalises and divides by cos_temperature; ip and l2 score by inner product without
temperature (the reference uses l2 only when building the search index).

Run with Debian's torch: /usr/bin/python3 tests/reference/losses_reference.py [--out PATH]
"""
import argparse
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)

BATCH = 3          # queries per rank
GROUP = 4          # keys per query: 1 positive + 3 negatives
DIM = 8
WORLD = 2          # simulated ranks for the cross-device cases

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "LlmEmbedder.Tests",
                           "Training", "Losses", "losses_reference.json")


def fixed_inputs(seed):
    """Inputs from numpy's legacy generator (stable across versions), rounded to float32."""
    rng = np.random.RandomState(seed)
    # Raw pooled embeddings of norm ~1, like an encoder output before normalisation, but not unit.
    queries = rng.normal(0.0, 1.0, (BATCH, DIM)) / np.sqrt(DIM) * rng.uniform(0.5, 2.0, (BATCH, 1))
    keys = rng.normal(0.0, 1.0, (BATCH * GROUP, DIM)) / np.sqrt(DIM) * rng.uniform(0.5, 2.0, (BATCH * GROUP, 1))
    # Make each positive a little closer to its query so the losses are not all near log(B*G).
    for i in range(BATCH):
        keys[i * GROUP] = 0.6 * keys[i * GROUP] + 0.4 * queries[i]
    teacher = rng.normal(0.0, 1.0, (BATCH, GROUP))
    as32 = lambda a: a.astype(np.float32)
    return as32(queries), as32(keys), as32(teacher)


def scores_of(q, k, metric, cos_temperature):
    if metric == "cos":
        return F.normalize(q, p=2, dim=1) @ F.normalize(k, p=2, dim=1).t() / cos_temperature
    if metric in ("ip", "l2"):
        return q @ k.t()
    raise ValueError(metric)


def contrastive(q, k, cfg):
    s = scores_of(q, k, cfg["metric"], cfg["cos_temperature"])
    group = k.shape[0] // q.shape[0]
    targets = torch.arange(q.shape[0]) * group
    return F.cross_entropy(s, targets)


def distill_kl(q, k, teacher, cfg):
    group = k.shape[0] // q.shape[0]
    s = scores_of(q, k, cfg["metric"], cfg["cos_temperature"])
    own = torch.stack([s[i, i * group:(i + 1) * group] for i in range(q.shape[0])])
    log_student = F.log_softmax(own / cfg["student_temperature"], dim=-1)
    teacher_probs = F.softmax(teacher / cfg["teacher_temperature"], dim=-1)
    return F.kl_div(log_student, teacher_probs, reduction="batchmean")


def stable_distill(q, k, teacher_probs, cfg):
    """teacher_probs = softmax(teacher_scores) without temperature, as the reference gathers it."""
    group = k.shape[0] // q.shape[0]
    s = scores_of(q, k, cfg["metric"], cfg["cos_temperature"])
    rows = torch.arange(q.shape[0])
    mask = torch.zeros_like(s)
    total = torch.zeros(())
    for i in range(group):
        target = rows * group + i
        per_row = F.cross_entropy(s + mask, target, reduction="none")
        total = total + (teacher_probs[:, i] * per_row).mean()
        mask = mask.clone()
        mask[rows, target] = torch.finfo(s.dtype).min
    return total


def retrieval(q, k, teacher, cfg, gather=lambda local, shards: local):
    """The combination rule; gather(local, shards) builds the global batch (identity for one process).

    With cfg["matryoshka"] = {"dims", "weights"}: sentence-transformers' MatryoshkaLoss around it, the sum over d of
    weight_d * (the same loss on the first d dimensions of every query and key, local and gathered).
    """
    if cfg.get("matryoshka"):
        inner = {key: value for key, value in cfg.items() if key != "matryoshka"}
        total = 0
        for dim, weight in zip(cfg["matryoshka"]["dims"], cfg["matryoshka"]["weights"]):
            def gather_prefix(local, which, dim=dim):
                # Every rank's whole embeddings (this rank's own, with their graph), then their first dim dimensions.
                if which == "teacher_probs":
                    return gather(local, which)
                return gather(q if which == "queries" else k, which)[:, :dim]
            total = total + weight * retrieval(q[:, :dim], k[:, :dim], teacher, inner, gather_prefix)
        return total
    distill = None
    if teacher is not None and cfg["distill_weight"] > 0:
        if cfg["stable_distill"]:
            probs = F.softmax(teacher, dim=-1)
            distill = stable_distill(gather(q, "queries"), gather(k, "keys"), gather(probs, "teacher_probs"), cfg)
        else:
            distill = distill_kl(q, k, teacher, cfg)
    contrast = contrastive(gather(q, "queries"), gather(k, "keys"), cfg) if cfg["contrastive_weight"] > 0 else None
    if distill is not None and contrast is not None:
        return cfg["contrastive_weight"] * contrast + cfg["distill_weight"] * distill
    if distill is not None:
        return distill
    if contrast is not None:
        return contrast
    raise ValueError("neither")


def config(metric="cos", cos_temperature=0.01, contrastive_weight=0.2, distill_weight=1.0,
           teacher_temperature=1.0, student_temperature=1.0, stable_distill=False, use_teacher=True, matryoshka=None):
    result = dict(metric=metric, cos_temperature=cos_temperature, contrastive_weight=contrastive_weight,
                  distill_weight=distill_weight, teacher_temperature=teacher_temperature,
                  student_temperature=student_temperature, stable_distill=stable_distill,
                  use_teacher=use_teacher)
    if matryoshka is not None:
        result["matryoshka"] = matryoshka
    return result


MATRYOSHKA = dict(dims=[8, 4, 2], weights=[1.0, 0.5, 2.0])


def compute(kind, q0, k0, t0, cfg):
    q = q0.clone().requires_grad_(True)
    k = k0.clone().requires_grad_(True)
    t = t0 if cfg["use_teacher"] else None
    if kind == "contrastive":
        loss = contrastive(q, k, cfg)
    elif kind == "distill_kl":
        loss = distill_kl(q, k, t, cfg)
    elif kind == "stable_distill":
        loss = stable_distill(q, k, F.softmax(t, dim=-1), cfg)
    else:
        loss = retrieval(q, k, t, cfg)
    loss.backward()
    return dict(loss=loss.item(), grad_queries=q.grad.tolist(), grad_keys=k.grad.tolist())


def compute_rank(rank, qs, ks, ts, cfg):
    """One simulated rank: other ranks' shards arrive detached (all_gather has no graph), the local
    tensor is put back in its own slot so the gradient flows through the local shard."""
    q = qs[rank].clone().requires_grad_(True)
    k = ks[rank].clone().requires_grad_(True)
    t = ts[rank] if cfg["use_teacher"] else None
    all_shards = dict(queries=qs, keys=ks, teacher_probs=[F.softmax(x, dim=-1) for x in ts])

    def gather(local, which):
        parts = [s.detach().clone() for s in all_shards[which]]
        parts[rank] = local
        return torch.cat(parts, dim=0)

    loss = retrieval(q, k, t, cfg, gather)
    loss.backward()
    return dict(loss=loss.item(), grad_queries=q.grad.tolist(), grad_keys=k.grad.tolist())


SINGLE_CASES = [
    ("contrastive_cos_t0.02", "contrastive", config(cos_temperature=0.02)),
    ("contrastive_cos_t0.01", "contrastive", config(cos_temperature=0.01)),
    ("contrastive_ip", "contrastive", config(metric="ip")),
    ("contrastive_l2", "contrastive", config(metric="l2")),
    ("distill_kl_cos_t0.02_teacher0.1", "distill_kl", config(cos_temperature=0.02, teacher_temperature=0.1)),
    ("distill_kl_cos_t0.01_teacher1.0", "distill_kl", config(cos_temperature=0.01, teacher_temperature=1.0)),
    ("distill_kl_ip_teacher0.1_student2.0", "distill_kl", config(metric="ip", teacher_temperature=0.1, student_temperature=2.0)),
    ("stable_distill_cos_t0.02", "stable_distill", config(cos_temperature=0.02, stable_distill=True)),
    ("stable_distill_cos_t0.01", "stable_distill", config(cos_temperature=0.01, stable_distill=True)),
    ("stable_distill_ip", "stable_distill", config(metric="ip", stable_distill=True)),
    ("retrieval_contrastive_and_kl", "retrieval", config(cos_temperature=0.02, contrastive_weight=0.2, distill_weight=1.0, teacher_temperature=0.1)),
    ("retrieval_contrastive_and_stable", "retrieval", config(cos_temperature=0.01, contrastive_weight=0.5, distill_weight=0.7, stable_distill=True)),
    ("retrieval_contrastive_only_weight_unused", "retrieval", config(cos_temperature=0.02, contrastive_weight=0.2, distill_weight=0.0)),
    ("retrieval_no_teacher_contrastive_unweighted", "retrieval", config(cos_temperature=0.02, contrastive_weight=0.2, distill_weight=1.0, use_teacher=False)),
    ("retrieval_distill_only_weight_unused", "retrieval", config(cos_temperature=0.02, contrastive_weight=0.0, distill_weight=0.3, teacher_temperature=0.1)),
    ("retrieval_ip_contrastive_and_kl", "retrieval", config(metric="ip", contrastive_weight=0.2, distill_weight=1.0)),
    ("retrieval_matryoshka_contrastive_and_kl", "retrieval", config(cos_temperature=0.02, teacher_temperature=0.1, matryoshka=MATRYOSHKA)),
    ("retrieval_matryoshka_ip_contrastive", "retrieval", config(metric="ip", distill_weight=0.0, matryoshka=dict(dims=[3, 6], weights=[1.0, 1.0]))),
]

CROSS_DEVICE_CASES = [
    ("gathered_contrastive", config(cos_temperature=0.02, contrastive_weight=1.0, distill_weight=0.0)),
    ("gathered_contrastive_and_stable", config(cos_temperature=0.01, contrastive_weight=0.2, distill_weight=1.0, stable_distill=True)),
    ("gathered_contrastive_and_local_kl", config(cos_temperature=0.02, contrastive_weight=0.2, distill_weight=1.0, teacher_temperature=0.1)),
    ("gathered_stable_only_ip", config(metric="ip", contrastive_weight=0.0, distill_weight=1.0, stable_distill=True)),
    ("gathered_matryoshka_contrastive_and_stable", config(cos_temperature=0.01, contrastive_weight=0.2, distill_weight=1.0, stable_distill=True,
                                                          matryoshka=MATRYOSHKA)),
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=DEFAULT_OUT)
    args = parser.parse_args()

    q_np, k_np, t_np = fixed_inputs(20240601)
    q, k, t = map(torch.from_numpy, (q_np, k_np, t_np))

    similarity = []
    for name, metric, temp in [("cos_t0.02", "cos", 0.02), ("cos_t0.01", "cos", 0.01), ("ip", "ip", 0.01), ("l2", "l2", 0.01)]:
        similarity.append(dict(name=name, metric=metric, cos_temperature=temp,
                               scores=scores_of(q, k, metric, temp).tolist()))

    single = []
    for name, kind, cfg in SINGLE_CASES:
        single.append(dict(name=name, kind=kind, config=cfg, **compute(kind, q, k, t, cfg)))

    ranks = [tuple(map(torch.from_numpy, fixed_inputs(777 + r))) for r in range(WORLD)]
    qs, ks, ts = ([r[j] for r in ranks] for j in range(3))
    cross = []
    for name, cfg in CROSS_DEVICE_CASES:
        cross.append(dict(name=name, config=cfg, ranks=[compute_rank(r, qs, ks, ts, cfg) for r in range(WORLD)]))

    doc = dict(
        generator="tests/reference/losses_reference.py",
        torch_version=torch.__version__,
        batch=BATCH, group=GROUP, dim=DIM,
        inputs=dict(queries=q.tolist(), keys=k.tolist(), teacher_scores=t.tolist()),
        similarity=similarity,
        single=single,
        cross_device=dict(world_size=WORLD,
                          ranks=[dict(queries=qs[r].tolist(), keys=ks[r].tolist(), teacher_scores=ts[r].tolist())
                                 for r in range(WORLD)],
                          cases=cross),
    )
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
