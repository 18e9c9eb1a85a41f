"""The callbacks a two-process CPU DDP run (gloo) of tests/test_examples.py spawns with: module-level,
so the spawned ranks can unpickle them, and apart, as they need lightning to import."""
from __future__ import annotations

import time
from pathlib import Path

from lightning.pytorch.callbacks import Callback

from engine.pause import evowatch_should_pause, write_pause

#: The batch at which the pause file appears after rank 0 looked for it and before rank 1 does.
RACE_BATCH = 3


class PauseRace(Callback):
    """Placed before the pause callback (``role="before"``), it holds rank 1 at RACE_BATCH until the
    pause file is there (3 s at most); placed after it (``"after"``), rank 0 writes the file there, once,
    and logs each rank's batch ends to ``RUN/rank{N}.log`` (batch index and time)."""

    def __init__(self, run: Path, role: str) -> None:
        self.run, self.role, self.written = run, role, False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if batch_idx != RACE_BATCH:
            return
        if self.role == "before" and trainer.global_rank == 1:
            deadline = time.monotonic() + 3
            while not evowatch_should_pause(self.run) and time.monotonic() < deadline:
                time.sleep(0.01)
        if self.role == "after" and trainer.is_global_zero and not self.written:
            self.written = True
            write_pause(self.run, {"step": RACE_BATCH, "rule": "collapse", "value": 1.0, "message": "m"})

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self.role == "after":
            with open(self.run / f"rank{trainer.global_rank}.log", "a") as log:
                log.write(f"{batch_idx} {time.time():.3f}\n")
