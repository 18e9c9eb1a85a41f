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




def place(xy: np.ndarray, step_index, layout: Layout = "rectilinear", *, radius: float = 1.0,
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
    """
    y = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    steps = np.broadcast_to(np.asarray(step_index, dtype=np.int64), (len(y),))
    if layout not in ("rectilinear", "radial"):
        raise ValueError(f"Expected layout 'rectilinear' or 'radial'. Got {layout!r} instead.")
    if layout == "radial" and ring_offset < ring_width * max_rho:
        raise ValueError(f"Expected ring_offset >= ring_width * max_rho ({ring_width * max_rho}) so "
                         f"rings do not overlap. Got {ring_offset} instead.")
    out = np.empty_like(y)
    for s in np.unique(steps):
        rows = steps == s
        u = radius * band_coordinates(y[rows])
        if layout == "rectilinear":
            out[rows] = u + np.array([band_spacing * s, 0.0])
        else:
            rho = np.minimum(np.hypot(u[:, 0], u[:, 1]) / radius, max_rho)
            phi = np.arctan2(u[:, 1], u[:, 0])
            r = ring_offset * (s + 1) + ring_width * rho
            out[rows] = np.stack([r * np.cos(phi), r * np.sin(phi)], axis=1)
    return out.astype(np.float32)
