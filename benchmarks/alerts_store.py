"""What the alerts stored cost each checkpoint commit, and each new step's alerts.

    .venv/bin/python benchmarks/alerts_store.py [--alerts 0 1000 4000] [--repeats 15]

A long run that alerts (an alert holds at every later step: 2,000 steps of two rules hold
4,000) kept every alert in the root attributes, whose ``zarr.json`` is rewritten at every
commit (it holds the commit point), so each checkpoint paid for the whole alert list.
Schema version 3 keeps them in the ``alerts/`` arrays. Both are measured here, in the same
run, on the same store shape: a store of ``N`` alerts, then (a) the commit of a checkpoint
of 8 rows (``StoreWriter.checkpoint``) and (b) storing the next step's 2 alerts
(``StoreWriter.set_alerts`` with the list one step longer). "root attrs" writes the list into
the root attributes as schema version 2 did (the key a version 2 store holds); "alerts/" is
this evowatch. The two stores are open side by side and timed call by call in turn, so that
a busy machine's spells weigh on both alike. Medians of ``--repeats``, wall milliseconds, and
their ratio (root attrs over alerts/: above 1, the arrays are cheaper).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.timing import median_seconds  # noqa: E402
from stores.zarr_store import StoreWriter  # noqa: E402

ENCODER = {"identity": "bench:64", "dim": 64}
RULES = ("collapse", "memorisation")


def alert_list(n: int, first_step: int = 500) -> list[dict]:
    """``n`` alerts of two rules, one of each a step, as a long run holds them."""
    return [{"step": first_step + 500 * (k // 2), "rule": RULES[k % 2], "value": 0.25 + k * 1e-4,
             "message": f"{RULES[k % 2]}: diversity fell 60% between step {500 * (k // 2)} and "
                        f"{first_step + 500 * (k // 2)} (Vendi 3.1 -> 1.2)"} for k in range(n)]


class RootAttrsAlerts:
    """Alerts as schema version 2 kept them: one root attribute, rewritten with the list."""

    def __init__(self, store: StoreWriter) -> None:
        self.store = store

    def set(self, alerts: list[dict]) -> None:
        self.store._update_root({"alerts": list(alerts)})


class ArrayAlerts:
    def __init__(self, store: StoreWriter) -> None:
        self.store = store

    def set(self, alerts: list[dict]) -> None:
        self.store.set_alerts(alerts)


class Run:
    """A store holding ``n`` alerts kept one way, and the two things timed on it."""

    def __init__(self, path: Path, kind: type, n: int) -> None:
        self.rng = np.random.default_rng(0)
        self.store = StoreWriter(path, ENCODER, thumbnail_size=8)
        self.way = kind(self.store)
        self.alerts = alert_list(n)
        self.way.set(self.alerts)
        self.k = 0

    def commit(self) -> None:
        """One checkpoint of 8 rows, committed."""
        self.k += 1
        with self.store.checkpoint(500 * self.k, f"step_{self.k:07d}", f"h{self.k}") as tx:
            v = self.rng.normal(size=(8, 64)).astype(np.float32)
            tx.add(v / np.linalg.norm(v, axis=1, keepdims=True), list(range(8)), [None] * 8,
                   np.zeros((8, 8, 8, 3), np.uint8), [f"step_{self.k:07d}/{i}.png" for i in range(8)])

    def next_step(self) -> None:
        """The next step's 2 alerts, stored with the list."""
        self.alerts.extend(alert_list(2, self.alerts[-1]["step"] + 500 if self.alerts else 500))
        self.way.set(self.alerts)


def measure(folder: Path, n: int, repeats: int) -> dict[tuple[str, str], float]:
    """Median seconds of each (kind, "commit" | "next_step"), for stores holding ``n`` alerts."""
    runs = {kind.__name__: Run(folder / f"{kind.__name__}-{n}.zarr", kind, n) for kind in (RootAttrsAlerts, ArrayAlerts)}
    try:
        times: dict[tuple[str, str], list[float]] = {}
        for what in ("commit", "next_step"):
            for run in runs.values():
                getattr(run, what)()  # warm
            for _ in range(repeats):
                for name, run in runs.items():
                    times.setdefault((name, what), []).append(median_seconds(getattr(run, what), 1))
        return {key: statistics.median(values) for key, values in times.items()}
    finally:
        for run in runs.values():
            run.store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, nargs="+", default=[0, 1000, 4000])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    print(f"{'alerts':>7} | {'commit: root attrs':>18} {'alerts/':>8} {'ratio':>6} | "
          f"{'next alerts: root attrs':>23} {'alerts/':>8} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.alerts:
            t = measure(Path(tmp), n, args.repeats)
            old_commit, old_next = t["RootAttrsAlerts", "commit"], t["RootAttrsAlerts", "next_step"]
            new_commit, new_next = t["ArrayAlerts", "commit"], t["ArrayAlerts", "next_step"]
            print(f"{n:>7,} | {1e3 * old_commit:>15.1f} ms {1e3 * new_commit:>5.1f} ms {old_commit / new_commit:>6.2f} | "
                  f"{1e3 * old_next:>20.1f} ms {1e3 * new_next:>5.1f} ms {old_next / new_next:>6.2f}")


if __name__ == "__main__":
    main()
