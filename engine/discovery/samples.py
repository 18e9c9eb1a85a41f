"""Which files below a folder are its samples: none of the trainer's real data or weights, nor
a grid of the single samples beside them; and hidden folders that hold samples, to be said."""
from __future__ import annotations

import collections
import logging
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from engine.backlog_log import counted
from engine.decode.tensors import header_samples
from engine.discovery.copies import copies_line, is_copy_beside, videos_line
from engine.discovery.folders import _is_hidden_dir, _relative, folder_entries, walk_files
from engine.discovery.names import SAMPLE_WORDS, is_plot_file, is_real_data, is_sample_name
from engine.discovery.options import IMAGE_EXTENSIONS, TENSOR_EXTENSIONS, VIDEO_EXTENSIONS, DiscoveryOptions
from engine.discovery.previews import could_picture, previews_line, shows_fewer
from engine.discovery.said_once import warn_once
from engine.discovery.steps import _FIRST_INT
from engine.listings import is_dir as _is_dir
from engine.listings import kept_while_listed_alike
from stores.format import listed

log = logging.getLogger(__name__)


#: Folders whose tensor files are weights whatever their names (rosinality's ``checkpoint/000000.pt``).
#: AUTOMATIC1111's ``textual_inversion/DATE/NAME/hypernetworks/NAME-500.pt`` (and ``embeddings/``).
WEIGHT_FOLDER = re.compile(r"(?:checkpoints?|ckpts?|weights|models?|saved_models|snapshots?|embeddings|hypernetworks"
                            r"|loras?)", re.IGNORECASE)


#: A folder of training data inside the trainer's working directory (SAGAN's ``./data/CelebA/``,
#: watched from where it runs: every image was a checkpoint).
_DATA_FOLDER = re.compile(r"data(?:sets?)?", re.IGNORECASE)


def _is_real_data_folder(name: str, options: DiscoveryOptions) -> bool:
    return is_real_data(name, options) or (not options.samples_chosen
                                            and bool(_DATA_FOLDER.fullmatch(name)))


def _is_generated_sample(path: Path, options: DiscoveryOptions) -> bool:
    return is_sample_name(path.name, options) and not is_real_data(path.name, options)


def _unnamed_tensor(path: Path) -> bool:
    """A tensor file whose name does not call it samples (``010000.pt``,
    ``SNResNetProjectionDiscriminator_5000.npz``): beside a folder of sample images, a
    trainer's weights or state (StyleSwin writes ``CKPT/{iter:06d}.pt`` where its README puts
    the samples too); sample tensors are named so (``samples_1000.npz``, ``fakes_3.pt``)."""
    return path.suffix.lower() in TENSOR_EXTENSIONS and not SAMPLE_WORDS.search(path.stem)


def _weights_by_folder(path: Path, folder_name: str) -> bool:
    """A tensor file in a folder named for weights (rosinality's ``checkpoint/000000.pt``) is
    weights, whatever its name, unless that names it a sample file."""
    return bool(WEIGHT_FOLDER.fullmatch(folder_name)) and _unnamed_tensor(path)


def _generated_files(folder: Path, options: DiscoveryOptions, listed: Iterable[Path] | None = None) -> Iterator[Path]:
    """A checkpoint folder's sample files (of ``listed``, its files if given), none of real data:
    by name, or below a folder named so (``step_1000/real/`` beside ``step_1000/fake/``); no
    tensors in a weights folder (DiT's ``results/000-DiT-XL-2/checkpoints/0100000.pt``)."""
    for path in walk_files(folder) if listed is None else listed:
        parent = os.path.dirname(path) or os.curdir  # a file right in Path("."): "" (relpath refused it)
        parts = _relative(parent, folder).split(os.sep) if parent != os.fspath(folder) else ()
        if _is_generated_sample(path, options) and not any(
                _is_real_data_folder(part, options) or _weights_by_folder(path, part) for part in parts):
            yield path


#: A picture of a checkpoint's single samples put together (stable-diffusion's txt2img writes
#: ``grid-0000.png`` beside ``samples/00000.png`` …): read, it was one more sample, and took
#: the instance id 0 from ``00000.png``.
_GRID_OF_SAMPLES = re.compile(r"grids?(?:[-_]\d+)?", re.IGNORECASE)


def sample_files(folder: Path, options: DiscoveryOptions, generated: bool = True) -> list[Path]:
    """The sample files below ``folder``, sorted by path (of a checkpoint: none of real data,
    nor a grid of the single samples beside it, nor a tensor file beside an image of its name:
    ``iter_1000/sample.npz`` beside ``sample.png``, the same samples twice; unless the tensor
    holds more than the image can show: the image, a preview of some, is left out instead; nor
    another file that repeats a sibling, as on a run's level: :func:`_without_copies`)."""
    files, pairs = _sample_files(folder, options, generated)
    return _one_of_each_pair(folder, files, pairs) if pairs else list(files)


def _one_of_each_pair(folder: Path, files: tuple[Path, ...], pairs: tuple[tuple[Path, Path], ...]) -> list[Path]:
    """``files`` without one of each (tensor, image) pair of a name: asked at every pass, apart from
    the kept listings, as a file rewritten in place leaves its folder's times as they were."""
    packed, previews = [], []
    for tensor, image in pairs:
        if fewer := shows_fewer(image, tensor):
            previews.append((image, tensor, fewer))
        else:
            packed.append(tensor)
    if packed:
        warn_once(folder.parent, f"{folder}: {', '.join(p.name for p in packed[:2])} beside an image of "
                                 f"{'its' if len(packed) == 1 else 'their'} name: the same samples packed, not read "
                                 "again (--samples GLOB picks one)", about="packed beside image", say=log.info)
    if previews:
        warn_once(folder.parent, previews_line(folder, previews), about="preview beside tensor", say=log.info)
    left_out = {*packed, *(image for image, _, _ in previews)}
    return [p for p in files if p not in left_out]


def _say_not_read(folder: Path, names: list[str], named_as: str, about: str) -> None:
    """Say once a run (an info line) that a checkpoint's files ``names``, named as ``named_as``, are no samples."""
    warn_once(folder.parent, f"{folder}: {counted(len(names), 'file')} named as {named_as} "
                             f"({listed(names, 2)}) not read as samples "
                             "(--samples GLOB reads them)", about=about, say=log.info)


@kept_while_listed_alike
def _sample_files(folder: Path, options: DiscoveryOptions,
                  generated: bool) -> tuple[tuple[Path, ...], tuple[tuple[Path, Path], ...]]:
    """(the sample files, its (tensor, image) pairs of a name: one of each is left out by :func:`_one_of_each_pair`)."""
    if not generated:
        return tuple(sorted(p for p in walk_files(folder) if is_sample_name(p.name, options, reference=True))), ()
    listed = list(walk_files(folder))
    files = sorted(_generated_files(folder, options, listed))
    if options.samples_chosen:
        return tuple(files), ()
    if reals := [p.name for p in listed if is_sample_name(p.name, options) and is_real_data(p.name, options)]:
        _say_not_read(folder, reals, "real data or made from it", about="reals in checkpoints")
    if files and (plots := [p.name for p in listed if is_plot_file(p.name, options)]):  # beside samples (a
        # folder of plots alone is no checkpoint: its level says so)
        _say_not_read(folder, plots, "plots of the run's numbers", about="plots in checkpoints")
    images = [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS]
    drawn = {(p.parent, p.stem): p for p in images}
    pairs = tuple((p, drawn[p.parent, p.stem]) for p in files
                  if p.suffix.lower() in TENSOR_EXTENSIONS and (p.parent, p.stem) in drawn)
    grids = [p for p in images if _GRID_OF_SAMPLES.fullmatch(p.stem)]
    singles = [p for p in images if p not in grids]
    if grids and len(singles) >= 2 and all(_FIRST_INT.search(p.stem) for p in singles):  # numbered samples
        warn_once(folder.parent, f"{folder}: {', '.join(p.name for p in grids[:2])} beside the single samples: "
                                 "a grid of them, not read (--samples GLOB reads it)", about="grid of samples", say=log.info)
        files = [p for p in files if p not in grids]
    return tuple(_without_copies(folder, files, listed, {tensor for tensor, _ in pairs})), pairs


def _without_copies(folder: Path, files: list[Path], listed: list[Path], paired: set[Path]) -> list[Path]:
    """``files`` without those that repeat a sibling (:func:`is_copy_beside`, the rule of a run's
    levels; the ``paired`` tensors beside an image are left to :func:`_one_of_each_pair`). A sample
    folder's packed tensor that holds more samples than the folder has files, and could be its images
    (not 4-channel latents beside RGB PNGs), is read instead of it (the PNGs deleted once packed);
    headers are read only for such tensors."""
    below = collections.Counter(up for p in files for up in p.parents
                                if len(up.parts) > len(folder.parts))  # sample folder -> its sample files
    beside: dict[Path, tuple[set[str], set[str], set[str]]] = collections.defaultdict(lambda: (set(), set(), set()))
    for sub in below:
        beside[sub.parent][0].add(sub.name)
    for p in files:
        if p.suffix.lower() in IMAGE_EXTENSIONS:
            beside[p.parent][1].add(p.stem)
    for p in listed:
        if p.suffix.lower() in VIDEO_EXTENSIONS:
            beside[p.parent][2].add(p.stem)
    if videos := sorted(p.name for p in listed if p.suffix.lower() in VIDEO_EXTENSIONS):
        warn_once(folder.parent, videos_line(folder, videos), about="videos in checkpoints")
    copies, instead = [], []
    for p in files:
        if p in paired or p.parent not in beside or not is_copy_beside(p, *beside[p.parent]):
            continue
        packed = p.parent / p.stem
        if p.suffix.lower() in TENSOR_EXTENSIONS and packed in below and (shape := header_samples(p)) and \
                shape[0] > below[packed] and could_picture(shape[3], next(f for f in files if packed in f.parents)):
            instead.append((packed, p, shape[0]))
        else:
            copies.append(p)
    if copies:
        warn_once(folder.parent, copies_line(folder, [p.name for p in copies], weights=False),
                  about="copies in checkpoints", say=log.info)
    for packed, tensor, held in instead:
        warn_once(folder.parent, f"{folder}: {tensor.name} holds {held} samples, more than the {below[packed]} "
                                 f"files of {packed.name}/ beside it: {tensor.name} is read, not {packed.name}/ "
                                 "(--samples GLOB picks one)", about="packed holds more", say=log.info)
    if not (left_out := {*copies, *(packed for packed, _, _ in instead)}):
        return files
    return [p for p in files if p not in left_out and not left_out.intersection(p.parents)]


def hidden_sample_folders(run_dir: Path, options: DiscoveryOptions) -> list[Path]:
    """The hidden folders (``.samples/``) at a run's top, or one level below, that hold sample
    files: never read, so a run keeping its checkpoints there found none without a word of them."""
    tops = [Path(e.path) for e in folder_entries(run_dir) if _is_dir(e) and not _is_hidden_dir(e)]
    return [Path(e.path) for folder in (run_dir, *tops) for e in folder_entries(folder)
            if e.name.startswith(".") and _is_dir(e) and not _holds_environments(Path(e.path))
            and _holds_samples(Path(e.path), options)]


def _holds_environments(folder: Path) -> bool:
    """Whether a folder is a Python environment (``.venv``, a conda one) or holds them (``.tox``,
    ``.nox``): its packages' images (matplotlib's icons) are no run's samples. A project's
    folder given as the run was told to point evowatch at its ``.venv``."""
    places = (folder, *(Path(e.path) for e in folder_entries(folder) if _is_dir(e)))
    return any((place / marker).exists() for place in places for marker in ("pyvenv.cfg", "conda-meta"))


@kept_while_listed_alike
def _holds_samples(folder: Path, options: DiscoveryOptions) -> bool:
    return any(True for _ in _generated_files(folder, options))


@kept_while_listed_alike
def _plot_files(folder: Path, options: DiscoveryOptions) -> tuple[Path, ...]:
    """The files below a folder left out as plots (see ``is_plot_file``), to be said."""
    return tuple(path for path in walk_files(folder) if is_plot_file(path.name, options))


@kept_while_listed_alike
def _holds_images(folder: Path, options: DiscoveryOptions) -> bool:
    return any(path.suffix.lower() in IMAGE_EXTENSIONS for path in _generated_files(folder, options))
