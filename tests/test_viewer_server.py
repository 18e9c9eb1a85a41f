"""`evowatch view` serves the page with a modulepreload header for the map component's chunk."""
from __future__ import annotations

import re
import urllib.request

import pytest

from viewer import browser
from viewer.synthetic import build_store

pytestmark = pytest.mark.slow


def test_page_names_the_component_chunk_for_modulepreload(tmp_path):
    store = tmp_path / "run.zarr"
    build_store(store, n_steps=2, per_step=10, n_real=5, thumbnail_size=8)
    home = tmp_path / "home"
    home.mkdir()
    with browser.viewer_server(store, home) as url:
        with urllib.request.urlopen(url, timeout=10) as page:
            link = page.headers.get("Link", "")
            assert page.headers.get_content_type() == "text/html"
        match = re.fullmatch(r"<(static/js/BidiComponent\.[\w-]+\.js)>; rel=modulepreload", link)
        assert match, link
        with urllib.request.urlopen(url + match.group(1), timeout=10) as chunk:  # the file Streamlit imports
            assert chunk.status == 200 and "javascript" in chunk.headers.get_content_type()
        with urllib.request.urlopen(url + "_stcore/health", timeout=10) as health:  # not on other responses
            assert "Link" not in health.headers
