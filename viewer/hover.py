"""Hover thumbnails on the evolution map.

Plotly's hover labels cannot show images and Streamlit's plotly chart reports no hover
events, so a small ``st.components.v2`` component (it runs in the page's DOM) listens to
``plotly_hover`` on the map, reports the hovered row (debounced) as component state, and
shows a floating preview next to the cursor. The state change reruns only the fragment
around the component, which reads that one row's thumbnail from the store and sends it
back: no thumbnails travel with the map itself, whatever its size.

The same listener reports clicks on a point (Plotly's WebGL traces do not turn a click into
a selection), which sets the instance trail.
"""
from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import streamlit as st

from viewer import data

KEY = "evo_hover"

_JS = r"""
export default function (component) {
  const { data, setStateValue } = component;
  const s = window.__evowatchHover || (window.__evowatchHover = { row: null, x: 0, y: 0, timer: null });
  s.set = setStateValue;
  s.map = data.map;  // the map's CSS selector (viewer.data.MAP_SELECTOR)
  // One state value carrying both the hovered row and the last click: reruns that coalesce
  // state updates keep the newest value only, so a click must travel with every later hover.
  s.last = s.last || { hover: null, click: null };
  s.send = (change) => { s.last = Object.assign({}, s.last, change); s.set && s.set("ev", s.last); };
  let tip = document.getElementById("evowatch-hover-tip");
  if (!tip) {
    tip = document.createElement("div");
    tip.id = "evowatch-hover-tip";
    tip.style.cssText = "position:fixed;display:none;pointer-events:none;z-index:100000;background:#fff;" +
      "border:1px solid #bbb;border-radius:4px;padding:4px;box-shadow:0 2px 8px rgba(0,0,0,.25)";
    tip.innerHTML = '<img style="width:112px;height:112px;image-rendering:pixelated;display:block">' +
      '<div style="font:11px sans-serif;color:#333;max-width:160px;margin-top:2px;word-break:break-all"></div>';
    document.body.appendChild(tip);
  }
  const show = () => {
    if (!data || data.row === undefined || data.row === null || data.row !== s.row || !data.src) return;
    tip.querySelector("img").src = data.src;
    tip.querySelector("div").textContent = data.caption || "";
    const x = Math.min(s.x + 16, window.innerWidth - 180), y = Math.min(s.y + 16, window.innerHeight - 150);
    tip.style.left = x + "px"; tip.style.top = y + "px"; tip.style.display = "block";
  };
  show();
  // Plotly.react/newPlot on a changed figure drops the div's listeners but keeps the div:
  // re-attach whenever ours are gone (checked twice a second).
  if (!s.onHover) {
    s.onHover = (ev) => {
      const p = ev.points && ev.points[0];
      if (!p) return;
      const row = Array.isArray(p.customdata) ? p.customdata[0] : p.customdata;
      if (row === undefined || row === null) return;
      s.row = Number(row);
      if (ev.event) { s.x = ev.event.clientX; s.y = ev.event.clientY; }
      clearTimeout(s.timer);
      s.timer = setTimeout(() => s.send({ hover: s.row }), 120);
    };
    s.onUnhover = () => {
      s.row = null; clearTimeout(s.timer);
      const t = document.getElementById("evowatch-hover-tip");
      if (t) t.style.display = "none";
    };
    // Plotly's WebGL traces do not turn a click into a selection: report clicks ourselves.
    s.onClick = (ev) => {
      const p = ev.points && ev.points[0];
      const row = p && (Array.isArray(p.customdata) ? p.customdata[0] : p.customdata);
      if (row === undefined || row === null) return;
      clearTimeout(s.timer);
      s.send({ hover: Number(row), click: { row: Number(row), t: Date.now() } });
    };
  }
  const hook = () => {
    const gd = document.querySelector(s.map);
    if (!gd || typeof gd.on !== "function") return;
    const listeners = gd._ev && gd._ev.listeners ? gd._ev.listeners("plotly_hover") : [];
    if (listeners.indexOf(s.onHover) >= 0) return;
    gd.on("plotly_hover", s.onHover);
    gd.on("plotly_unhover", s.onUnhover);
    gd.on("plotly_click", s.onClick);
  };
  hook();
  if (!s.interval) s.interval = setInterval(hook, 500);  // one per page, for its lifetime
}
"""

_component = None


def _mount():
    global _component
    if _component is None:
        _component = st.components.v2.component("evowatch_hover", js=_JS)
    return _component


def thumbnail_uri(thumb: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(thumb, np.uint8)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def hover_payload(path: str, commit: data.Commit, d: data.MapData, row: int | None) -> dict:
    if row is None or not 0 <= row < d.n:
        return {}
    cols = data.sample_columns(path, commit, np.array([row]), ("thumbnail", "path"))
    desc = data.describe_rows(d, np.array([row]))
    where = f"step {desc['step'][0]:,}" if desc["step"][0] >= 0 else desc["kind"][0]
    caption = f"{where} · {desc['label'][0] or '–'} · {Path(str(cols['path'][0])).name}"
    return {"row": int(row), "src": thumbnail_uri(cols["thumbnail"][0]), "caption": caption}


def hover_preview(path: str, commit: data.Commit, d: data.MapData) -> None:
    """Mount the hover listener in its own fragment (a hover reruns only this fragment)."""

    @st.fragment
    def _fragment() -> None:
        state = st.session_state.get(KEY) or {}
        try:
            event = dict(state.get("ev") or {})
        except (AttributeError, TypeError, ValueError):
            event = {}
        row = event.get("hover")
        payload = {**hover_payload(path, commit, d, int(row) if row is not None else None),
                   "map": data.MAP_SELECTOR}
        _mount()(key=KEY, data=payload, default={"ev": None}, on_ev_change=lambda: None, height=0)
        click = event.get("click") or {}
        if click.get("t") is not None and click.get("t") != st.session_state.get("_click_t"):
            st.session_state["_click_t"] = click["t"]
            if 0 <= int(click.get("row", -1)) < d.n:
                st.session_state["trail_row"] = int(click["row"])
                st.rerun(scope="app")

    _fragment()
