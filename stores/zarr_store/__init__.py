"""The run store: one Zarr v3 group, append-only rows, a commit count written last.

Why this shape (measured in shared/research/deps.md):
- ``Array.append``/``resize`` publish the new shape before the data, so readers never trust
  ``shape``: they read up to the committed count in the root attributes, which is written
  last, in one atomic file replace.
- An open array does not see growth, so readers re-open arrays on every refresh.
- Consolidated metadata would be a stale snapshot and sharding gave torn reads under
  concurrent rewrites: neither is used.

The modules, each depending only on those above it: ``primitives`` (zarr I/O), ``paths``
(where a store may be), ``sources`` (which checkpoints are current), ``alert_records``,
``reader`` (:class:`StoreReader`), ``create`` (a new store's arrays), ``transaction`` (a
checkpoint's rows on their way), ``tables`` (the metric and scalar tables' writes) and
``writer`` (:class:`StoreWriter`). This package gives the names the rest of evowatch imports.
"""
from stores.format import is_store
from stores.zarr_store.create import DEFAULT_THUMBNAIL_SIZE, _staged_name
from stores.zarr_store.paths import check_store_path, discard_store, enclosing_store
from stores.zarr_store.primitives import available_cores, folder_identity
from stores.zarr_store.reader import SKIPPED_FILES_SHOWN, StoreReader, missing_rows
from stores.zarr_store.sources import pattern_regex, superseded_flags
from stores.zarr_store.transaction import WRITE_ROWS
from stores.zarr_store.writer import StoreWriter, encoder_mismatch

__all__ = ["DEFAULT_THUMBNAIL_SIZE", "SKIPPED_FILES_SHOWN", "WRITE_ROWS", "StoreReader",
           "StoreWriter", "_staged_name", "available_cores", "check_store_path", "discard_store", "enclosing_store",
           "encoder_mismatch", "folder_identity", "is_store", "missing_rows", "pattern_regex", "superseded_flags"]
