"""Randomized run histories: the alerts a store ends with, watched pass by pass, against a fresh
ingest of the run folder as it ends (docs/metrics.md, "Alerts whose history changed").

Each seeded history is made of checkpoints (healthy or collapsed, at irregular intervals), slow
writers (a step's files written across two watches), resumes from an earlier step (the same or
another interval, once or twice, to step 0 too), hand re-samples of old steps, renames and
deletions, with `evowatch watch --once --settle 0 --encoder pixels --no-layout` after each event.
A resumed history ends with its resumed run past the abandoned run's newest step, so no step is
left undecided. The ground truth is a fresh ingest of a copy of the final folder without the
steps the resumed runs went past without rewriting (the abandoned run's, withdrawn by design).
Checked: the final alerts are the fresh ingest's, every alert announced is stored or said
withdrawn or moved (`fault_campaign.unaccounted`), and no alert withdrawn holds in the fresh
ingest unless a later event took it back and it was announced again.

    .venv/bin/python benchmarks/run_histories.py --histories 8 --seed 0
"""
from __future__ import annotations

import argparse
import contextlib
import io
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from fault_campaign import WITHDRAWN, unaccounted  # noqa: E402
from tests.sample_fixtures import smooth_images  # noqa: E402
from tests.test_alerts import untrained_blobs, watch_once, write_step  # noqa: E402

KINDS = ("plain", "slow", "resume", "resample", "rename", "delete", "mixed")
SAMPLES = 8


@dataclass
class History:
    """A run folder changed event by event, each followed by a watch; what the watches said."""
    run: Path
    store: Path
    rng: np.random.Generator
    said: list[str] = field(default_factory=list)
    abandoned: set[int] = field(default_factory=set)
    events: list[str] = field(default_factory=list)
    watched: list[int] = field(default_factory=list)  # the events before each watch

    def images(self, step: int, collapsed: bool) -> np.ndarray:
        if step == 0:
            return untrained_blobs(self.rng)
        if collapsed:
            return np.repeat(smooth_images(self.rng, 1, 32), SAMPLES, axis=0)
        return smooth_images(self.rng, SAMPLES, 32)

    def write(self, step: int, collapsed: bool, note: str = "") -> None:
        write_step(self.run, step, self.images(step, collapsed))
        self.events.append(f"{'C' if collapsed else 'H'}{step}{note}")

    def watch(self) -> None:
        from engine.cli import main

        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(watch_once(self.run, self.store))
        self.said.append(err.getvalue())
        self.watched.append(len(self.events))
        if code != 0:
            raise AssertionError(f"watch --once exited {code}: {err.getvalue()[-2000:]}")

    def steps(self) -> list[int]:
        return sorted(int(p.name.split("_")[1]) for p in self.run.glob("step_*"))


def _collapsed(rng: np.random.Generator, step: int, onset: int | None) -> bool:
    """Collapsed from ``onset`` on, with a rare healthy step among them (a recovery)."""
    return onset is not None and step >= onset and rng.random() > 0.15


def _grow(h: History, start: int, count: int, interval: int, onset: int | None,
          slow: float = 0.0) -> int:
    """``count`` checkpoints after ``start`` at irregular intervals around ``interval``, a
    watch after each; a share ``slow`` written across two watches. The newest step is returned."""
    step, pending = start, None
    for _ in range(count):
        step += int(interval * h.rng.choice([1, 1, 1, 2, 0.5]))
        collapsed = _collapsed(h.rng, step, onset)
        if pending is not None and pending[2]:  # the slow step's other half, after the next step's watch
            write_step(h.run, pending[0], pending[1])
            h.events.append(f"rest of {pending[0]}")
            pending = None
        elif pending is not None:
            pending = (*pending[:2], True)
        if pending is None and h.rng.random() < slow:
            full = h.images(step, collapsed)
            write_step(h.run, step, full[:SAMPLES // 2])
            h.events.append(f"{'C' if collapsed else 'H'}{step} half")
            pending = (step, full, False)
        else:
            h.write(step, collapsed)
        h.watch()
    if pending is not None:
        write_step(h.run, pending[0], pending[1])
        h.events.append(f"rest of {pending[0]}")
        h.watch()
    return step


def _resume(h: History, newest: int, onset: int | None) -> int:
    """A run resumed from an earlier step (0 at times), rewriting it or not, at the same or
    another interval, until past ``newest``; the old steps it went past unwritten are abandoned."""
    old = set(h.steps()) | {int(p.name.split("_")[1]) for p in (h.run.parent / "deleted").glob("step_*")}
    origin = 0 if h.rng.random() < 0.25 else int(h.rng.choice(sorted(s for s in old if s < newest)))
    interval = int(h.rng.choice([100, 150, 50]))
    written = set()
    if h.rng.random() < 0.5:
        h.write(origin, _collapsed(h.rng, origin, onset), f" resume@{origin}")
        written.add(origin)
        h.watch()
    step = origin
    while step <= newest:
        step += interval
        h.write(step, _collapsed(h.rng, step, onset), "" if written else f" resume@{origin}")
        written.add(step)
        h.watch()
    h.abandoned |= {s for s in old if origin < s < step and s not in written}
    h.abandoned -= written
    return step


def _resample(h: History, onset: int | None) -> None:
    """An old step's samples made again by hand (healthy or collapsed)."""
    step = int(h.rng.choice(h.steps()[1:]))
    h.write(step, h.rng.random() < 0.5, " resampled")
    h.watch()


def _rename(h: History) -> None:
    """A step folder renamed to a step no folder is at (a corrected step number)."""
    steps = h.steps()
    step = int(h.rng.choice(steps[1:]))
    new = step + int(h.rng.choice([-30, 20, 70, 1000]))
    if new <= 0 or new in steps:
        return
    (h.run / f"step_{step}").rename(h.run / f"step_{new}")
    h.events.append(f"mv {step}->{new}")
    h.watch()


def _delete(h: History) -> None:
    """A step folder deleted (a trainer keeping its newest few): the store keeps what it read of
    it (README), so the fresh ingest reads it from where it is kept aside."""
    step = int(h.rng.choice(h.steps()[1:]))
    (h.run.parent / "deleted").mkdir(exist_ok=True)
    (h.run / f"step_{step}").rename(h.run.parent / "deleted" / f"step_{step}")
    h.events.append(f"rm {step}")
    h.watch()


def make_history(kind: str, seed: int, root: Path) -> History:
    """One seeded history of ``kind`` in ``root`` (its run folder and store)."""
    h = History(root / "run", root / "s.zarr", np.random.default_rng(seed))
    onset = None if h.rng.random() < 0.3 else int(h.rng.choice([200, 300, 400, 500]))
    h.write(0, False)
    h.watch()
    newest = _grow(h, 0, int(h.rng.integers(4, 7)), 100, onset, slow=0.3 if kind == "slow" else 0.0)
    if kind == "mixed":
        for _ in range(int(h.rng.integers(2, 5))):
            what = h.rng.choice(["grow", "resume", "resample", "rename", "delete"])
            if what == "grow":
                _grow(h, max(h.steps()), int(h.rng.integers(1, 3)), 100, onset, slow=0.5)
            elif what == "resume" and len(h.steps()) > 2:
                _resume(h, max(h.steps()), onset)
            elif what in ("resample", "rename", "delete") and len(h.steps()) > 2:
                {"resample": lambda: _resample(h, onset), "rename": lambda: _rename(h), "delete": lambda: _delete(h)}[what]()
    elif kind == "resume":
        for _ in range(int(h.rng.integers(1, 3))):
            newest = _resume(h, newest, None if h.rng.random() < 0.3 else int(h.rng.choice([100, 200, 300, 600])))
    elif kind in ("resample", "rename", "delete"):
        act: Callable[[], None] = {"resample": lambda: _resample(h, onset), "rename": lambda: _rename(h),
                                   "delete": lambda: _delete(h)}[kind]
        for _ in range(int(h.rng.integers(1, 3))):
            act()
            if h.rng.random() < 0.5:
                newest = _grow(h, max(h.steps()), 1, 100, onset)
    return h


def fresh_alerts(h: History, root: Path) -> set[tuple[int, str]]:
    """The alerts of a fresh ingest of the run folder as it ends, the abandoned steps left out."""
    from stores.zarr_store import StoreReader

    copy = History(root / "fresh-run", root / "fresh.zarr", h.rng)
    shutil.copytree(h.run, copy.run, ignore=lambda _, names: [n for n in names if n.startswith("step_")
                                                              and int(n.split("_")[1]) in h.abandoned])
    for kept in sorted((h.run.parent / "deleted").glob("step_*")):
        if not (copy.run / kept.name).exists() and int(kept.name.split("_")[1]) not in h.abandoned:
            shutil.copytree(kept, copy.run / kept.name)
    copy.watch()
    return {(a["step"], a["rule"]) for a in StoreReader(copy.store).alerts()}


WRITES = re.compile(r"^(?:[CH]|rest of |mv \d+->)(\d+)")


def withdrawn_holding(h: History, fresh: set[tuple[int, str]]) -> list[str]:
    """Alerts said withdrawn that hold in the fresh ingest though their step was not written
    again after (a step written again may hold again, said as an onset or as a collapse going on)."""
    out = []
    for text, before in zip(h.said, h.watched):
        for line in text.splitlines():
            if (m := WITHDRAWN.search(line)) and (int(m[1]), m[3]) in fresh and \
                    not any((w := WRITES.match(event)) and int(w[1]) == int(m[1]) for event in h.events[before:]):
                out.append(line[:160])
    return out


def check(kind: str, seed: int) -> list[str]:
    """The disagreements of one history (empty: none); each names what differed."""
    from stores.zarr_store import StoreReader

    with tempfile.TemporaryDirectory(prefix="evowatch-history-") as tmp:
        h = make_history(kind, seed, Path(tmp))
        stored = {(a["step"], a["rule"]) for a in StoreReader(h.store).alerts()}
        fresh = fresh_alerts(h, Path(tmp))
        problems = []
        if stored != fresh:
            problems.append(f"stored only {sorted(stored - fresh)}, fresh only {sorted(fresh - stored)}")
        problems += unaccounted(h.said, stored)
        problems += [f"withdrawn yet holding: {line}" for line in withdrawn_holding(h, fresh)]
        if problems:
            problems.append(f"history: {' '.join(h.events)}; abandoned {sorted(h.abandoned)}")
        return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--histories", type=int, default=8, help="histories of each kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("-v", "--verbose", action="store_true", help="print each disagreement")
    args = parser.parse_args()
    print(f"{'kind':>10}{'histories':>11}{'disagree':>10}")
    for kind in args.kinds:
        bad = 0
        for seed in range(args.seed, args.seed + args.histories):
            problems = check(kind, seed)
            bad += bool(problems)
            if problems and args.verbose:
                print(f"  {kind} seed {seed}:\n    " + "\n    ".join(problems), flush=True)
        print(f"{kind:>10}{args.histories:>11}{bad:>10}", flush=True)


if __name__ == "__main__":
    main()
