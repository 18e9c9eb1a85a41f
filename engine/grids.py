"""Find and split sample grids: torchvision ``make_grid``/``save_image`` and StyleGAN grids.

torchvision (DCGAN, denoising-diffusion-pytorch, most one-file trainers) pads every tile
with ``padding=2`` lines of one pad value, so a grid of ``rows x cols`` tiles of ``s`` px is
``rows*(s+2)+2`` by ``cols*(s+2)+2`` pixels; a single image (N = 1) has no padding, and the
last row may end in tiles that are only pad value (no sample). StyleGAN's
``save_image_grid`` has no padding; its tile size shows as a jump in pixel values at every
tile boundary. Detection only accepts square tiles of at least 8 px and at least two
samples, which keeps natural single images (black-background digits, noise) whole; any
other geometry can be forced with ``grid``/``tile_size``. The tile index, row-major, is the
sample's instance id.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np

log = logging.getLogger(__name__)

TORCHVISION_PADDING = 2
MIN_TILE = 8
#: Fraction of tile-boundary segments that must show an edge for an unpadded grid.
EDGE_EVIDENCE = 0.75
#: Lower bar when the image size is exactly StyleGAN's grid size for that tile size.
EDGE_EVIDENCE_STYLEGAN = 0.5
#: Bar for a finer tile size that divides a detected one: its boundaries include the
#: coarser ones, so only low-contrast neighbours keep it under EDGE_EVIDENCE (a 4x4 grid of
#: 32 px read as 2x2 of 64 px in ~4% of random grids).
EDGE_EVIDENCE_FINER = 0.5
_FORCED_PAD_TOLERANCE = 4.0
#: A lossy grid's (JPEG, WebP) pad lines are not one value: they must stay within this share
#: of the image's own spread around the pad value (q75 JPEG of 32-px tiles: ~0.1).
LOSSY_PAD_RATIO = 0.25


@dataclass(frozen=True, slots=True)
class GridGeometry:
    """Where the tiles are: ``rows x cols`` tiles of ``tile_h x tile_w`` px, ``padding`` px apart."""

    rows: int
    cols: int
    tile_h: int
    tile_w: int
    padding: int = 0
    #: a last-row tile within this mean deviation from the pad value is an empty slot
    blank_tolerance: float = 0.0

    @property
    def count(self) -> int:
        return self.rows * self.cols

    @property
    def shape(self) -> tuple[int, int]:
        """The (height, width) of the whole grid image."""
        p = self.padding
        return self.rows * (self.tile_h + p) + p, self.cols * (self.tile_w + p) + p

    def origin(self, index: int) -> tuple[int, int]:
        """Top-left pixel of tile ``index`` (row-major)."""
        row, col = divmod(index, self.cols)
        p = self.padding
        return p + row * (self.tile_h + p), p + col * (self.tile_w + p)


def stylegan_grid_shape(tile: int) -> tuple[int, int]:
    """(rows, cols) that StyleGAN2-ADA's ``setup_snapshot_image_grid`` uses for ``tile`` px."""
    return int(np.clip(4320 // tile, 4, 32)), int(np.clip(7680 // tile, 7, 32))


def _divisors(n: int) -> list[int]:
    return [k for k in range(1, n + 1) if n % k == 0]


def _pad_lines(length: int, step: int, padding: int) -> np.ndarray:
    """Indices of the pad lines along one axis: ``padding`` lines before every tile and at the end."""
    starts = np.arange(0, length, step)
    return (starts[:, None] + np.arange(padding)[None, :]).ravel()


def _detect_padded(image: np.ndarray, padding: int = TORCHVISION_PADDING) -> GridGeometry | None:
    height, width = image.shape[:2]
    pad = image[0, 0]
    if not ((image[:padding] == pad).all() and (image[:, :padding] == pad).all()):
        return None  # cheap early exit: no constant border
    equal = (image[..., 0] == pad[0]) & (image[..., 1] == pad[1]) & (image[..., 2] == pad[2])
    row_is_pad, col_is_pad = equal.all(axis=1), equal.all(axis=0)
    for step in _divisors(width - padding):  # finest first: a coarser geometry always fits too
        tile = step - padding
        if tile < MIN_TILE or (height - padding) % step:
            continue
        geometry = GridGeometry((height - padding) // step, (width - padding) // step, tile, tile, padding)
        if (geometry.count >= 2 and row_is_pad[_pad_lines(height, step, padding)].all()
                and col_is_pad[_pad_lines(width, step, padding)].all() and _non_blank_tiles(image, geometry) >= 2):
            return geometry
    return None


def _detect_padded_lossy(image: np.ndarray, padding: int = TORCHVISION_PADDING) -> GridGeometry | None:
    """A lossy torchvision grid: the finest geometry whose pad lines are far more uniform
    than the image (a q75 JPEG's black pad lines average ~11 off, its tiles ~100)."""
    height, width = image.shape[:2]
    border = np.concatenate([image[:padding].reshape(-1, 3), image[:, :padding].reshape(-1, 3)]).astype(np.float32)
    pad = np.median(border, axis=0)
    bar = LOSSY_PAD_RATIO * float(np.abs(image[::3, ::3].astype(np.float32) - pad).mean())
    if np.abs(border - pad).mean() > bar:
        return None
    for step in _divisors(width - padding):
        tile = step - padding
        if tile < MIN_TILE or (height - padding) % step:
            continue
        geometry = GridGeometry((height - padding) // step, (width - padding) // step, tile, tile, padding, bar)
        if geometry.count >= 2 and _pad_deviation(image, geometry, pad) <= bar:
            return geometry
    return None


def _non_blank_tiles(image: np.ndarray, geometry: GridGeometry) -> int:
    pad = image[0, 0]
    return sum(not (tile == pad).all() for _, tile in _tiles(image, geometry))


def _edge_fraction(gray: np.ndarray, tile: int) -> float:
    """Share of tile-boundary segments (one per tile side) whose jump beats both neighbours' twice."""
    fractions, counts = [], []
    for g in (gray, gray.T):
        bands, length = g.shape[0] // tile, g.shape[1]
        bounds = np.arange(tile, length, tile)  # first column of each tile but the first
        if bounds.size == 0:
            continue
        jump = np.abs(g[:, bounds] - g[:, bounds - 1])
        left = np.abs(g[:, bounds - 1] - g[:, bounds - 2])
        right = np.abs(g[:, bounds + 1] - g[:, bounds])
        seg = lambda a: a.reshape(bands, tile, -1).mean(axis=1)  # noqa: E731 (one mean per tile side)
        hit = seg(jump) > 2 * np.maximum(seg(left), seg(right)) + 1.0
        fractions.append(hit.sum())
        counts.append(hit.size)
    return float(sum(fractions) / sum(counts)) if counts else 0.0


def _detect_unpadded(image: np.ndarray) -> GridGeometry | None:
    height, width = image.shape[:2]
    gray = image[..., 0].astype(np.int16) + image[..., 1] + image[..., 2]  # faster than sum(axis=2)
    sizes = [t for t in _divisors(np.gcd(height, width)) if t >= MIN_TILE and height // t >= 2 and width // t >= 2]
    for tile in sizes:
        rows, cols = height // tile, width // tile
        bar = EDGE_EVIDENCE_STYLEGAN if stylegan_grid_shape(tile) == (rows, cols) else EDGE_EVIDENCE
        if _edge_fraction(gray, tile) >= bar:
            finer = next((t for t in sizes if t < tile and tile % t == 0
                          and _edge_fraction(gray, t) >= EDGE_EVIDENCE_FINER), tile)
            return GridGeometry(height // finer, width // finer, finer, finer, 0)
    return None


def detect_grid(image: np.ndarray, lossy: bool = False) -> GridGeometry | None:
    """The grid geometry of an RGB uint8 image, or ``None`` when it is one sample.

    The finest torchvision geometry whose pad lines are all exactly the pad value wins (a
    coarser one always fits too) — or, for a ``lossy`` file (JPEG), are far more uniform
    than the image; else the smallest unpadded tile size with edges at most tile
    boundaries, or a size dividing it with edges at half of its own.
    """
    if image.ndim != 3 or min(image.shape[:2]) < 2 * MIN_TILE:
        return None
    geometry = (_detect_padded_lossy(image) if lossy else _detect_padded(image)) or _detect_unpadded(image)
    if geometry is not None:
        log.debug("grid %dx%d of %dpx tiles (padding %d) in a %dx%d image", geometry.rows, geometry.cols,
                  geometry.tile_h, geometry.padding, image.shape[0], image.shape[1])
    return geometry


def _pad_pixels(image: np.ndarray, geometry: GridGeometry) -> np.ndarray:
    """The pixels of the geometry's pad lines, (n, 3) float32."""
    height, width = geometry.shape
    p = geometry.padding
    rows = _pad_lines(height, geometry.tile_h + p, p)
    cols = _pad_lines(width, geometry.tile_w + p, p)
    return np.concatenate([image[rows].reshape(-1, 3), image[:, cols].reshape(-1, 3)]).astype(np.float32)


def _pad_deviation(image: np.ndarray, geometry: GridGeometry, pad: np.ndarray | None = None) -> float:
    """Mean |pixel - pad value| over the pad lines (0 for an exact torchvision grid); the pad
    value is the top-left pixel unless given."""
    pad = image[0, 0].astype(np.float32) if pad is None else pad
    return float(np.abs(_pad_pixels(image, geometry) - pad).mean())


def _fits(image: np.ndarray, geometry: GridGeometry, lossy: bool) -> GridGeometry | None:
    """``geometry`` when the image has its size and, when padded, its pad lines (within a
    lossy file's noise); for a lossy file with the tolerance its empty slots need."""
    if geometry.tile_h < 1 or geometry.tile_w < 1 or geometry.shape != image.shape[:2]:
        return None
    if geometry.padding == 0:
        return geometry
    if not lossy:
        return geometry if _pad_deviation(image, geometry) <= _FORCED_PAD_TOLERANCE else None
    lines = _pad_pixels(image, geometry)
    pad = np.median(lines, axis=0)
    bar = max(_FORCED_PAD_TOLERANCE, LOSSY_PAD_RATIO * float(np.abs(image[::3, ::3].astype(np.float32) - pad).mean()))
    return replace(geometry, blank_tolerance=bar) if float(np.abs(lines - pad).mean()) <= bar else None


def forced_geometry(image: np.ndarray, grid: tuple[int, int] | None = None,
                    tile_size: int | None = None, lossy: bool = False) -> GridGeometry:
    """The geometry the user asked for, with the padding inferred from the image size.

    A padding whose pad lines show (nearly constant, or within a ``lossy`` file's noise)
    wins, in the order 2 (torchvision), 1, 3..16; else no padding (StyleGAN), where the
    size fits. Raises ``ValueError`` when nothing fits.
    """
    height, width = image.shape[:2]
    candidates = []
    for p in (TORCHVISION_PADDING, 1, *range(3, 17), 0):
        if grid is not None:
            rows, cols = grid
            tile_h, tile_w = (height - p) // rows - p, (width - p) // cols - p
            if tile_size is not None and (tile_h, tile_w) != (tile_size, tile_size):
                continue
        else:
            if tile_size is None:
                raise ValueError("Expected grid or tile_size to force a geometry. Got neither.")
            tile_h = tile_w = tile_size
            rows, cols = (height - p) // (tile_size + p), (width - p) // (tile_size + p)
        candidates.append(GridGeometry(rows, cols, tile_h, tile_w, p))
    for geometry in candidates:
        if geometry.rows >= 1 and geometry.cols >= 1 and (fitted := _fits(image, geometry, lossy)):
            return fitted
    wanted = " of ".join(filter(None, [f"a {grid[0]}x{grid[1]} grid" if grid else "",
                                       f"{tile_size}px tiles" if tile_size else ""]))
    raise ValueError(f"Expected an image that splits into {wanted}. Got {width}x{height} pixels instead.")


def resolve_grid(image: np.ndarray, grid: tuple[int, int] | None = None,
                 tile_size: int | None = None, lossy: bool = False) -> GridGeometry | None:
    """Forced geometry when one is given, else :func:`detect_grid`."""
    if grid is not None or tile_size is not None:
        return forced_geometry(image, grid, tile_size, lossy)
    return detect_grid(image, lossy)


def _tiles(image: np.ndarray, geometry: GridGeometry):
    for index in range(geometry.count):
        top, left = geometry.origin(index)
        yield index, image[top:top + geometry.tile_h, left:left + geometry.tile_w]


def split_grid(image: np.ndarray, geometry: GridGeometry) -> list[tuple[int, np.ndarray]]:
    """``(tile index, tile)`` pairs, row-major, as contiguous copies.

    Tiles at the end of the last row that are only pad value are empty slots of a partial
    torchvision grid, not samples, and are left out.
    """
    tiles = list(_tiles(image, geometry))
    if geometry.padding:
        pad = (np.median(image[:geometry.padding].reshape(-1, 3), axis=0) if geometry.blank_tolerance
               else image[0, 0].astype(np.float32))  # a lossy file's pad is not one value
        last_row = (geometry.rows - 1) * geometry.cols
        while len(tiles) > max(last_row, 1) and np.abs(tiles[-1][1] - pad).mean() <= geometry.blank_tolerance:
            tiles.pop()
    return [(index, np.ascontiguousarray(tile)) for index, tile in tiles]
