"""The store as the page reads it: its committed state (:class:`Commit`), a reader cached per
commit, and one-line texts of read errors."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from stores import format as fmt
from stores.errors import StoreFormatError
from stores.zarr_store import StoreReader


log = logging.getLogger(__name__)


#: Seconds between polls of the store's committed counts.
POLL_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Commit:
    """Every committed count the viewer reads; equal commits mean equal store contents."""

    rows: int
    checkpoints: int
    layout_rows: int
    metric_rows: int
    scalar_rows: int
    sample_metrics: tuple[tuple[str, int], ...]
    alerts: int  # hash of the alert list, or of the alerts/ arrays' commit point
    # What counts do not tell: another store created at the same path (a run started again
    # into it showed the old run's metrics and map until the viewer restarted), a layout
    # recomputed (`layout --full`), metrics measured again against another reference.
    store_id: str | None = None
    layout_generation: int = 0
    metrics_reference: str | None = None
    # rows rewritten in place, the counts unchanged: a step measured again (a grid rewritten),
    # a trainer log started again with as many rows (its old losses stayed on the page; round AS)
    metrics_measured: int = 0  # hash of metrics.attrs["measured"]
    scalar_rewrites: int = 0


def _group_attributes(path: Path, group: str) -> dict[str, Any]:
    meta = path / group / "zarr.json"
    return (_attributes(meta) or {}) if meta.is_file() else {}


def _group_rows(path: Path, group: str) -> int:
    try:
        return int(_group_attributes(path, group).get("committed_rows", 0))
    except (TypeError, ValueError):
        return 0


def _attributes(meta: Path) -> dict[str, Any] | None:
    import json

    try:
        return json.loads(meta.read_text()).get("attributes", {})
    except (OSError, ValueError, AttributeError):
        return None


def read_commit(path: str | Path) -> Commit:
    """The store's committed counts: cheap (a few small JSON reads), polled by the page.

    Raises
    ------
    StoreFormatError
        Missing, foreign, damaged or unsupported store (one-line message).
    """
    path = Path(path)
    attrs = _attributes(path / "zarr.json")
    meta = fmt.schema_of(attrs)
    if meta is None or meta.get("version") not in fmt.SUPPORTED_VERSIONS or not isinstance(attrs.get("committed"), dict):
        StoreReader(path)  # raises the store's own one-line message
        raise StoreFormatError(f"{path}: unreadable store metadata; restore the folder or start a new --store")
    rows = int(attrs["committed"].get("rows", 0))
    group = path / "sample_metrics"
    names = sorted(p.name for p in group.iterdir() if (p / "zarr.json").is_file()) if group.is_dir() else []
    metrics = tuple((name, _group_rows(path, f"sample_metrics/{name}")) for name in names)
    layout_rows = min(_group_rows(path, "layout"), rows) if (path / "layout" / "xy" / "zarr.json").is_file() else 0
    metric_attrs, scalar_attrs = _group_attributes(path, "metrics"), _group_attributes(path, "scalars")
    return Commit(rows=rows, checkpoints=int(attrs["committed"].get("checkpoints", 0)),
                  layout_rows=layout_rows, metric_rows=_group_rows(path, "metrics"),
                  scalar_rows=_group_rows(path, "scalars"), sample_metrics=metrics,
                  # the list (schema 1-2) or the alerts/ arrays' commit point and rewrites (3)
                  alerts=hash(repr((attrs.get("alerts", []), _group_attributes(path, "alerts")))),
                  store_id=meta.get("id"),
                  layout_generation=int(_group_attributes(path, "layout").get("generation", 0)),
                  metrics_reference=metric_attrs.get("reference"),
                  metrics_measured=hash(repr(metric_attrs.get("measured"))),
                  scalar_rewrites=int(scalar_attrs.get("rewrites", 0) or 0))


@st.cache_resource(max_entries=4, show_spinner=False)
def _reader(path: str, commit: Commit) -> StoreReader:
    return StoreReader(path)


_SHOWN: dict[tuple[int, str], Commit] = {}  # (cached function, store) -> the commit it last served


def forget_older_commits(cached: Any, path: str, commit: Commit) -> None:
    """Empty the commit-keyed cache ``cached`` when ``path`` moves to another commit: a live run's
    older commits are not asked for again, and their entries (a map spec each, up to 16) were
    kept for good. Reruns at one commit (a click, a second tab, a colour switched back) still reuse."""
    key = (id(cached), path)
    if _SHOWN.setdefault(key, commit) != commit:
        _SHOWN[key] = commit
        cached.clear()


def reader(path: str | Path, commit: Commit) -> StoreReader:
    """A read-only store handle whose attributes match ``commit`` (never mutate it)."""
    return _reader(str(path), commit)


def store_error_text(exc: BaseException) -> str:
    """One line for the page when the store cannot be read."""
    if isinstance(exc, StoreFormatError):
        return str(exc)
    return f"could not read the store: {type(exc).__name__}: {exc}"


def read_error_text(path: str | Path, exc: BaseException) -> str:
    """One line for a read that failed after the page loaded. When the store itself is now
    gone or broken (removed while the page is open, or copied incompletely), its own message
    ("no such store", what the live caption says), not the first array the failed read tripped over."""
    try:
        read_commit(path)
        StoreReader(path).check_complete()  # rows gone from a copy: an array ending early failed an IndexError
    except Exception as now:  # noqa: BLE001 - any failure to read the store is its message
        return store_error_text(now)
    return store_error_text(exc)

