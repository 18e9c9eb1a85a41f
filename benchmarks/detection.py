"""Failure detection on the demo GAN: detection delay, false alerts, and what the signals cost.

    .venv/bin/python benchmarks/detection.py [--seeds 0 1] [--steps 3000] [--every 250]
        [--onsets 1500 1600] [--jobs 2] [--out DIR] [--json FILE]

For each seed it trains the demo trainer (``examples/demo_trainer.py``, CPU, one torch
thread per trainer, ``--jobs`` trainers at a time) four times: healthy, ``--fail collapse@S``,
``--fail drop@S`` and ``--fail copy@S`` (S = the seed's onset; steps before S are
bit-identical to the healthy run, so the failures are trained as its ``--branch``es: one
trainer per seed, the shared steps once). Each run is then ingested through the real CLI code path,
``engine.cli.main(["watch", RUN, "--store", S, "--once", "--encoder", "pixels", "--real",
TRAIN, "--holdout", HOLDOUT, "--no-layout", "--settle", "0"])``, and the alerts are read
back as ``evowatch info --json`` lists them. It reports:

- per failure: the first checkpoint at or after the onset, the checkpoint where the
  expected rule (``collapse`` for collapse and drop; ``memorisation`` for copying) first fired, the delay in
  checkpoints between the two (bar: <= 1), and any alert before the onset (bar: 0);
- per healthy run: every alert (bar: 0);
- cost: per generated checkpoint, the ingest time (decode + encode + store commit) against
  the signals' time (per-step metrics + writes + alert rules), and the one-off reference
  statistics.

The layout is left out (``--no-layout``): its cost is measured by ``benchmarks/layout.py``.
With ``--out DIR`` the runs are kept, and a run whose ``demo.json`` matches is not retrained.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: The rule expected to catch each induced failure.
EXPECTED_RULE = {"collapse": "collapse", "drop": "collapse", "copy": "memorisation"}


@dataclass(frozen=True)
class RunSpec:
    """One demo-trainer run: ``fail`` is None (healthy), ``collapse``, ``drop`` or ``copy``."""

    seed: int
    fail: str | None
    onset: int | None
    steps: int
    every: int

    @property
    def name(self) -> str:
        return f"seed{self.seed}-{self.fail or 'healthy'}"

    def trainer_args(self) -> list[str]:
        args = ["--steps", str(self.steps), "--every", str(self.every), "--seed", str(self.seed),
                "--threads", "1", "--quiet"]
        if self.fail:
            args += ["--fail", f"{self.fail}@{self.onset}"]
        return args


@dataclass
class RunResult:
    spec: RunSpec
    checkpoints: list[int]
    alerts: list[dict]
    train_s: float = float("nan")
    watch_s: float = float("nan")
    ingest_per_ckpt_s: float = float("nan")
    signals_per_ckpt_s: float = float("nan")
    metrics_per_ckpt_s: float = float("nan")
    reference_s: float = float("nan")
    n_generated_ckpts: int = 0

    # --- detection ------------------------------------------------------------------
    @property
    def first_affected(self) -> int | None:
        if self.spec.onset is None:
            return None
        return next((c for c in self.checkpoints if c >= self.spec.onset), None)

    @property
    def detected_at(self) -> int | None:
        if self.spec.fail is None:
            return None
        rule = EXPECTED_RULE[self.spec.fail]
        return min((a["step"] for a in self.alerts if a["rule"] == rule and a["step"] >= self.spec.onset), default=None)

    @property
    def delay(self) -> int | None:
        """Checkpoints between the first affected checkpoint and the detection (0: at once)."""
        first, found = self.first_affected, self.detected_at
        if first is None or found is None:
            return None
        return self.checkpoints.index(found) - self.checkpoints.index(first)

    @property
    def false_alerts(self) -> list[dict]:
        """Alerts on a healthy run, or before the onset of a failure run."""
        if self.spec.onset is None:
            return list(self.alerts)
        return [a for a in self.alerts if a["step"] < self.spec.onset]

    @property
    def other_rules_after_onset(self) -> list[str]:
        if self.spec.fail is None:
            return []
        rule = EXPECTED_RULE[self.spec.fail]
        return sorted({a["rule"] for a in self.alerts if a["step"] >= self.spec.onset and a["rule"] != rule})

    def passes(self) -> bool:
        if self.false_alerts:
            return False
        return self.spec.fail is None or (self.delay is not None and self.delay <= 1)


# --------------------------------------------------------------------------- training


def _demo_json_matches(spec: RunSpec, out: Path) -> bool:
    try:
        meta = json.loads((out / "run" / "demo.json").read_text())
    except (OSError, ValueError):
        return False
    fail = None if spec.fail is None else {"kind": spec.fail, "step": spec.onset}
    last = out / "run" / f"step_{meta.get('checkpoints', [0])[-1]:06d}"
    return (meta.get("steps") == spec.steps and meta.get("every") == spec.every and meta.get("seed") == spec.seed
            and meta.get("fail") == fail and last.is_dir())


def _branched(specs: list[RunSpec]) -> list[list[RunSpec]]:
    """The trainer runs: a seed's failures whose onset its healthy run reaches are trained as
    its branches (``--branch``: the steps before the onset once), the others on their own."""
    groups = []
    for spec in specs:
        trunk = next((g for g in groups if g[0].fail is None and g[0].seed == spec.seed and g[0].every == spec.every
                      and spec.fail and spec.onset <= min(g[0].steps, spec.steps)), None)
        if trunk is None:
            groups.append([spec])
        else:
            trunk.append(spec)
    return groups


def train_runs(specs: list[RunSpec], root: Path, jobs: int = 2, reuse: bool = False,
               log=lambda msg: None) -> tuple[Path, dict[RunSpec, float]]:
    """Train every spec into ``root/<name>`` (``jobs`` trainers at a time, a healthy run and its
    failures in one), all sharing the reference sets in ``root/data``. Returns the data folder
    and each run's wall time (that of its trainer)."""
    data = root / "data"
    todo = [g for g in _branched(specs) if not (reuse and all(_demo_json_matches(s, root / s.name) for s in g))]
    times: dict[RunSpec, float] = {s: float("nan") for s in specs}
    running: dict[tuple[RunSpec, ...], tuple[subprocess.Popen, float]] = {}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    data_ready = (data / "split.json").is_file()
    while todo or running:
        # The first trainer writes the reference sets; the others wait until they exist
        # so that two trainers never write them at once.
        can_start = len(running) < max(1, jobs) and todo and (data_ready or not running)
        if can_start:
            spec, *branches = group = todo.pop(0)
            for s in group:
                shutil.rmtree(root / s.name, ignore_errors=True)
            cmd = [sys.executable, "-m", "examples.demo_trainer", str(root / spec.name), "--data-dir", str(data),
                   *spec.trainer_args()]
            for b in branches:
                cmd += ["--branch", str(root / b.name), f"{b.fail}@{b.onset}", str(b.steps)]
            log("train: " + " ".join(cmd[1:]))
            running[tuple(group)] = (subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                                      stderr=subprocess.PIPE, text=True), time.perf_counter())
            continue
        time.sleep(0.2)
        data_ready = data_ready or (data / "split.json").is_file()
        for group, (proc, t0) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[group]
            times.update(dict.fromkeys(group, time.perf_counter() - t0))
            if proc.returncode != 0:
                for p, _ in running.values():
                    p.kill()
                raise RuntimeError(f"demo trainer {group[0].name} failed ({proc.returncode}): "
                                   f"{proc.stderr.read()[-2000:]}")
    return data, times


# --------------------------------------------------------------------------- ingest


def watch_argv(run_dir: Path, store: Path, data: Path, *extra: str) -> list[str]:
    """The ``evowatch watch`` command line this benchmark uses (pixels encoder, offline)."""
    return ["-q", "watch", str(run_dir), "--store", str(store), "--once", "--encoder", "pixels",
            "--real", str(data / "train"), "--holdout", str(data / "holdout"),
            "--no-layout", "--settle", "0", "--workers", "2", *extra]


@contextlib.contextmanager
def _timers():
    """Time the ingest of each checkpoint, the signals per step and the reference statistics
    by wrapping the functions ``evowatch watch`` calls (restored on exit)."""
    import engine.signals as signals
    import engine.signals.measure as measure
    import engine.watch.ingest_pass as ingest_pass

    record: dict[str, list] = {"yields": [], "measure": [], "compute": [], "reference": []}
    orig_ingest, orig_measure = ingest_pass.ingest, signals.Signals._measure
    orig_refresh, orig_compute = signals.Signals._refresh_reference, measure.compute_step

    def ingest(*a, **k):
        t = time.perf_counter()
        record["yields"].append(("start", t))
        for result in orig_ingest(*a, **k):
            record["yields"].append((result.checkpoint.kind, time.perf_counter()))
            yield result

    def timed(name, fn):
        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                record[name].append(time.perf_counter() - t)
        return wrapper

    ingest_pass.ingest = ingest
    signals.Signals._measure = timed("measure", orig_measure)
    signals.Signals._refresh_reference = timed("reference", orig_refresh)
    measure.compute_step = timed("compute", orig_compute)
    try:
        yield record
    finally:
        ingest_pass.ingest, signals.Signals._measure = orig_ingest, orig_measure
        signals.Signals._refresh_reference, measure.compute_step = orig_refresh, orig_compute


def read_alerts(store: Path) -> list[dict]:
    """The alerts exactly as ``evowatch info STORE --json`` prints them."""
    from engine.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["info", str(store), "--json"])
    if rc != 0:
        raise RuntimeError(f"evowatch info {store} --json exited {rc}")
    return json.loads(buf.getvalue())["alerts"]


def ingest_run(spec: RunSpec, run_root: Path, data: Path, store: Path, *extra: str) -> RunResult:
    """``evowatch watch --once`` on one trained run, timed; then its alerts."""
    from engine.cli import main

    shutil.rmtree(store, ignore_errors=True)
    argv = watch_argv(run_root / "run", store, data, *extra)
    with _timers() as rec:
        t0 = time.perf_counter()
        rc = main(argv)
        wall = time.perf_counter() - t0
    if rc != 0:
        raise RuntimeError(f"evowatch {' '.join(argv)} exited {rc}")
    checkpoints = json.loads((run_root / "run" / "demo.json").read_text())["checkpoints"]
    res = RunResult(spec, checkpoints, read_alerts(store), watch_s=wall)
    gen = [t for kind, t in rec["yields"] if kind == "generated"]
    refs = [t for kind, t in rec["yields"] if kind not in ("generated", "start")]
    if gen:
        start = max(refs) if refs else rec["yields"][0][1]
        res.n_generated_ckpts = len(gen)
        res.ingest_per_ckpt_s = (max(gen) - start) / len(gen)
    if rec["measure"]:
        res.signals_per_ckpt_s = statistics.median(rec["measure"])
    if rec["compute"]:
        res.metrics_per_ckpt_s = statistics.median(rec["compute"])
    res.reference_s = sum(rec["reference"])  # rebuilt once; later passes only compare a key
    return res


# --------------------------------------------------------------------------- report


def _fmt_alerts(alerts: list[dict]) -> str:
    if not alerts:
        return "0"
    return f"{len(alerts)} (" + ", ".join(f"{a['rule']}@{a['step']}" for a in alerts) + ")"


def table(results: list[RunResult]) -> str:
    head = ("| seed | run | onset | first affected ckpt | detected at (rule) | delay, ckpts (bar <= 1) "
            "| false alerts (bar 0) | other rules after onset |\n|---|---|---|---|---|---|---|---|")
    rows = []
    for r in results:
        s = r.spec
        if s.fail is None:
            rows.append(f"| {s.seed} | healthy | — | — | — | — | {_fmt_alerts(r.false_alerts)} | — |")
            continue
        found = "not detected" if r.detected_at is None else f"{r.detected_at} ({EXPECTED_RULE[s.fail]})"
        delay = "—" if r.delay is None else str(r.delay)
        rows.append(f"| {s.seed} | {s.fail}@{s.onset} | {s.onset} | {r.first_affected} | {found} | {delay} "
                    f"| {_fmt_alerts(r.false_alerts)} (before onset) | {', '.join(r.other_rules_after_onset) or '—'} |")
    return head + "\n" + "\n".join(rows)


def cost_table(results: list[RunResult]) -> str:
    ing = [r.ingest_per_ckpt_s for r in results if r.n_generated_ckpts]
    sig = [r.signals_per_ckpt_s for r in results if r.n_generated_ckpts]
    met = [r.metrics_per_ckpt_s for r in results if r.n_generated_ckpts]
    ref = [r.reference_s for r in results]
    n = results[0].n_generated_ckpts
    return ("| per generated checkpoint (64 samples, pixels encoder, d = 768; signals: median over a run's checkpoints) | median over runs | range |\n|---|---|---|\n"
            f"| ingest: decode + encode + commit | {1e3 * statistics.median(ing):.0f} ms | {1e3 * min(ing):.0f}–{1e3 * max(ing):.0f} ms |\n"
            f"| signals: metrics + store writes + alert rules | {1e3 * statistics.median(sig):.0f} ms | {1e3 * min(sig):.0f}–{1e3 * max(sig):.0f} ms |\n"
            f"| of which `compute_step` (the metrics alone) | {1e3 * statistics.median(met):.0f} ms | {1e3 * min(met):.0f}–{1e3 * max(met):.0f} ms |\n"
            f"| once per store: reference statistics (1,200 real, 597 held-out) | {statistics.median(ref):.2f} s | {min(ref):.2f}–{max(ref):.2f} s |\n"
            f"\n({n} generated checkpoints per run, {len(results)} runs.)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--onsets", type=int, nargs="+", default=[1500, 1600],
                   help="failure onset per seed (the last one repeats); 1600 is not a checkpoint step")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--every", type=int, default=250)
    p.add_argument("--jobs", type=int, default=2, help="trainers run at a time (one torch thread each)")
    p.add_argument("--out", type=Path, help="keep the runs and stores here (and reuse matching runs)")
    p.add_argument("--json", type=Path, help="write the results as JSON here")
    a = p.parse_args(argv)

    root = a.out.resolve() if a.out else Path(tempfile.mkdtemp(prefix="evowatch-detection-"))
    root.mkdir(parents=True, exist_ok=True)
    specs = []
    for i, seed in enumerate(a.seeds):
        onset = a.onsets[min(i, len(a.onsets) - 1)]
        specs += [RunSpec(seed, fail, None if fail is None else onset, a.steps, a.every) for fail in (None, "collapse", "drop", "copy")]
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    try:
        t0 = time.perf_counter()
        data, train_times = train_runs(specs, root, jobs=a.jobs, reuse=a.out is not None, log=log)
        log(f"trained {len(specs)} runs in {time.perf_counter() - t0:.0f} s")
        results = []
        for spec in specs:
            res = ingest_run(spec, root / spec.name, data, root / f"{spec.name}.zarr")
            res.train_s = train_times[spec]
            log(f"{spec.name}: {len(res.alerts)} alert(s); watch {res.watch_s:.1f} s")
            results.append(res)
    finally:
        if a.out is None:
            shutil.rmtree(root, ignore_errors=True)

    cmd = ".venv/bin/python benchmarks/detection.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"`{cmd.strip()}` ({a.steps} steps, a checkpoint every {a.every}, 64 samples each)\n")
    print(table(results))
    print()
    print(cost_table(results))
    ok = all(r.passes() for r in results)
    print(f"\nbars: {'PASS' if ok else 'FAIL'} (delay <= 1 checkpoint for every failure; 0 false alerts)")
    if a.json:
        a.json.write_text(json.dumps([{**asdict(r), "delay": r.delay, "detected_at": r.detected_at,
                                       "first_affected": r.first_affected, "passes": r.passes()}
                                      for r in results], indent=1, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
