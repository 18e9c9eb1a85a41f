"""Find and split sample grids: torchvision ``make_grid``/``save_image``, StyleGAN and matplotlib grids.

torchvision (DCGAN, denoising-diffusion-pytorch, most one-file trainers) pads every tile
with ``padding`` lines (2 by default) of one pad value, so a grid of ``rows x cols`` tiles of
``s`` px is ``rows*(s+p)+p`` by ``cols*(s+p)+p`` pixels; a single image (N = 1) has no
padding, and the last row may end in tiles that are only pad value (no sample; unpadded,
k-diffusion's, only one value). Square tiles are found by that exact period for any padding
of 1..16 px, which also splits digit grids whose black tiles run into black padding. Tiles
set apart by lines of the background value (non-square torchvision tiles, matplotlib
``subplot`` figures, whose float layout makes tiles and gaps vary by a pixel or two) are
found as equal runs of content lines between those separators, content that reaches every
tile's four edges. StyleGAN's ``save_image_grid`` has no padding; its tile size shows as a
jump in pixel values at every tile boundary; in a pixel-repeated image (a nearest-neighbour
upscaled sample) every block boundary is such a jump, so the grid is looked for in the
image its blocks make. Unpadded tiles with plain margins (black-background digits,
``padding=0``) show no jump: their boundaries all fall between two background lines.
Detection only accepts tiles of at least 8 px and at least two samples, non-square tiles
and unpadded tiles with margins only in at least 2x2 grids, unpadded strips (``1 x N``, no
margins) of at least :data:`MIN_STRIP` square tiles, which keeps
natural single images (black-background digits, objects on white, framed photos, noise)
whole; any other geometry can be forced with ``grid``/``tile_size``. The tile index,
row-major, is the sample's instance id.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np

log = logging.getLogger(__name__)

TORCHVISION_PADDING = 2
#: Paddings tried, torchvision's default first: a black-background digit grid can also fit
#: a padding a little off the real one, shifted into the digits' black margins.
PADDINGS = (TORCHVISION_PADDING, 1, *range(3, 17))
MIN_TILE = 8
#: Pixels by which a separated grid's tiles, and the gaps between them, may differ
#: (matplotlib rounds a float layout: 63/64-px tiles, 12/13-px gaps).
LAYOUT_SLACK = 2
#: Tiles an unpadded strip needs (GLIDE's and pytorch_GAN_zoo's samples side by side, ``1 x N``):
#: a 2:1 picture with an edge down its middle is no pair of samples.
MIN_STRIP = 3
#: How much longer than wide (or wide than long) an unpadded grid's tiles may be.
MAX_TILE_RATIO = 4
#: Fraction of tile-boundary segments that must show an edge for an unpadded grid.
EDGE_EVIDENCE = 0.75
#: Lower bar when the image size is exactly StyleGAN's grid size for that tile size.
EDGE_EVIDENCE_STYLEGAN = 0.5
#: Bar for a finer tile size that divides a detected one: its boundaries include the
#: coarser ones, so only low-contrast neighbours keep it under EDGE_EVIDENCE (a 4x4 grid of
#: 32 px read as 2x2 of 64 px in ~4% of random grids).
EDGE_EVIDENCE_FINER = 0.5
#: JPEG quantises 8x8 blocks (chroma 16x16) each alone, so a photo steps at their boundaries.
JPEG_BLOCK = 8
#: How many times the block boundaries' median jump a lossy grid's unpadded tile boundaries
#: must show (q75/q90 JPEG grids of photo crops: 3.6-73x; single photos: at most 2.7x).
BLOCK_JUMP_RATIO = 3.0
_FORCED_PAD_TOLERANCE = 4.0
#: A lossy grid's (JPEG, WebP) pad lines are not one value: their luma must stay within this
#: share of the image's own spread around the pad value (q75 JPEG of 32-px tiles: ~0.1).
LOSSY_PAD_RATIO = 0.25


@dataclass(frozen=True, slots=True)
class GridGeometry:
    """Where the tiles are: ``rows x cols`` tiles of ``tile_h x tile_w`` px, ``padding`` px
    apart, or at the given ``tops``/``lefts`` where the gaps are uneven (matplotlib)."""

    rows: int
    cols: int
    tile_h: int
    tile_w: int
    padding: int = 0
    #: a last-row tile within this mean deviation from the pad value is an empty slot
    blank_tolerance: float = 0.0
    tops: tuple[int, ...] = ()
    lefts: tuple[int, ...] = ()

    @property
    def count(self) -> int:
        return self.rows * self.cols

    @property
    def shape(self) -> tuple[int, int]:
        """The (height, width) of the whole grid image (of a regular grid: no ``tops``/``lefts``)."""
        p = self.padding
        return self.rows * (self.tile_h + p) + p, self.cols * (self.tile_w + p) + p

    def origin(self, index: int) -> tuple[int, int]:
        """Top-left pixel of tile ``index`` (row-major)."""
        row, col = divmod(index, self.cols)
        if self.tops:
            return self.tops[row], self.lefts[col]
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


@dataclass(frozen=True, slots=True)
class _Background:
    """How far each row and column is from the background (pad) value: the share of pixels
    off it, or for a lossy file the largest mean |difference| over a run of 16 px; a line
    within ``bar`` is background."""

    value: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    bar: float
    #: what the lines were measured on: the image, or a lossy file's luma (:func:`_luma`)
    lines: np.ndarray

    def covers(self, pixels: np.ndarray) -> bool:
        """Whether these pixels are background (within a lossy file's bar)."""
        if not self.bar:
            return bool((pixels == self.value).all())
        return float(np.abs(pixels.astype(np.float32) - self.value).mean()) <= self.bar


def _block_max(distance: np.ndarray, block: int = 16) -> np.ndarray:
    """Per row, the largest mean over ``block`` px runs: a lossy line crossing one sample in
    a partial row is content, though its mean over the whole width is near the pad's."""
    height, width = distance.shape[:2]
    block = min(block, width)
    runs = np.concatenate([distance[:, :width - width % block], distance[:, width - block:]], axis=1)
    size = block * distance.shape[2]
    return runs.reshape(height, -1, size).sum(axis=2, dtype=np.uint32).max(axis=1) / size


def _luma(image: np.ndarray) -> np.ndarray:
    """The image's luma, (H, W, 1): what a lossy file keeps at full resolution.
    JPEG halves the chroma (4:2:0), so the colours of the tiles on both sides of a 2-px pad
    line bleed into it; its luma stays near the pad's (a mid-gray pad beside mid-toned
    samples was never found in the colours)."""
    weighted = image[..., 0] * np.uint16(77) + image[..., 1] * np.uint16(150) + image[..., 2] * np.uint16(29)
    return (weighted >> 8).astype(np.uint8)[..., None]


def _background(image: np.ndarray, lossy: bool) -> _Background | None:
    """The top-left background value and every line's distance from it (a ``lossy`` file's
    in its luma); ``None`` (cheaply) when the first row or column is not background, so no
    padding or margin frames the image."""
    if lossy:
        border = _luma(np.concatenate([image[0], image[:, 0]])).astype(np.float32)
        value = np.median(border, axis=0).round().astype(np.uint8)
        bar = LOSSY_PAD_RATIO * float(np.abs(_luma(image[::3, ::3]).astype(np.float32) - value).mean())
        if np.abs(border - value).mean() > bar:
            return None
        lines = _luma(image)
        distance = np.minimum(lines - value, value - lines)  # |lines - value|, in uint8 (wraps)
        return _Background(value, _block_max(distance), _block_max(distance.transpose(1, 0, 2)), bar, lines)
    value = image[0, 0]
    if not ((image[0] == value).all() and (image[:, 0] == value).all()):
        return None
    off = (image[..., 0] != value[0]) | (image[..., 1] != value[1]) | (image[..., 2] != value[2])
    return _Background(value, off.mean(axis=1), off.mean(axis=0), 0.0, image)


def _is_empty(tile: np.ndarray, pad: np.ndarray | None, tolerance: float) -> bool:
    """A tile of only the pad value, or of any one value in an unpadded grid (``pad`` None):
    make_grid fills the slots past the last sample with its pad_value either way."""
    if tolerance == 0:
        return bool((tile == (tile[0, 0] if pad is None else pad)).all())
    pad = tile.reshape(-1, tile.shape[2]).mean(axis=0) if pad is None else pad
    return float(np.abs(tile.astype(np.float32) - pad).mean()) <= tolerance


def _pad_value(image: np.ndarray, geometry: GridGeometry) -> np.ndarray | None:
    """The value of a padded or separated grid's empty slots (a lossy file's pad is not one
    value), or ``None`` for an unpadded grid, whose empty slots may be of any one value (with
    a lossy file's tolerance any smooth sample would pass for one: a JPEG's last row was lost)."""
    if not (geometry.padding or geometry.tops):
        return None
    if geometry.blank_tolerance:
        return np.median(np.concatenate([image[0], image[:, 0]]), axis=0)
    return image[0, 0]


def _without_empty_slots(image: np.ndarray, geometry: GridGeometry,
                         pad: np.ndarray | None) -> list[tuple[int, np.ndarray]]:
    """The tiles but the empty slots at the end of the last row (one tile always stays)."""
    tiles = list(_tiles(image, geometry))
    keep = max((geometry.rows - 1) * geometry.cols, 1)
    while len(tiles) > keep and _is_empty(tiles[-1][1], pad, geometry.blank_tolerance):
        tiles.pop()
    return tiles


def _finest_padded(bg: _Background, padding: int) -> GridGeometry | None:
    """The finest square torchvision geometry of ``padding`` whose pad lines are background
    (a coarser one always fits too)."""
    height, width = bg.rows.size, bg.cols.size
    for step in _divisors(np.gcd(height - padding, width - padding)):
        rows, cols = (height - padding) // step, (width - padding) // step
        if (step - padding >= MIN_TILE and rows * cols >= 2
                and bg.rows[_pad_lines(height, step, padding)].mean() <= bg.bar
                and bg.cols[_pad_lines(width, step, padding)].mean() <= bg.bar):
            return GridGeometry(rows, cols, step - padding, step - padding, padding, bg.bar)
    return None


def _detect_padded(image: np.ndarray, bg: _Background) -> GridGeometry | None:
    """The finest geometry over all :data:`PADDINGS` (a wrong padding fits only coarser:
    padding 4 every 52 px holds padding 2 every 157), with at least two tiles not blank."""
    # Only paddings the border is as wide as (cheap: it rules out most at once).
    n = np.arange(1, max(PADDINGS) + 1)
    border = np.maximum(np.cumsum(bg.rows[:n.size]) / n, np.cumsum(bg.cols[:n.size]) / n) <= bg.bar
    fits = [g for g in (_finest_padded(bg, p) for p in PADDINGS if border[p - 1]) if g is not None]
    return next((g for g in sorted(fits, key=lambda g: -g.count) if _two_filled(image, g, bg)), None)  # stable sort


def _two_filled(image: np.ndarray, geometry: GridGeometry, bg: _Background) -> bool:
    """Whether at least two tiles hold more than background: a grid has two samples."""
    filled = (tile for _, tile in _tiles(image, geometry) if not _is_empty(tile, bg.value, bg.bar))
    return next(filled, None) is not None and next(filled, None) is not None


def _detect_margined(image: np.ndarray, bg: _Background) -> GridGeometry | None:
    """The finest unpadded grid of square tiles whose every boundary falls between two
    background lines: tiles with background margins put side by side (black-background
    digits saved with ``padding=0``), which show no edge at their boundaries. At least 2x2
    tiles (objects side by side on white are one picture more often than a strip), two of
    them holding content."""
    height, width = bg.rows.size, bg.cols.size
    for tile in _divisors(np.gcd(height, width)):
        if tile < MIN_TILE or min(height, width) // tile < 2:
            continue
        cuts = [(lines, np.arange(tile, lines.size, tile)) for lines in (bg.rows, bg.cols)]
        if all((lines[at - 1] <= bg.bar).all() and (lines[at] <= bg.bar).all() for lines, at in cuts):
            geometry = GridGeometry(height // tile, width // tile, tile, tile, 0, bg.bar)
            if _two_filled(image, geometry, bg):
                return geometry
    return None


def _tight(bg: _Background, geometry: GridGeometry) -> bool:
    """Whether every background line is a pad line: a padded fit whose tiles hold background
    lines may be a coarser reading of a separated grid (matplotlib's margins)."""
    for lines, tile in ((bg.rows, geometry.tile_h), (bg.cols, geometry.tile_w)):
        is_bg = lines <= bg.bar
        if is_bg.sum() != is_bg[_pad_lines(lines.size, tile + geometry.padding, geometry.padding)].sum():
            return False
    return True


def _separated_axis(line_is_background: np.ndarray) -> tuple[int, tuple[int, ...]] | None:
    """(tile size, tile starts) along one axis: runs of content lines of equal length
    between background lines spaced equally, each run cropped to the shortest, centred."""
    edges = np.diff(np.concatenate([[1], line_is_background, [1]]).astype(np.int8))
    starts, ends = np.flatnonzero(edges == -1), np.flatnonzero(edges == 1)
    lengths, gaps = ends - starts, starts[1:] - ends[:-1]
    if not lengths.size or lengths.min() < MIN_TILE or np.ptp(lengths) > LAYOUT_SLACK:
        return None
    if gaps.size and np.ptp(gaps) > LAYOUT_SLACK:
        return None
    size = int(lengths.min())
    return size, tuple(int(s) for s in starts + (lengths - size) // 2)


def _without_short_ends(line_is_background: np.ndarray) -> np.ndarray | None:
    """The lines with a first or last run of content under half the others' median length (a
    title, a caption) made background, when there are such runs and two or more others."""
    edges = np.diff(np.concatenate([[1], line_is_background, [1]]).astype(np.int8))
    starts, ends = np.flatnonzero(edges == -1), np.flatnonzero(edges == 1)
    if starts.size < 3:
        return None
    short = (ends - starts) < np.median(ends - starts) / 2
    keep = np.ones(starts.size, bool)
    keep[0], keep[-1] = not short[0], not short[-1]
    if keep.all() or keep.sum() < 2 or short[keep].any():
        return None
    band = np.ones_like(line_is_background)
    for start, end in zip(starts[keep], ends[keep]):
        band[start:end] = False
    return band


def _band_columns(bg: _Background, background_rows: np.ndarray) -> np.ndarray:
    """Every column's distance from the background over the rows that are not background."""
    lines = bg.lines[~background_rows]
    if bg.bar:  # lossy: measured as _background measures, in the luma
        distance = np.minimum(lines - bg.value, bg.value - lines)
        return _block_max(distance.transpose(1, 0, 2))
    return (lines != bg.value).any(axis=2).mean(axis=0)


def _detect_separated(image: np.ndarray, bg: _Background, finer_than: int = 1) -> GridGeometry | None:
    """Tiles between full background lines (matplotlib subplots, non-square torchvision
    tiles) whose content reaches all four edges of every tile but the last row's empty slots
    (black digits on black do not: their runs are the union of the digits' extents); tiles
    that are not square (within :data:`LAYOUT_SLACK`) come in at least 2x2. Only more than
    ``finer_than`` tiles are worth checking."""
    rows, cols = _separated_axis(bg.rows <= bg.bar), _separated_axis(bg.cols <= bg.bar)
    if rows is None:  # a caption under the tiles or a title above them (znxlwm's fig.text 'Epoch 3')
        band = _without_short_ends(bg.rows <= bg.bar)
        if band is not None:
            rows, cols = _separated_axis(band), _separated_axis(_band_columns(bg, band) <= bg.bar)
    if rows is None or cols is None:
        return None
    (tile_h, tops), (tile_w, lefts) = rows, cols
    geometry = GridGeometry(len(tops), len(lefts), tile_h, tile_w, 0, bg.bar, tops, lefts)
    square = abs(tile_h - tile_w) <= LAYOUT_SLACK  # else at least 2x2, or a strip (PyTorch-GAN's ESRGAN: nrow=1)
    if geometry.count <= finer_than or not (square or min(geometry.rows, geometry.cols) >= 2 or geometry.count >= MIN_STRIP):
        return None
    tiles = [tile for _, tile in _without_empty_slots(image, geometry, bg.value)]
    if len(tiles) < 2 or any(bg.covers(edge) for t in tiles for edge in (t[0], t[-1], t[:, 0], t[:, -1])):
        return None
    return geometry


def _edge_fraction(gray: np.ndarray, tile_h: int, tile_w: int) -> float:
    """Share of tile-boundary segments (one per tile side) whose jump beats both neighbours' twice."""
    fractions, counts = [], []
    for g, across, along in ((gray, tile_w, tile_h), (gray.T, tile_h, tile_w)):
        bands, length = g.shape[0] // along, g.shape[1]
        bounds = np.arange(across, length, across)  # first column of each tile but the first
        if bounds.size == 0:
            continue
        jump = np.abs(g[:, bounds] - g[:, bounds - 1])
        left = np.abs(g[:, bounds - 1] - g[:, bounds - 2])
        right = np.abs(g[:, bounds + 1] - g[:, bounds])
        seg = lambda a, bands=bands, along=along: a.reshape(bands, along, -1).mean(axis=1)  # noqa: E731 (one mean per tile side)
        hit = seg(jump) > 2 * np.maximum(seg(left), seg(right)) + 1.0
        fractions.append(hit.sum())
        counts.append(hit.size)
    return float(sum(fractions) / sum(counts)) if counts else 0.0


def _above_block_steps(gray: np.ndarray, tile_h: int, tile_w: int) -> bool:
    """Whether the jumps at the tile boundaries stand out of those at the lossy file's other
    :data:`JPEG_BLOCK` boundaries: each block is quantised alone, so a photo steps at every
    8th line and an 8-px multiple of tiles finds edges at most of its boundaries."""
    at_tiles, at_blocks = [], []
    for g, tile in ((gray, tile_w), (gray.T, tile_h)):
        bounds = np.arange(tile, g.shape[1], tile)
        blocks = np.setdiff1d(np.arange(JPEG_BLOCK, g.shape[1], JPEG_BLOCK), bounds)
        at_tiles.append(np.abs(g[:, bounds] - g[:, bounds - 1]).mean(axis=0))
        at_blocks.append(np.abs(g[:, blocks] - g[:, blocks - 1]).mean(axis=0))
    steps = np.concatenate(at_blocks)
    return steps.size > 0 and float(np.median(np.concatenate(at_tiles))) > BLOCK_JUMP_RATIO * float(np.median(steps))


def _jumping_periods(jumps: np.ndarray) -> list[int]:
    """Tile sizes (of at least :data:`MIN_TILE`, two tiles or more) along an axis of
    ``jumps.size + 1`` lines at half of whose boundaries the mean jump beats both
    neighbouring lines' twice."""
    length, periods = jumps.size + 1, []
    for period in _divisors(length):
        if period < MIN_TILE or length // period < 2:
            continue
        at = np.arange(period, length, period)  # jumps[at - 1] is the jump onto line ``at``
        if (jumps[at - 1] > 2 * np.maximum(jumps[at - 2], jumps[at]) + 1.0).mean() >= 0.5:
            periods.append(period)
    return periods


def _repetition(image: np.ndarray) -> int:
    """The largest f such that the image is an exact f-fold pixel repetition (nearest-
    neighbour upscaled samples, pixel art), else 1."""
    if not ((image[0] == image[1]).all() and (image[:, 0] == image[:, 1]).all()):
        return 1  # cheap: a first block's two first rows and columns are equal
    rows_equal = (image[1:] == image[:-1]).all(axis=(1, 2))  # row i equals row i + 1
    cols_equal = (image[:, 1:] == image[:, :-1]).all(axis=(0, 2))
    for f in reversed(_divisors(np.gcd(*image.shape[:2]))[1:]):
        if all(equal[(np.arange(equal.size) + 1) % f != 0].all() for equal in (rows_equal, cols_equal)):
            return f
    return 1


def _detect_unpadded(image: np.ndarray, lossy: bool = False) -> GridGeometry | None:
    """Tiles put side by side without padding, told by an edge at most tile boundaries: a
    grid of at least 2x2, or a strip of at least :data:`MIN_STRIP` square tiles. In
    a pixel-repeated image every block boundary is such an edge (nothing changes inside a
    block), so its blocks are read as pixels: the grid is looked for in the small image. In
    a ``lossy`` file the tile boundaries must also out-jump its JPEG block boundaries."""
    if not lossy and (f := _repetition(image)) > 1:
        small = _detect_unpadded(image[::f, ::f]) if min(image.shape[:2]) // f >= 2 * MIN_TILE else None
        return small and GridGeometry(small.rows, small.cols, small.tile_h * f, small.tile_w * f, 0)
    height, width = image.shape[:2]
    gray = image[..., 0].astype(np.int16) + image[..., 1] + image[..., 2]  # faster than sum(axis=2)
    def edged(tile_h: int, tile_w: int, bar: float) -> bool:
        return _edge_fraction(gray, tile_h, tile_w) >= bar and (not lossy or _above_block_steps(gray, tile_h, tile_w))
    blank = _FORCED_PAD_TOLERANCE if lossy else 0.0  # a lossy empty slot (Sana's black fill, WebP) is not one value
    shape = _unpadded_shape(gray, edged)
    if shape is None:
        return None
    if shape[0] != shape[1]:  # square samples are likelier: a long side may hold several
        shape = _squarer(gray, shape, edged)
    return GridGeometry(height // shape[0], width // shape[1], *shape, 0, blank)


def _unpadded_shape(gray: np.ndarray, edged) -> tuple[int, int] | None:
    """The (height, width) of the tiles of an unpadded grid that ``edged(tile_h, tile_w, bar)``
    finds edges at: square tiles, else other shapes in at least 2x2, else a strip of squares."""
    height, width = gray.shape
    sizes = [t for t in _divisors(np.gcd(height, width)) if t >= MIN_TILE and height // t >= 2 and width // t >= 2]
    for tile in sizes:
        rows, cols = height // tile, width // tile
        if edged(tile, tile, EDGE_EVIDENCE_STYLEGAN if stylegan_grid_shape(tile) == (rows, cols) else EDGE_EVIDENCE):
            return (next((t for t in sizes if t < tile and tile % t == 0 and edged(t, t, EDGE_EVIDENCE_FINER)), tile),) * 2
    # Tiles of another shape, at least 2x2 (SPADE's tile_images of 2:1 Cityscapes samples), finest
    # first; only periods whose lines, averaged whole, mostly jump (cheap: it rules out most)
    across_cols, across_rows = _line_jumps(gray, every=4)  # every 4th line is mean enough
    shapes = sorted(((h, w) for h in _jumping_periods(across_rows) for w in _jumping_periods(across_cols)
                     if h != w and max(h, w) <= MAX_TILE_RATIO * min(h, w)), key=lambda hw: hw[0] * hw[1])
    if shape := next((hw for hw in shapes if edged(*hw, EDGE_EVIDENCE)), None):
        return shape
    short, long = sorted((height, width))
    if long % short == 0 and long // short >= MIN_STRIP and edged(short, short, EDGE_EVIDENCE):  # a strip of squares
        return short, short
    return None


def _squarer(gray: np.ndarray, shape: tuple[int, int], edged) -> tuple[int, int]:
    """The tiles with their long side cut at the finest period (no shorter than the short side)
    whose added boundary lines out-jump most lines inside the tiles (median rank
    :data:`BOUNDARY_RANK`), where that tiling shows edges at half its tile sides. The edge test
    looks at one tile side at a time, so smooth edges between stripe-like samples fail it
    while a 2:1 reading keeps only the strong ones; over a whole line of tiles a boundary
    between unrelated samples stands out, a line inside samples does not."""
    long_axis = int(shape[1] > shape[0])
    jumps = np.abs(np.diff(gray.astype(np.float32), axis=long_axis)).mean(axis=1 - long_axis)  # onto each line
    period, length = shape[long_axis], jumps.size + 1
    for d in _divisors(period)[:-1]:
        if d < shape[1 - long_axis]:
            continue
        at = np.arange(d, length, d)
        inside = np.ones(jumps.size, bool)
        inside[at - 1] = False
        added = jumps[at[at % period != 0] - 1]
        finer = (d, shape[1]) if long_axis == 0 else (shape[0], d)
        if (np.median(np.searchsorted(np.sort(jumps[inside]), added) / inside.sum()) >= BOUNDARY_RANK
                and edged(*finer, EDGE_EVIDENCE_FINER)):
            return finer
    return shape


def detect_grid(image: np.ndarray, lossy: bool = False) -> GridGeometry | None:
    """The grid geometry of an RGB uint8 image, or ``None`` when it is one sample.

    The finest square torchvision geometry whose pad lines are all exactly the pad value
    (over all :data:`PADDINGS`) — or, for a ``lossy`` file (JPEG), whose luma is far more
    uniform than the image's; tiles between background lines where they are finer, or as
    fine and the padded tiles hold background lines (matplotlib margins); else the smallest unpadded tile size
    with edges at most tile boundaries, or a size dividing it with edges at half of its own;
    a non-square one's long side cut where whole lines of boundaries stand out (square samples).
    """
    if image.ndim != 3 or min(image.shape[:2]) < 2 * MIN_TILE:
        return None
    bg = _background(image, lossy)
    lines = bg.lines if bg else image  # where pad lines and margins are looked for
    padded = bg and _detect_padded(lines, bg)
    margined = bg and _detect_margined(lines, bg)
    if margined and (not padded or margined.count > padded.count):  # a padding that fits by chance is coarser
        padded = margined
    if padded and _tight(bg, padded):  # its pad lines are the only separators: nothing finer
        geometry = padded
    else:  # separated tiles win if finer, or as fine as padded tiles that hold background lines
        floor = padded.count - 1 if padded else 1
        geometry = (bg and _detect_separated(lines, bg, floor)) or padded or _detect_unpadded(image, lossy)
    if geometry is not None:
        spacing = "between background lines" if geometry.tops else f"padding {geometry.padding}"
        log.debug("grid %dx%d of %dx%dpx tiles (%s) in a %dx%d image", geometry.rows, geometry.cols,
                  geometry.tile_h, geometry.tile_w, spacing, image.shape[0], image.shape[1])
    return geometry


def _outside(length: int, starts: tuple[int, ...], size: int) -> np.ndarray:
    """Mask of the lines of ``length`` that no tile (at ``starts``, ``size`` long) covers."""
    outside = np.ones(length, bool)
    for start in starts:
        outside[start:start + size] = False
    return outside


def _pad_pixels(image: np.ndarray, geometry: GridGeometry) -> np.ndarray:
    """The pixels of the geometry's pad lines, (n, channels) float32."""
    if geometry.tops:
        rows = _outside(image.shape[0], geometry.tops, geometry.tile_h)
        cols = _outside(image.shape[1], geometry.lefts, geometry.tile_w)
    else:
        height, width = geometry.shape
        p = geometry.padding
        rows = _pad_lines(height, geometry.tile_h + p, p)
        cols = _pad_lines(width, geometry.tile_w + p, p)
    channels = image.shape[2]
    return np.concatenate([image[rows].reshape(-1, channels), image[:, cols].reshape(-1, channels)]).astype(np.float32)


def _pad_deviation(image: np.ndarray, geometry: GridGeometry, pad: np.ndarray | None = None) -> float:
    """Mean |pixel - pad value| over the pad lines (0 for an exact torchvision grid); the pad
    value is the top-left pixel unless given."""
    pad = image[0, 0].astype(np.float32) if pad is None else pad
    return float(np.abs(_pad_pixels(image, geometry) - pad).mean())


def _fits(image: np.ndarray, geometry: GridGeometry, lossy: bool) -> GridGeometry | None:
    """``geometry`` when the image has its size and, when padded, its pad lines (within a
    lossy file's noise); for a lossy file with the tolerance its empty slots need."""
    if geometry.tile_h < 1 or geometry.tile_w < 1 or (not geometry.tops and geometry.shape != image.shape[:2]):
        return None
    if geometry.padding == 0:
        return geometry
    if not lossy:
        return geometry if _pad_deviation(image, geometry) <= _FORCED_PAD_TOLERANCE else None
    lines = _pad_pixels(image, geometry)
    pad = np.median(lines, axis=0)
    bar = max(_FORCED_PAD_TOLERANCE, LOSSY_PAD_RATIO * float(np.abs(image[::3, ::3].astype(np.float32) - pad).mean()))
    return replace(geometry, blank_tolerance=bar) if float(np.abs(lines - pad).mean()) <= bar else None


def _stacked_grids(height: int, width: int, grid: tuple[int, int], tile_size: int | None) -> list[GridGeometry]:
    """Geometries of a grid made by stacking one ``make_grid`` per row (or per column), each
    padded all round, so two pads meet between rows: PyTorch-GAN's CycleGAN saves
    ``torch.cat((make_grid(real_A, nrow=5), make_grid(fake_B, nrow=5), ...), 1)``."""
    rows, cols = grid
    found = []
    for p in PADDINGS:
        for stacked_rows in (True, False):
            tile_h = height // rows - 2 * p if stacked_rows else (height - p) // rows - p
            tile_w = (width - p) // cols - p if stacked_rows else width // cols - 2 * p
            if min(tile_h, tile_w) < 1 or tile_size not in (None, tile_h) or tile_size not in (None, tile_w):
                continue
            if stacked_rows and (height, width) == (rows * (tile_h + 2 * p), cols * (tile_w + p) + p):
                tops, lefts = [r * (tile_h + 2 * p) + p for r in range(rows)], [p + c * (tile_w + p) for c in range(cols)]
            elif not stacked_rows and (height, width) == (rows * (tile_h + p) + p, cols * (tile_w + 2 * p)):
                tops, lefts = [p + r * (tile_h + p) for r in range(rows)], [c * (tile_w + 2 * p) + p for c in range(cols)]
            else:
                continue
            found.append(GridGeometry(rows, cols, tile_h, tile_w, p, tops=tuple(tops), lefts=tuple(lefts)))
    return found


def forced_geometry(image: np.ndarray, grid: tuple[int, int] | None = None,
                    tile_size: int | None = None, lossy: bool = False) -> GridGeometry:
    """The geometry the user asked for, with the padding inferred from the image size.

    A padding whose pad lines show (nearly constant, or within a ``lossy`` file's noise)
    wins, in the order 2 (torchvision), 1, 3..16; else no padding (StyleGAN), where the
    size fits. Raises ``ValueError`` when nothing fits.
    """
    height, width = image.shape[:2]
    candidates = []
    for p in (*PADDINGS, 0):
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
    if grid is not None:
        candidates += _stacked_grids(height, width, grid, tile_size)
    lines = _luma(image) if lossy else image
    for geometry in candidates:
        if geometry.rows >= 1 and geometry.cols >= 1 and (fitted := _fits(lines, geometry, lossy)):
            return fitted
    wanted = " of ".join(filter(None, [f"a {grid[0]}x{grid[1]} grid" if grid else "",
                                       f"{tile_size}px tiles" if tile_size else ""]))
    raise ValueError(f"Expected an image that splits into {wanted}. Got {width}x{height} pixels instead "
                     "(--grid is ROWSxCOLS, rows first; --tile-size PX alone lets the count follow).")


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

    Tiles at the end of the last row that are only pad value (or, unpadded, only one value)
    are empty slots of a partial grid, not samples, and are left out.
    """
    lines = _luma(image) if geometry.blank_tolerance else image  # a lossy file's tolerance is in luma
    kept = {index for index, _ in _without_empty_slots(lines, geometry, _pad_value(lines, geometry))}
    return [(index, np.ascontiguousarray(tile)) for index, tile in _tiles(image, geometry) if index in kept]


#: A Python slice of a grid's rows or columns, ``(start, stop, step)``.
TileSlice = tuple[int | None, int | None, int | None]


def parse_tile_slice(text: str) -> TileSlice:
    """Parse which rows or columns of a grid to keep, as a Python slice or index: ``"4"``,
    ``"-1"``, ``"2:"``, ``"1::2"``."""
    parts = text.strip().split(":") if text else []
    try:
        if len(parts) == 1:
            index = int(parts[0])
            return index, index + 1 or None, None
        if 2 <= len(parts) <= 3:
            start, stop, step = (int(p) if p.strip() else None for p in (*parts, "")[:3])
            if step != 0:
                return start, stop, step
    except ValueError:
        pass
    raise ValueError(f"Expected an index or a Python slice of rows or columns, e.g. 4, -1, 2: or 1::2. "
                     f"Got {text!r} instead.")


def format_tile_slice(selection: TileSlice) -> str:
    """The slice as typed: ``2:``, ``1::2``, ``4``."""
    start, stop, step = selection
    if start is not None and step is None and stop == (start + 1 or None):
        return str(start)
    return ":".join("" if v is None else str(v) for v in (start, stop, *([step] if step else [])))


def select_tiles(tiles: list[tuple[int, np.ndarray]], geometry: GridGeometry, rows: TileSlice | None,
                 cols: TileSlice | None) -> list[tuple[int, np.ndarray]]:
    """The tiles in the chosen rows and columns: a trainer's grid that sets its real inputs,
    reconstructions or attention maps beside the samples (MUNIT's rows, StarGAN's first
    column) keeps only the samples. Raises ``ValueError`` when the choice keeps no tile."""
    keep_rows = set(range(geometry.rows)[slice(*rows)]) if rows else set(range(geometry.rows))
    keep_cols = set(range(geometry.cols)[slice(*cols)]) if cols else set(range(geometry.cols))
    if not keep_rows or not keep_cols:
        chosen = " and ".join(f"{what} {format_tile_slice(s)}" for what, s in (("rows", rows), ("columns", cols)) if s)
        raise ValueError(f"a {geometry.rows}x{geometry.cols} grid has no tile in {chosen}; "
                         "fix --tile-rows/--tile-cols (Python slices, from 0)")
    return [(index, tile) for index, tile in tiles
            if index // geometry.cols in keep_rows and index % geometry.cols in keep_cols]


#: Columns of ``torch.utils.tensorboard``'s image grids (``SummaryWriter.add_images``).
TENSORBOARD_COLUMNS = 8
#: Share of the lines inside its tiles that a grid's boundary line must out-jump (median over
#: the boundaries): 0.99-1.0 for grids of real early DDPM samples and smooth ones, with noise or
#: not; 0.4-0.7 for lines inside photos and smooth samples; about 0.75-0.9 for samples of noise.
BOUNDARY_RANK = 0.95


def _line_jumps(gray: np.ndarray, every: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Mean |difference| between each pair of neighbouring columns, and of rows, over every
    ``every``-th line across them: index ``b - 1`` is the jump onto column (row) ``b``."""
    return (np.abs(np.diff(gray[::every], axis=1)).mean(axis=0),
            np.abs(np.diff(gray[:, ::every], axis=0)).mean(axis=1))


def _every(length: int, period: int) -> np.ndarray:
    """Mask of the jumps onto lines ``period``, ``2 * period``, ... of ``length + 1`` lines."""
    mask = np.zeros(length, bool)
    mask[period - 1::period] = True
    return mask


def tensorboard_grid(image: np.ndarray) -> GridGeometry | None:
    """The grid ``SummaryWriter.add_images`` makes of a batch: ``min(n, 8)`` columns of
    unpadded tiles, empty slots black; tried where :func:`detect_grid` finds nothing, with
    square tiles. Candidates: a row of ``width / height`` tiles, 2 to 8 (diffusers' 4 validation
    images: generated samples are square, so such an image is a row of them), and 8 columns of
    ``width / 8`` px (its 16 test samples). A boundary between two tiles is a line whose jump
    (mean |difference| from the line before) ranks above most lines inside the tiles
    (:data:`BOUNDARY_RANK`), whatever noise the samples carry:

    - both fit (2x8 of 64 px or 1x4 of 128 px is 512x128): where the row's boundaries fall
      between background lines (digits on black), 8 columns when theirs do too; else 8 columns
      when the boundaries the row lacks are boundaries, the row when only the boundaries both
      share are; when not even
      those stand out (samples of pure noise, a diffusion model's first), 8 columns: its 16
      test samples are the likelier batch;
    - only 8 columns fit (a square image may be one sample): when their boundaries are."""
    height, width = image.shape[:2]
    row = GridGeometry(1, width // height, height, height) if (
        width % height == 0 and 2 <= width // height <= TENSORBOARD_COLUMNS and height >= MIN_TILE) else None
    tile = width // TENSORBOARD_COLUMNS
    if not (width % TENSORBOARD_COLUMNS == 0 and tile >= MIN_TILE and height % tile == 0 and height // tile >= 2):
        return row
    columns = GridGeometry(height // tile, TENSORBOARD_COLUMNS, tile, tile)
    f = _repetition(image)  # an upscaled sample's blocks are its pixels
    f = f if tile % f == 0 and height % f == 0 else 1
    if tile // f < MIN_TILE:  # tiles of a few of the upscaled sample's pixels
        return row
    across_cols, across_rows = _line_jumps(image[::f, ::f].astype(np.float32).sum(axis=2))
    cols_cut, rows_cut = _every(across_cols.size, tile // f), _every(across_rows.size, tile // f)
    inside = np.concatenate([across_cols[~cols_cut], across_rows[~rows_cut]])

    def stand_out(jumps: np.ndarray) -> bool:
        return float(np.median([(inside < jump).mean() for jump in jumps])) >= BOUNDARY_RANK

    if row is None:
        return columns if stand_out(np.concatenate([across_cols[cols_cut], across_rows[rows_cut]])) else None
    if (bg := _background(image, False)) is not None:  # tiles with margins: boundaries between background lines
        def seams(lines: np.ndarray, period: int, length: int) -> bool:
            at = np.arange(period, length, period)
            return bool(((lines[at - 1] <= bg.bar) & (lines[at] <= bg.bar)).all())

        if seams(bg.cols, height, width):
            return columns if seams(bg.cols, tile, width) and seams(bg.rows, tile, height) else row
    shared = _every(across_cols.size, height // f)
    if stand_out(np.concatenate([across_cols[cols_cut & ~shared], across_rows[rows_cut]])):
        return columns
    return row if stand_out(across_cols[shared]) else columns
