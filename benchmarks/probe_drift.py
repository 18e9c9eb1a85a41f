"""The `probe_drift` rule's bar against the real reference's size: false alerts on healthy runs
and drifts caught, this bar (z = 4, the shares' gap pooled with `n_reference`) against the one
before (z = 3, the reference's share taken as exact), in the same run on the same draws.

A probe's share is the fraction of samples on its positive side. Healthy: the generated and
the reference shares are both drawn from one true share p (binomial, n generated, N real);
a drift moves the generated draw's share by +0.3 (clipped to [0, 1]). Per (N, n): --runs
runs of --steps steps each; the `probe_drift` rule alone is evaluated at every step, as the
watcher does (engine.alerts), past the warm-up.

    .venv/bin/python benchmarks/probe_drift.py [--refs 10 25 50 200 1000 10000] [--sizes 16 64 256]
        [--runs 200] [--steps 20] [--json FILE]

Prints one row per (N, n): the share of healthy runs with any alert, of drifted steps caught
and of drifted runs caught within their first 3 steps past the warm-up, before and now.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import alerts  # noqa: E402

RULES = alerts.AlertRules(enabled=("probe_drift",))
#: (name, rules, whether the records carry n_reference): the bar before round AQ, and now
BARS = [("before", alerts.AlertRules(enabled=("probe_drift",), probe_noise_z=3.0), False), ("now", RULES, True)]
DRIFT = 0.3


def history(rng: np.random.Generator, n: int, n_ref: int, steps: int, drift: float, pooled: bool) -> list[dict]:
    """A run's per-step records: a probe whose true share is drawn once, its reference share
    drawn once from N real images (the reference is fixed for a run)."""
    truth = rng.uniform(0.1, 0.9)
    ref = rng.binomial(n_ref, truth) / n_ref
    shares = rng.binomial(n, np.clip(truth + drift, 0, 1), size=steps) / n
    extra = {"n_reference": float(n_ref)} if pooled else {}
    return [{"step": s, "n_generated": float(n), "probe_share:p": float(x), "probe_ref_share:p": ref, **extra}
            for s, x in enumerate(shares)]


def alerting_steps(records: list[dict], rules: alerts.AlertRules) -> list[bool]:
    return [bool(alerts.evaluate_alerts(records[: i + 1], rules)) for i in range(len(records))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--refs", type=int, nargs="+", default=[10, 25, 50, 200, 1000, 10000])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rows = []
    print("N real | n a step | healthy runs alerting: before / now | drifted steps caught: before / now | "
          "drifted runs caught within 3 steps: before / now")
    for n_ref in args.refs:
        for n in args.sizes:
            row = {"n_real": n_ref, "n": n}
            for key, rules, pooled in BARS:
                rng = np.random.default_rng(0)  # the same draws for both bars
                false = sum(any(alerting_steps(history(rng, n, n_ref, args.steps, 0.0, pooled), rules))
                            for _ in range(args.runs))
                drifted = [alerting_steps(history(rng, n, n_ref, args.steps, DRIFT, pooled), rules)[rules.warmup + 1:]
                           for _ in range(args.runs)]
                row[f"false_runs_{key}"] = false / args.runs
                row[f"caught_{key}"] = float(np.mean(drifted))
                row[f"runs_caught_in_3_{key}"] = float(np.mean([any(hits[:3]) for hits in drifted]))
            rows.append(row)
            print(f"{n_ref:6d} | {n:8d} | {row['false_runs_before']:6.1%} / {row['false_runs_now']:6.1%} | "
                  f"{row['caught_before']:6.1%} / {row['caught_now']:6.1%} | "
                  f"{row['runs_caught_in_3_before']:6.1%} / {row['runs_caught_in_3_now']:6.1%}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
