"""What grid detection costs next to decoding the same file, for PNG and JPEG grids and photos.

    .venv/bin/python benchmarks/grid_detection.py [--repeats 30]

Every image of a generated checkpoint that may be a grid goes through
``engine.grids.detect_grid`` once it is decoded. For each case this times, on the same
file and in the same run, Pillow's decode to RGB (``engine.decode.images.load_image``: the
baseline, work the ingest does anyway) and the detection, and prints the detection as a
ratio of the decode. Cases: torchvision grids (8x8 of 64 px, padding 2; 4 of 512 px in a
row, latent-diffusion's mid-gray pad) and StyleGAN-style unpadded grids (4x7 of 128 px) of
crops of scikit-learn's sample photos, and single photos (1024 px), each as PNG and as
q75 JPEG. Medians over ``--repeats``.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.datasets import load_sample_images
from torchvision.utils import make_grid

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from engine.decode.images import load_image  # noqa: E402
from engine.decode.samples import LOSSY_EXTENSIONS  # noqa: E402
from engine.grids import detect_grid  # noqa: E402
from timing import median_seconds  # noqa: E402


def _crops(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    photos = load_sample_images().images
    out = []
    for k in range(n):
        photo = photos[k % 2]
        top, left = rng.integers(0, photo.shape[0] - size), rng.integers(0, photo.shape[1] - size)
        out.append(photo[top:top + size, left:left + size])
    return np.stack(out)


def _torchvision(images: np.ndarray, nrow: int, mid_gray: bool) -> np.ndarray:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    grid = (make_grid(x * 2 - 1, nrow=nrow) + 1) / 2 if mid_gray else make_grid(x, nrow=nrow)
    return (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def cases(rng: np.random.Generator) -> dict[str, np.ndarray]:
    tiles = _crops(28, 128, rng)
    unpadded = tiles.reshape(4, 7, 128, 128, 3).transpose(0, 2, 1, 3, 4).reshape(512, 896, 3)
    photo = np.asarray(Image.fromarray(load_sample_images().images[0]).resize((1024, 1024)))
    return {"torchvision 8x8 of 64 px": _torchvision(_crops(64, 64, rng), 8, False),
            "torchvision 1x4 of 512 px, mid-gray pad": _torchvision(
                np.stack([np.asarray(Image.fromarray(t).resize((512, 512))) for t in tiles[:4]]), 4, True),
            "unpadded 4x7 of 128 px": unpadded,
            "single photo, 1024 px": photo}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print("| image | file | decode (baseline), ms | detection, ms | detection / decode | found |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, image in cases(rng).items():
            for suffix in (".png", ".jpg"):
                path = Path(tmp) / f"case{suffix}"
                Image.fromarray(image).save(path, quality=75)
                decoded = load_image(path)
                lossy = suffix in LOSSY_EXTENSIONS
                decode = median_seconds(lambda: load_image(path), args.repeats, warm=True)
                detect = median_seconds(lambda: detect_grid(decoded, lossy=lossy), args.repeats, warm=True)
                found = detect_grid(decoded, lossy=lossy)
                shape = f"{found.rows}x{found.cols} of {found.tile_h} px" if found else "one image"
                print(f"| {name} | {suffix[1:].upper()} | {decode * 1e3:.2f} | {detect * 1e3:.2f} | "
                      f"{detect / decode:.2f} | {shape} |")


if __name__ == "__main__":
    main()
