"""Grid detection and splitting: torchvision make_grid/save_image, StyleGAN, forced geometry."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from tests.sample_fixtures import (digit_images, digit_like, matplotlib_grid, save_torchvision_grid, smooth_images,
                                   stylegan_grid)

from engine.grids import (GridGeometry, detect_grid, forced_geometry, resolve_grid, split_grid, stylegan_grid_shape,
                          tensorboard_grid)


def _read(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _assert_tiles(image: np.ndarray, geometry: GridGeometry, originals: np.ndarray) -> None:
    tiles = split_grid(image, geometry)
    assert [index for index, _ in tiles] == list(range(len(originals)))
    for (index, tile), original in zip(tiles, originals):
        np.testing.assert_array_equal(tile, original, err_msg=f"tile {index}")


def test_dcgan_grid_8x8_of_64px(tmp_path):
    images = smooth_images(np.random.default_rng(0), 64, 64)
    grid = _read(save_torchvision_grid(images, tmp_path / "fake_samples_epoch_003.png"))
    assert grid.shape == (530, 530, 3)  # 8 * (64 + 2) + 2
    geometry = detect_grid(grid)
    assert geometry == GridGeometry(rows=8, cols=8, tile_h=64, tile_w=64, padding=2)
    _assert_tiles(grid, geometry, images)


def test_lucidrains_5x5_grid_with_nrow_sqrt_n(tmp_path):
    images = smooth_images(np.random.default_rng(1), 25, 32)
    grid = _read(save_torchvision_grid(images, tmp_path / "sample-12.png", nrow=5))
    geometry = detect_grid(grid)
    assert (geometry.rows, geometry.cols, geometry.tile_h, geometry.padding) == (5, 5, 32, 2)
    _assert_tiles(grid, geometry, images)


def test_partial_last_row_drops_empty_slots(tmp_path):
    images = smooth_images(np.random.default_rng(2), 13, 32)
    grid = _read(save_torchvision_grid(images, tmp_path / "g.png", nrow=8))
    geometry = detect_grid(grid)
    assert (geometry.rows, geometry.cols) == (2, 8)
    assert len(split_grid(grid, geometry)) == 13
    _assert_tiles(grid, geometry, images)


def test_grid_of_black_background_digits_takes_the_finest_fit(tmp_path):
    images = digit_images(np.random.default_rng(3), 16, 28)
    grid = _read(save_torchvision_grid(images, tmp_path / "digits.png", nrow=4))
    geometry = detect_grid(grid)
    assert geometry == GridGeometry(4, 4, 28, 28, 2)
    _assert_tiles(grid, geometry, images)


@pytest.mark.parametrize("padding", [1, 3, 4, 8])
@pytest.mark.parametrize("pad_value", [0.0, 1.0, 0.5])
def test_torchvision_grids_of_any_padding_and_pad_value(tmp_path, padding, pad_value):
    """``save_image(..., padding=p, pad_value=v)``: 8x8 of 32 px, found by its exact period,
    not a coarser one that also fits (padding 4 every 36 px holds padding 2 every 146)."""
    images = smooth_images(np.random.default_rng(padding), 64, 32)
    grid = _read(save_torchvision_grid(images, tmp_path / "g.png", padding=padding, pad_value=pad_value))
    geometry = detect_grid(grid)
    assert geometry == GridGeometry(8, 8, 32, 32, padding)
    _assert_tiles(grid, geometry, images)


def test_6x6_grid_with_padding_4_and_black_digits_with_padding_8(tmp_path):
    images = smooth_images(np.random.default_rng(9), 36, 48)
    grid = _read(save_torchvision_grid(images, tmp_path / "g.png", nrow=6, padding=4))
    assert detect_grid(grid) == GridGeometry(6, 6, 48, 48, 4)
    digits = digit_images(np.random.default_rng(10), 64, 28)
    grid = _read(save_torchvision_grid(digits, tmp_path / "d.png", nrow=8, padding=8))
    geometry = detect_grid(grid)
    assert geometry == GridGeometry(8, 8, 28, 28, 8)
    _assert_tiles(grid, geometry, digits)


@pytest.mark.parametrize("padding, pad_value, n", [(2, 0.0, 16), (5, 1.0, 16), (2, 0.0, 14)])
def test_torchvision_grid_of_non_square_tiles(tmp_path, padding, pad_value, n):
    """16 (or 14: a partial last row) tiles of 64x128 px are found between their pad lines."""
    images = smooth_images(np.random.default_rng(11), n, 64, 128)
    grid = _read(save_torchvision_grid(images, tmp_path / "g.png", nrow=4, padding=padding, pad_value=pad_value))
    geometry = detect_grid(grid)
    assert (geometry.rows, geometry.cols, geometry.tile_h, geometry.tile_w) == (4, 4, 64, 128)
    _assert_tiles(grid, geometry, images)


def test_a_padded_column_of_wide_tiles_is_split_and_a_pair_is_not(tmp_path):
    """PyTorch-GAN's ESRGAN: ``save_image(torch.cat((imgs_lr, gen_hr), -1), nrow=1)``, a column
    of 4 wide tiles between pad lines, was one sample (wide tiles only counted in 2x2 grids)."""
    images = smooth_images(np.random.default_rng(12), 4, 64, 128)
    column = _read(save_torchvision_grid(images, tmp_path / "c.png", nrow=1))
    geometry = detect_grid(column)
    assert (geometry.rows, geometry.cols, geometry.tile_h, geometry.tile_w) == (4, 1, 64, 128)
    _assert_tiles(column, geometry, images)
    pair = _read(save_torchvision_grid(images[:2], tmp_path / "p.png", nrow=1))
    assert detect_grid(pair) is None  # two framed panels: as likely one figure as two samples


def test_an_unpadded_grid_of_wide_tiles_is_not_read_as_a_strip_of_squares():
    """SPADE's ``tile_images(picturesPerRow=4)``: 8 Cityscapes samples of 64x128 px, 2x4 without
    padding, were read as 4 squares of 128 px, each half of two samples."""
    images = smooth_images(np.random.default_rng(13), 8, 64, 128)
    grid = stylegan_grid(images, 2, 4)
    assert detect_grid(grid) == GridGeometry(2, 4, 64, 128, 0)
    _assert_tiles(grid, detect_grid(grid), images)
    tall = stylegan_grid(smooth_images(np.random.default_rng(14), 6, 96, 48), 2, 3)  # portraits, 2x3
    assert detect_grid(tall) == GridGeometry(2, 3, 96, 48, 0)


def _stretch(images: np.ndarray) -> np.ndarray:
    """Each image min-max scaled to [0, 1], as ``imshow`` scales it to its colour map."""
    images = images.astype(np.float32)
    low, high = images.min(axis=(1, 2), keepdims=True), images.max(axis=(1, 2), keepdims=True)
    return (images - low) / (high - low)


@pytest.mark.parametrize("layout, n, shape", [("tf_dcgan", 16, (4, 4)), ("tight", 16, (4, 4)),
                                              ("keras_gan", 25, (5, 5)), ("partial", 16, (4, 5))])
def test_matplotlib_figure_of_subplots(tmp_path, layout, n, shape):
    """Subplots set apart by white margins a pixel or two uneven: one tile per subplot's image,
    margins left out, each tile its own sample; a figure saved as JPEG too."""
    rng = np.random.default_rng(12)
    samples = smooth_images(rng, n, 28)[..., 0].astype(np.float32) / 127.5 - 1
    for suffix in (".png", ".jpg"):
        figure = _read(matplotlib_grid(samples, tmp_path / f"image_at_epoch_0001{suffix}", layout))
        geometry = detect_grid(figure, lossy=suffix == ".jpg")
        assert (geometry.rows, geometry.cols) == shape and abs(geometry.tile_h - geometry.tile_w) <= 1
        tiles = split_grid(figure, geometry)
        assert [index for index, _ in tiles] == list(range(n))
        if suffix == ".png":  # the margins are left out
            assert (figure[[top - 1 for top in geometry.tops]] == 255).all()
            assert (figure[:, [left - 1 for left in geometry.lefts]] == 255).all()
        small = np.stack([np.asarray(Image.fromarray(t[..., 0]).resize((28, 28), Image.BILINEAR)) for _, t in tiles])
        distance = np.abs(_stretch(small)[:, None] - _stretch(samples)[None]).mean(axis=(2, 3))
        assert (distance.argmin(axis=1) == np.arange(n)).all() and distance.diagonal().max() < 0.06


@pytest.mark.parametrize("caption, title", [("Epoch 3", ""), ("", "cifar samples"), ("Epoch 12", "samples")])
def test_a_figure_of_subplots_with_a_caption_or_title_is_split(tmp_path, caption, title):
    """znxlwm's pytorch-MNIST-CelebA GANs: 5x5 subplots with ``fig.text(0.5, 0.04, 'Epoch N')``
    under them: the caption's lines cross the gaps between columns, and the figure was one sample."""
    images = digit_images(np.random.default_rng(15), 25, 28)[..., 0] / 127.5 - 1
    grid = _read(matplotlib_grid(images, tmp_path / "f.png", "keras_gan", caption=caption, title=title))
    geometry = detect_grid(grid)
    assert geometry is not None and (geometry.rows, geometry.cols) == (5, 5)


def test_unpadded_grid_with_a_partial_last_row_drops_its_uniform_slots():
    """k-diffusion's ``make_grid(x_0, nrow=4, padding=0)`` of 10 samples: the two slots past
    the last sample are make_grid's pad value (gray after its (x + 1) / 2), no samples."""
    import torch
    from torchvision.utils import make_grid

    images = smooth_images(np.random.default_rng(13), 10, 32)
    tensor = make_grid(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255, nrow=4, padding=0, pad_value=0.5)
    grid = (tensor.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    geometry = detect_grid(grid)
    assert geometry == GridGeometry(3, 4, 32, 32, 0)
    assert len(split_grid(grid, geometry)) == 10
    _assert_tiles(grid, geometry, images)


def _object_on_white(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth coloured blob, off centre, on a white background (a product photo)."""
    y, x = np.mgrid[:size, :size] / size
    cy, cx, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.1, 0.25)
    inside = (y - cy) ** 2 + ((x - cx) / 1.3) ** 2 < r ** 2
    image = np.full((size, size, 3), 255, np.uint8)
    image[inside] = smooth_images(rng, 1, size)[0][inside]
    return image


@pytest.mark.parametrize("kind", ["digit_on_black", "object_on_white", "framed_photo", "framed_digits"])
def test_single_images_with_uniform_borders_are_not_split(kind):
    for seed in range(20):
        rng = np.random.default_rng(seed)
        if kind == "digit_on_black":  # a centred digit with a wide black margin
            image = np.pad(digit_like(rng, 28), ((18, 18), (18, 18), (0, 0)))
        elif kind == "object_on_white":
            image = _object_on_white(rng, 128)
        elif kind == "framed_photo":  # a white (or black) frame, as a notebook export draws it
            image = np.pad(smooth_images(rng, 1, 100)[0], ((6, 6), (6, 6), (0, 0)), constant_values=255 * (seed % 2))
        else:  # a digit framed in white: one tile of a separated grid, but one alone
            image = np.pad(255 - digit_like(rng, 64), ((10, 10), (10, 10), (0, 0)), constant_values=255)
        assert detect_grid(image) is None, f"seed {seed}"


def test_single_saved_image_has_no_padding_and_is_not_a_grid(tmp_path):
    image = smooth_images(np.random.default_rng(4), 1, 64)
    saved = _read(save_torchvision_grid(image, tmp_path / "one.png"))
    assert saved.shape == (64, 64, 3)
    assert detect_grid(saved) is None


@pytest.mark.parametrize("size", [28, 32, 64, 130])
def test_natural_digit_like_images_are_not_split(size):
    for seed in range(40):
        image = digit_like(np.random.default_rng(seed), size)
        assert detect_grid(image) is None, f"seed {seed}"


@pytest.mark.parametrize("size", [64, 256, 530, 1024])
def test_noise_images_are_not_split(size):
    noise = np.random.default_rng(size).integers(0, 256, (size, size, 3), dtype=np.uint8)
    assert detect_grid(noise) is None


def test_blank_image_is_not_a_grid():
    assert detect_grid(np.zeros((530, 530, 3), np.uint8)) is None


def test_stylegan_grid_shape_follows_save_image_grid():
    assert stylegan_grid_shape(256) == (16, 30)
    assert stylegan_grid_shape(1024) == (4, 7)
    assert stylegan_grid_shape(32) == (32, 32)


def test_stylegan_unpadded_grid_from_edge_energy():
    rows, cols = stylegan_grid_shape(32)
    images = smooth_images(np.random.default_rng(5), rows * cols, 32)
    grid = stylegan_grid(images, rows, cols)
    geometry = detect_grid(grid)
    assert geometry == GridGeometry(32, 32, 32, 32, 0)
    _assert_tiles(grid, geometry, images)


def test_unpadded_grid_of_other_size():
    images = smooth_images(np.random.default_rng(6), 24, 48)
    grid = stylegan_grid(images, 4, 6)
    assert detect_grid(grid) == GridGeometry(4, 6, 48, 48, 0)


def test_unpadded_grid_with_low_contrast_neighbours_keeps_its_tile_size():
    """Tiles whose left and right neighbours continue each other (no jump at x = 32 and 96):
    still 4x4 of 32 px, not 2x2 of 64 px, whose boundaries all show edges."""
    rng = np.random.default_rng(7)
    images = smooth_images(rng, 16, 32)
    ramp = np.linspace(0, 1, 64)[None, :, None]
    for row in range(4):
        for col in (0, 2):  # the pair (col, col + 1): one 64-px gradient cut in two tiles
            a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
            pair = np.repeat((a + (b - a) * ramp), 32, axis=0).astype(np.uint8)
            images[row * 4 + col], images[row * 4 + col + 1] = pair[:, :32], pair[:, 32:]
    grid = stylegan_grid(images, 4, 4)
    assert detect_grid(grid) == GridGeometry(4, 4, 32, 32, 0)


def test_forced_geometry_infers_padding(tmp_path):
    images = smooth_images(np.random.default_rng(7), 64, 64)
    padded = _read(save_torchvision_grid(images, tmp_path / "g.png"))
    assert forced_geometry(padded, grid=(8, 8)) == GridGeometry(8, 8, 64, 64, 2)
    assert forced_geometry(padded, tile_size=64) == GridGeometry(8, 8, 64, 64, 2)
    assert resolve_grid(padded, (8, 8), 64) == GridGeometry(8, 8, 64, 64, 2)
    digits = digit_images(np.random.default_rng(8), 12, 32)
    unpadded = stylegan_grid(digits, 3, 4)
    # no edge at the flat black tile borders, but every border falls in the tiles' margins
    assert detect_grid(unpadded) == GridGeometry(3, 4, 32, 32, 0)
    geometry = resolve_grid(unpadded, tile_size=32)
    assert geometry == GridGeometry(3, 4, 32, 32, 0)
    _assert_tiles(unpadded, geometry, digits)


@pytest.mark.parametrize("n, nrow, tile", [(16, 4, 32), (10, 4, 32), (64, 8, 16), (25, 5, 64)])
def test_jpeg_grids_are_split_though_their_pad_lines_are_not_one_value(tmp_path, n, nrow, tile):
    """BigGAN-PyTorch's ``fixed_samples5000.jpg`` and lucidrains stylegan2-pytorch's ``12.jpg``
    are torchvision grids saved as JPEG (quality 75): found and split, empty slots dropped,
    and forcing the geometry works too; single JPEG images stay whole."""
    import torch
    from torchvision.utils import save_image

    rng = np.random.default_rng(n + tile)
    images = smooth_images(rng, n, tile) if n != 64 else rng.integers(0, 256, (n, tile, tile, 3), dtype=np.uint8)
    save_image(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255, tmp_path / "g.jpg", nrow=nrow)
    grid = _read(tmp_path / "g.jpg")
    assert detect_grid(grid) is None  # read as exact pad lines: no grid
    rows = -(-n // nrow)
    expected = GridGeometry(rows, nrow, tile, tile, 2)
    geometry = detect_grid(grid, lossy=True)
    assert (geometry.rows, geometry.cols, geometry.tile_h, geometry.padding) == (rows, nrow, tile, 2)
    tiles = split_grid(grid, geometry)
    assert [index for index, _ in tiles] == list(range(n))
    distance = np.abs(np.stack([t for _, t in tiles]).astype(int)[:, None] - images[None].astype(int)).mean(axis=(2, 3, 4))
    assert (distance.argmin(axis=1) == np.arange(n)).all()  # each tile is its sample, but for JPEG's loss
    forced = resolve_grid(grid, (rows, nrow), lossy=True)
    assert (forced.rows, forced.cols, forced.tile_h, forced.padding) == (expected.rows, expected.cols, tile, 2)
    assert len(split_grid(grid, forced)) == n
    Image.fromarray(smooth_images(rng, 1, rows * (tile + 2) + 2)[0]).save(tmp_path / "one.jpg")
    assert detect_grid(_read(tmp_path / "one.jpg"), lossy=True) is None


@pytest.mark.parametrize("dim", [1, 2])
def test_forced_geometry_of_grids_stacked_one_per_row(dim):
    """PyTorch-GAN's CycleGAN: ``torch.cat((make_grid(real_A, nrow=5), make_grid(fake_B,
    nrow=5), ...), 1)``: 4 px between rows where each grid's pads meet; of dark samples
    nothing is found, and ``--grid 4x5`` was refused ("Got 332x272")."""
    import torch
    from torchvision.utils import make_grid

    images = digit_images(np.random.default_rng(16), 20, 32)
    batches = torch.from_numpy(images).permute(0, 3, 1, 2).split(5)
    if dim == 1:  # one grid per row
        stacked = torch.cat([make_grid(b, nrow=5) for b in batches], 1)
    else:  # one grid per column, side by side
        stacked = torch.cat([make_grid(b, nrow=1) for b in batches], 2)
    image = np.ascontiguousarray(stacked.permute(1, 2, 0).numpy())
    grid = (4, 5) if dim == 1 else (5, 4)
    geometry = forced_geometry(image, grid)
    assert (geometry.rows, geometry.cols, geometry.tile_h, geometry.tile_w) == (*grid, 32, 32)
    order = np.arange(20) if dim == 1 else np.arange(20).reshape(4, 5).T.ravel()
    _assert_tiles(image, geometry, images[order])


def test_forced_geometry_prefers_pad_lines_that_show_over_no_padding(tmp_path):
    """``make_grid(padding=4)``: 148 px for 4 tiles of 32 also divides into 4 of 37 unpadded;
    the pad lines that are there decide."""
    images = smooth_images(np.random.default_rng(3), 16, 32)
    grid = _read(save_torchvision_grid(images, tmp_path / "g.png", nrow=4, padding=4))
    assert grid.shape[:2] == (148, 148)
    assert forced_geometry(grid, grid=(4, 4)) == GridGeometry(4, 4, 32, 32, 4)
    _assert_tiles(grid, forced_geometry(grid, grid=(4, 4)), images)
    with pytest.raises(ValueError, match=r"splits into 33px tiles\. Got 148x148"):
        forced_geometry(grid, tile_size=33)


def test_forced_geometry_that_does_not_fit_says_so():
    image = np.zeros((531, 530, 3), np.uint8)
    with pytest.raises(ValueError, match=r"8x8 grid of 64px tiles\. Got 530x531"):
        forced_geometry(image, grid=(8, 8), tile_size=64)


@pytest.mark.parametrize("nrow", [6, 8, 10])
def test_unpadded_grids_of_black_background_digits_split_at_their_margins(tmp_path, nrow):
    """``make_grid(..., padding=0)`` of 28-px digits: no edge at the tiles' black borders, and
    a padding of 4 fits by chance (MNIST's 4-px margins: 2x2 digits per 51-px "tile")."""
    digits = digit_images(np.random.default_rng(nrow), nrow * nrow, 28)
    grid = _read(save_torchvision_grid(digits, tmp_path / "g.png", nrow=nrow, padding=0))
    geometry = detect_grid(grid)
    assert geometry == GridGeometry(nrow, nrow, 28, 28, 0, geometry.blank_tolerance)
    _assert_tiles(grid, geometry, digits)


@pytest.mark.parametrize("factor", [4, 8, 32])
def test_a_pixel_repeated_single_image_is_not_split_at_its_blocks(factor):
    """A nearest-neighbour upscaled sample or pixel art jumps at every block boundary, and
    nothing changes inside a block: its blocks are pixels, not tiles."""
    for seed in range(5):
        rng = np.random.default_rng(seed)
        small = digit_like(rng, 28) if factor == 8 else smooth_images(rng, 1, 16 if factor == 32 else 32)[0]
        assert detect_grid(np.repeat(np.repeat(small, factor, axis=0), factor, axis=1)) is None, f"seed {seed}"


def test_objects_side_by_side_in_one_row_are_one_picture():
    """Three objects on white in one 768x256 row: cells of 256 px with white boundaries, but
    an unpadded grid of tiles with margins is taken only from 2x2 on."""
    row = np.concatenate([_object_on_white(np.random.default_rng(s), 256) for s in range(3)], axis=1)
    assert detect_grid(row) is None


# --- torch.utils.tensorboard's add_images grids (engine.tensorboard_images) ----------------------

def _add_images_grid(images: np.ndarray) -> np.ndarray:
    """The image ``SummaryWriter.add_images`` logs for an NHWC uint8 batch (torch's own layout code)."""
    from torch.utils.tensorboard._utils import convert_to_HWC
    return convert_to_HWC(images.transpose(0, 3, 1, 2), "NCHW")


def _noisy(images: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    return np.clip(images + rng.normal(0, sigma, images.shape), 0, 255).astype(np.uint8)


def _photos(n: int, size: int) -> np.ndarray:
    """Crops of scikit-learn's two sample photographs (shipped with it), resized."""
    from sklearn.datasets import load_sample_images
    photos = load_sample_images().images
    crops = [photos[k % 2][20 * k:20 * k + 400, 40 * k:40 * k + 400] for k in range(n)]
    return np.stack([np.asarray(Image.fromarray(c).resize((size, size), Image.BILINEAR)) for c in crops])


@pytest.mark.parametrize("case, n, size, expected", [
    ("smooth", 16, 32, (2, 8)), ("smooth", 16, 64, (2, 8)), ("smooth", 12, 32, (2, 8)), ("smooth", 24, 32, (3, 8)),
    ("smooth", 64, 32, (8, 8)), ("smooth", 4, 64, (1, 4)), ("smooth", 8, 64, (1, 8)), ("smooth", 2, 64, (1, 2)),
    ("noisy", 16, 32, (2, 8)), ("noisy", 16, 64, (2, 8)),  # a young diffusion model's samples
    ("noise", 16, 32, (2, 8)),  # its very first: nothing tells, and 16 test samples are the likelier batch
    ("photos", 4, 128, (1, 4)), ("photos", 4, 512, (1, 4)),  # diffusers' 4 validation images
    ("mnist", 4, 28, (1, 4)), ("mnist", 16, 28, (2, 8)), ("mnist", 64, 28, (8, 8)),
    ("photos", 1, 512, None), ("photos", 1, 256, None), ("smooth", 1, 64, None), ("noise", 64, 32, None),
])
def test_add_images_grids_are_split_as_torch_laid_them_out(case, n, size, expected):
    rng = np.random.default_rng(n * size)
    images = {"smooth": lambda: smooth_images(rng, n, size),
              "noisy": lambda: _noisy(smooth_images(rng, n, size), rng, 40),
              "noise": lambda: rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
              "photos": lambda: _photos(n, size),
              "mnist": lambda: digit_images(rng, n, size)}[case]()
    grid = _add_images_grid(images)
    geometry = detect_grid(grid) or tensorboard_grid(grid)
    if expected is None:  # a single sample (or one that cannot be told from one) stays whole
        assert geometry is None
        return
    assert (geometry.rows, geometry.cols, geometry.tile_h, geometry.tile_w) == (*expected, size, size)
    _assert_tiles(grid, geometry, images)


def _photo_crops(sizes: list[int], per_size: int) -> list[np.ndarray]:
    """Crops of scikit-learn's two sample photos (real JPEG content: texture, sky, edges)."""
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    rng = np.random.default_rng(1)
    crops = []
    for size in sizes:
        for k in range(per_size):
            photo = photos[k % 2]
            top, left = rng.integers(0, photo.shape[0] - size), rng.integers(0, photo.shape[1] - size)
            crops.append(photo[top:top + size, left:left + size])
    return crops


def _jpeg(image: np.ndarray, path, quality: int = 75) -> np.ndarray:
    Image.fromarray(image).save(path, quality=quality)
    return _read(path)


@pytest.mark.parametrize("nrow, tile", [(4, 512), (4, 128), (2, 256)])
def test_jpeg_grids_with_mid_gray_padding_of_mid_toned_samples_are_split(tmp_path, nrow, tile):
    """latent-diffusion's ImageLogger family (textual_inversion, DreamBooth forks) does
    ``make_grid(x)`` on [-1, 1] samples then ``(grid + 1) / 2``: the pad is mid-gray. Saved
    as a q75 JPEG, the tiles' colours bleed into the 2-px lines (chroma is halved), so the
    lines are found in the luma, and tiles of mid-toned samples are split too."""
    import torch
    from torchvision.utils import make_grid

    yy, xx = np.mgrid[0:tile, 0:tile] / tile
    samples = torch.tensor(np.stack([0.5 + 0.2 * np.stack([np.sin(3 * xx + i), np.cos(2 * yy + i), np.sin(xx + yy + i)])
                                     for i in range(8)]), dtype=torch.float32) * 2 - 1
    grid = (make_grid(samples, nrow=nrow) + 1) / 2
    image = _jpeg((grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), tmp_path / "samples_gs-000500.jpg")
    geometry = detect_grid(image, lossy=True)
    assert geometry is not None and (geometry.rows, geometry.cols, geometry.tile_h, geometry.padding) == (
        8 // nrow, nrow, tile, 2)
    assert len(split_grid(image, geometry)) == 8
    forced = resolve_grid(image, (8 // nrow, nrow), lossy=True)
    assert (forced.tile_h, forced.padding) == (tile, 2)


def test_jpeg_photos_are_not_cut_along_their_8px_blocks(tmp_path):
    """JPEG quantises each 8x8 block alone, so a photo steps at every 8th line: a single
    128- or 256-px photo showed 'edges' at most 16/32/64/128-px boundaries and was split."""
    for index, photo in enumerate(_photo_crops([128, 256], 30)):  # the code before split 5 of the 60
        image = _jpeg(photo, tmp_path / f"{index}.jpg")
        assert detect_grid(image, lossy=True) is None, f"crop {index}"


def test_unpadded_jpeg_grids_of_photos_are_not_split_at_half_their_tile(tmp_path):
    """A StyleGAN-style grid (no padding) of 64- and 128-px photos saved as q75 JPEG: block
    steps inside the tiles made half the tile size look like the grid."""
    for tile, first in ((128, 12), (64, 16)):
        tiles = _photo_crops([tile], first + 28)[first:]
        image = _jpeg(stylegan_grid(np.stack(tiles), 4, 7), tmp_path / f"fakes{tile}.jpg")
        geometry = detect_grid(image, lossy=True)
        assert geometry is not None and geometry.tile_h == tile, (tile, geometry)


def test_unpadded_strips_of_square_samples_are_split_and_wide_photos_are_not(tmp_path):
    """glide-finetune's ``outputs/{step}.png`` puts a batch side by side without padding
    (``permute(2, 0, 3, 1).reshape(H, -1, 3)``), pytorch_GAN_zoo's high scales a 1x16 strip:
    stored as one sample before. A photo of the same 4:1 or 1:4 shape stays whole."""
    from sklearn.datasets import load_sample_images

    samples = smooth_images(np.random.default_rng(21), 4, 64)
    strip = np.concatenate(list(samples), axis=1)
    assert detect_grid(strip) == GridGeometry(1, 4, 64, 64, 0)
    _assert_tiles(strip, detect_grid(strip), samples)
    column = np.concatenate(list(samples[:3]), axis=0)
    assert detect_grid(column) == GridGeometry(3, 1, 64, 64, 0)
    assert detect_grid(strip[:, :128]) is None  # two side by side: a picture with an edge down its middle
    crops = _photo_crops([64], 16)
    jpeg = _jpeg(np.concatenate(crops, axis=1), tmp_path / "s5_i16000.jpg")
    assert detect_grid(jpeg, lossy=True) == GridGeometry(1, 16, 64, 64, 0, blank_tolerance=4.0)
    for photo in load_sample_images().images:
        for shape in ((100, 400), (400, 100)):
            wide = np.asarray(Image.fromarray(photo).resize(shape[::-1]))
            assert detect_grid(wide) is None and detect_grid(_jpeg(wide, tmp_path / "w.jpg"), lossy=True) is None


def test_a_lossy_unpadded_grids_empty_slots_are_dropped(tmp_path):
    """Sana's ``log_vis/vis_{step}_w_init.webp``: the samples 5 per row, unpadded, the last
    row's slots filled black, saved as WebP: the near-black slots (values up to ~20 after the
    loss) were kept as 4 samples."""
    crops = _photo_crops([64], 6)
    slots = crops + [np.zeros((64, 64, 3), np.uint8)] * 4
    grid = np.concatenate([np.concatenate(slots[:5], axis=1), np.concatenate(slots[5:], axis=1)], axis=0)
    Image.fromarray(grid).save(tmp_path / "vis_500_w_init.webp", quality=80)
    image = _read(tmp_path / "vis_500_w_init.webp")
    geometry = detect_grid(image, lossy=True)
    assert (geometry.rows, geometry.cols, geometry.tile_h) == (2, 5, 64)
    assert [index for index, _ in split_grid(image, geometry)] == list(range(6))


def _striped_images(rng: np.random.Generator, n: int, height: int, width: int | None = None) -> np.ndarray:
    """Samples of smooth sinusoid stripes (1 to 6 periods) and a disc: smooth, so the edges
    between two of them are often no steeper than the stripes inside them."""
    width = width or height
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    out = np.empty((n, height, width, 3), np.uint8)
    for i in range(n):
        fx, fy = rng.uniform(1, 6, 2)
        pattern = np.sin(2 * np.pi * fx * xx + rng.uniform(0, 2 * np.pi)) * np.cos(2 * np.pi * fy * yy)
        image = rng.uniform(0, 255, 3) * 0.6 + 90 * pattern[..., None] * np.array([-1, 1, -1]) + 40
        cy, cx, radius = *rng.uniform(0.2, 0.8, 2), rng.uniform(0.1, 0.25)
        image[(yy - cy * height / max(height, width)) ** 2 + (xx - cx * width / max(height, width)) ** 2 < radius ** 2] \
            = rng.uniform(0, 255, 3)
        out[i] = np.clip(image, 0, 255)
    return out


@pytest.mark.parametrize("rows, cols, seed", [(3, 6, 0), (2, 4, 27), (3, 4, 27), (2, 8, 3), (5, 4, 4),
                                                 (6, 8, 23), (6, 8, 36)])
def test_unpadded_grids_of_striped_square_samples_are_not_read_as_wide_tiles(rows, cols, seed):
    """k-diffusion's ``make_grid(padding=0)`` of 32-px samples (and add_images' 2x8): their
    smooth edges failed the per-side edge test where a 2:1 reading, keeping only the strongest
    boundaries, passed it: 3x6 read as 3x3 of 32x64, each tile two samples (6x8 as 2x8 of 96x32)."""
    images = _striped_images(np.random.default_rng(seed), rows * cols, 32)
    grid = stylegan_grid(images, rows, cols)
    assert detect_grid(grid) == GridGeometry(rows, cols, 32, 32, 0)


@pytest.mark.parametrize("n, nrow, shape", [(12, 4, (96, 64)), (10, 4, (96, 64)), (16, 4, (128, 256))])
def test_a_jpeg_grid_of_non_square_samples_keeps_its_last_row(tmp_path, n, nrow, shape):
    """torchvision grids (padding 2) of non-square samples saved as JPEG: the last row's smooth
    samples were taken for empty slots (within the lossy pad tolerance of their own mean) and
    dropped, 8 of 12, silently. Empty slots are the pad value, as in a padded grid."""
    images = _striped_images(np.random.default_rng(n), n, *shape)
    grid = _jpeg(_read(save_torchvision_grid(images, tmp_path / "g.png", nrow=nrow)), tmp_path / "g.jpg", 85)
    geometry = detect_grid(grid, lossy=True)
    assert (geometry.rows, geometry.cols, geometry.tile_h, geometry.tile_w) == (-(-n // nrow), nrow, *shape)
    assert [index for index, _ in split_grid(grid, geometry)] == list(range(n))
