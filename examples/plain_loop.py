"""A plain PyTorch training loop, the five lines that make evowatch see it, and the one that
lets ``evowatch watch --pause-on-alert`` pause it.

The lines marked ``# evowatch`` are all a hand-written loop needs::

    from engine.hooks import save_samples                                         # evowatch
    fixed_z = torch.randn(64, Z, generator=torch.Generator().manual_seed(0))      # evowatch
    ...
        if step % every == 0:                                                     # evowatch
            with torch.no_grad():                                                 # evowatch
                save_samples(run_dir, step, G(fixed_z), latents=fixed_z, value_range=(-1, 1))  # evowatch

and, for ``--pause-on-alert``, at the top of each step (it returns at once unless evowatch wrote
``RUN_DIR/EVOWATCH_PAUSE``; delete the file to resume)::

    from engine.pause import wait_if_paused                                       # evowatch
        wait_if_paused(run_dir)                                                   # evowatch

Under ``torchrun`` every rank calls ``gate.wait()`` there instead, ``gate = PauseGate(run_dir)``
made once: all ranks then pause at the same step.

Each call writes ``RUN_DIR/samples_{step:08d}.npz`` (``images``, ``latents``, optional
``labels``) atomically; row ``i`` is instance ``i`` because the noise is fixed. Watch it::

    evowatch watch RUN_DIR --store run.zarr

This example trains a small MLP GAN on scikit-learn's digits (CPU, offline, a minute at
most) and labels each sample with the digit whose training mean it is nearest to, so the
label shares per step show modes appearing or dropping out. It also appends
``{"step", "loss_d", "loss_g"}`` lines to ``RUN_DIR/losses.jsonl``, which evowatch reads as
the loss curves::

    python -m examples.plain_loop RUN_DIR [--steps 300] [--every 30]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from engine.hooks import save_samples  # evowatch
from engine.pause import evowatch_should_pause, pause_path, wait_if_paused  # evowatch

Z, SIZE = 16, 16


def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's digits as (N, SIZE*SIZE) floats in [-1, 1], and their labels."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.from_numpy(data.images).float().unsqueeze(1) / 8.0 - 1.0
    x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    return x.flatten(1), torch.from_numpy(data.target)


def train(run_dir: str | os.PathLike[str], steps: int = 300, every: int = 30, n_samples: int = 64, seed: int = 0) -> Path:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only contend
    torch.manual_seed(seed)
    x, y = digits()
    class_means = torch.stack([x[y == k].mean(0) for k in range(10)])
    G = nn.Sequential(nn.Linear(Z, 128), nn.ReLU(), nn.Linear(128, SIZE * SIZE), nn.Tanh())
    D = nn.Sequential(nn.Linear(SIZE * SIZE, 128), nn.LeakyReLU(0.2), nn.Linear(128, 1))
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))
    fixed_z = torch.randn(n_samples, Z, generator=torch.Generator().manual_seed(seed))  # evowatch
    try:
        with open(run_dir / "losses.jsonl", "a") as log:
            for step in range(1, steps + 1):
                wait_if_paused(run_dir)  # evowatch: blocks while RUN_DIR/EVOWATCH_PAUSE exists
                real = x[torch.randint(len(x), (64,))]
                fake = G(torch.randn(64, Z))
                loss_d = (F.binary_cross_entropy_with_logits(D(real), torch.full((64, 1), 0.9))
                          + F.binary_cross_entropy_with_logits(D(fake.detach()), torch.zeros(64, 1)))
                opt_d.zero_grad()
                loss_d.backward()
                opt_d.step()
                loss_g = F.binary_cross_entropy_with_logits(D(fake), torch.ones(64, 1))
                opt_g.zero_grad()
                loss_g.backward()
                opt_g.step()
                log.write(json.dumps({"step": step, "loss_d": loss_d.item(), "loss_g": loss_g.item()}) + "\n")
                if step % every == 0 or step == steps:  # evowatch
                    with torch.no_grad():  # evowatch
                        samples = G(fixed_z)
                        nearest = torch.cdist(samples, class_means).argmin(1)  # optional: a label per sample
                        save_samples(run_dir, step, samples.view(-1, 1, SIZE, SIZE), labels=nearest,  # evowatch
                                     latents=fixed_z, value_range=(-1, 1))
                    log.flush()
    finally:
        torch.set_num_threads(threads)
    return run_dir


def left_behind(run_dir: Path) -> str:
    """What a run stopped by Ctrl-C (while paused too) leaves, and how to go on: this loop saves no
    weights, so the same command starts again; a pause file left there would hold it at once."""
    saved = sorted(run_dir.glob("samples_*.npz"))
    kept = f"{run_dir} keeps samples up to {saved[-1].name} and losses.jsonl" if saved else f"no samples saved in {run_dir}"
    paused = f" (delete {pause_path(run_dir)} first, or it waits at its first step)" if evowatch_should_pause(run_dir) else ""
    return f"{kept}; no weights are saved: the same command trains again from step 1{paused}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--every", type=int, default=30)
    args = parser.parse_args(argv)
    try:
        print(train(args.run_dir, args.steps, args.every))
    except KeyboardInterrupt:  # one line, as evowatch's own commands say it, not a traceback
        print(f"plain_loop: interrupted; {left_behind(args.run_dir)}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
