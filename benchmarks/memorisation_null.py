"""The memorisation rule over a long run of a few samples a checkpoint: false alerts on
healthy runs and the delay on copying ones, one test per checkpoint against two running.

Embeddings: 10 Gaussian modes in 32 dimensions (spread 0.6, unit length), a real reference of
2,000 and a held-out set of --holdout vectors. A healthy run draws n fresh samples from the data
at each of --steps checkpoints; a copying run does the same until half way, then draws a share
of its samples (--copy-share, all by default) from training vectors moved by --copy-jitter:
those of the equal-size training subset the log ratio compares with (it sees copies of those,
docs/metrics.md). The `memorisation` rule alone is evaluated (engine.alerts) at each
checkpoint, as the watcher does, with the default rules and with the log-ratio route firing on
one checkpoint alone (``copy_log_ratio_alone_alpha=1``: the rule before two running were asked
for), on the same runs.

    .venv/bin/python benchmarks/memorisation_null.py [--sizes 8 16 32] [--holdout 20 100] [--runs 40] [--steps 100]

Prints one row per (n, held-out size): healthy runs alerting (of --runs) under each rule, and
for --runs/4 copying runs the mean checkpoints from the onset to the first alert after it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import alerts, metrics  # noqa: E402

DIM, MODES, SPREAD, N_REAL = 32, 10, 0.6, 2000
RULES = {"one alone": alerts.AlertRules(enabled=("memorisation",), copy_log_ratio_alone_alpha=1.0),
         "two running": alerts.AlertRules(enabled=("memorisation",))}


def draw(rng: np.random.Generator, n: int, centres: np.ndarray) -> np.ndarray:
    picked = centres[rng.integers(len(centres), size=n)]
    return metrics.unit_rows(picked + SPREAD * rng.normal(size=picked.shape))


def first_alerts(records: list[dict], start: int = 0) -> dict[str, int | None]:
    """Each rule set's first alerting checkpoint from ``start`` on (its index), None without one."""
    return {name: next((t for t in range(start, len(records)) if alerts.evaluate_alerts(records[:t + 1], rules)), None)
            for name, rules in RULES.items()}


def run(seed: int, n: int, n_holdout: int, steps: int, copy_jitter: float | None,
        copy_share: float = 1.0) -> dict[str, int | None]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(MODES, DIM))
    real = draw(rng, N_REAL, centres)
    ref = metrics.ReferenceStats.build(real, draw(rng, n_holdout, centres))
    records = []
    for t in range(steps):
        x = draw(rng, n, centres)
        if copy_jitter is not None and t >= steps // 2:
            copied = real[rng.choice(ref.copy_train_idx, size=round(n * copy_share))]
            x[:len(copied)] = metrics.unit_rows(copied + copy_jitter * rng.normal(size=copied.shape) / np.sqrt(DIM))
        records.append({"step": 100 * (t + 1), **metrics.compute_step(x, ref).scalars})
    return first_alerts(records, 0 if copy_jitter is None else steps // 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--holdout", type=int, nargs="+", default=[20, 100])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--copy-jitter", type=float, default=0.6)
    parser.add_argument("--copy-share", type=float, default=1.0)
    args = parser.parse_args()
    print("n    held-out  healthy runs alerting (one alone / two running)  copying: checkpoints from onset to alert "
          "(runs caught)")
    for n in args.sizes:
        for n_holdout in args.holdout:
            healthy = [run(seed, n, n_holdout, args.steps, None) for seed in range(args.runs)]
            copying = [run(10_000 + seed, n, n_holdout, args.steps, args.copy_jitter, args.copy_share) for seed in range(args.runs // 4)]
            false = {name: sum(h[name] is not None for h in healthy) for name in RULES}
            caught = {name: [c[name] - args.steps // 2 for c in copying if c[name] is not None] for name in RULES}
            print(f"{n:<4} {n_holdout:<9} {false['one alone']:>3} / {false['two running']:<3} of {args.runs:<30} "
                  + " / ".join(f"{np.mean(caught[name]) if caught[name] else float('nan'):.1f} "
                               f"({len(caught[name])} of {len(copying)})" for name in RULES), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
