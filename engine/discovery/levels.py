"""The level rule's reading of one folder (see :mod:`engine.discovery`): its numbered entries,
and whether a numbered folder holds a series of checkpoints (a run) or one checkpoint."""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.discovery.copies import copies_line, is_copy_beside, videos_line
from engine.discovery.folders import _MAX_DEPTH, _is_file, _is_hidden_dir, folder_entries, walk_files
from engine.discovery.groups import _per_sample_groups, _series_folders
from engine.discovery.names import is_plot_file, is_real_data, is_sample_name, is_weight_file
from engine.discovery.options import IMAGE_EXTENSIONS, TENSOR_EXTENSIONS, VIDEO_EXTENSIONS, DiscoveryOptions
from engine.discovery.previews import previews_line, shows_fewer
from engine.discovery.said_once import warn_once
from engine.discovery.samples import (_holds_images, _holds_samples, _is_real_data_folder, _plot_files,
                                      _unnamed_tensor, _weights_by_folder)
from engine.discovery.step_counters import _epoch_batch_steps, _steps_before_a_constant, _steps_in_epochs
from engine.discovery.steps import (_COUNTER_NAME, _counts_training, _index_like, _is_index_sequence,
                                    _names_a_checkpoint, step_of)
from engine.listings import is_dir as _is_dir
from stores.format import listed

log = logging.getLogger(__name__)


#: Per-process state saved inside one checkpoint (``rng_state_0.pth``, ``random_states_0.pkl``).
_PER_PROCESS_STATE = re.compile(r"rng|random_state|custom_checkpoint", re.IGNORECASE)


#: Copies of the samples made for another use: AUTOMATIC1111 writes each preview of
#: ``images/`` again in ``image_embeddings/``, captioned and with the embedding's data drawn
#: into its edges (a second sample of every step, a near-copy of the first).
_SAMPLE_COPIES_FOLDER = re.compile(r"image[-_]?embeddings?", re.IGNORECASE)


def _previewed(entries: list[os.DirEntry], images: dict[str, Path]) -> dict[str, tuple[Path, tuple[int, int]]]:
    """The stems of ``images`` that a tensor file of their name beside holds more samples than they
    can show (``samples/step_1000.png``, 16 of ``step_1000.npz``'s 64) -> (the tensor, (shown, held))."""
    tensors = [Path(e.path) for e in entries if Path(e.name).suffix.lower() in TENSOR_EXTENSIONS
               and Path(e.name).stem in images and _is_file(e)]
    return {tensor.stem: (tensor, fewer) for tensor in tensors if (fewer := shows_fewer(images[tensor.stem], tensor))}


@dataclass(frozen=True, slots=True)
class _Level:
    numbered: tuple[tuple[int, Path, bool], ...]  # (step, path, is_dir); a group's path is its pattern
    unnumbered_files: int
    numbered_weights: int
    plain_dirs: tuple[Path, ...]
    groups: dict[Path, tuple[Path, ...]]  # pattern -> its files (see _per_sample_groups)


def _say_left_out(folder: Path, names: list[str], named_as: str, about: str,
                  say: Callable[..., None] | None = None) -> None:
    """Say once (a warning unless ``say``) which files and folders (``name/``) of a level are not
    read as samples, and why: the user may have named samples so (--samples reads them)."""
    folders, one = sum(name.endswith("/") for name in names), len(names) == 1
    what = "files" if not folders else "folders" if folders == len(names) else "files and folders"
    text = (f"{folder}: {len(names)} {what[:-1] if one else what} {named_as} ({listed(names, 2)}) "
            f"{'is' if one else 'are'} not read as samples (--samples GLOB reads {'it' if one else 'them'})")
    if say is None:
        warn_once(folder, text, about)
    else:
        warn_once(folder, text, about, say)


def _read_level(folder: Path, options: DiscoveryOptions, probe: bool = False) -> _Level:
    """The level's entries; ``probe``: read only to tell whether ``folder`` is a run, its copies beside
    images and previews left unsaid (a checkpoint's own files are chosen, and said, by
    :func:`engine.discovery.samples.sample_files`: its ``sample.npz`` beside ``sample.png`` was said
    left out as weights or a packed folder)."""
    numbered, plain, unnumbered_files, weights, reals, plots = [], [], 0, 0, [], []
    entries = folder_entries(folder)
    stems = {Path(entry.name).stem for entry in entries if _is_file(entry)}
    # folders a file of their name may repeat: only those of samples (epoch_1.png, a grid, beside
    # epoch_1/ of weights was left out as the folder's copy, and nothing was read)
    folders = {entry.name for entry in entries if entry.name in stems and _is_dir(entry)
               and _holds_samples(Path(entry.path), options)}
    images = {Path(entry.name).stem: Path(entry.path) for entry in entries
              if Path(entry.name).suffix.lower() in IMAGE_EXTENSIONS}
    videos = {Path(entry.name).stem for entry in entries if Path(entry.name).suffix.lower() in VIDEO_EXTENSIONS}
    previewed = {} if options.samples_chosen else _previewed(entries, images)
    drawn = images.keys() - previewed.keys()  # a tensor file beside one holds the same samples
    packed, previews = [], []
    for entry in entries:
        path = Path(entry.path)
        if _is_hidden_dir(entry):
            continue
        if path.stem in previewed and path.suffix.lower() in IMAGE_EXTENSIONS and _is_file(entry):
            previews.append((path, *previewed[path.stem]))
            continue
        if not options.samples_chosen and is_copy_beside(path, folders, drawn, videos) and _is_file(entry):
            packed.append(entry.name)
            continue
        if _is_dir(entry):
            step = step_of(entry.name, options, is_file=False)
            if _is_real_data_folder(entry.name, options):  # the training data or a copy (``data/``, ``real/``, ``gt/``)
                if any(is_sample_name(p.name, options) for p in walk_files(path)):
                    reals.append(f"{entry.name}/")
            elif not options.samples_chosen and _SAMPLE_COPIES_FOLDER.fullmatch(entry.name):
                warn_once(folder, f"{folder}: {entry.name}/ holds copies of the samples made to carry an embedding "
                                   "(captioned, data drawn in): not read as samples (--samples GLOB reads it)",
                           about="copies", say=log.info)
            elif step is None:
                plain.append(path)
            elif _holds_samples(path, options):
                numbered.append((step, path, True))
            else:
                plots += [path.relative_to(folder).as_posix() for path in _plot_files(path, options)]
        elif _is_file(entry):
            step = step_of(entry.name, options)
            weight = (is_weight_file(entry.name) or _weights_by_folder(path, folder.name)) and not (
                options.samples_chosen and is_sample_name(entry.name, options))  # --samples picks it
            if weight:
                if step is not None and not _PER_PROCESS_STATE.search(entry.name):
                    weights += 1
            elif is_sample_name(entry.name, options):
                real = step is not None and is_real_data(entry.name, options)
                if real:
                    reals.append(entry.name)
                if step is None or real:  # either is a sign of a run beside its samples
                    unnumbered_files += 1
                else:
                    numbered.append((step, path, False))
            elif step is not None and is_plot_file(entry.name, options):
                plots.append(entry.name)
    if (unnamed := [e for e in numbered if _unnamed_tensor(e[1])]) and any(
            _holds_images(path, options) for path in plain):
        numbered = [entry for entry in numbered if entry not in unnamed]  # StyleSwin's weights beside its samples/
        weights += len(unnamed)
    if videos := sorted(e.name for e in entries if Path(e.name).suffix.lower() in VIDEO_EXTENSIONS and _is_file(e)):
        warn_once(folder, videos_line(folder, videos), about="videos")
    if packed and not probe:
        warn_once(folder, copies_line(folder, packed), about="packed")
    if previews and not probe:
        warn_once(folder, previews_line(folder, previews), about="preview beside tensor", say=log.info)
    if reals:
        _say_left_out(folder, reals, "named as real data or made from it", "layout")
    if plots:
        _say_left_out(folder, plots, "named as plots of the run's numbers", "plots", log.info)  # shown but at -q
    groups = _per_sample_groups([path for _, path, is_dir in numbered if not is_dir], options)
    series = _series_folders([path for _, path, is_dir in numbered if is_dir] + plain, options)
    if series:
        in_series = {f.parent for _, files in series.values() for f in files}
        numbered = [entry for entry in numbered if entry[1] not in in_series]
        plain = [path for path in plain if path not in in_series]
        groups |= series
    if groups:
        grouped = {f for _, group_files in groups.values() for f in group_files}
        numbered = [entry for entry in numbered if entry[1] not in grouped]
        numbered += [(step, pattern, False) for pattern, (step, _) in groups.items()]
    singles = [path for _, path, is_dir in numbered if not is_dir and path not in groups]
    if options.step_regex is None and (counted_on := _epoch_batch_steps(singles) or _steps_in_epochs(singles)
                                       or _steps_before_a_constant(singles)):
        numbered = [(counted_on.get(path, step), path, is_dir) for step, path, is_dir in numbered]
    return _Level(tuple(numbered), unnumbered_files, weights, tuple(plain),
                  {pattern: group_files for pattern, (_, group_files) in groups.items()})


def _first_numbered_levels(folder: Path, options: DiscoveryOptions, depth: int) -> list[_Level]:
    """Breadth-first through unnumbered sub-folders to the first depth with numbered entries:
    its levels that have them (label folders side by side: ``cat/``, ``dog/``); read as probes, for whether a
    folder is a run: what a level leaves out is said when it is read as one."""
    frontier = [folder]
    for _ in range(max(0, _MAX_DEPTH - depth)):
        levels = [_read_level(f, options, probe=True) for f in frontier]
        found = [lv for lv in levels if lv.numbered]
        if found:
            return found
        frontier = [d for lv in levels for d in lv.plain_dirs]
        if not frontier:
            break
    return []


def _looks_like_run(folder: Path, options: DiscoveryOptions, depth: int) -> bool:
    """Whether a lone numbered folder holds a series of checkpoints (see the module rule). Label
    folders side by side are read together: files numbered in the data set's order are spread
    over them (``cat/00000.png``, ``dog/00001.png``, ...), no folder's numbers consecutive, and
    one checkpoint was read as a checkpoint per image."""
    levels = _first_numbered_levels(folder, options, depth)
    if not levels:
        return False
    numbered = [entry for level in levels for entry in level.numbered]
    named = _names_a_checkpoint(folder.name)
    if named:  # a file named with the folder's own step is the checkpoint's too (round AZ: step_100/grid_100.png
        own = step_of(folder.name, options, is_file=False)  # beside 00000.png ... was step 100 of a run)
        numbered = [entry for entry in numbered if entry[0] != own] or numbered
    steps = [step for step, _, _ in numbered]
    counted_in = any(_COUNTER_NAME.search(path.name) for _, path, _ in numbered)  # epoch_001.png: no index
    # a folder named as a checkpoint holds its samples' indices, gaps and all (round AJ: step_000100/
    # without 00006.png was a checkpoint per image, until a second checkpoint came)
    # and a number its files all share (step_500/samples_ddim50.png, checkpoint-500/grid_512.png: a
    # setting; round AN: read as a run of one checkpoint at step 50)
    indices = (_is_index_sequence(steps) or _counts_training(folder.name) and _index_like(steps)
               or named and len(set(steps)) == 1)
    # what lies beside such samples in a folder named as a checkpoint is its own (round AZ: step_100/
    # with a grid.png, an unnumbered or corrupt image, or its weights was a checkpoint per image,
    # steps 0 to 15, until a second checkpoint came): a sign of a run elsewhere (reals.png by fakes000000.png)
    beside = not (named and indices) and any(level.unnumbered_files > 0 or level.numbered_weights > 0 for level in levels)
    return beside or counted_in or not indices


def _holds_runs(level: _Level, options: DiscoveryOptions, depth: int) -> bool:
    """Numbered folders numbered like runs, each a run: consecutive (version_3, version_4, the
    earlier ones deleted), or dense from 0 or 1 (version_2 beside version_0, a failed version_1
    deleted); never folders named by a training counter or as checkpoints (epoch_1/, epoch_3/
    of weights and samples, saved every 2 epochs)."""
    entries = level.numbered
    steps = sorted({step for step, _, _ in entries})
    return (all(is_dir for _, _, is_dir in entries) and (_is_index_sequence(steps) or _index_like(steps))
            and not any(_counts_training(path.name) for _, path, _ in entries)
            and all(_looks_like_run(path, options, depth + 1) for _, path, _ in entries))
