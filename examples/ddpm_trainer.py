"""lucidrains' ``denoising-diffusion-pytorch`` ``Trainer``, watched as it is, unchanged.

Every ``save_and_sample_every`` steps its ``Trainer`` writes, in ``results_folder``::

    sample-{milestone}.png   a grid of num_samples images (sqrt(num_samples) per row, padding 2)
    model-{milestone}.pt     {"step", "model", "opt", "ema", "scaler", "version"}

where ``milestone = step // save_and_sample_every`` (evowatch's "step" is the milestone).
Two ways to watch it::

    # the grids it already writes (random noise each time: tile k is not the same instance)
    evowatch watch results --store grids.zarr
    # or sample the saved weights with fixed noise (instance ids align across milestones)
    evowatch watch results --store weights.zarr --sampler examples.ddpm_trainer:sample_milestone

:func:`sample_milestone` rebuilds the model with the same :func:`build_diffusion` settings
the run used, loads the EMA weights with ``weights_only`` loading (the file holds tensors
and plain values only, so no ``--trust-checkpoints``) and samples with the seed evowatch gives.

Run the example (CPU, offline, scikit-learn's digits as a folder of 16 px PNGs)::

    python -m examples.ddpm_trainer OUT_DIR [--steps 20] [--every 4] [--num-samples 9]
"""
from __future__ import annotations

import argparse
import functools
import os
from pathlib import Path
from unittest import mock

import numpy as np
import torch

#: The tiny configuration shared by training and :func:`sample_milestone` (change both together).
CONFIG = {"dim": 8, "dim_mults": (1, 2), "image_size": 16, "channels": 3, "timesteps": 20}


def build_diffusion(config: dict | None = None):
    """A small ``Unet`` inside ``GaussianDiffusion`` (the library's classes, default losses)."""
    from denoising_diffusion_pytorch import GaussianDiffusion, Unet

    c = {**CONFIG, **(config or {})}
    unet = Unet(dim=c["dim"], dim_mults=c["dim_mults"], channels=c["channels"], flash_attn=False)
    return GaussianDiffusion(unet, image_size=c["image_size"], timesteps=c["timesteps"],
                             sampling_timesteps=c["timesteps"])


def write_digits(folder: Path, size: int = 16, limit: int = 200) -> Path:
    """scikit-learn's handwritten digits as RGB PNGs: the ``Trainer`` wants a folder of images (>= 100)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    folder.mkdir(parents=True, exist_ok=True)
    for i, digit in enumerate(load_digits().images[:limit]):
        gray = Image.fromarray((digit * 255 / 16).astype(np.uint8)).resize((size, size), Image.Resampling.BILINEAR)
        gray.convert("RGB").save(folder / f"{i:05d}.png")
    return folder


def train(out_dir: str | os.PathLike[str], steps: int = 20, every: int = 4, num_samples: int = 9, seed: int = 0) -> Path:
    """Train for ``steps`` steps with the library's ``Trainer``; returns its results folder."""
    from denoising_diffusion_pytorch import Trainer

    torch.manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only contend
    out = Path(out_dir)
    data = write_digits(out / "data")
    trainer = Trainer(build_diffusion(), str(data), train_batch_size=16, train_lr=1e-3, train_num_steps=steps,
                      save_and_sample_every=every, num_samples=num_samples, results_folder=str(out / "results"),
                      amp=False, calculate_fid=False, augment_horizontal_flip=False)
    # Its DataLoader uses num_workers=cpu_count(); worker processes only slow a tiny run down.
    trainer.dl = _cycle(torch.utils.data.DataLoader(trainer.ds, batch_size=16, shuffle=True, num_workers=0))
    try:
        trainer.train()
    finally:
        torch.set_num_threads(threads)
    return out / "results"


def _cycle(loader):
    while True:
        yield from loader


def sample_milestone(checkpoint_path: str, n_samples: int, seed: int, device: str = "cpu") -> torch.Tensor:
    """``--sampler`` function for the ``model-{milestone}.pt`` files this run writes.

    evowatch seeds torch's global generator with ``seed`` before the call (the library's
    ``sample`` draws its noise from it), so every milestone starts from the same noise.
    """
    import denoising_diffusion_pytorch.denoising_diffusion_pytorch as library
    from ema_pytorch import EMA

    from engine.sampler import load_checkpoint

    data = load_checkpoint(checkpoint_path, map_location="cpu")
    diffusion = build_diffusion()
    ema = EMA(diffusion)  # the Trainer's wrapper, to read its state dict as saved
    ema.load_state_dict(data["ema"])
    model = ema.ema_model.to(device).eval()
    torch.manual_seed(seed)
    # the library's progress bar, one per checkpoint, flooded the watch's stderr (-q too)
    quiet = functools.partial(library.tqdm, disable=True)
    with torch.inference_mode(), mock.patch.object(library, "tqdm", quiet):
        return model.sample(batch_size=n_samples)  # (N, 3, H, W) in [0, 1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--every", type=int, default=4, help="save_and_sample_every")
    parser.add_argument("--num-samples", type=int, default=9, help="a square number")
    args = parser.parse_args(argv)
    print(train(args.out_dir, args.steps, args.every, args.num_samples))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
