"""The watcher: a store kept in step with a run folder, its state, and the parts it is made of."""
from __future__ import annotations

import os
import threading
from collections import Counter, deque

from engine.encoders import Encoder
from engine.records import Checkpoint
from engine.sampler import Sampler
from engine.tensorboard_images import TensorBoardImages
from engine.watch.after_ingest import _Hooks
from engine.watch.config import AfterIngest, WatchConfig
from engine.watch.events import _Wake
from engine.watch.found_notes import _FoundNotes
from engine.watch.ingest_pass import _IngestPass
from engine.watch.labels import _Labels
from engine.watch.live import _Live
from engine.watch.moves import _Moves
from engine.watch.pending import _Pending
from engine.watch.run_folder import _LaterRuns, _RunFolder
from engine.watch.settling import _Settling
from stores.zarr_store import StoreWriter


class Watcher(_Pending, _Moves, _Settling, _FoundNotes, _Labels, _IngestPass, _Hooks, _Live, _RunFolder):
    """Keeps a store in step with a run directory; every pass is idempotent."""

    def __init__(self, config: WatchConfig, store: StoreWriter, encoder: Encoder,
                 after_ingest: list[AfterIngest] | None = None) -> None:
        self.config, self.store, self.encoder = config, store, encoder
        self.after_ingest = after_ingest or []
        self._hashes: dict[str, tuple[tuple, str]] = {}
        self._changed = threading.Event()
        self._references_checked = False
        self._settling: list[Checkpoint] = []  # found by the last scan, still being written
        self._found = 0  # checkpoints of the run seen by the last scan, ready or not
        #: the options checkpoints are hashed and read with: the run's label folders named
        #: (_note_label_folders), --settle lengthened (_lengthen_settle)
        self._options = config.options
        self._label_folders_of: tuple = ()  # the checkpoints (source, files) the options' label folders are of
        self._shared_steps_noted = False
        self.live = False  # more checkpoints may come (run_forever, the demo): none yet is no warning
        self._run_dir_gone = False
        self._run_path = os.path.realpath(config.run_dir)  # where a RUN_DIR link led when last looked at
        self._replacing: set[str] = set()  # sources committed before with other content
        self._unsampled: dict[str, str] = {}  # sources whose sampler failed, by content: not retried by this process
        self._moved: dict[str, str] = {}  # new source -> the vanished source its files were read from
        self._move_checked: set[tuple[str, str]] = set()  # (source, content hash) looked for as a move
        self._digests: dict[str, list] = {}  # file digests of the checkpoints hashed in this pass
        self._taken_files: dict[int, list[frozenset]] = {}  # each step's checkpoints' files when last taken
        self._grew: Counter[int] = Counter()  # times a step's checkpoint was taken again with more files
        # Samples of each one-image checkpoint ingested (a grid's tiles), by series: StarGAN v2
        # writes sheets of several sizes at each step (cycle consistency, reference, latent).
        self._grid_sizes: dict[str, deque[int]] = {}
        self._logged_images = TensorBoardImages()
        # What reads the generated checkpoints instead of their files: the --sampler, or the
        # images logged to TensorBoard of a run that writes no sample file; None: the files.
        self._stand_in: Sampler | TensorBoardImages | None = config.sampler
        self._wake: _Wake | None = None  # the file events' handler, once the run directory is watched
        self._sampler_files_noted = False  # said that a --sampler leaves the run's sample files unread
        self._labels_looked_for = False  # a relative --labels looked for by a pass with generated checkpoints
        self._unlabelled_said: set[str] = set()  # why samples went without a label, said (_say_unlabelled)
        self._watched: tuple[int, int] | None = None  # the (device, inode) of the folder whose events come
        self._said_deleted_unread = False  # a checkpoint deleted before it was complete, said (_say_deleted_unread)
        self._looked_at = 0.0  # when the last scan found the checkpoints of self._settling being written
        self._trainer_exited = False  # trainer_exited(): --settle 0 from then on, never lengthened again
        self._later_runs = _LaterRuns(config.run_dir)
