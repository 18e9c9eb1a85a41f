"""The float64 re-rank of ``engine.metrics.neighbours.knn``'s large-search path.

    python benchmarks/knn_rerank.py [--base 50000] [--queries 2000] [--dim 512] [--repeats 5]

A search too large for brute force (the watcher's memorisation search of a step against a
large reference) takes ``k + 8`` float32 candidates per query from an exact index, then
re-ranks them with float64 differences. Measured in one run, median of ``--repeats``:

- ``whole_base_s``: the baseline, converting the whole base to float64 for the re-rank
  (as knn did until 2026-12-07);
- ``knn_s``: ``knn`` as it is, converting the candidates only;

and their ratio. Both search the same prebuilt index; the results are checked equal.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from engine.metrics.neighbours import _REFINE, knn  # noqa: E402
from engine.nearest import ExactIndex  # noqa: E402


def whole_base_knn1(query: np.ndarray, base: np.ndarray, index: ExactIndex) -> tuple[np.ndarray, np.ndarray]:
    """The nearest point the way knn re-ranked before: the whole base in float64."""
    base64 = base.astype(np.float64)
    _, idx = index.search(query, 1 + _REFINE)
    diff = base64[idx] - query.astype(np.float64)[:, None, :]
    d = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
    order = np.argsort(d, axis=1, kind="stable")[:, :1]
    return np.take_along_axis(d, order, axis=1), np.take_along_axis(idx, order, axis=1)


def _median_s(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=int, default=50_000)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    base = rng.normal(size=(args.base, args.dim)).astype(np.float32)
    query = rng.normal(size=(args.queries, args.dim)).astype(np.float32)
    index = ExactIndex(base, "l2")
    old, new = whole_base_knn1(query, base, index), knn(query, base, 1, index=index)
    assert np.array_equal(old[0], new[0]) and np.array_equal(old[1], new[1])
    whole = _median_s(lambda: whole_base_knn1(query, base, index), args.repeats)
    now = _median_s(lambda: knn(query, base, 1, index=index), args.repeats)
    print(json.dumps({"whole_base_s": round(whole, 3), "knn_s": round(now, 3), "ratio": round(now / whole, 2),
                      "backend": index.backend}))


if __name__ == "__main__":
    main()
