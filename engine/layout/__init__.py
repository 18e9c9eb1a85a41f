"""The evolutionary layout: exact kNN -> aligned per-step t-SNE -> bands / rings.

Public API (all on plain numpy arrays)::

    state = layout_step(vectors, instances, previous_state, params)   # one new checkpoint
    xys = layout_full(vectors_per_step, instances_per_step, params)   # joint, all steps
    map_xy = place(state.xy, step_index, "rectilinear" | "radial")
    neighbourhood_preservation(vectors, xy, k=10); alignment_error(xy0, i0, xy1, i1)
"""
from .evolution import LayoutParams, StepState, anchor_operator, layout_full, layout_step
from .placement import place
from .quality import alignment_error, neighbourhood_preservation, rms_radius

__all__ = [
    "LayoutParams", "StepState", "anchor_operator", "layout_full", "layout_step", "place",
    "alignment_error", "neighbourhood_preservation", "rms_radius",
]
