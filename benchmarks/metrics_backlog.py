"""The signals of a backlog: a finished run of N steps watched at once, its metrics and alerts
measured step by step after the ingest.

Builds a store of N steps of 16 vectors (``--dim``, L2-normalised; no reference set, so the
diversity metrics and every alert rule's history are what is measured) straight through the
store's writer, then runs the signals hook over it twice on copies: as it runs now (the
measured rows written together every few seconds, the history kept in memory) and as it ran
before (a row written and the whole table read back at every step: the baseline). Prints the
seconds of each and the CPU ms per step over the first and last tenth of the steps.

    .venv/bin/python benchmarks/metrics_backlog.py [--steps 300 1500] [--real 600 --dim 768 --only-now]

With ``--real`` the store holds a reference set, so every metric (precision/recall, FD, copies)
and every rule is measured, as for a run watched with ``--real``/``--holdout``.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine import signals  # noqa: E402
from stores.zarr_store import StoreWriter  # noqa: E402

ENCODER = {"identity": "bench:64", "dim": 64}


def build(path: Path, steps: int, dim: int, per_step: int = 16, real: int = 0) -> None:
    rng = np.random.default_rng(0)
    with StoreWriter(path, {**ENCODER, "dim": dim}, thumbnail_size=8) as store:
        for kind, n in (("real", real), ("holdout", real // 4)) if real else ():  # every metric and rule then
            vectors = rng.normal(size=(n, dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            with store.checkpoint(-1, f"{kind}:/bench/{kind}", f"{kind}{n}", kind=kind) as tx:
                tx.add(vectors, list(range(n)), [None] * n, np.zeros((n, 8, 8, 3), np.uint8),
                       [f"{i}.png" for i in range(n)])
        for k in range(steps):
            vectors = rng.normal(size=(per_step, dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            with store.checkpoint(100 * (k + 1), f"step_{k:06d}", f"h{k}") as tx:
                tx.add(vectors, list(range(per_step)), [None] * per_step, np.zeros((per_step, 8, 8, 3), np.uint8),
                       [f"{i}.png" for i in range(per_step)])


def measure(path: Path, dim: int, before: bool) -> tuple[float, list[float]]:
    """Seconds of the hook over the whole backlog, and the CPU seconds of each step."""
    per_step: list[float] = []
    real_measure = signals.Signals._measure

    def timed(self, *args):
        t = time.process_time()
        if before:  # the table read back for every step's alerts, the row written at once
            self._history = None
        real_measure(self, *args)
        if before:
            self._write_measured(args[0], at_once=True)
        per_step.append(time.process_time() - t)

    signals.Signals._measure = timed
    try:
        with StoreWriter(path, {**ENCODER, "dim": dim}, thumbnail_size=8) as store:
            start = time.perf_counter()
            signals.Signals(run_dir=path.parent / "no_run", encoder=None)(store, [])
            return time.perf_counter() - start, per_step
    finally:
        signals.Signals._measure = real_measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[300, 1500])
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--real", type=int, default=0,
                        help="reference vectors (and a quarter as many held out): the metrics measured against them")
    parser.add_argument("--only-now", action="store_true", help="skip the emulated code before (the baseline)")
    args = parser.parse_args()
    print("| steps | code | seconds | x before | CPU ms a step, first tenth | last tenth |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for steps in args.steps:
            built = Path(tmp) / f"built_{steps}.zarr"
            build(built, steps, args.dim, real=args.real)
            seconds = {}
            for name, before in (("now", False),) if args.only_now else (("before", True), ("now", False)):
                copy = Path(tmp) / f"{name}_{steps}.zarr"
                shutil.copytree(built, copy)
                seconds[name], per_step = measure(copy, args.dim, before)
                tenth = max(1, steps // 10)
                print(f"| {steps:,} | {name} | {seconds[name]:.1f} | {seconds[name] / seconds.get('before', seconds[name]):.2f} | "
                      f"{1e3 * np.mean(per_step[:tenth]):.1f} | {1e3 * np.mean(per_step[-tenth:]):.1f} |", flush=True)
                shutil.rmtree(copy)


if __name__ == "__main__":
    main()
