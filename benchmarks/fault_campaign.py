"""Fault-injection campaign: a live ``evowatch watch`` killed at random moments must lose
nothing and repeat nothing.

For each seeded iteration a real ``evowatch watch RUN --store S`` subprocess (tiny random
open_clip encoder, layout and metrics on) is started while checkpoints land, and stopped
at a seeded random moment by SIGKILL, SIGTERM or SIGINT; ``evowatch info S --json`` must
succeed after every stop. Between iterations the run is changed (a checkpoint added,
rewritten in place or deleted), each change made on a settled store (``watch --once``
first), so that a reference store replaying the same changes with ``watch --once`` alone
saw the same sequence of run states. At the end both stores must hold the same current
checkpoints (source, content hash, rows), no duplicated rows, the same embeddings (within
float16), metrics rows for every step, the same alerts and a layout for every row. Changes
also heal or collapse a step (its alert withdrawn or raised) and rename a step's folder to
another step; every watch's stderr is kept, and each alert announced (``ALERT step S [rule]``)
must at the end be stored, or said withdrawn or moved after its announcement (round BJ: a
kill between the shorter list and its ALERT WITHDRAWN line lost the line).

    .venv/bin/python benchmarks/fault_campaign.py --iterations 20 --seed 0
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
TINY_CLIP = f"clip:{REPO / 'tests' / 'data' / 'evowatch-tiny.json'}/random"
SIGNALS = (signal.SIGKILL, signal.SIGTERM, signal.SIGINT)


def _images(seed: int, n: int, size: int, collapsed: bool) -> np.ndarray:
    """Smooth random images; ``collapsed`` ones are copies of two (a collapse alert)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (n, 4, 4, 3)).astype(np.uint8)
    if collapsed:
        base = base[np.arange(n) % 2]
    return np.stack([np.asarray(Image.fromarray(b).resize((size, size), Image.BILINEAR)) for b in base])


def write_checkpoint(run: Path, step: int, seed: int, n: int = 12, size: int = 32, collapsed: bool | None = None) -> None:
    """``step_000100/00000.png ...`` written into a hidden folder and renamed into place;
    collapsed from step 900 on unless ``collapsed`` says."""
    final, tmp = run / f"step_{step:06d}", run / f".step_{step:06d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for i, image in enumerate(_images(seed, n, size, collapsed=step >= 900 if collapsed is None else collapsed)):
        Image.fromarray(image).save(tmp / f"{i:05d}.png")
    if final.exists():  # a rewrite in place: the files replaced one by one, as a trainer does
        for path in sorted(tmp.iterdir()):
            os.replace(path, final / path.name)
        tmp.rmdir()
    else:
        os.rename(tmp, final)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "engine.cli", *args]


def _env(home: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(home), "HF_HUB_OFFLINE": "1"}


def _watch_args(run: Path, store: Path, real: Path) -> list[str]:
    return ["watch", str(run), "--store", str(store), "--settle", "0.3", "--encoder", TINY_CLIP,
            "--real", str(real), "--workers", "1"]


def once(run: Path, store: Path, real: Path, home: Path, said: list[str] | None = None) -> None:
    """``watch --once``; its stderr appended to ``said`` (the lines a user read)."""
    done = subprocess.run(_cli(*_watch_args(run, store, real), "--once"), env=_env(home),
                          capture_output=True, text=True, timeout=300)
    if said is not None:
        said.append(done.stderr)
    if done.returncode != 0:
        raise AssertionError(f"watch --once exited {done.returncode}: {done.stderr[-2000:]}")


ANNOUNCED = re.compile(r"evowatch: ALERT step (\d+) \[(\w+)\]")
WITHDRAWN = re.compile(r"evowatch: ALERT WITHDRAWN step (\d+)(?: \(and (\d+) later steps?\))? \[(\w+)\]")
MOVED = re.compile(r"evowatch: ALERT MOVED step (\d+) -> (\d+)(?: \(and (\d+) other steps?\))? \[(\w+)\]")


def unaccounted(said: list[str], stored: set[tuple[int, str]]) -> list[str]:
    """The alerts announced in ``said`` (the watches' stderr, in order) that are neither in
    ``stored`` nor said withdrawn or moved after their announcement. A line naming a step and
    N later (other) ones of a rule accounts for that step, and for any later step of the rule
    when N > 0 (the line names only the first). A moved alert is checked again at its new step."""
    events = []  # (what, step, more, rule, new step)
    for text in said:
        for line in text.splitlines():
            if m := WITHDRAWN.search(line):
                events.append(("withdrawn", int(m[1]), int(m[2] or 0), m[3], None))
            elif m := MOVED.search(line):
                events.append(("moved", int(m[1]), int(m[3] or 0), m[4], int(m[2])))
            elif m := ANNOUNCED.search(line):
                events.append(("announced", int(m[1]), 0, m[2], None))
    last: dict[tuple[int, str], int] = {}  # each alert told to the user: where it was last said to hold
    for i, (what, step, _, rule, new) in enumerate(events):
        if what == "announced":
            last[(step, rule)] = i
        elif what == "moved" and (step, rule) in last:
            last[(new, rule)] = i
    problems = []
    for (step, rule), i in sorted(last.items()):
        covered = any(what in ("withdrawn", "moved") and r == rule and (s == step or (s < step and more))
                      for what, s, more, r, _ in events[i + 1:])
        if (step, rule) not in stored and not covered:
            problems.append(f"alert step {step} [{rule}] announced, neither stored nor said withdrawn")
    return problems


def info_json(store: Path, home: Path) -> dict:
    done = subprocess.run(_cli("info", str(store), "--json"), env=_env(home), capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise AssertionError(f"info --json exited {done.returncode}: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def live_and_stop(run: Path, store: Path, real: Path, home: Path, rng: np.random.Generator,
                  new_steps: list[int], said: list[str]) -> int:
    """Start a live watch, land ``new_steps`` while it runs, stop it at a random moment
    (the signal sent is returned; its stderr appended to ``said``); AssertionError names what
    went wrong."""
    signum = int(rng.choice(SIGNALS))
    delay = float(rng.uniform(1.0, 10.0))
    gaps = rng.uniform(0.0, 1.5, len(new_steps))
    proc = subprocess.Popen(_cli(*_watch_args(run, store, real)), env=_env(home),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)
    reader.start()
    start = time.monotonic()
    for step, gap in zip(new_steps, gaps):
        time.sleep(gap)
        write_checkpoint(run, step, seed=step)
    time.sleep(max(0.0, delay - (time.monotonic() - start)))
    proc.send_signal(signum)
    try:
        status = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        reader.join(5)
        raise AssertionError(f"watch did not stop within 60 s of {signal.Signals(signum).name}: "
                             f"{(err[0] if err else '')[-2000:]}") from None
    reader.join(5)
    text = err[0] if err else ""
    said.append(text)
    if signum != signal.SIGKILL and status not in (0, 128 + signum, -signum):
        raise AssertionError(f"watch stopped by {signal.Signals(signum).name} exited {status}: {text[-2000:]}")
    if "Traceback" in text:
        raise AssertionError(f"traceback on stderr after {signal.Signals(signum).name}: {text[-3000:]}")
    return signum


def _current(store: Path) -> dict:
    from stores.zarr_store import StoreReader

    reader = StoreReader(store)
    ckpt = reader.checkpoints()
    current = {}
    for i in range(len(ckpt["step"])):
        if ckpt["superseded_by"][i] >= 0 or ckpt["kind"][i] != 0:  # superseded, or a reference set
            continue
        rows = slice(int(ckpt["row_start"][i]), int(ckpt["row_stop"][i]))
        key = (str(ckpt["source"][i]), str(ckpt["hash"][i]))
        if key in current:
            raise AssertionError(f"checkpoint {key} is current twice")
        order = np.argsort(reader.samples("instance", rows))
        current[key] = {"step": int(ckpt["step"][i]), "instance": reader.samples("instance", rows)[order],
                        "embedding": reader.samples("embedding", rows)[order].astype(np.float32)}
    return {"reader": reader, "current": current}


def compare(store: Path, reference: Path, home: Path) -> list[str]:
    """Differences between the campaign's store and the uninterrupted reference."""
    problems = []
    got, want = _current(store), _current(reference)
    if set(got["current"]) != set(want["current"]):
        problems.append(f"current checkpoints differ: extra {sorted(set(got['current']) - set(want['current']))}, "
                        f"missing {sorted(set(want['current']) - set(got['current']))}")
    for key in set(got["current"]) & set(want["current"]):
        a, b = got["current"][key], want["current"][key]
        if not np.array_equal(a["instance"], b["instance"]) or len(set(a["instance"].tolist())) != len(a["instance"]):
            problems.append(f"{key}: rows {a['instance'].tolist()} against {b['instance'].tolist()}")
        elif not np.allclose(a["embedding"], b["embedding"], atol=2e-3):
            problems.append(f"{key}: embeddings differ by {np.abs(a['embedding'] - b['embedding']).max():.4f}")
    reader = got["reader"]
    if reader.layout_rows != reader.n_rows:
        problems.append(f"layout holds {reader.layout_rows} of {reader.n_rows} rows")
    steps = {v["step"] for v in got["current"].values()}
    measured = set(reader.step_metrics().get("step", np.array([])).tolist())
    if steps - measured:
        problems.append(f"steps without metrics: {sorted(steps - measured)}")
    a, b = info_json(store, home), info_json(reference, home)
    alerts = sorted((x["step"], x["rule"]) for x in a["alerts"])
    ref_alerts = sorted((x["step"], x["rule"]) for x in b["alerts"])
    if alerts != ref_alerts:
        problems.append(f"alerts {alerts} against {ref_alerts}")
    if a["missing_chunks"]:
        problems.append(f"missing chunks {a['missing_chunks']}")
    return problems


def campaign(iterations: int, seed: int, work: Path) -> dict:
    rng = np.random.default_rng(seed)
    run, store, real, home = work / "run", work / "s.zarr", work / "real", work / "home"
    home.mkdir(parents=True)
    real.mkdir()
    for i, image in enumerate(_images(10_000, 24, 32, collapsed=False)):
        Image.fromarray(image).save(real / f"{i:05d}.png")
    failures: list[str] = []
    changes: list[tuple[str, int, int, bool | None]] = []  # (what, step, seed or new step, collapsed), replayed
    said: list[str] = []  # every watch's stderr, in order
    collapsed: dict[int, bool] = {}  # steps healed or collapsed by hand
    next_step, stops = 100, {s.name: 0 for s in map(signal.Signals, SIGNALS)}
    run.mkdir()
    for it in range(iterations):
        new = [next_step + 100 * k for k in range(int(rng.integers(1, 4)))]
        next_step = new[-1] + 100
        changes += [("add", s, s, None) for s in new]
        try:
            signum = live_and_stop(run, store, real, home, rng, new, said)
            stops[signal.Signals(signum).name] += 1
            if store.exists():  # stopped before its first checkpoint, a watch leaves no store
                info_json(store, home)
        except AssertionError as failed:  # said, and the campaign goes on from there
            failures.append(f"iteration {it}: {failed}")
            signum = 0
        existing = sorted(int(p.name.split("_")[1]) for p in run.glob("step_*"))
        what = rng.choice(["none", "rewrite", "flip", "rename", "delete"], p=[0.35, 0.2, 0.2, 0.1, 0.15])
        if what != "none" and len(existing) > 2:
            once(run, store, real, home, said)  # changed on a settled store: the reference sees the same
            step = int(rng.choice(existing[:-1]))
            if what in ("rewrite", "flip"):  # flip: a collapsed step healed, a healthy one collapsed
                new_seed = int(rng.integers(1, 1_000_000))
                flag = collapsed.get(step) if what == "rewrite" else not collapsed.get(step, step >= 900)
                if what == "flip":
                    collapsed[step] = flag
                write_checkpoint(run, step, new_seed, collapsed=flag)
                changes.append(("rewrite", step, new_seed, flag))
            elif what == "rename" and not (run / f"step_{step + 50:06d}").exists():
                os.rename(run / f"step_{step:06d}", run / f"step_{step + 50:06d}")
                changes.append(("rename", step, step + 50, None))
            elif what == "delete":
                shutil.rmtree(run / f"step_{step:06d}")
                changes.append(("delete", step, 0, None))
        print(f"iteration {it}: {signal.Signals(signum).name if signum else 'failed'}, {what}", file=sys.stderr, flush=True)
    once(run, store, real, home, said)
    ref_run, reference = work / "ref_run", work / "ref.zarr"
    ref_run.mkdir()
    for what, step, s, flag in changes:  # replayed, settled after each change as above
        if what != "add":
            once(ref_run, reference, real, home)
        if what == "delete":
            shutil.rmtree(ref_run / f"step_{step:06d}")
        elif what == "rename":
            os.rename(ref_run / f"step_{step:06d}", ref_run / f"step_{s:06d}")
        else:
            write_checkpoint(ref_run, step, s, collapsed=flag)
    once(ref_run, reference, real, home)
    # the sources name the run folder; compare them relative to it
    stored = {(a["step"], a["rule"]) for a in info_json(store, home)["alerts"]}
    problems = failures + compare(store, reference, home) + unaccounted(said, stored)
    lines = {name: sum(len(pattern.findall(text)) for text in said)
             for name, pattern in (("announced", ANNOUNCED), ("withdrawn", WITHDRAWN), ("moved", MOVED))}
    return {"iterations": iterations, "stops": stops, "checkpoints": len(changes),
            "changes": {kind: sum(c[0] == kind for c in changes) for kind in ("add", "rewrite", "rename", "delete")},
            "alert_lines": lines, "problems": problems}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # started with `&` from a script: the
        signal.signal(signal.SIGINT, signal.default_int_handler)  # watches would ignore SIGINT
    work = Path(tempfile.mkdtemp(prefix="evowatch-faults-"))
    try:
        result = campaign(args.iterations, args.seed, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}", file=sys.stderr)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
