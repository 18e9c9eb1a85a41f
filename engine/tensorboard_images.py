"""Samples a trainer logs to TensorBoard only, read from its event files.

Many trainers write no sample files: diffusers' example scripts log their samples with
``tracker.add_images("test_samples", images, epoch)`` (or ``"validation"``), PyTorch
Lightning modules with ``self.logger.experiment.add_image("generated_images", grid, epoch)``,
many GAN scripts with ``SummaryWriter.add_image(s)``. When a run's files hold no checkpoint
(:func:`engine.discovery.scan.scan_run` finds none), the watcher reads these instead: each
(folder of event files, tag, step) with images is one checkpoint, named ``FOLDER/TAG@STEP``.

* Tags: every image tag but those named as real data or made from it, or plots (``loss_curve``) (``real_images``,
  ``inputs``, ``gt``, ``mask``);
  with ``--samples GLOB``, the tags it matches (``--samples 'test_*'``).
* Images: an ``image`` summary (PyTorch's ``SummaryWriter``, tensorboardX) is one PNG, which
  may be a grid: split as an image file is (:func:`engine.grids.detect_grid`), else as
  ``add_images`` lays a batch out (:func:`engine.grids.tensorboard_grid`); ``--grid`` forces
  it. A TensorFlow ``images`` summary's several images are one sample each.
* Tags that differ only in a trailing number, two or more in one folder (``add_image(f"sample_{i}",
  ...)``), are one checkpoint per step, ``FOLDER/sample_*@STEP``, each image one sample whose
  instance id is its tag's number, so samples align across steps; never split (round AR: a
  disc on white, a wide spectrogram, taken for grids); a TensorFlow summary's several images
  are the tag's number times :data:`IDS_PER_TAG` on. A tag a step (``add_image(f"samples_{step}",
  grid, step)``) is read as one tag is. Tags that are prompts
  (PixArt's ``add_images(validation_prompt, image, step)``), two or more in one folder, are
  one checkpoint per step too, ``FOLDER/{sample}@STEP``, each prompt its image's label and,
  in the order the prompts first came, its instance. A prompt's image that is a grid, as a
  sample file would be (diffusers' ControlNet and T2I-Adapter scripts log the conditioning
  image and ``num_validation_images`` samples side by side), is split, its tiles numbered
  after the earlier prompts' (:data:`IDS_PER_TAG` each) and labelled by the prompt (an image
  that tells nothing itself, noise, takes the grid of its prompt's latest step, as a lone
  tag's does); ``--tile-cols 1:`` leaves the conditioning image out.
* A step logged again (a resumed run writes a new event file into the same folder) is read
  from its last record: its earlier rows are superseded, as a rewritten grid's are.
* Records are complete when read (a record cut short at the end of a file is left for the
  next pass); a checkpoint is ready once its event file holds a record after its last one (a
  step may be several records: ``sample_0`` ... ``sample_7``), or has not changed for
  ``--settle`` seconds. Not once the whole file settles: it never does while the trainer logs
  scalars into it.

Event files are read incrementally: each pass reads only what was appended since the last.
"""
from __future__ import annotations

import fnmatch
import hashlib
import io
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from engine.decode.images import decode_image
from engine.decode.samples import NO_GRID_TO_SLICE, iter_samples
from engine.decode.skip import SkipFile
from engine.discovery.identity import content_hash, reading_settings
from engine.discovery.names import SAMPLE_WORDS, is_plot_name, is_real_data
from engine.discovery.options import DiscoveryOptions
from engine.discovery.ready import is_ready
from engine.discovery.said_once import warn_once
from engine.event_files import Cursor, event_summary, fields, is_event_file, plugin_name, summary_values
from engine.grids import GridGeometry, detect_grid, resolve_grid, select_tiles, split_grid, tensorboard_grid
from engine.records import Checkpoint, Sample, SkippedFile
from engine.trainer_logs import find_log_files
from stores.format import MAX_INSTANCE, SAMPLE_KEY

log = logging.getLogger(__name__)

#: How many ``--settle`` periods of quiet a numbered series' step that has fewer tags than its
#: fullest earlier step waits before it is taken as it is (a last step sampled short).
INCOMPLETE_WAIT = 10


@dataclass(frozen=True, slots=True)
class _Logged:
    """Where a (tag, step)'s images are: the record's data in an event file, and its digest."""

    tag: str
    path: Path
    offset: int
    length: int
    digest: str
    #: the record's place in its file (0 for the first)
    index: int


@dataclass
class _EventFile(Cursor):
    """What one event file holds so far, and where its next read starts."""

    modified: float = 0.0
    plugins: dict[str, str] = field(default_factory=dict)  # tag -> plugin (sent with a tag's first value)
    images: dict[tuple[str, int], _Logged] = field(default_factory=dict)


def _tag(value: dict[int, object]) -> str | None:
    tag = value.get(1)
    return tag.decode("utf-8", "replace") if isinstance(tag, bytes) else None


def _encoded_images(value: dict[int, object], plugin: str | None) -> list[bytes]:
    """The encoded images of one summary value: an ``image`` (field 4: its
    ``encoded_image_string``, field 4), or an ``images`` plugin tensor's ``string_val``
    (field 8) after its width and height."""
    image = value.get(4)
    if isinstance(image, bytes):
        return [v for f, w, v in fields(image) if f == 4 and w == 2]
    tensor = value.get(8)
    if isinstance(tensor, bytes) and plugin == "images":
        return [v for f, w, v in fields(tensor) if f == 8 and w == 2][2:]
    return []


def _logged_images(record: bytes, plugins: dict[str, str]) -> Iterator[tuple[str, int, list[bytes]]]:
    """(tag, step, encoded images) of one Event record's image values; notes plugin names."""
    step, _, summary = event_summary(record)
    if summary is None:
        return
    for value in summary_values(summary):
        tag = _tag(value)
        if tag is None:
            continue
        if isinstance(value.get(9), bytes) and (name := plugin_name(value[9])) is not None:
            plugins.setdefault(tag, name)
        if images := _encoded_images(value, plugins.get(tag)):
            yield tag, step, images


def _digest(tag: str, step: int, images: list[bytes]) -> str:
    digest = hashlib.blake2b(f"{tag}\0{step}\0".encode(), digest_size=16)
    for image in images:
        digest.update(hashlib.blake2b(image, digest_size=16).digest())
    return digest.hexdigest()


def find_event_files(run_dir: Path) -> list[Path]:
    """Event files under ``run_dir`` (as the trainer's scalars are found), sorted: in one
    folder by name, which starts with the time the writer opened it."""
    return [path for path in find_log_files(run_dir) if is_event_file(path.name)]


def logged_tags(sources: Iterable[str], run_dir: Path) -> list[str]:
    """The tags (``--samples`` globs) of checkpoints read from images logged to TensorBoard,
    from their sources ``FOLDER/TAG@STEP``: the folder is the event files' own, cut off as
    such, for a tag may hold slashes (``val/images``: its last part matched no tag). A series
    of prompts (``{sample}``) has no one glob: none is given for it."""
    folders = {path.parent.relative_to(run_dir).as_posix() for path in find_event_files(run_dir)} - {"."}
    tags = set()
    for source in sources:
        name = source.rsplit("@", 1)[0]
        folder = max((folder for folder in folders if name.startswith(f"{folder}/")), key=len, default="")
        tags.add(name[len(folder) + 1:] if folder else name)
    return sorted(tags - {SAMPLE_KEY})


class TensorBoardImages:
    """The image summaries of a run's event files as checkpoints: stands in for
    :func:`engine.discovery.scan.scan_run`, :func:`engine.discovery.identity.content_hash` and
    :func:`engine.decode.samples.iter_samples`, as a ``--sampler`` does. Keeps what it has read of
    each event file between passes."""

    def __init__(self) -> None:
        self._files: dict[Path, _EventFile] = {}
        # source -> its tags' images: (instance, where, name, label) per tag, instance None for a lone tag
        self._found: dict[str, list[tuple[int | None, _Logged, str, str | None]]] = {}
        self._options = DiscoveryOptions()
        self._latest: dict[tuple[Path, str], _Logged] = {}  # (folder, tag) -> its latest step's images
        self._geometries: dict[tuple[Path, str, tuple[int, ...], bool], GridGeometry] = {}
        self._looked_at: dict[tuple[Path, str, tuple[int, ...], bool], _Logged] = {}  # the latest image that held none
        self._expected: dict[str, int] = {}  # source -> tags its step should have (0: no need to wait for any)

    # --- discovery ---------------------------------------------------------------------
    def scan(self, run_dir: str | os.PathLike[str], options: DiscoveryOptions | None = None) -> list[Checkpoint]:
        """A checkpoint per (event files' folder, tag, step) with images, sorted by step; tags
        numbered alike in one folder (``sample_0`` ... ``sample_7``) are one checkpoint per step."""
        root = Path(run_dir)
        self._options = options = options or DiscoveryOptions()
        paths = find_event_files(root)
        for gone in set(self._files) - set(paths):
            del self._files[gone]
        latest: dict[tuple[str, str, int], _Logged] = {}
        newest: dict[tuple[Path, str], int] = {}
        for path in paths:  # a later file of one folder (a resumed run) overrides an earlier one
            folder = path.parent.relative_to(root).as_posix()
            for (tag, step), logged in self._read(path).items():
                latest[(folder, tag, step)] = logged
                if step >= newest.get((path.parent, tag), step):
                    newest[(path.parent, tag)] = step
                    self._latest[(path.parent, tag)] = logged
        tags = sorted({tag for _, tag, _ in latest})
        wanted = [tag for tag in tags if self._wanted(tag, options)]
        series = _series({key for key in latest if key[1] in wanted})
        self._announce(root, sorted({name for name, _, _ in series.values()}), [tag for tag in tags if tag not in wanted],
                       options.samples_chosen)
        self._found = {}
        units: dict[str, tuple[int, list[Path]]] = {}
        series_of: dict[str, tuple[str, str]] = {}
        for (folder, tag, step), logged in sorted(latest.items(), key=lambda item: item[0]):
            if tag not in wanted:
                continue
            name, instance, label = series[(folder, tag)]
            source, own = (f"{folder}/{n}@{step}".removeprefix("./") for n in (name, tag))
            self._found.setdefault(source, []).append((instance, logged, own, label))
            units.setdefault(source, (step, []))[1].append(logged.path)
            series_of[source] = (folder, name)
        for members in self._found.values():
            members.sort(key=lambda member: -1 if member[0] is None else member[0])  # sample_2 before sample_10
        # A numbered series' step should have as many tags as its fullest earlier step, unless
        # the series has gone on to a later step.
        self._expected, fullest, latest_step = {}, {}, {}
        for source, (step, _) in sorted(units.items(), key=lambda item: item[1][0]):
            key = series_of[source]
            self._expected[source] = fullest.get(key, 0)
            fullest[key] = max(fullest.get(key, 0), len(self._found[source]))
            latest_step[key] = step
        for source, (step, _) in units.items():
            if step < latest_step[series_of[source]]:
                self._expected[source] = 0
        checkpoints = [Checkpoint(step=step, source=source, files=tuple(sorted(set(files))), root=root)
                       for source, (step, files) in units.items()]
        checkpoints.sort(key=lambda c: (c.step, c.source))
        return checkpoints

    @staticmethod
    def _wanted(tag: str, options: DiscoveryOptions) -> bool:
        if options.samples_chosen:  # --samples names the tags
            return any(fnmatch.fnmatch(tag.lower(), glob.lower()) for glob in options.sample_globs)
        return not (is_real_data(tag, options) or is_plot_name(tag))  # add_figure("loss_curve", …)

    def _announce(self, root: Path, series: list[str], left: list[str], picked: bool) -> None:
        """Say once per new set of series where the samples come from and how to pick tags."""
        if not (series or left):
            return
        said = f"tags {series} {left}"
        if not series:
            warn_once(root, f"{root}: no sample files, and the images logged to TensorBoard are under tags "
                            f"{'--samples does not match' if picked else 'named as real data, made from it, or plots'} "
                            f"({', '.join(left)}): --samples TAG reads a tag", about=said)
            return
        warn_once(root, f"{root}: no sample files; reading the images logged to TensorBoard, "
                        f"tag{'' if len(series) == 1 else 's'} {', '.join(series)}"
                        f"{'; left out: ' + ', '.join(left) if left else ''} (--samples TAG picks tags)",
                  about=said, say=log.info)

    def _read(self, path: Path) -> dict[tuple[str, int], _Logged]:
        """The file's image records so far, reading only what was appended since the last
        pass; a file replaced, cut shorter, or cut and written on is read again from its start."""
        known = self._files.setdefault(path, _EventFile())
        try:
            with open(path, "rb") as fh:
                if known.rewind_if_rewritten(fh):
                    known.plugins.clear()
                    known.images.clear()
                known.modified = os.fstat(fh.fileno()).st_mtime
                for offset, record in known.records_from(fh):
                    try:
                        logged = list(_logged_images(record, known.plugins))
                    except ValueError as exc:  # framed whole, its content damaged: the next records still count
                        warn_once(path, f"{path}: the record at byte {offset - 12} is damaged ({exc}); skipped",
                                  about=f"record {offset}")
                        logged = []
                    for tag, step, images in logged:
                        known.images[(tag, step)] = _Logged(tag, path, offset, len(record), _digest(tag, step, images),
                                                            known.records - 1)
        except FileNotFoundError:
            del self._files[path]
            return {}
        except OSError as exc:  # unreadable: what was read before stays
            warn_once(path, f"{path}: cannot be read ({exc}); read once it can be", about=f"unreadable {known.end}")
        for news in known.damage_news(path):
            log.warning("%s", news)
        return known.images

    def holds_new_images(self, paths: Iterable[Path]) -> bool:
        """Whether any of these event files holds images the last pass did not read: one it
        did not read, or whose records appended since hold images (read on from where the last
        read stopped, as a pass reads them). A live watch scans the run for these, not for each
        write of the trainer's scalars."""
        new = False
        for path in paths:
            if path not in self._files:
                return True
            before = dict(self._files[path].images)
            new = self._read(path) != before or new
        return new

    def is_ready(self, checkpoint: Checkpoint, options: DiscoveryOptions | None = None,
                 now: float | None = None) -> bool:
        """Whether the trainer is done logging the checkpoint's images: its event file holds a
        record after its last one (the trainer went on: ``sample_7`` after ``sample_0``...), or
        has not changed for ``--settle`` seconds (the run's last step). A record is complete
        once read, but a step may be several (``add_image(f"sample_{i}", ...)``). A step of a
        numbered series with fewer tags than its fullest earlier step waits for them however
        slowly they come (a sampler taking seconds per image), up to :data:`INCOMPLETE_WAIT`
        settle periods of quiet."""
        if checkpoint.kind != "generated":
            return is_ready(checkpoint, options, now)
        options = options or self._options
        now = time.time() if now is None else now
        members = self._found[checkpoint.source]
        short = len(members) < self._expected.get(checkpoint.source, 0)
        quiet = options.settle * (INCOMPLETE_WAIT if short else 1)
        last: dict[Path, int] = {}
        for _, logged, _, _ in members:
            last[logged.path] = max(last.get(logged.path, -1), logged.index)
        for path, index in last.items():
            known = self._files.get(path)
            went_on = known is not None and known.records > index + 1 and not short
            if known is None or not (went_on or now - known.modified >= quiet):
                return False
        return True

    # --- identity ----------------------------------------------------------------------
    def content_hash(self, checkpoint: Checkpoint) -> str:
        """The digest of the checkpoint's images, and of ``--grid``/``--tile-size`` when set."""
        if checkpoint.kind != "generated":
            return content_hash(checkpoint, self._options)
        digest = hashlib.blake2b(reading_settings(checkpoint, self._options).encode(), digest_size=16)
        for instance, logged, _, _ in self._found[checkpoint.source]:
            digest.update(f"\0{instance}\0{logged.digest}".encode())
        return digest.hexdigest()

    # --- samples -----------------------------------------------------------------------
    def iter_samples(self, checkpoint: Checkpoint, options: DiscoveryOptions | None = None) -> Iterator[Sample | SkippedFile]:
        """The checkpoint's images: a lone tag's grid split into its tiles (instance = tile
        index; its one image, no grid, is sample 0, followed across steps), the several images of
        one summary one sample each (instance = their order; of a numbered tag, after
        :data:`IDS_PER_TAG` per lower number), a numbered tag's image one sample (instance = its
        number), a prompt's image one sample, or its tiles when it is a grid."""
        options = options or self._options
        if checkpoint.kind != "generated":
            yield from iter_samples(checkpoint, options)
            return
        for instance, logged, name, label in self._found[checkpoint.source]:
            yield from self._samples(logged, instance, name, options, label)

    def _images(self, logged: _Logged) -> list[bytes]:
        """The encoded images of a logged (tag, step), read again from its record."""
        with open(logged.path, "rb") as fh:
            fh.seek(logged.offset)
            record = fh.read(logged.length)
        return next((found for t, _, found in _logged_images(record, dict(self._files[logged.path].plugins))
                     if t == logged.tag), [])

    def _tag_geometry(self, logged: _Logged, shape: tuple[int, ...], found_alone: bool = False) -> GridGeometry | None:
        """The grid the tag's latest image splits into, for an image of its size that told
        nothing itself (a diffusion model's first samples, noise: an 8x8 grid of them was one
        sample, then 64 at the next steps; a prompt's row of them two ids, then 1000 on): a tag
        keeps one layout. ``found_alone``: only a grid found as a file's is (a prompt's image
        may be one sample of any shape, not ``add_images``' row)."""
        key = (logged.path.parent, logged.tag, shape, found_alone)
        latest = self._latest.get(key[:2])
        if key not in self._geometries and latest is not None and latest != logged and self._looked_at.get(key) != latest:
            self._looked_at[key] = latest  # decoded and looked at once (a prompt's single samples: each one)
            try:
                reference = decode_image(io.BytesIO(self._images(latest)[0]))
            except (OSError, KeyError, ValueError, IndexError, SkipFile):
                return None
            if reference.shape == shape and (geometry := detect_grid(reference)
                                             or (None if found_alone else tensorboard_grid(reference))):
                self._geometries[key] = geometry
        return self._geometries.get(key)

    def _samples(self, logged: _Logged, instance: int | None, name: str,
                 options: DiscoveryOptions, label: str | None = None) -> Iterator[Sample | SkippedFile]:
        try:
            images = self._images(logged)
        except (OSError, KeyError, ValueError) as exc:
            yield SkippedFile(path=name, reason=f"cannot be read from {logged.path.name} ({exc})")
            return
        # a lone tag's image or a prompt's may be a grid; a numbered tag's or one of several is one sample
        splits = len(images) == 1 and (instance is None or label is not None)
        for index, encoded in enumerate(images):
            path = f"{name}#{index}" if len(images) > 1 else name
            try:
                image = decode_image(io.BytesIO(encoded))
                geometry = None if not splits else (
                    resolve_grid(image, options.grid, options.tile_size)
                    or (None if label is not None else tensorboard_grid(image))  # a prompt's: as a file is
                    or self._tag_geometry(logged, image.shape, found_alone=label is not None))
            except (SkipFile, ValueError) as exc:  # a ValueError: the grid the options force does not fit
                yield SkippedFile(path=path, reason=str(exc), misfit=not isinstance(exc, SkipFile),
                                  diverged=getattr(exc, "diverged", False))
                continue
            if geometry is None and splits and (options.tile_rows or options.tile_cols):  # as a file's: the rows
                yield SkippedFile(path=path, reason=NO_GRID_TO_SLICE, misfit=True)  # or columns it keeps
                continue  # cannot be told (ControlNet's conditioning image was kept in the sample)
            if geometry is None:
                yield Sample(image=image, instance=_instance(instance, index, len(images)), path=path, label=label)
                continue
            try:
                tiles = select_tiles(split_grid(image, geometry), geometry, options.tile_rows, options.tile_cols)
            except ValueError as exc:
                yield SkippedFile(path=path, reason=str(exc), misfit=True)
                continue
            for tile_index, tile in tiles:  # a prompt's images: ids after the earlier prompts'
                yield Sample(image=tile, instance=_instance(instance, tile_index, geometry.count),
                             path=f"{path}#{tile_index}", label=label)


#: Instance ids a numbered tag's summary of several images takes: ``sample_1``'s are 1000 on
#: (they all were 0, 1, ...; numbered by each tag's own count, tags of 4 and 2 images repeated
#: ids: round AS). A summary holds a few (TensorFlow's ``max_outputs`` is 3 by default).
IDS_PER_TAG = 1000


def _instance(tag_number: int | None, index: int, count: int) -> int:
    """A sample's instance id: its index among its tag's ``count`` images, after those that
    the lower-numbered tags of its series may take (:data:`IDS_PER_TAG` each); none (-1) past
    what the store keeps (a tag numbered by a seed, ``seed_2500000``, ended the watch; round AT)."""
    if tag_number is None:
        return index
    number = tag_number if count == 1 else tag_number * IDS_PER_TAG + index
    return number if number <= MAX_INSTANCE else -1


_NUMBERED_TAG = re.compile(r"^(.*?)(?<!\d\.)(\d+)$")  # not a decimal: NVAE's generated_0.7 is a temperature


def _series(logged: set[tuple[str, str, int]]) -> dict[tuple[str, str], tuple[str, int | None, str | None]]:
    """(folder, tag) -> (checkpoint name, instance, label), from the (folder, tag, step)s with
    images: tags that differ only in a trailing number, two or more in one folder, are one
    series named ``sample_*``; whose instance is that number when a step has two of them or
    more (``sample_0``, ``sample_1``; ``samples/0``), none when each is a step's own
    (``add_image(f"samples_{step}", grid, step)``: its grid is split as a lone tag's). Tags
    that are prompts (words apart by spaces: PixArt's ``add_images(prompt, image, step)``), two
    or more in one folder, are one series named ``{sample}``, each prompt a sample's label and,
    in the order the prompts first came (a prompt added later leaves the others' numbers
    alone), its instance; any other tag is its own (instance None)."""
    first: dict[tuple[str, str], int] = {}
    for folder, tag, step in logged:
        first[(folder, tag)] = min(step, first.get((folder, tag), step))
    numbered: dict[tuple[str, str], list[tuple[str, int]]] = {}
    named: dict[str, list[str]] = {}
    for folder, tag in first:
        if match := _NUMBERED_TAG.match(tag):
            numbered.setdefault((folder, match[1]), []).append((tag, int(match[2])))
        else:
            named.setdefault(folder, []).append(tag)
    # a folder with two prompts or more logs prompts only (PixArt's first is "dog"); tags of
    # spaced words that all name what they hold ("generated images", "ema images": grids) are none
    prompts = {folder: found for folder, found in named.items()
               if len(spaced := [tag for tag in found if " " in tag.strip()]) >= 2
               and not all(SAMPLE_WORDS.search(tag) for tag in spaced)}
    out: dict[tuple[str, str], tuple[str, int | None, str | None]] = {key: (key[1], None, None) for key in first}
    for (folder, prefix), members in numbered.items():
        if len({number for _, number in members}) < 2:
            continue
        tags = {tag for tag, _ in members}
        per_step = Counter(step for f, tag, step in logged if f == folder and tag in tags)
        together = max(per_step.values()) >= 2
        for tag, number in members:
            out[(folder, tag)] = (f"{prefix}*", number if together else None, None)
    for folder, members in prompts.items():
        for number, tag in enumerate(sorted(members, key=lambda tag: (first[(folder, tag)], tag))):
            out[(folder, tag)] = (SAMPLE_KEY, number, tag)
    return out
