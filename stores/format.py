"""The store's contract: array names, their descriptions, codes and the schema version.

Everything a reader needs is written into the store's root attributes too, so a plain
``zarr`` + ``numpy`` user never needs this module (see docs/store.md).
"""
from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

SCHEMA = "evowatch-store"
#: 2: ``checkpoints/superseded_by`` is always there and in step with the checkpoints. A version
#: 1 store (written before it, or by an evowatch that did not keep it) is raised to 2 when it is
#: next written; an evowatch that knows only version 1 refuses a version 2 store instead of
#: appending checkpoints without their ``superseded_by`` (plain readers then indexed past it).
#: 3: the alerts live in the ``alerts/`` arrays (:data:`ALERT_ARRAYS`), not in the root attributes,
#: whose zarr.json every commit rewrites (4,000 alerts made it 958 kB, rewritten at each checkpoint).
#: A version 1 or 2 store's are read from ``attrs["alerts"]`` and moved when it is next written.
SCHEMA_VERSION = 3
SUPPORTED_VERSIONS = (1, 2, 3)
#: The first version whose alerts are in the ``alerts/`` arrays.
ALERT_ARRAYS_VERSION = 3

KINDS = ("generated", "real", "holdout")
KIND_CODES = {name: code for code, name in enumerate(KINDS)}

# Rows per chunk, chosen so that one chunk is a few MB whatever the row width.
ROW_CHUNK_BYTES = 2**20

# Per-sample arrays in the "samples" group: row-aligned, append-only.
SAMPLE_ARRAYS = {
    "embedding": "encoder vector, L2-normalised, float16 (rows, dim)",
    "step": "training step of the row's checkpoint; -1 for reference sets (int64)",
    "kind": "code into root attribute 'kinds': generated / real / holdout (int8)",
    "instance": "index of the sample in the trainer's fixed noise batch, aligns a sample across steps; -1 when unknown (int32)",
    "label": "code into root attribute 'labels'; -1 when unknown (int16)",
    "checkpoint": "row index into the 'checkpoints' arrays (int32)",
    "thumbnail": "small RGB preview, uint8 (rows, size, size, 3)",
    "path": "source file of the sample; grid tiles as 'file.png#tile' (string)",
}
OPTIONAL_SAMPLE_ARRAYS = {
    "latent": "per-sample latent/feature vector written by the trainer, float32 (rows, latent_dim)",
}

# One row per ingested checkpoint version.
CHECKPOINT_ARRAYS = {
    "step": "training step (int64); -1 for reference sets",
    "kind": "code into 'kinds' (int8)",
    "row_start": "first sample row of this checkpoint (int64)",
    "row_stop": "one past its last sample row (int64)",
    "time": "ingest time, seconds since the epoch (float64)",
    "hash": "content hash of the checkpoint's sample files (string)",
    "source": "checkpoint folder or file, relative to the run directory; 'real:/abs/path' or 'holdout:/abs/path' for the reference sets (string)",
    "superseded": "true when a later version of the same source, or of a source inside or around it (its folder re-read as a run), was ingested; set just after that version's commit (bool)",
    "n_skipped": "sample files that could not be decoded (int32)",
}

# Stores made before it lack it (evowatch adds it when it writes to them again).
OPTIONAL_CHECKPOINT_ARRAYS = {
    "superseded_by": "index of the checkpoint that replaced this one, -1 while current, written before that one's "
                     "commit: a reader of the first c checkpoints reads this one as superseded only when "
                     "0 <= superseded_by < c, so it never sees two versions current or none (int32)",
}

def array_name(name: str) -> str:
    """A metric or scalar name as an array of a group: names like ``loss/D`` would nest Zarr
    groups, spaces and punctuation are kept off file names too (``probe_share:a woman`` ->
    ``probe_share:a_woman``); letters of every script stay (``label_share:猫``: kept to ASCII,
    every CJK label was ``label_share:``, one column for all)."""
    return re.sub(r"[^\w.:=-]+", "_", name).strip("_.") or "scalar"


def array_names(names: Iterable[str]) -> dict[str, str]:
    """Each name's :func:`array_name`, made unique in order with trailing ``_`` (``loss/D``
    beside ``loss_D``: ``loss_D_``; a trainer's scalar named ``step``: ``step_``, beside the
    table's own), so no two share an array and one silently replaces the other."""
    out: dict[str, str] = {}
    taken = {"step"}
    for name in names:
        key = array_name(name)
        while key in taken:
            key += "_"
        taken.add(key)
        out[name] = key
    return out


def json_number(value: object) -> object:
    """``value``, or None where JSON has no number for it (NaN, ±inf: a NaN loss's alert);
    written bare, strict parsers refused info --json, the pause file and zarr.json."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


# Files that could not be read: recorded, never fatal.
WARNING_ARRAYS = {
    "checkpoint": "row index into 'checkpoints' (int32)",
    "path": "the file (string)",
    "reason": "why it was skipped (string)",
}

# The alert list, a row per alert in (step, rule) order: rows [attrs['first_row'],
# attrs['committed_rows']) of the alerts group are the current list (see StoreWriter.set_alerts).
ALERT_ARRAYS = {
    "step": "checkpoint step the alert was raised at (int64)",
    "rule": "the rule's stable name: collapse, memorisation, fd_rising, label_drift, probe_drift, convergence (string)",
    "value": "the value that tripped the rule; NaN where there is none (a NaN loss) (float64)",
    "message": "one sentence for a human (string)",
}

LAYOUT_ARRAYS = {
    "xy": "per-step 2-D t-SNE solution, row-aligned with samples, before band/ring placement (float32 (rows, 2))",
}

# Per-step metrics: one row per step, one float64 array per metric (NaN where not computed),
# committed up to metrics.attrs['committed_rows'].
METRIC_TABLE_DOC = "metrics/<name>: float64 per step, aligned with metrics/step; rows < metrics.attrs['committed_rows']"
# Per-sample metric arrays, row-aligned with samples, committed up to the array's attrs['committed_rows'].
SAMPLE_METRIC_DOC = "sample_metrics/<name>: float32 per sample row (NaN where not computed)"
# Trainer scalars read from the run's logs: scalars/<name> float64 aligned with scalars/step.
SCALARS_DOC = "scalars/<name>: float64 per logged step, aligned with scalars/step (rewritten as the log grows)"

GROUPS = {
    "samples": SAMPLE_ARRAYS,
    "checkpoints": CHECKPOINT_ARRAYS,
    "warnings": WARNING_ARRAYS,
    "layout": LAYOUT_ARRAYS,
}

READING_GUIDE = (
    "Read rows [0, attrs['committed']['rows']) only: rows past it may be half-written. "
    "A row of a store of c committed checkpoints is current unless 0 <= checkpoints/superseded_by[k] < c, "
    "k = samples/checkpoint[row] (stores without superseded_by: unless checkpoints/superseded[k] is true). "
    "Layout rows are committed up to min(layout.attrs['committed_rows'], the committed rows): "
    "read after the root, a commit in between can put the count past it. "
    "The alerts are rows [alerts.attrs['first_row'], alerts.attrs['committed_rows']) of the alerts/ arrays."
)

#: In a per-step pattern source (``step_500_{sample}.png``): the part of its files' names
#: that tells its samples apart, a prompt or a class (a ``*`` there is a sample index).
SAMPLE_KEY = "{sample}"
#: Experiment trackers' folders, each keeping a copy of every image the trainer logs: W&B's
#: ``wandb/run-…/files/media/images/`` (U-ViT logs its sample grid there and saves it as a
#: file), MLflow's ``mlruns/<experiment>/<run>/artifacts/`` (``mlflow.log_artifact``).
TRACKER_FOLDERS = {"wandb": "W&B", "mlruns": "MLflow"}
_LOGGED_IMAGES = re.compile(r"@-?\d+$")  # FOLDER/TAG@STEP: a (tag, step) logged to TensorBoard


def stand_in_for_files(source: str) -> str | None:
    """What a generated checkpoint's source stands in for the trainer's own sample files
    with, or None: images it logged to TensorBoard (``FOLDER/TAG@STEP``) or a tracker's copies
    (``wandb/…``, ``mlruns/…`` below the folder watched). Discovery reads them only while the
    run holds no sample file of its own; a live watch that read them before the trainer's first
    file came kept them beside it, current (round AV): a file stored after them supersedes them.
    A reference set (``real:/data/wandb/train``) is none, wherever it lies."""
    if any(source.startswith(f"{kind}:") for kind in KINDS[1:]):
        return None
    if _LOGGED_IMAGES.search(source):
        return "images logged to TensorBoard"
    folder = tracker_folder(source)
    return None if folder is None else f"{tracker_name(folder)}'s copies"


def tracker_name(folder: str) -> str:
    """The tracker a tracker's folder (``wandb``, ``logs/mlruns``) belongs to: ``W&B``, ``MLflow``."""
    return TRACKER_FOLDERS[folder.rsplit("/", 1)[-1].lower()]


def tracker_folder(source: str) -> str | None:
    """The tracker's folder a checkpoint's source lies in (``wandb``, ``logs/wandb``), or None:
    its files are the tracker's copies of images the trainer logged."""
    parts = source.split("/")[:-1]
    at = next((i for i, part in enumerate(parts) if part.lower() in TRACKER_FOLDERS), None)
    return None if at is None else "/".join(parts[:at + 1])


#: The first columns of ``evowatch export``'s table, one row per sample: a CSV export put
#: in the run (beside a store inside it) is no trainer log.
EXPORT_COLUMNS = ("row", "step", "kind", "label", "instance", "path", "checkpoint", "source", "superseded")
#: Largest instance id: the store keeps them as int32.
MAX_INSTANCE = 2**31 - 1

#: The file that makes a folder a Zarr (v3) store.
STORE_MARKER = "zarr.json"


def is_store(path: Path) -> bool:
    """Whether ``path`` is a Zarr store (evowatch's own, wherever it is kept); a folder that
    may not be searched (``chmod 644``) cannot be told to be one."""
    try:
        return (path / STORE_MARKER).is_file()
    except PermissionError:
        return False


def schema_of(attrs: object) -> dict | None:
    """The ``evowatch`` root attribute of an evowatch store's attributes, else None (another
    Zarr hierarchy, or attributes damaged by hand): one test for every reader of a root."""
    meta = attrs.get("evowatch") if isinstance(attrs, dict) else None
    return meta if isinstance(meta, dict) and meta.get("schema") == SCHEMA else None


def stored_text(name: str) -> str:
    """A name as the store holds it: valid Unicode (zarr's strings and the root's JSON refuse
    the surrogates Python gives a file name's bytes that are not UTF-8), those bytes written
    ``\\xff``. Lookups by source go through it too, so such a checkpoint is not re-ingested."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: str) -> str:
    """A message as one line: control characters (a file named with a newline, a terminal
    escape) written as ``\\n``, ``\\x1b``; they split a warning naming the file in two (round AY-4).
    A name's bytes that are not UTF-8 are written as the store and the log write them (``\\xff``):
    the error line said ``\\udcff`` of the path the log said ``\\xff`` of."""
    try:
        text = stored_text(text)
    except UnicodeEncodeError:  # a surrogate no file name's byte gives (a JSON "\\ud800"): written as it is
        pass
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def listed(names: Sequence[str], most: int = 3) -> str:
    """The first ``most`` names, then ``...`` when there are more: a line's example list."""
    return ", ".join(names[:most]) + (", ..." if len(names) > most else "")


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """`` (did you mean X?)`` for the known name closest to a mistyped one, case aside, else ``""``."""
    by_lower = {name.lower(): name for name in known}
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1)
    return f" (did you mean {by_lower[close[0]]}?)" if close else ""
