"""Steps of single files whose names count two things (an epoch and the batch or step in it,
a step before a number all names share): read by the default rule, their steps started again
each epoch, or were all one."""
from __future__ import annotations

import re
from pathlib import Path

from engine.discovery.file_times import _telling_times
from engine.discovery.steps import _EPOCH, _NAMED_STEP, _NOT_A_STEP, _blanked


#: A name of two numbers and nothing else that counts (a date, a setting masked): the text
#: before, the first, the text between, the second, the text after.
_TWO_COUNTERS = re.compile(r"(\D*)(\d+)(\D+)(\d+)(\D*)")


def _epoch_batch_steps(files: list[Path]) -> dict[Path, int]:
    """Steps of single files named by the epoch and then the batch in it, which starts again
    each epoch (DCGAN-tensorflow's ``train_{epoch:02d}_{idx:04d}.png``, dome272's VQGAN
    ``results/{epoch}_{i}.jpg``): read as the batch, later epochs came before earlier ones.
    Where the files' times show the batch starting again while epoch and batch together
    grow, the step is epoch x 10^digits + batch (``train_01_0006`` -> 10,006): training order,
    the batch as it is in each epoch. Nothing changes while the first epoch runs."""
    series: dict[tuple[Path, str, str, str], list[tuple[int, int, int, Path]]] = {}
    for path in files:
        masked = _blanked(_NOT_A_STEP, path.stem)
        match = _TWO_COUNTERS.fullmatch(masked)
        if match and not _NAMED_STEP.search(masked):
            before, epoch, between, batch, after = match.groups()
            series.setdefault((path.parent, before, between, after + path.suffix), []).append(
                (int(epoch), int(batch), len(batch), path))
    steps = {}
    for members in series.values():
        times = _telling_times([path for *_, path in members]) if len(members) >= 3 else None
        if times is None:
            continue  # too few, or a copy: the times tell nothing
        ordered = [pair for _, pair in sorted(zip(times, [(e, b) for e, b, _, _ in members]))]
        restarts = any(b2 < b1 for (_, b1), (_, b2) in zip(ordered, ordered[1:]))
        if restarts and all(a < b for a, b in zip(ordered, ordered[1:])):
            steps.update(_epoch_major(members))
    return steps


def _epoch_major(members: list[tuple[int, int, int, Path]]) -> dict[Path, int]:
    """(epoch, count in the epoch, its digits, path) -> epoch x 10^digits + count: training order."""
    scale = 10 ** max(digits for _, _, digits, _ in members)
    return {path: epoch * scale + count for epoch, count, _, path in members}


def _steps_in_epochs(files: list[Path]) -> dict[Path, int]:
    """Steps of single files named by the epoch, then a step counted within it (VQ-Diffusion's
    ``e{epoch:010d}_itr{iter % iters_per_epoch:010d}_rank0_ema.jpg``): read as the named step,
    every epoch of its default config was one step, 2999. Where a later epoch's step is not
    past an earlier epoch's, the step is epoch x 10^digits + step, as for an epoch's batches."""
    series: dict[tuple[Path, str], list[tuple[int, int, int, Path]]] = {}
    for path in files:
        masked = _blanked(_NOT_A_STEP, path.stem)
        named = list(_NAMED_STEP.finditer(masked))
        epoch = _EPOCH.search(masked)
        if len(named) == 1 and epoch and epoch.end() <= named[0].start():
            key = masked[:epoch.start(1)] + "#" + masked[epoch.end(1):named[0].start(1)] + "#" + masked[named[0].end(1):]
            series.setdefault((path.parent, key + path.suffix), []).append(
                (int(epoch[1]), int(named[0][1]), len(named[0][1]), path))
    steps = {}
    for members in series.values():
        by_epoch: dict[int, list[int]] = {}
        for epoch, step, _, _ in members:
            by_epoch.setdefault(epoch, []).append(step)
        epochs = sorted(by_epoch)
        if any(max(by_epoch[a]) >= min(by_epoch[b]) for a, b in zip(epochs, epochs[1:])):
            steps.update(_epoch_major(members))
    return steps


def _steps_before_a_constant(files: list[Path]) -> dict[Path, int]:
    """Steps of single files whose last number, the step by default, is the same in every
    name that starts alike and holds as many numbers, while an earlier number differs:
    CogVideoX's ``validation-{step}-{rank}-{prompt}-{hash}.png`` (rank 0 in every name) was
    step 0 throughout. The last such earlier number is the step. A name alone of its kind
    (a live run's first sample file) whose last numbers are 0, a first sample's index, reads
    the number before them (:func:`_step_before_first_indices`). Names that call a number the
    step keep it."""
    series: dict[tuple[Path, str, int], list[tuple[list[int], Path]]] = {}
    for path in files:
        masked = _NOT_A_STEP.sub("_", path.stem)
        numbers = [int(n) for n in re.findall(r"\d+", masked)]
        if len(numbers) >= 2 and not _NAMED_STEP.search(masked):
            series.setdefault((path.parent, re.split(r"\d", masked, maxsplit=1)[0], len(numbers)), []).append((numbers, path))
    steps = {}
    for members in series.values():
        columns = list(zip(*(numbers for numbers, _ in members)))
        varying = [i for i, column in enumerate(columns[:-1]) if len(set(column)) > 1]
        if len(members) >= 2 and len(set(columns[-1])) == 1 and varying:
            steps.update({path: numbers[varying[-1]] for numbers, path in members})
        elif len(members) == 1 and (step := _step_before_first_indices(members[0][1].stem)) is not None:
            steps[members[0][1]] = step
    return steps


#: A number that counts on its own: at the start, after a separator or an epoch mark
#: (``mylora_000500``, ``__000000250``, ``_e000003``), not glued to a word (``cifar10``, ``sd15``).
_STANDALONE_NUMBER = re.compile(r"(?:^|(?<=[-_. ])|(?<=(?<![a-z])e)|(?<=(?<![a-z])ep)|(?<=(?<![a-z])epoch))(\d+)",
                                re.IGNORECASE)


#: A date without a time of day (``20240514``, ``2024_05_14``): a folder's or run's name, no step.
_DATE = re.compile(r"(?<!\d)(?:19|20)\d\d([-_.]?)(?:0[1-9]|1[0-2])\1(?:0[1-9]|[12]\d|3[01])(?!\d)")


def _step_before_first_indices(stem: str) -> int | None:
    """The step of a lone ``{step}_{index}`` name whose index is 0: the first file a per-sample
    writer saves (kohya-ss's ``mylora_000500_00_<time>.png``, ai-toolkit's
    ``<time>__000000250_0.jpg``, ``sample_1000_0.png``) read alone until a second one comes;
    its last number, the prompt index, was the step (0). The last non-zero number before the
    trailing zeros, standing alone and no date; None where there is none (``cifar10_0``,
    ``run_20240514_0``: step 0)."""
    masked = _NOT_A_STEP.sub("_", stem)
    numbers = list(re.finditer(r"\d+", masked))
    count = len(numbers)
    while numbers and int(numbers[-1][0]) == 0:
        numbers.pop()
    if len(numbers) == count or not numbers:
        return None  # no trailing index 0, or nothing but zeros (step 0 itself)
    last = numbers[-1]
    if not any(m.span(1) == last.span() for m in _STANDALONE_NUMBER.finditer(masked)) or any(
            m.start() <= last.start() and last.end() <= m.end() for m in _DATE.finditer(masked)):
        return None  # a number glued to a word, or a date (run_20240514_0: step 0, not 20,240,514)
    return int(last[0])
