"""What one viewer session keeps as a store gains a step a commit (Streamlit AppTest, no browser).

    python benchmarks/viewer_session_memory.py [--steps 3] [--commits 100] [--every 20]

Builds a synthetic store of ``--steps`` steps, opens the page in one AppTest session, then adds a step and
reruns the page ``--commits`` times (what the live poll does at each commit). Every ``--every``
commits it prints the Steps slider's widget metadata that Streamlit keeps for the session
(entries and bytes: the metadata and its options, their formatted strings and index), the
memory ``tracemalloc`` traces as grown since the page opened (caches included), and the
process's RSS.
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streamlit.testing.v1 import AppTest  # noqa: E402

from viewer.synthetic import build_store  # noqa: E402

APP = Path(__file__).resolve().parents[1] / "viewer" / "app.py"


def deep_size(obj: object, seen: set[int]) -> int:
    """Bytes of ``obj`` and the containers and scalars it holds (not functions or modules)."""
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        size += sum(deep_size(k, seen) + deep_size(v, seen) for k, v in obj.items())
    elif isinstance(obj, (list, tuple, set)):
        size += sum(deep_size(x, seen) for x in obj)
    return size


def slider_metadata(at: AppTest) -> tuple[int, int]:
    """(entries, bytes) of the Steps slider's widget metadata the session keeps."""
    kept = [m for wid, m in at._session_state._state._new_widget_state.widget_metadata.items() if "step_range" in wid]
    seen: set[int] = set()
    return len(kept), sum(sys.getsizeof(m) + deep_size(vars(m.deserializer.__self__), seen) for m in kept)


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="steps in the store when the page opens")
    parser.add_argument("--commits", type=int, default=100)
    parser.add_argument("--every", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "run.zarr"
        run = build_store(store, n_steps=args.steps, per_step=4, n_real=4, thumbnail_size=8)
        os.environ["EVOWATCH_STORE"] = str(store)
        at = AppTest.from_file(str(APP), default_timeout=120).run()
        tracemalloc.start()
        gc.collect()
        base, start = tracemalloc.get_traced_memory()[0], time.time()
        for k in range(1, args.commits + 1):
            run.add_step((args.steps + k) * 1000)
            at.run()
            if at.exception:
                raise SystemExit(f"the page failed at commit {k}: {at.exception[0].value}")
            if k % args.every == 0:
                gc.collect()
                entries, size = slider_metadata(at)
                grown = (tracemalloc.get_traced_memory()[0] - base) / 1e6
                print(f"commit {k:,} ({args.steps + k:,} steps): Steps slider metadata {entries:,} entries, "
                      f"{size:,} bytes; traced +{grown:.2f} MB; RSS {rss_mb():.1f} MB; {time.time() - start:.0f} s",
                      flush=True)


if __name__ == "__main__":
    main()
