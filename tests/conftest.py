"""Tests run offline, never write to the real home directory, and use fixed seeds."""
from __future__ import annotations

import atexit
import os
import shutil
import signal
import tempfile

import pytest

# Set before anything imports huggingface_hub: a hub lookup fails at once instead of retrying.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
_home = tempfile.mkdtemp(prefix="evowatch-test-home-")
atexit.register(shutil.rmtree, _home, ignore_errors=True)
os.environ.setdefault("HF_HOME", os.path.join(_home, "hf"))
os.environ["HOME"] = _home
os.environ.setdefault("XDG_CACHE_HOME", os.path.join(_home, ".cache"))

# Started with Ctrl-C ignored (`pytest ... &` in a script), the watch processes the Ctrl-C tests
# start would inherit that and ignore the presses: a Python handler here is reset to the
# default in them at exec.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
# The same for a hang-up under `nohup pytest`: the watch processes the SIGHUP tests start would
# leave it ignored, as a watch under nohup does; pytest itself still lives on after one.
if signal.getsignal(signal.SIGHUP) is signal.SIG_IGN:
    signal.signal(signal.SIGHUP, lambda signum, frame: None)


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(0)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """`-n auto`: one worker more than cores, since about a quarter of the suite waits on
    subprocesses, browsers and live watches' polls rather than computing (on 2 cores, runs back
    to back: 440 s with 3 workers, 525 s with 2, 493 s with 4; after the split of test_pipeline.py,
    538 s with 3, 583 s with 2). At most 8: each worker imports torch, and past that the largest
    test files set the time. PYTEST_XDIST_AUTO_NUM_WORKERS still rules."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    return min(len(os.sched_getaffinity(0)) + 1, 8)
