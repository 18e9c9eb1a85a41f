"""Files that together are one checkpoint: single images named by a step and a sample index or
key (``step1000_03.png``), and folders of one prompt or class each holding its image at every
step (``samples/cat/step_1000.png``)."""
from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path

from engine.discovery.file_times import _mtime, _telling_times, _written_together
from engine.discovery.folders import _is_file, folder_entries
from engine.discovery.options import IMAGE_EXTENSIONS, DiscoveryOptions
from engine.discovery.said_once import warn_once
from engine.discovery.samples import _is_generated_sample
from engine.discovery.steps import (_EPOCH_MARK, _FIRST_INT, _LAST_INT, _NAMED_STEP, _NO_NUMBER, _NOT_A_STEP, _SCALED,
                                    _blanked, _index_like, _names_a_checkpoint, _scaled, step_of)
from engine.listings import kept_while_listed_alike
from stores.format import SAMPLE_KEY, listed

log = logging.getLogger(__name__)


#: A name's last two numbers: ``step1000_03`` -> 1000, 03; ``img_0001_step_0500`` -> 0001, 0500.
_LAST_TWO_NUMBERS = re.compile(r"(\d+)\D+(\d+)\D*$")
#: W&B's media file name, ``{key}_{step}_{sha256[:20]}``: the step is the number before the hash
#: whatever the key holds (x-flux logs under ``f"Results, step {global_step}"``).
_WANDB_MEDIA = re.compile(r"_(\d+)_[0-9a-f]{20}$")
#: A W&B key's own trailing number (``sample_2``: a key per prompt), its sample's index.
_WANDB_KEY_INDEX = re.compile(r"(?<=[-_ ])(\d+)$")


def _step_at(text: str, start: int, end: int) -> int:
    """The step whose digits are ``text[start:end]``; followed by ``k`` (``M``) it counts
    thousands (millions), as in :func:`step_in_name` (``sample_10k_0``, ``sample_1.5k_0``:
    steps 10,000 and 1,500)."""
    whole = re.search(r"(?<![\d.])\d+\.$", text[:start])  # 1.5k: the digits before the point too
    for begin in ([whole.start()] if whole else []) + [start]:
        if (match := _SCALED.match(text, begin)) and match.end(1) == end:
            return _scaled(match)
    return int(text[start:end])


def _is_scaled(text: str, end: int) -> bool:
    return bool(re.match(r"[km](?![a-z\d])", text[end:], re.IGNORECASE))


def _readings(path: Path, options: DiscoveryOptions) -> list[tuple[int, int, str]]:
    """(step, index, pattern) readings of a single image's name that carries a step and a
    sample index: step then index (``step1000_03.png`` -> 1000, 3, ``step1000_*.png``), or
    index then step (``img_0001_step_0500.png``); a number named as the step (``gs-000500``)
    is the step, the last other number after it (else before it) the index; a date, time or
    hash is a ``?`` per character (kohya-ss's ``mylora_000500_*_??????????????.png``), and a
    name whose only other part is one has no index (-1: W&B's ``validation_500_<hash>.png``).
    With ``step_regex`` the index is the first number after its match, else the last before it."""
    stem, found = path.stem, []
    masked = _blanked(_NO_NUMBER, stem)
    if options.step_regex is None and (wandb := _WANDB_MEDIA.search(stem)):  # x-flux's key "Results, step 500"
        step, key = int(wandb[1]), _WANDB_KEY_INDEX.search(stem, 0, wandb.start())
        whole = [(step, -1, masked + path.suffix)]
        if key and int(key[1]) != step:  # kohya-ss's wandb.log({f"sample_{i}": ...}): sample_2_500_<hash>; a
            # list under such a key repeats its number, and is the step's files as a whole
            return [(step, int(key[1]), f"{masked[:key.start(1)]}*{masked[key.end(1):]}{path.suffix}")] + whole
        return whole
    named = list(_NAMED_STEP.finditer(masked))
    if options.step_regex is None and named:  # latent-diffusion's samples_gs-000500_e-000001_b-000003
        step = named[-1]
        index = _LAST_INT.search(masked, step.end()) or _LAST_INT.search(masked[:step.start()])
        if index and index.start(1) < step.start() and _EPOCH_MARK.search(masked[:index.start(1)]):
            index = None  # VQ-Diffusion's e0_itr1999: the epoch, not a sample's index
        found = [(_step_at(masked, *step.span(1)), index.span(1))] if index else []
    elif options.step_regex is None:
        match = _LAST_TWO_NUMBERS.search(masked)
        if match:  # either number the step; one counted in thousands (10k) is no index
            found = [(_step_at(masked, *match.span(a)), match.span(b)) for a, b in ((1, 2), (2, 1))
                     if not _is_scaled(masked, match.end(b))]
    else:
        match, step = re.search(options.step_regex, stem), step_of(path.name, options)
        if match and step is not None:
            index = _FIRST_INT.search(masked, match.end()) or _LAST_INT.search(masked[:match.start()])
            found = [(step, index.span(1))] if index else []
    if not found and "?" in masked and (step := step_of(path.name, options)) is not None:
        return [(step, -1, masked + path.suffix)]  # W&B's validation_500_<hash>.png: a step, no index
    return [(step, int(masked[a:b]), f"{masked[:a]}*{masked[b:]}{path.suffix}") for step, (a, b) in found]


def _per_sample_groups(files: list[Path], options: DiscoveryOptions) -> dict[Path, tuple[int, tuple[Path, ...]]]:
    """Single images named with a step and a sample index (``samples/step1000_00.png`` ...
    ``step2000_07.png``): one checkpoint per step, named by its pattern (``step1000_*.png``).

    Names alike but for their numbers are grouped when, in one reading of the two numbers,
    some step has several files and every step's indices look like sample indices; a grid
    per step named ``epoch=3-step=1000.png`` stays one checkpoint per file. Where both
    readings fit (``generated_img_{index}_{epoch}.png``, small numbers both), the files'
    times decide: a step's files are written together; a reading whose steps each span the
    whole run is refused (``train_{epoch}_{batch}.png``, one grid per file). Without
    telling times, step-then-index wins. (A step's first file alone is read as its own
    checkpoint until a second one comes; that reading is then superseded, see
    ``stores.zarr_store.superseded_flags``.)"""
    images = [path for path in files if path.suffix.lower() in IMAGE_EXTENSIONS]
    by_shape: dict[tuple[str, int], dict[Path, list[tuple[int, int, Path]]]] = {}
    named: dict[str, str] = {}  # a pattern, its ? runs as one, -> the first file's pattern (the checkpoint's name)
    for path in images:
        for reading, (step, index, pattern) in enumerate(_readings(path, options)):
            # a date, time or hash matches whatever its length: kohya-ss adds a seed to some
            # prompts' names only (mylora_000500_00_<time>.png, mylora_000500_01_<time>_42.png)
            any_length = re.sub(r"\?+", "?", pattern)
            pattern = named.setdefault(any_length, pattern)
            shape = (re.sub(r"\d+", "#", any_length), reading)
            by_shape.setdefault(shape, {}).setdefault(path.with_name(pattern), []).append((step, index, path))
    mtimes: dict[Path, float | None] = {}

    def times(entries: list[tuple[int, int, Path]]) -> list[float]:
        for _, _, path in entries:
            if path not in mtimes:
                mtimes[path] = _mtime(path)
        return [t for _, _, path in entries if (t := mtimes[path]) is not None]

    candidates = []
    for (_, reading), patterns in by_shape.items():
        if max(map(len, patterns.values())) < 2 or not all(
                _index_like(indices) or max(indices) < 0
                for indices in ([index for _, index, _ in entries] for entries in patterns.values())):
            continue
        steps = [entries[0][0] for entries in patterns.values()]
        if len(set(steps)) < len(steps):  # a step's files under several patterns: another number
            continue  # tells them apart too (naifu's sample_e0_s500_p{rank}_{i}: keyed by p{rank}_{i})
        together = None if options.step_regex else _written_together([times(e) for e in patterns.values()])
        if together is not False:
            candidates.append((together is None, reading, patterns))
    groups: dict[Path, tuple[int, tuple[Path, ...]]] = {}
    taken: set[Path] = set()
    series, series_steps = [], []
    untold = [{path: step for entries in patterns.values() for step, _, path in entries}
              for untimed, _, patterns in candidates if untimed]
    for _, _, patterns in sorted(candidates, key=lambda c: c[:2]):  # told by the times, then step-then-index
        members = [entry for entries in patterns.values() for entry in entries]
        if any(path in taken for _, _, path in members):
            continue
        paths = {path for _, _, path in members}  # readings that give these files other steps
        if len({frozenset((p, s) for p, s in steps.items() if p in paths) for steps in untold if paths & steps.keys()}) > 1:
            steps = sorted({step for step, _, _ in members})
            warn_once(images[0].parent, f"{images[0].parent}: in names like {members[0][2].name} either number may be "
                      f"the step, and the files' times do not tell (written at one time: a copy?); read as step, then "
                      f"sample index (steps {steps[0]:,} to {steps[-1]:,}); if the other number is the step, say so with "
                      "--step-regex", about="untold reading")
        for pattern, entries in patterns.items():
            groups[pattern] = (entries[0][0], tuple(sorted(path for _, _, path in entries)))
        taken.update(path for _, _, path in members)
        steps = sorted(step for step, _, _ in members)
        series.append(f"{min(path.name for _, _, path in members)}, steps {steps[0]:,} to {steps[-1]:,}")
        series_steps.append(set(steps))
    counting = [steps for steps in series_steps if steps != {0}]  # kohya-ss's --sample_at_first: e000000, before any
    if len(counting) > 1 and not set.intersection(*counting):  # not prompts of the same steps (SimpleTuner)
        warn_once(images[0].parent, f"{images[0].parent}: {len(series)} series of per-step files (like {'; '.join(series)}): "
                                     "if they count different things (kohya-ss's epochs and steps) their steps interleave "
                                     "on the map; --samples GLOB reads one", about="series")
    return groups | _keyed_groups([path for path in images if path not in taken], options)


#: What a sample's name says apart from the step: joined to the step by these.
_KEY_SEPARATORS = "-_ ."


def _keyed_groups(images: list[Path], options: DiscoveryOptions) -> dict[Path, tuple[int, tuple[Path, ...]]]:
    """Single images named by a step and then a prompt or a class (SimpleTuner's
    ``step_500_street_0_512x512.png``, EveryDream2's ``gs00499-1-a photo of 2 cats.jpg``):
    one checkpoint per step, named ``step_500_{sample}.png``. Only where the step is named
    as one (or matched by ``step_regex``), every name of the series goes on after it, some
    step has several files and the same names come back at other steps: ``step_1000.png``
    beside ``step_1000_ema.png`` stays two series of grids."""
    series: dict[tuple[Path, str, str], list[tuple[int, str, str, str, Path]]] = {}
    for path in images:
        stem = path.stem
        if options.step_regex is None:
            masked = _blanked(_NOT_A_STEP, stem)
            named = list(_NAMED_STEP.finditer(masked))
            found = (int(named[-1][1]), named[-1].start(1), named[-1].end()) if named else None
        else:
            match = re.search(options.step_regex, stem)
            step = step_of(path.name, options) if match else None
            found = (step, match.end(), match.end()) if step is not None else None
        if found is None:
            continue
        step, digits, end = found
        key = stem[end:]
        sep = key[:len(key) - len(key.lstrip(_KEY_SEPARATORS))]
        series.setdefault((path.parent, stem[:digits], path.suffix), []).append(
            (step, stem[:end], sep, key[len(sep):], path))
    groups = {}
    for (folder, _, suffix), members in series.items():
        if len({sep for _, _, sep, _, _ in members}) != 1 or not all(sep and key for _, _, sep, key, _ in members):
            continue
        keys_by_step: dict[int, set[str]] = {}
        for step, _, _, key, _ in members:
            keys_by_step.setdefault(step, set()).add(key)
        keys = list(keys_by_step.values())
        repeated = len(keys) == 1 or any(a & b for i, a in enumerate(keys) for b in keys[i + 1:])
        if max(map(len, keys)) < 2 or not repeated:
            continue
        for step in keys_by_step:
            files = sorted(path for s, _, _, _, path in members if s == step)
            head, sep = next((head, sep) for s, head, sep, _, _ in members if s == step)
            groups[folder / f"{head}{sep}{SAMPLE_KEY}{suffix}"] = (step, tuple(files))
    return groups


def _steps_in_series(files: list[Path], options: DiscoveryOptions,
                     position: int | None = None) -> tuple[dict[int, Path], int | None] | None:
    """One folder's images by step, each with its own, the steps growing as the files were
    written, and where in the names the step was read (None: the number a name carries by
    default); None if no number does. The step a name carries by default, else the first
    number that does (OneTrainer's ``…-training-sample-{step}-{epoch}-{epoch_step}.jpg`` ends
    with the step in the epoch, which starts again each epoch); or the number at ``position``."""
    default = [step_of(path.name, options) for path in files]
    if None not in default and len(set(default)) == len(files) and _index_like(default):
        return None  # sample indices (checkpoint-500/00000.png ...): known without a file's time
    times = _telling_times(files)
    told = times is not None  # else a copy: any order
    order = sorted(range(len(files)), key=lambda i: times[i]) if told else range(len(files))

    def growing(steps: list[int | None]) -> dict[int, Path] | None:
        ordered = [steps[i] for i in order]
        if None in ordered or len(set(ordered)) != len(files) or (told and ordered != sorted(ordered)):
            return None
        return {step: path for step, path in zip(steps, files)}

    numbers = [[int(n) for n in re.findall(r"\d+", _NOT_A_STEP.sub("_", path.stem))] for path in files]
    if position is not None:
        found = growing([n[position] if position < len(n) else None for n in numbers])
        return (found, position) if found else None
    if (found := growing(default)) or options.step_regex is not None:
        return (found, None) if found else None
    if len({len(n) for n in numbers}) != 1:
        return None
    return next(((found, at) for at in range(len(numbers[0])) if (found := growing([n[at] for n in numbers]))), None)


#: A folder name's ending that sets another model's samples apart (OneTrainer's
#: ``0 - a photo of 2 cats - no-ema`` beside ``0 - a photo of 2 cats``): a series of its own.
_MODEL_VARIANT = re.compile(r"[-_ ]+(?:no|non)?[-_ ]?ema$", re.IGNORECASE)


def _counted_together(folders: list[Path], options: DiscoveryOptions) -> dict[Path, dict[int, Path]]:
    """Folders of one sample each holding its image at every step counted 0, 1, 2 ... (DVCLive's
    ``live.log_image(f"sample_{i}/{live.step}.png")``), told from folders of indexed samples
    by the files' times: each number's files, across the folders, were written together."""
    numbered = {}
    for folder in folders:
        if (steps := _images_by_number(folder, options)) is None:
            return {}
        numbered[folder] = dict(steps)
    if len(numbered) < 2 or len({frozenset(steps) for steps in numbered.values()}) != 1:
        return {}
    by_number = [[t for steps in numbered.values() if (t := _mtime(steps[n])) is not None]
                 for n in next(iter(numbered.values()))]
    return numbered if _written_together(by_number) else {}


@kept_while_listed_alike
def _images_by_number(folder: Path, options: DiscoveryOptions) -> tuple[tuple[int, Path], ...] | None:
    """A folder's sample images by the number each name carries, if they are two or more, each
    of its own number; else None."""
    files = [Path(e.path) for e in folder_entries(folder) if _is_file(e) and _is_generated_sample(Path(e.path), options)]
    steps = {step_of(path.name, options): path for path in files}
    if len(files) < 2 or None in steps or len(steps) != len(files) or any(
            p.suffix.lower() not in IMAGE_EXTENSIONS for p in files):
        return None
    return tuple(steps.items())


def _checkpoints_of_seeds(series: dict[Path, dict[int, Path]], options: DiscoveryOptions) -> bool:
    """Whether folders read as series of steps are checkpoints of samples named by a seed
    or class instead (EDM's ``network-snapshot-000200/000100.png`` … ``000107.png`` from
    ``--seeds=100-107``): folders named with steps (not a prompt, ``cat``, nor a class
    index, ``0``), every file name a bare number, and no step's images written across the
    folders together (each folder's written at once, or a copy whose times cannot tell).
    Read as series, each seed was a step and each checkpoint a sample."""
    files = [path for steps in series.values() for path in steps.values()]
    if not all(path.stem.isdigit() for path in files):
        return False
    named = [step_of(folder.name, options, is_file=False) for folder in series]
    if None in named or len(set(named)) != len(named) or _index_like(sorted(named)):
        return False
    by_folder = [[t for path in steps.values() if (t := _mtime(path)) is not None] for steps in series.values()]
    return _written_together(by_folder) is not False


@kept_while_listed_alike
def _images_named_by_step(folder: Path, options: DiscoveryOptions) -> tuple[Path, ...] | None:
    """A folder's images if it holds nothing else and the first and last names carry steps
    that are no sample indices (``checkpoint-500/00000.png`` ...: told by two names of
    thousands); else None."""
    entries = folder_entries(folder)
    ends = [step_of(name, options) for name in (min(e.name for e in entries), max(e.name for e in entries))] \
        if entries else [None]
    if None in ends or (min(ends) <= 1 and max(ends) < 2 * len(entries) + 2):
        return None
    files = [Path(e.path) for e in entries if _is_file(e) and _is_generated_sample(Path(e.path), options)]
    if not files or len(files) != len(entries) or any(p.suffix.lower() not in IMAGE_EXTENSIONS for p in files):
        return None
    return tuple(files)


def _series_folders(folders: list[Path], options: DiscoveryOptions) -> dict[Path, tuple[int, tuple[Path, ...]]]:
    """Folders of one prompt or class each, holding its image at every step (OneTrainer's
    ``samples/0 - a photo of 2 cats/{time}-training-sample-{step}-{epoch}-{epoch_step}.jpg``,
    ``samples/cat/step_1000.png``): one checkpoint per step across them, named
    ``samples/{sample}/step_1000.png``, each folder a sample. Only folders of nothing but
    images named with distinct steps that are no sample indices (``checkpoint-500/00000.png``
    ...), two or more, with a step in common."""
    series = {}
    for folder in folders:
        if _names_a_checkpoint(folder.name):  # step_500/samples_ddim50.png ...: one checkpoint each (round AN)
            continue
        if (files := _images_named_by_step(folder, options)) is None:
            continue
        read = _steps_in_series(list(files), options)
        if read and not _index_like(list(read[0])):
            series[folder] = read
    if not series:
        series = {folder: (steps, None) for folder, steps in _counted_together(folders, options).items()}
    # where most folders of several images read the step, every folder reads it: a folder of one
    # (OneTrainer's samples/custom/) fits any number of its name (its epoch step, 80, not 200)
    positions = Counter(at for steps, at in series.values() if len(steps) >= 2)
    if positions and (common := positions.most_common(1)[0][0]) is not None:
        for folder, (steps, at) in list(series.items()):
            if at != common:
                read = _steps_in_series(list(steps.values()), options, common)
                del series[folder]
                if read:
                    series[folder] = read
    series = {folder: steps for folder, (steps, _) in series.items()}
    counts = Counter(step for steps in series.values() for step in steps)
    if len(series) < 2 or max(counts.values()) < 2 or _checkpoints_of_seeds(series, options):
        return {}
    parent = next(iter(series)).parent
    names = sorted(folder.name for folder in series)
    warn_once(parent, f"{parent}: {len(series)} folders ({listed(names, 3)}) "
                       "hold an image at every step: one checkpoint per step, each folder's samples labelled by its "
                       "name (to watch one alone, point evowatch at it)", about="series folders", say=log.info)
    groups = {}
    variants = {folder: m[0] if (m := _MODEL_VARIANT.search(folder.name)) else "" for folder in series}
    for variant in sorted(set(variants.values())):
        for step in counts:
            files = tuple(sorted(steps[step] for folder, steps in series.items()
                                 if step in steps and variants[folder] == variant))
            if files:
                name = _NO_NUMBER.sub("?", files[0].name)  # a time apart in each folder
                groups[files[0].parent.parent / f"{SAMPLE_KEY}{variant}" / name] = (step, files)
    return groups
