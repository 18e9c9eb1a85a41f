"""Drive the viewer in headless Chromium (Playwright): shared by the browser test and the
benchmark. Needs Debian's ``chromium`` at /usr/bin/chromium (never ``playwright install``).
"""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from viewer.data import MAP_SELECTOR

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
MAP = MAP_SELECTOR
REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def viewer_server(store: Path, home: Path, port: int | None = None, timeout: float = 60.0) -> Iterator[str]:
    """``python -m viewer.launch STORE --port P`` (what ``evowatch view`` runs); yields the URL."""
    port = port or free_port()
    env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"),
           "XDG_CONFIG_HOME": str(home / ".config")}
    log = open(home / f"viewer-{port}.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "viewer.launch", str(store), "--port", str(port)],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"viewer exited with {proc.returncode}: {(home / f'viewer-{port}.log').read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise TimeoutError("viewer did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@contextlib.contextmanager
def chromium(home: Path) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    os.environ.setdefault("HOME", str(home))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                                    env={**os.environ, "HOME": str(home)})
        try:
            yield browser
        finally:
            browser.close()


def wait_for_map(page, timeout_ms: int = 60_000) -> None:
    """Until the map's WebGL points (or its raster) have been drawn."""
    page.wait_for_function(
        f"""() => {{ const gd = document.querySelector('{MAP}');
            return gd && gd._fullData && gd._fullLayout && gd._fullData.length > 0
                   && gd.querySelector('canvas, .layer-below image, .imagelayer image'); }}""",
        timeout=timeout_ms)


def wait_for_hover_listener(page, timeout_ms: int = 20_000) -> None:
    """Until the hover component has hooked the drawn map (it mounts after the map, and a
    pointer that moves before that gets no preview until it moves again)."""
    page.wait_for_function(
        f"""() => {{ const gd = document.querySelector('{MAP}'), s = window.__evowatchHover;
            return gd && s && s.onHover && gd._ev && gd._ev.listeners('plotly_hover').includes(s.onHover); }}""",
        timeout=timeout_ms)


def drawn_points(page) -> dict[str, int]:
    """Markers drawn per map trace, from the plotly graph div."""
    pairs = page.evaluate(f"() => document.querySelector('{MAP}')._fullData.map(t => [t.name, t._length || 0])")
    return {name: int(n) for name, n in pairs}


def drag_box(page, x0: float, y0: float, x1: float, y1: float) -> None:
    """Drag a box selection on the map, corners as fractions of the plot area."""
    box = page.locator(f"{MAP} .nsewdrag").first.bounding_box()
    page.mouse.move(box["x"] + box["width"] * x0, box["y"] + box["height"] * y0)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * x1, box["y"] + box["height"] * y1, steps=8)
    page.mouse.up()


def point_pixel(page, trace: int, index: int) -> tuple[float, float]:
    """Page coordinates of one drawn point."""
    x, y = page.evaluate(
        f"""() => {{ const gd = document.querySelector('{MAP}'); const t = gd._fullData[{trace}];
            const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
            const r = gd.querySelector('.nsewdrag').getBoundingClientRect();
            return [r.left + xa.l2p(t.x[{index}]), r.top + ya.l2p(t.y[{index}])]; }}""")
    return float(x), float(y)
