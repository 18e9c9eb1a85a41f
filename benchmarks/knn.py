"""Exact kNN backends against FAISS on the CPU, in one run.

    .venv/bin/python benchmarks/knn.py [--sizes 10000,50000] [--dim 512]

Two searches the tool makes, on random unit vectors (brute force does not care what the
data look like): the layout's self kNN graph (inner product, k = 91 = 3 x perplexity + the
self match) and the memorisation candidates (L2, 2,000 queries against the base, k = 9).
Each backend that this machine has (``faiss-cpu`` always, the torch path on the CPU, and
``torch-cuda`` / ``faiss-gpu`` where there is a GPU) builds its index and searches; times
are the median of --repeats after one warm-up, and are reported as ratios to faiss-cpu.
``same`` is the share of neighbour lists equal to faiss-cpu's as sets (float32 ties aside).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.nearest import ExactIndex, available_backend  # noqa: E402


def _backends() -> list[str]:
    found = ["faiss-cpu", "torch-cpu"]
    best = available_backend()
    return found + ([best] if best not in found else [])


def _search(backend: str, base: np.ndarray, query: np.ndarray, metric: str, k: int) -> np.ndarray:
    return ExactIndex(base, metric, backend=backend).search(query, k)[1]


def _time(backend, base, query, metric, k, repeats) -> tuple[float, np.ndarray]:
    _search(backend, base[:1000], query[:10], metric, k)  # warm-up: CUDA context, thread pools
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        idx = _search(backend, base, query, metric, k)
        times.append(time.perf_counter() - start)
    return statistics.median(times), idx


def _same(idx: np.ndarray, ref: np.ndarray) -> float:
    return float(np.mean([set(a) == set(b) for a, b in zip(idx, ref)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,50000")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    backends = _backends()
    print(f"cores: {len(os.sched_getaffinity(0))}; backends: {', '.join(backends)}")
    print("| search | n | " + " | ".join(backends) + " |")
    print("|---|---|" + "---|" * len(backends))
    for n in [int(s) for s in args.sizes.split(",")]:
        base = rng.standard_normal((n, args.dim)).astype(np.float32)
        base /= np.linalg.norm(base, axis=1, keepdims=True)
        searches = {"layout self kNN (ip, k=91)": (base, "ip", 91),
                    f"memorisation (l2, {min(n, 2000)} queries, k=9)": (base[rng.choice(n, min(n, 2000), replace=False)], "l2", 9)}
        for name, (query, metric, k) in searches.items():
            cells, ref_time, ref_idx = [], None, None
            for backend in backends:
                seconds, idx = _time(backend, base, query, metric, k, args.repeats)
                if ref_time is None:
                    ref_time, ref_idx = seconds, idx
                    cells.append(f"{seconds:.3f} s")
                else:
                    cells.append(f"{seconds:.3f} s ({seconds / ref_time:.2f}x, same {_same(idx, ref_idx):.1%})")
            print(f"| {name} | {n:,} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
