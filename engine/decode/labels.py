"""Sample labels from a labels file or from per-label sub-folders."""
from __future__ import annotations

import codecs
import csv
import json
import logging
from collections import Counter
from collections.abc import Iterable
from pathlib import Path


from engine.backlog_log import counted
from engine.discovery.identity import in_a_label_folder
from engine.discovery.options import DiscoveryOptions
from engine.discovery.ready import checkpoint_path
from engine.discovery.said_once import warn_once
from engine.discovery.steps import last_integer
from engine.errors import DiscoveryError
from engine.records import Checkpoint
from stores.format import listed

log = logging.getLogger(__name__)


#: What a labels file holds, said with each error about one.
LABELS_FORMAT = "expected CSV file,label or instance,label, or a JSON mapping"
#: A CSV header's first column that names the keys (skipped), or the labels (the columns swapped).
_KEY_HEADERS = ("file", "filename", "path", "instance", "index", "id", "name")
_LABEL_HEADERS = ("label", "labels", "class", "category", "target")


def read_labels_file(path: Path) -> dict[str, str]:
    """A labels file as ``{key: label}``; keys are file paths/names or instance ids.

    CSV rows are ``file,label`` or ``instance,label`` (a header row is skipped); JSON is a
    mapping or a list indexed by instance id. Empty, ``null`` or non-scalar labels are
    unknown (no entry), not labels named "None". A file that gives no label at all (empty,
    a header ``label,file``, only lists as JSON values) raises :class:`DiscoveryError`: read
    as it was, every sample went unlabelled without a word.
    """
    items = None
    try:
        raw = path.read_bytes()
        try:
            text = raw.decode(_text_encoding(raw))
        except UnicodeDecodeError:  # a spreadsheet's CSV saved on Windows: every label was lost for one byte
            if b"\0" in raw:  # no text at all
                raise
            text = raw.decode("cp1252", errors="replace")
            warn_once(path, f"{path}: not UTF-8; read as Windows-1252 (save it as UTF-8 if a label reads wrong)",
                      about="encoding")
        if path.suffix.lower() == ".json":
            data = json.loads(text)
            items = list(enumerate(data) if isinstance(data, list) else data.items())
        else:
            rows = [r for r in csv.reader(text.splitlines(), _csv_dialect(text)) if any(f.strip() for f in r)]
    except PermissionError as exc:  # the file may be fine: no format hint
        raise DiscoveryError(f"{path}: cannot read labels ({exc.strerror}): fix its permissions") from None
    except (OSError, ValueError, AttributeError) as exc:
        raise DiscoveryError(f"{path}: cannot read labels ({exc}); {LABELS_FORMAT}") from None
    if items is not None:
        table = {str(k): str(v) for k, v in items if isinstance(v, (str, int, float)) and str(v).strip()}
        if not table and any(isinstance(v, (list, dict)) for _, v in items):
            raise DiscoveryError(f"{path}: its values are lists or objects, not one label each; expected a JSON "
                                 'mapping {"00007.png": "cat", ...} or a list of labels')
        return _some_labels(path, table)
    first = rows[0][0].strip().lower() if rows else ""
    if first in _LABEL_HEADERS:
        raise DiscoveryError(f"{path}: its header {','.join(f.strip() for f in rows[0])} puts the labels first; "
                             "expected columns file,label or instance,label (swap them)")
    if first in _KEY_HEADERS:
        rows = rows[1:]
    if short := sum(len(r) < 2 for r in rows):
        warn_once(path, f"{path}: {short} of {len(rows)} rows {'has' if short == 1 else 'have'} no label column, "
                        "ignored (expected file,label or instance,label)", about="short rows")
    return _some_labels(path, {r[0].strip(): r[1].strip() for r in rows if len(r) >= 2 and r[1].strip()})


def _text_encoding(raw: bytes) -> str:
    """UTF-16 or UTF-32 when the bytes start with its byte-order mark (Excel's "Unicode text",
    Windows PowerShell's `>`: refused as "'utf-8' codec can't decode byte 0xff"), else UTF-8."""
    if raw.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32"
    return "utf-16" if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) else "utf-8-sig"


def _some_labels(path: Path, table: dict[str, str]) -> dict[str, str]:
    """``table``, unless it holds no label (an empty file, a header alone, only nulls)."""
    if not table:
        raise DiscoveryError(f"{path}: holds no label; {LABELS_FORMAT}")
    return table


def _csv_dialect(text: str) -> type[csv.Dialect] | csv.Dialect:
    """Commas, or the semicolons or tabs a spreadsheet wrote."""
    try:
        return csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:  # one column, or nothing to tell by
        return csv.excel


DEFAULT_LABEL_FILES = ("labels.csv", "labels.json")


def labels_file_path(checkpoint: Checkpoint, options: DiscoveryOptions) -> Path | None:
    """The labels file a checkpoint's samples are read with: ``options.labels_file`` (a
    relative one looked for in the checkpoint folder, the run's folder, then the current
    one), else a ``labels.csv``/``labels.json`` in the checkpoint folder, or in the folder
    below it that holds all its samples (``step_N/samples/labels.csv`` was ignored without a
    word); None when none is."""
    folder = checkpoint_path(checkpoint)
    if options.labels_file is None:
        parents = {file.parent for file in checkpoint.files}
        folders = [folder, *parents] if len(parents) == 1 and folder not in parents else [folder]
        candidates = [where / name for where in folders for name in DEFAULT_LABEL_FILES] if folder.is_dir() else []
    else:
        given = Path(options.labels_file)
        candidates = [given] if given.is_absolute() else [folder / given, checkpoint.root / given, given]
    return next((candidate for candidate in candidates if candidate.is_file()), None)


def labels_table(checkpoint: Checkpoint, options: DiscoveryOptions) -> dict[str, str]:
    """A checkpoint's labels file as ``{key: label}`` ({} without one). Raises
    :class:`DiscoveryError` for a ``--labels`` file that cannot be read; a checkpoint's own
    unreadable file is said once and labels nothing."""
    if (path := labels_file_path(checkpoint, options)) is None:
        if options.labels_file is not None:
            log.debug("no labels file %s for %s", options.labels_file, checkpoint.source)
        return {}
    try:
        return read_labels_file(path)
    except DiscoveryError as exc:
        if options.labels_file is not None:
            raise  # a setting: the whole run is read with it
        warn_once(path, f"{exc}; this checkpoint's samples get no label", about="labels")  # one checkpoint's own file
        return {}


def folder_labels(checkpoint: Checkpoint, options: DiscoveryOptions) -> dict[Path, str]:
    """Labels from per-label sub-folders (ImageFolder layout), per ``options.label_folders``.
    Files at the folder's top beside the label folders (fewer than the largest of them holds:
    as many are a folder's variant, ``step_100/ema/`` beside ``step_100/*.png``) get no label
    and are said once per run; they counted as a folder of their own, and one stray image cost
    every other its label (round BA: a --real of 260 images in class folders read unlabelled).
    Class folders differ in size, variants do not: measured against the smallest, one stray
    image beside a class of one (8 samples a step over 4 classes) still cost every label."""
    folder = checkpoint_path(checkpoint)
    if options.label_folders is False or not folder.is_dir():
        return {}
    nested = _class_folders(folder, checkpoint.files)
    loose = [f for f in checkpoint.files if f not in nested]
    if options.label_folders is None:
        parents = set(nested.values())
        if not in_a_label_folder(checkpoint, options) and (
                len(parents) < 2 or len({p.parent for p in parents}) != 1 or _numbered_buckets(nested)
                or len(loose) >= max(Counter(nested.values()).values())):
            return {}
    if loose and nested:
        one = len(loose) == 1
        warn_once(checkpoint.root, f"{folder}: {counted(len(loose), 'file')} beside its label folders "
                                   f"({listed([f.name for f in loose])}) {'has' if one else 'have'} no label; move "
                                   f"{'it' if one else 'them'} into the folder of {'its' if one else 'their'} label, "
                                   f"or out of {folder.name}", about="files beside label folders")
    return {f: parent.name for f, parent in nested.items()}


def _class_folders(folder: Path, files: Iterable[Path]) -> dict[Path, Path]:
    """Each file's class folder, its ancestor at one depth below ``folder`` (as torchvision's
    ImageFolder, a file deeper in a class folder has its class: one image in ``real/cat/extra/``
    left every image of the --real unlabelled, unsaid): the depth of the shallowest file in a
    folder, where that gives sibling folders (``dog/*.png`` beside ``cat/indoor/``: cat and
    dog; at the depth most files sit at, ``indoor`` and ``outdoor`` were the labels and dog's
    files none), else that depth most files sit at (``samples/cat/`` beside one
    ``samples/preview.png``); files above it have none."""
    parts = {f: f.relative_to(folder).parts for f in files if f.parent != folder}
    if not parts:
        return {}
    counts = Counter(len(p) for p in parts.values())
    shallowest, most = min(counts), max(counts, key=lambda d: (counts[d], -d))  # a tie: the shallower
    for depth in (shallowest, most):
        classes = {f: folder.joinpath(*p[:depth - 1]) for f, p in parts.items() if len(p) >= depth}
        if len(set(classes.values())) >= 2 and len({c.parent for c in classes.values()}) == 1:
            break
    return classes


def label_folder_names(checkpoints: Iterable[Checkpoint], options: DiscoveryOptions) -> frozenset[str]:
    """The label folders of a run's ImageFolder checkpoints (files spread over sibling folders)."""
    return frozenset(name for checkpoint in checkpoints if len({f.parent for f in checkpoint.files}) > 1
                     for name in folder_labels(checkpoint, options).values())


def _numbered_buckets(parents: dict[Path, Path]) -> bool:
    """Folders that split numbered files by range, not by label: EDM's ``--subdirs`` puts
    seed 1012 in ``001000/001012.png``; each folder's number is where its files' begin."""
    starts = sorted({int(p.name) for p in parents.values() if p.name.isdecimal()})  # what int() reads ("²" is isdigit)
    if len(starts) != len(set(parents.values())):
        return False
    for path, parent in parents.items():
        number, start = last_integer(path.stem), int(parent.name)
        following = [s for s in starts if s > start]
        if number is None or number < start or (following and number >= following[0]):
            return False
    return True

