"""`evowatch demo` end to end, as README's first command runs it (shortened): the trainer in a
subprocess, the live watch, the store, the closing lines."""
from __future__ import annotations

import pytest

from engine.cli import main
from stores.zarr_store import StoreReader


@pytest.mark.slow
def test_demo_trains_watches_and_says_how_to_view(tmp_path, capfd):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--steps", "500"]) == 0
    err = capfd.readouterr().err
    assert "step 250: loss_d=" in err and "ingested step 500 (step_000500): 64 samples" in err
    assert f"evowatch view {out / 'demo.zarr'}" in err
    info = StoreReader(out / "demo.zarr").info()
    assert info["steps"] == [250, 500] and info["kinds"] == {"generated": 128, "real": 1200, "holdout": 597}
    assert info["layout_rows"] == info["rows"] and info["alerts"] == []

    assert main(["-q", "demo", "--out", str(tmp_path / "quiet"), "--steps", "250"]) == 0
    err = capfd.readouterr().err
    assert "loss_d=" not in err and "ingested" not in err  # -q: errors and alerts only (and where the store is)
    assert StoreReader(tmp_path / "quiet" / "demo.zarr").info()["steps"] == [250]
