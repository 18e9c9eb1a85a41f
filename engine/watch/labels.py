"""The run's labels: its label folders named in the options, --labels files read, samples left unlabelled."""
from __future__ import annotations

import logging
from dataclasses import replace

from engine.backlog_log import counted
from engine.decode.labels import label_folder_names, labels_file_path, labels_table
from engine.discovery.identity import in_a_label_folder, in_one_folder
from engine.errors import DiscoveryError
from engine.pipeline import IngestResult
from engine.records import Checkpoint
from stores.format import listed

log = logging.getLogger(__name__)


class _Labels:
    """The watch's labels (:class:`~engine.watch.watcher.Watcher` gives it ``config``, ``store``,
    ``_options``, ``_hashes``, ``_label_folders_of``, ``_labels_looked_for``,
    ``_unlabelled_said`` and ``_stand_in``)."""

    def _note_label_folders(self, found: list[Checkpoint], keep: bool = True) -> None:
        """Name the run's label folders in the options, so that a checkpoint whose files all sit
        in one of them (a step drifted to one class, ``step_1000/circle/``) is labelled by it
        (round AQ: it lost every label, and label_drift stopped at the worst step). They are
        the sub-folders of the run's ImageFolder checkpoints, kept in the store (round AS: a
        rotating trainer deleted the checkpoints that showed them, and the later steps were read
        again, unlabelled); never the reference sets' class folders or other labels (round AT:
        a --real of images/ and masks/ labelled every step_N/images/ 'images'). One stored
        before its folder was named (a live watch) is read again, labelled (round AR): its
        reading settings say it, so its hash changes. ``keep``: kept in the store (not by the
        check of whether the run is the store's: nothing is written before it passes)."""
        shape = tuple((c.source, len(c.files)) for c in found)  # asked again only when they change
        if self.config.options.label_folders is not None or shape == self._label_folders_of:
            return
        self._label_folders_of = shape if keep else ()  # (40 ms a pass at 300 checkpoints of 48 files)
        found_names = label_folder_names(found, self.config.options)
        if found_names and keep:
            self.store.note_label_folders(found_names)
        if not any(in_one_folder(c) for c in found):  # before label_folders(): an older store's are read from
            return  # its rows, not at each watch's start for nothing
        names = found_names | self.store.label_folders()
        if names == self._options.folder_label_names:
            return
        self._options = replace(self._options, folder_label_names=names)
        for checkpoint in found:
            if in_a_label_folder(checkpoint, self._options):
                self._hashes.pop(checkpoint.source, None)  # hashed again with its settings

    def _read_labels_files(self, jobs: list[tuple[Checkpoint, str]]) -> None:
        """Read each labels file of this pass's checkpoints here, once, before the decode
        processes fork: a --labels file that cannot be read, or a relative one found nowhere
        for the first checkpoints read, stops the watch before anything is stored (each sample
        stored then kept no label for good), and what reading one says (not UTF-8) is said by
        this process, whose notes they inherit, not once by each of them."""
        options, first, found = self.config.options, {}, False
        generated = [c for c, _ in jobs if c.kind == "generated"]
        for checkpoint, _ in jobs:
            if self._stand_in and checkpoint.kind == "generated":
                continue  # read by the sampler or from TensorBoard: no sample file, no labels file
            if (path := labels_file_path(checkpoint, options)) is not None:
                first.setdefault(path, checkpoint)
                found = True
        if options.labels_file is not None and generated and not self._stand_in and not self._labels_looked_for:
            self._labels_looked_for = True  # a name meant for each checkpoint folder may miss some later
            if not found:
                names = listed([c.source for c in generated], 2)
                raise DiscoveryError(f"{options.labels_file}: --labels file not found in {self.config.run_dir}, its "
                                     f"checkpoint folders ({names}) or the current folder; check the path")
        for checkpoint in first.values():
            labels_table(checkpoint, options)

    def _say_unlabelled(self, result: IngestResult) -> None:
        """Samples of a checkpoint stored without a label though --labels was given, once per
        run for each reason (no row matched, some missed, no file for it): label shares and
        label_drift leave them out, and a file that matched nothing turned them off unsaid."""
        c, given = result.checkpoint, self.config.options.labels_file
        if given is None or self._stand_in:  # no labels file asked for, or none read (a sampler's, TensorBoard's)
            return
        path = labels_file_path(c, self.config.options)
        verb = "has" if result.unlabelled == 1 else "have"
        if path is None:  # a name meant for each checkpoint folder, missing from this one
            why, message = "no file", (f"--labels {given}: none in {c.source}, {self.config.run_dir} or the current "
                                       f"folder: its {counted(result.unlabelled, 'sample')} {verb} no label")
        elif result.unlabelled == result.rows:
            why, message = "no match", (f"--labels {path}: no row matched any sample of {c.source} "
                                        f"({counted(result.rows, 'sample')}, e.g. {result.first_unlabelled}); expected "
                                        "columns file,label or instance,label: a sample's path, file name, stem or "
                                        "instance id, then its label")
        else:
            why, message = "some", (f"--labels {path}: {result.unlabelled:,} of {counted(result.rows, 'sample')} of "
                                    f"{c.source} {verb} no label (first: {result.first_unlabelled})")
        if why not in self._unlabelled_said:
            self._unlabelled_said.add(why)
            log.warning("%s", message)
