"""The trainer's logged scalars: stored beside the metrics, and their steps' unit checked once."""
from __future__ import annotations

import logging

import numpy as np

from stores.format import KIND_CODES, array_names
from stores.zarr_store import StoreWriter

log = logging.getLogger(__name__)
#: The logs' newest step past this many times the newest checkpoint's (of 3 or more) is said to
#: be of another unit: an epoch has hundreds of iterations; a run sampled at 0, 10, 100, 1,000
#: ... logs 10x its newest checkpoint's step at most before the next.
UNITS_APART = 50


class _Scalars:
    """:class:`~engine.signals.hook.Signals`' trainer scalars. Signals gives them ``run_dir``,
    ``_trainer_logs`` and ``_said_units``."""

    def _update_scalars(self, store: StoreWriter) -> dict:
        losses = self._trainer_logs.read(self.run_dir)
        if losses:
            steps = np.unique(np.concatenate([s for s, _ in losses.values()])).astype(np.int64)
            columns: dict[str, np.ndarray] = {"step": steps}
            keys = array_names(losses)  # a scalar the trainer named "step" (diffusers), "loss/D" beside "loss_D"
            for name, (s, v) in losses.items():
                column = np.full(len(steps), np.nan)
                column[np.searchsorted(steps, s)] = v
                columns[keys[name]] = column
            store.write_scalars(columns)
        return losses

    def _say_other_units(self, ckpt: dict, losses: dict) -> None:
        """Once: the checkpoints' steps and the logs' look like two units. diffusers' scripts log
        their validation images at the epoch and their losses at the global step (1..8 beside
        1..2,000; round AV): the loss charts and the convergence rule match them by number."""
        if self._said_units or not losses:
            return
        steps = np.unique(ckpt["step"][ckpt["kind"] == KIND_CODES["generated"]]) if len(ckpt["step"]) else []
        logged = max((int(np.max(s)) for s, _ in losses.values() if len(s)), default=0)
        if len(steps) < 3 or logged <= UNITS_APART * max(int(steps[-1]), 1):
            return
        self._said_units = True
        log.warning("%s: the checkpoints' steps (%s to %s) and the trainer logs' (to %s) look like two units "
                    "(epochs and iterations?): losses are matched to checkpoints by step number; log both at the "
                    "same step", self.run_dir, f"{int(steps[0]):,}", f"{int(steps[-1]):,}", f"{logged:,}")
