"""Synthetic samples and trainer-style grids for the discovery, grid and decode tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def smooth_images(rng: np.random.Generator, n: int, size: int, width: int | None = None) -> np.ndarray:
    """``n`` distinct low-frequency RGB images (N, size, width or size, 3) uint8, like a GAN's samples."""
    coarse = rng.integers(0, 256, size=(n, 4, 4, 3), dtype=np.uint8)
    return np.stack([np.asarray(Image.fromarray(c).resize((width or size, size), Image.BILINEAR)) for c in coarse])


def digit_like(rng: np.random.Generator, size: int = 28) -> np.ndarray:
    """A white stroke figure on black, centred like an MNIST digit (H, W, 3) uint8."""
    image = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(image)
    m = size // 5
    kind = int(rng.integers(0, 3))
    width = max(2, size // 10)
    if kind == 0:  # a "0"
        draw.ellipse([m + 2, m, size - m - 2, size - m], outline=255, width=width)
    elif kind == 1:  # a "1", a thin vertical stroke a little off centre
        x = size // 2 + int(rng.integers(-2, 3))
        draw.line([(x, m), (x, size - m)], fill=255, width=width)
    else:  # a "7"
        draw.line([(m, m), (size - m, m), (m + 2, size - m)], fill=255, width=width)
    return np.repeat(np.asarray(image)[:, :, None], 3, axis=2)


def digit_images(rng: np.random.Generator, n: int, size: int = 28) -> np.ndarray:
    return np.stack([digit_like(rng, size) for _ in range(n)])


def save_torchvision_grid(images: np.ndarray, path: Path, nrow: int = 8, padding: int = 2,
                          pad_value: float = 0.0) -> Path:
    """Write NHWC uint8 images as the trainers do: ``torchvision.utils.save_image``."""
    import torch  # here: importing torch and torchvision costs seconds, and smooth_images users need neither
    from torchvision.utils import save_image

    tensor = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(tensor, str(path), nrow=nrow, padding=padding, pad_value=pad_value)
    return path


def stylegan_grid(images: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """StyleGAN2-ADA ``save_image_grid``: no padding, row-major."""
    n, h, w, c = images.shape
    assert n == rows * cols
    return images.reshape(rows, cols, h, w, c).transpose(0, 2, 1, 3, 4).reshape(rows * h, cols * w, c)


def matplotlib_grid(images: np.ndarray, path: Path, layout: str = "tf_dcgan", caption: str = "",
                    title: str = "") -> Path:
    """Write (N, H, W) gray samples as a matplotlib figure of subplots, axes off: the
    TensorFlow DCGAN tutorial's ``generate_and_save_images`` (``plt.figure(figsize=(4, 4))``,
    4x4 ``plt.subplot``), ``plt.subplots(4, 4)`` with ``tight_layout``, Keras-GAN's
    ``sample_images`` (5x5 ``plt.subplots`` at the default figure size), or 5x5 subplots
    holding fewer samples (the rest of the axes left empty); a ``caption`` under the
    subplots as znxlwm's GANs write ``fig.text(0.5, 0.04, 'Epoch 3')``, a ``title`` over them."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, cols = (5, 5) if layout in ("keras_gan", "partial") else (4, 4)
    fig = plt.figure(figsize=(4, 4)) if layout == "tf_dcgan" else plt.subplots(rows, cols, figsize=(
        (5, 5) if layout == "partial" else None))[0]
    for i in range(rows * cols):
        ax = plt.subplot(rows, cols, i + 1) if layout == "tf_dcgan" else fig.axes[i]
        if i < len(images):
            ax.imshow(images[i] * 127.5 + 127.5, cmap="gray")
        ax.axis("off")
    if layout == "tight":
        fig.tight_layout()
    if caption:
        fig.text(0.5, 0.04, caption, ha="center")
    if title:
        fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path
