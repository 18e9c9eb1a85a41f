"""A run's checkpoints (:func:`scan_run`: the level rule, see :mod:`engine.discovery`, applied
from the run directory down, with a line for what it leaves out) and a reference set
(:func:`scan_reference`)."""
from __future__ import annotations

import functools
import itertools
import logging
import os
import re
from pathlib import Path

from engine.backlog_log import counted
from engine.discovery.folders import _MAX_DEPTH, _relative
from engine.discovery.levels import _first_numbered_levels, _holds_runs, _Level, _looks_like_run, _read_level
from engine.discovery.options import DiscoveryOptions
from engine.discovery.said_once import _warned, warn_once
from engine.discovery.samples import sample_files
from engine.discovery.steps import (_EPOCH, _NAMED_STEP, _NOT_A_STEP, _blanked, _is_index_sequence, _names_a_checkpoint,
                                    step_of)
from engine.errors import DiscoveryError
from engine.records import Checkpoint, Kind
from stores.format import TRACKER_FOLDERS, listed, tracker_folder, tracker_name

log = logging.getLogger(__name__)


#: Files named as generated samples (pix2pix's ``epoch001_fake_B.png``): no real data, when a
#: ``--real`` or ``--holdout`` folder holds them beside the real images.
_GENERATED_DATA = re.compile(r"(?<![a-z])(?:fakes?|generated)(?![a-z])", re.IGNORECASE)


def _units(folder: Path, options: DiscoveryOptions, depth: int) -> list[tuple[int, Path, tuple[Path, ...] | None]]:
    """(step, path, files): ``files`` is None for a folder or a file, whose files follow from it."""
    level = _read_level(folder, options)
    if level.numbered and level.plain_dirs and depth < _MAX_DEPTH:
        _say_hidden_checkpoints(folder, level, options, depth)
    if depth < _MAX_DEPTH and (in_epochs := _checkpoints_in_epoch_folders(level, options, depth)):
        return in_epochs
    if len({step for step, _, _ in level.numbered}) >= 2:
        if depth < _MAX_DEPTH and _holds_runs(level, options, depth):
            runs = {path.name: _units(path, options, depth + 1) for _, path, _ in level.numbered}
            resumed = resumed_run({name: [step for step, _, _ in units] for name, units in runs.items()})
            fix = (f"if {resumed[1]} resumed {resumed[0]}'s run, watch {resumed[0]}, then {resumed[1]} with "
                   "--same-run, into one store" if resumed else "point evowatch at one of them")
            warn_once(folder, f"{folder}: holds several runs ({', '.join(runs)}); their checkpoints are read "
                              f"together: {fix}")
            return [unit for units in runs.values() for unit in units]
        return [(step, path, level.groups.get(path)) for step, path, _ in level.numbered]
    units: list[tuple[int, Path, tuple[Path, ...] | None]] = []
    for step, path, is_dir in level.numbered:
        if is_dir and depth < _MAX_DEPTH and _looks_like_run(path, options, depth + 1):
            units.extend(_units(path, options, depth + 1))
        else:
            units.append((step, path, level.groups.get(path)))
    if not level.numbered and depth < _MAX_DEPTH:
        units.extend(_plain_dirs_units(folder, level, options, depth))
    return units


def resumed_run(steps: dict[str, list[int]]) -> tuple[str, str] | None:
    """(earlier, later) of the run folders whose checkpoints are at ``steps`` when one is a run
    resumed from the other's checkpoint (Lightning's ``version_1/`` writing steps 1500 and 2000
    after ``version_0/``'s 500 to 1500): it starts after the other did, at or before its last
    step, and goes past it. Runs side by side (a sweep) start at the same step."""
    spans = sorted((min(found), max(found), folder) for folder, found in steps.items() if found)
    return next(((a, b) for (lo_a, hi_a, a), (lo_b, hi_b, b) in zip(spans, spans[1:])
                 if lo_a < lo_b <= hi_a < hi_b), None)


def _checkpoints_in_epoch_folders(level: _Level, options: DiscoveryOptions,
                                  depth: int) -> list[tuple[int, Path, tuple[Path, ...] | None]]:
    """The checkpoints of folders per epoch that hold checkpoints named by their step
    (``epoch_005/iter_000300/``, ``epoch_5/step_1200.png``): each epoch was read as one
    checkpoint at the epoch's number, its iterations' samples mixed. The step is the inner
    one; where it starts again each epoch, epoch x 10^digits + it, as for names that carry
    both (:func:`_steps_in_epochs`). [] when the level is no such thing."""
    if options.step_regex is not None or not level.numbered or not all(
            is_dir and _EPOCH.fullmatch(path.name) for _, path, is_dir in level.numbered):
        return []

    def step_names(units: list) -> dict:
        return {unit: _NAMED_STEP.search(_blanked(_NOT_A_STEP, unit[1].name)) for unit in units}

    latest_epoch, latest, _ = level.numbered[-1]  # alone first: most epoch folders hold one checkpoint's samples
    inner = {latest_epoch: _units(latest, options, depth + 1)}
    if not all(step_names(inner[latest_epoch]).values()):
        return []
    inner = {epoch: inner[latest_epoch] if path == latest else _units(path, options, depth + 1)
             for epoch, path, _ in level.numbered}
    named = {unit: match for units in inner.values() for unit, match in step_names(units).items()}
    if not named or not all(named.values()):
        return []
    epochs = sorted(inner)
    steps = {epoch: [step for step, _, _ in inner[epoch]] for epoch in epochs if inner[epoch]}
    kept = [epoch for epoch in epochs if epoch in steps]
    if all(max(steps[a]) < min(steps[b]) for a, b in zip(kept, kept[1:])):
        return [unit for epoch in epochs for unit in inner[epoch]]
    scale = 10 ** max(len(match[1]) for match in named.values())
    return [(epoch * scale + step, path, files) for epoch in epochs for step, path, files in inner[epoch]]


def _say_hidden_checkpoints(folder: Path, level: _Level, options: DiscoveryOptions, depth: int) -> None:
    """Say (once a process: a look through the folders) that a level read by its numbered
    entries has unnumbered folders holding checkpoints of their own, which are not read: a
    ``samples_2500.npz`` or a plot ``final_grid_3000.png`` at a run's top hid ``samples/step_N/``
    without a word."""
    if (key := f"{folder}\0hidden checked") in _warned:
        return
    _warned.add(key)
    runs = functools.lru_cache(maxsize=None)(lambda sub: _looks_like_run(folder / sub, options, depth + 1))
    hidden = [unit for unit in _plain_dirs_units(folder, level, options, depth) if unit[1].is_relative_to(folder)
              and runs(unit[1].relative_to(folder).parts[0])]  # each folder looked into once
    steps = sorted({step for step, _, _ in hidden})
    if len(steps) < 2:
        return
    subs = sorted({path.relative_to(folder).parts[0] for _, path, _ in hidden})
    read = listed([path.name for _, path, _ in level.numbered], 2)
    warn_once(folder, f"{folder}: {', '.join(s + '/' for s in subs[:3])} hold{'s' if len(subs) == 1 else ''} "
              f"{len(hidden):,} more checkpoints (steps {steps[0]:,} to {steps[-1]:,}) that are not read: the run is "
              f"read at this level ({read}); to read them, point evowatch at {folder / subs[0]}", about="hidden")


def _plain_dirs_units(folder: Path, level: _Level, options: DiscoveryOptions,
                      depth: int) -> list[tuple[int, Path, tuple[Path, ...] | None]]:
    """The checkpoints of a level's unnumbered folders; a tracker's copies (``wandb/``) only
    when no other folder holds the trainer's own files."""
    found = {sub: _units(sub, options, depth + 1) for sub in level.plain_dirs}
    copies = [sub for sub in found if sub.name.lower() in TRACKER_FOLDERS and found[sub]]
    if copies and any(found[sub] for sub in found if sub not in copies):
        for sub in copies:
            _say_tracker_copies_left_out(folder, sub.name)
        found = {sub: sub_units for sub, sub_units in found.items() if sub not in copies}
    _say_interleaved(folder, found)
    return [unit for sub_units in found.values() for unit in sub_units]


def _say_tracker_copies_left_out(folder: Path, copies: str) -> None:
    """Say once that the tracker's folder ``copies`` (below ``folder``) is left out, beside the
    trainer's own sample files."""
    warn_once(folder, f"{folder}: {copies}/ holds {tracker_name(copies)}'s copies of the images the trainer logged, beside its "
                      f"own sample files: the trainer's files are read, not the copies (point evowatch at {copies}/ "
                      "to read them)", about=copies, say=log.info)


def _without_tracker_copies(checkpoints: list[Checkpoint], root: Path) -> list[Checkpoint]:
    """A tracker's copies (``wandb/``, ``mlruns/``) left out beside the trainer's own files,
    wherever in the run they lie: a level leaves out those beside its own folders, but
    ``logs/wandb/`` beside ``samples/`` made every step two checkpoints (and the store takes the
    copies for stand-ins its own files supersede: :func:`stores.format.stand_in_for_files`)."""
    folders = {c.source: tracker_folder(c.source) for c in checkpoints}
    if all(folders.values()) or not any(folders.values()):
        return checkpoints
    for copies in sorted({folder for folder in folders.values() if folder}):
        _say_tracker_copies_left_out(root, copies)
    return [c for c in checkpoints if folders[c.source] is None]


def _say_interleaved(folder: Path, found: dict[Path, list]) -> None:
    """Say once that two folders' checkpoints take turns in step without sharing one
    (``baseline/`` at 1000, 2000, 3000 and ``ablation/`` at 1500, 2500): read together as one
    run, two experiments made one series. One folder going on where the other stopped (a
    resumed run's ``phase2/``) is none; steps both hold are said by the watcher."""
    series = {sub: sorted({step for step, _, _ in units}) for sub, units in found.items()}
    series = {sub: steps for sub, steps in series.items() if len(steps) >= 2}
    if _is_index_sequence(step for steps in series.values() for step in steps):
        return  # a data set's numbers spread over label folders: indices, not steps
    for a, b in itertools.combinations(series, 2):
        sa, sb = series[a], series[b]
        if sa[0] < sb[-1] and sb[0] < sa[-1] and not set(sa) & set(sb):
            warn_once(folder, f"{folder}: the checkpoints of {a.name}/ (steps {sa[0]:,} to {sa[-1]:,}) and {b.name}/ "
                              f"({sb[0]:,} to {sb[-1]:,}) take turns in step: they are read as one series; if they are "
                              f"two runs or two series (train and validation samples), point evowatch at one of them "
                              f"({folder / a.name})", about="interleaved")
            return


def scan_run(run_dir: str | os.PathLike[str], options: DiscoveryOptions | None = None) -> list[Checkpoint]:
    """Every candidate checkpoint of a run, sorted by (step, source), each with its sample files.

    Checkpoints that are empty so far are left out (they are not checkpoints yet), and so is
    anything that vanishes during the scan. Readiness is decided separately by :func:`is_ready`.
    """
    options = options or DiscoveryOptions()
    root = Path(run_dir)
    if not root.is_dir():
        raise DiscoveryError(f"{root}: run directory not found (or not a directory); check the path.")
    if (itself := _is_one_checkpoint(root, options)) is not None:
        warn_once(root, itself, about="one checkpoint")
    checkpoints = []
    for step, path, grouped in _units(root, options, 0):
        files = grouped or (tuple(sample_files(path, options)) if path.is_dir() else (path,))
        if files:
            checkpoints.append(Checkpoint(step=step, source=_relative(path, root), files=files, root=root))
    checkpoints = _without_tracker_copies(_read_once(checkpoints, root), root)
    checkpoints.sort(key=lambda c: (c.step, c.source))
    log.debug("scan %s: %d checkpoints", root, len(checkpoints))
    return checkpoints


def _read_once(checkpoints: list[Checkpoint], root: Path) -> list[Checkpoint]:
    """Leave out a checkpoint read again through a symlink to a folder elsewhere in the run
    (``run/latest -> runs/run1``, ``run/other/s2 -> ../samples``, ``latest -> samples/step_1000``
    read as a checkpoint per file): its files all read through fewer links (round AN: every
    checkpoint was stored twice). A link to a folder the scan reads otherwise or not at all
    (``samples -> data/outputs``) is how its checkpoints are read (round AO)."""
    links = {c.source: _links_on(root, c.source) for c in checkpoints}
    if not any(links.values()):
        return checkpoints
    real_folder = functools.lru_cache(maxsize=None)(os.path.realpath)

    def real_files(checkpoint: Checkpoint) -> list[str]:
        return [os.path.join(real_folder(os.path.dirname(f)), os.path.basename(f)) for f in checkpoint.files]

    reals = [real_files(checkpoint) for checkpoint in checkpoints]
    fewest: dict[str, int] = {}
    for checkpoint, files in zip(checkpoints, reals):
        for file in files:
            fewest[file] = min(fewest.get(file, links[checkpoint.source]), links[checkpoint.source])
    return [c for c, files in zip(checkpoints, reals)
            if not links[c.source] or not all(fewest[f] < links[c.source] for f in files)]


def _links_on(root: Path, source: str) -> int:
    """How many entries on the way from ``root`` to a checkpoint, itself included, are symbolic links."""
    path, count = root, 0
    for part in Path(source).parts:
        path = path / part
        count += path.is_symlink()
    return count


def _is_one_checkpoint(root: Path, options: DiscoveryOptions) -> str | None:
    """Why ``root`` looks like one checkpoint, not a run, or None: a folder named as a
    checkpoint (``checkpoint-500/``, ``step_000500/samples/``) whose sample files are
    numbered as one checkpoint's samples. Pointed at by mistake, it is read as a checkpoint
    per image, at steps 0, 1, 2 ... (round AN): said, not refused, for a run may look so
    too (round AP: ``ep25/`` of per-epoch grids ``0.png`` ...)."""
    if options.step_regex is not None or (decided := f"{root}\0one checkpoint checked") in _warned:
        return None
    absolute = Path(os.path.abspath(root))  # `.` and `samples` have names too (round AO)
    step, named = next(((step, folder) for folder in (absolute, absolute.parent)
                        if (step := step_of(folder.name, options, is_file=False)) is not None), (None, None))
    if named is None or not _names_a_checkpoint(named.name):
        return None
    levels = _first_numbered_levels(root, options, 0)
    numbered = [path for level in levels for _, path, is_dir in level.numbered if not is_dir]
    if len(numbered) < 2:
        return None  # not yet told: a checkpoint still being written, or a run just begun
    _warned.add(decided)  # told once a process: a pass over a run named so read its levels twice
    if len(numbered) < sum(len(level.numbered) for level in levels) or _looks_like_run(root, options, 0):
        return None
    first, last = (f(numbered, key=lambda p: (step_of(p.name, options) or 0, p.name)) for f in (min, max))
    return (f"{root}: looks like one checkpoint (its name says step {step:,}; "
            f"{len(numbered)} files numbered as samples, {first.name} to {last.name}), read as a checkpoint per file: "
            f"if it is one, point evowatch at the run folder that holds it ({named.parent}); --step-regex says how "
            "its files' names carry steps")


def scan_reference(folder: str | os.PathLike[str], kind: Kind,
                   options: DiscoveryOptions | None = None) -> Checkpoint:
    """A ``--real``/``--holdout`` set as one checkpoint (step -1): a folder of images, maybe
    one sub-folder per label (ImageFolder layout), or a single tensor/image file."""
    if kind not in ("real", "holdout"):
        raise ValueError(f"Expected kind 'real' or 'holdout'. Got {kind!r} instead.")
    options = options or DiscoveryOptions()
    path = Path(folder)
    if path.is_file():
        root, files = path.parent, (path,)
    elif path.is_dir():
        root, files = path, tuple(sample_files(path, options, generated=False))
    else:
        raise DiscoveryError(f"{path}: --{kind} folder not found; check the path.")
    if not files:
        raise DiscoveryError(f"{path}: --{kind} holds no sample files (looked for {', '.join(options.sample_globs)}).")
    generated = [f for f in files if not options.samples_chosen and _GENERATED_DATA.search(f.stem)]
    if generated and len(generated) < len(files):
        files = tuple(f for f in files if f not in generated)
        warn_once(path, f"{path}: {counted(len(generated), 'file')} named as generated samples "
                         f"({listed([f.name for f in generated], 2)}) "
                         f"{'is' if len(generated) == 1 else 'are'} not read as --{kind} data", about=kind)
    return Checkpoint(step=-1, source=f"{kind}:{path.absolute().as_posix()}", files=files, kind=kind, root=root)
