"""A small, real conditional GAN on scikit-learn's handwritten digits, trained on CPU.

This is the trainer behind ``evowatch demo`` and the induced-failure validation runs. It is
fully offline: the data set (1,797 grayscale 8x8 digits, labels 0-9) ships with scikit-learn.

Usage::

    python -m examples.demo_trainer OUT_DIR [--steps 3000] [--every 250] [--fail copy@1500|drop@1500]
        [--branch OUT2 copy@1500 3000 ...]

or ``from examples.demo_trainer import train; train(out_dir, ...)``.

Model
-----
A conditional MLP GAN on the 8x8 pixels scaled to [-1, 1]. Generator: ``[z (32), one-hot
label (10)] -> 256 -> 256 -> 64, tanh``; discriminator: ``[x (64), one-hot label (10)] ->
256 -> 256 -> 1`` with LeakyReLU(0.2) and dropout 0.2. Non-saturating BCE loss, one-sided
label smoothing (0.9), Adam (lr 5e-4, betas 0.5/0.999), batch 64. Everything runs on one
CPU thread (see ``threads``) with fixed seeds, so a run is reproducible. Images are upscaled bilinearly to
``image_size`` (default 32x32) only when written, for both the samples and the reference
sets, so generated and real images go through the same resampling.

Output layout
-------------
::

    OUT_DIR/
      data/                         (or data_dir)
        split.json                  split parameters: {"split_seed", "n_train", "n_holdout", "image_size"}
        train/<label>/<idx>.png     the 1,200 digits the GAN trains on (idx = index in load_digits)
        holdout/<label>/<idx>.png   the other 597, never trained on (stratified, disjoint)
      run/
        demo.json                   the run's parameters, the planned steps and the failure onset
        losses.jsonl                {"step", "loss_d", "loss_g"} every 10 steps (mean of those
                                    10 steps), appended and flushed as it trains
        step_000250/
          samples/00000.png ...     the fixed-noise batch (n_samples images); file index =
                                    instance id: the same noise and label at every step
          labels.csv                "file,label" with file relative to the checkpoint folder
                                    (samples/00000.png) and the label it was conditioned on
        step_000500/ ...

A checkpoint is written every ``every`` steps (``every, 2*every, ..., steps``; the last
step is always written). Each is first written to ``run/.step_000250.tmp`` (a dot-name,
which watchers ignore) and renamed into place with ``os.rename``, so a checkpoint folder is
complete from the moment it appears. The reference sets are written the same way
(``data/.train.tmp`` -> ``data/train``) and are kept as they are when an earlier run with
the same ``split.json`` wrote them.

The fixed batch is conditioned on labels ``i % 10`` for instance ``i``.

Induced failures (``fail``)
---------------------------
Each changes the generator's effective output from training step ``STEP`` on (in the
training updates and in the written samples alike, so the loss log shows it too); steps
before ``STEP`` are bit-identical to a healthy run with the same seed. A checkpoint at
step ``s`` is affected when ``s >= STEP``.

``collapse@STEP``
    Mode collapse onto two modes. Two fixed (noise, label) pairs are drawn at start. Each
    noise vector ``z`` is sent to the nearer of the two fixed vectors ``m_k`` (Euclidean), and
    the generator is fed ``m_k + 0.05 * z`` together with mode ``k``'s label, ignoring the
    label it was asked for. Every sample is then one of two digit images with a small
    jitter: diversity falls sharply, and the generated digits no longer follow the requested
    labels (``labels.csv`` keeps the requested label, as a real conditional run would). The
    discriminator still sees the requested labels, so it wins and ``loss_g`` rises.

``drop@STEP``
    Mode dropping. The generator is fed the label ``kept[y % 4]`` instead of ``y``, and the
    discriminator judges its output by that label: only 4 of the 10 digit classes (fixed at
    start) are drawn, each image still a clean digit.
    ``labels.csv`` keeps the requested label, as for collapse, so only the unlabelled
    signals (the real data's regions, recall) can see it; diversity falls little.

``copy@STEP``
    Memorisation. For 75% of the samples (a fixed subset of the instance ids in the written
    batch, a random 75% of each training batch), the output is replaced by the training
    image (from the 1,200 in ``data/train``) nearest in pixel space to what the generator
    produced, among those with the conditioning label, plus Gaussian pixel noise with
    standard deviation 0.05 on the [-1, 1] scale, clipped. The other 25% are unchanged.
    Copied samples sit far closer to their nearest training image than to any held-out
    image; labels stay consistent.

Pausing
-------
Before each step the trainer checks for ``run/EVOWATCH_PAUSE`` (the file evowatch's alert
rules can write; through ``engine.pause.evowatch_should_pause`` when importable, else by
checking the file directly). With ``on_pause="wait"`` (default) it prints a message on
stderr and waits until the file is removed, then resumes; with ``on_pause="stop"`` it
prints a message and returns. Stopped with Ctrl-C, ``main`` says what each run folder (branches too) keeps and how to go on.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

PAUSE_FILE = "EVOWATCH_PAUSE"
DEFAULT_STEPS = 3000
SPLIT_SEED = 0
N_TRAIN = 1200
Z_DIM = 32
HIDDEN = 256
BATCH = 64
LR = 5e-4
LOG_EVERY = 10
COLLAPSE_MODES = 2
COLLAPSE_JITTER = 0.05  # scale of the original noise added to the mode's noise vector
DROP_KEPT = 4  # digit classes left under drop
COPY_FRACTION = 0.75
COPY_NOISE = 0.05  # std of the pixel noise on copied images, [-1, 1] scale
PAUSE_POLL_S = 0.5

FailKind = Literal["collapse", "drop", "copy"]


@dataclass(frozen=True)
class FailSpec:
    """An induced failure: ``kind`` starts at training step ``step``."""

    kind: FailKind
    step: int


def parse_fail(spec: str | None) -> FailSpec | None:
    """Parse ``collapse@STEP`` / ``drop@STEP`` / ``copy@STEP`` (``None`` or ``""`` for a healthy run)."""
    if spec is None or spec == "":
        return None
    m = re.fullmatch(r"\s*(collapse|drop|copy)@(\d+)\s*", str(spec))
    if m is None:
        raise ValueError(
            "Expected collapse@STEP, drop@STEP or copy@STEP (STEP a non-negative integer). "
            f"Got {spec!r} instead."
        )
    return FailSpec(kind=m.group(1), step=int(m.group(2)))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- data


def load_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The fixed stratified split: (x_train, y_train, idx_train, x_hold, y_hold, idx_hold).

    Images are float32 ``(n, 64)`` in [-1, 1]; ``idx`` are indices into ``load_digits``.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images.reshape(-1, 64).astype(np.float32) / 16.0) * 2.0 - 1.0
    y = digits.target.astype(np.int64)
    idx = np.arange(len(x))
    i_tr, i_ho = train_test_split(idx, train_size=N_TRAIN, stratify=y, random_state=SPLIT_SEED)
    i_tr, i_ho = np.sort(i_tr), np.sort(i_ho)
    return x[i_tr], y[i_tr], i_tr, x[i_ho], y[i_ho], i_ho


def to_uint8_images(x: torch.Tensor | np.ndarray, size: int) -> np.ndarray:
    """``(n, 64)`` pixels in [-1, 1] -> ``(n, size, size)`` uint8, bilinear upscaling."""
    t = torch.as_tensor(x, dtype=torch.float32).reshape(-1, 1, 8, 8)
    if size != 8:
        t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    t = ((t.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return t[:, 0].numpy()


def _write_reference_sets(data_dir: Path, image_size: int) -> None:
    manifest = {
        "split_seed": SPLIT_SEED,
        "n_train": N_TRAIN,
        "n_holdout": 1797 - N_TRAIN,
        "image_size": image_size,
    }
    manifest_path = data_dir / "split.json"
    if (
        manifest_path.is_file()
        and (data_dir / "train").is_dir()
        and (data_dir / "holdout").is_dir()
        and json.loads(manifest_path.read_text()) == manifest
    ):
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    x_tr, y_tr, i_tr, x_ho, y_ho, i_ho = load_split()
    for name, xs, ys, ids in (("train", x_tr, y_tr, i_tr), ("holdout", x_ho, y_ho, i_ho)):
        tmp = data_dir / f".{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        for label in range(10):
            (tmp / str(label)).mkdir(parents=True)
        for img, label, i in zip(to_uint8_images(xs, image_size), ys, ids):
            Image.fromarray(img, mode="L").save(tmp / str(int(label)) / f"{int(i):04d}.png")
        final = data_dir / name
        shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)
    manifest_path.write_text(json.dumps(manifest) + "\n")


# --------------------------------------------------------------------------- model


def _generator() -> nn.Module:
    return nn.Sequential(
        nn.Linear(Z_DIM + 10, HIDDEN), nn.LeakyReLU(0.2),
        nn.Linear(HIDDEN, HIDDEN), nn.LeakyReLU(0.2),
        nn.Linear(HIDDEN, 64), nn.Tanh(),
    )


def _discriminator() -> nn.Module:
    return nn.Sequential(
        nn.Linear(64 + 10, HIDDEN), nn.LeakyReLU(0.2), nn.Dropout(0.2),
        nn.Linear(HIDDEN, HIDDEN), nn.LeakyReLU(0.2),
        nn.Linear(HIDDEN, 1),
    )


class _Failure:
    """The generator's effective output under an induced failure (see the module docstring)."""

    def __init__(self, spec: FailSpec | None, x_train: torch.Tensor, y_train: torch.Tensor,
                 gen: torch.Generator) -> None:
        self.spec = spec
        self.x_train, self.y_train = x_train, y_train
        # Drawn even for a healthy run so that every run consumes the same random numbers.
        self.mode_z = torch.randn(COLLAPSE_MODES, Z_DIM, generator=gen)
        classes = torch.randperm(10, generator=gen)
        self.mode_y, self.kept_y = classes[:COLLAPSE_MODES], classes[:DROP_KEPT]

    def with_spec(self, spec: FailSpec | None) -> _Failure:
        """The same draws under another failure (a branch of the healthy run)."""
        out = copy.copy(self)
        out.spec = spec
        return out

    def active(self, step: int) -> bool:
        return self.spec is not None and step >= self.spec.step

    def labels(self, y: torch.Tensor, step: int) -> torch.Tensor:
        """The labels the generator's output is judged by: under drop, the kept classes'."""
        return self.kept_y[y % DROP_KEPT] if self.active(step) and self.spec.kind == "drop" else y

    def generate(self, g: nn.Module, z: torch.Tensor, y: torch.Tensor, step: int,
                 copy_mask: torch.Tensor | None, noise: torch.Tensor | None) -> torch.Tensor:
        """``G(z, y)`` at training step ``step``, with the failure applied once it is active.

        ``copy_mask`` (bool, per row) and ``noise`` (pixel noise, per row) are used by copy.
        """
        if not self.active(step):
            return g(torch.cat([z, F.one_hot(y, 10).float()], 1))
        assert self.spec is not None
        if self.spec.kind == "collapse":
            k = torch.cdist(z, self.mode_z).argmin(1)
            z_eff = self.mode_z[k] + COLLAPSE_JITTER * z
            return g(torch.cat([z_eff, F.one_hot(self.mode_y[k], 10).float()], 1))
        if self.spec.kind == "drop":
            return g(torch.cat([z, F.one_hot(self.labels(y, step), 10).float()], 1))
        out = g(torch.cat([z, F.one_hot(y, 10).float()], 1))
        assert copy_mask is not None and noise is not None
        with torch.no_grad():
            d = torch.cdist(out, self.x_train)
            d[y[:, None] != self.y_train[None, :]] = float("inf")
            nearest = self.x_train[d.argmin(1)]
            copied = (nearest + COPY_NOISE * noise).clamp(-1, 1)
        return torch.where(copy_mask[:, None], copied, out)


# --------------------------------------------------------------------------- training


class Branch(NamedTuple):
    """A run trained as a branch of a healthy run (``train(branches=...)``): ``fail`` is
    ``collapse@STEP`` / ``drop@STEP`` / ``copy@STEP``, ``steps`` its own last step."""

    out_dir: str | os.PathLike
    fail: str
    steps: int


def _pause_checker(run_dir: Path):
    try:
        from engine.pause import evowatch_should_pause
    except ImportError:  # the trainer also runs from a bare checkout of examples/
        return lambda: (run_dir / PAUSE_FILE).exists()
    return lambda: bool(evowatch_should_pause(run_dir))


def _write_checkpoint(run_dir: Path, step: int, images: np.ndarray, labels: np.ndarray) -> Path:
    name = f"step_{step:06d}"
    tmp = run_dir / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "samples").mkdir(parents=True)
    rows = ["file,label"]
    for i, (img, label) in enumerate(zip(images, labels)):
        fname = f"{i:05d}.png"
        Image.fromarray(img, mode="L").save(tmp / "samples" / fname)
        rows.append(f"samples/{fname},{int(label)}")
    (tmp / "labels.csv").write_text("\n".join(rows) + "\n")
    return _place(tmp, run_dir / name)


def _place(tmp: Path, final: Path) -> Path:
    """Rename the written folder ``tmp`` to ``final``, replacing an earlier run's: a checkpoint is
    complete from the moment it appears, and the same command run again writes over its output."""
    if final.exists():
        shutil.rmtree(final)
    os.rename(tmp, final)
    return final


def _checkpoint_steps(steps: int, every: int) -> list[int]:
    out = list(range(every, steps + 1, every))
    if not out or out[-1] != steps:
        out.append(steps)
    return out


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def train(
    out_dir: str | os.PathLike,
    steps: int = 3000,
    every: int = 250,
    n_samples: int = 64,
    seed: int = 0,
    fail: str | None = None,
    sleep: float = 0.0,
    data_dir: str | os.PathLike | None = None,
    *,
    image_size: int = 32,
    on_pause: Literal["wait", "stop"] = "wait",
    threads: int = 1,
    verbose: bool = False,
    branches: Sequence[Branch] = (),
) -> None:
    """Train the demo GAN, writing reference sets, checkpoints and losses under ``out_dir``.

    Parameters
    ----------
    out_dir
        Output root; the run goes to ``out_dir/run`` (see the module docstring for the layout).
    steps, every
        Training steps, and the checkpoint interval (the last step is always a checkpoint).
    n_samples
        Size of the fixed-noise batch written at every checkpoint (instance ids 0..n-1).
    seed
        Seed of the model initialisation, the training noise and the fixed batch. The
        train/holdout split is fixed (seed 0) whatever this is.
    fail
        ``None`` for a healthy run, or ``"collapse@STEP"`` / ``"drop@STEP"`` / ``"copy@STEP"``.
    sleep
        Seconds to sleep after writing each checkpoint (to give a live watcher time).
    data_dir
        Where the reference sets go (default ``out_dir/data``).
    image_size
        Side of the written PNGs (bilinear upscaling of the 8x8 digits).
    on_pause
        What to do while ``run/EVOWATCH_PAUSE`` exists: ``"wait"`` until it is removed, or
        ``"stop"`` training and return.
    threads
        torch CPU threads for the run (restored afterwards). One by default: the nets are
        tiny, and on a shared 2-core machine two OpenMP threads spin-waiting against the
        watcher's process made training 7-10x slower (measured: 1,000 steps in 13-23 s with
        one thread, 109-227 s with two, under load from other processes).
    verbose
        Print a line per checkpoint on stderr.
    branches
        More runs of the same seed, each a ``Branch(out_dir, fail, steps)`` of this healthy run:
        the steps before its failure's onset are this run's (trained once, its checkpoints and
        losses copied), and it trains on from there, bit-identical to a run trained on its own
        (``benchmarks/detection.py`` trains a healthy run and its failures this way, in about
        half the steps). Its pause file is looked at from its onset on.

    Raises
    ------
    ValueError
        For a bad ``fail`` spec or out-of-range numbers.
    """
    spec = parse_fail(fail)
    for name, value, low in (("steps", steps, 1), ("every", every, 1), ("n_samples", n_samples, 1),
                             ("image_size", image_size, 8), ("threads", threads, 1)):
        if int(value) != value or value < low:
            raise ValueError(f"Expected {name} to be an integer >= {low}. Got {value!r} instead.")
    if sleep < 0:
        raise ValueError(f"Expected sleep >= 0. Got {sleep!r} instead.")
    if on_pause not in ("wait", "stop"):
        raise ValueError(f"Expected on_pause 'wait' or 'stop'. Got {on_pause!r} instead.")

    forks = [(Path(b.out_dir), parse_fail(b.fail), b.steps) for b in branches]
    for branch, (_, fork, fork_steps) in zip(branches, forks):
        if spec is not None or fork is None or fork_steps < 1 or fork.step > min(steps, fork_steps):
            raise ValueError("Expected each branch to fork a healthy run (no fail) at an onset within both runs' "
                             f"steps. Got fail={fail!r} and {branch!r} instead.")
    outs = [Path(out_dir).resolve(), *(f.resolve() for f, _, _ in forks)]
    if len(set(outs)) < len(outs):  # two runs in one folder wrote over each other's checkpoints
        raise ValueError(f"Expected each branch to write to its own OUT_DIR, apart from {out_dir} and the other "
                         f"branches'. Got {[str(b.out_dir) for b in branches]} instead.")

    out = Path(out_dir)
    # each run's OUT_DIR/data, as when trained alone (a branch's was never written)
    for folder in [Path(data_dir)] if data_dir is not None else [out / "data", *(f / "data" for f, _, _ in forks)]:
        _write_reference_sets(folder, image_size)
    run = _prepare(out, steps, every, n_samples, seed, image_size, spec)
    branch_runs = [(_prepare(fork_out, fork_steps, every, n_samples, seed, image_size, fork), max(fork.step, 1))
                   for fork_out, fork, fork_steps in forks]

    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            _train_loop(run, n_samples, seed, sleep, image_size, on_pause, verbose, branch_runs)
    finally:
        torch.set_num_threads(old_threads)


@dataclass
class _Run:
    """What one run trains and where it writes: the healthy run, or a branch from its onset on."""

    run_dir: Path
    steps: int
    checkpoints: set[int]
    fail: FailSpec | None
    should_pause: Callable[[], bool]


def _prepare(out: Path, steps: int, every: int, n_samples: int, seed: int, image_size: int,
             spec: FailSpec | None) -> _Run:
    run_dir = out / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    planned = _checkpoint_steps(steps, every)
    (run_dir / "demo.json").write_text(json.dumps({
        "steps": steps, "every": every, "n_samples": n_samples, "seed": seed,
        "image_size": image_size,
        "fail": None if spec is None else {"kind": spec.kind, "step": spec.step},
        "checkpoints": planned,
    }) + "\n")
    return _Run(run_dir, steps, set(planned), spec, _pause_checker(run_dir))


def _train_loop(run: _Run, n_samples, seed, sleep, image_size, on_pause, verbose,
                branches: list[tuple[_Run, int]]) -> None:
    """Train ``run`` from step 1; each branch ``(run, onset)`` takes a copy of the state at the
    start of its onset step and is then trained on its own."""
    x_tr, y_tr, _, _, _, _ = load_split()
    x_train, y_train = torch.from_numpy(x_tr), torch.from_numpy(y_tr)
    gen = torch.Generator().manual_seed(seed)
    g, d = _generator(), _discriminator()
    opt_g = torch.optim.Adam(g.parameters(), LR, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), LR, betas=(0.5, 0.999))
    draws = _Failure(None, x_train, y_train, gen)  # drawn for every run, so every run has the same
    fixed = (torch.randn(n_samples, Z_DIM, generator=gen), torch.arange(n_samples) % 10,
             torch.rand(n_samples, generator=gen) < COPY_FRACTION)
    state = {"models": (g, d, opt_g, opt_d), "gen": gen, "windows": ([], []), "losses": ""}
    snapshots = []

    def snapshot(step: int, state: dict) -> None:  # a branch starts from the state at the start of its onset step
        for branch in (branch for branch, onset in branches if onset == step):
            for name in (f"step_{s:06d}" for s in sorted(run.checkpoints) if s < step):  # this run's, not a folder's leftovers
                tmp = branch.run_dir / f".{name}.tmp"
                shutil.rmtree(tmp, ignore_errors=True)
                shutil.copytree(run.run_dir / name, tmp)
                _place(tmp, branch.run_dir / name)
            copied = copy.deepcopy({"models": state["models"], "windows": state["windows"]})
            copied["gen"] = torch.Generator().set_state(state["gen"].get_state())
            copied["losses"] = (run.run_dir / "losses.jsonl").read_text(encoding="utf-8")  # flushed at each line
            snapshots.append((branch, step, copied, torch.get_rng_state()))

    _run_steps(run, 1, state, draws.with_spec(run.fail), fixed, x_train, y_train, n_samples, seed, sleep,
               image_size, on_pause, verbose, snapshot)
    for branch, onset in branches:
        if not any(taken is branch for taken, *_ in snapshots):  # on_pause="stop" before its onset: said, not silent
            _log(f"demo_trainer: {branch.run_dir} not trained: {run.run_dir} stopped before its onset, step {onset}; "
                 f"delete {run.run_dir / PAUSE_FILE} and run the same command again")
    for branch, step, branch_state, rng in snapshots:
        torch.set_rng_state(rng)  # dropout's stream
        _run_steps(branch, step, branch_state, draws.with_spec(branch.fail), fixed, x_train, y_train, n_samples,
                   seed, sleep, image_size, on_pause, verbose, lambda *_: None)


def _run_steps(run: _Run, first: int, state: dict, failure: _Failure, fixed, x_train, y_train, n_samples, seed, sleep, image_size,
               on_pause, verbose, before_step) -> None:
    g, d, opt_g, opt_d = state["models"]
    gen, (window_d, window_g) = state["gen"], state["windows"]
    fixed_z, fixed_y, fixed_copy = fixed
    real_target = torch.full((BATCH, 1), 0.9)
    fake_target = torch.zeros(BATCH, 1)
    ones = torch.ones(BATCH, 1)

    t0 = time.perf_counter()
    with open(run.run_dir / "losses.jsonl", "w", encoding="utf-8") as losses:
        losses.write(state["losses"])
        for step in range(first, run.steps + 1):
            before_step(step, state)
            if run.should_pause():
                _log(f"demo_trainer: {run.run_dir / PAUSE_FILE} exists: "
                     + ("waiting until it is removed" if on_pause == "wait" else "stopping")
                     + f" (at step {step - 1})")
                if on_pause == "stop":
                    return
                while run.should_pause():
                    time.sleep(PAUSE_POLL_S)
                _log("demo_trainer: pause file removed, resuming")

            i = torch.randint(0, len(x_train), (BATCH,), generator=gen)
            xr, yr = x_train[i], y_train[i]
            z = torch.randn(BATCH, Z_DIM, generator=gen)
            yg = torch.randint(0, 10, (BATCH,), generator=gen)
            # Drawn at every step so that a failure does not shift the healthy random stream.
            copy_mask = torch.rand(BATCH, generator=gen) < COPY_FRACTION
            noise = torch.randn(BATCH, 64, generator=gen)
            xf = failure.generate(g, z, yg, step, copy_mask, noise)
            yg1 = F.one_hot(failure.labels(yg, step), 10).float()

            loss_d = (
                F.binary_cross_entropy_with_logits(d(torch.cat([xr, F.one_hot(yr, 10).float()], 1)), real_target)
                + F.binary_cross_entropy_with_logits(d(torch.cat([xf.detach(), yg1], 1)), fake_target)
            )
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            loss_g = F.binary_cross_entropy_with_logits(d(torch.cat([xf, yg1], 1)), ones)
            opt_g.zero_grad(set_to_none=True)
            if xf.requires_grad:
                loss_g.backward()
                opt_g.step()

            window_d.append(loss_d.item())
            window_g.append(loss_g.item())
            if step % LOG_EVERY == 0 or step == run.steps:
                losses.write(json.dumps({
                    "step": step,
                    "loss_d": round(float(np.mean(window_d)), 6),
                    "loss_g": round(float(np.mean(window_g)), 6),
                }) + "\n")
                losses.flush()
                window_d.clear()
                window_g.clear()

            if step in run.checkpoints:
                ck_gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
                ck_noise = torch.randn(n_samples, 64, generator=ck_gen)
                g.eval()
                with torch.no_grad():
                    x = failure.generate(g, fixed_z, fixed_y, step, fixed_copy, ck_noise)
                g.train()
                path = _write_checkpoint(run.run_dir, step, to_uint8_images(x, image_size), fixed_y.numpy())
                if verbose:
                    _log(f"step {step}: loss_d={loss_d.item():.3f} loss_g={loss_g.item():.3f} "
                         f"-> {path} ({time.perf_counter() - t0:.1f} s)")
                if sleep:
                    time.sleep(sleep)


def left_behind(*run_dirs: Path) -> str:
    """What runs stopped by Ctrl-C (while paused too) leave, each named (a branch's folder keeps the healthy
    run's checkpoints before its onset and its own), and how to go on: no weights are saved, so the same
    command starts over; a pause file left there would hold it at once."""
    kept = []
    for run_dir in run_dirs:
        written = sorted(path.name for path in run_dir.glob("step_*") if path.is_dir())
        kept.append(f"{run_dir} keeps checkpoints up to {written[-1]} and losses.jsonl" if written else
                    f"no checkpoint written in {run_dir}")
    paused = [str(run_dir / PAUSE_FILE) for run_dir in run_dirs if _pause_checker(run_dir)()]
    waits = "its run waits at the first step it trains, a branch's onset" if len(run_dirs) > 1 else "it waits at its first step"
    note = f" (delete {' and '.join(paused)} first, or {waits})" if paused else ""
    return f"{'; '.join(kept)}; no weights are saved: the same command trains again from step 1{note}"


def _branch_arg(out: str, fail: str, steps: str) -> Branch:
    """A ``--branch OUT FAIL STEPS`` (int() said only "invalid literal for int() with base 10: 'x'")."""
    if not steps.strip().isdigit():
        raise ValueError(f"--branch {out} {fail} {steps}: STEPS is the branch's last step, a whole number "
                         f"(e.g. --branch {out} {fail} {DEFAULT_STEPS})")
    return Branch(out, fail, int(steps))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m examples.demo_trainer",
        description="Train a small conditional GAN on scikit-learn's digits, writing a checkpoint "
                    "folder of fixed-noise samples every N steps (see the module docstring).",
    )
    p.add_argument("out_dir", help="output root (OUT_DIR/run, OUT_DIR/data)")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    p.add_argument("--every", type=int, default=250, help="checkpoint interval in steps")
    p.add_argument("--n-samples", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fail", default=None, help="collapse@STEP, drop@STEP or copy@STEP (default: healthy)")
    p.add_argument("--sleep", type=float, default=0.0, help="seconds to sleep after each checkpoint")
    p.add_argument("--data-dir", default=None, help="where the reference sets go (default OUT_DIR/data)")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--on-pause", choices=("wait", "stop"), default="wait")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (1: the nets are tiny, and more threads spin-wait "
                        "badly when the CPU is shared with the watcher)")
    p.add_argument("--branch", nargs=3, action="append", default=[], metavar=("OUT_DIR", "FAIL", "STEPS"),
                   help="also train OUT_DIR as this healthy run's branch at FAIL's onset (repeatable)")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--no-stop-line", action="store_true",
                   help="no line on Ctrl-C saying what the run keeps (evowatch demo says its own)")
    a = p.parse_args(argv)
    runs = [Path(out) / "run" for out in (a.out_dir, *(branch[0] for branch in a.branch))]
    try:
        train(a.out_dir, steps=a.steps, every=a.every, n_samples=a.n_samples, seed=a.seed,
              fail=a.fail, sleep=a.sleep, data_dir=a.data_dir, image_size=a.image_size,
              on_pause=a.on_pause, threads=a.threads, verbose=not a.quiet,
              branches=[_branch_arg(*branch) for branch in a.branch])
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # one line, as evowatch's own commands say it, not a silent 130
        if not a.no_stop_line:
            print(f"demo_trainer: interrupted; {left_behind(*runs)}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
