"""The page's two drawings as small ``st.components.v2`` canvas components: the evolution
map (``canvas_map.js``) and the per-step line charts (``canvas_lines.js``).

Why not Plotly: on the machines this runs on (software rendering, two shared cores) a fresh
page spent ~0.75 s evaluating Streamlit's 4.7 MB plotly.js chunk and ~0.8 s drawing the
map's figure before anything showed, which held a 100k-point first paint at 3 s; with only
the map on a canvas, the signals charts' Plotly still landed before the map in some page
loads. The drawings need little of Plotly: markers over a raster, a trail, box and lasso
selection, hover, click, zoom and pan; lines with alert marks and a clicked step. Both
canvases draw in tens of milliseconds. The map reports a selection's geometry, which the
page resolves against every visible row (:func:`viewer.data.selections.selected_rows`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import streamlit as st

_registered: dict[str, Any] = {}


def component(name: str, js: str, *, isolate_styles: bool = True):
    """Register a components-v2 module once per process and return its mounting callable.

    ``js`` is the module's source, or the name of a ``.js`` file next to this module that
    defines a ``View`` class: ``canvas_mount.js`` (the shared entry point) is appended to it,
    since a module given as a string cannot import another."""
    if name not in _registered:
        if js.endswith(".js"):
            here = Path(__file__).parent
            js = "".join((here / f).read_text(encoding="utf-8") for f in (js, "canvas_mount.js"))
        _registered[name] = st.components.v2.component(name, js=js, isolate_styles=isolate_styles)
    return _registered[name]


def evolution_map(spec: dict[str, Any], selection: dict[str, Any] | None, *, key: str,
                  on_selection: Callable[[], None], on_click: Callable[[], None]) -> None:
    """Draw ``spec`` (:func:`viewer.data.figures.map_spec`) with ``selection`` outlined.

    State under ``st.session_state[key]``: ``selection`` (``{"box": [{x, y}]}`` or
    ``{"lasso": [...]}`` in data coordinates, None once cleared) and the trigger ``click``
    (the clicked marker's row). In the page's DOM, not a shadow root: tests find it by CSS.
    """
    component("evowatch_map", "canvas_map.js", isolate_styles=False)(
        key=key, data={**spec, "selection": selection}, default={"selection": None},
        on_selection_change=on_selection, on_click_change=on_click)


def step_lines(spec: dict[str, Any], *, key: str, on_step: Callable[[], None]) -> None:
    """Draw ``spec`` (:func:`viewer.data.figures.signals_spec`); the trigger ``step`` under
    ``st.session_state[key]`` is the step of a clicked point."""
    component("evowatch_lines", "canvas_lines.js", isolate_styles=False)(key=key, data=spec,
                                                                         on_step_change=on_step)
