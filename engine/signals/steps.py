"""Which steps a call measures: those due, and those rewritten, abandoned or renamed since."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from stores.format import KIND_CODES

def _due(ckpt: dict, by_step: dict[int, list[int]],
         measured: dict) -> Iterator[tuple[int, list[int], list[tuple[int, int]], list[int]]]:
    """(step, its current checkpoints, their row ranges, the basis ``measured`` records) of each
    step to measure, in step order: new, rewritten, joined by another checkpoint, or marked."""
    starts, stops = ckpt["row_start"].tolist(), ckpt["row_stop"].tolist()  # no numpy read per checkpoint
    for step, indices in by_step.items():
        ranges = [(starts[i], stops[i]) for i in indices]
        basis = [max(indices), sum(b - a for a, b in ranges)]
        if step not in measured or measured[step] not in (None, basis):
            yield step, indices, ranges, basis


def _current_generated_by_step(ckpt: dict[str, np.ndarray], current: np.ndarray) -> dict[int, list[int]]:
    """The ``current`` generated checkpoints of each step, by step: a step's metrics cover them
    all (``12.png`` and ``12-ema.png``; a grid rewritten in place counts in its latest version)."""
    indices = np.flatnonzero(current & (ckpt["kind"] == KIND_CODES["generated"]))
    indices = indices[np.argsort(ckpt["step"][indices], kind="stable")]
    by_step: dict[int, list[int]] = {}
    for step, i in zip(ckpt["step"][indices].tolist(), indices.tolist()):
        by_step.setdefault(step, []).append(i)
    return by_step


def _replaced_steps(ckpt: dict[str, np.ndarray], current: np.ndarray,
                    by_step: dict[int, list[int]]) -> dict[int, tuple[int, int]]:
    """Each step whose current checkpoints replaced an earlier version of it: (the earliest
    version's checkpoint index, the current one's). A step whose checkpoint came between the two
    was judged on the version replaced (a run resumed from an earlier checkpoint)."""
    older = np.flatnonzero(~current & (ckpt["kind"] == KIND_CODES["generated"]))  # in index order
    firsts: dict[int, int] = {}
    for step, i in zip(ckpt["step"][older].tolist(), older.tolist()):
        firsts.setdefault(step, i)
    return {step: (first, max(by_step[step])) for step, first in firsts.items() if step in by_step}


def _abandoned_steps(by_step: dict[int, list[int]], replaced: dict[int, tuple[int, int]]) -> dict[int, tuple[int, int]]:
    """Each step whose checkpoint came before an earlier step's rewrite (:func:`_replaced_steps`)
    and past which a checkpoint written after that rewrite has landed, once one of those landed at
    or below the newest step before the rewrite: only a run resumed from the earlier checkpoint
    writes there, so the step it went past without rewriting is the abandoned run's for good (left
    "judged again when step S is" for ever, and read in the later steps' history). Steps after the
    rewrite only past every earlier one prove nothing: the run may have gone on (step_200 written
    slowly, rewritten as it settled after a fast step_300, then 400: 300's collapse was withdrawn as
    the abandoned run's; round BL). Step -> (the rewritten step, the first later step)."""
    if not replaced or not by_step:
        return {}
    steps = np.array(list(by_step))  # in step order
    last = np.array([max(indices) for indices in by_step.values()])
    firsts = np.array([min(indices) for indices in by_step.values()])
    earlier, first, index = (np.array(column) for column in zip(*((r, f, i) for r, (f, i) in sorted(replaced.items()))))
    after = firsts[None, :] > index[:, None]  # rewrite x step: the step's checkpoint written after the rewrite
    reached = np.where(after, -1, steps[None, :]).max(axis=1)  # the newest step before each rewrite
    resumed = (after & (steps[None, :] <= reached[:, None])).any(axis=1)
    beyond = np.where(after & resumed[:, None], steps[None, :], -1).max(axis=1)
    skipped = ((earlier[None, :] < steps[:, None]) & (first[None, :] < last[:, None]) & (last[:, None] < index[None, :])
               & (steps[:, None] < beyond[None, :]))
    out = {}
    for i, j in zip(*np.nonzero(skipped)):
        if int(steps[i]) not in out:
            out[int(steps[i])] = (int(earlier[j]), int(steps[after[j] & (steps > steps[i])][0]))
    return out


def _renamed_steps(ckpt: dict[str, np.ndarray], current: np.ndarray, by_step: dict[int, list[int]]) -> dict[int, int]:
    """Each step no current checkpoint is at any more whose checkpoint is read at one other step
    now, under its name (a folder renamed, ``step_200`` to ``step_250``: its earlier reading
    takes the new name, docs/store.md): the old step -> the new one. Its alerts go with it."""
    older = np.flatnonzero(~current & (ckpt["kind"] == KIND_CODES["generated"]) & ~np.isin(ckpt["step"], list(by_step)))
    by, now = ckpt["superseded_by"], older.copy()
    for _ in range(len(by)):  # the replacement's replacement, up to the current reading
        ahead = (now >= 0) & (now < len(by)) & ~current[np.clip(now, 0, len(by) - 1)]
        if not ahead.any():
            break
        now[ahead] = by[now[ahead]]
    targets: dict[int, set[int]] = {}
    for i, j in zip(older.tolist(), now.tolist()):
        same = 0 <= j < len(by) and current[j] and ckpt["source"][i] == ckpt["source"][j]
        targets.setdefault(int(ckpt["step"][i]), set()).add(int(ckpt["step"][j]) if same else -1)
    return {step: new.pop() for step, new in targets.items() if len(new) == 1 and -1 not in new}
