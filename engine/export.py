"""``evowatch export STORE --to parquet|csv``: one row per committed sample, for pandas/polars.

Columns: ``row, step, kind, label, instance, path, checkpoint, source, superseded, x, y``
(``x``/``y`` are the layout's per-step t-SNE coordinates, NaN where not laid out yet), one
float column per per-sample metric (``sample_metrics/<name>``, NaN where not computed), then
each per-step metric repeated on its step's current rows as ``step_<name>`` (so a group-by
on ``step`` needs no join; NaN on superseded rows: a step's metrics are measured on its
current version, and a rewritten checkpoint's earlier rows showed the new version's). With ``--embeddings``: the encoder vector, as one list column
``embedding`` in Parquet and as ``e0 .. e{dim-1}`` in CSV.

Rows are written in chunks, so memory stays bounded whatever the size of the store; the file
appears under its final name only once complete.
"""
from __future__ import annotations

import contextlib
import errno
import glob
import logging
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from stores.errors import NO_ROOM, EvowatchError
from stores.owner import owner_gone, owner_tag
from stores.zarr_store import StoreReader, superseded_flags

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

Format = Literal["parquet", "csv"]
FORMATS: tuple[Format, ...] = ("parquet", "csv")
CHUNK_ROWS = 65536


def default_output(store: Path, to: Format) -> Path:
    """``runs/exp42.zarr`` -> ``runs/exp42.parquet`` (or ``.csv``); ``runs/lr0.001`` ->
    ``runs/lr0.001.parquet`` (not ``lr0.parquet``, ``lr0.002``'s too)."""
    if store.name in ("", ".."):  # `evowatch export .` inside the store: beside it, named after it
        store = store.resolve()
    name = store.name[:-len(".zarr")] if store.name.lower().endswith(".zarr") and len(store.name) > 5 else store.name
    return store.parent / f"{name}.{to}"


def _frames(reader: StoreReader, embeddings: bool, chunk_rows: int) -> Iterator[tuple[pd.DataFrame, np.ndarray | None]]:
    """(columns, embeddings or None) per chunk of ``chunk_rows`` committed rows."""
    import pandas as pd

    n = reader.n_rows
    ckpt = reader.checkpoints()
    superseded = superseded_flags(ckpt)
    kinds = np.array(reader.kinds + ["?"], dtype=object)
    labels = np.array(reader.labels + [None], dtype=object)  # code -1 picks the trailing None
    xy = reader.layout_xy()
    metric_names = reader.sample_metric_names()
    sample_metrics = {name: reader.sample_metric(name) for name in metric_names}
    table = reader.step_metrics()
    step_keys = table.pop("step", np.zeros(0, np.int64))
    per_step = {f"step_{name}": dict(zip(step_keys.tolist(), values.tolist())) for name, values in table.items()}
    for start in range(0, max(n, 1), chunk_rows):  # an empty store's one empty chunk: its header, its column types
        stop = min(n, start + chunk_rows)
        rows = slice(start, stop)
        step = reader.samples("step", rows)
        checkpoint = reader.samples("checkpoint", rows).astype(np.int64)
        label = reader.samples("label", rows).astype(np.int64)
        kind = reader.samples("kind", rows).astype(np.int64)
        coords = np.full((stop - start, 2), np.nan, np.float32)
        laid = max(0, min(stop, len(xy)) - start)
        coords[:laid] = xy[start:start + laid]
        frame = {
            "row": np.arange(start, stop, dtype=np.int64),
            "step": step.astype(np.int64),
            "kind": kinds[np.where((kind >= 0) & (kind < len(reader.kinds)), kind, -1)],
            "label": labels[np.where((label >= 0) & (label < len(reader.labels)), label, -1)],
            "instance": reader.samples("instance", rows).astype(np.int32),
            "path": reader.samples("path", rows).astype(object),
            "checkpoint": checkpoint.astype(np.int32),
            "source": ckpt["source"].astype(object)[checkpoint],
            "superseded": superseded[checkpoint],
            "x": coords[:, 0],
            "y": coords[:, 1],
        }
        for name in metric_names:
            if name in frame:
                log.warning("sample metric %r collides with a column; exported as metric_%s", name, name)
            frame[name if name not in frame else f"metric_{name}"] = sample_metrics[name][start:stop]
        current = ~frame["superseded"]
        for name, by_step in per_step.items():
            frame[name] = np.array([by_step.get(int(s), np.nan) if c else np.nan for s, c in zip(step, current)],
                                   np.float64)
        vectors = reader.samples("embedding", rows).astype(np.float32) if embeddings else None
        yield pd.DataFrame(frame), vectors


def _write_parquet(frames: Iterator, tmp: Path) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer, rows = None, 0
    with open(tmp, "wb") as fh:  # a Python file: pyarrow's own seeks, which a pipe refuses ("lseek failed")
        for df, vectors in frames:
            table = pa.Table.from_pandas(df, preserve_index=False)
            if vectors is not None:  # one fixed-size list column
                flat = pa.array(vectors.reshape(-1), pa.float32())
                table = table.append_column("embedding", pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1]))
            if writer is None:  # a column of only None in the first chunk (no label yet) holds strings
                schema = pa.schema([f.with_type(pa.large_string()) if pa.types.is_null(f.type) else f
                                    for f in table.schema])
                writer = pq.ParquetWriter(fh, schema)
            writer.write_table(table.cast(writer.schema))
            rows += table.num_rows
        if writer is not None:
            writer.close()
    return rows


def _write_csv(frames: Iterator, tmp: Path) -> int:
    import pandas as pd

    rows = 0
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        for df, vectors in frames:
            if vectors is not None:  # e0 .. e{dim-1}
                names = [f"e{i}" for i in range(vectors.shape[1])]
                df = pd.concat([df, pd.DataFrame(vectors, columns=names, index=df.index)], axis=1)
            df.to_csv(fh, header=rows == 0, index=False)
            rows += len(df)
    return rows


_SUFFIXES: dict[str, Format] = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


def _format(to: Format | None, out: Path | None) -> Format:
    """``--to``, else what ``--out``'s suffix names, else Parquet. A suffix naming the other
    format is refused: ``--out rows.csv`` wrote Parquet that ``pd.read_csv`` could not read."""
    named = _SUFFIXES.get(out.suffix.lower()) if out is not None else None
    if to is not None and to not in FORMATS:
        raise ValueError(f"Expected --to parquet or csv. Got {to!r} instead.")
    if to is not None and named is not None and named != to:
        raise EvowatchError(f"{out}: --to {to} writes {to.upper() if to == 'csv' else 'Parquet'}, but the name says "
                            f"{named}; name it {out.with_suffix('.' + to).name} or leave --to out")
    return to or named or "parquet"


def export_store(store: str | os.PathLike[str], to: Format | None = None, out: str | os.PathLike[str] | None = None,
                 embeddings: bool = False, chunk_rows: int = CHUNK_ROWS) -> tuple[Path, int]:
    """Write the store's committed rows to ``out``; returns (the file, rows written) for the caller to report."""
    to = _format(to, Path(out) if out is not None and str(out) != "-" else None)
    reader = StoreReader(store)
    reader.check_complete()
    target = Path(out) if out is not None else default_output(Path(store), to)
    inside = not is_stream(target) and Path(store).resolve() in (target.resolve(), *target.resolve().parents)
    if target.is_dir() or inside:  # a file inside the store was written over its metadata or chunks
        example = default_output(Path(store), to) if inside else target / default_output(Path(store), to).name
        raise EvowatchError(f"{target}: is {'inside the store' if inside and not target.is_dir() else 'a folder'}; "
                            f"give --out a file name, e.g. {example}")
    frames = _frames(reader, embeddings, chunk_rows)
    write = _write_parquet if to == "parquet" else _write_csv
    if is_stream(target):  # /dev/stdout, a named pipe: written as it goes (a rename replaced /dev/stdout)
        return target, write(frames, Path("/dev/stdout") if str(target) == "-" else target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = _new_temp_file(target)
    except OSError as exc:  # a file where a folder must be, a read-only place
        blocker = next((folder for folder in target.parents if folder.is_file()), None)
        why = f"{blocker} is a file, not a folder" if blocker else f"{exc.strerror}: {exc.filename}"
        raise EvowatchError(f"{target}: cannot write the export there ({why}); choose another --out") from None
    try:
        rows = write(frames, tmp)
        os.replace(tmp, target)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in NO_ROOM:  # not the store's disk: the export's
            room = ("the export reached the file size limit", "raise the limit (ulimit -f)") \
                if exc.errno == errno.EFBIG else ("no space left for the export", "free some space")
            raise EvowatchError(f"{target}: {room[0]} ({exc.strerror}); {room[1]} or choose another --out (the store "
                                "is unchanged)") from None
        raise
    return target, rows


def is_stream(target: Path) -> bool:
    """Whether ``--out`` names standard output (``-``, ``/dev/stdout``, ``/dev/fd/1``: also when
    it is redirected to a file, which a rename must not replace) or something that is neither a
    file nor a folder (a terminal, a pipe)."""
    if str(target) == "-":
        return True
    parts = target.absolute().parts
    if parts[1:2] == ("proc",) or (parts[1:2] == ("dev",) and parts[2:3] != ("shm",)):
        return True  # /dev/shm is a file system: a file there is written beside and renamed, as anywhere
    return target.exists() and not target.is_file() and not target.is_dir()


def _new_temp_file(target: Path) -> Path:
    """An empty file beside ``target`` named by this process (``.OUT.PID@HOST.HEX.tmp``), made with
    the mode the umask gives (tempfile.mkstemp's 0600 stayed on the renamed export)."""
    _remove_dead_temp_files(target)
    while True:
        tmp = target.with_name(f".{target.name}.{owner_tag()}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue


def _remove_dead_temp_files(target: Path) -> None:
    """Remove what exports to ``target`` killed mid-write (kill -9, a lost machine) left
    beside it; a running export's file is kept."""
    prefix = f".{target.name}."
    for left in target.parent.glob(f"{glob.escape(prefix)}*.tmp"):
        own = re.fullmatch(r"(\d+(?:@[^@/]+)?)\.[0-9a-f]{8}\.tmp", left.name[len(prefix):])  # not OUT.x's
        if own and owner_gone(own[1]):
            with contextlib.suppress(OSError):
                left.unlink()
