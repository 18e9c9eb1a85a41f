"""The alert rules' cost per step as a run grows: ``evaluate_alerts`` at the newest step of a
synthetic history of T steps, as the signals hook calls it (each step put, then judged),
against the code of another commit in the same run.

    .venv/bin/python benchmarks/alert_rules.py [--lengths 100 500 1000 2000 5000] [--before REV]

The history: every metric the collapse, fd_rising and memorisation rules read (random walks
with jumps, NaNs, sizes of 16-200 samples), with a real reference (``--no-real``: without,
where collapse's baseline is what the run built or held). Before: ``--before`` REV's
engine/alerts.py (loaded from git, so REV is a commit before it became the package
engine/alerts/) as the hook called it: its History where it has one, else the list of the
steps up to the one judged. Now: :class:`engine.alerts.History`. Milliseconds a step, the
median of the last ``--repeat`` steps of each length; the alerts of both are checked equal.
"""
from __future__ import annotations

import argparse
import importlib.util
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.alerts import History, evaluate_alerts  # noqa: E402


def synthetic_history(steps: int, seed: int = 0, real: bool = True) -> list[dict]:
    """``steps`` metric records of a run that learns, then wanders (collapses, FD jumps)."""
    rng = np.random.default_rng(seed)
    records, vendi, fd = [], 2.0, 1.0
    for t in range(steps):
        vendi = max(0.05, vendi * (1 + 0.3 * rng.normal()) + (0.3 if t < 10 else 0))
        fd = max(0.01, fd * (1 + 0.25 * rng.normal()) * (3 if rng.random() < 0.05 else 1))
        r = {"step": 100 * t, "n_generated": float(rng.choice([16, 32, 64, 64, 64, 200])), "vendi": vendi,
             "pairwise_cosine": float(rng.uniform(0.1, 0.5)), "fd": fd,
             "precision": float(min(1, max(0, t / 10 - 0.2 + 0.2 * rng.normal()))), "recall": float(rng.uniform(0, 1)),
             "duplicate_frac": float(rng.uniform(0, 0.6)), "duplicate_expected": 0.01, "n_reference": 100.0,
             "region_tv": float(rng.uniform(0, 0.6)), "region_tv_chance": 0.2, "regions": 8.0,
             "region_empty_share": 0.0, "copy_log_ratio": float(rng.normal(0, 0.2)),
             "copy_log_ratio_p": float(rng.uniform(0, 1)), "copy_neighbourhoods": 40.0, "copy_null_share": 0.5}
        if real:
            r.update(real_vendi=3.0, real_pairwise_cosine=0.4, real_pairwise_cosine_sd=0.01)
        for key in list(r):
            if key != "step" and rng.random() < 0.04:
                r[key] = math.nan
        records.append(r)
    return records


def load_alerts(rev: str):
    """``engine/alerts.py`` of commit ``rev``, as a module."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:engine/alerts.py"], capture_output=True,
                            text=True, check=True).stdout
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("alerts_before", loader=None))
    sys.modules["alerts_before"] = module
    exec(compile(source, "alerts_before", "exec"), module.__dict__)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[100, 500, 1000, 2000, 5000])
    parser.add_argument("--before", default="a248fd4", help="the commit whose rules are 'before'")
    parser.add_argument("--repeat", type=int, default=20, help="steps timed at each length")
    parser.add_argument("--no-real", action="store_true", help="no real reference in the history")
    args = parser.parse_args()
    before = load_alerts(args.before)
    kept = before.History() if hasattr(before, "History") else None  # REV's hook kept one too
    records = synthetic_history(max(args.lengths) + args.repeat, real=not args.no_real)
    history, listed, done = History(), {}, 0

    def judged_before(r: dict) -> list:
        if kept is not None:
            kept.put(r)
            return before.evaluate_alerts(kept.upto(r["step"]))
        listed[r["step"]] = r
        return before.evaluate_alerts([rec for s, rec in listed.items() if s <= r["step"]])

    print("| steps | before ms/step | now ms/step | now / before |")
    print("|---|---|---|---|")
    for length in args.lengths:
        for r in records[done:length - args.repeat]:  # the steps before, put untimed
            history.put(r)
            listed[r["step"]] = r
            if kept is not None:
                kept.put(r)
        times_before, times_now = [], []
        for r in records[length - args.repeat:length]:
            t0 = time.perf_counter()
            old = judged_before(r)
            t1 = time.perf_counter()
            history.put(r)
            new = evaluate_alerts(history.upto(r["step"]))
            t2 = time.perf_counter()
            assert [a.message for a in old] == [a.message for a in new], (r["step"], old, new)
            times_before.append(1e3 * (t1 - t0))
            times_now.append(1e3 * (t2 - t1))
        done = length
        b, n = statistics.median(times_before), statistics.median(times_now)
        print(f"| {length:,} | {b:.2f} | {n:.2f} | {n / b:.2f} |", flush=True)


if __name__ == "__main__":
    main()
