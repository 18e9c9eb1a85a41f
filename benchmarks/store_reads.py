"""What the viewer's refresh and an offline StoreReader spend reading a long run's store.

    .venv/bin/python benchmarks/store_reads.py [--steps 1000] [--per-step 16] [--repeat 15] [--turns 2]
        [--clock wall|cpu] [--baseline DIR]

A synthetic store of ``--steps`` checkpoints of ``--per-step`` samples (and 200 reference
images; layout, metrics, a loss log and an alert: ``viewer.synthetic.build_store``) is built
once, then each code tree measures, in a fresh interpreter:

- ``page rerun``: the viewer page (Streamlit AppTest, no browser) rerun after a step is added,
  as the live poll reruns it at each commit; ``of it, store reads``: the time spent in the
  StoreReader's methods during the rerun (outermost calls), and their count;
- ``map read``: ``viewer/data/map_data.py``'s read of the map's columns at a new commit (a new
  reader, as the viewer makes one per commit), with the times it reads the checkpoint table;
- an offline ``StoreReader``: opening it, a whole column (``samples/step``) read again, 200
  single rows of ``samples/embedding`` read one by one, the checkpoint table, ``info()``.

Medians, wall milliseconds (``--clock cpu``: the process's CPU time, all its threads, zarr's
event loop included: steadier than wall time on a machine other work loads). ``--baseline DIR``: the same on the code checked out at DIR (a
``git worktree`` of an earlier commit), the two taking turns, so both share the machine's load.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]


#: What a measurement reads: wall time, or (``--clock cpu``) the process's CPU time.
CLOCK = time.perf_counter


def _median_ms(f: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = CLOCK()
        f()
        times.append(CLOCK() - t0)
    return 1000 * statistics.median(times)


class _ReaderTime:
    """Time and calls spent in StoreReader's methods (outermost calls, any thread)."""

    def __init__(self) -> None:
        from stores.zarr_store import StoreReader

        self.seconds, self.calls, self._depth = 0.0, 0, threading.local()
        for name, member in list(vars(StoreReader).items()):
            if callable(member) and (name == "__init__" or not name.startswith("_")):
                setattr(StoreReader, name, self._timed(member))

    def _timed(self, method: Callable) -> Callable:
        @functools.wraps(method)
        def timed(*args: Any, **kwargs: Any) -> Any:
            depth = getattr(self._depth, "n", 0)
            self._depth.n, t0 = depth + 1, CLOCK()
            try:
                return method(*args, **kwargs)
            finally:
                self._depth.n = depth
                if depth == 0:
                    self.seconds, self.calls = self.seconds + CLOCK() - t0, self.calls + 1
        return timed


def measure(store: Path, repeat: int) -> dict[str, float]:
    """This process's code (its sys.path) on a copy of ``store``: medians in ms."""
    import shutil

    from streamlit.testing.v1 import AppTest

    from stores.zarr_store import StoreReader
    from viewer.data import map_data
    from viewer.data.commits import _reader, read_commit
    from viewer.synthetic import SyntheticRun

    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "run.zarr"
        shutil.copytree(store, path)
        reader = StoreReader(path)
        out["StoreReader(): open"] = _median_ms(lambda: StoreReader(path), repeat)
        out["a whole column, read again"] = _median_ms(lambda: reader.samples("step"), repeat)
        out["200 single rows of embedding"] = _median_ms(
            lambda: [reader.samples("embedding", [i]) for i in range(0, 200 * 50, 50)], max(3, repeat // 5))
        out["checkpoint table"] = _median_ms(reader.checkpoints, repeat)
        out["info()"] = _median_ms(reader.info, max(3, repeat // 3))

        table_reads, real = [], StoreReader.checkpoints
        StoreReader.checkpoints = lambda self: table_reads.append(1) or real(self)  # type: ignore[method-assign]

        def map_read() -> None:
            _reader.clear()  # a new commit: a new reader
            map_data._map_data.__wrapped__(str(path), read_commit(path), True)
        out["map read at a new commit"] = _median_ms(map_read, repeat)
        out["of it, checkpoint table reads"] = len(table_reads) / repeat
        StoreReader.checkpoints = real  # type: ignore[method-assign]

        run, spent = SyntheticRun(path, per_step=16, n_real=200, thumbnail_size=8), _ReaderTime()
        run.steps = [int(s) for s in reader.checkpoints()["step"] if s >= 0]
        os.environ["EVOWATCH_STORE"] = str(path)
        page = AppTest.from_file(str(Path.cwd() / "viewer" / "app.py"), default_timeout=300).run()  # the tree's page
        reruns, reads, calls = [], [], []
        for k in range(max(3, repeat // 2)):
            run.add_step(10_000_000 + 1000 * k)
            spent.seconds, spent.calls = 0.0, 0
            t0 = CLOCK()
            page.run()
            reruns.append(CLOCK() - t0)
            reads.append(spent.seconds)
            calls.append(spent.calls)
            if page.exception:
                raise SystemExit(f"the page failed: {page.exception[0].value}")
        out["page rerun at a new commit"] = 1000 * statistics.median(reruns)
        out["of it, store reads"] = 1000 * statistics.median(reads)
        out["of it, StoreReader calls"] = statistics.median(calls)
    return out


def run_tree(tree: Path, store: Path, repeat: int, clock: str) -> dict[str, float]:
    """:func:`measure` in a fresh interpreter importing the code at ``tree``."""
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--measure", str(store), str(repeat), clock],
                         capture_output=True, text=True, cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)})
    if out.returncode:
        raise SystemExit(f"{tree}: the measurement failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="checkpoints in the store")
    parser.add_argument("--per-step", type=int, default=16, help="samples a checkpoint")
    parser.add_argument("--repeat", type=int, default=15, help="times each read is timed")
    parser.add_argument("--turns", type=int, default=2, help="measurements of each tree, taking turns")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="time measured")
    parser.add_argument("--baseline", type=Path, help="a checkout of the code to compare with")
    parser.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        if Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:  # benchmarks/viewer.py is not the viewer
            del sys.path[0]
        global CLOCK
        CLOCK = time.process_time if args.measure[2] == "cpu" else time.perf_counter
        print(json.dumps(measure(Path(args.measure[0]), int(args.measure[1]))))
        return
    sys.path.insert(0, str(ROOT))
    from viewer.synthetic import build_store

    trees = {"before": args.baseline.resolve(), "now": ROOT} if args.baseline else {"now": ROOT}
    with tempfile.TemporaryDirectory() as work:
        store = Path(work) / "run.zarr"
        build_store(store, n_steps=args.steps, per_step=args.per_step, n_real=200, thumbnail_size=8, backlog=True)
        got: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
        for _ in range(args.turns):
            for name, tree in trees.items():
                got[name].append(run_tree(tree, store, args.repeat, args.clock))
    medians = {name: {key: statistics.median(turn[key] for turn in turns) for key in turns[0]}
               for name, turns in got.items()}
    print(f"{args.steps} checkpoints of {args.per_step} samples; {args.clock} ms, medians of {args.turns} turns")
    print("| ms | " + " | ".join(trees) + (" | now / before |" if args.baseline else " |"))
    print("|---|" + "---|" * (len(trees) + bool(args.baseline)))
    for key in medians["now"]:
        values = [medians[name].get(key, float("nan")) for name in trees]
        ratio = f" | {values[-1] / values[0]:.2f}" if args.baseline and values[0] else ""
        print(f"| {key} | " + " | ".join(f"{v:.1f}" for v in values) + ratio + " |")


if __name__ == "__main__":
    main()
