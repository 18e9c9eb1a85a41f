"""Keep the store's layout in step with its samples, one checkpoint at a time.

Layout rows are row-aligned with the samples and committed in row order. Each checkpoint not
yet laid out is placed from its own vectors and the stored state of the generated
checkpoint just before it in step order (its xy, instance ids and vectors): the cost of an
update is that of the new checkpoint, never of the history, and earlier rows never move.
"""
from __future__ import annotations

import logging
import shlex
import time
from dataclasses import replace

import numpy as np

from engine.backlog_log import BacklogLog, counted
from engine.errors import StoreFormatError
from engine.layout import LayoutParams, StepState, layout_full, layout_step
from engine.layout.evolution import MIN_TSNE_SAMPLES
from stores.format import KIND_CODES
from stores.zarr_store import StoreWriter, superseded_flags

log = logging.getLogger(__name__)

#: A step this large is said before it is laid out: one t-SNE of it takes minutes on a few
#: cores, and nothing else is said until it is done (20,000 samples: silent for 6 minutes).
SAID_BEFORE = 10_000

GENERATED, REAL, HOLDOUT = KIND_CODES["generated"], KIND_CODES["real"], KIND_CODES["holdout"]


def _state(store: StoreWriter, start: int, stop: int) -> StepState:
    rows = slice(start, stop)
    return StepState(xy=store.layout_xy(rows), instances=store.samples("instance", rows).astype(np.int64),
                     vectors=store.samples("embedding", rows).astype(np.float32))


def _previous(ckpt: dict, laid_out: np.ndarray, current: np.ndarray, index: int, params: LayoutParams) -> int | None:
    """The latest laid-out, current generated checkpoint with a smaller step, passing over
    ones too small to anchor it: every sample of a 300-sample step after a 3-sample one got
    the same anchor (the mean of all 3), was pulled back to it, and the alignment to the
    step before was lost. Large enough is twice the anchors' neighbours, or the new step's
    size; the latest holding a sample when none is (not one whose files were all skipped: the
    step was laid out cold)."""
    step = ckpt["step"][index]
    candidates = np.flatnonzero(laid_out & current & (ckpt["kind"] == GENERATED) & (ckpt["step"] < step))
    if not len(candidates):
        return None
    sizes = ckpt["row_stop"] - ckpt["row_start"]
    enough = min(int(sizes[index]), 2 * params.init_neighbours)
    latest_first = candidates[np.argsort(-ckpt["step"][candidates], kind="stable")]
    found = next((c for c in latest_first if sizes[c] >= enough), next((c for c in latest_first if sizes[c]), None))
    return None if found is None else int(found)


def _real_set(ckpt: dict, laid_out: np.ndarray, current: np.ndarray, index: int) -> int | None:
    """What a held-out set is anchored to: the (largest) current real set laid out. The two
    share the reference band, and laid out apart they were two unrelated maps on top of each
    other: a held-out image sat no nearer its identical real copy than any real image."""
    if ckpt["kind"][index] != HOLDOUT:
        return None
    candidates = np.flatnonzero(laid_out & current & (ckpt["kind"] == REAL))
    if not len(candidates):
        return None
    return int(candidates[np.argmax((ckpt["row_stop"] - ckpt["row_start"])[candidates])])


def update_layout(store: StoreWriter, params: LayoutParams | None = None) -> int:
    """Lay out every committed checkpoint that has no layout yet; returns the rows added."""
    params = params or LayoutParams()
    ckpt = store.checkpoints()
    current = store.current_checkpoints()  # the writer's record: superseded_flags reads every source (O(history))
    added, began_all = 0, time.perf_counter()
    laid = store.layout_rows  # read once: it opens a group, and a pass looked at every stored checkpoint
    pending = np.flatnonzero((ckpt["row_stop"] > laid) & (ckpt["row_stop"] > ckpt["row_start"]))
    pending = pending[np.argsort(ckpt["row_start"][pending], kind="stable")]  # not a Python loop over the history
    if len(pending):
        store.check_layout_writable()
    said = BacklogLog(log, len(pending), "laying out", "laid out")
    for index in pending:
        start, stop = int(ckpt["row_start"][index]), int(ckpt["row_stop"][index])
        if start != laid:  # a store edited or restored by hand: a traceback stopped `layout` and the watch
            raise StoreFormatError(f"{store.path}: its layout ends at row {laid}, not where a checkpoint's rows start "
                                   f"({start}); `evowatch layout {shlex.quote(str(store.path))} --full` lays it out again")
        laid_out = ckpt["row_stop"] <= laid
        prev_index = (_previous(ckpt, laid_out, current, index, params) if ckpt["kind"][index] == GENERATED
                      else _real_set(ckpt, laid_out, current, index))
        previous = None if prev_index is None else _state(store, int(ckpt["row_start"][prev_index]),
                                                           int(ckpt["row_stop"][prev_index]))
        began = time.perf_counter()
        if stop - start >= SAID_BEFORE:
            log.info("laying out %s: %s (minutes for a step this large)", f"step {int(ckpt['step'][index])}"
                     if ckpt["kind"][index] == GENERATED else "reference set", counted(stop - start, "sample"))
        vectors = store.samples("embedding", slice(start, stop)).astype(np.float32)
        instances = store.samples("instance", slice(start, stop)).astype(np.int64)
        state = layout_step(vectors, instances, previous, params)
        store.commit_layout(state.xy, start)
        laid = stop
        added += stop - start
        generated = ckpt["kind"][index] == GENERATED
        step = int(ckpt["step"][index])
        said.item(step if generated else None, "laid out %s: %s in %.1f s",
                  f"step {step}" if generated else "reference set", counted(stop - start, "sample"),
                  time.perf_counter() - began)
    said.finish(f": {added:,} samples in {time.perf_counter() - began_all:.1f} s")
    return added


def recompute_layout(store: StoreWriter, params: LayoutParams | None = None) -> int:
    """The joint, non-incremental layout over all current generated steps (`evowatch layout --full`)."""
    params = params or LayoutParams()
    store.check_layout_writable()
    ckpt = store.checkpoints()
    current = ~superseded_flags(ckpt)

    def rows(i: int) -> slice:
        return slice(int(ckpt["row_start"][i]), int(ckpt["row_stop"][i]))

    def state(i: int) -> StepState:  # its xy once solved
        return StepState(xy=np.zeros((0, 2), np.float32), instances=store.samples("instance", rows(i)).astype(np.int64),
                         vectors=store.samples("embedding", rows(i)).astype(np.float32))

    in_order = [int(i) for i in np.argsort(ckpt["step"], kind="stable") if current[i] and ckpt["kind"][i] == GENERATED]
    # steps too small for a t-SNE of their own (a few samples, or none left readable) are
    # placed after, from the step before them, as the incremental layout places them
    joint = [i for i in in_order if ckpt["row_stop"][i] - ckpt["row_start"][i] >= MIN_TSNE_SAMPLES]
    log.info("laying out %s jointly (%s): minutes for a large run; the layout there is stays until the new one "
             "is whole", counted(len(joint), "step"),
             counted(int(sum(ckpt["row_stop"][i] - ckpt["row_start"][i] for i in joint)), "sample"))
    states = {i: state(i) for i in joint}
    solved = dict(zip(joint, layout_full([states[i].vectors for i in joint], [states[i].instances for i in joint],
                                         params))) if joint else {}
    previous = None
    for index in in_order:
        if index not in solved and rows(index).stop > rows(index).start:
            states[index] = state(index)
            solved[index] = layout_step(states[index].vectors, states[index].instances, previous, params).xy
        if index in solved:
            previous = replace(states[index], xy=solved[index])
    in_rows = [int(i) for i in np.argsort(ckpt["row_start"], kind="stable") if rows(int(i)).stop > rows(int(i)).start]
    for index in in_rows:
        if index not in solved:  # reference sets and superseded versions: laid out as incrementally
            done = np.isin(np.arange(len(ckpt["step"])), list(solved))
            real = _real_set(ckpt, done, current, index)
            anchor = None if real is None else replace(state(real), xy=solved[real])
            solved[index] = layout_step(store.samples("embedding", rows(index)).astype(np.float32),
                                        store.samples("instance", rows(index)).astype(np.int64), anchor, params).xy
    # only now, every solution at hand, is the old layout given up (a Ctrl-C while reference
    # sets were still laid out left the store with none), for the new one whole
    store.replace_layout(np.concatenate([solved[index] for index in in_rows]) if in_rows else np.zeros((0, 2)))
    return store.layout_rows
