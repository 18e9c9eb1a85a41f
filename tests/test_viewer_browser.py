"""End to end in a real browser: `evowatch view` on a small store, driven by Playwright.

Debian's chromium (/usr/bin/chromium) is started by the test; the screenshot lands in
artifacts/viewer_browser.png.
"""
from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from viewer import browser
from viewer.synthetic import build_store

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(browser.CHROMIUM),
                       reason="needs Debian chromium at /usr/bin/chromium (apt-get install -y chromium)"),
]
pytest.importorskip("playwright.sync_api")

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
PER_STEP, N_REAL = 40, 30
#: An element the page's current run drew, not one kept (stale, dimmed) from an earlier run until replaced.
FRESH = '[data-testid="stElementContainer"][data-stale="false"]'


@pytest.fixture(scope="module")
def chrome(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """One chromium for the module (starting one took 2-4 s a test); each page gets a context of
    its own (``new_page``), closed at the end of its test (:func:`served`)."""
    with browser.chromium(tmp_path_factory.mktemp("chromium-home")) as chrome:
        yield chrome


@contextlib.contextmanager
def served(store: Path, tmp_path: Path, chrome) -> Iterator[str]:
    """`evowatch view STORE`'s server: its url; the pages the test opened in ``chrome`` are
    closed before the server stops."""
    home = tmp_path / "home"
    home.mkdir()
    with browser.viewer_server(store, home) as url:
        try:
            yield url
        finally:
            for context in chrome.contexts:
                context.close()


def open_page(chrome, url: str, width: int, height: int, wait: bool = True):
    """A page of ``width`` x ``height`` on the viewer, its map drawn unless ``wait`` is False."""
    page = chrome.new_page(viewport={"width": width, "height": height})
    page.goto(url, wait_until="domcontentloaded")
    if wait:
        browser.wait_for_map(page)
    return page


def total(page) -> int:
    return sum(n for name, n in browser.drawn_points(page).items() if name not in ("instance trail", "query match"))


def test_view_hover_select_and_live_update(tmp_path, chrome):
    store = tmp_path / "run.zarr"
    run = build_store(store, n_steps=3, per_step=PER_STEP, n_real=N_REAL, thumbnail_size=24)
    with served(store, tmp_path, chrome) as url:
        page = open_page(chrome, url, 1400, 1500)
        assert total(page) == 3 * PER_STEP + N_REAL
        page.evaluate("() => { window.__evowatchNoReload = true; }")

        # Hover: a floating preview with the point's thumbnail from the store.
        browser.wait_for_hover_listener(page)
        x, y = browser.point_pixel(page, N_REAL + 3)  # markers in row order: the reference, then step 1,000
        page.mouse.move(x - 20, y - 20)
        page.mouse.move(x, y, steps=4)
        page.wait_for_selector("#evowatch-hover-tip img[src^='data:image/png']", state="visible", timeout=20_000)
        assert re.search(r"step 1,000", page.inner_text("#evowatch-hover-tip"))

        # Click one sample (step 2,000): its instance's trail across the three steps.
        x, y = browser.point_pixel(page, N_REAL + PER_STEP + 3)
        page.mouse.move(x, y, steps=3)
        page.wait_for_selector("#evowatch-hover-tip:has-text('step 2,000')", state="visible", timeout=20_000)
        page.mouse.click(x, y)
        page.get_by_text(re.compile(r"Instance \d+ across 3 steps")).first.wait_for(timeout=20_000)
        page.wait_for_selector(".st-key-trail_grid img", timeout=10_000)
        page.mouse.move(5, 5)

        # Lasso around the middle of the map -> some samples; "clear" empties the selection.
        browser.drag_path(page, [(0.3, 0.05), (0.7, 0.05), (0.7, 0.95), (0.3, 0.95), (0.3, 0.06)], "lasso")
        lasso = page.get_by_text(re.compile(r"Selection · [1-9][\d,]* samples")).first
        lasso.wait_for(timeout=20_000)
        n_lasso = int(re.search(r"([\d,]+) samples", lasso.inner_text()).group(1).replace(",", ""))
        assert 0 < n_lasso < 3 * PER_STEP + N_REAL
        browser.map_tool(page, "clear")
        page.get_by_text("Selection · 0 samples").first.wait_for(timeout=20_000)

        # Zoom in with the wheel, box the whole plot: exactly the markers in view are selected
        # (the page resolves the box's data coordinates, so the canvas's transform must agree).
        rect = page.evaluate(f"() => document.querySelector('{browser.MAP_SELECTOR}').evomap.plotRect()")
        page.mouse.move(rect["x"] + rect["width"] * 0.4, rect["y"] + rect["height"] * 0.5)
        page.mouse.wheel(0, -400)
        in_view = page.evaluate(f"""() => {{ const m = document.querySelector('{browser.MAP_SELECTOR}').evomap, r = m.plotRect();
            let n = 0; for (let i = 0; i < m.info().markers; i++) {{ const [x, y] = m.pixelOf(i);
              if (x >= r.x && x <= r.x + r.width && y >= r.y && y <= r.y + r.height) n++; }} return n; }}""")
        assert 0 < in_view < 3 * PER_STEP + N_REAL
        browser.drag_box(page, 0.0, 0.0, 1.0, 1.0)
        page.get_by_text(f"Selection · {in_view} samples").first.wait_for(timeout=20_000)
        browser.map_tool(page, "clear")
        browser.map_tool(page, "reset")
        page.get_by_text("Selection · 0 samples").first.wait_for(timeout=20_000)

        # Box selection over the reference band and the first step -> thumbnail grid.
        browser.drag_box(page, 0.02, 0.05, 0.45, 0.95)
        try:
            page.wait_for_selector(".st-key-thumb_grid img", timeout=30_000)
        except Exception:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "viewer_browser_failed.png"))
            raise
        heading = page.get_by_text(re.compile(r"Selection · [1-9][\d,]* samples")).first
        heading.wait_for(timeout=10_000)
        n_selected = int(re.search(r"([\d,]+) samples", heading.inner_text()).group(1).replace(",", ""))
        assert n_selected >= N_REAL
        assert page.locator(".st-key-thumb_grid img").count() == min(n_selected, 60)
        with page.expect_download(timeout=20_000) as download:  # right after the trail click and the box
            # this selection's link: the page's earlier one stays shown (stale) until the rerun replaces it
            page.locator(f"{FRESH} a.evowatch-export", has_text="Export selection (CSV)").click()
        exported = Path(download.value.path()).read_text().splitlines()
        assert exported[0].startswith("row,step,kind") and len(exported) == n_selected + 1
        export_url = download.value.url

        # The watcher commits a new checkpoint (samples and layout): a new band, no reload;
        # the selection and the trail are kept, the trail now runs through four steps.
        run.add_step(4000)
        page.wait_for_function(
            f"() => {{ const m = document.querySelector('{browser.MAP_SELECTOR}');"
            f" return m && m.evomap && m.evomap.info().markers === {4 * PER_STEP + N_REAL}; }}", timeout=30_000)
        assert page.evaluate("() => window.__evowatchNoReload === true"), "the page reloaded"
        assert "4,000" in browser.band_labels(page)
        assert browser.drawn_points(page)["instance trail"] == 4
        page.get_by_text(f"Selection · {n_selected:,} samples").first.wait_for(timeout=10_000)
        page.get_by_text(re.compile(r"Instance \d+ across 4 steps")).first.wait_for(timeout=10_000)
        # the export's address from before the commit still serves it: a click between a commit's
        # rerun and the button's new address failed (~1 in 10 under a watch committing every 1-2 s)
        again = page.request.get(export_url)
        assert again.ok and again.text().splitlines() == exported, again.status
        page.wait_for_timeout(1000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "viewer_browser.png"))  # (a full-page capture re-lays out the page)

        # Click a step on the signals chart: the map shows that step (and the reference) only.
        chart = ".st-key-signals_metrics .evolines"
        page.locator(chart).scroll_into_view_if_needed()
        page.locator(chart).screenshot(path=str(ARTIFACTS / "viewer_signals.png"))
        # Its tooltips stay inside the chart: the newest point's, and the alert step's long text (it was
        # cut at the window's edge).
        inside = f"""() => {{ const c = document.querySelector('{chart}'), t = c.querySelector('.evolines-tip');
            const a = c.getBoundingClientRect(), b = t.getBoundingClientRect();
            return t.style.display === 'block' && b.left >= a.left - 1 && b.right <= a.right + 1; }}"""
        for j in (2, 1):
            x, y = page.evaluate(f"() => document.querySelector('{chart}').evolines.pixelOf(0, {j})")
            page.mouse.move(x, y)
            assert page.evaluate(inside), j
        assert "ALERT memorisation: 12% of samples" in page.inner_text(f"{chart} .evolines-tip")
        x, y = page.evaluate(f"() => document.querySelector('{chart}').evolines.pixelOf(0, 1)")  # step 2,000
        page.mouse.click(x, y)
        page.get_by_text("Showing step 2,000 only").wait_for(timeout=20_000)
        page.wait_for_function(
            f"() => document.querySelector('{browser.MAP_SELECTOR}').evomap.info().markers === {PER_STEP + N_REAL}",
            timeout=20_000)


def test_a_long_runs_instance_trail_reads_black(tmp_path, chrome):
    """2,000 steps: a trail's dots lie under a pixel apart, and each dot's white outline, drawn
    dot by dot, painted over the black of the dots before it: the trail read white (only its
    last dot black) and hid the instance it follows."""
    import io

    from PIL import Image

    store = tmp_path / "long.zarr"
    n_steps, per_step, n_real = 2000, 4, 10
    build_store(store, n_steps=n_steps, per_step=per_step, n_real=n_real, thumbnail_size=8, backlog=True)
    with served(store, tmp_path, chrome) as url:
        page = open_page(chrome, url, 1280, 720)
        sig = browser.map_signature(page)
        page.mouse.click(*browser.point_pixel(page, n_real + (n_steps - 1) * per_step + 3))  # the newest step
        browser.wait_for_map(page, changed_from=sig)
        assert browser.drawn_points(page)["instance trail"] == n_steps
        page.mouse.move(5, 5)  # no hover ring or tip over the trail
        page.wait_for_function("() => !document.querySelector('#evowatch-hover-tip')"
                               " || document.querySelector('#evowatch-hover-tip').style.display === 'none'")
        centres = page.evaluate(f"""() => {{ const m = document.querySelector('{browser.MAP_SELECTOR}').evomap,
            b = m.overlay.getBoundingClientRect(), t = m.spec.trail;
            return t.x.map((x, j) => [b.left + m.sx(x), b.top + m.sy(t.y[j])]); }}""")
        ARTIFACTS.mkdir(exist_ok=True)
        png = page.screenshot(path=str(ARTIFACTS / "viewer_long_trail.png"))
        shot = Image.open(io.BytesIO(png)).convert("L")  # what the user sees, at 1 px per CSS px
        grey = [shot.getpixel((round(x), round(y))) for x, y in centres]
        light = [j for j, g in enumerate(grey) if g > 80]
        assert len(light) <= n_steps // 100, (len(light), light[:10])  # black, #111, up to antialiased edges


def test_view_waits_for_a_store_that_does_not_exist_yet(tmp_path, chrome):
    """`evowatch view STORE` started before `evowatch watch --store STORE`: the server starts,
    the page says what it waits for, and shows the store once it appears (no reload)."""
    store = tmp_path / "later.zarr"
    with served(store, tmp_path, chrome) as url:
        page = open_page(chrome, url, 1280, 720, wait=False)
        page.get_by_text(f"No store at {store} yet: waiting for").wait_for(timeout=30_000)
        page.evaluate("() => { window.__evowatchNoReload = true; }")
        build_store(store, n_steps=2, per_step=PER_STEP, n_real=N_REAL, thumbnail_size=8)
        browser.wait_for_map(page, timeout_ms=30_000)
        for _ in range(60):  # the page may have drawn the store while it was being written (one step of two)
            if total(page) == 2 * PER_STEP + N_REAL:
                break
            page.wait_for_timeout(500)
        assert total(page) == 2 * PER_STEP + N_REAL
        assert page.evaluate("() => window.__evowatchNoReload === true"), "the page reloaded"
        assert page.get_by_text("No store at").count() == 0


def test_errors_of_a_store_gone_for_a_moment_leave_once_it_is_back(tmp_path, chrome):
    """A store moved away and back unchanged (a sync, a network drive's hiccup) while a
    sample was clicked: the status line said live again, but the trail panel's "no such
    store" stayed for good (the counts had not moved, so nothing reran)."""
    import shutil

    store, away = tmp_path / "s.zarr", tmp_path / "away.zarr"
    build_store(store, n_steps=2, per_step=PER_STEP, n_real=N_REAL, thumbnail_size=8)
    with served(store, tmp_path, chrome) as url:
        page = open_page(chrome, url, 1280, 900)
        shutil.move(store, away)
        page.get_by_text("no such store").first.wait_for(timeout=15_000)
        x, y = page.evaluate(f"() => document.querySelector('{browser.MAP_SELECTOR}').evomap.pixelOf({N_REAL + 3})")
        page.mouse.click(x, y)
        # the click's rerun, on the store gone: the panels' error beside the live line's warning
        page.wait_for_function("() => [...document.querySelectorAll(\"[data-testid='stMain'] "
                               "[data-testid='stAlertContainer']\")].filter(e => e.innerText.includes("
                               "'no such store')).length >= 2", timeout=15_000)
        shutil.move(away, store)
        page.wait_for_function("() => !document.querySelector(\"[data-testid='stMain']\").innerText"
                               ".includes('no such store')", timeout=20_000)


def test_an_export_the_server_refuses_says_why_in_a_tab(tmp_path, chrome):
    """Export selection (CSV) clicked after the store was made again (before the page's rerun
    drops the link): the route's 409 line, "select again on the page", never showed. The
    link's ``download`` attribute made Chromium save the error as a failed download, silently;
    without it the CSV still downloads (Content-Disposition) and a refusal opens in a tab."""
    import shutil

    store = tmp_path / "run.zarr"
    build_store(store, n_steps=2, per_step=PER_STEP, n_real=N_REAL, thumbnail_size=8)
    with served(store, tmp_path, chrome) as url:
        page = open_page(chrome, url, 1280, 900)
        browser.drag_box(page, 0.0, 0.0, 1.0, 1.0)
        link = page.get_by_role("link", name="Export selection (CSV)")
        link.wait_for(timeout=60_000)  # the selection's rerun: past 30 s on 2 cores shared with other tests
        with page.expect_download(timeout=20_000) as download:
            link.click()
        assert len(Path(download.value.path()).read_text().splitlines()) == 2 * PER_STEP + N_REAL + 1
        stale = link.evaluate("a => a.outerHTML")  # the link as the page showed it before the store changed
        shutil.rmtree(store)
        build_store(store, n_steps=2, per_step=PER_STEP, n_real=N_REAL, thumbnail_size=8, seed=1)
        page.evaluate("""(html) => { const box = document.createElement('div'); box.innerHTML = html;
            box.firstChild.id = 'stale-export'; document.body.appendChild(box.firstChild); }""", stale)
        with page.context.expect_page(timeout=10_000) as opened:
            page.evaluate("() => document.getElementById('stale-export').click()")
        opened.value.wait_for_load_state()
        assert "the store was made again since this selection; select again on the page" in \
            opened.value.inner_text("body")


def test_the_steps_filter_follows_steps_a_watcher_adds(tmp_path, chrome):
    """A run watched live from its first step: each `watch` pass commits a step's samples and
    then its layout, and the Steps filter, drawn at 100-200, kept that range while the map's
    steps grew (a select slider is known to the browser by its key alone)."""
    import numpy as np
    from PIL import Image

    from engine.cli import main

    run, store = tmp_path / "run", tmp_path / "s.zarr"

    def add_step(k: int) -> None:
        folder = run / f"step_{k * 100}"
        folder.mkdir(parents=True)
        rng = np.random.default_rng(k)
        for i in range(8):
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
        # --settle 0: the files are complete when written (old times did not spare the 2 s wait:
        # a file's change time counts)
        assert main(["-q", "watch", str(run), "--store", str(store), "--once", "--encoder", "pixels",
                     "--no-metrics", "--settle", "0"]) == 0

    add_step(1)
    with served(store, tmp_path, chrome) as url:
        page = open_page(chrome, url, 1280, 900)
        markers = f"document.querySelector('{browser.MAP_SELECTOR}').evomap.info().markers"
        live = ("[...document.querySelectorAll('[data-testid=stCaptionContainer]')].map(e => e.innerText)"
                ".find(t => t.startsWith('● live ·'))")  # its "checked HH:MM:SS" moves at each poll
        for k in range(2, 5):
            add_step(k)
            page.wait_for_function(f"() => {markers} === {8 * k}", timeout=30_000)
            # the page's next poll, which sent the slider's old range back, and the map after it
            page.wait_for_function(f"(seen) => {{ const t = {live}; return t && t !== seen; }}",
                                   arg=page.evaluate(f"() => {live}"), timeout=30_000)
            assert page.evaluate(f"() => {markers}") == 8 * k


def test_a_narrowed_steps_range_keeps_its_ends_as_the_slider_changes_key(tmp_path, chrome):
    """Round BO: the Steps slider is drawn under two keys in turn, one per change of the steps, so a
    key comes back after one commit: the browser must start it from the range carried over (the
    narrowed lower end kept, the open upper end on the newest step), and a move sent as a step is
    committed is kept."""
    store = tmp_path / "run.zarr"
    run = build_store(store, n_steps=3, per_step=8, n_real=8, thumbnail_size=8)
    thumbs = "[data-testid=stSidebar] [data-testid=stSlider] input[type=range]"

    def wait_for_markers(n: int) -> None:
        page.wait_for_function(f"() => document.querySelector('{browser.MAP_SELECTOR}').evomap.info().markers === {n}",
                               timeout=30_000)

    def wait_for_ends(lo: str, hi: str) -> None:  # the old slider stays until the run ends
        page.wait_for_function(f"""() => [...document.querySelectorAll('{thumbs}')]
            .map(t => t.getAttribute('aria-valuetext')).join() === '{lo},{hi}'""", timeout=30_000)

    with served(store, tmp_path, chrome) as url:
        page = open_page(chrome, url, 1280, 900)
        page.locator(thumbs).first.focus()
        page.keyboard.press("ArrowRight")  # 2,000 - 3,000
        wait_for_markers(8 + 2 * 8)
        for step in (4000, 5000, 6000):  # keys b, a, b
            run.add_step(step)
            wait_for_markers(8 + 8 * (step // 1000 - 1))
            wait_for_ends("2,000", f"{step:,}")
        page.locator(thumbs).nth(1).focus()
        page.keyboard.press("ArrowLeft")  # to 5,000, as 7,000 is committed
        run.add_step(7000)
        page.locator("[data-testid=stSidebar] [data-testid=stSliderTickBar]", has_text="7,000").wait_for(timeout=30_000)
        wait_for_ends("2,000", "5,000")
        wait_for_markers(8 + 4 * 8)


def test_a_compare_choice_holds_in_the_browser(tmp_path, chrome):
    """Round BW7: a Compare choice around an alert compared its steps for one run only: the Step B
    picker kept showing the range's end and sent it back at the next click; a step before the
    onset landing late renamed the choice, and the page fell back to the Steps range's ends."""
    import time

    from viewer.synthetic import SyntheticRun

    run = SyntheticRun(tmp_path / "late.zarr", per_step=8, n_real=8, thumbnail_size=8)
    with run.writing() as store:
        run.add_reference()
        run.add_steps([1000, 3000, 4000])
        store.set_alerts([{"step": 3000, "rule": "memorisation", "value": 0.1, "message": "copies at step 3000"}])

    def pick(label: str, option: str) -> None:  # a dropdown opened during a rerun closes: open it again
        for _ in range(5):
            page.get_by_role("combobox", name=label, exact=True).click()
            with contextlib.suppress(Exception):
                page.get_by_role("option").filter(has_text=option).first.click(timeout=8_000)
                return
            page.keyboard.press("Escape")
        raise AssertionError(f"no option {option!r} in {label}")

    def compared() -> tuple[str, ...]:  # the pickers as shown, and the steps of the mosaics drawn
        pickers = [page.get_by_role("combobox", name=label, exact=True).input_value() for label in ("Step A", "Step B")]
        return (*pickers, *page.locator(f"{FRESH} [data-testid=stImageCaption]").all_inner_texts())

    def wait_for(expected: tuple[str, ...]) -> None:
        deadline = time.monotonic() + 30
        while compared() != expected and time.monotonic() < deadline:
            time.sleep(0.5)
        assert compared() == expected

    with served(run.path, tmp_path, chrome) as url:
        page = open_page(chrome, url, 1280, 900)
        page.get_by_text("Step comparison").first.click()
        pick("Compare", "memorisation")
        wait_for(("1,000", "3,000", "step 1,000", "step 3,000"))
        pick("Colour by", "label")  # another widget's rerun
        wait_for(("1,000", "3,000", "step 1,000", "step 3,000"))
        run.add_step(2000)  # a checkpoint of an earlier step, written late
        wait_for(("2,000", "3,000", "step 2,000", "step 3,000"))
        assert "memorisation" in page.get_by_role("combobox", name="Compare", exact=True).input_value()


def test_radial_rings_are_named_as_room_allows(tmp_path, chrome):
    """Radial layout: the rings carry their steps (1,000 style) on the ray above the centre,
    the newest always, the others as far as their spacing allows; zooming in names those
    left out."""
    store = tmp_path / "many.zarr"
    # the 40 steps in one commit (backlog): the rings are named from the store, however it was committed
    build_store(store, n_steps=40, per_step=8, n_real=10, thumbnail_size=8, backlog=True)
    with served(store, tmp_path, chrome) as url:
        page = open_page(chrome, url, 1280, 720)
        sig = browser.map_signature(page)
        page.get_by_text("radial", exact=True).click()
        browser.wait_for_map(page, changed_from=sig)
        names = browser.ring_names(page)
        assert names and names[0] == "40,000" and all(re.fullmatch(r"real|\d{1,3}(,\d{3})*", n) for n in names)
        assert 2 < len(names) < 41  # a subset: 41 names do not fit on one radius
        rect = page.evaluate(f"() => document.querySelector('{browser.MAP_SELECTOR}').evomap.plotRect()")
        page.mouse.move(rect["x"] + rect["width"] / 2, rect["y"] + rect["height"] / 2)
        page.mouse.wheel(0, -600)
        page.wait_for_function(f"""(old) => document.querySelector('{browser.MAP_SELECTOR}').evomap.info().rings
                                       .some((name) => !old.includes(name))""", arg=names, timeout=10_000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "viewer_radial_zoomed.png"))


def test_map_and_its_tools_fit_a_1280x720_screen(tmp_path, chrome):
    """A laptop's first screen: with the alert list of a collapsing run above it, the whole
    map (legend and tools included) shows without scrolling; a larger screen keeps the full
    620 px map."""
    from stores.zarr_store import StoreWriter

    store = tmp_path / "collapse.zarr"
    run = build_store(store, n_steps=12, per_step=20, n_real=N_REAL, thumbnail_size=8, step_every=250, alerts=False,
                      backlog=True)  # the steps in one commit: what is checked is the page over the store
    with StoreWriter(store, run.encoder, thumbnail_size=8) as w:
        # a collapse that trips three rules: their onsets and the newest, long lines that wrap (6
        # listed, 10 lines, pushed the map's lower half off the screen until the list scrolled)
        w.set_alerts([alert for s in range(1500, 3001, 250) for alert in (
            {"step": s, "rule": "collapse", "value": 0.02, "message": f"diversity fell 97% below the real reference's "
             f"by step {s}: mean pairwise cosine distance 0.0154 vs 0.509 (best so far 0.543 at step 1000)"},
            {"step": s, "rule": "fd_rising", "value": 0.9, "message": f"FD rose for 3 consecutive checkpoints: 0.1039 "
             f"at step 500 -> 0.8936 at step {s} (+760%)"},
            {"step": s, "rule": "label_drift", "value": 0.9, "message": f"label shares drifted from the reference at "
             f"step {s} (total variation 0.90 > 0.32): '8' 100% vs 10%, '1' 0% vs 12%"})])
    rect = f"""(sel) => {{ const r = document.querySelector('{browser.MAP_SELECTOR}' + sel).getBoundingClientRect();
                        return [r.top, r.bottom, r.left, r.right]; }}"""
    with served(store, tmp_path, chrome) as url:
        for width, height in ((390, 844), (800, 900), (1280, 720), (1920, 1080)):
            page = open_page(chrome, url, width, height)
            page.get_by_text("Showing 6 of 21 alerts").wait_for(timeout=10_000)
            top, bottom, _, _ = page.evaluate(rect, "")
            tools_top, tools_bottom, tools_left, _ = page.evaluate(rect, " .evomap-tools")
            *_, legend_right = page.evaluate(rect, " .evomap-legend")
            assert legend_right < tools_left, (width, legend_right, tools_left)  # the tools covered the legend at 800 px
            names = browser.band_labels(page)  # as room allows: at 390 px all 13 ran together; the newest was left out
            assert names[0] == "real" and names[-1] == "3,000", (width, names)
            assert len(names) < 13 if width == 390 else len(names) == 13, (width, names)
            named = [int(name.replace(",", "")) for name in names[1:]]  # round AQ: one stride, counted back
            assert len({b - a for a, b in zip(named, named[1:])}) == 1, (width, names)  # from the newest
            if width < 1280:
                page.close()
                continue
            assert 0 < top and tools_bottom <= bottom <= height, (width, height, top, bottom)
            assert page.locator(f"{browser.MAP_SELECTOR} .evomap-tools button", has_text="lasso").is_visible()
            if height == 720:
                assert bottom - top >= 300
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "viewer_1280x720.png"))
            else:
                assert bottom - top == 620  # the full map where there is room
            page.close()


def test_a_signal_flat_but_for_float_rounding_is_drawn_flat(tmp_path, chrome):
    """Round AQ: label_tv 0.7966666666666666 at some steps, ...67 at others (one ULP apart):
    the chart's ticks stepped below the floats' spacing and never moved on; the signals
    section became "BidiComponent Error: Invalid array length" after 14 s."""
    import numpy as np

    from stores.zarr_store import StoreWriter
    from viewer.synthetic import SyntheticRun

    store = tmp_path / "s.zarr"
    run = SyntheticRun(store, per_step=20, n_real=20, thumbnail_size=8, metrics=False)
    run.add_reference()
    run.add_steps([1000, 2000, 3000])
    with StoreWriter(store, run.encoder, thumbnail_size=8) as writer:
        for step, value in ((1000, 0.7966666666666666), (2000, 0.7966666666666667), (3000, 0.7966666666666666)):
            writer.write_step_metrics(step, {"vendi": value, "recall": 0.5 + step / 1e4})
        writer.write_scalars({"step": np.array([1000, 2000, 3000]), "grad_norm_sq": np.full(3, 1e20)})  # round AS:
        # flat at 1e20, the ±0.5 its range was widened by was lost to rounding: an empty panel
    with served(store, tmp_path, chrome) as url:
        page = open_page(chrome, url, 1400, 1000)
        chart = ".st-key-signals_metrics .evolines"
        for chart in (".st-key-signals_metrics .evolines", ".st-key-signals_losses .evolines"):
            page.wait_for_function(f"() => {{ const c = document.querySelector('{chart}'); if (!c || !c.evolines)"
                                   " return false; const p = c.evolines.pixelOf(0, 2);"
                                   " return p && Number.isFinite(p[1]); }", timeout=30_000)
        assert "Invalid array length" not in page.inner_text("body")
