"""The one call a hand-written training loop needs: :func:`save_samples`.

::

    from engine.hooks import save_samples

    fixed_z = torch.randn(64, latent_dim, generator=torch.Generator().manual_seed(0))
    for step in range(steps):
        ...  # train
        if step % 500 == 0:
            with torch.no_grad():
                save_samples("runs/exp42", step, G(fixed_z), latents=fixed_z)

and ``evowatch watch runs/exp42 --store exp42.zarr``. Only numpy is imported here; torch
tensors are converted through their ``numpy()`` method.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import numpy as np


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, on any device
        value = value.detach().float().cpu() if str(value.dtype) == "torch.bfloat16" else value.detach().cpu()
        return value.numpy()
    return np.asarray(value)


def _as_uint8(array: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    lo, hi = value_range
    return np.clip(np.rint((array.astype(np.float32) - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)


def _plain(extra: np.ndarray, name: str) -> np.ndarray:
    """Labels or latents as a plain numpy array: ``np.savez`` pickles an object array (a list
    holding ``None``, a pandas column's values), and evowatch refuses to unpickle a file."""
    if extra.dtype != object:
        return extra
    if name == "labels":
        return np.array(["" if value is None else str(value) for value in extra])
    raise ValueError(f"Expected {name} as numbers. Got Python objects ({type(extra[0]).__name__}) instead.")


def save_samples(run_dir: str | os.PathLike[str], step: int, images: Any, labels: Any = None,
                 latents: Any = None, value_range: tuple[float, float] | None = None) -> Path:
    """Write one step's samples as ``RUN_DIR/samples_{step:08d}.npz``, atomically.

    Parameters
    ----------
    run_dir
        The folder evowatch watches (created if missing).
    step
        The training step; one file per step (a second call for a step replaces it).
    images
        (N, C, H, W) or (N, H, W, C) images, torch or numpy: floats in ``value_range`` or
        uint8. Row ``i`` is instance ``i``: draw them from the same fixed noise every time.
    labels
        Optional (N,) labels (class ids or strings), stored as ``labels``; ``None`` among
        strings is stored as ``""``.
    latents
        Optional (N, ...) noise or features per sample, stored as ``latents``.
    value_range
        The float images' range, e.g. ``(-1, 1)`` for a tanh output: they are stored as uint8
        (as the floats given, their range beside them as ``value_range``, when some value is
        NaN or infinite: evowatch leaves those samples out and says so). ``None``: evowatch infers it per file
        (any negative value means [-1, 1], else [0, 1]), which misreads a [-1, 1] batch that
        happens to hold no negative value; pass it when you know it.

    Returns
    -------
    Path
        The file written.
    """
    if int(step) < 0:  # samples_-0000001.npz reads as step 1; step -1 is the reference's rows
        raise ValueError(f"Expected a training step of 0 or more. Got {step} instead.")
    array = _numpy(images)
    arrays: dict[str, np.ndarray] = {}
    if value_range is not None and array.dtype != np.uint8:
        if np.isfinite(array).all():
            array = _as_uint8(array, value_range)
        else:  # uint8 made NaN black and inf white: kept, for the reader to leave those samples out, said
            arrays["value_range"] = np.asarray(value_range, np.float32)
    if array.ndim != 4:
        raise ValueError(f"Expected images as a (N, C, H, W) or (N, H, W, C) batch. Got shape {array.shape} instead.")
    arrays["images"] = array
    for name, extra in (("labels", labels), ("latents", latents)):
        if extra is not None:
            extra = _numpy(extra)
            if len(extra) != len(array):
                raise ValueError(f"Expected {len(array)} {name}, one per image. Got {len(extra)} instead.")
            arrays[name] = _plain(extra, name)
    folder = Path(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"samples_{int(step):08d}.npz"
    # hidden: never scanned; made with the umask's mode (mkstemp's 0600 stayed on the file, and a
    # watch running as another user could not read it)
    tmp = folder / f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, final)  # readers see the whole file or none of it
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return final
