#!/usr/bin/env python3
"""Builds the sample dataset that `llm-embedder train` uses when run without flags.

Reads the hand-written texts in source/ and writes
  train/qa/train.jsonl   question -> encyclopedia passage (task "qa")
  train/icl/train.jsonl  example -> useful solved examples (task "icl", with teacher_scores)
  eval/corpus.jsonl      every passage as {"title", "text"}; row number = pos_index
  eval/queries.jsonl     held-out questions {"query", "pos_index", "query_id", "task"}
  general/corpus.jsonl   a second, general set: every passage's second question as {"title": "", "text"}
  general/queries.jsonl  the first question of each passage absent from training; its positive is the
                         same passage's second question (question-to-question retrieval, not trained)

Standard library only and deterministic: the same source files always give the same
bytes. Run it from anywhere: python3 samples/make_samples.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "source"
SEED = 20240607

# Per category: passages kept out of training entirely (only in the corpus, asked about in eval),
# seen passages whose second question goes to eval, and seen passages whose second question is a
# second training row. Every other seen passage contributes its first question only.
HELD_OUT_PER_CATEGORY = 2
EVAL_SECOND_QUESTION_PER_CATEGORY = 2
TRAIN_SECOND_QUESTION_PER_CATEGORY = 4

QA_HARD_NEGATIVES = 3          # same category: shares the topic, not the answer
QA_NEGATIVE_COUNTS = (7, 7, 8, 9)
ICL_POSITIVE_COUNTS = (2, 2, 3)
ICL_RELATED_NEGATIVES = 2      # kinds that look alike (same format or both classification)
ICL_NEGATIVE_COUNTS = (7, 8, 9)


def read_passages() -> list[dict]:
    passages: list[dict] = []
    for path in sorted(SOURCE.glob("passages_*.txt")):
        category = None
        for line_number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            line = raw.strip()
            if not line:
                continue
            if line.startswith("## "):
                category = line[3:].strip()
                continue
            if line.startswith("#"):
                continue
            fields = [f.strip() for f in line.split("|")]
            if category is None or len(fields) < 3 or not all(fields):
                raise SystemExit(f"{path.name}:{line_number}: expected 标题|正文|问题1|问题2 under a ## category")
            passages.append({
                "id": f"p{len(passages) + 1:04d}",
                "category": category,
                "title": fields[0],
                "text": fields[1],
                "questions": fields[2:],
            })
    return passages


def read_icl_examples() -> tuple[dict, list[dict]]:
    kinds: dict[str, dict] = {}
    examples: list[dict] = []
    path = SOURCE / "icl_examples.txt"
    kind = None
    for line_number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("## "):
            name, template, related = [f.strip() for f in line[3:].split("|")]
            kind = name
            kinds[name] = {"template": template, "related": [r for r in related.split(",") if r]}
            continue
        if line.startswith("#"):
            continue
        fields = [f.strip() for f in line.split("|")]
        if kind is None or len(fields) != 2 or not all(fields):
            raise SystemExit(f"{path.name}:{line_number}: expected 输入|答案 under a ## kind")
        template = kinds[kind]["template"]
        examples.append({
            "kind": kind,
            "label": fields[1],
            "solved": template.format(x=fields[0], y=fields[1]),
            "unsolved": template.format(x=fields[0], y="").rstrip(),
        })
    for name, info in kinds.items():
        labels = [e["label"] for e in examples if e["kind"] == name]
        # A handful of answers shared by many inputs: a classification task (sentiment, topic).
        info["classification"] = len(set(labels)) <= 6
        for other in info["related"]:
            if other not in kinds:
                raise SystemExit(f"{path.name}: kind {name} names unknown related kind {other}")
    return kinds, examples


def split_passages(passages: list[dict], rng: random.Random) -> dict[str, str]:
    """Role of each passage id: held_out | eval_q2 | train_q2 | train_q1."""
    roles: dict[str, str] = {}
    categories = sorted({p["category"] for p in passages}, key=lambda c: next(
        i for i, p in enumerate(passages) if p["category"] == c))
    for category in categories:
        ids = [p["id"] for p in passages if p["category"] == category]
        rng.shuffle(ids)
        cut1 = HELD_OUT_PER_CATEGORY
        cut2 = cut1 + EVAL_SECOND_QUESTION_PER_CATEGORY
        cut3 = cut2 + TRAIN_SECOND_QUESTION_PER_CATEGORY
        for i, pid in enumerate(ids):
            roles[pid] = ("held_out" if i < cut1 else "eval_q2" if i < cut2
                          else "train_q2" if i < cut3 else "train_q1")
    return roles


def build_qa(passages, roles, rng):
    by_id = {p["id"]: p for p in passages}
    seen = [p for p in passages if roles[p["id"]] != "held_out"]
    train_rows, eval_rows = [], []
    for p in passages:
        role = roles[p["id"]]
        if role == "held_out":
            eval_rows.append((rng.choice(p["questions"][:2]), p["id"]))
            continue
        questions = [p["questions"][0]]
        if role == "train_q2":
            questions.append(p["questions"][1])
        elif role == "eval_q2":
            eval_rows.append((p["questions"][1], p["id"]))
        for question in questions:
            same_topic = [q for q in seen if q["category"] == p["category"] and q["id"] != p["id"]]
            other_topic = [q for q in seen if q["category"] != p["category"]]
            n_neg = rng.choice(QA_NEGATIVE_COUNTS)
            hard = rng.sample(same_topic, min(QA_HARD_NEGATIVES, len(same_topic)))
            easy = rng.sample(other_topic, n_neg - len(hard))
            negatives = hard + easy
            rng.shuffle(negatives)
            train_rows.append({
                "query": question,
                "pos": [p["text"]],
                "neg": [n["text"] for n in negatives],
                "task": "qa",
            })
    rng.shuffle(train_rows)

    corpus_index = {p["id"]: i for i, p in enumerate(passages)}
    rng.shuffle(eval_rows)
    queries = [{"query": q, "pos_index": [corpus_index[pid]], "query_id": f"q{i + 1}", "task": "qa"}
               for i, (q, pid) in enumerate(eval_rows)]
    corpus = [{"title": p["title"], "text": p["text"]} for p in passages]
    assert all(by_id[pid] for _, pid in eval_rows)
    return train_rows, queries, corpus


def score(rng: random.Random, low: float, high: float) -> float:
    return round(rng.uniform(low, high), 3)


def build_icl(kinds, examples, rng):
    rows = []
    for i, ex in enumerate(examples):
        same_kind = [e for j, e in enumerate(examples) if e["kind"] == ex["kind"] and j != i]
        related = [e for e in examples if e["kind"] in kinds[ex["kind"]]["related"]]
        unrelated = [e for e in examples
                     if e["kind"] != ex["kind"] and e["kind"] not in kinds[ex["kind"]]["related"]]

        # A demonstration with the same answer as the query is the most useful one for a
        # classification-like kind (the teacher LM then sees the right label format and value).
        same_label = [e for e in same_kind if e["label"] == ex["label"]]
        other_label = [e for e in same_kind if e["label"] != ex["label"]]
        n_pos = rng.choice(ICL_POSITIVE_COUNTS)
        scored_pos = []
        if kinds[ex["kind"]]["classification"] and same_label and other_label:
            picked = rng.sample(same_label, min(2, len(same_label), n_pos))
            scored_pos += [(e, score(rng, 0.82, 0.95)) for e in picked]
            scored_pos += [(e, score(rng, 0.60, 0.78)) for e in rng.sample(other_label, n_pos - len(picked))]
        else:
            scored_pos += [(e, score(rng, 0.62, 0.92)) for e in rng.sample(same_kind, n_pos)]
        scored_pos.sort(key=lambda t: -t[1])

        n_neg = rng.choice(ICL_NEGATIVE_COUNTS)
        close = rng.sample(related, min(ICL_RELATED_NEGATIVES, len(related)))
        far = rng.sample(unrelated, n_neg - len(close))
        scored_neg = [(e, score(rng, 0.30, 0.50)) for e in close] + [(e, score(rng, 0.02, 0.25)) for e in far]
        rng.shuffle(scored_neg)

        rows.append({
            "query": ex["unsolved"],
            "pos": [e["solved"] for e, _ in scored_pos],
            "neg": [e["solved"] for e, _ in scored_neg],
            "teacher_scores": [s for _, s in scored_pos] + [s for _, s in scored_neg],
            "task": "icl",
        })
    rng.shuffle(rows)
    return rows


def build_general(passages, roles):
    """Questions that ask the same thing: a task the sample data never trains (queries find passages there).

    The queries are the first questions of the passages held out of training, so neither side of a pair was
    seen in training; the corpus holds every passage's second question. No randomness: the order is the passages'.
    """
    corpus = [{"title": "", "text": p["questions"][1]} for p in passages]
    held_out = [(i, p) for i, p in enumerate(passages) if roles[p["id"]] == "held_out"]
    queries = [{"query": p["questions"][0], "pos_index": [i], "query_id": f"g{n + 1}", "task": "qa"}
               for n, (i, p) in enumerate(held_out)]
    return queries, corpus


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    path.write_text(text, encoding="utf-8", newline="\n")


def main() -> None:
    rng = random.Random(SEED)
    passages = read_passages()
    roles = split_passages(passages, rng)
    qa_train, queries, corpus = build_qa(passages, roles, rng)
    kinds, examples = read_icl_examples()
    icl_train = build_icl(kinds, examples, rng)

    write_jsonl(HERE / "train" / "qa" / "train.jsonl", qa_train)
    write_jsonl(HERE / "train" / "icl" / "train.jsonl", icl_train)
    write_jsonl(HERE / "eval" / "corpus.jsonl", corpus)
    write_jsonl(HERE / "eval" / "queries.jsonl", queries)
    general_queries, general_corpus = build_general(passages, roles)
    write_jsonl(HERE / "general" / "corpus.jsonl", general_corpus)
    write_jsonl(HERE / "general" / "queries.jsonl", general_queries)

    held_out = sum(1 for r in roles.values() if r == "held_out")
    print(f"passages: {len(passages)} in {len({p['category'] for p in passages})} categories "
          f"({held_out} only in the corpus)")
    print(f"train/qa/train.jsonl: {len(qa_train)} rows")
    print(f"train/icl/train.jsonl: {len(icl_train)} rows from {len(examples)} examples of {len(kinds)} kinds")
    print(f"eval/queries.jsonl: {len(queries)} queries; eval/corpus.jsonl: {len(corpus)} passages")
    print(f"general/queries.jsonl: {len(general_queries)} queries; general/corpus.jsonl: {len(general_corpus)} questions")


if __name__ == "__main__":
    main()
