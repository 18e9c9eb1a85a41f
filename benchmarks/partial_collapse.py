"""Partial-collapse signal (`duplicate_frac`) against the real reference's size: false alerts
on healthy runs and partial collapses caught, on simulated embeddings.

Embeddings: 10 Gaussian modes in 32 dimensions (spread 0.6, unit length). Per (real reference
size N, samples per step n, seed): 20 healthy steps, then for each collapse (a share of the
samples on m points drawn from the data, jitter 0.02) 4 collapsed steps after the healthy ones.
The `collapse` rule alone is evaluated (engine.alerts), as the watcher does at each step.

    .venv/bin/python benchmarks/partial_collapse.py [--refs 8 16 25 50 100] [--sizes 8 16 64 256 1024]
        [--seeds 3] [--json FILE]

Prints one table row per (N, n): false alerting steps among the healthy ones, the healthy
share's mean and maximum, and per collapse the runs caught (of --seeds) and the mean share.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import alerts, metrics  # noqa: E402

DIM, MODES, SPREAD, JITTER = 32, 10, 0.6, 0.02
HEALTHY_STEPS, COLLAPSED_STEPS = 20, 4
COLLAPSES = [(share, modes) for share in (0.25, 0.5, 0.75) for modes in (1, 2, 4)]
RULES = alerts.AlertRules(enabled=("collapse",))


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


class World:
    """One seeded data distribution: draws from it, and draws partly collapsed onto a few points."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.modes = self.rng.normal(size=(MODES, DIM))

    def draw(self, n: int) -> np.ndarray:
        return unit(self.modes[self.rng.integers(0, MODES, n)] + SPREAD * self.rng.normal(size=(n, DIM)))

    def collapsed(self, n: int, share: float, modes: int) -> np.ndarray:
        x, k = self.draw(n), int(round(share * n))
        centres = self.draw(modes)
        on = self.rng.permutation(n)[:k]
        x[on] = unit(centres[np.arange(k) % modes] + JITTER * self.rng.normal(size=(k, DIM)))
        return x


def step_record(step: int, gen: np.ndarray, ref: metrics.ReferenceStats) -> dict[str, float]:
    scalars = metrics.compute_step(gen, ref).scalars
    return {"step": step, **{k: scalars[k] for k in ("n_generated", "duplicate_frac", "duplicate_expected")}}


def partial_collapse_alert(history: list[dict]) -> bool:
    return any("partial mode collapse" in a.message for a in alerts.evaluate_alerts(history, RULES))


def one_run(n_real: int, n: int, seed: int) -> dict:
    world = World(1000 * n_real + seed)
    ref = metrics.ReferenceStats.build(world.draw(n_real), world.draw(50))
    healthy, false_steps = [], 0
    for step in range(HEALTHY_STEPS):
        healthy.append(step_record(step, world.draw(n), ref))
        false_steps += partial_collapse_alert(healthy)
    shares = [h["duplicate_frac"] for h in healthy]
    row = {"N": n_real, "n": n, "seed": seed, "false_steps": false_steps,
           "healthy_mean": float(np.mean(shares)), "healthy_max": float(max(shares))}
    for share, modes in COLLAPSES:
        history, caught, fracs = list(healthy), 0, []
        for step in range(HEALTHY_STEPS, HEALTHY_STEPS + COLLAPSED_STEPS):
            history.append(step_record(step, world.collapsed(n, share, modes), ref))
            fracs.append(history[-1]["duplicate_frac"])
            caught += partial_collapse_alert(history)
        row[f"{share:g}x{modes}"] = {"caught": caught > 0, "mean": float(np.mean(fracs))}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refs", type=int, nargs="+", default=[8, 16, 25, 50, 100])
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 64, 256, 1024])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = [one_run(n_real, n, seed) for n_real in args.refs for n in args.sizes for seed in range(args.seeds)]
    names = [f"{share:g}x{modes}" for share, modes in COLLAPSES]
    print(f"| N real | n | false steps (of {HEALTHY_STEPS * args.seeds}) | healthy mean / max | "
          + " | ".join(f"{name} caught (mean)" for name in names) + " |")
    print("|---" * (4 + len(names)) + "|")
    for n_real in args.refs:
        for n in args.sizes:
            group = [r for r in rows if r["N"] == n_real and r["n"] == n]
            cells = [f"{sum(r[name]['caught'] for r in group)}/{len(group)} "
                     f"({np.mean([r[name]['mean'] for r in group]):.2f})" for name in names]
            print(f"| {n_real} | {n} | {sum(r['false_steps'] for r in group)} | "
                  f"{np.mean([r['healthy_mean'] for r in group]):.3f} / {max(r['healthy_max'] for r in group):.2f} | "
                  + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
