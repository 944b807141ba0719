"""Regenerates flagembedding_metrics_reference.json: FlagEmbedding's own RetrievalMetric (mrr, recall, ndcg) on
random rankings, for RetrievalMetricsCompareToFlagEmbeddingTests.

usage: /usr/bin/python3 flagembedding_metrics_reference.py PATH/TO/FlagEmbedding > flagembedding_metrics_reference.json

Needs numpy only. The reference module is loaded from the given checkout, not copied: its unrelated imports
(tqdm, the NQ evaluator, file utilities) are replaced by empty stand-ins. The cases stay inside the rules both
implementations share: every query has a positive and no prediction repeats.
"""
import json
import os
import random
import sys
import types


def load_reference(flagembedding_root):
    path = os.path.join(flagembedding_root, "research", "llm_embedder", "src", "retrieval", "metrics.py")
    source = open(path, encoding="utf-8").read()
    source = source.replace("from .evalnq import", "from _stub_evalnq import").replace("from ..utils.util import", "from _stub_util import")
    sys.modules["tqdm"] = types.SimpleNamespace(tqdm=lambda iterable, **kwargs: iterable)
    sys.modules["_stub_evalnq"] = types.SimpleNamespace(evaluate_nq=None)
    sys.modules["_stub_util"] = types.SimpleNamespace(makedirs=None, split_file_dir_name_ext=None)
    module = types.ModuleType("flagembedding_metrics")
    exec(compile(source, path, "exec"), module.__dict__)
    return module.RetrievalMetric


def main():
    metric = load_reference(sys.argv[1])
    rng = random.Random(20240611)
    cases = []
    for _ in range(120):
        ranked = rng.sample(range(150), rng.randint(3, 40))        # often fewer predictions than the cutoff 100
        relevant = rng.sample(range(150), rng.randint(1, 6))
        for _ in range(rng.randint(0, 3)):                         # plant some hits
            relevant[rng.randrange(len(relevant))] = ranked[rng.randrange(len(ranked))]
        cases.append({"relevant": list(dict.fromkeys(relevant)), "ranked": ranked})
    labels = {i: case["relevant"] for i, case in enumerate(cases)}
    query_ids, preds = list(range(len(cases))), [case["ranked"] for case in cases]
    cutoffs = [1, 3, 5, 10, 100]
    expected = {}
    for name in ["mrr", "recall", "ndcg"]:
        values = getattr(metric, name)(cutoffs=cutoffs)(query_ids, preds, labels=labels)
        expected.update({key: float(value) for key, value in values.items()})
    json.dump({"cutoffs": cutoffs, "expected": expected, "cases": cases}, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
