"""The viewer's logic through Streamlit's AppTest (no browser), plus its pure data layer."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from stores import format as fmt  # noqa: E402
from stores.errors import StoreFormatError  # noqa: E402
from stores.zarr_store import StoreReader, StoreWriter  # noqa: E402
from viewer import store_path  # noqa: E402
from viewer.data import colors, commits, figures, filters, map_data, sample_rows, selections, step_signals, text_query  # noqa: E402
from viewer.synthetic import ENCODER, SyntheticRun, build_store  # noqa: E402

APP = str(Path(__file__).resolve().parents[1] / "viewer" / "app.py")
PER_STEP = 60
N_REAL = 40


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("viewer") / "run.zarr"
    build_store(path, n_steps=3, per_step=PER_STEP, n_real=N_REAL, thumbnail_size=12)
    return path


def run_app(path: Path | str, monkeypatch, **state) -> AppTest:
    monkeypatch.setenv("EVOWATCH_STORE", str(path))
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("title", "subheader", "caption", "markdown", "info", "warning", "error")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def component_data(at: AppTest, name: str) -> dict:
    """The data sent to the first component named ``name`` on the page."""
    found = [e for e in at.get("bidi_component") if e.proto.component_name == name]
    assert found, f"no {name} on the page"
    return json.loads(found[0].proto.json)


def map_chart(at: AppTest) -> dict:
    """The map component's spec (viewer.data.figures.map_spec plus the kept selection)."""
    return component_data(at, "evowatch_map")


def steps_slider(at: AppTest):
    """The sidebar's Steps filter (drawn under one of two keys)."""
    (slider,) = [s for s in at.select_slider if s.label == "Steps"]
    return slider


def n_points(spec: dict) -> int:
    """Markers drawn (base64 int32 rows), checked against the declared count."""
    import base64

    rows = np.frombuffer(base64.b64decode(spec["points"]["row"]), np.int32)
    assert len(rows) == spec["points"]["n"]
    return len(rows)


def box_all(at_or_store=None) -> dict:
    return {"selection": {"box": [{"x": [-1e6, 1e6], "y": [-1e6, 1e6]}]}}


# ----------------------------------------------------------------------------- app
def test_page_renders_map_signals_and_alert(store, monkeypatch):
    at = run_app(store, monkeypatch)
    assert not at.exception
    assert not at.error
    page = texts(at)
    assert "evowatch · run.zarr" in page
    assert "one band per training step" in at.title[0].proto.help  # what the map shows, behind the title's icon
    assert f"{3 * PER_STEP} samples · {N_REAL} reference · 3 steps" in page  # reference rows are no samples
    assert "near-copies" in page  # the alert
    spec = map_chart(at)
    assert n_points(spec) == 3 * PER_STEP + N_REAL
    assert spec["legend"]["scale"]["title"] == "step"
    assert ["reference data", colors.REFERENCE_COLOR] in spec["legend"]["items"]
    assert [text for _, text in spec["labels"]] == ["real", "1,000", "2,000", "3,000"]
    assert "Signals" in page
    lines = component_data(at, "evowatch_lines")
    assert lines["steps"] == [1000, 2000, 3000] and lines["series"]
    assert 2000 in lines["alert_steps"]
    assert "`copy_zu`: Meehan's test" in at.multiselect(key="signal_cols").help  # what the raw names mean
    at.multiselect(key="signal_cols").set_value([]).run()  # every metric removed: an empty section said nothing
    assert "No metric picked: choose some above to plot them." in texts(at)


def test_the_header_counts_a_rewritten_checkpoints_earlier_rows_apart(tmp_path, monkeypatch):
    """A grid the trainer rewrote in place keeps its first version's rows, superseded: the
    header counted them as samples (a DCGAN epoch grid rewritten 10 times read 10x the samples)."""
    run = build_store(tmp_path / "run.zarr", n_steps=2, per_step=30, n_real=20, thumbnail_size=8)
    run.add_step(run.steps[-1])  # the same source again: the earlier version's 30 rows are superseded
    page = texts(run_app(tmp_path / "run.zarr", monkeypatch))
    assert "60 samples (+30 of earlier versions) · 20 reference · 2 steps" in page
    run.add_reference()  # a --real set replaced: its earlier rows are no sample's earlier version
    page = texts(run_app(tmp_path / "run.zarr", monkeypatch))
    assert "60 samples (+30 of earlier versions) · 20 reference (+20 replaced) · 2 steps" in page


def test_the_hover_caption_names_what_each_number_is(store):
    """"step 1,500 · 5 · 00005.png": the bare 5 was the label, read as an instance id."""
    from viewer.hover import hover_payload

    commit = commits.read_commit(str(store))
    d = map_data.map_data(str(store), commit)
    row = int(np.flatnonzero(d.kind == fmt.KIND_CODES["generated"])[0])
    caption = hover_payload(str(store), commit, d, row)["caption"]
    assert caption == f"step 1,000 · label {sample_rows.describe_rows(d, np.array([row]))['label'][0]} · instance " \
                      f"{d.instance[row]} · sample_{row - N_REAL:06d}.png"


def test_a_store_missing_chunk_files_says_so_above_the_map(tmp_path, monkeypatch):
    """A store copied incompletely showed black thumbnails and points at the centre: zarr
    reads a missing chunk as zeros (round AJ, through export)."""
    import shutil

    build_store(tmp_path / "run.zarr", n_steps=2, per_step=30, n_real=20, thumbnail_size=8)
    shutil.rmtree(tmp_path / "run.zarr" / "samples" / "path" / "c")
    page = texts(run_app(tmp_path / "run.zarr", monkeypatch))
    assert "Chunk files missing (samples/path rows 0-79; zarr reads them as zeros). The store" in page


def test_a_store_copied_before_an_array_grew_names_the_rows_missing(tmp_path, monkeypatch):
    """An array's zarr.json copied before it grew past the commit point: the page said only
    "could not read the store: IndexError: boolean index did not match ..."."""
    build_store(tmp_path / "run.zarr", n_steps=2, per_step=30, n_real=20, thumbnail_size=8)
    meta = tmp_path / "run.zarr" / "samples" / "step" / "zarr.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "shape": [50]}))
    at = run_app(tmp_path / "run.zarr", monkeypatch)
    assert not at.exception and "samples/step rows 50-79 (its zarr.json ends at row 50)" in at.error[0].value
    assert "copy it again from its source" in at.error[0].value


def test_a_reference_images_number_is_no_instance_in_its_hover_caption(store):
    """Real ``0049.png`` said "instance 49"."""
    from viewer.hover import hover_payload

    commit = commits.read_commit(str(store))
    d = map_data.map_data(str(store), commit)
    row = int(np.flatnonzero(d.kind != fmt.KIND_CODES["generated"])[0])
    instance = d.instance.copy()
    instance[row] = 49  # as read from its file name
    caption = hover_payload(str(store), commit, dataclasses.replace(d, instance=instance), row)["caption"]
    assert caption.startswith("real") and "instance" not in caption


def test_a_fall_in_diversity_is_marked_on_the_chart_of_the_metric_it_names():
    """A pairwise-cosine alert was marked on Vendi's chart (and opened it)."""
    alert = {"step": 300, "rule": "collapse", "value": 0.1,
             "message": "diversity fell 90% between step 100 and 300: mean pairwise cosine distance 1 -> 0.0986"}
    assert step_signals._alert_matches(alert, "pairwise_cosine") and not step_signals._alert_matches(alert, "vendi")


@pytest.mark.parametrize("message, metric", [
    ("4 of 16 samples at step 400 are copies of training images: closer to one than nearly every held-out image is "
     "(a fresh sample is, with probability 0.25%; alert above 2)", "tight_copy_frac"),
    ("18% of samples are near-copies of training images at step 7000, about 14% beyond chance (a fresh sample is one "
     "with probability 5%; alert above 15%)", "near_copy_frac"),
    ("samples at step 400 sit 40% closer to training images than to held-out ones (median log distance ratio -0.511 "
     "over 12 distinct neighbourhoods on equal-size subsets; sign test p = 0.0002)", "copy_log_ratio"),
])
def test_a_memorisation_alert_opens_the_chart_of_the_metric_that_fired(message, metric):
    """Round AN: a tight-copy alert showed the near-copy chart first, not tight_copy_frac."""
    alert = {"step": 400, "rule": "memorisation", "value": 0.25, "message": message}
    columns = ["near_copy_frac", "tight_copy_frac", "copy_log_ratio", "vendi"]
    assert step_signals._first_watched(alert, columns) == metric
    assert [c for c in columns if step_signals._alert_matches(alert, c)] == [metric]


def test_a_store_of_reference_data_only_is_coloured_by_kind_and_says_steps_come(tmp_path, monkeypatch):
    """The watcher has taken --real but no checkpoint yet: the legend showed a step colour bar
    "0 to 1" for steps that do not exist."""
    run = SyntheticRun(tmp_path / "ref.zarr", per_step=10, n_real=30, thumbnail_size=8, metrics=False)
    run.add_reference()
    at = run_app(run.path, monkeypatch)
    assert not at.exception and not at.error
    assert "Only reference data so far" in texts(at)
    assert map_chart(at)["legend"] == {"items": [["real", colors.KIND_COLORS["real"]]]}  # no step scale


def test_filters_narrow_the_map(store, monkeypatch):
    at = run_app(store, monkeypatch)
    assert at.multiselect(key="kinds").options == ["generated", "real"]  # no held-out rows: no "holdout"
    at.multiselect(key="kinds").set_value(["generated"]).run()
    assert n_points(map_chart(at)) == 3 * PER_STEP
    assert steps_slider(at).options == ["1,000", "2,000", "3,000"]  # the run's steps only
    steps_slider(at).set_range(2000, 3000).run()
    assert n_points(map_chart(at)) == 2 * PER_STEP
    at.checkbox(key="near_copies").check().run()
    near = n_points(map_chart(at))
    assert 0 < near < 2 * PER_STEP
    at.checkbox(key="near_copies").uncheck().run()
    at.multiselect(key="labels").set_value(["cat"]).run()
    fig = map_chart(at)
    assert 0 < n_points(fig) < 2 * PER_STEP
    assert not at.exception


def test_near_copies_not_measured_leave_their_filter_disabled_with_why(tmp_path, monkeypatch):
    """A store watched with --real but no --holdout measures no near-copies; its per-sample
    flags were 0, so the filter was enabled and said "0 samples match"."""
    from stores.zarr_store import StoreWriter

    path = tmp_path / "run.zarr"
    build_store(path, n_steps=2, per_step=PER_STEP, n_real=N_REAL, thumbnail_size=12, alerts=False)
    with StoreWriter(path, ENCODER) as writer:
        writer.write_sample_metric(map_data.NEAR_COPY, 0, np.full(writer.n_rows, np.nan, np.float32))
    at = run_app(path, monkeypatch)
    box = at.checkbox(key="near_copies")
    assert box.disabled and "they need held-out images (watch with --holdout beside --real)" in box.help
    assert not at.exception


def test_near_copies_measured_but_not_laid_out_say_the_map_is_missing_not_holdout(tmp_path, monkeypatch):
    """`watch --real --holdout --no-layout`: the flags are measured, but the viewer reads them
    for the laid-out rows only (none), and its note said to add the --holdout already given."""
    path = tmp_path / "nolayout.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=8) as w:
        with w.checkpoint(1000, "s1000", "h1000") as tx:
            tx.add(np.eye(8, dtype=np.float32)[:4], [0, 1, 2, 3], ["a"] * 4, np.zeros((4, 8, 8, 3), np.uint8),
                   [f"s1000/{i}.png" for i in range(4)])
        w.write_sample_metric(map_data.NEAR_COPY, 0, np.array([0, 1, 0, 0], np.float32))
        w.write_step_metrics(1000, {"near_copy_frac": 0.25})
    at = run_app(path, monkeypatch)
    box = at.checkbox(key="near_copies")
    assert box.disabled and "--holdout" not in box.help
    assert box.help == ("The samples measured for near-copies are not on the map yet: the filter works once they "
                        f"are laid out (a store watched with --no-layout: run `evowatch layout {path}`).")
    assert not at.exception


def test_colour_modes_and_radial_layout(store, monkeypatch):
    at = run_app(store, monkeypatch)
    for mode in ("label", "kind", "metric:nn_train_distance"):
        at.selectbox(key="color").set_value(mode).run()
        assert not at.exception and not at.error
        assert n_points(map_chart(at)) == 3 * PER_STEP + N_REAL
    at.radio(key="layout").set_value("radial").run()
    assert not at.exception
    spec = map_chart(at)
    assert spec["equal"] and spec["view_key"] == "radial" and not spec["labels"]
    # Every ring is named (the canvas thins them by its zoom): the reference, then the steps
    # as the page writes them, at radii that grow outward like the rings.
    assert [name for _, name in spec["rings"]] == ["real", "1,000", "2,000", "3,000"]
    radii = [r for r, _ in spec["rings"]]
    assert radii == sorted(radii) and radii[0] >= 0
    at.radio(key="layout").set_value("rectilinear").run()
    assert map_chart(at)["rings"] == [] and len(map_chart(at)["labels"]) == 4


def test_box_selection_shows_grid_table_and_export(store, monkeypatch):
    at = run_app(store, monkeypatch, map=box_all(), trail_row=N_REAL + 5)  # a trail beside a selection
    assert not at.exception and not at.error
    assert "Instance 5 across 3 steps" in texts(at)
    assert f"Selection · {3 * PER_STEP + N_REAL} samples" in texts(at)
    table = at.dataframe[0].value
    assert list(table.columns) == ["row", "step", "kind", "label", "instance", "path", "nearest training image",
                                   "distance"]
    # trail and its steps beside their nearest training images, selection, then its generated samples so
    generated = int((table["kind"] == "generated").sum())
    assert [len(i.proto.imgs) for i in at.get("image")] == [3, 3, sample_rows.GRID_MAX, generated] and generated
    assert json.loads(at.dataframe[0].proto.columns)["step"]["type_config"]["format"] == "localized"  # 3,000, not 3000
    assert at.get("download_button")
    at.radio(key="layout").set_value("radial").run()  # its coordinates mean another place on the rings
    assert not at.exception and "Selection · 0 samples" in texts(at) and map_chart(at)["selection"] is None
    at.radio(key="layout").set_value("rectilinear").run()  # dropped, not picked up again from the map's state
    assert "Selection · 0 samples" in texts(at)


def copying_store(path: Path) -> Path:
    """Six training images (a real reference) and a step of four samples: 0-2 near-copies of
    training images 4, 1 and 5 (flagged), 3 none's."""
    train = np.eye(8, dtype=np.float32)[:6]
    copied = [4, 1, 5]  # the generated samples 0-2 copy these training images; sample 3 is its own
    rng = np.random.default_rng(0)
    own = train[copied] + rng.normal(scale=0.02, size=(3, 8)).astype(np.float32)
    fresh = np.full((1, 8), 1 / np.sqrt(8), np.float32)
    generated = np.concatenate([own / np.linalg.norm(own, axis=1, keepdims=True), fresh])
    with StoreWriter(path, ENCODER, thumbnail_size=8) as w:
        with w.checkpoint(-1, "reference/real", "hreal", "real") as tx:
            tx.add(train, [-1] * 6, ["a"] * 6, np.zeros((6, 8, 8, 3), np.uint8), [f"train/{i}.png" for i in range(6)])
        with w.checkpoint(1000, "s1000", "h1000") as tx:
            tx.add(generated, [0, 1, 2, 3], ["a"] * 4, np.full((4, 8, 8, 3), 255, np.uint8),
                   [f"s1000/{i}.png" for i in range(4)])
        w.commit_layout(rng.normal(size=(10, 2)).astype(np.float32), 0)
        w.write_sample_metric(map_data.NEAR_COPY, 6, np.array([1, 1, 1, 0], np.float32))
    return path


def test_a_selection_names_the_training_image_each_sample_copies(tmp_path, monkeypatch):
    """The page flagged near-copies but never said of which training image: the store keeps each
    sample's distance to its nearest training image, not the image, and a researcher checking a
    memorisation alert had to find it by hand."""
    at = run_app(copying_store(tmp_path / "copies.zarr"), monkeypatch, map=box_all())
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert list(table["nearest training image"]) == [""] * 6 + ["train/4.png", "train/1.png", "train/5.png", "train/0.png"]
    assert table["distance"][:6].isna().all() and (table["distance"][6:9] < 0.1).all() and table["distance"][9] > 1
    (pairs,) = [e for e in at.expander if e.label.startswith("Nearest training images")]
    assert "(3 near-copies)" in pairs.label
    assert at.get("image")[-1].proto.imgs[0].caption.startswith("near-copy · step 1,000 · 0.png → train/4.png (")


def test_a_followed_sample_shows_the_training_image_it_lies_nearest_to_at_each_step(tmp_path, monkeypatch):
    """Only a box selection showed it: a researcher clicking the flagged point was not told what it copies."""
    at = run_app(copying_store(tmp_path / "copies.zarr"), monkeypatch, map={"click": 6})  # sample 0 of step 1,000
    assert not at.exception and not at.error and "Instance 0 across 1 step" in texts(at)
    (pairs,) = [e for e in at.expander if e.label.startswith("Nearest training images")]
    assert "(1 near-copy)" in pairs.label
    assert at.get("image")[-1].proto.imgs[0].caption.startswith("near-copy · step 1,000 · 0.png → train/4.png (")


def test_the_selection_export_names_the_training_image_each_sample_copies(tmp_path):
    """The page names it (above); its CSV, what a researcher keeps of a memorisation finding, did not."""
    import csv

    path = copying_store(tmp_path / "copies.zarr")
    commit = commits.read_commit(path)
    exported = sample_rows.export_maker(path, commit, map_data.map_data(path, commit), np.arange(4, 10))()
    rows = list(csv.DictReader(exported.splitlines()))
    assert [r["nearest_training_image"] for r in rows] == ["", "", "train/4.png", "train/1.png", "train/5.png", "train/0.png"]
    assert [r["nn_train_dist"] == "" for r in rows] == [True, True, False, False, False, False]


def test_clicked_point_shows_instance_trail(store, monkeypatch):
    row = N_REAL + 5  # first step, instance 5
    at = run_app(store, monkeypatch, map={"click": row})
    assert not at.exception
    assert "Instance 5 across 3 steps" in texts(at) and at.button(key="clear_trail").label == "Clear trail"
    trail = map_chart(at)["trail"]
    assert trail["row"] == [row, row + PER_STEP, row + 2 * PER_STEP]  # the same instance, step by step
    assert len(trail["x"]) == len(trail["y"]) == 3
    at = run_app(store, monkeypatch, map={"click": 0})  # a real reference sample: no trail
    assert "A real sample" in texts(at) and "no trail to follow" in texts(at)
    assert at.button(key="clear_trail").label == "Clear"  # not "Clear trail" under "no trail to follow"
    assert map_chart(at)["trail"]["row"] == [0]


def test_a_long_runs_trail_shows_a_grid_of_its_steps_first_and_last_kept(tmp_path, monkeypatch):
    """A click on a 2,000-step store rendered all 2,000 trail thumbnails (17 s)."""
    path = tmp_path / "long.zarr"
    n_steps = sample_rows.GRID_MAX + 15
    build_store(path, n_steps=n_steps, per_step=2, n_real=2, thumbnail_size=8, backlog=True)
    at = run_app(path, monkeypatch, map={"click": 2 + 1})  # the first step, instance 1
    assert not at.exception
    assert f"Instance 1 across {n_steps} steps" in texts(at)
    assert f"Showing {sample_rows.GRID_MAX} of {n_steps} steps, spread evenly from the first to the last." in texts(at)
    assert len(map_chart(at)["trail"]["row"]) == n_steps  # the map draws the whole trail
    captions = [c.caption for c in at.get("image")[0].proto.imgs]
    assert len(captions) == sample_rows.GRID_MAX
    assert captions[0].startswith("step 1,000 ·") and captions[-1].startswith(f"step {n_steps * 1000:,} ·")


def test_step_click_on_signals_focuses_the_map(store, monkeypatch):
    at = run_app(store, monkeypatch, signals_chart={"step": 2000})
    assert not at.exception
    assert "Showing step 2,000 only" in texts(at)
    assert component_data(at, "evowatch_lines")["focus"] == 2000
    assert n_points(map_chart(at)) == PER_STEP + N_REAL  # the step plus the reference band
    at.button(key="clear_focus").click().run()
    assert n_points(map_chart(at)) == 3 * PER_STEP + N_REAL
    assert "Showing step 2,000 only" not in texts(at)  # the note goes with the one click
    # a step picked outside the Steps range: it is shown, not the reference band alone
    steps_slider(at).set_range(1000, 2000).run()
    at.session_state["signals_chart"] = {"step": 3000}
    at.run()
    assert "Showing step 3,000 only (picked on the signals chart; the Steps range is set aside)." in texts(at)
    assert n_points(map_chart(at)) == PER_STEP + N_REAL


def record_deprecations(monkeypatch) -> list[str]:
    """Streamlit's deprecation warnings (logged to the server console, not the page)."""
    import sys

    seen: list[str] = []
    for name, module in list(sys.modules.items()):
        if name.startswith("streamlit") and hasattr(module, "show_deprecation_warning"):
            monkeypatch.setattr(module, "show_deprecation_warning", lambda message, *a, **k: seen.append(message))
    return seen


def test_step_comparison_and_query_note(store, monkeypatch):
    deprecations = record_deprecations(monkeypatch)
    at = run_app(store, monkeypatch)
    at.toggle(key="show_compare").set_value(True).run()
    at.toggle(key="show_query").set_value(True).run()
    assert not at.exception
    page = texts(at)
    assert f"The same {min(24, PER_STEP)} instances at both steps" in page
    assert "Text queries need a CLIP encoder" in page
    assert not deprecations, deprecations  # e.g. use_container_width, removed after 2025-12-31
    # only reference images selected (the real band): their file numbers are no instances of the run
    real_band = {"selection": {"box": [{"x": [-6 - 3, -6 + 3], "y": [-1e6, 1e6]}]}}
    at = run_app(store, monkeypatch, map=real_band, show_compare=True)
    assert "Selection · " in texts(at) and "(selected instances first)" not in texts(at)


def test_the_step_comparison_follows_the_steps_range_until_a_step_is_picked(tmp_path, monkeypatch, caplog):
    """Round AY-3: Step A and B were the Steps range's ends only when the panel was made (a
    keyed selectbox's identity is its key alone): on a live page Step B stayed at the step
    that was the newest then, and a narrowed range moved neither."""
    path = tmp_path / "live.zarr"
    run = build_store(path, n_steps=3, per_step=10, n_real=10, thumbnail_size=8)
    at = run_app(path, monkeypatch, show_compare=True)

    def compared() -> tuple[int, int]:
        assert not at.exception
        return at.selectbox(key="cmp_a").value, at.selectbox(key="cmp_b").value

    assert compared() == (1000, 3000)
    run.add_step(4000)
    with caplog.at_level("WARNING"):
        at.run()
        assert compared() == (1000, 4000)  # the newest step
        steps_slider(at).set_range(2000, 3000).run()
        assert compared() == (2000, 3000)
        at.selectbox(key="cmp_b").set_value(2000).run()
        run.add_step(5000)
        at.run()
    assert compared() == (2000, 2000)  # a step picked stays
    assert "Session State API" not in caplog.text


def test_the_step_comparison_starts_around_an_alerts_onset_when_asked(tmp_path, monkeypatch):
    """A user diagnosing an alert compares its onset with the last step before it: Step A and
    B were only the Steps range's ends. Picking a failure puts both there, even over a step
    picked by hand; the range's ends come back with the first choice."""
    path = tmp_path / "alerted.zarr"
    build_store(path, n_steps=4, per_step=10, n_real=10, thumbnail_size=8)  # memorisation from step 2,000
    at = run_app(path, monkeypatch, show_compare=True)

    def compared() -> tuple[int, int]:
        assert not at.exception
        return at.selectbox(key="cmp_a").value, at.selectbox(key="cmp_b").value

    assert at.selectbox(key="cmp_around").options == ["the Steps range's ends", "memorisation: its onset, step 2,000, against the step before"]
    assert compared() == (1000, 4000)
    at.selectbox(key="cmp_b").set_value(3000).run()
    at.selectbox(key="cmp_around").set_value("memorisation: its onset, step 2,000, against the step before").run()
    assert compared() == (1000, 2000)
    at.selectbox(key="cmp_around").set_value("the Steps range's ends").run()
    assert compared() == (1000, 4000)


def test_a_compare_choice_is_sent_to_the_browsers_step_pickers(tmp_path, monkeypatch):
    """Round BW7, seen in Chromium: a Compare choice compared step 1,000 with 2,000 for one run, but
    the Step B picker kept showing 4,000 (a keyed selectbox's ``index`` applies only when it is
    made: the browser keeps its own value) and sent it back at the next rerun, so a click or a
    commit lost the choice. The server sets the pickers' value, which the browser takes."""
    path = tmp_path / "alerted.zarr"
    build_store(path, n_steps=4, per_step=10, n_real=10, thumbnail_size=8)  # memorisation from step 2,000
    at = run_app(path, monkeypatch, show_compare=True)
    (memorisation,) = [o for o in at.selectbox(key="cmp_around").options if o.startswith("memorisation")]
    at.selectbox(key="cmp_around").set_value(memorisation).run()
    sent = at.selectbox(key="cmp_b").proto
    assert (sent.set_value, sent.raw_value) == (True, "2,000")


def test_alert_comparisons_pair_each_rules_onset_with_the_step_before():
    alerts = [{"step": 3000, "rule": "memorisation"}, {"step": 1000, "rule": "label_drift"},
              {"step": 4000, "rule": "memorisation"}, {"step": 2500, "rule": "collapse"},
              {"step": 5000, "rule": "fd_rising"}]
    assert sample_rows.alert_comparisons(alerts, [1000, 2000, 2500, 3000, 4000]) == ({
        "collapse: its onset, step 2,500, against the step before": (2000, 2500),
        "memorisation: its onset, step 3,000, against the step before": (2500, 3000),  # its onset, not its newest
    }, ["label drift"])  # the first step: nothing before it; fd_rising's step 5,000 is no longer stored


def test_the_compare_choice_stays_when_a_step_before_the_onset_lands_late(tmp_path, monkeypatch):
    """Round BW7: the choice was named by the step before the onset too: a checkpoint of an
    earlier step written late (a resumed trainer) renamed it, and the page fell back to the
    Steps range's ends, both step pickers moved. An onset at the first stored step was offered
    as "step 1,000 → 1,000": the same samples twice."""
    run = SyntheticRun(tmp_path / "late.zarr", per_step=10, n_real=10, thumbnail_size=8)
    with run.writing() as store:
        run.add_reference()
        run.add_steps([1000, 3000, 4000])
        store.set_alerts([{"step": 1000, "rule": "label_drift", "value": 1.0, "message": "drift at step 1000"},
                          {"step": 3000, "rule": "memorisation", "value": 0.1, "message": "copies at step 3000"}])
    at = run_app(run.path, monkeypatch, show_compare=True)
    (memorisation,) = [o for o in at.selectbox(key="cmp_around").options if o.startswith("memorisation")]
    at.selectbox(key="cmp_around").set_value(memorisation).run()
    assert (at.selectbox(key="cmp_a").value, at.selectbox(key="cmp_b").value) == (1000, 3000)
    run.add_step(2000)  # an earlier step's checkpoint, written late
    at.run()
    assert not at.exception
    assert (at.selectbox(key="cmp_a").value, at.selectbox(key="cmp_b").value) == (2000, 3000)
    assert at.selectbox(key="cmp_around").value == memorisation
    assert at.selectbox(key="cmp_around").options == [
        "the Steps range's ends", "memorisation: its onset, step 3,000, against the step before"]
    assert "Not offered to Compare: label drift (an onset at the first stored step, 1,000: no step before it)." in texts(at)


def test_text_query_with_a_clip_store_stars_the_best_matches(tmp_path, monkeypatch):
    """The real open_clip text path (a tiny random CLIP, loaded from the spec the store
    recorded): the prompt ranks the visible samples, the best are starred on the map."""
    pytest.importorskip("open_clip")
    from engine.encoders import make_encoder
    from engine.session import encoder_record

    tiny = Path(__file__).parent / "data" / "evowatch-tiny.json"
    record = encoder_record(make_encoder(f"clip:{tiny}/random", device="cpu"))
    path = tmp_path / "clip.zarr"
    build_store(path, n_steps=2, per_step=30, n_real=20, thumbnail_size=8, encoder=record)
    at = run_app(path, monkeypatch)
    at.toggle(key="show_query").set_value(True).run()
    at.slider(key="query_k").set_value(10).run()
    at.text_input(key="query").input("a photo of a cat").run()
    assert not at.exception and not at.error
    assert "Top 10 of the visible samples for “a photo of a cat”" in texts(at)
    stars = map_chart(at)["highlight"]["row"]
    commit = commits.read_commit(path)
    scores = text_query.query_scores(path, commit, record, "a photo of a cat")
    assert sorted(stars) == sorted(np.argsort(-scores)[:10].tolist())  # the ten best of all visible rows


def test_a_store_made_again_or_a_layout_recomputed_is_a_new_commit(tmp_path):
    """The commit held counts only: a store deleted and written again at the same path by a
    run of the same shape, or `layout --full` (as many rows as before), left the page (and a
    reload of it) showing the old run's metrics and map until the viewer was restarted."""
    import shutil

    from engine.layout_runner import recompute_layout

    path = tmp_path / "exp.zarr"
    build_store(path, n_steps=2, per_step=30, n_real=20, thumbnail_size=8, seed=1)
    first = commits.read_commit(path)
    shutil.rmtree(path)
    build_store(path, n_steps=2, per_step=30, n_real=20, thumbnail_size=8, seed=2)
    again = commits.read_commit(path)
    assert (again.rows, again.layout_rows, again.metric_rows) == (first.rows, first.layout_rows, first.metric_rows)
    assert again != first
    with StoreWriter(path, ENCODER, thumbnail_size=8) as store:
        recompute_layout(store)
    recomputed = commits.read_commit(path)
    assert recomputed.layout_rows == again.layout_rows and recomputed != again
    # round AS: rows rewritten with the counts unchanged (a log started again, a step measured again)
    with StoreWriter(path, ENCODER, thumbnail_size=8) as store:
        scalars = StoreReader(path).scalars()
        store.write_scalars({name: values[::-1].copy() if name != "step" else values for name, values in scalars.items()})
    relogged = commits.read_commit(path)
    assert relogged.scalar_rows == recomputed.scalar_rows and relogged != recomputed
    with StoreWriter(path, ENCODER, thumbnail_size=8) as store:
        step = int(store.step_metrics()["step"][0])
        store.write_step_metrics(step, {"vendi": 123.0}, measured=[0, 1])
    remeasured = commits.read_commit(path)
    assert remeasured.metric_rows == relogged.metric_rows and remeasured != relogged


def test_a_store_made_again_under_an_open_page_drops_what_was_picked_on_the_old_one(tmp_path, monkeypatch):
    """Round AY-3: a run started again into the store the page shows (the store deleted and
    made anew): the old run's box, followed sample and picked step were kept and applied to
    the new run's rows: "Selection · 17 samples" it never had, "Instance 4 across 2 steps"
    of another sample (the same row number), a map of the reference alone (a step it lacks)."""
    import shutil

    path = tmp_path / "exp.zarr"
    build_store(path, n_steps=3, per_step=10, n_real=10, thumbnail_size=8, seed=1)
    at = run_app(path, monkeypatch, map=box_all(), trail_row=15, focus_step=2000)
    assert {"Selection · 20 samples", "Instance 5 across 3 steps"} <= {s.value for s in at.subheader}
    shutil.rmtree(path)
    build_store(path, n_steps=2, per_step=6, n_real=5, thumbnail_size=8, seed=3, step_every=500)
    at.run()
    assert not at.exception
    assert "Selection · 0 samples" in [s.value for s in at.subheader] and "Instance" not in texts(at)
    assert "Showing step" not in texts(at) and n_points(map_chart(at)) == 5 + 2 * 6
    at.run()  # the map's state still holds the old box: not taken up again
    assert "Selection · 0 samples" in [s.value for s in at.subheader]


def test_a_store_made_again_with_the_same_steps_drops_the_steps_range_and_the_picked_steps(tmp_path, monkeypatch):
    """Round BA: a store made again whose steps have the old run's ends and count (the same run
    ingested again between two polls) has the old Steps slider's key, and Step A and B keep
    theirs: the old range and the old picks were applied to the new run."""
    import shutil

    path = tmp_path / "exp.zarr"
    build_store(path, n_steps=3, per_step=10, n_real=10, thumbnail_size=8, seed=1)
    at = run_app(path, monkeypatch, show_compare=True)
    steps_slider(at).set_value((2000, 3000)).run()
    at.selectbox(key="cmp_b").set_value(2000).run()
    assert (at.selectbox(key="cmp_a").value, at.selectbox(key="cmp_b").value) == (2000, 2000)
    shutil.rmtree(path)
    build_store(path, n_steps=3, per_step=10, n_real=10, thumbnail_size=8, seed=3)
    at.run()
    assert not at.exception and n_points(map_chart(at)) == 10 + 3 * 10
    assert [slider.value for slider in at.select_slider] == [(1000, 3000)]
    assert (at.selectbox(key="cmp_a").value, at.selectbox(key="cmp_b").value) == (1000, 3000)
    at.select_slider[0].set_value((1000, 2000)).run()  # they follow the range again
    assert (at.selectbox(key="cmp_a").value, at.selectbox(key="cmp_b").value) == (1000, 2000)


def test_new_commit_reaches_the_page_and_keeps_filters(tmp_path, monkeypatch):
    path = tmp_path / "live.zarr"
    run = build_store(path, n_steps=2, per_step=30, n_real=20, thumbnail_size=8)
    at = run_app(path, monkeypatch)
    at.multiselect(key="kinds").set_value(["generated"]).run()
    assert n_points(map_chart(at)) == 60
    run.add_step(3000)
    at.run()  # what the polling fragment's st.rerun does
    assert not at.exception
    assert n_points(map_chart(at)) == 90  # the new band, filters kept
    assert at.multiselect(key="kinds").value == ["generated"]
    assert steps_slider(at).value == (1000, 3000)  # the open range followed the new step


def test_a_rule_that_alerts_after_the_page_opened_gets_its_chart(tmp_path, monkeypatch, caplog):
    """Round Y: the picker's default applies when it is made, so a live page never plotted the
    metric of a rule that began alerting later, and its alerts' crosses were on no chart.
    Round AD: setting it and passing a default logged a warning with a stack trace."""
    path = tmp_path / "live.zarr"
    run = build_store(path, n_steps=2, per_step=30, n_real=20, thumbnail_size=8, alerts=False)
    at = run_app(path, monkeypatch)
    at.multiselect(key="signal_cols").set_value(["vendi"]).run()  # near-copies not watched, yet
    with StoreWriter(path, run.encoder, thumbnail_size=8) as store:
        store.set_alerts([{"step": 2000, "rule": "memorisation", "value": 0.2, "message": "20% near-copies"}])
    with caplog.at_level("WARNING"):
        at.run()
    assert "Session State API" not in caplog.text
    assert not at.exception and at.multiselect(key="signal_cols").value == ["near_copy_frac", "vendi"]
    at.multiselect(key="signal_cols").unselect("near_copy_frac").run()
    run.add_step(3000)
    at.run()  # the user's choice holds while the same rule goes on alerting
    assert "near_copy_frac" not in at.multiselect(key="signal_cols").value


def test_the_probe_filter_offers_the_probes_measured_now():
    """Round AA: a probe no longer given kept its per-sample margins of the steps measured
    before; the filter offered it, and picking it hid every later step."""
    names = ["nn_train_distance", "probe:a woman", "probe:a blue_square"]  # stored "/" as "_"
    table = {"step": np.array([1, 2]), "probe_share:a_woman": np.array([0.4, 0.5]),
             "probe_share:a_blue_square": np.array([np.nan, np.nan])}
    assert map_data.probe_names(names, table) == ["probe:a woman"]
    table["probe_share:a_blue_square"] = np.array([0.1, np.nan])
    assert map_data.probe_names(names, table) == ["probe:a woman", "probe:a blue_square"]


def test_the_newest_band_is_always_named():
    """Round Y: past ~25 steps every n-th band was named counting from the first, so the
    newest step of a live run (the one watched) was named only when the count fell right."""
    from types import SimpleNamespace

    for n_steps in (50, 51, 52):
        d = SimpleNamespace(steps=np.arange(1, n_steps + 1) * 100, step_index=np.repeat(np.arange(-1, n_steps), 2))
        names = [name for _, name in figures._step_rows(d, stride=2)]
        assert names[0] == "real" and names[-1] == f"{n_steps * 100:,}" and len(names) == 1 + (n_steps + 1) // 2


def test_the_step_names_read_the_rows_once_not_once_a_step():
    """Round AV: the radial map names every ring, and each ring's rows were found by comparing
    every row with its step: steps times rows a spec, rebuilt at each commit of a live run
    (6 -> 34 -> 294 ms at 100, 300, 900 steps of 48 samples; grouped by one sort: 3, 11, 27)."""
    from types import SimpleNamespace

    class Counted(np.ndarray):
        """Counts the elements the ufuncs applied to it read."""
        read = 0

        def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
            Counted.read += self.size
            return getattr(ufunc, method)(*(np.asarray(x) for x in inputs), **kwargs)

    n_steps, per_step = 200, 10
    step_index = np.random.default_rng(0).permutation(np.repeat(np.arange(-1, n_steps), per_step))
    d = SimpleNamespace(steps=np.arange(1, n_steps + 1) * 100, step_index=step_index.view(Counted))
    found = list(figures._step_rows(d))
    assert Counted.read <= 4 * len(step_index)  # a mask a step read 201 times as many
    assert [name for _, name in found] == ["real", *(f"{s:,}" for s in d.steps)]
    for (rows, _), k in zip(found, range(-1, n_steps)):
        assert np.array_equal(np.sort(rows), np.flatnonzero(step_index == k))


def test_a_trail_left_open_reads_its_thumbnails_once_across_commits(tmp_path, monkeypatch):
    """Round Y: cached per commit, an open instance trail's thumbnails were cached again at
    every commit of a live run (96 px, 90 commits: 222 -> 556 MB)."""
    path = tmp_path / "live.zarr"
    run = build_store(path, n_steps=2, per_step=30, n_real=20, thumbnail_size=8)
    reads = []
    real = StoreReader.samples
    monkeypatch.setattr(StoreReader, "samples", lambda self, name, rows=None: reads.append(name) or real(self, name, rows))
    sample_rows._sample_columns.clear()
    rows = np.array([20, 50])
    first = sample_rows.sample_columns(path, commits.read_commit(path), rows, ("thumbnail",))["thumbnail"]
    run.add_step(3000)
    again = sample_rows.sample_columns(path, commits.read_commit(path), rows, ("thumbnail",))["thumbnail"]
    assert reads == ["thumbnail"] and np.array_equal(first, again)
    with pytest.raises(IndexError):
        sample_rows.sample_columns(path, commits.read_commit(path), np.array([10_000]), ("thumbnail",))


def test_a_page_opened_on_an_empty_store_shows_the_kinds_that_come(tmp_path, monkeypatch):
    """`evowatch view` opened while `watch` waits for the first checkpoint (an empty store): the
    Kind filter was made with no kinds and kept none, so every sample that came was filtered
    out ("0 samples match the filters") until a reload. A kind a user took out stays out."""
    path = tmp_path / "live.zarr"
    run = SyntheticRun(path, per_step=20, n_real=0, thumbnail_size=8)
    StoreWriter(path, run.encoder, thumbnail_size=8).close()
    at = run_app(path, monkeypatch)
    assert not at.exception
    run.add_step(1000)
    at.run()
    assert at.multiselect(key="kinds").value == ["generated"] and n_points(map_chart(at)) == 20
    at.multiselect(key="kinds").set_value([]).run()
    run.add_step(2000)
    at.run()
    assert at.multiselect(key="kinds").value == []


def test_a_store_whose_files_were_all_skipped_says_so_not_that_samples_will_come(tmp_path, monkeypatch):
    """Every file of its checkpoints unreadable: the page said the map appears once the watcher
    commits the first checkpoint, which never happens, and hid the trainer's losses."""
    path = tmp_path / "skipped.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=8) as store:
        for step in (100, 200):
            with store.checkpoint(step, f"step_{step}", f"h{step}") as tx:
                tx.skip(f"step_{step}/0.pt", "not a readable torch file (IndexError: pop from empty list)")
        store.write_scalars({"step": np.array([50, 100, 150, 200]), "loss_g": np.array([2.0, 1.5, 1.2, 1.0])})
    at = run_app(path, monkeypatch)
    assert not at.exception
    assert [w.value for w in at.warning] == [f"2 checkpoints are stored, none with a sample that could be read: "
                                             f"`evowatch info {path}` names the skipped files and why."]
    assert "no samples yet" not in texts(at) and component_data(at, "evowatch_lines")


def test_a_single_step_is_one_colour_named_in_the_legend(tmp_path, monkeypatch):
    """One checkpoint so far: the legend read "step 1,000 → 1,001" (a step that is not there) and
    every point was drawn at the dark end of the scale."""
    path = tmp_path / "one.zarr"
    build_store(path, n_steps=1, per_step=10, n_real=5, thumbnail_size=8)
    legend = map_chart(run_app(path, monkeypatch))["legend"]
    assert "scale" not in legend and [name for name, _ in legend["items"]] == ["step 1,000", "reference data"]
    d = map_data.map_data(path, commits.read_commit(path))
    rgb = colors.row_rgb(colors.coloring(d, "step"), np.flatnonzero(d.kind == fmt.KIND_CODES["generated"]))
    assert np.allclose(rgb, colors._viridis(np.array([0.5]))[0])  # the middle of the scale, not its dark end


def test_the_radial_view_holds_every_rings_whole_circle(tmp_path, monkeypatch):
    """A step with no readable sample left the newest ring with few points, none near its top:
    the view ended below the ring's radius and the canvas had no room to name it."""
    path = tmp_path / "few.zarr"
    build_store(path, n_steps=3, per_step=5, n_real=3, thumbnail_size=8)
    spec = map_chart(run_app(path, monkeypatch, layout="radial"))
    x0, x1, y0, y1 = spec["bounds"]
    assert spec["rings"] and all(-y0 >= r and y1 >= r and -x0 >= r and x1 >= r for r, _ in spec["rings"])


def test_an_alerting_rules_metric_is_plotted_at_first():
    """Three memorisation alerts, and the near-copy share was not among the charts shown."""
    table = {"step": np.array([1, 2]), **{c: np.array([0.1, 0.2]) for c in
                                          ("vendi", "coverage", "precision", "fd", "copy_log_ratio", "near_copy_frac")}}
    assert step_signals.default_signal_columns(table) == ["vendi", "coverage", "precision", "fd"]
    shown = step_signals.default_signal_columns(table, [{"rule": "memorisation", "step": 2}] * 3)
    assert shown == ["near_copy_frac", "vendi", "coverage", "precision"]
    table["region_tv"] = table["recall"] = np.array([0.1, 0.4])
    dropped = {"rule": "collapse", "step": 2, "message": "mode dropping at step 2: the samples' shares of the real "
                                                          "data's 8 regions off the real ones by 0.40 (total variation)"}
    assert step_signals.default_signal_columns(table, [dropped]) == ["region_tv", "vendi", "coverage", "precision"]
    recall = {**dropped, "message": "mode dropping at step 2: recall fell 60% from 0.9 at step 1 to 0.36"}
    assert step_signals.default_signal_columns(table, [recall])[0] == "recall"


def test_alert_list_keeps_the_onset_and_says_how_many(tmp_path, monkeypatch):
    """A collapse from step 1,500 alerts at every later step: the list keeps its first alert,
    says "4 of 7" and lists all in an expander; steps in messages written like the viewer's."""
    path = tmp_path / "collapse.zarr"
    run = build_store(path, n_steps=2, per_step=10, n_real=10, thumbnail_size=8, alerts=False)
    alerts = [{"step": s, "rule": "collapse", "value": 1.7,
               "message": f"diversity fell 60% between step 1250 and {s}: Vendi score 4.42 -> 1.74"}
              for s in range(1500, 3001, 250)]
    with StoreWriter(path, run.encoder, thumbnail_size=8) as w:
        w.set_alerts(alerts)
    at = run_app(path, monkeypatch)
    assert not at.exception
    line = "Step {:,} · collapse: diversity fell 60% between step 1,250 and {:,}: Vendi score 4.42 -> 1.74"
    shown, everything = [w.value.split("  \n") for w in at.warning]  # one box each, a line per alert
    assert shown == [line.format(s, s) for s in (1500, 2500, 2750, 3000)]
    assert at.expander[0].label == "Showing 4 of 7 alerts: each rule's first and the newest 3 · show all 7"
    assert everything == [line.format(s, s) for s in range(1500, 3001, 250)]


def test_alerts_shown_first_of_each_rule_and_newest():
    alerts = [{"step": s, "rule": r} for s, r in ((3000, "collapse"), (1000, "fd_rising"), (2000, "collapse"),
                                                  (4000, "collapse"), (5000, "collapse"), (6000, "collapse"))]
    assert [(a["step"], a["rule"]) for a in step_signals.alerts_shown(alerts)] == [
        (1000, "fd_rising"), (2000, "collapse"), (4000, "collapse"), (5000, "collapse"), (6000, "collapse")]
    assert step_signals.alert_text({"step": 12000, "rule": "fd_rising", "message": "FD rose: 3 at step 10000 -> 4 at step 12000"}) \
        == "Step 12,000 · fd rising: FD rose: 3 at step 10,000 -> 4 at step 12,000"


# ----------------------------------------------------------------------------- bad stores
def test_a_store_not_created_yet_is_waited_for(tmp_path, monkeypatch):
    """`evowatch view STORE` started before `evowatch watch --store STORE` created it: one
    line saying what the page waits for, no error; the store shows once it is there."""
    for path in (tmp_path / "nope.zarr", tmp_path / "empty.zarr"):
        if path.name == "empty.zarr":
            path.mkdir()
        at = run_app(path, monkeypatch)
        assert not at.exception and not at.error
        assert [i.value for i in at.info] == [store_path.waiting_text(path)]
        assert f"waiting for `evowatch watch RUN_DIR --store {path}`" in at.info[0].value
    build_store(tmp_path / "nope.zarr", n_steps=1, per_step=10, n_real=5, thumbnail_size=8)
    at = run_app(tmp_path / "nope.zarr", monkeypatch)  # the browser test sees the live poll do this
    assert not at.exception and not at.error and n_points(map_chart(at)) == 15
    assert "No store at" not in texts(at)


def test_a_path_that_cannot_become_a_store_is_an_error(tmp_path, monkeypatch):
    at = run_app(tmp_path / "typo" / "nope.zarr", monkeypatch)
    assert not at.exception and not at.info
    assert "no such store" in at.error[0].value


def test_view_refuses_what_cannot_become_a_store_and_waits_for_the_rest(tmp_path, capsys):
    """One line and exit 2 for a file, a folder with other contents and a missing parent
    folder (a typo), before any address is printed; an absent store or an empty folder is
    waited for (launch goes on to the port check)."""
    from viewer import launch

    (tmp_path / "file.zarr").write_text("x")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    StoreWriter(tmp_path / "run.zarr", ENCODER, thumbnail_size=8).close()
    refused = {tmp_path / "file.zarr": "not a Zarr v3 store", tmp_path / "other": "not a Zarr v3 store",
               tmp_path / "typo" / "run.zarr": f"no folder {tmp_path / 'typo'} to hold one; check the path",
               # watch --store refuses a store inside another: it was waited for, forever
               tmp_path / "run.zarr" / "new.zarr": f"inside the evowatch store {tmp_path / 'run.zarr'}; point at"}
    for path, why in refused.items():
        assert launch.launch(path, "127.0.0.1", 0) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and err.startswith(f"evowatch: error: {path}") and why in err
    for path in (tmp_path / "new.zarr", tmp_path / "empty"):
        assert store_path.refusal(path) is None and store_path.awaited(path)
    assert store_path.refusal(tmp_path / "file.zarr") and not store_path.awaited(tmp_path / "file.zarr")


def test_foreign_and_malformed_stores_are_readable_pages(tmp_path, monkeypatch):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {}}))
    at = run_app(foreign, monkeypatch)
    assert not at.exception and "not an evowatch store" in at.error[0].value
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "zarr.json").write_text("{not json")
    at = run_app(broken, monkeypatch)
    assert not at.exception and at.error
    future = tmp_path / "future"
    future.mkdir()
    (future / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {
        "evowatch": {"schema": "evowatch-store", "version": 99}}}))
    at = run_app(future, monkeypatch)
    assert not at.exception and "version 99 is not supported" in at.error[0].value


def _vanish_after_placing(path: Path, monkeypatch) -> None:
    """Remove the store once the page has read its map: the reads that follow (hover,
    trail, selection thumbnails) are what a page left open sees after `rm -rf STORE`."""
    import shutil

    placed = map_data.placed

    def placed_then_removed(*args, **kwargs):
        out = placed(*args, **kwargs)
        shutil.rmtree(path, ignore_errors=True)
        return out

    monkeypatch.setattr(map_data, "placed", placed_then_removed)


@pytest.mark.parametrize("state", [{"evo_hover": {"row": N_REAL + 1}}, {"map": {"click": N_REAL + 1}},
                                   {"map": box_all()}])
def test_store_removed_while_open_says_no_such_store(tmp_path, monkeypatch, state):
    path = tmp_path / "gone.zarr"
    build_store(path, n_steps=2, per_step=10, n_real=N_REAL, thumbnail_size=8)
    _vanish_after_placing(path, monkeypatch)
    at = run_app(path, monkeypatch, **state)
    assert not at.exception
    notes = [e.value for e in at.error] + [c.value for c in at.caption if "⚠" in c.value]
    assert notes and all("no such store" in n for n in notes), notes
    if "evo_hover" in state:  # the hover fragment answers for itself: the rest of the map section still runs
        assert not at.error and "Selection · 0 samples" in texts(at)


def test_a_store_gone_under_an_open_page_is_a_warning_box_on_the_live_line(tmp_path, monkeypatch):
    """The live line's check found the store gone: a small grey caption said so, easy to miss
    under the old map."""
    path = tmp_path / "gone.zarr"
    build_store(path, n_steps=2, per_step=10, n_real=N_REAL, thumbnail_size=8)
    read_commit, calls = commits.read_commit, []

    def gone_on_the_live_check(where):
        calls.append(where)
        if len(calls) > 1:  # the page read it; the live line's check finds it gone
            raise StoreFormatError(f"{where}: no such store")
        return read_commit(where)

    monkeypatch.setattr(commits, "read_commit", gone_on_the_live_check)
    at = run_app(path, monkeypatch)
    assert not at.exception
    assert [w.value for w in at.warning if w.icon == "⚠️"] == [f"{path}: no such store"]


def test_store_without_layout_or_metrics_shows_notes(tmp_path, monkeypatch):
    path = tmp_path / "bare.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=8) as w:
        at = run_app(path, monkeypatch)
        assert not at.exception and "no samples yet" in texts(at)
        with w.checkpoint(1000, "s1", "h1") as tx:
            tx.add(np.eye(8, dtype=np.float32)[:4], [0, 1, 2, 3], ["a"] * 4, np.zeros((4, 8, 8, 3), np.uint8),
                   [f"s1/{i}.png" for i in range(4)])
    at = run_app(path, monkeypatch)
    assert not at.exception and not at.error
    assert "no layout has been committed yet" in texts(at)


@pytest.mark.parametrize("n, same", [(4, "The same 4 instances at both steps"),
                                     (1, "The same 1 instance at both steps")])  # was "1 instances"
def test_store_without_layout_still_shows_signals_and_comparison(tmp_path, monkeypatch, n, same):
    """`watch --no-layout`: no map, but the signals and the step comparison need none, and
    the note names the command that draws the map."""
    path = tmp_path / "nolayout.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=8) as w:
        for step in (1000, 2000):
            with w.checkpoint(step, f"s{step}", f"h{step}") as tx:
                tx.add(np.eye(8, dtype=np.float32)[:n], list(range(n)), ["a"] * n, np.zeros((n, 8, 8, 3), np.uint8),
                       [f"s{step}/{i}.png" for i in range(n)])
            w.write_step_metrics(step, {"vendi": 2.0})
    at = run_app(path, monkeypatch)
    at.toggle(key="show_compare").set_value(True).run()
    assert not at.exception and not at.error
    page = texts(at)
    assert "watched with `--no-layout`" in page and f"run `evowatch layout {path}`" in page
    assert component_data(at, "evowatch_lines")["steps"] == [1000, 2000]
    assert same in page
    assert not [e for e in at.get("bidi_component") if e.proto.component_name == "evowatch_map"]


def test_metrics_panel_note_when_metrics_missing(tmp_path, monkeypatch):
    """With a real reference the metrics are only not computed yet (the first checkpoints
    being ingested); without one they need `--real`."""
    path = tmp_path / "nometrics.zarr"
    run = SyntheticRun(path, per_step=20, n_real=10, thumbnail_size=8, metrics=False)
    run.add_reference()
    run.add_step(100)
    at = run_app(path, monkeypatch)
    assert not at.exception and not at.error
    page = texts(at)
    assert "Per-step metrics are not computed yet" in page and "--real DIR" not in page
    assert "No trainer losses" in page
    assert n_points(map_chart(at)) == 30
    bare = SyntheticRun(tmp_path / "noreal.zarr", per_step=20, n_real=0, thumbnail_size=8, metrics=False)
    bare.add_step(100)
    at = run_app(bare.path, monkeypatch)
    page = texts(at)
    assert not at.exception and "Without a real reference only diversity is measured" in page
    assert "near-copies need one: `evowatch watch … --real DIR`" in page


def test_a_store_watched_with_no_metrics_says_so_instead_of_promising_metrics(tmp_path, monkeypatch):
    """`watch --no-metrics`: the page said metrics "appear once the watcher computes them" and
    that the run had no trainer losses (it has; they are read with the metrics)."""
    from engine.cli import main
    from tests.sample_fixtures import smooth_images, write_png

    run, path = tmp_path / "run", tmp_path / "s.zarr"
    for step in (100, 200):
        for i, image in enumerate(smooth_images(np.random.default_rng(step), 6, 16)):
            write_png(run / f"step_{step}" / f"{i:02d}.png", image)
    (run / "losses.jsonl").write_text('{"step": 100, "loss_g": 1.0}\n{"step": 200, "loss_g": 0.5}\n')
    assert main(["watch", str(run), "--store", str(path), "--once", "--settle", "0", "--encoder", "pixels", "--settle", "0",
                 "--no-metrics", "-q"]) == 0
    page = texts(run_app(path, monkeypatch))
    assert "The watcher runs with `--no-metrics`: the steps it ingests get no metrics, alerts or trainer losses" in page
    assert "appear once the watcher computes them" not in page and "No trainer losses" not in page


def test_view_on_a_busy_port_is_one_line_and_exit_2(store, capsys):
    """README's CLI contract: one line on stderr naming the port and the fix, exit 2, and no
    address announced (Streamlit's own 'Port … is not available' came after it, exit 1)."""
    import socket

    from viewer import launch

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert launch.launch(store, "127.0.0.1", port) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and f"port {port} is in use" in err and "--port" in err


def test_python_m_viewer_launch_checks_its_options_as_view_does_and_an_ipv6_address_is_a_url(store, capsys, monkeypatch):
    """Round AB: `python -m viewer.launch STORE --port 70000` was an OverflowError traceback
    (a parser of its own), and `--host ::1` printed http://::1:8501, which is no URL."""
    from viewer import launch

    with pytest.raises(SystemExit) as exited:  # argparse's usage error, as `evowatch view`'s
        launch.main([str(store), "--port", "70000"])
    assert exited.value.code == 2
    assert "argument --port: expected an integer from 1 to 65535, got '70000'" in capsys.readouterr().err
    monkeypatch.setattr(launch, "listen_error", lambda host, port: None)
    monkeypatch.setattr(launch.subprocess, "Popen", lambda *a, **k: type("Done", (), {"wait": lambda self: 0})())
    assert launch.launch(store, "::1", 8766) == 0
    assert "http://[::1]:8766" in capsys.readouterr().out


# ----------------------------------------------------------------------------- data layer
def test_lasso_and_box_geometry():
    xy = np.array([[0, 0], [1, 1], [2, 2], [5, 5]], np.float32)
    visible = np.array([True, True, True, False])
    box = {"box": [{"x": [-0.5, 1.5], "y": [-0.5, 1.5]}]}
    assert selections.selected_rows(xy, visible, box).tolist() == [0, 1]
    lasso = {"lasso": [{"x": [-1, 3, 3, -1], "y": [-1, -1, 3, 3]}]}
    assert selections.selected_rows(xy, visible, lasso).tolist() == [0, 1, 2]  # row 3 is filtered out
    tri = {"lasso": [{"x": {"0": -1, "1": 4, "2": -1}, "y": {"0": -1, "1": -1, "2": 4}}]}  # dict-typed arrays
    assert selections.selected_rows(xy, np.ones(4, bool), tri).tolist() == [0, 1]
    assert selections.selected_rows(xy, visible, None).tolist() == []


def test_density_mode_above_max_points(store):
    commit = commits.read_commit(store)
    d = map_data.map_data(store, commit)
    xy = map_data.placed(store, commit, "rectilinear")
    visible = np.ones(d.n, bool)
    spec, mode = figures.map_spec(d, xy, visible, colors.coloring(d, "label"), max_points=50, sample_points=30)
    assert mode == "density" and spec["mode"] == "density"
    assert spec["raster"].startswith("data:image/png;base64,")
    assert n_points(spec) == 30
    spec, mode = figures.map_spec(d, xy, visible, colors.coloring(d, "label"))
    assert mode == "points" and spec["raster"] is None and n_points(spec) == d.n


def test_map_spec_markers_carry_rows_positions_and_colours(store):
    """The typed arrays decode to the rows' placed coordinates and colour-mode colours."""
    import base64

    commit = commits.read_commit(store)
    d = map_data.map_data(store, commit)
    xy = map_data.placed(store, commit, "rectilinear")
    visible = d.kind == fmt.KIND_CODES["generated"]
    c = colors.coloring(d, "kind")
    spec, _ = figures.map_spec(d, xy, visible, c)
    p = spec["points"]
    rows = np.frombuffer(base64.b64decode(p["row"]), np.int32)
    assert rows.tolist() == np.flatnonzero(visible).tolist()
    x = np.frombuffer(base64.b64decode(p["x"]), np.float32)
    assert np.allclose(x, xy[rows, 0])
    rgb = np.frombuffer(base64.b64decode(p["rgb"]), np.uint8).reshape(-1, 3)
    assert (rgb == colors.row_rgb(c, rows).round()).all()
    assert spec["legend"]["items"] == [["generated", colors.KIND_COLORS["generated"]]]
    assert spec["trail"] is None and spec["highlight"] is None
    spec, _ = figures.map_spec(d, xy, visible, c, trail=rows[:2], highlight=rows[5:8])
    assert spec["trail"]["row"] == rows[:2].tolist() and spec["highlight"]["row"] == rows[5:8].tolist()
    assert spec["highlight"]["x"] == xy[rows[5:8], 0].tolist()


def test_signals_spec_gaps_alerts_and_focus():
    table = {"step": np.array([300, 100, 200]), "vendi": np.array([3.0, 1.0, np.nan]),
             "fd": np.array([9.0, 5.0, 7.0])}
    alerts = [{"step": 200, "rule": "collapse", "message": "diversity fell"},
              {"step": 300, "rule": "fd_rising", "message": "FD rose"},
              {"step": 300, "rule": "convergence", "message": "no progress from step 100 to 30000"},
              {"step": 300, "rule": "collapse", "message": "partial mode collapse"},
              {"step": 300, "rule": "collapse", "message": "diversity fell again"}]
    spec = figures.signals_spec(table, ["vendi", "fd", "missing"], alerts, title="t", focus_step=300)
    assert spec["steps"] == [100, 200, 300]  # sorted, values follow
    vendi, fd = spec["series"]
    assert vendi["y"] == [1.0, None, 3.0]  # NaN: a gap
    # a diversity collapse marks vendi, on the line, with its own message (a step's several alerts
    # each explain their own cross: one message per step named another rule's alert); a partial
    # collapse marks duplicate_frac, not vendi
    assert vendi["alerts"] == [[200, 2.0, "collapse: diversity fell"], [300, 3.0, "collapse: diversity fell again"]]
    assert [m[2] for m in fd["alerts"]] == ["fd_rising: FD rose", "convergence: no progress from step 100 to 30,000"]
    assert spec["alert_steps"] == [200, 300]
    assert spec["messages"] == {"200": "collapse: diversity fell", "300": "collapse: partial mode collapse | collapse: "
                                "diversity fell again | convergence: no progress from step 100 to 30,000 | fd_rising: FD rose"}
    assert spec["focus"] == 300
    assert (vendi["better"], fd["better"]) == ("higher is better", "lower is better")  # drawn in the panel


def test_csv_export_lists_rows_steps_paths(store):
    commit = commits.read_commit(store)
    d = map_data.map_data(store, commit)
    rows = np.array([N_REAL, N_REAL + 1])
    paths = sample_rows.sample_columns(store, commit, rows, ("path",))["path"]
    text = sample_rows.export_maker(store, commit, d, rows)()  # what the export's route serves
    lines = text.strip().splitlines()
    assert lines[0] == "row,step,kind,label,instance,path,nearest_training_image,nn_train_dist"  # the store has a real reference
    assert lines[1].startswith(f"{N_REAL},1000,generated,") and ",step_0001000/sample_000000.png,reference/real/" in lines[1]
    assert [line.split(",")[5] for line in lines[1:]] == [str(p) for p in paths]
    backwards = sample_rows.export_maker(store, commit, d, rows[::-1])().splitlines()
    assert backwards[1:] == lines[:0:-1]  # each row's own path, in the selection's order


def test_an_export_kept_for_its_address_holds_the_selected_rows_not_the_map(tmp_path):
    """viewer/export.py keeps the newest 32 selections' makers: each held its commit's whole
    MapData (40 bytes a row, 40 MB at a million rows), 1.3 GB under a live watch."""
    import pickle

    build_store(tmp_path / "run.zarr", n_steps=2, per_step=2000, n_real=10, thumbnail_size=4, backlog=True)
    commit = commits.read_commit(tmp_path / "run.zarr")
    d = map_data.map_data(tmp_path / "run.zarr", commit)
    rows = np.array([12, 10])
    make = sample_rows.export_maker(tmp_path / "run.zarr", commit, d, rows)
    assert len(pickle.dumps(make)) < d.xy.nbytes // 4  # what the route keeps (d.xy: 32 kB)
    assert [line.rsplit(",", 2)[0] for line in make().splitlines()[1:]] == [
        f"{r},1000,generated,{d.labels[d.label[r]]},{d.instance[r]},step_0001000/sample_{r - 10:06d}.png" for r in rows]


def test_an_export_of_a_store_made_again_since_the_selection_is_refused(tmp_path):
    """The export is made when its address is fetched: a store made again at the same path in
    between would have listed another run's files under the old selection's rows."""
    build_store(tmp_path / "run.zarr", n_steps=2, per_step=10, n_real=10, thumbnail_size=8)
    commit = commits.read_commit(tmp_path / "run.zarr")
    d = map_data.map_data(tmp_path / "run.zarr", commit)
    import shutil

    shutil.rmtree(tmp_path / "run.zarr")
    build_store(tmp_path / "run.zarr", n_steps=2, per_step=10, n_real=10, thumbnail_size=8)
    with pytest.raises(StoreFormatError, match="made again since this selection; select again on the page"):
        sample_rows.export_maker(tmp_path / "run.zarr", commit, d, np.array([0, 1]))()


def test_light_placement_matches_the_engine():
    """The viewer compiles the engine's placement without importing faiss/openTSNE: same result."""
    from engine.layout.placement import place

    rng = np.random.default_rng(0)
    xy = rng.normal(size=(500, 2)).astype(np.float32)
    step_index = rng.integers(-1, 4, size=500)
    light = map_data._light_place()
    for layout in ("rectilinear", "radial"):
        np.testing.assert_array_equal(light(xy, step_index, layout), place(xy, step_index, layout))


def test_a_range_moved_as_a_step_is_committed_is_kept(tmp_path, monkeypatch):
    """Round AY-3: the user narrowed the Steps range while the watcher committed a step the
    page had not polled yet; the rerun the move sent read the new step, made a new slider and
    carried over the range drawn before the move: the map went back to all steps (a watch
    committing every few seconds undid most moves, and the End key never reopened the range)."""
    path = tmp_path / "live.zarr"
    run = build_store(path, n_steps=3, per_step=10, n_real=10, thumbnail_size=8)
    at = run_app(path, monkeypatch)
    run.add_step(4000)  # committed between the page's polls
    steps_slider(at).set_range(1000, 2000).run()
    assert not at.exception
    assert steps_slider(at).value == (1000, 2000)
    assert n_points(map_chart(at)) == 10 + 2 * 10  # the reference and steps 1,000 and 2,000
    run.add_step(5000)
    steps_slider(at).set_range(1000, 4000).run()  # reopened at its upper end
    assert steps_slider(at).value == (1000, 5000)  # follows the new step


def test_a_live_session_keeps_the_steps_sliders_metadata_for_two_widgets_not_one_per_commit(tmp_path, monkeypatch):
    """Round BO: Streamlit keeps every widget's metadata for the session (the Steps slider's: its
    step list), and the slider got a new key at every new step: a page watching a run live kept
    one copy of the step list per commit (about 230 MB for 2,000 steps). Its two keys keep two,
    and a narrowed range still follows the newest step through every change of key."""
    path = tmp_path / "live.zarr"
    run = build_store(path, n_steps=3, per_step=4, n_real=4, thumbnail_size=8)
    at = run_app(path, monkeypatch)
    steps_slider(at).set_range(2000, 3000).run()
    for step in range(4000, 9000, 1000):
        run.add_step(step)
        at.run()
        assert not at.exception and steps_slider(at).value == (2000, step)
    # widget metadata by widget id (SessionState's own record; no public listing of it)
    kept = [wid for wid in at._session_state._state._new_widget_state.widget_metadata if "step_range" in wid]
    assert len(kept) <= 2, kept


def test_a_step_written_between_others_joins_the_steps_filter_and_keeps_the_users_range(tmp_path, monkeypatch):
    """Samples written out of order (an evaluation of step 1,500 after 3,000): the filter offers
    the new step and keeps the range the user chose."""
    path = tmp_path / "live.zarr"
    run = build_store(path, n_steps=3, per_step=10, n_real=10, thumbnail_size=8)
    at = run_app(path, monkeypatch)
    steps_slider(at).set_range(2000, 3000).run()
    run.add_step(1500)
    at.run()
    assert not at.exception
    slider = steps_slider(at)
    assert slider.options == ["1,000", "1,500", "2,000", "3,000"] and slider.value == (2000, 3000)


def test_the_metrics_pickers_glossary_says_every_metric_a_step_row_holds():
    """Round BA-2: the picker listed ``real_pairwise_cosine_sd``, thresholds and counts no
    glossary entry named."""
    from engine.metrics.per_step import step_metrics
    from engine.metrics.reference import ReferenceStats
    from viewer.data.step_signals import METRIC_GLOSSARY

    rng = np.random.default_rng(0)
    real, held_out, samples = (v / np.linalg.norm(v, axis=1, keepdims=True)
                               for v in (rng.normal(size=(n, 16)) for n in (200, 50, 40)))
    row = step_metrics(samples, ReferenceStats.build(real, held_out))
    assert [name for name in row if f"`{name}`" not in METRIC_GLOSSARY] == []


def test_map_spec_cache_keeps_only_the_current_commit(tmp_path):
    """A live run's older commits are not asked for again: their map specs (the size of the map
    each, 16 kept) are dropped when a newer commit is read; at one commit the colours asked for
    stay (switching back reuses the spec, as a click or a second tab does)."""
    from streamlit.runtime.caching.cache_resource_api import get_resource_cache_stats_provider
    from streamlit.runtime.stats import CACHE_MEMORY_FAMILY

    def kept() -> int:  # cache_resource's stats: one entry per function, its entry count
        stats = get_resource_cache_stats_provider().get_stats().get(CACHE_MEMORY_FAMILY, [])
        return sum(s.byte_length for s in stats if s.cache_name.endswith("_cached_map_spec"))

    def spec(commit: commits.Commit, color: str) -> dict:
        d = map_data.map_data(path, commit)
        xy = map_data.placed(path, commit, "rectilinear")
        return figures.cached_map_spec(path, commit, "rectilinear", color, filters.Filters(), d, xy,
                                       np.ones(d.n, bool), colors.coloring(d, color), trail=np.zeros(0, np.int64),
                                       highlight=None)[0]

    path = tmp_path / "run.zarr"
    run = build_store(path, n_steps=2, per_step=10, n_real=10, thumbnail_size=8)
    figures._cached_map_spec.clear()
    for k in range(6):
        run.add_step(3000 + 1000 * k)
        commit = commits.read_commit(path)
        first = spec(commit, "step")
        spec(commit, "label")
        assert spec(commit, "step") is first  # reused at its commit
    assert kept() == 2  # the newest commit's two colours; before: 12, every commit's (up to 16)


def test_the_map_reads_the_checkpoint_table_once_a_commit(tmp_path, monkeypatch):
    """The map's read at a new commit read the checkpoint table twice (the current rows, then
    each row's checkpoint): about 7 ms of its 40 ms at 1,000 checkpoints (benchmarks/store_reads.py).
    Read once, the rows of a rewritten checkpoint's earlier version are still told apart."""
    run = build_store(tmp_path / "run.zarr", n_steps=2, per_step=5, n_real=4, thumbnail_size=4)
    run.add_step(run.steps[-1])  # the same source again: its first version's 5 rows are superseded
    reads, real = [], StoreReader.checkpoints
    monkeypatch.setattr(StoreReader, "checkpoints", lambda self: reads.append(1) or real(self))
    d = map_data.map_data(tmp_path / "run.zarr", commits.read_commit(tmp_path / "run.zarr"))
    assert len(reads) == 1
    assert d.current.tolist() == [True] * 9 + [False] * 5 + [True] * 5 and d.n_superseded == 5
    assert d.solution.tolist() == [0] * 4 + [1] * 5 + [2] * 5 + [3] * 5
