"""What telling superseded checkpoints costs (``stores.zarr_store.superseded_flags``: at every
pass of a watch, in ``info``, ``export`` and the viewer) for checkpoints read across per-sample
folders (``samples/{sample}/step_N.png``, OneTrainer's layout) against plain checkpoint folders
(``step_N/``), the baseline, measured in the same run.

    .venv/bin/python benchmarks/superseded_flags.py [--checkpoints 500 1000 2000] [--repeats 5]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from stores.zarr_store import superseded_flags  # noqa: E402
from timing import median_seconds  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[500, 1000, 2000])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{'checkpoints':>12}{'folders ms':>12}{'per-sample ms':>15}{'x folders':>11}")
    for n in args.checkpoints:
        folders = {"source": np.array([f"step_{100 * k}" for k in range(n)])}
        per_sample = {"source": np.array([f"samples/{{sample}}/step_{100 * k}.png" for k in range(n)])}
        base = median_seconds(lambda: superseded_flags(folders), args.repeats, warm=True)
        seconds = median_seconds(lambda: superseded_flags(per_sample), args.repeats, warm=True)
        print(f"{n:>12}{base * 1e3:>12.1f}{seconds * 1e3:>15.1f}{seconds / base:>11.1f}")


if __name__ == "__main__":
    main()
