"""The viewer's nearest training image of a selection (viewer.data.copies), by reference size.

    python benchmarks/nearest_training.py [--sizes 2000 50000] [--dim 512] [--workdir DIR]

A box selection shows each generated sample beside the training image nearest to it. The
first selection reads every training vector of the store (then cached while the reference
is unchanged); this measures, per reference size, in one process:

- ``grid_s``: the baseline, reading the selection's 60 thumbnails (what every selection did
  before the nearest images were shown);
- ``nearest_cold_s``: the first selection's nearest images (training vectors read, kNN);
- ``nearest_warm_s``: another selection's, the vectors cached.

Ratios are against ``grid_s`` measured in the same run. Stores are synthetic (viewer.synthetic,
``--dim``-dimensional vectors as a CLIP ViT-B/32's) and kept in --workdir.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import streamlit as st  # noqa: E402
from streamlit import logger as streamlit_logger  # noqa: E402

from stores import format as fmt  # noqa: E402
from viewer.data import commits, copies, sample_rows  # noqa: E402
from viewer.synthetic import build_store  # noqa: E402

SELECTED = 60


def store_for(n_real: int, dim: int, workdir: Path) -> Path:
    path = workdir / f"nearest_{n_real}_{dim}.zarr"
    if not (path / "zarr.json").is_file():
        building = workdir / f".{path.name}.building"
        shutil.rmtree(building, ignore_errors=True)
        build_store(building, n_steps=2, per_step=2000, n_real=n_real, thumbnail_size=24,
                    encoder={"identity": f"synthetic:dim{dim}", "dim": dim})
        building.rename(path)
    return path


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def measure(path: Path) -> dict[str, float]:
    st.cache_data.clear()
    st.cache_resource.clear()
    commit = commits.read_commit(path)
    kind = commits.reader(path, commit).samples("kind")
    generated = np.flatnonzero(kind == fmt.KIND_CODES["generated"])
    rng = np.random.default_rng(0)
    first, second = (np.sort(rng.choice(generated, SELECTED, replace=False)) for _ in range(2))
    out = {"grid_s": _timed(lambda: sample_rows.sample_columns(str(path), commit, first, ("thumbnail",)))}
    out["nearest_cold_s"] = _timed(lambda: copies.nearest_training(path, commit, first, kind[first]))
    out["nearest_warm_s"] = _timed(lambda: copies.nearest_training(path, commit, second, kind[second]))
    out["cold_vs_grid"] = out["nearest_cold_s"] / out["grid_s"]
    out["warm_vs_grid"] = out["nearest_warm_s"] / out["grid_s"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 50_000], help="training images in the reference")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "evowatch-nearest-bench")
    args = ap.parse_args()
    streamlit_logger.set_log_level("error")  # bare mode's "no runtime found" cache warnings
    args.workdir.mkdir(parents=True, exist_ok=True)
    results = {n: measure(store_for(n, args.dim, args.workdir)) for n in args.sizes}
    print(json.dumps({str(n): {k: round(v, 4) for k, v in r.items()} for n, r in results.items()}, indent=1))


if __name__ == "__main__":
    main()
