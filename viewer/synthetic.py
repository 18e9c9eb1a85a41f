"""Synthetic run stores for the viewer's tests and benchmark (numpy only, no encoder).

Each step holds ``per_step`` generated samples of a fixed noise batch (instance ids
0..per_step-1) drawn from ``n_labels`` clusters that tighten as training goes on; the
real reference is one more set at step -1. Layout rows are committed with every step, as
the watcher does, so the viewer sees exactly what a live run produces (or with a backlog of
steps, as the watcher commits one).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from stores.zarr_store import StoreWriter

ENCODER = {"identity": "synthetic:test", "dim": 8}
LABELS = ("airplane", "bird", "cat", "dog", "ship", "truck")
_COLORS = np.array([[230, 57, 70], [42, 157, 143], [233, 196, 106], [38, 70, 83], [244, 162, 97],
                    [131, 56, 236]], np.uint8)


def _thumbs(labels: np.ndarray, size: int, rng: np.random.Generator, sharp: float) -> np.ndarray:
    """A coloured disc per label on a noisy background; sharper at later steps."""
    n = len(labels)
    yy, xx = np.mgrid[:size, :size]
    disc = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (size * 0.3) ** 2
    out = np.empty((n, size, size, 3), np.uint8)
    out[:] = rng.integers(90, 160, size=(n, 1, 1, 3), dtype=np.uint8)
    noise = rng.integers(0, int(80 * (1 - sharp)) + 1, size=(n, size, size, 1), dtype=np.uint8)
    out = np.clip(out.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    out[:, disc] = _COLORS[labels % len(_COLORS)][:, None, :]
    return out


def _solution(labels: np.ndarray, base: np.ndarray, spread: float) -> np.ndarray:
    """Per-step 2-D solution centred at the origin: label clusters on a circle plus jitter."""
    angles = 2 * np.pi * labels / len(LABELS)
    centres = np.stack([np.cos(angles), np.sin(angles)], axis=1) * 3.0
    xy = centres + base * spread
    return (xy - xy.mean(axis=0)).astype(np.float32)


def _vectors(labels: np.ndarray, rng: np.random.Generator, dim: int) -> np.ndarray:
    v = rng.normal(size=(len(labels), dim)).astype(np.float32) * 0.3
    v[np.arange(len(labels)), labels % dim] += 1.0
    return v / np.linalg.norm(v, axis=1, keepdims=True)


class SyntheticRun:
    """Writes a synthetic run step by step into a store (layout and metrics included)."""

    def __init__(self, path: str | Path, *, per_step: int = 200, n_real: int = 200, thumbnail_size: int = 24,
                 seed: int = 0, metrics: bool = True, encoder: dict | None = None) -> None:
        self.path = Path(path)
        self.encoder = encoder or ENCODER  # the store's encoder record; vectors get its dim
        self.per_step, self.n_real, self.size, self.metrics = per_step, n_real, thumbnail_size, metrics
        self.rng = np.random.default_rng(seed)
        self.instance_labels = self.rng.integers(0, len(LABELS), per_step)
        self.instance_base = self.rng.normal(size=(per_step, 2)).astype(np.float32)
        self.steps: list[int] = []
        self._writer: StoreWriter | None = None

    @contextlib.contextmanager
    def writing(self) -> Iterator[StoreWriter]:
        """One writer for the commits made inside, as a watch holds one for its life: opening
        one (its lock and recovery) and closing it cost about as much as a step's commit."""
        with self._store() as store:
            self._writer = store
            try:
                yield store
            finally:
                self._writer = None

    def _store(self) -> contextlib.AbstractContextManager[StoreWriter]:
        """The writer held by :meth:`writing`, else a new one for this commit alone."""
        if self._writer is not None:
            return contextlib.nullcontext(self._writer)
        return StoreWriter(self.path, self.encoder, thumbnail_size=self.size)

    def _write(self, parts: list[tuple]) -> None:
        """Each part (step, kind, labels, instances, base, spread, sharp, source, k) a checkpoint,
        committed together with their layout and metrics (one commit per array, as the watcher
        commits a backlog: a commit per step took half a second)."""
        with self._store() as store:
            start, solutions, nns, measured = store.n_rows, [], [], []
            for step, kind, labels, instances, base, spread, sharp, source, k in parts:
                n = len(labels)
                with store.checkpoint(step, source, f"hash-{source}", kind, defer=True) as tx:
                    chunk = 50_000
                    for i in range(0, n, chunk):
                        sl = slice(i, min(n, i + chunk))
                        lab = labels[sl]
                        tx.add(_vectors(lab, self.rng, int(self.encoder["dim"])), instances[sl],
                               [LABELS[x] for x in lab], _thumbs(lab, self.size, self.rng, sharp),
                               [f"{source}/sample_{j:06d}.png" for j in range(sl.start, sl.stop)])
                solutions.append(_solution(labels, base, spread))
                if kind == "generated" and self.metrics:
                    nn = self.rng.gamma(4.0, 0.05, n).astype(np.float32) * (1.0 + 2.0 / (1 + k))
                    nns.append(nn)
                    measured.append((step, {"vendi": 2.0 + 3.0 * (1 - np.exp(-k / 3)),
                                            "coverage": 0.2 + 0.6 * (1 - np.exp(-k / 4)),
                                            "near_copy_frac": float((nn < 0.08).mean())}, None))
            store.commit_pending()
            store.commit_layout(np.concatenate(solutions), start)
            if nns:  # the generated parts only: a reference part comes alone (add_reference)
                nn = np.concatenate(nns)
                store.write_sample_metric("nn_train_distance", start, nn)
                store.write_sample_metric("near_copy", start, np.concatenate(
                    [(part < np.quantile(part, 0.05)).astype(np.float32) for part in nns]))
                store.write_steps_metrics(measured)

    def add_reference(self) -> None:
        labels = self.rng.integers(0, len(LABELS), self.n_real)
        base = self.rng.normal(size=(self.n_real, 2)).astype(np.float32)
        self._write([(-1, "real", labels, np.full(self.n_real, -1, np.int32), base, 0.6, 1.0, "reference/real", 0)])

    def add_step(self, step: int) -> None:
        self.add_steps([step])

    def add_steps(self, steps: Sequence[int]) -> None:
        """The next steps, committed together (thousands of steps in seconds)."""
        parts = []
        for step in steps:
            k = len(self.steps)
            spread = 2.0 / (1 + 0.5 * k) + 0.4
            drift = self.rng.normal(scale=0.1, size=self.instance_base.shape).astype(np.float32)
            self.instance_base = self.instance_base + drift
            parts.append((step, "generated", self.instance_labels, np.arange(self.per_step, dtype=np.int32),
                          self.instance_base, spread, min(1.0, 0.2 + 0.2 * k), f"step_{step:07d}", k))
            self.steps.append(step)
        self._write(parts)

    def add_scalars(self) -> None:
        steps = np.arange(0, max(self.steps or [0]) + 1, 50, dtype=np.int64)
        with self._store() as store:
            store.write_scalars({"step": steps, "loss_g": 2.0 * np.exp(-steps / 3000) + 0.3,
                                 "loss_d": 0.7 + 0.1 * np.sin(steps / 500)})


def build_store(path: str | Path, *, n_steps: int = 4, per_step: int = 200, n_real: int = 200,
                thumbnail_size: int = 24, step_every: int = 1000, alerts: bool = True,
                seed: int = 0, encoder: dict | None = None, backlog: bool = False) -> SyntheticRun:
    """A complete synthetic store: reference, ``n_steps`` steps, metrics, losses and an alert;
    with ``backlog`` the steps are committed together (a long run in seconds)."""
    run = SyntheticRun(path, per_step=per_step, n_real=n_real, thumbnail_size=thumbnail_size, seed=seed,
                       encoder=encoder)
    steps = [(i + 1) * step_every for i in range(n_steps)]
    with run.writing() as store:
        run.add_reference()
        if backlog:
            run.add_steps(steps)
        else:
            for step in steps:
                run.add_step(step)
        run.add_scalars()
        if alerts and n_steps >= 2:
            store.set_alerts([{"step": run.steps[1], "rule": "memorisation", "value": 0.12,
                               "message": f"12% of samples are near-copies of training images at step {run.steps[1]}"}])
    return run
