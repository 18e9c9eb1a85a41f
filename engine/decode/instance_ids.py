"""Instance ids read from sample file names, to align a sample across steps."""
from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path


from engine.discovery.said_once import warn_once
from engine.discovery.steps import index_in_name, last_integer, numbers_in_name, rank_and_index
from engine.records import Checkpoint
from stores.format import MAX_INSTANCE, SAMPLE_KEY, listed
from stores.zarr_store import pattern_regex

log = logging.getLogger(__name__)


def name_ids(files: tuple[Path, ...], pattern: str | None = None) -> dict[Path, int]:
    """Instance ids from file names: the number at the ``*`` of a per-step pattern
    (``img_*_step_0500.png``, ``mylora_000500_*_??????????????.png``), else a name's last;
    none for a pattern without an index (``validation_500_????????????????????.png``: names
    apart by a hash). A file whose number another file shares, or that has none (a stray
    ``00003 (1).png`` beside the samples), gets no id; the others keep theirs. A name marking its
    process's rank (``rank1_3.png``) takes the rank and index together (:func:`_rank_ids`); names
    whose other varying numbers together tell them all apart take those instead."""
    if pattern and "?" in pattern and "*" not in pattern:
        return {}
    wildcard = pattern_regex(pattern) if pattern and "*" in pattern else None
    numbers, unmatched = {}, []
    for path in files:
        if wildcard and (match := wildcard.fullmatch(path.name)):
            numbers[path] = int(match[1])
        else:
            unmatched.append(path)
    ranked = _rank_ids({path: path.stem for path in unmatched})
    for path in unmatched:
        if (number := ranked.get(path, index_in_name(path.stem))) is not None:
            numbers[path] = number
    shared = Counter(numbers.values())
    ids = {path: number for path, number in numbers.items() if shared[number] == 1}
    return ids if len(ids) == len(files) else _varying_number_ids(files) or ids


#: The digits each varying number after the first takes at least in an id (:func:`_varying_number_ids`):
#: padded to the checkpoint's largest, ten samples a rank made rank1_0 id 10 and eleven at the next
#: step made rank0_10 id 10, another sample followed as the same one.
_MIN_DIGITS = 4


def _rank_ids(names: dict[Path, str]) -> dict[Path, int]:
    """Ids of names marking their process's rank (``rank1_3``: 10003, the index in
    :data:`_MIN_DIGITS` digits or the largest one's), decided by each name alone: a step holding
    one rank's files gave them their bare indices, the ids of rank 0's samples at other steps. A
    number every rank's one file carries (``step_1000/0001000_rank1.png``) is no index: index 0."""
    pairs = {path: pair for path, name in names.items() if (pair := rank_and_index(name))}
    if len(pairs) > 1 and len({index for _, index in pairs.values()}) == 1:  # one file a rank, a number they all
        pairs = {path: (rank, 0) for path, (rank, _) in pairs.items()}  # carry (0001000_rank1: the step) is no index
    width = max([_MIN_DIGITS] + [len(str(index)) for _, index in pairs.values()])
    return {path: rank * 10 ** width + index for path, (rank, index) in pairs.items()}


def _varying_number_ids(files: tuple[Path, ...]) -> dict[Path, int]:
    """Ids of names whose last numbers repeat but whose varying numbers together do not (each
    process's ``1_3.png``, its rank unnamed: the first varying number, then the others in
    :data:`_MIN_DIGITS` digits or the largest one's, 10003), decided from the step's files, so a step
    of one process's files takes the plain rule's bare indices (named ranks: :func:`_rank_ids`); {}
    unless every name has as many numbers and no two the same varying ones (a stray ``00003 (1).png``)."""
    numbers = {path: numbers_in_name(path.stem) for path in files}
    if len(files) < 2 or len({len(found) for found in numbers.values()}) != 1:
        return {}
    varying = [i for i, column in enumerate(zip(*numbers.values())) if len(set(column)) > 1]
    keys = {path: [found[i] for i in varying] for path, found in numbers.items()}
    if not varying or len({tuple(key) for key in keys.values()}) != len(files):
        return {}
    widths = [max(_MIN_DIGITS, len(str(max(key[i] for key in keys.values())))) for i in range(len(varying))]
    return {path: int(str(key[0]) + "".join(f"{n:0{w}d}" for n, w in zip(key[1:], widths[1:])))
            for path, key in keys.items()}


def sample_keys(files: tuple[Path, ...], pattern: Path) -> dict[Path, str]:
    """What tells the samples of a pattern apart: the part of each name at ``{sample}``
    (``step_500_{sample}.png``: ``street_0_512x512``, ``1-a photo of 2 cats``), or the folder
    at it (``samples/{sample}/step_500.png``: ``cat``); {} for other sources."""
    if pattern.parent.name.startswith(SAMPLE_KEY):  # samples/{sample} - no-ema/: the variant is no part of the key
        variant = pattern.parent.name.removeprefix(SAMPLE_KEY)
        return {path: path.parent.name.removesuffix(variant) for path in files}
    if SAMPLE_KEY not in pattern.name:
        return {}
    regex = pattern_regex(pattern.name)
    return {path: match[1] for path in files if (match := regex.fullmatch(path.name))}


def key_ids_and_labels(keys: dict[Path, str]) -> tuple[dict[Path, int], dict[Path, str]]:
    """Instance ids and labels of samples named by a prompt or class: the index every key
    begins with and the prompt after it, when each has a distinct one (EveryDream2's
    ``1-a photo of 2 cats``), else the keys' order and the keys themselves (``3_dogs`` is a
    prompt): the same prompts get the same ids at every step. Keys that each mark a process's
    rank (``img_step500_{sample}.png``: ``rank1_3``) are no prompt: their rank and index are the id."""
    if (ranked := _rank_ids(keys)) and len(ranked) == len(keys):
        return ranked, {}
    split = {path: m.groups() for path, key in keys.items() if (m := re.fullmatch(r"(\d+)[-_ .]+(.+)", key))}
    if len(split) * 2 > len(keys) and len({int(index) for index, _ in split.values()}) == len(split):
        # the few others (OneTrainer's samples/custom/, asked for once) numbered after them
        others = {key: max(int(index) for index, _ in split.values()) + 1 + i
                  for i, key in enumerate(sorted({key for path, key in keys.items() if path not in split}))}
        return ({path: int(split[path][0]) if path in split else others[key] for path, key in keys.items()},
                {path: split[path][1] if path in split else key for path, key in keys.items()})
    order = {key: i for i, key in enumerate(sorted(set(keys.values())))}
    return {path: order[key] for path, key in keys.items()}, dict(keys)


def folder_name_ids(files: tuple[Path, ...], folders: dict[Path, str]) -> dict[Path, int]:
    """Instance ids of numbered files in per-label folders whose numbers start again in each
    (invoke-training's ``prompt_0000/0000.jpg``, ``prompt_0001/0000.jpg``): the folder's place
    among them times a power of ten past the largest number, plus the number; {} unless every
    file is in such a folder with a number of its own there."""
    numbers = {path: last_integer(path.stem) for path in files}
    if not folders or len(folders) != len(files) or None in numbers.values() or \
            len({(folders[path], number) for path, number in numbers.items()}) != len(files):
        return {}
    order = {name: i for i, name in enumerate(sorted(set(folders.values())))}
    stride = 10 ** len(str(max(numbers.values())))
    return {path: order[folders[path]] * stride + number for path, number in numbers.items()}


def _say_unnumbered(checkpoint: Checkpoint, files: list[Path]) -> None:
    """Once per checkpoint and process: which files got no instance id, so a user sees why
    those samples are not followed from step to step."""
    names = listed([f.name for f in files])
    warn_once(checkpoint.root / checkpoint.source,
              f"{checkpoint.source}: {len(files)} of {len(checkpoint.files)} files share their number with another, "
              f"have none or one past {MAX_INSTANCE:,} ({names}): no instance id for them; the others keep theirs "
              "(rename or remove the strays)",
              about="ids", say=log.warning)

