"""One pass of the watch: what is ready ingested, with its progress and lines, then the hooks."""
from __future__ import annotations

import logging
import statistics
import sys
from collections import deque

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from engine.backlog_log import BacklogLog, counted
from engine.decode.samples import iter_samples
from engine.discovery.options import IMAGE_EXTENSIONS
from engine.discovery.said_once import warn_once
from engine.discovery.steps import series_glob
from engine.pipeline import IngestResult, ingest
from engine.records import Checkpoint
from engine.tensorboard_images import logged_tags
from engine.watch.config import GRID_SIZES_KEPT
from stores.format import listed, stand_in_for_files

log = logging.getLogger(__name__)


class _WholeLines(tqdm):
    """tqdm whose ``write`` puts a line and its newline in one write: tqdm writes them apart, and
    a stop (SIGTERM) between the two ran the next line on ("...: 5 samplesevowatch: stopped")."""

    @classmethod
    def write(cls, s: str, file=None, end: str = "\n", nolock: bool = False) -> None:
        super().write(s + end, file=file, end="", nolock=nolock)


class _IngestPass:
    """:meth:`run_once` and what it says of the checkpoints it stored
    (:class:`~engine.watch.watcher.Watcher` gives it its state and the other parts)."""

    def run_once(self) -> list[IngestResult]:
        """Ingest everything that is ready now."""
        first_pass = not self._references_checked
        table = self.store.intact_checkpoints()  # read once a pass, passed down to what reads it
        committed = self.store.committed_readings(table)
        jobs, self._settling = self._pending(table, committed)
        if first_pass and not self._found:  # a wrong path or layout, or a run that has not sampled yet
            self._say_nothing_found()
        if not jobs:
            self._references_checked = True
            # a store left before its layout or signals were done (Ctrl-C, --no-metrics); live,
            # trainer logs grown since the newest checkpoint (a NaN loss is said at once)
            if first_pass or self.live:
                self._run_hooks([])
            return []
        self._read_labels_files(jobs)
        self._say_stand_ins_superseded(jobs, committed)
        results: list[IngestResult] = []
        bar = tqdm(total=None, unit="img", desc="ingest", file=sys.stderr, disable=None if self.config.progress else True, leave=False)
        said = BacklogLog(log, len(jobs), "ingesting", "ingested")
        unit = "logged image" if self._stand_in is self._logged_images else "file"  # what a skipped one is
        for job, _ in jobs:  # before the new reading's commit, which then supersedes the old one: made after
            if (old := self._moved.get(job.source)) is not None:  # the ingest, both were current meanwhile
                self.store.rename_source(old, job.source)  # (a live reader saw the step twice)
        with bar, logging_redirect_tqdm(tqdm_class=_WholeLines):
            for result in ingest(self.store, jobs, self.encoder, self._options,
                                 workers=self.config.workers, on_rows=lambda n: (bar.update(n), said.rows(n)),
                                 samples=self._stand_in.iter_samples if self._stand_in else iter_samples):
                results.append(result)
                c = result.checkpoint
                if not result.stored:
                    self._unsampled[c.source] = self._hashes[c.source][1]
                    if result.kept:
                        log.warning("step %d (%s): no file of its new version could be read (%s skipped, each named "
                                    "above): the earlier version's %s stay current until it is written again",
                                    c.step, c.source, counted(result.skipped, unit),
                                    counted(result.kept, "sample"))
                    else:
                        log.warning("step %d (%s): nothing stored; the next run of this command samples it again "
                                    "(a live watch: once its weights change; a fixed sampler is read when the watch "
                                    "restarts)", c.step, c.source)
                    continue
                generated = c.kind == "generated"
                note = f", {counted(result.skipped, unit)} skipped" if result.skipped else ""
                if c.source in self._replacing:
                    note += "; a new version, the earlier one's rows kept as superseded"
                if (old := self._moved.pop(c.source, None)) is not None:
                    note += f"; the files of {old}, stored before under that name: its rows kept as superseded"
                said.item(c.step if generated else None, "ingested %s (%s): %s%s",
                          f"step {c.step}" if generated else f"{c.kind} reference", c.source,
                          counted(result.rows, "sample"), note)
                if generated and result.unlabelled:
                    self._say_unlabelled(result)
                if generated and len(c.files) == 1 and c.files[0].suffix.lower() in IMAGE_EXTENSIONS and \
                        c.source.rsplit("/", 1)[-1] == c.files[0].name:  # an image, not a folder holding one
                    self._check_grid_size(c, result.rows)
        skipped = sum(r.skipped for r in results)
        said.finish(f": {counted(sum(r.rows for r in results), 'sample')}"
                    + (f", {counted(skipped, unit)} skipped (each named above)" if skipped else ""))
        self._references_checked = True
        self._run_hooks(results)
        return results

    def _say_stand_ins_superseded(self, jobs: list[tuple[Checkpoint, str]], committed: dict[str, tuple[str, int]]) -> None:
        """Say that the trainer's own files supersede the images logged to TensorBoard or a
        tracker's copies stored before them (a live watch read those while the run had no
        sample file yet; :func:`stores.format.stand_in_for_files`), among the store's current
        readings, ``committed``."""
        own = [c.source for c, _ in jobs if c.kind == "generated" and stand_in_for_files(c.source) is None]
        if not own:
            return
        stand_ins = sorted((step, source) for source, (_, step) in committed.items() if stand_in_for_files(source))
        if stand_ins:
            what = sorted({stand_in_for_files(source) for _, source in stand_ins})
            tags = logged_tags([source for _, source in stand_ins if "@" in source], self.config.run_dir)
            picks = " ".join(f"--samples '{tag}'" for tag in tags)
            back = (f"; were they no samples (a model card's images_0.png), {picks} reads the logged images again"
                    if tags else "")  # round AW: diffusers' model card images hid every logged step
            log.warning("%s: the run's own checkpoints came (%s): the %s stored before from %s (%s) %s kept as "
                        "superseded%s", self.config.run_dir, listed(own, 2), counted(len(stand_ins), "checkpoint"),
                        " and ".join(what), listed([source for _, source in stand_ins], 2),
                        "is" if len(stand_ins) == 1 else "are", back)

    def _check_grid_size(self, checkpoint: Checkpoint, rows: int) -> None:
        """Say when a grid splits into far more or fewer tiles than its series' latest grids (its
        geometry misread: an unpadded grid cut into quarter tiles, a blurry one not found), with
        the way to force it; and once per series that its images are read as one sample each."""
        series = series_glob(checkpoint.source)
        sizes = self._grid_sizes.setdefault(series, deque(maxlen=GRID_SIZES_KEPT))
        usual = statistics.median(sizes) if len(sizes) >= 2 else None
        first = not sizes
        sizes.append(rows)
        if usual and rows >= 1 and not usual / 2 <= rows <= usual * 2:
            log.warning("step %d (%s): %s where the series' grids so far had %g: if its grid was misread, force it "
                        "with --grid ROWSxCOLS", checkpoint.step, checkpoint.source, counted(rows, "sample"), usual)
        elif rows == 1 and first:
            warn_once(self.config.run_dir, f"{self.config.run_dir}: {checkpoint.source} and the images named like it "
                      "are read as one sample each (no grid found): if they are grids, force their geometry with "
                      "--grid ROWSxCOLS", about=f"single {series}", say=log.info)
