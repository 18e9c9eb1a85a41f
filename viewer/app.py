"""evowatch viewer: the Streamlit page over a run store (read-only).

Run it with ``evowatch view STORE`` (or ``streamlit run viewer/app.py -- STORE``). The page
is a thin layout over :mod:`viewer.data`, which owns the cached store reads, the filters,
the selection geometry and the figure builders.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from engine.alerts import NEWEST_ALERTS, alert_step
from engine.backlog_log import counted
from stores import format as fmt
from stores.errors import EvowatchError
from stores.zarr_store import missing_rows
from viewer import canvas, export, hover, preload, store_path
from viewer.data import colors, commits, copies, figures, filters, map_data, sample_rows, selections, step_signals, text_query

log = logging.getLogger(__name__)

MAP_KEY = "map"
SIGNALS_KEY = "signals_chart"
LOSSES_KEY = "losses_chart"
TABLE_KEY = "selection_table"
#: Streamlit's main area starts 6rem down (room for its toolbar, 3.75rem); 3.5rem is enough
#: for it, and the map gets the rest of a 1280x720 first screen (docs/viewer.md).
PAGE_STYLE = ('<style>[data-testid="stMainBlockContainer"] { padding-top: 3.5rem; }'
              ' a.evowatch-export { display: inline-block; padding: 0.25rem 0.75rem; border-radius: 0.5rem;'
              ' border: 1px solid rgba(49, 51, 63, 0.2); color: inherit; text-decoration: none; }'
              ' a.evowatch-export:hover { border-color: currentColor; }</style>')


# ----------------------------------------------------------------------------- inputs
#: What the page shows, behind the title's help icon (no room taken from the map).
MAP_HELP = ("The map: one band per training step, left to right (the real reference first, grey); each step's "
            "samples laid out by similarity (t-SNE of the encoder's vectors), the same sample (instance id) kept "
            "near its place from band to band, so what moves changed. Bands that shrink or fill with look-alikes: "
            "mode collapse; samples sitting on reference images: copying. Hover for a thumbnail, click for a "
            "sample's trail across steps, drag a box to select. The signals below plot the per-step metrics and "
            "trainer losses; alerts are listed above the map.")


def store_argument() -> str | None:
    """The store path: ``streamlit run viewer/asgi.py -- STORE`` (or ``app.py``), else $EVOWATCH_STORE."""
    if sys.argv and Path(sys.argv[0]).name in ("app.py", "asgi.py") and len(sys.argv) > 1:
        return sys.argv[1]
    return os.environ.get("EVOWATCH_STORE")


def _plain(value: Any) -> Any:
    """Streamlit's state objects -> plain JSON-like values (safe to keep in session_state)."""
    try:
        return json.loads(json.dumps(value, default=lambda o: dict(o) if hasattr(o, "keys") else list(o)))
    except (TypeError, ValueError):
        return None


def _state(key: str, name: str) -> Any:
    """One value of a component's state (``st.session_state[key]``), as plain data."""
    try:
        return _plain((st.session_state.get(key) or {})[name])
    except (KeyError, TypeError, AttributeError):
        return None


def _on_map_select() -> None:
    """User changed the map selection (also fires when it is cleared)."""
    sel = _state(MAP_KEY, "selection")
    st.session_state["_sel_seen"] = sel
    st.session_state["sel"] = _drawn_on(sel) if not selections.selection_is_empty(sel) else None


def _drawn_on(sel: dict) -> dict:
    """A selection with the layout it was drawn on: its coordinates mean nothing on the other."""
    return {**sel, "layout": st.session_state.get("layout", "rectilinear")}


def _on_map_click() -> None:
    """User clicked a point: follow its instance."""
    row = _state(MAP_KEY, "click")
    if row is not None:
        st.session_state["trail_row"] = int(row)


def _on_step_click(key: str) -> None:
    """User clicked a point on a signals chart: show that step only."""
    step = _state(key, "step")
    if step is not None:
        st.session_state["focus_step"] = int(step)


def _on_table_select() -> None:
    event = st.session_state.get(TABLE_KEY)
    try:
        picked = list(event["selection"]["rows"])
    except (KeyError, TypeError):
        picked = []
    rows = st.session_state.get("_table_rows", [])
    if picked and picked[0] < len(rows):
        st.session_state["trail_row"] = int(rows[picked[0]])


def _sync_injected_state() -> None:
    """Pick up selections present in session_state before the charts are drawn.

    In a live app the callbacks above already did this; in ``AppTest`` a test injects
    ``session_state["map"] = {"selection": {...}}`` (or ``{"click": row}``, or
    ``session_state["signals_chart"] = {"step": 2000}``) and no callback runs.
    """
    sel = _state(MAP_KEY, "selection")
    if not selections.selection_is_empty(sel) and sel != st.session_state.get("_sel_seen"):  # not one dropped since
        st.session_state["_sel_seen"] = sel
        st.session_state["sel"] = _drawn_on(sel)
    _on_map_click()
    for key in (SIGNALS_KEY, LOSSES_KEY):
        _on_step_click(key)


# ----------------------------------------------------------------------------- live refresh
#: Session key: a read of the store failed since the page last ran (it is rerun once it reads).
UNREADABLE = "_store_unreadable"


def live_status(path: str, shown: commits.Commit, summary: str) -> None:
    """Poll only the committed counts; rerun the page (no reload) when they moved. Its line
    carries the store's ``summary`` (one line above the map, not two: the map's room)."""

    @st.fragment(run_every=commits.POLL_SECONDS)
    def _poll() -> None:
        try:
            now = commits.read_commit(path)
        except Exception as exc:  # the store vanished or is being replaced: say so, keep polling
            st.session_state[UNREADABLE] = True
            st.warning(commits.store_error_text(exc), icon="⚠️")  # a box: a grey caption went unseen
            return
        # moved on, or back after a read failed (the same counts: panels kept "no such store")
        if now != shown or st.session_state.pop(UNREADABLE, False):
            st.rerun(scope="app")
        st.caption(f"● live · {summary} · checked {time.strftime('%H:%M:%S')}")

    _poll()


#: Session keys naming rows, steps or map coordinates of the store the page showed.
STORE_BOUND = ("sel", "trail_row", "focus_step", "_step_range_prev")


def forget_another_store(commit: commits.Commit) -> None:
    """Drop what was picked on the page when another store was made at its path (a run
    started again into it): the box, the followed sample, the step picked on a chart and the
    Steps range named the old run's coordinates, rows and steps, and were applied to the new
    run's (a selection of samples never selected, the trail of another sample)."""
    if "_store_id" in st.session_state and st.session_state["_store_id"] != commit.store_id:
        for key in STORE_BOUND:
            st.session_state.pop(key, None)
        # widgets the browser keeps by key: a new Steps slider (step_range_key), though the new run's
        # steps have the old one's ends and count, and Step A/B follow the range again (the old range
        # and picks were kept: a run ingested again between two polls)
        st.session_state["_stores_made_again"] = st.session_state.get("_stores_made_again", 0) + 1
        for key in ("cmp_a", "cmp_b"):
            if key in st.session_state:
                st.session_state[f"_{key}_end"] = st.session_state[key]
    st.session_state["_store_id"] = commit.store_id


# ----------------------------------------------------------------------------- sidebar
def _nearest(steps: list[int], value: int) -> int:
    """The run's step closest to ``value`` (a range carried over from before a step was superseded)."""
    return min(steps, key=lambda s: abs(s - value))


#: The Steps slider's two widget keys, taken in turn (step_range_key).
STEP_RANGE_KEYS = ("step_range:a", "step_range:b")


def step_range_key(steps: list[int]) -> str:
    """The Steps slider's widget key: the last one drawn while the steps are the same steps of the
    same store, else the other one (new steps or a store made again at its path: a new widget in
    the browser, which starts from the range carried over). A key naming the steps did that too,
    but Streamlit keeps each widget's metadata, its step list, for the whole session: a live
    page kept one copy per commit. Two keys keep two."""
    named = (steps[0], steps[-1], len(steps), st.session_state.get("_stores_made_again", 0))
    shown = st.session_state.get("_step_range_shown")  # (key, steps named)
    key = STEP_RANGE_KEYS[0]
    if shown is not None:
        key = shown[0] if shown[1] == named else next(k for k in STEP_RANGE_KEYS if k != shown[0])
    st.session_state["_step_range_shown"] = (key, named)
    return key


def sidebar(d: map_data.MapData, path: str, commit: commits.Commit) -> tuple[filters.Filters, str, str]:
    sb = st.sidebar
    sb.header("Map")
    layout = sb.radio("Layout", ["rectilinear", "radial"], horizontal=True, key="layout")
    color_options = ["step", "label", "kind"] + [f"metric:{m}" for m in map_data.color_metrics(d.sample_metric_names)]
    color = sb.selectbox("Colour by", color_options, key="color",
                         format_func=lambda o: o.replace("metric:", "sample metric: "))

    sb.header("Filters")
    steps = [int(s) for s in d.all_steps]
    step_range = None
    if len(steps) >= 2:
        full = (steps[0], steps[-1])
        # New steps make a new slider (under the other key), which starts again from `value`:
        # carry the user's range over, following the ends the user left open.
        key = step_range_key(steps)
        default, prev = full, st.session_state.get("_step_range_prev")
        if prev and prev[4] != key:  # new steps (at an end, or between: samples written out of order)
            lo, hi, pmin, pmax, old_key = prev
            # a move of the old slider that came with this rerun (the step was committed since the
            # last poll): the user's range, not the one drawn before the move
            lo, hi = (int(s) for s in st.session_state.get(old_key, (lo, hi)))
            default = (full[0] if lo <= pmin else _nearest(steps, lo), full[1] if hi >= pmax else _nearest(steps, hi))
        # Only the run's own steps, written as the rest of the page writes numbers. A keyed select
        # slider's identity is its key alone: with a fixed key the browser kept its old range and
        # sent it back (st.slider's identity held min and max).
        step_range = tuple(int(s) for s in sb.select_slider("Steps", options=steps, value=default,
                                                             key=key, format_func=lambda s: f"{s:,}"))
        st.session_state["_step_range_prev"] = (*step_range, *full, key)
        if step_range == full:
            step_range = None
    focus = st.session_state.get("focus_step")
    if focus is not None:
        note = sb.empty()  # above the button, but drawn only once the button says it stays
        if sb.button("Show all steps", key="clear_focus"):
            st.session_state["focus_step"] = None
            focus = None
        else:
            note.info(f"Showing step {focus:,} only (picked on the signals chart"
                      + ("; the Steps range is set aside)." if step_range else ")."))
    present = [name for code, name in enumerate(d.kinds) if (d.kind == code).any()]  # no empty "holdout"
    offered = st.session_state.get("_kinds_offered", [])
    if "kinds" in st.session_state and (new := [k for k in present if k not in offered]):
        # a kind that came since (the page opened on an empty store): shown, not filtered out unasked
        st.session_state["kinds"] = [k for k in st.session_state["kinds"] if k in present] + new
    st.session_state["_kinds_offered"] = present
    if present:
        kinds = sb.multiselect("Kind", present, key="kinds",
                               **({} if "kinds" in st.session_state else {"default": present}))
    else:  # nothing laid out yet: an empty, greyed "No options to select" box looked broken
        kinds = []
        sb.caption("Kind filter: nothing on the map yet.")
    labels = sb.multiselect("Label", list(d.labels), key="labels", placeholder="all labels") if d.labels else []
    probes = map_data.probe_names(d.sample_metric_names, step_signals.step_metrics(path, commit))
    probe = None
    if probes:
        choice = sb.selectbox("Probe", ["(any)"] + probes, key="probe",
                              format_func=lambda p: p.replace("probe:", "") if p != "(any)" else p)
        probe = None if choice == "(any)" else choice
    else:
        sb.caption("Probe filter: no per-sample probe scores in this store (watch with probes to add them).")
    flags = map_data.sample_metric(path, commit, map_data.NEAR_COPY) if map_data.NEAR_COPY in d.sample_metric_names else None
    has_copy = flags is not None and bool(np.isfinite(flags).any())
    near = sb.checkbox("Only near-copies of training images", key="near_copies", disabled=not has_copy,
                       help=None if has_copy else near_copy_note(path, commit, flags))
    f = filters.Filters(step_range=step_range, focus_step=focus,
                     kinds=None if set(kinds) == set(present) else tuple(kinds),
                     labels=tuple(labels) if labels else None, probe=probe, near_copies_only=bool(near and has_copy))

    sb.header("Panels")
    sb.toggle("Signals", value=True, key="show_signals")
    sb.toggle("Step comparison", value=False, key="show_compare")
    sb.toggle("Text query", value=False, key="show_query")
    return f, layout, color


def near_copy_note(path: str, commit: commits.Commit, flags: np.ndarray | None) -> str:
    """Why the near-copies filter is disabled, given the laid-out rows' ``flags``. Flags
    measured on rows not laid out yet (`watch --no-layout`) are no reason to add --holdout."""
    if flags is None:
        return "No near-copy flags yet: the store has no per-sample copy metrics."
    if commit.layout_rows < commit.rows and np.isfinite(map_data.sample_metric(path, commit, map_data.NEAR_COPY,
                                                                           laid_out=False)).any():
        return (f"The samples measured for near-copies are not on the map yet: the filter works once they are laid "
                f"out (a store watched with --no-layout: run `evowatch layout {path}`).")
    return "Near-copies are not measured in this store: they need held-out images (watch with --holdout beside --real)."


# ----------------------------------------------------------------------------- panels
def thumbnails_grid(path: str, commit: commits.Commit, d: map_data.MapData, rows: np.ndarray, *, key: str,
                    width: int = 96) -> None:
    cols = sample_rows.sample_columns(path, commit, rows, ("thumbnail", "path"))
    desc = sample_rows.describe_rows(d, rows)
    captions = [f"{'step ' + format(s, ',') if s >= 0 else k} · {lab or '–'} · {Path(str(p)).name}"
                for s, k, lab, p in zip(desc["step"], desc["kind"], desc["label"], cols["path"])]
    with st.container(key=key):
        st.image(list(cols["thumbnail"]), caption=captions, width=width)


def copies_grid(path: str, commit: commits.Commit, d: map_data.MapData, rows: np.ndarray, *,
                key: str) -> tuple[np.ndarray, np.ndarray]:
    """Each generated sample of the grid beside the training image nearest to it: what a
    near-copy copies (the store keeps the distance, not the image). Open when one is flagged.
    Returns each row's nearest training row and distance (-1 and NaN for reference rows)."""
    nearest, dist = copies.nearest_training(path, commit, rows, d.kind[rows])
    pairs = np.flatnonzero(nearest >= 0)
    if not len(pairs):
        return nearest, dist
    flags = (map_data.sample_metric(path, commit, map_data.NEAR_COPY)[rows[pairs]] == 1
             if map_data.NEAR_COPY in d.sample_metric_names else np.zeros(len(pairs), bool))
    own = sample_rows.sample_columns(path, commit, rows[pairs], ("thumbnail", "path"))
    train = sample_rows.sample_columns(path, commit, nearest[pairs], ("thumbnail", "path"))
    images = [sample_rows.mosaic(np.stack([a, b]), cols=2) for a, b in zip(own["thumbnail"], train["thumbnail"])]
    captions = [f"{'near-copy · ' if flag else ''}step {int(d.step[rows[i]]):,} · {Path(str(a)).name} → {b} "
                f"({dist[i]:.3f})" for flag, a, b, i in zip(flags, own["path"], train["path"], pairs)]
    flagged = int(flags.sum())
    said = f" ({flagged} near-cop{'y' if flagged == 1 else 'ies'})" if flagged else ""
    with st.expander(f"Nearest training images: each sample beside the one it lies closest to{said}",
                     expanded=bool(flagged)):
        with st.container(key=key):
            st.image(images, caption=captions, width=192)
    return nearest, dist


def export_link(path: str, commit: commits.Commit, d: map_data.MapData, rows: np.ndarray) -> None:
    """Export selection (CSV), right under the selection's heading: below the grids it was the
    previous selection's link for as long as the new one's thumbnails and nearest training
    images took, and a click then exported the previous selection."""
    make = sample_rows.export_maker(path, commit, d, rows)
    if export.served:  # an address kept across reruns (viewer/export.py); no `download` attribute:
        # a refusal (store made again, selection no longer held) then shows its line in a new tab
        # instead of a silent failed download; the CSV itself downloads by its Content-Disposition
        st.markdown(f'<a href="{export.address(commit.store_id, path, rows, make)}" target="_blank" '
                    f'class="evowatch-export">Export selection (CSV)</a>', unsafe_allow_html=True)
    else:  # `streamlit run viewer/app.py`: no route, and a click during a watch's rerun can fail;
        # no rerun on the click: a rerun under way (a trail click just before) re-registered the file
        st.download_button("Export selection (CSV)", make, file_name=export.FILE_NAME, mime="text/csv",
                           key="export_csv", on_click="ignore")


def selection_panel(path: str, commit: commits.Commit, d: map_data.MapData, rows: np.ndarray) -> None:
    st.subheader(f"Selection · {len(rows):,} samples")
    if not len(rows):
        st.caption("Drag a box or lasso on the map (or click a point) to see its samples here.")
        return
    export_link(path, commit, d, rows)
    shown = sample_rows.grid_rows(rows)
    if len(shown) < len(rows):
        st.caption(f"Showing {len(shown)} of {len(rows):,}, spread evenly over the selection.")
    thumbnails_grid(path, commit, d, shown, key="thumb_grid")
    paths = sample_rows.sample_columns(path, commit, shown, ("path",))["path"]
    table = sample_rows.describe_rows(d, shown)
    table["path"] = [str(p) for p in paths]
    if d.has_real:
        nearest, dist = copies_grid(path, commit, d, shown, key="copies_grid")
        table["nearest training image"] = copies.training_names(
            nearest, lambda rows: sample_rows.sample_columns(path, commit, rows, ("path",))["path"])
        table["distance"] = [None if np.isnan(x) else round(float(x), 4) for x in dist]
    st.session_state["_table_rows"] = [int(r) for r in shown]
    st.caption("Click a row to follow that sample's instance across steps.")
    st.dataframe(table, key=TABLE_KEY, on_select=_on_table_select, selection_mode="single-row",
                 hide_index=True, height=220,  # steps written 3,000 as on the rest of the page
                 column_config={"step": st.column_config.NumberColumn(format="localized")})


def trail_panel(path: str, commit: commits.Commit, d: map_data.MapData, trail: np.ndarray) -> None:
    if not len(trail):
        return
    row = int(st.session_state["trail_row"])
    desc = sample_rows.describe_rows(d, np.array([row]))
    if desc["kind"][0] != "generated":
        st.subheader(f"A {desc['kind'][0]} sample")
        st.caption("Reference samples are taken once, not per step: there is no trail to follow.")
    elif desc["instance"][0] < 0:
        st.subheader("A sample without an instance id")
        st.caption("This sample has no instance id, so it cannot be followed across steps.")
    else:
        st.subheader(f"Instance {desc['instance'][0]} across {counted(len(trail), 'step')}")
    shown = sample_rows.grid_rows(trail)  # all 2,000 of a long run's took 17 s to show
    if len(shown) < len(trail):
        st.caption(f"Showing {len(shown)} of {len(trail):,} steps, spread evenly from the first to the last.")
    thumbnails_grid(path, commit, d, shown, key="trail_grid", width=72)
    if d.has_real and desc["kind"][0] == "generated":  # the step it began to copy a training image
        copies_grid(path, commit, d, shown, key="trail_copies_grid")
    followed = desc["kind"][0] == "generated" and desc["instance"][0] >= 0
    if st.button("Clear trail" if followed else "Clear", key="clear_trail"):
        st.session_state["trail_row"] = None
        st.rerun()


def _add_newly_alerted(alerted: list[str], options: list[str]) -> None:
    """Plot the metric of a rule that began alerting after the page opened: the picker's
    default applies only when it is made, and a live page showed the new alerts' crosses on
    no chart. A metric the user took off stays off until another rule marks it."""
    seen = st.session_state.setdefault("signal_cols_alerted", set(alerted))  # the default shows these
    new = [c for c in alerted if c not in seen]
    seen.update(new)
    if new and "signal_cols" in st.session_state:
        st.session_state["signal_cols"] = [c for c in dict.fromkeys([*new, *st.session_state["signal_cols"]])
                                           if c in options]


def signals_panel(path: str, commit: commits.Commit, d: map_data.MapData) -> None:
    st.subheader("Signals")
    table = step_signals.step_metrics(path, commit)
    alerts = list(d.alerts)
    metrics_off = step_signals.watched_without_metrics(path, commit)
    off = ("The watcher runs with `--no-metrics`: the steps it ingests get no metrics, alerts or trainer losses; "
           "watch again without it (the samples stored are kept) to measure them.")
    if not table or "step" not in table or not len(table["step"]):
        st.info(off if metrics_off else
                "Per-step metrics are not computed yet: the watcher measures each pass of checkpoints against "
                "the store's real reference (unless it runs with `--no-metrics`)." if d.has_real else
                "No per-step metrics in this store yet: they appear once the watcher computes them. Without a "
                "real reference only diversity is measured (vendi, pairwise cosine); precision/recall, FD and "
                "near-copies need one: `evowatch watch … --real DIR`.")
    else:
        if metrics_off:
            st.caption(off)
        options = [c for c in table if c != "step"]
        _add_newly_alerted(step_signals.alerted_signal_columns(table, alerts), options)
        # the default only until the key exists: it is set above when a rule starts alerting
        # (both logged a warning and a stack trace in the terminal of `evowatch view`)
        picked = {} if "signal_cols" in st.session_state else {"default": step_signals.default_signal_columns(table, alerts)}
        cols = st.multiselect("Metrics", options, key="signal_cols", help=step_signals.METRIC_GLOSSARY, **picked)
        if not cols:
            st.caption("No metric picked: choose some above to plot them.")
        spec = figures.signals_spec(table, cols, alerts, title="Per-step metrics (click a point to show that step)",
                                 focus_step=st.session_state.get("focus_step"))
        with st.container(key="signals_metrics"):
            canvas.step_lines(spec, key=SIGNALS_KEY, on_step=lambda: _on_step_click(SIGNALS_KEY))
    losses = step_signals.scalars(path, commit)
    if losses and "step" in losses and len(losses["step"]):
        spec = figures.signals_spec(losses, [c for c in losses if c != "step"], alerts, title="Trainer losses",
                                 focus_step=st.session_state.get("focus_step"), height_per=100)
        with st.container(key="signals_losses"):
            canvas.step_lines(spec, key=LOSSES_KEY, on_step=lambda: _on_step_click(LOSSES_KEY))
    elif not metrics_off:
        st.caption("No trainer losses in this store (the watcher reads them from the run's logs when present).")


def compare_panel(path: str, commit: commits.Commit, d: map_data.MapData, selected: np.ndarray,
                  step_range: tuple[int, int] | None = None) -> None:
    st.subheader("Step comparison")
    steps = [int(s) for s in d.steps]
    if len(steps) < 2:
        st.info("Step comparison needs at least two steps.")
        return
    shown = [s for s in steps if step_range is None or step_range[0] <= s <= step_range[1]] or steps
    around_alert, from_first = sample_rows.alert_comparisons(list(d.alerts), steps)
    ends = _compared_ends(around_alert, (shown[0], shown[-1]))
    if from_first:
        st.caption(f"Not offered to Compare: {', '.join(from_first)} (an onset at the first stored step, "
                   f"{steps[0]:,}: no step before it).")
    c1, c2 = st.columns(2)  # first and last of the Steps range the map shows, or around an alert's onset
    _follow("cmp_a", ends[0], steps)
    _follow("cmp_b", ends[1], steps)
    a = c1.selectbox("Step A", steps, key="cmp_a", format_func=lambda s: f"{s:,}")
    b = c2.selectbox("Step B", steps, key="cmp_b", format_func=lambda s: f"{s:,}")
    generated = selected[d.kind[selected] == fmt.KIND_CODES["generated"]] if len(selected) else selected
    # a reference image's file number is no instance of the run's (real 00020.png is not instance 20)
    prefer = np.unique(d.instance[generated]) if len(generated) else None
    rows_a, rows_b, aligned = sample_rows.comparison_rows(d, a, b, prefer)
    if not aligned:
        st.caption("No instance ids shared by these steps: showing the first samples of each instead.")
    else:
        st.caption(f"The same {counted(len(rows_a), 'instance')} at both steps"
                   + (" (selected instances first)." if prefer is not None else "."))
    for col, step, rows in ((c1, a, rows_a), (c2, b, rows_b)):
        thumbs = sample_rows.sample_columns(path, commit, rows, ("thumbnail",))["thumbnail"]
        col.image(sample_rows.mosaic(np.asarray(thumbs), cols=6, scale=2), caption=f"step {step:,}", width="stretch")


#: The step comparison's first choice: Step A and B at the Steps range's ends.
RANGE_ENDS = "the Steps range's ends"


def _compared_ends(around_alert: dict[str, tuple[int, int]], range_ends: tuple[int, int]) -> tuple[int, int]:
    """The steps the comparison starts from: the Steps range's ends, or a failure's onset and
    the stored step before it (what a user diagnosing an alert compares first). Picking
    another "Compare" puts both steps there, even a step the user picked by hand; a step
    landing before the onset moves Step A to it, the choice kept (its name holds no step A)."""
    if not around_alert:
        return range_ends
    options = [RANGE_ENDS, *around_alert]
    if st.session_state.get("cmp_around") not in options:
        st.session_state["cmp_around"] = RANGE_ENDS  # an alert withdrawn by a step measured again
    around = st.selectbox("Compare", options, key="cmp_around",
                          help="A failure's first alert against the step before it, or the Steps range's ends.")
    if st.session_state.get("_cmp_around_prev", RANGE_ENDS) != around:
        for key in ("cmp_a", "cmp_b"):
            st.session_state.pop(key, None)  # made again at the new ends
    st.session_state["_cmp_around_prev"] = around
    return around_alert.get(around, range_ends)


def _follow(key: str, end: int, steps: list[int]) -> None:
    """Show ``end`` (an end of the Steps range, or of a failure's onset) in the step picker
    ``key`` until the user picks another step: a step left at the end it was given follows new
    steps and a moved range. Set in the session state, never passed as ``index``: a keyed
    selectbox's identity is its key alone, so the browser kept showing (and then sent back) the
    step it had, and an index given with a set state logged a warning and a stack trace."""
    given = st.session_state.get(f"_{key}_end")
    st.session_state[f"_{key}_end"] = end
    if key not in st.session_state or st.session_state[key] == given or st.session_state[key] not in steps:
        st.session_state[key] = end


def query_panel(path: str, commit: commits.Commit, d: map_data.MapData, visible: np.ndarray) -> np.ndarray | None:
    st.subheader("Text query")
    identity = str(d.encoder.get("identity", ""))
    if not text_query.is_clip(d.encoder):
        st.info(f"Text queries need a CLIP encoder; this store was encoded with '{identity or 'unknown'}'.")
        return None
    prompt = st.text_input("Prompt", key="query", placeholder="e.g. a photo of a dog")
    k = st.slider("Highlight the best", 10, 500, 100, step=10, key="query_k")
    if not prompt.strip():
        return None
    try:
        scores = text_query.query_scores(path, commit, d.encoder, prompt.strip())
    except Exception as exc:  # weights missing offline, etc.: a note, not a traceback
        st.info(f"Text query unavailable: the encoder '{identity}' could not be loaded here ({exc}).")
        return None
    best = text_query.top_matches(scores, visible, k)
    st.caption(f"Top {len(best)} of the visible samples for “{prompt.strip()}” (stars on the map).")
    thumbnails_grid(path, commit, d, best[:24], key="query_grid", width=72)
    return best


#: Height of the alert list above the map once it holds more than three alerts (it scrolls).
ALERT_BOX_PX = 120


def alerts_list(alerts: list[dict[str, Any]]) -> None:
    """Each rule's first alert (the onset) and the newest above the map; all in an expander,
    so a long collapse does not hide where it began."""
    shown = step_signals.alerts_shown(alerts)
    if not shown:
        return
    # One box, a line per alert: a box per alert took the first screen from the map; past a
    # few lines it scrolls (three rules' onsets and newest, 10 wrapped lines, pushed the map's
    # lower half off a 1280x720 screen).
    with st.container(height=ALERT_BOX_PX, border=False) if len(shown) > 3 else st.container():
        _alert_box(shown)
    if len(shown) < len(alerts):
        with st.expander(f"Showing {len(shown)} of {len(alerts)} alerts: each rule's first and the newest "
                         f"{NEWEST_ALERTS} · show all {len(alerts)}"):
            _alert_box(sorted(alerts, key=alert_step))


def _alert_box(alerts: list[dict[str, Any]]) -> None:
    st.warning("  \n".join(step_signals.alert_text(alert) for alert in alerts))


# ----------------------------------------------------------------------------- page
def page(path: str) -> None:
    try:
        commit = commits.read_commit(path)
    except Exception as exc:
        st.title("evowatch")
        if store_path.awaited(path):  # started before the watcher created it: not an error
            st.info(store_path.waiting_text(path))
        else:
            st.error(commits.store_error_text(exc))
            st.caption("Start a run with `evowatch watch RUN_DIR --store STORE`, then `evowatch view STORE`.")
        live_status_error(path)
        return
    forget_another_store(commit)
    d = map_data.map_data(path, commit)
    st.title(f"evowatch · {Path(path).name}", help=MAP_HELP)
    earlier_samples = d.n_superseded - d.n_replaced_reference  # a replaced --real set is no sample's version
    earlier = f" (+{earlier_samples:,} of earlier versions)" if earlier_samples else ""
    replaced = f" (+{d.n_replaced_reference:,} replaced)" if d.n_replaced_reference else ""
    reference = f" · {d.n_reference:,} reference{replaced}" if d.n_reference or replaced else ""  # not counted as samples
    live_status(path, commit, f"{counted(commit.rows - d.n_superseded - d.n_reference, 'sample')}{earlier}{reference} · "
                              f"{counted(len(d.all_steps), 'step')} · "
                              f"{commit.layout_rows:,} laid out · encoder {d.encoder.get('identity', '?')} · "
                              f"{counted(len(d.alerts), 'alert')}")
    if d.missing_chunks:  # zarr reads them as zeros: black thumbnails, points at the map's centre
        said = missing_rows(d.missing_chunks)
        st.error(f"{said[0].upper()}{said[1:]}. The store was copied or restored incompletely; copy it again from "
                 "its source.")
    _sync_injected_state()
    f, layout, color = sidebar(d, path, commit)
    alerts_list(list(d.alerts))

    if commit.rows == 0:
        if commit.checkpoints:  # every file of them skipped: nothing will come of waiting
            st.warning(f"{commit.checkpoints:,} checkpoints are stored, none with a sample that could be read: "
                       f"`evowatch info {path}` names the skipped files and why.")
            if st.session_state.get("show_signals", True):
                signals_panel(path, commit, d)  # the trainer's losses, read all the same
        else:
            st.info("The store has no samples yet: the map appears when the watcher commits the first checkpoint.")
        return
    if commit.layout_rows == 0:
        st.info(no_layout_note(path, commit))
        if st.session_state.get("show_compare"):  # thumbnails of all rows: no map needed
            compare_panel(path, commit, map_data.map_data(path, commit, laid_out=False), np.zeros(0, np.int64))
        if st.session_state.get("show_signals", True):
            signals_panel(path, commit, d)
        return
    if commit.layout_rows < commit.rows:
        st.caption(f"{commit.rows - commit.layout_rows:,} newest samples await layout and are not on the map yet.")
    elif not len(d.steps):
        st.caption("Only reference data so far: each training step's band appears once the watcher ingests it.")

    probe_values = map_data.sample_metric(path, commit, f.probe) if f.probe else None
    near = map_data.sample_metric(path, commit, map_data.NEAR_COPY) if f.near_copies_only else None
    visible = filters.filter_mask(d, f, probe_values=probe_values, near_copy=near)
    xy = map_data.placed(path, commit, layout)
    metric = map_data.sample_metric(path, commit, color.split(":", 1)[1]) if color.startswith("metric:") else None
    c = colors.coloring(d, color, metric)

    highlight = None
    query_slot = st.container()
    if st.session_state.get("show_query"):
        with query_slot:
            highlight = query_panel(path, commit, d, visible)

    map_section(path, commit, d, xy, visible, c, f, layout, color, highlight)
    if st.session_state.get("show_signals", True):
        signals_panel(path, commit, d)


def no_layout_note(path: str, commit: commits.Commit) -> str:
    """Why there is no map yet, and the command that draws one when no watcher will. The
    watcher lays out each pass before it computes the signals, so signals without a layout
    mean it runs with ``--no-layout``."""
    fix = f"run `evowatch layout {path}` to draw the map (the page picks it up by itself)"
    if commit.metric_rows:
        return f"No layout in this store: it was watched with `--no-layout`; {fix}."
    return (f"{commit.rows:,} samples are stored but no layout has been committed yet; the map appears once "
            f"the watcher lays out the first step. If it runs with `--no-layout` or has stopped, {fix}.")


@st.fragment
def map_section(path: str, commit: commits.Commit, d: map_data.MapData, xy: np.ndarray, visible: np.ndarray,
                c: colors.Coloring, f: filters.Filters, layout: str, color: str, highlight: np.ndarray | None) -> None:
    """The map and what depends on its selection (trail, grid, table, comparison).

    A fragment: a box/lasso selection, a table click or a comparison step reruns only this
    part (the sidebar, the filters and the signals charts are not rebuilt or resent); a
    filter, a new commit or a signals click reruns the whole page with new arguments.
    """
    try:
        _map_section(path, commit, d, xy, visible, c, f, layout, color, highlight)
    except Exception as exc:  # a fragment rerun is outside main()'s guard: a readable line, never a traceback
        show_error(path, exc)


def _map_section(path: str, commit: commits.Commit, d: map_data.MapData, xy: np.ndarray, visible: np.ndarray,
                 c: colors.Coloring, f: filters.Filters, layout: str, color: str, highlight: np.ndarray | None) -> None:
    sel = st.session_state.get("sel")
    if sel and sel.get("layout", layout) != layout:  # drawn on the other layout: another place on this one
        sel = st.session_state["sel"] = None
    selected = selections.selected_rows(xy, visible, sel)
    trail_row = st.session_state.get("trail_row")
    trail = selections.instance_trail(d, int(trail_row)) if trail_row is not None and 0 <= int(trail_row) < d.n else np.zeros(0, np.int64)

    spec, mode = figures.cached_map_spec(path, commit, layout, color, f, d, xy, visible, c, trail=trail,
                                      highlight=highlight)
    with st.container(key=figures.MAP_CONTAINER):
        canvas.evolution_map(spec, sel, key=MAP_KEY, on_selection=_on_map_select, on_click=_on_map_click)
    references = int((visible & (d.kind != fmt.KIND_CODES["generated"])).sum())  # the status line counts them apart
    st.caption(f"{int(visible.sum()):,} points match the filters"
               + (f" ({references:,} of them reference images)" if references else "")  # below the map: it is what needs the room
               + (f" · density view (each pixel aggregates its samples; {figures.SAMPLE_POINTS:,} sampled points "
                  "take hovers and clicks; box/lasso selects from all)" if mode == "density" else "")
               + " · drag to select (box, lasso), wheel to zoom, click a point to follow its instance")
    hover.hover_preview(path, commit, d)

    trail_panel(path, commit, d, trail)
    selection_panel(path, commit, d, selected)
    if st.session_state.get("show_compare"):
        compare_panel(path, commit, d, selected, f.step_range)


def show_error(path: str, exc: Exception) -> None:
    """A failed read as one line on the page. A store removed or broken while the page is
    open is expected (its traceback only in the debug log); anything else is a bug whose
    traceback the server's console shows."""
    expected = isinstance(exc, (EvowatchError, OSError))
    log.log(logging.DEBUG if expected else logging.ERROR, "viewer failed on %s", path, exc_info=True)
    if expected:  # the live poll reruns the page once the store reads again
        st.session_state[UNREADABLE] = True
    st.error(commits.read_error_text(path, exc))


def live_status_error(path: str) -> None:
    """Keep polling a missing or broken store so the page shows it once it is created (the
    live refresh's fragment, which reruns the page when the store reads)."""

    @st.fragment(run_every=commits.POLL_SECONDS * 2)
    def _poll() -> None:
        try:
            commits.read_commit(path)
        except Exception:
            return
        st.rerun(scope="app")

    _poll()


def main() -> None:
    path = store_argument()
    # the store in the tab's title: several viewers open side by side are told apart
    st.set_page_config(page_title=f"{Path(path).name} · evowatch" if path else "evowatch", layout="wide")
    preload.preload_charts(after=figures.MAP_SELECTOR)  # first: chunks load while the script runs
    st.html(PAGE_STYLE)  # style only: takes no room on the page
    if not path:
        st.title("evowatch")
        st.error("No store given: run `evowatch view STORE`.")
        return
    try:
        page(path)
    except Exception as exc:  # a readable page, never a traceback
        show_error(path, exc)


main()
