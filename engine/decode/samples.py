"""A checkpoint's files decoded into samples (:func:`iter_samples`): grids split, ids and labels given."""
from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from engine.decode.images import load_image, load_pages
from engine.decode.instance_ids import _say_unnumbered, folder_name_ids, key_ids_and_labels, name_ids, sample_keys
from engine.decode.labels import folder_labels, labels_table
from engine.decode.pixels import pixel_scaling, to_rgb, uint8_rows
from engine.decode.skip import SkipFile, _diverged
from engine.decode.tensors import label_text, load_tensor_file
from engine.discovery.options import TENSOR_EXTENSIONS, DiscoveryOptions
from engine.discovery.ready import checkpoint_path
from engine.discovery.steps import last_integer
from engine.grids import MIN_TILE, detect_grid, resolve_grid, select_tiles, split_grid
from engine.records import Checkpoint, Sample, SkippedFile
from stores.format import MAX_INSTANCE, listed


log = logging.getLogger(__name__)


#: Formats whose grids' pad lines are not one exact value.
LOSSY_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif", ".webp", ".avif", ".jp2")


class _Context:
    """What every file of one checkpoint needs: relative names, labels and instance ids."""

    def __init__(self, checkpoint: Checkpoint, options: DiscoveryOptions) -> None:
        self.checkpoint, self.options = checkpoint, options
        self.folder = checkpoint_path(checkpoint)
        self.table = labels_table(checkpoint, options)
        self.folders = folder_labels(checkpoint, options)
        # A checkpoint that is one file carries its step in its name, not an instance id: its one
        # image is sample 0 of the file, as a grid's first tile is (it was -1, followed nowhere).
        key_ids, self.key_labels = key_ids_and_labels(sample_keys(checkpoint.files, self.folder))
        self.ids = dict.fromkeys(checkpoint.files[:1], 0) if self.folder.is_file() else \
            key_ids or name_ids(checkpoint.files, self.folder.name)
        generated = checkpoint.kind == "generated"  # a reference set's images align with nothing
        if generated and len(self.ids) < len(checkpoint.files) and (
                by_folder := folder_name_ids(checkpoint.files, self.folders)):
            self.ids = by_folder
        # the store keeps ids as int32: a seed in the name (AUTOMATIC1111's 00000-3141592653.png,
        # up to 2**32-1) or a photo's id (Flickr's 53241234567.jpg) ended the watch
        self.ids = {path: number for path, number in self.ids.items() if 0 <= number <= MAX_INSTANCE}
        #: images left without an id though the names number them (said unless they are grids)
        unnumbered = [f for f in checkpoint.files if f not in self.ids and f.suffix.lower() not in TENSOR_EXTENSIONS]
        self.unnumbered = unnumbered if generated and (self.ids or any(last_integer(f.stem) is not None for f in unnumbered)) \
            and not self.folder.is_file() and "?" not in self.folder.name else []
        # Forced geometry describes the trainer's grids, never a reference data set.
        self.grid = options.grid if generated else None
        self.tile_size = options.tile_size if generated else None
        self.tile_rows = options.tile_rows if generated else None
        self.tile_cols = options.tile_cols if generated else None

    def name(self, path: Path) -> str:
        try:
            return path.relative_to(self.checkpoint.root).as_posix()
        except ValueError:
            return path.name

    def label(self, path: Path, instance: int, tile: int | None = None) -> str | None:
        """The labels file's entry for a sample, else its label folder's name, else the prompt
        or class its name gives."""
        if tile is not None:
            keys = [str(instance), f"{path.name}#{tile}"]
        else:
            keys = [self.name(path), path.name, path.stem] + ([str(instance)] if instance >= 0 else [])
            if path.is_relative_to(self.folder):
                keys.insert(0, path.relative_to(self.folder).as_posix())
        found = next((self.table[k] for k in keys if k in self.table), None)
        if found is None:
            found = self.folders.get(path)
        return found if found is not None else self.key_labels.get(path)


#: Why an image is skipped when ``--tile-rows``/``--tile-cols`` ask for tiles of it and no grid
#: is found in it (a sample file, or an image logged to TensorBoard).
NO_GRID_TO_SLICE = ("no grid found to keep rows or columns of (tiles too alike or too noisy to tell apart); "
                    "force its geometry with --grid ROWSxCOLS")


def _misfit(reason: str) -> SkipFile:
    exc = SkipFile(reason)
    exc.misfit = True
    return exc


def _grid_or_image(path: Path, ctx: _Context, split: bool, offset: int) -> Iterator[Sample]:
    value_range = ctx.options.value_range
    pages = load_pages(path, value_range) if path.suffix.lower() in (".tif", ".tiff") else [load_image(path, value_range)]
    name = ctx.name(path)
    if len(pages) > 1 or pages[0] is None:  # a stack of samples, each page one, never split (a tensor file's rows)
        for page, image in enumerate(pages):
            if image is not None:
                yield Sample(image=image, instance=offset + page, path=f"{name}#{page}",
                             label=ctx.label(path, offset + page, page))
        if bad := [str(page) for page, image in enumerate(pages) if image is None]:  # said as uint8_rows says rows
            exc = _diverged(f"{len(bad)} of {len(pages)} pages hold NaN or infinite values "
                            f"(page{'s' if len(bad) > 1 else ''} {listed(bad, 5)}), not stored")
            exc.rows = len(pages)
            raise exc
        return
    image = pages[0]
    geometry = None
    if split:
        try:
            geometry = resolve_grid(image, ctx.grid, ctx.tile_size, lossy=path.suffix.lower() in LOSSY_EXTENSIONS)
        except ValueError as exc:
            raise _misfit(str(exc)) from None
    if geometry is None and split and (ctx.tile_rows or ctx.tile_cols):  # the user's choice cannot be made
        raise _misfit(NO_GRID_TO_SLICE)
    if geometry is None:
        instance = ctx.ids.get(path, -1)
        yield Sample(image=image, instance=instance, path=name, label=ctx.label(path, instance))
        return
    try:
        tiles = select_tiles(split_grid(image, geometry), geometry, ctx.tile_rows, ctx.tile_cols)
    except ValueError as exc:
        raise _misfit(str(exc)) from None
    for tile_index, tile in tiles:
        instance = offset + tile_index
        yield Sample(image=tile, instance=instance, path=f"{name}#{tile_index}",
                     label=ctx.label(path, instance, tile_index))


def _sheets_of_grids(images: Sequence[Path], value_range: tuple[float, float] | None) -> bool:
    """Whether a checkpoint's several images are sheets of samples (then each may be a grid):
    its first and last images are grids of one tile size, at least 2 * MIN_TILE px (BigGAN's
    ``samples0.jpg``, 10 x 10, beside ``interpZ0.jpg``, 16 x 10).
    A folder of single samples whose first one the detector takes for a grid (a small
    nearest-neighbour upscaled digit on black) must not be cut into blocks, every file of it."""
    found = []
    for path in (images[0], images[-1]):
        try:
            image = load_image(path, value_range)
        except SkipFile:
            return False
        grid = detect_grid(image, lossy=path.suffix.lower() in LOSSY_EXTENSIONS)
        if grid is None or min(grid.tile_h, grid.tile_w) < 2 * MIN_TILE:
            return False
        found.append((grid.tile_h, grid.tile_w))
    return found[0] == found[1]


def _tensor_samples(path: Path, ctx: _Context, offset: int) -> Iterator[Sample]:
    images, labels, latents, said_range = load_tensor_file(path, reference=ctx.checkpoint.kind != "generated")
    name = ctx.name(path)
    try:
        # the file's own range wins, as a sampler's does (round AT: under --value-range tanh, a
        # save_samples batch read otherwise on the steps where a sample held NaN)
        value_range = pixel_scaling(images, said_range or ctx.options.value_range)
        for row, pixels in uint8_rows(images, value_range):
            instance = offset + row
            # an empty label is none, as in a labels file (save_samples stores None so)
            label = (label_text(labels[row]) or None) if labels is not None else ctx.label(path, instance, row)
            latent = np.asarray(latents[row], dtype=np.float32).reshape(-1) if latents is not None else None
            yield Sample(image=to_rgb(pixels), instance=instance, path=f"{name}#{row}", label=label, latent=latent)
    except SkipFile as exc:
        exc.rows = len(images)
        raise


_last_context: tuple[tuple, _Context, bool] | None = None


def _context(checkpoint: Checkpoint, options: DiscoveryOptions, content_hash: str | None) -> tuple[_Context, bool]:
    """A checkpoint's :class:`_Context`, and whether its images are split as grids. Made once
    per version of a checkpoint (its ``content_hash``) in a process, not once per part of a
    large folder: each of the 78 parts of 20,000 files went over all 20,000 names (17x the
    CPU of 2,000 files)."""
    global _last_context
    key = (checkpoint.source, content_hash, options)
    if content_hash is None or _last_context is None or _last_context[0] != key:
        ctx = _Context(checkpoint, options)
        images = [f for f in checkpoint.files if f.suffix.lower() not in TENSOR_EXTENSIONS]
        split = ctx.grid is not None or ctx.tile_size is not None or len(images) == 1 or (
            len(images) > 1 and checkpoint.kind == "generated" and _sheets_of_grids(images, options.value_range))
        _last_context = (key, ctx, split)
    return _last_context[1], _last_context[2]


def iter_samples(checkpoint: Checkpoint, options: DiscoveryOptions | None = None,
                 files: Sequence[Path] | None = None, content_hash: str | None = None) -> Iterator[Sample | SkippedFile]:
    """Every sample of a checkpoint, file by file, in file order; unreadable files are skipped.

    ``files``: only these of the checkpoint's files (one decode worker's part of a large
    folder of single images); names, instance ids, labels and grid detection still come from
    the whole checkpoint, worked out once per ``content_hash`` (the checkpoint's version)
    when it is given. Raises :class:`DiscoveryError` only for a labels file that cannot be
    read (a setting, not a sample).
    """
    options = options or DiscoveryOptions()
    ctx, split = _context(checkpoint, options, content_hash)
    if ctx.unnumbered and not split:
        _say_unnumbered(checkpoint, ctx.unnumbered)
    offset = 0  # instance ids of multi-sample files (grids, tensors) continue across files
    for path in checkpoint.files if files is None else files:
        is_tensor = path.suffix.lower() in TENSOR_EXTENSIONS
        produced = _tensor_samples(path, ctx, offset) if is_tensor else _grid_or_image(path, ctx, split, offset)
        after, multi = offset, False  # past the file's last instance (a grid's rows left out too)
        whole = ctx.name(path)  # a single image's sample path; a grid's, a stack's or a tensor's are NAME#i
        try:
            for sample in produced:
                after = max(after, sample.instance + 1)
                multi = multi or sample.path != whole  # not "#" in it: an image named x#5.png moved the next file's ids
                yield sample
        except SkipFile as exc:  # the consumer logs it and records it in the store
            yield SkippedFile(path=ctx.name(path), reason=str(exc), misfit=exc.misfit, diverged=exc.diverged)
            if exc.rows:  # a tensor file's rows, some or all left out: the next file's ids follow them all
                after, multi = max(after, offset + exc.rows), True
        except Exception as exc:  # never one file's failure the whole ingest's: named, recorded, the rest goes on
            log.debug("reading %s failed", path, exc_info=True)
            yield SkippedFile(path=ctx.name(path), reason=f"could not be read ({type(exc).__name__}: {exc})")
        if multi:
            offset = after

