"""What a live ``evowatch watch`` holds as the run grows: a watch left running for days must
not grow with the number of checkpoints it has seen.

    .venv/bin/python benchmarks/watch_resources.py [--checkpoints 2000] [--every 250] [--kills 6] [--viewer]
    .venv/bin/python benchmarks/watch_resources.py --keep 5 --burst 5   # a trainer keeping its newest 5

A real ``evowatch watch RUN --store S`` subprocess (the tiny random CLIP the tests use,
``--real``, layout and signals on, ``--on-alert true``, default decode workers) is started on
an empty run; checkpoints of 8 PNGs (``benchmarks/long_run.py``'s) are written into it in
bursts of ``--burst`` (renamed into place), each burst waited for until it is committed, the
second half collapsed (alerts, and their command). Every ``--every``
checkpoints it samples the watch's RSS, open descriptors, threads, child processes (and
zombies among them), the files in its ``TMPDIR``, the store's files and bytes per row, the
files in the run that the watch wrote, and the seconds per checkpoint over the last window.
With ``--viewer`` an ``evowatch view`` of the store runs beside it with a Chromium page open
(it reloads as rows arrive) and its Streamlit process's RSS is sampled too; at the end a
viewer started afresh on the final store gives what its rows alone take.
With ``--kills K`` the watch is then SIGKILLed K times at a random moment while checkpoints
land and started again; after each restart it counts what is left in the store, the run and
``TMPDIR`` beyond the committed rows (staging folders, lock files, temp files).
The table's last row is the growth per 1,000 checkpoints (the last sample against the
first, over the checkpoints between).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.ingest import _alive, _children  # noqa: E402
from benchmarks.long_run import SAMPLES, TINY_CLIP, write_checkpoint, write_images  # noqa: E402

EVOWATCH = [sys.executable, "-m", "engine.cli"]
INCOMING = ".incoming"  # checkpoints are written here, then renamed into the run


def committed_rows(store: Path) -> int:
    """The store's committed row count (0 before the store exists)."""
    try:
        return int(json.loads((store / "zarr.json").read_text())["attributes"]["committed"]["rows"])
    except (OSError, ValueError, KeyError):
        return 0


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (decode workers, the writer process, --on-alert commands)."""
    found, todo = [], [pid]
    while todo:
        with contextlib.suppress(OSError):
            kids = _children(todo.pop())
            found += kids
            todo += kids
    return found


def status_field(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise KeyError(name)


def files_and_bytes(folder: Path) -> tuple[int, int]:
    n = size = 0
    for dirpath, _, names in os.walk(folder):
        for name in names:
            with contextlib.suppress(OSError):
                size += os.lstat(os.path.join(dirpath, name)).st_size
                n += 1
    return n, size


def lasting_zombies(watch: int, wait_s: float = 5.0) -> int:
    """Children that exited and are still not reaped ``wait_s`` later (the decode workers of a
    pass just committed are reaped as the pass ends)."""
    zombies = {k for k in descendants(watch) if not _alive(k)}
    end = time.monotonic() + wait_s
    while zombies and time.monotonic() < end:
        time.sleep(0.2)
        zombies &= {k for k in descendants(watch) if not _alive(k)}
    return len(zombies)


def sample(watch: int, store: Path, run: Path, tmp: Path, written: int, viewer: int | None) -> dict[str, float]:
    zombies = lasting_zombies(watch)
    kids = descendants(watch)
    rows = max(committed_rows(store), 1)
    n_files, n_bytes = files_and_bytes(store)
    ours = {p.name for p in run.iterdir()} - {INCOMING, "losses.jsonl"}
    out = {
        "checkpoints": written,
        "RSS MB": status_field(watch, "VmRSS") / 1024,
        "open fds": len(os.listdir(f"/proc/{watch}/fd")),
        "threads": status_field(watch, "Threads"),
        "children": len(kids),
        "zombies": zombies,
        "TMPDIR files": sum(1 for _ in tmp.rglob("*")),
        "run files not written here": sum(not n.startswith("step_") for n in ours),
        "store files / row": n_files / rows,
        "store bytes / row": n_bytes / rows,
    }
    if viewer is not None:
        out["viewer RSS MB"] = status_field(viewer, "VmRSS") / 1024
    return out


def start_watch(run: Path, store: Path, work: Path, tmp: Path) -> subprocess.Popen:
    log = open(work / "watch.err", "a")
    env = {**os.environ, "TMPDIR": str(tmp)}
    return subprocess.Popen([*EVOWATCH, "-q", "watch", str(run), "--store", str(store), "--encoder", TINY_CLIP,
                             "--real", str(work / "real"), "--on-alert", "true", "--settle", "1"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)


class Trainer:
    """Writes checkpoints into the run: noisy copies of a base batch, collapsed from ``collapse_at``;
    with ``keep``, only the newest ``keep`` are left (a trainer rotating its checkpoints)."""

    def __init__(self, run: Path, collapse_at: int, keep: int = 0) -> None:
        self.run, self.collapse_at, self.keep, self.written = run, collapse_at, keep, 0
        self.rng = np.random.default_rng(0)
        self.base = self.rng.integers(0, 256, (SAMPLES, 32, 32, 3), dtype=np.uint8)
        (run / INCOMING).mkdir(parents=True, exist_ok=True)

    def write(self) -> None:
        base = self.base if self.written < self.collapse_at else self.base[:1].repeat(SAMPLES, 0)
        write_checkpoint(self.run / INCOMING, self.written, self.rng, base)
        name = f"step_{500 * (self.written + 1):07d}"
        os.rename(self.run / INCOMING / name, self.run / name)
        self.written += 1
        if self.keep and self.written > self.keep:
            shutil.rmtree(self.run / f"step_{500 * (self.written - self.keep):07d}")


def wait_committed(store: Path, rows: int, watch: subprocess.Popen, timeout: float = 600.0) -> None:
    end = time.monotonic() + timeout
    while committed_rows(store) < rows:
        if watch.poll() is not None or time.monotonic() > end:
            raise RuntimeError(f"the watch ended ({watch.returncode}) or stalled at {committed_rows(store)} rows")
        time.sleep(0.05)


@contextlib.contextmanager
def viewer_page(store: Path, home: Path, chrome):
    """``evowatch view STORE`` with a page of ``chrome`` on it, its map drawn; yields its Streamlit process's pid."""
    from viewer import browser

    home.mkdir()
    before = set(descendants(os.getpid()))
    with browser.viewer_server(store, home) as url:
        page = chrome.new_page(viewport={"width": 1200, "height": 900})
        page.goto(url, wait_until="domcontentloaded")
        browser.wait_for_map(page, timeout_ms=180_000)
        yield next(p for p in descendants(os.getpid()) if p not in before
                   and b"streamlit" in Path(f"/proc/{p}/cmdline").read_bytes())
        page.close()


def live(args: argparse.Namespace, work: Path, run: Path, store: Path, tmp: Path) -> list[dict[str, float]]:
    trainer = Trainer(run, args.checkpoints // 2, args.keep)
    watch = start_watch(run, store, work, tmp)
    samples = []
    try:
        with contextlib.ExitStack() as stack:
            viewer = None
            started = time.monotonic()
            while trainer.written < args.checkpoints:
                for _ in range(args.burst):
                    trainer.write()
                wait_committed(store, trainer.written * SAMPLES, watch)
                if args.viewer and viewer is None:
                    from viewer import browser

                    (work / "chromium").mkdir()
                    chrome = stack.enter_context(browser.chromium(work / "chromium"))
                    viewer = stack.enter_context(viewer_page(store, work / "home", chrome))
                if trainer.written % args.every == 0:
                    elapsed = time.monotonic() - started
                    row = sample(watch.pid, store, run, tmp, trainer.written, viewer)
                    row["s / checkpoint"] = elapsed / args.every
                    samples.append(row)
                    print(json.dumps(row), file=sys.stderr, flush=True)
                    started = time.monotonic()
            if viewer is not None:  # the same store in a viewer started now: what its rows alone take
                with viewer_page(store, work / "home-fresh", chrome) as fresh:
                    samples[-1]["fresh viewer RSS MB"] = status_field(fresh, "VmRSS") / 1024
    finally:
        watch.send_signal(signal.SIGTERM)
        watch.wait(timeout=120)
    return samples


def leftovers(store: Path, run: Path, tmp: Path) -> dict[str, int]:
    """What lies in the store beside its arrays, in the run beside the checkpoints, and in TMPDIR."""
    store_extra = [p for p in store.rglob("*") if p.name.startswith(".") or "staging" in p.name or "lock" in p.name]
    return {"store hidden/staging/lock entries": len(store_extra),
            "run entries not written here": sum(not p.name.startswith("step_") and p.name != INCOMING
                                                for p in run.iterdir()),
            "TMPDIR entries": sum(1 for _ in tmp.rglob("*")),
            "entries beside the store": len(os.listdir(store.parent)),
            "store files": files_and_bytes(store)[0]}


def kills(args: argparse.Namespace, work: Path, run: Path, store: Path, tmp: Path) -> list[dict[str, int]]:
    rng = np.random.default_rng(1)
    trainer = Trainer(run, 0, args.keep)
    trainer.written = max(int(p.name[5:]) for p in run.iterdir() if p.name.startswith("step_")) // 500
    trainer.collapse_at = trainer.written  # go on collapsed
    rows = []
    for _ in range(args.kills):
        watch = start_watch(run, store, work, tmp)
        rows_before, extra = committed_rows(store), rng.uniform(0.0, 1.5)
        while committed_rows(store) <= rows_before:  # killed while it ingests
            trainer.write()
            time.sleep(0.2)
        end = time.monotonic() + extra
        while time.monotonic() < end:
            trainer.write()
            time.sleep(0.1)
        watch.send_signal(signal.SIGKILL)
        watch.wait()
        time.sleep(1.0)  # its children notice
        rows.append({"after restart": len(rows), **leftovers(store, run, tmp),
                     "orphans": sum(1 for p in Path("/proc").iterdir() if p.name.isdigit()
                                    and _cmd_in(p, str(store)))})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    watch = start_watch(run, store, work, tmp)
    wait_committed(store, trainer.written * SAMPLES, watch)
    watch.send_signal(signal.SIGTERM)
    watch.wait(timeout=120)
    rows.append({"after restart": len(rows), **leftovers(store, run, tmp), "orphans": 0})
    return rows


def _cmd_in(proc: Path, text: str) -> bool:
    with contextlib.suppress(OSError):
        return text.encode() in (proc / "cmdline").read_bytes()
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=2000)
    parser.add_argument("--every", type=int, default=250, help="sample every this many checkpoints")
    parser.add_argument("--burst", type=int, default=10, help="checkpoints written before waiting for them")
    parser.add_argument("--kills", type=int, default=0, help="SIGKILL and restart the watch this many times after")
    parser.add_argument("--keep", type=int, default=0, help="the trainer keeps only its newest KEEP checkpoints")
    parser.add_argument("--viewer", action="store_true", help="an `evowatch view` and a Chromium page beside it")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    if args.every % args.burst:
        parser.error("--every must be a multiple of --burst")
    if args.keep and args.burst > args.keep:  # else checkpoints go before the watch could look at them
        parser.error("--burst must be at most --keep")
    with tempfile.TemporaryDirectory(dir=args.workdir) as name:
        work = Path(name)
        run, store, tmp = work / "run", work / "run.zarr", work / "tmp"
        tmp.mkdir()
        write_images(work / "real", np.random.default_rng(2).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8))
        samples = live(args, work, run, store, tmp)
        fresh = samples[-1].pop("fresh viewer RSS MB", None)
        first, last = samples[0], samples[-1]
        span = (last["checkpoints"] - first["checkpoints"]) / 1000
        print("| " + " | ".join(first) + " |")
        print("|---" * len(first) + "|")
        for row in samples:
            print("| " + " | ".join(f"{v:,.2f}" if isinstance(v, float) else f"{v:,}" for v in row.values()) + " |")
        print("| growth per 1,000 | " + " | ".join(
            f"{(last[k] - first[k]) / span:+,.2f}" for k in list(first)[1:]) + " |")
        if fresh is not None:
            print(f"\na viewer started on the final store: RSS {fresh:,.1f} MB")
        if args.kills:
            restarts = kills(args, work, run, store, tmp)
            print("\n| " + " | ".join(restarts[0]) + " |")
            print("|---" * len(restarts[0]) + "|")
            for row in restarts:
                print("| " + " | ".join(f"{v:,}" for v in row.values()) + " |")
        print((work / "watch.err").read_text()[-3000:], file=sys.stderr)


if __name__ == "__main__":
    main()
