"""PyTorch Lightning: a callback that writes a fixed-noise sample batch evowatch reads.

Add the callback to your ``Trainer``; your ``LightningModule`` needs one method,
``sample(n, generator)``, that draws ``n`` samples from noise made with ``generator``::

    from examples.lightning_callback import EvowatchSamples
    trainer = L.Trainer(callbacks=[EvowatchSamples(every_n_steps=500, n_samples=64, seed=0)])

Every ``every_n_steps`` optimizer steps it writes (rank 0 only)::

    <trainer.log_dir>/samples/step_0000500/samples/00000.png ... 00063.png

into a hidden ``.step_0000500.tmp`` folder first, renamed into place when complete. The
generator is re-seeded with ``seed`` every time, so file ``00007.png`` comes from the same
noise at every step (evowatch's instance id 7). Watch it with::

    evowatch watch lightning_logs/version_0 --store run.zarr

(the ``metrics.csv`` of Lightning's ``CSVLogger`` there gives the loss curves). With
``--pause-on-alert`` the callback pauses training before a batch (within a second or two; under
DDP every rank at the same batch) while evowatch's ``EVOWATCH_PAUSE`` file is in the log folder or
the checkpoint folder (delete it to resume); :class:`EvowatchPause` alone does that for runs
without the sample callback.

Weight-only runs (``ModelCheckpoint`` alone) are sampled after the fact instead::

    evowatch watch lightning_logs/version_0/checkpoints --store run.zarr \\
        --sampler examples.lightning_callback:sample_checkpoint

:func:`sample_checkpoint` is that sampler for the small VAE below; write yours the same way.
Lightning checkpoints hold only tensors and plain values when the module's hyper-parameters
are plain, so ``weights_only`` loading (the default) reads them; if yours pickle objects,
``--trust-checkpoints`` allows it (it runs code from the file: only for your own runs).

Run the example (CPU, offline, scikit-learn's digits)::

    python -m examples.lightning_callback OUT_DIR [--steps 200] [--every 20] [--checkpoint-every 20]
"""
from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from PIL import Image
from torch import nn
from torch.nn import functional as F

from engine.pause import PauseGate


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) floats in [-1, 1] to (N, H, W, C) uint8."""
    array = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return array.permute(0, 2, 3, 1).numpy()


class EvowatchPause(Callback):
    """Pause training before a batch while ``evowatch watch --pause-on-alert`` asks for it.

    The trainer sleeps (no GPU work) while ``EVOWATCH_PAUSE`` exists in ``run_dir``, by default
    in each folder the examples watch: ``trainer.log_dir`` and the ``ModelCheckpoint`` folder
    (``--sampler`` runs). Under DDP every rank pauses at the same batch: rank 0 looks for the file
    about every ``check_every_s`` seconds and the strategy's broadcast gives every rank its answer
    (:class:`engine.pause.PauseGate`, which plain torch.distributed loops use too).
    """

    def __init__(self, run_dir: str | os.PathLike[str] | None = None, poll_s: float = 5.0,
                 check_every_s: float = 1.0) -> None:
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.poll_s, self.check_every_s = poll_s, check_every_s
        self._gate: PauseGate | None = None

    def _pause_dirs(self, trainer: L.Trainer) -> list[Path]:
        if self.run_dir is not None:
            return [self.run_dir]
        checkpoints = getattr(trainer.checkpoint_callback, "dirpath", None)
        return [Path(d) for d in (trainer.log_dir, checkpoints) if d]

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        def share(look):  # rank 0 looks; the strategy's broadcast works beyond torch.distributed (XLA)
            return trainer.strategy.broadcast(look() if trainer.is_global_zero else None, src=0)

        # trainer.log_dir is a broadcast under DDP: read here, where every rank calls it, not per batch
        self._gate = PauseGate(self._pause_dirs(trainer), self.check_every_s, self.poll_s,
                               share if trainer.world_size > 1 else None)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        if self._gate is not None:
            self._gate.wait()


class EvowatchSamples(EvowatchPause):
    """Save ``n_samples`` images from fixed noise every ``every_n_steps`` steps.

    Parameters
    ----------
    every_n_steps
        Optimizer steps (``trainer.global_step``) between two sample batches: at the first step
        at or past each multiple (two optimizers step it by 2: 25 gives 26, 50, 76, 100).
    n_samples
        Images per batch; their file index is the instance id.
    seed
        Seeds the ``torch.Generator`` passed to ``pl_module.sample`` (same noise every time).
    dirpath
        Where the step folders go; default ``<trainer.log_dir>/samples``.
    pause_dir
        The folder evowatch watches, whose ``EVOWATCH_PAUSE`` pauses training
        (:class:`EvowatchPause`); default the log and checkpoint folders.
    """

    def __init__(self, every_n_steps: int = 500, n_samples: int = 64, seed: int = 0,
                 dirpath: str | os.PathLike[str] | None = None,
                 pause_dir: str | os.PathLike[str] | None = None) -> None:
        super().__init__(pause_dir)
        if every_n_steps < 1 or n_samples < 1:
            raise ValueError(f"Expected every_n_steps >= 1 and n_samples >= 1. Got {every_n_steps}, {n_samples} instead.")
        self.every_n_steps, self.n_samples, self.seed = every_n_steps, n_samples, seed
        self.dirpath = Path(dirpath) if dirpath is not None else None
        self._done = 0  # multiples of every_n_steps sampled (a GAN's two optimizers step global_step by 2)
        self._out: Path | None = None

    def _folder(self, trainer: L.Trainer) -> Path:
        return self.dirpath or Path(trainer.log_dir or trainer.default_root_dir) / "samples"

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._done = trainer.global_step // self.every_n_steps  # a resumed run: those are written
        self._out = self._folder(trainer)  # on every rank: read on rank 0 alone, DDP hung at the first sample

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        step = trainer.global_step  # the first step at or past each multiple: it may skip the multiple itself
        if step // self.every_n_steps <= self._done or not trainer.is_global_zero:
            return
        self._done = step // self.every_n_steps
        generator = torch.Generator(device=pl_module.device).manual_seed(self.seed)
        was_training = pl_module.training
        pl_module.eval()
        with torch.no_grad():
            images = to_uint8(pl_module.sample(self.n_samples, generator))
        pl_module.train(was_training)
        folder = self._out or self._folder(trainer)
        final = folder / f"step_{step:07d}"
        tmp = folder / f".step_{step:07d}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "samples").mkdir(parents=True)
        for i, image in enumerate(images):
            Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).save(tmp / "samples" / f"{i:05d}.png")
        if final.exists():  # a resumed run writes the step again
            shutil.rmtree(final)
        os.rename(tmp, final)  # complete from the moment it appears


# --- a small model to show it on ------------------------------------------------------------

class DigitsVAE(L.LightningModule):
    """A small MLP VAE on scikit-learn's 8x8 digits, upscaled to ``size`` px, in [-1, 1]."""

    def __init__(self, latent_dim: int = 8, hidden: int = 128, size: int = 16, lr: float = 2e-3) -> None:
        super().__init__()
        self.save_hyperparameters()
        pixels = size * size
        self.encoder = nn.Sequential(nn.Linear(pixels, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent_dim))
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, pixels), nn.Tanh())

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        size = self.hparams.size
        return self.decoder(z).view(-1, 1, size, size)

    def noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(n, self.hparams.latent_dim, generator=generator, device=generator.device)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """What :class:`EvowatchSamples` calls: ``n`` images from noise drawn with ``generator``."""
        return self.decode(self.noise(n, generator))

    def training_step(self, batch, batch_idx):
        (x,) = batch
        flat = x.flatten(1)
        mu, logvar = self.encoder(flat).chunk(2, dim=1)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        recon = F.mse_loss(self.decoder(z), flat, reduction="sum") / len(x)
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / len(x)
        loss = recon + kl
        self.log_dict({"loss": loss, "recon": recon, "kl": kl})
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def digits(size: int = 16) -> torch.Tensor:
    """scikit-learn's 1,797 handwritten digits as (N, 1, size, size) floats in [-1, 1]."""
    from sklearn.datasets import load_digits

    x = torch.from_numpy(load_digits().images).float().unsqueeze(1) / 8.0 - 1.0
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def train(out_dir: str | os.PathLike[str], steps: int = 200, every: int = 20, n_samples: int = 64,
          checkpoint_every: int | None = None, seed: int = 0, callback: bool = True) -> Path:
    """Train the VAE; returns the log folder (``OUT_DIR/lightning_logs/version_N``)."""
    L.seed_everything(seed, verbose=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only contend
    model = DigitsVAE()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(digits(model.hparams.size)),
                                         batch_size=64, shuffle=True, num_workers=0)
    callbacks: list[Callback] = [EvowatchSamples(every_n_steps=every, n_samples=n_samples, seed=seed) if callback
                                 else EvowatchPause()]
    if checkpoint_every:
        callbacks.append(ModelCheckpoint(every_n_train_steps=checkpoint_every, save_top_k=-1, save_last=False))
    trainer = L.Trainer(default_root_dir=str(out_dir), max_steps=steps, accelerator="cpu", devices=1,
                        logger=CSVLogger(str(out_dir)), callbacks=callbacks, log_every_n_steps=5,
                        enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=bool(checkpoint_every))
    try:
        trainer.fit(model, loader)
    finally:
        torch.set_num_threads(threads)
    return Path(trainer.log_dir)


# --- the sampler for weight-only runs (evowatch --sampler) --------------------------------------

def sample_checkpoint(checkpoint_path: str, n_samples: int, seed: int, device: str = "cpu") -> dict[str, torch.Tensor]:
    """``--sampler`` function for :class:`DigitsVAE` checkpoints (``epoch=0-step=20.ckpt``).

    Rebuilds the model from the checkpoint's hyper-parameters, loads its weights safely
    (``weights_only`` unless evowatch runs with ``--trust-checkpoints``) and decodes noise
    drawn from a generator seeded with ``seed``: row ``i`` gets the same noise at every step.
    The noise is returned as ``latents``, so the store keeps it next to each sample.
    """
    from engine.sampler import load_checkpoint

    checkpoint = load_checkpoint(checkpoint_path, map_location="cpu")
    model = DigitsVAE(**checkpoint["hyper_parameters"])
    model.load_state_dict(checkpoint["state_dict"])
    model.to(device).eval()
    generator = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        z = model.noise(n_samples, generator)
        return {"images": model.decode(z), "latents": z}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--every", type=int, default=20, help="sample batch every N steps")
    parser.add_argument("--n-samples", type=int, default=64)
    parser.add_argument("--checkpoint-every", type=int, default=None, help="also save weights every N steps")
    parser.add_argument("--no-callback", action="store_true", help="weights only (sample them with --sampler)")
    args = parser.parse_args(argv)
    log_dir = train(args.out_dir, args.steps, args.every, args.n_samples, args.checkpoint_every,
                    callback=not args.no_callback)
    print(log_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
