"""Band (rectilinear) and ring (radial) coordinates derived from the per-step solutions.

The stored truth is each step's own 2-D solution; placement only rescales it and moves
it into its band or ring, so it can be recomputed at any time (for instance by the viewer).
Step index -1 is the real reference set: the band before the first step, or the centre.
"""
from __future__ import annotations

from typing import Literal

import numpy as np

from .quality import band_coordinates

Layout = Literal["rectilinear", "radial"]


def place(xy: np.ndarray, step_index, layout: Layout = "rectilinear", *, groups=None, radius: float = 1.0,
          band_spacing: float = 6.0, ring_offset: float = 4.0, ring_width: float = 1.0,
          max_rho: float = 3.5) -> np.ndarray:
    """Map per-step solutions to map coordinates, float32 (n, 2).

    Parameters
    ----------
    xy
        (n, 2) per-step solutions; rows may come from several steps.
    step_index
        The checkpoint's ordinal (0, 1, ...; -1 for the real reference set), one int for all
        rows or one per row. Each step is normalised to RMS radius ``radius`` (about the
        origin) before placement.
    layout
        ``"rectilinear"``: x += ``band_spacing`` * step_index (one vertical band per step,
        an instance keeps its height). ``"radial"``: polar angle from the solution, radius
        ``ring_offset`` * (step_index + 1) + ``ring_width`` * min(rho, ``max_rho``) with rho
        the normalised distance from the origin (one ring per step, the reference in the
        centre, an instance keeps its angle; rho is clipped so rings never overlap).
    groups
        Optional, one int per row: the solution each row belongs to (a checkpoint: each is
        laid out on its own), normalised on its own inside its step's band or ring. Without
        it a step is one solution; a step's superseded versions, or the real and held-out
        sets sharing the reference band, then shrank its current rows (radius 0.58, not 1).
    """
    y = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    steps = np.broadcast_to(np.asarray(step_index, dtype=np.int64), (len(y),))
    if layout not in ("rectilinear", "radial"):
        raise ValueError(f"Expected layout 'rectilinear' or 'radial'. Got {layout!r} instead.")
    if layout == "radial" and ring_offset < ring_width * max_rho:
        raise ValueError(f"Expected ring_offset >= ring_width * max_rho ({ring_width * max_rho}) so "
                         f"rings do not overlap. Got {ring_offset} instead.")
    solution = steps if groups is None else np.broadcast_to(np.asarray(groups, dtype=np.int64), (len(y),))
    u = np.empty_like(y)
    order = np.lexsort((solution, steps))
    cuts = np.flatnonzero((np.diff(steps[order]) != 0) | (np.diff(solution[order]) != 0)) + 1
    for rows in np.split(order, cuts):
        if len(rows):
            u[rows] = radius * band_coordinates(y[rows])
    if layout == "rectilinear":
        return (u + np.stack([band_spacing * steps, np.zeros(len(y))], axis=1)).astype(np.float32)
    rho = np.minimum(np.hypot(u[:, 0], u[:, 1]) / radius, max_rho)
    phi = np.arctan2(u[:, 1], u[:, 0])
    r = ring_offset * (steps + 1) + ring_width * rho
    return np.stack([r * np.cos(phi), r * np.sin(phi)], axis=1).astype(np.float32)
