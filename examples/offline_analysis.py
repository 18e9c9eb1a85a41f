"""Reuse a store in your own analysis: plain ``zarr`` + ``numpy`` + ``matplotlib``, no evowatch.

This is the documented way to read a store (docs/store.md): read the commit point from the
root attributes, never trust rows past it, drop superseded checkpoint versions, then slice.
The script selects a step range, recomputes one metric, the mean pairwise cosine distance
of each step's generated samples (a diversity measure: it falls when samples collapse),
next to the value evowatch stored, and plots each step's label shares::

    python -m examples.offline_analysis run.zarr [--steps 100:500] [--out analysis.png]

It prints one line per step: ``step, samples, diversity (recomputed), diversity (stored)``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import zarr


def missing_chunks(root: zarr.Group, name: str, rows: int) -> list[int]:
    """The chunks of the array ``name`` under the commit point whose files are missing: a store
    copied or restored incompletely, which zarr would read as zeros without a word."""
    array = root[name]
    folder = Path(root.store.root) / array.path
    per_chunk = array.chunks[0]
    return [i for i in range(-(-rows // per_chunk))
            if not (folder / array.metadata.encode_chunk_key((i,) + (0,) * (array.ndim - 1))).is_file()]


def read_current_generated(path: str | Path, first: int | None = None, last: int | None = None) -> dict:
    """Committed, current, generated rows with ``first <= step <= last``: their columns as arrays."""
    if not (Path(path) / "zarr.json").is_file():  # zarr raised FileNotFoundError, or "No group found"
        raise ValueError(f"{path}: not a store (no zarr.json); give the folder `evowatch watch --store` created")
    root = zarr.open_group(str(path), mode="r")
    attrs = root.attrs.asdict()
    if "committed" not in attrs:  # a group inside a store, another Zarr: KeyError
        raise ValueError(f"{path}: not an evowatch store's folder (no root attribute 'committed'); give the folder "
                         "`evowatch watch --store` created")
    n_rows, n_ckpt = attrs["committed"]["rows"], attrs["committed"]["checkpoints"]
    by = "superseded_by" if "superseded_by" in root["checkpoints"] else "superseded"
    for name in ("samples/step", "samples/kind", "samples/checkpoint", "samples/label", "samples/embedding",
                 f"checkpoints/{by}"):  # every array read here (round AR: a samples/step chunk missing read as step 0)
        count = n_ckpt if name.startswith("checkpoints") else n_rows
        if (ends := root[name].shape[0]) < count:  # its zarr.json from before it grew: reads stop short
            raise ValueError(f"{path}: {name} ends at row {ends}, before the {count} rows the commit point counts: "
                             "a copy taken while it was written; copy the store again")
        if missing := missing_chunks(root, name, count):
            raise ValueError(f"{path}: {name} lacks the files of chunks {missing[:5]}: an incomplete copy; "
                             "copy the store again")
    step = root["samples/step"][:n_rows]
    kind = root["samples/kind"][:n_rows]
    checkpoint = root["samples/checkpoint"][:n_rows]
    if "superseded_by" in root["checkpoints"]:  # replaced by a committed checkpoint (docs/store.md)
        by = root["checkpoints/superseded_by"][:n_ckpt]
        superseded = (by >= 0) & (by < n_ckpt)
    else:  # a store written before superseded_by
        superseded = root["checkpoints/superseded"][:n_ckpt].astype(bool)
    keep = (kind == attrs["kinds"].index("generated")) & ~superseded[checkpoint]
    if first is not None:
        keep &= step >= first
    if last is not None:
        keep &= step <= last
    rows = np.flatnonzero(keep)
    return {
        "rows": rows,
        "step": step[rows],
        "label": root["samples/label"][:n_rows][rows],
        "embedding": root["samples/embedding"].get_orthogonal_selection((rows, slice(None))).astype(np.float64),
        "labels": list(attrs.get("labels", [])),
        "stored_diversity": _stored_metric(root, "pairwise_cosine"),
    }


def _stored_metric(root: zarr.Group, name: str) -> dict[int, float]:
    """A per-step metric evowatch wrote (metrics/<name>), as {step: value}; empty if absent."""
    if "metrics" not in root or name not in root["metrics"]:
        return {}
    n = int(root["metrics"].attrs.get("committed_rows", 0))
    return dict(zip(root["metrics/step"][:n].tolist(), root[f"metrics/{name}"][:n].tolist()))


def mean_pairwise_cosine_distance(vectors: np.ndarray) -> float:
    """Mean of 1 - cos(a, b) over all ordered pairs of distinct samples, in O(n d): the sum of
    all cosines is |sum of the unit vectors|^2 (no n x n matrix: 32 GiB for 65,536 samples)."""
    x = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    n = len(x)
    if n < 2:
        return float("nan")
    total = x.sum(axis=0)
    return float(1.0 - (total @ total - n) / (n * (n - 1)))


def label_shares(steps: np.ndarray, labels: np.ndarray, n_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """(unique steps, shares (steps, n_labels + 1)); the last column is 'unlabelled'."""
    unique = np.unique(steps)
    codes = np.where(labels < 0, n_labels, labels)
    counts = np.stack([np.bincount(codes[steps == s], minlength=n_labels + 1) for s in unique])
    return unique, counts / np.maximum(counts.sum(1, keepdims=True), 1)


def plot(steps: np.ndarray, shares: np.ndarray, names: list[str], diversity: list[float], out: Path) -> None:
    """The label shares and the diversity per step, as a PNG. matplotlib is imported here: a plain
    `pip install evowatch` lacks it, and the table printed before needs only zarr and numpy."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, height_ratios=(2, 1))
    x = np.arange(len(steps))
    base = np.zeros(len(steps))
    used = [k for k in range(shares.shape[1]) if shares[:, k].any()]
    colors = plt.get_cmap("tab20")
    for k in used:
        top.bar(x, shares[:, k], bottom=base, color=colors(k % 20), label=names[k] if k < len(names) else "unlabelled")
        base += shares[:, k]
    top.set_ylabel("share of samples")
    top.legend(title="label", fontsize="small", ncol=2, bbox_to_anchor=(1.01, 1), loc="upper left")
    bottom.plot(x, diversity, marker="o")
    bottom.set_ylabel("mean pairwise\ncosine distance")
    bottom.set_xticks(x, [str(s) for s in steps], rotation=90 if len(steps) > 12 else 0)
    bottom.set_xlabel("training step")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def parse_range(text: str | None) -> tuple[int | None, int | None]:
    """``A:B``, ``A:`` or ``:B`` (inclusive) into (first, last)."""
    if not text:
        return None, None
    first, sep, last = text.partition(":")
    if not sep:
        raise ValueError(f"Expected a step range as FIRST:LAST (either may be empty). Got {text!r} instead.")
    return (int(first) if first.strip() else None), (int(last) if last.strip() else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("--steps", metavar="FIRST:LAST", help="inclusive step range (default: all)")
    parser.add_argument("--out", type=Path, default=Path("analysis.png"), help="the plot (PNG)")
    args = parser.parse_args(argv)
    try:
        first, last = parse_range(args.steps)
    except ValueError as exc:
        parser.error(f"--steps: {exc}")
    try:
        data = read_current_generated(args.store, first, last)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not len(data["rows"]):
        print(f"{args.store}: no generated samples in steps {args.steps or 'all'}", file=sys.stderr)
        return 1
    steps, shares = label_shares(data["step"], data["label"], len(data["labels"]))
    diversity = []
    print("step,samples,diversity,stored_diversity")
    for s in steps:
        value = mean_pairwise_cosine_distance(data["embedding"][data["step"] == s])
        diversity.append(value)
        stored = data["stored_diversity"].get(int(s), float("nan"))
        print(f"{int(s)},{int((data['step'] == s).sum())},{value:.6f},{stored:.6f}")
    try:
        plot(steps, shares, data["labels"], diversity, args.out)
    except ModuleNotFoundError as exc:  # matplotlib is in evowatch's dev extra only
        print(f"error: {args.out}: the plot needs {exc.name}; `pip install {exc.name}` (the table above needs only "
              "zarr and numpy)", file=sys.stderr)
        return 1
    except OSError as exc:  # a read-only folder (the default --out is in the current one), a missing one
        print(f"error: {args.out}: cannot write the plot ({exc.strerror}); choose another --out", file=sys.stderr)
        return 1
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
