"""A new store's arrays as made: the empty store's groups and root attributes, the alert arrays
(made again by a migration), and each array made whole before a reader can list it."""
from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from stores import format as fmt
from stores.zarr_store.primitives import WRITE_CONFIG, _fill_by_chunks, _open_array, _rows_per_chunk


#: Pixels per side of the thumbnail stored per sample, unless a new store is given another size.
DEFAULT_THUMBNAIL_SIZE = 48


def _described_arrays(described: Mapping[str, str] | None) -> dict[str, str]:
    """The root's ``arrays`` attribute: ``described`` (an older store's), with this version's
    fixed arrays."""
    return {**(described or {}), **{f"{g}/{n}": d for g, arrays in fmt.GROUPS.items() for n, d in arrays.items()},
            **{f"checkpoints/{n}": d for n, d in fmt.OPTIONAL_CHECKPOINT_ARRAYS.items()},
            **{f"alerts/{n}": d for n, d in fmt.ALERT_ARRAYS.items()}}


def _staged_name(name: str) -> str:
    """Where :func:`_create_array` writes an array before renaming it into place
    (hidden: no evowatch reader lists it)."""
    return f".{name}.new"


def _create(where: Path, encoder: dict[str, Any], thumbnail_size: int) -> None:
    root = zarr.open_group(str(where), mode="w", zarr_format=3)
    dim = int(encoder["dim"])
    specs = {
        "samples": {
            "embedding": ((dim,), "float16"),
            "step": ((), "int64"),
            "kind": ((), "int8"),
            "instance": ((), "int32"),
            "label": ((), "int16"),
            "checkpoint": ((), "int32"),
            "thumbnail": ((thumbnail_size, thumbnail_size, 3), "uint8"),
            "path": ((), str),
        },
        "checkpoints": {
            "step": ((), "int64"), "kind": ((), "int8"), "row_start": ((), "int64"), "row_stop": ((), "int64"),
            "time": ((), "float64"), "hash": ((), str), "source": ((), str), "superseded": ((), "bool"),
            "n_skipped": ((), "int32"),
        },
        "warnings": {"checkpoint": ((), "int32"), "path": ((), str), "reason": ((), str)},
        "layout": {"xy": ((2,), "float32")},
    }
    for group_name, arrays in specs.items():
        group = root.create_group(group_name)
        for name, (row_shape, dtype) in arrays.items():
            # Per-checkpoint tables grow by a row or two per commit: small chunks.
            max_rows = 16384 if group_name in ("samples", "layout") else 1024
            _create_array(group, name, row_shape, dtype, fmt.GROUPS[group_name][name], max_rows)
    _create_superseded_by(root["checkpoints"])
    _create_alert_arrays(root)
    zarr.open_group(str(where / "layout"), mode="r+").update_attributes({"committed_rows": 0})
    root.update_attributes({
        "evowatch": {"schema": fmt.SCHEMA, "version": fmt.SCHEMA_VERSION, "id": uuid.uuid4().hex},
        "description": "evowatch run store; " + fmt.READING_GUIDE,
        "arrays": _described_arrays({}),
        "encoder": dict(encoder),
        "kinds": list(fmt.KINDS),
        "labels": [],
        "thumbnail_size": thumbnail_size,
        "history": [],
        "committed": {"rows": 0, "checkpoints": 0, "warnings": 0},
    })


def _create_alert_arrays(root: zarr.Group) -> None:
    """The ``alerts/`` group, no alert in it (made again from scratch: a migration killed
    before it took effect left one, which no reader of the older version looks at)."""
    shutil.rmtree(Path(root.store.root) / root.path / "alerts", ignore_errors=True)
    group = root.create_group("alerts", attributes={"first_row": 0, "committed_rows": 0, "rewrites": 0})
    for name, dtype in (("step", "int64"), ("rule", str), ("value", "float64"), ("message", str)):
        _create_array(group, name, (), dtype, fmt.ALERT_ARRAYS[name], 1024)


def _create_superseded_by(group: zarr.Group) -> None:
    _create_array(group, "superseded_by", (), "int32", fmt.OPTIONAL_CHECKPOINT_ARRAYS["superseded_by"], 1024)


def _create_array(group: zarr.Group, name: str, row_shape: tuple[int, ...], dtype: Any, description: str,
                  max_rows: int = 16384, fill_value: Any = None,
                  attributes: Mapping[str, Any] | None = None, rows: int = 0) -> None:
    """A new array of ``rows`` rows, its attributes written with it (written after, a live reader
    of a new per-sample metric found no ``committed_rows`` for an instant: round AQ). An array
    added beside committed rows is made as long as them: made empty and grown after, a live
    reader found it shorter than the commit point for an instant (round BE)."""
    itemsize = 256 if dtype is str else np.dtype(dtype).itemsize  # strings: a typical path's length
    per_chunk = _rows_per_chunk(row_shape, itemsize, max_rows)
    folder = Path(group.store.root) / group.path
    staged = bool(rows) and fill_value is not None  # rows under a commit point: every chunk written first
    made = _staged_name(name) if staged else name
    try:
        shutil.rmtree(folder / made, ignore_errors=True) if staged else None  # a killed writer's
        group.create_array(made, shape=(rows, *row_shape), chunks=(per_chunk, *row_shape), dtype=dtype,
                           fill_value="" if dtype is str else fill_value,
                           attributes={"description": description, **(attributes or {})})
        if staged:  # then renamed into place: seen before its chunks, a live reader found them missing, and a
            array = _open_array(folder / made, "r+").with_config(WRITE_CONFIG)  # kill then left a store every
            _fill_by_chunks(array, 0, rows, fill_value)  # later watch refused as copied incompletely (round BK)
            os.rename(folder / made, folder / name)
    except BaseException:
        # a full disk or a stop half-way left a folder without zarr.json, which plain zarr
        # warned about at every read ("Object at density is not recognized") until a resume
        shutil.rmtree(folder / made, ignore_errors=True)
        raise
