"""A few fixed seeds of benchmarks/run_histories.py: a store watched event by event (slow
writers, resumes, re-samples, renames, deletions) ends with the alerts a fresh ingest of the
run folder raises, every alert announced stored or said withdrawn or moved."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from run_histories import check  # noqa: E402


@pytest.mark.parametrize("kind, seed", [("slow", 0), ("rename", 0), ("mixed", 5)])
def test_a_watched_history_ends_with_a_fresh_ingests_alerts(kind, seed):
    assert check(kind, seed) == []
