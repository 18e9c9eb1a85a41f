"""Load Streamlit's front-end chunks before the page asks for them.

Streamlit fetches an element's chunk only when the first element of its kind arrives. The
map is a components-v2 canvas (:mod:`viewer.canvas`) whose chunk the viewer names to the
browser twice: a ``Link: rel=modulepreload`` header on the page (:mod:`viewer.asgi`:
fetched and compiled while Streamlit's front end starts) and a script as the page's first
element that imports it. The selection panel's chunks follow once the map is drawn.
"""
from __future__ import annotations

import json
from pathlib import Path

import streamlit as st

#: Chunks (by name; hashed per release) the first paint needs, and those of the selection panel.
PRELOAD_NOW = ("BidiComponent",)
PRELOAD_IDLE = ("ImageList", "DataFrame", "DownloadButton")

_PRELOAD_JS = r"""
(() => {
  if (window.__evowatchPreload) return;
  window.__evowatchPreload = true;
  const d = %s;
  const main = document.querySelector('script[type="module"][src*="/static/js/"]');
  if (!main) return;
  const load = (name) => import(main.src.replace(/[^/]+$/, name)).catch(() => {});
  (d.now || []).forEach(load);
  // Once the map is drawn and the page idle, so that evaluating them never delays the map.
  const idle = window.requestIdleCallback || ((f) => setTimeout(f, 500));
  const later = () => {
    if (d.after && !document.querySelector(d.after)) return setTimeout(later, 250);
    idle(() => (d.idle || []).forEach(load), { timeout: 3000 });
  };
  setTimeout(later, 250);
})();
"""


def chunk_files(names: tuple[str, ...]) -> list[str]:
    """File names of Streamlit's front-end chunks with these names (each must be found
    exactly once, else it is left out and loads when Streamlit asks for it)."""
    try:
        js = Path(st.__file__).parent / "static" / "static" / "js"
        found = {name: sorted(p.name for p in js.glob(f"{name}.*.js")) for name in names}
    except OSError:
        return []
    return [files[0] for files in found.values() if len(files) == 1]


def preload_charts(after: str = "") -> None:
    """The page's first element: a script that imports the Plotly chunk at once, and the
    selection panel's chunks once ``after`` (a CSS selector: the drawn map) exists."""
    now, idle = chunk_files(PRELOAD_NOW), chunk_files(PRELOAD_IDLE)
    if not now and not idle:
        return
    data = json.dumps({"now": now, "idle": idle, "after": after})
    with st.container(key="evo_preload", height=1, border=False):
        st.html(f"<script>{_PRELOAD_JS % data}</script>", unsafe_allow_javascript=True)
