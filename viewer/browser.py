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

from viewer.data.figures import MAP_SELECTOR

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
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


def _info(page) -> dict:
    return page.evaluate(f"() => {{ const m = document.querySelector('{MAP_SELECTOR}'); return m && m.evomap ? m.evomap.info() : null; }}")


def wait_for_map(page, timeout_ms: int = 60_000, *, changed_from: str | None = None) -> None:
    """Until the map's markers (and its raster, if any) have been drawn; with
    ``changed_from`` (a spec signature from :func:`map_signature`), until a new spec is."""
    page.wait_for_function(
        f"""(old) => {{ const m = document.querySelector('{MAP_SELECTOR}');
            if (!m || !m.evomap) return false;
            const i = m.evomap.info();
            return i.draws > 0 && i.complete && i.sig !== old; }}""",
        arg=changed_from, timeout=timeout_ms)


def map_signature(page) -> str | None:
    """The drawn spec's signature (changes with the store commit, filters, colours, trail)."""
    info = _info(page)
    return info and info["sig"]


def wait_for_hover_listener(page, timeout_ms: int = 20_000) -> None:
    """Until the hover component listens to the map (it mounts after the map, and a pointer
    that moves before that gets no preview until it moves again)."""
    page.wait_for_function("() => window.__evowatchHover && window.__evowatchHover.listening", timeout=timeout_ms)


def drawn_points(page) -> dict[str, int]:
    """Markers drawn: the points (all visible rows, or the raster's sample), the instance
    trail and the query matches."""
    info = _info(page) or {}
    return {"points": int(info.get("markers", 0)), "instance trail": int(info.get("trail", 0)),
            "query match": int(info.get("highlight", 0))}


def map_draw_ms(page) -> float:
    """Milliseconds the map canvas's last full draw took (raster and markers)."""
    return float((_info(page) or {}).get("drawMs") or 0.0)


def band_labels(page) -> list[str]:
    """The band names the map draws now (a subset when bands are narrow)."""
    return list((_info(page) or {}).get("labels", []))


def ring_names(page) -> list[str]:
    """The ring names the radial map draws now (newest first; a subset when rings are close)."""
    return list((_info(page) or {}).get("rings", []))


def map_tool(page, name: str) -> None:
    """Press one of the map's tool buttons: box, lasso, pan, reset, clear."""
    page.locator(f"{MAP_SELECTOR} .evomap-tools button", has_text=name).click()


def drag_path(page, points: list[tuple[float, float]], tool: str = "box") -> None:
    """Drag on the map with ``tool`` through ``points`` (fractions of the plot area)."""
    map_tool(page, tool)
    box = page.evaluate(f"() => document.querySelector('{MAP_SELECTOR}').evomap.plotRect()")
    at = [(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy) for fx, fy in points]
    page.mouse.move(*at[0])
    page.mouse.down()
    for x, y in at[1:]:
        page.mouse.move(x, y, steps=max(1, 8 // (len(at) - 1)))
    page.mouse.up()


def drag_box(page, x0: float, y0: float, x1: float, y1: float) -> None:
    """Drag a box selection on the map, corners as fractions of the plot area."""
    drag_path(page, [(x0, y0), (x1, y1)], "box")


def point_pixel(page, index: int) -> tuple[float, float]:
    """Page coordinates of the ``index``-th drawn marker (markers are in row order)."""
    x, y = page.evaluate(f"(i) => document.querySelector('{MAP_SELECTOR}').evomap.pixelOf(i)", index)
    return float(x), float(y)
