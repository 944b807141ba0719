"""sentence-transformers' mining margins (mine_hard_negatives' absolute_margin / relative_margin) in NumPy.

Usage:
  /usr/bin/python3 margin_mining_reference.py QUERIES.npy POOL.npy POSITIVES.npy REQUEST.json
      QUERIES.npy [rows, d], POOL.npy [pool, d], POSITIVES.npy [positives, d]: the embeddings (already normalised for
      cosine). REQUEST.json: {"range": [start, end], "absolute_margin": m or null, "relative_margin": r or null,
      "pool_texts": [...], "rows": [{"query": text, "positives": [texts], "positive_rows": [rows of POSITIVES.npy]}]}.
      Ranks the pool by inner product (ties: lower pool index first), takes positions start..end-1, leaves out the
      row's positives and its query (by text), and judges each candidate against the lowest positive score p:
      dropped by the absolute margin when c + m > p, else by the relative margin when c > p * (1 - r).
      Prints {"candidates": n, "absolute": n, "relative": n, "rows": [{"removed": [texts], "kept": [texts],
      "threshold": t}]} where t is the highest score a kept candidate may have.
"""
import json
import sys

try:
    import numpy as np
except ImportError:
    sys.exit("python3-numpy is needed for /usr/bin/python3")


def main(queries_path, pool_path, positives_path, request_path):
    queries = np.load(queries_path).astype(np.float64)
    pool = np.load(pool_path).astype(np.float64)
    positives = np.load(positives_path).astype(np.float64)
    with open(request_path, encoding="utf-8") as f:
        request = json.load(f)
    start, end = request["range"]
    absolute, relative = request["absolute_margin"], request["relative_margin"]
    texts = request["pool_texts"]
    totals = {"candidates": 0, "absolute": 0, "relative": 0}
    rows = []
    for r, row in enumerate(request["rows"]):
        scores = pool @ queries[r]
        order = np.lexsort((np.arange(len(scores)), -scores))
        excluded = set(row["positives"]) | {row["query"]}
        candidates = [i for i in order[start:end] if texts[i] not in excluded]
        p = min(float(positives[k] @ queries[r]) for k in row["positive_rows"])
        removed, kept = [], []
        for i in candidates:
            c = float(scores[i])
            if absolute is not None and c + absolute > p:
                totals["absolute"] += 1
                removed.append(texts[i])
            elif relative is not None and c > p * (1 - relative):
                totals["relative"] += 1
                removed.append(texts[i])
            else:
                kept.append(texts[i])
        totals["candidates"] += len(candidates)
        bounds = [b for b in (None if absolute is None else p - absolute, None if relative is None else p * (1 - relative)) if b is not None]
        rows.append({"removed": removed, "kept": kept, "threshold": min(bounds), "scores": {texts[i]: float(scores[i]) for i in order}})
    print(json.dumps(dict(totals, rows=rows)))


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    main(*sys.argv[1:])
