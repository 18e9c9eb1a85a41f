"""Which map rows the page's filters keep."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stores import format as fmt
from viewer.data.map_data import MapData


@dataclass(frozen=True, slots=True)
class Filters:
    """What the user narrowed the map to (all optional)."""

    step_range: tuple[int, int] | None = None
    focus_step: int | None = None  # a step picked on the signals charts
    kinds: tuple[str, ...] | None = None  # None: all kinds
    labels: tuple[str, ...] | None = None  # None: all labels (unlabelled included)
    probe: str | None = None  # keep samples with a positive margin for this probe
    near_copies_only: bool = False


def filter_mask(d: MapData, f: Filters, *, probe_values: np.ndarray | None = None,
                near_copy: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask over the laid-out rows. Reference rows (step -1) ignore the step filters;
    a step picked on the signals charts overrides the Steps range (it showed nothing outside it)."""
    mask = d.current.copy()
    gen = d.kind == fmt.KIND_CODES["generated"]
    if f.step_range is not None and f.focus_step is None:
        lo, hi = f.step_range
        mask &= ~gen | ((d.step >= lo) & (d.step <= hi))
    if f.focus_step is not None:
        mask &= ~gen | (d.step == f.focus_step)
    if f.kinds is not None:
        codes = [d.kinds.index(k) for k in f.kinds if k in d.kinds]
        mask &= np.isin(d.kind, codes)
    if f.labels is not None:
        codes = [d.labels.index(lab) for lab in f.labels if lab in d.labels]
        mask &= np.isin(d.label, codes)
    if f.probe is not None and probe_values is not None:
        mask &= np.nan_to_num(probe_values, nan=-np.inf) > 0
    if f.near_copies_only and near_copy is not None:
        mask &= np.nan_to_num(near_copy, nan=0.0) > 0.5
    return mask

