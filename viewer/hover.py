"""Hover thumbnails on the evolution map.

The map (:func:`viewer.canvas.evolution_map`) announces the marker under the pointer as a window event
(``evowatch:hover``); a small ``st.components.v2`` component listens to it, reports the
hovered row (debounced) as component state, and shows a floating preview next to the
cursor. The state change reruns only the fragment around the component, which reads that
one row's thumbnail from the store and sends it back: no thumbnails travel with the map
itself, whatever its size.
"""
from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import streamlit as st

from viewer import canvas
from viewer.data import commits, map_data, sample_rows

KEY = "evo_hover"

_JS = r"""
export default function (component) {
  const { data, setStateValue } = component;
  const s = window.__evowatchHover || (window.__evowatchHover = { row: null, x: 0, y: 0, timer: null });
  s.set = setStateValue;
  let tip = document.getElementById("evowatch-hover-tip");
  if (!tip) {
    tip = document.createElement("div");
    tip.id = "evowatch-hover-tip";
    tip.style.cssText = "position:fixed;display:none;pointer-events:none;z-index:100000;background:#fff;" +
      "border:1px solid #bbb;border-radius:4px;padding:4px;box-shadow:0 2px 8px rgba(0,0,0,.25)";
    tip.innerHTML = '<img style="width:112px;height:112px;image-rendering:pixelated;display:block">' +
      '<div style="font:11px sans-serif;color:#333;max-width:160px;margin-top:2px;overflow-wrap:anywhere"></div>';
    document.body.appendChild(tip);
  }
  s.data = data;
  s.show = () => {
    const d = s.data, tip = document.getElementById("evowatch-hover-tip");
    if (!d || d.row === undefined || d.row === null || d.row !== s.row || !d.src) return;
    tip.querySelector("img").src = d.src;
    tip.querySelector("div").textContent = d.caption || "";
    const x = Math.min(s.x + 16, window.innerWidth - 180), y = Math.min(s.y + 16, window.innerHeight - 150);
    tip.style.left = x + "px"; tip.style.top = y + "px"; tip.style.display = "block";
  };
  s.show();
  if (!s.listening) {  // one listener per page, for its lifetime
    s.listening = true;
    window.addEventListener("evowatch:hover", (ev) => {
      const { row, x, y } = ev.detail || {};
      if (row === null || row === undefined) {
        clearTimeout(s.timer);
        s.row = null;
        document.getElementById("evowatch-hover-tip").style.display = "none";
        return;
      }
      s.x = x; s.y = y;
      if (row === s.row) return;  // moving over the same point
      clearTimeout(s.timer);
      s.row = Number(row);
      document.getElementById("evowatch-hover-tip").style.display = "none";
      s.show();  // the thumbnail already here (the same point again)
      s.timer = setTimeout(() => s.set && s.set("row", s.row), 120);
    });
  }
}
"""

def thumbnail_uri(thumb: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(thumb, np.uint8)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def hover_payload(path: str, commit: commits.Commit, d: map_data.MapData, row: int | None) -> dict:
    if row is None or not 0 <= row < d.n:
        return {}
    cols = sample_rows.sample_columns(path, commit, np.array([row]), ("thumbnail", "path"))
    desc = sample_rows.describe_rows(d, np.array([row]))
    where = f"step {desc['step'][0]:,}" if desc["step"][0] >= 0 else desc["kind"][0]
    label, instance = desc["label"][0], desc["instance"][0]
    sample = desc["step"][0] >= 0  # a reference file's number is no instance
    caption = " · ".join(filter(None, (where, label and f"label {label}", sample and instance >= 0 and f"instance {instance}",
                                       Path(str(cols["path"][0])).name)))
    return {"row": int(row), "src": thumbnail_uri(cols["thumbnail"][0]), "caption": caption}


def hover_preview(path: str, commit: commits.Commit, d: map_data.MapData) -> None:
    """Mount the hover listener in its own fragment (a hover reruns only this fragment)."""

    @st.fragment
    def _fragment() -> None:
        state = st.session_state.get(KEY) or {}
        try:
            row = state.get("row")
        except AttributeError:
            row = None
        try:
            payload = hover_payload(path, commit, d, int(row) if row is not None else None)
        except Exception as exc:  # noqa: BLE001 - this fragment reruns alone: a line, never a traceback
            st.caption(f"⚠ {commits.read_error_text(path, exc)}")
            payload = {}
        canvas.component("evowatch_hover", _JS)(key=KEY, data=payload, default={"row": None},
                                                on_row_change=lambda: None, height=0)

    _fragment()
