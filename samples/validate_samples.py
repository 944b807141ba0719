#!/usr/bin/env python3
"""Checks the sample dataset written by make_samples.py. Standard library only.

Exits non-zero and lists every problem if any check fails. Run: python3 samples/validate_samples.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
problems: list[str] = []


def fail(message: str) -> None:
    problems.append(message)


def read_jsonl(path: Path) -> list[dict]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
        if line == "":
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            fail(f"{path.relative_to(HERE)}:{number}: not valid JSON ({e.msg})")
            continue
        if not isinstance(row, dict):
            fail(f"{path.relative_to(HERE)}:{number}: not a JSON object")
            continue
        row["_where"] = f"{path.relative_to(HERE)}:{number}"
        rows.append(row)
    return rows


def is_text_list(value) -> bool:
    return isinstance(value, list) and all(isinstance(t, str) and t.strip() for t in value)


def check_train(path: Path, task: str, needs_teacher: bool) -> list[dict]:
    rows = read_jsonl(path)
    good = []
    for r in rows:
        w = r["_where"]
        if not isinstance(r.get("query"), str) or not r["query"].strip():
            fail(f"{w}: query missing or empty")
        if not is_text_list(r.get("pos")) or len(r["pos"]) < 1:
            fail(f"{w}: pos must be a non-empty list of texts")
            continue
        if not is_text_list(r.get("neg")) or len(r["neg"]) < 1:
            fail(f"{w}: neg must be a non-empty list of texts")
            continue
        if r.get("task") != task:
            fail(f"{w}: task is {r.get('task')!r}, expected {task!r}")
        if set(r["pos"]) & set(r["neg"]):
            fail(f"{w}: a positive text is also among the negatives")
        if len(set(r["neg"])) != len(r["neg"]):
            fail(f"{w}: repeated negative")
        scores = r.get("teacher_scores")
        if needs_teacher and scores is None:
            fail(f"{w}: teacher_scores missing")
        if scores is not None:
            if not isinstance(scores, list) or not all(isinstance(s, (int, float)) for s in scores):
                fail(f"{w}: teacher_scores must be a list of numbers")
            elif len(scores) != len(r["pos"]) + len(r["neg"]):
                fail(f"{w}: teacher_scores has {len(scores)} values for {len(r['pos'])} pos + {len(r['neg'])} neg")
            elif min(scores[:len(r["pos"])]) <= max(scores[len(r["pos"]):]):
                fail(f"{w}: a negative scores at least as high as a positive")
        if isinstance(r.get("query"), str) and (scores is not None or not needs_teacher):
            good.append(r)
    # Later checks and the summary only look at rows whose shape is right.
    return good


def main() -> int:
    qa = check_train(HERE / "train" / "qa" / "train.jsonl", "qa", needs_teacher=False)
    icl = check_train(HERE / "train" / "icl" / "train.jsonl", "icl", needs_teacher=True)
    corpus = read_jsonl(HERE / "eval" / "corpus.jsonl")
    queries = read_jsonl(HERE / "eval" / "queries.jsonl")

    for r in corpus:
        for key in ("title", "text"):
            if not isinstance(r.get(key), str) or not r[key].strip():
                fail(f"{r['_where']}: {key} missing or empty")
    texts = [r.get("text", "") for r in corpus]
    if len(set(texts)) != len(texts):
        fail("eval/corpus.jsonl: repeated passage text")
    lengths = [len(t) for t in texts]
    for r, n in zip(corpus, lengths):
        if not 30 <= n <= 120:
            fail(f"{r['_where']}: passage has {n} characters, outside 30..120")

    ids = set()
    valid_queries = []
    for r in queries:
        w = r["_where"]
        if not isinstance(r.get("query"), str) or not r["query"].strip():
            fail(f"{w}: query missing or empty")
        pos = r.get("pos_index")
        if not isinstance(pos, list) or not pos or not all(isinstance(i, int) and not isinstance(i, bool) for i in pos):
            fail(f"{w}: pos_index must be a non-empty list of integers")
        elif not all(0 <= i < len(corpus) for i in pos):
            fail(f"{w}: pos_index {pos} out of range 0..{len(corpus) - 1}")
        else:
            valid_queries.append(r)
        qid = r.get("query_id")
        if not isinstance(qid, str) or qid in ids:
            fail(f"{w}: query_id missing or repeated")
        ids.add(qid)

    # Held-out means held out: no eval question appears anywhere in the training files,
    # neither as a query nor inside any query, positive or negative text.
    train_queries = {r["query"] for r in qa + icl}
    train_texts = [t for r in qa + icl for t in [r["query"], *r["pos"], *r["neg"]]]
    blob = "\n".join(train_texts)
    for r in queries:
        if r.get("query") in train_queries or r.get("query", "\u0000") in blob:
            fail(f"{r['_where']}: eval query {r.get('query')!r} appears in the training data")
    if len(train_queries) != len(qa) + len(icl):
        fail("training queries are not all distinct")

    corpus_texts = set(texts)
    for r in qa:
        for t in r["pos"] + r["neg"]:
            if t not in corpus_texts:
                fail(f"{r['_where']}: qa passage not in the corpus: {t[:20]}…")
    qa_seen = {t for r in qa for t in r["pos"] + r["neg"]}
    qa_pos = {t for r in qa for t in r["pos"]}
    unseen = sum(1 for r in valid_queries if all(texts[i] not in qa_seen for i in r["pos_index"]))
    new_question = sum(1 for r in valid_queries if all(texts[i] in qa_pos for i in r["pos_index"]))

    # The general set: question-to-question retrieval about passages absent from training, so neither side of a
    # pair appears in the training files.
    general_corpus = read_jsonl(HERE / "general" / "corpus.jsonl")
    general_queries = read_jsonl(HERE / "general" / "queries.jsonl")
    general_texts = [r.get("text", "") for r in general_corpus]
    if any(not isinstance(t, str) or not t.strip() for t in general_texts) or len(set(general_texts)) != len(general_texts):
        fail("general/corpus.jsonl: every row needs a distinct, non-empty text")
    general_ids = set()
    for r in general_queries:
        w = r["_where"]
        pos = r.get("pos_index")
        if not isinstance(r.get("query"), str) or not isinstance(pos, list) or len(pos) != 1 or not 0 <= pos[0] < len(general_corpus):
            fail(f"{w}: needs a query and one pos_index in range 0..{len(general_corpus) - 1}")
            continue
        if r["query"] in blob or general_texts[pos[0]] in blob:
            fail(f"{w}: the question or its paraphrase appears in the training data")
        if r.get("query_id") in general_ids:
            fail(f"{w}: query_id repeated")
        general_ids.add(r.get("query_id"))

    def n_list(rows, key):
        values = [len(r[key]) for r in rows]
        return f"{min(values)}–{max(values)} (mean {sum(values) / len(values):.1f})"

    print(f"train/qa/train.jsonl   {len(qa)} rows; pos per row {n_list(qa, 'pos')}; neg per row {n_list(qa, 'neg')}")
    print(f"train/icl/train.jsonl  {len(icl)} rows; pos per row {n_list(icl, 'pos')}; neg per row {n_list(icl, 'neg')}")
    pos_scores = [s for r in icl for s in r["teacher_scores"][:len(r["pos"])]]
    neg_scores = [s for r in icl for s in r["teacher_scores"][len(r["pos"]):]]
    print(f"  icl teacher_scores: positives {min(pos_scores):.3f}–{max(pos_scores):.3f}, "
          f"negatives {min(neg_scores):.3f}–{max(neg_scores):.3f}")
    print(f"eval/corpus.jsonl      {len(corpus)} passages; {min(lengths)}–{max(lengths)} characters "
          f"(mean {sum(lengths) / len(lengths):.1f}); {len(corpus_texts - qa_seen)} never appear in training")
    print(f"eval/queries.jsonl     {len(queries)} queries: {new_question} new questions about passages trained on, "
          f"{unseen} about passages never seen in training")
    print(f"general/queries.jsonl  {len(general_queries)} questions about passages never in training; "
          f"general/corpus.jsonl {len(general_corpus)} questions")
    sizes = {p.relative_to(HERE).as_posix(): p.stat().st_size for p in sorted(HERE.glob("*/**/*.jsonl"))}
    print("sizes: " + ", ".join(f"{k} {v / 1024:.0f} KiB" for k, v in sizes.items())
          + f"; total {sum(sizes.values()) / 1024:.0f} KiB")

    if problems:
        print(f"\n{len(problems)} problem(s):", file=sys.stderr)
        for p in problems:
            print("  " + p, file=sys.stderr)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
