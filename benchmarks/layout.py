"""Benchmark of the evolutionary layout against three baselines, on two evolving runs.

Run (about 10 minutes on 2 free cores, plus about a minute the first time to record the demo run;
much longer on a shared machine: 16 minutes at load average 2-6)::

    .venv/bin/python benchmarks/layout.py --write-docs

Datasets (``--datasets``, default ``synthetic,demo``):

* ``synthetic``: ``benchmarks/synthetic.py``'s ``evolving_run`` (drifting clusters, a split, a
  vanishing cluster, shrinking noise).
* ``demo``: a REAL recorded run of the demo's digits GAN (``examples/demo_trainer.py``),
  ``--steps`` checkpoints every ``--demo-every`` training steps, ``--samples`` fixed-noise
  samples each, ingested by ``evowatch watch --once --encoder pixels`` (the real discovery,
  decode, encode and store path) and read back from the Zarr store with ``StoreReader``.
  Recorded once under ``--workdir`` (default ``artifacts/layout_bench``, git-ignored) and
  reused by later runs; the recording is not part of any timing.
* ``digits``: the earlier stand-in for the demo run (``load_digits`` through a synthetic
  blur/noise schedule, ``synthetic.digits_run``); no longer in the default set.

Each dataset runs in its own worker process (two at once); inside it every method runs on the
same data, one thread each (``n_jobs=1``, FAISS 1 thread):

* **ours**: ``engine.layout.layout_step`` once per checkpoint (warm start + alignment term).
* **(a)**: independent openTSNE per checkpoint (PCA init, 250 early-exaggeration + 500
  iterations, same FAISS affinities), each aligned afterwards to the previous aligned step
  by ``scipy.linalg.orthogonal_procrustes`` on the matched instances.
* **(b)**: the joint objective recomputed from scratch over all steps so far
  (``engine.layout.layout_full``), what a non-progressive tool does at each checkpoint;
  timed at a subset of checkpoints (``--b-steps``) to keep the run bounded.
* **(c)**: umap-learn's ``AlignedUMAP`` over all steps, relations from the instance ids.

Times are CPU seconds of this process (``time.process_time``): robust to other jobs on
the machine; wall seconds are printed beside them. Quality: mean over steps 1..T-1 of
neighbourhood preservation (kNN recall@10) and of the alignment error between
consecutive steps (median same-instance displacement / RMS radius).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.layout import (LayoutParams, alignment_error, layout_full, layout_step,  # noqa: E402
                           neighbourhood_preservation)
from engine.layout.knn import normalise, tsne_affinities  # noqa: E402
from engine.layout.quality import matched_pairs  # noqa: E402


def _synthetic():
    spec = importlib.util.spec_from_file_location("evowatch_bench_synthetic", Path(__file__).with_name("synthetic.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _demo_dir(workdir: Path, n_steps: int, n_samples: int, every: int, seed: int) -> Path:
    return Path(workdir) / f"demo_T{n_steps}_every{every}_n{n_samples}_seed{seed}"


def record_demo(workdir: Path, n_steps: int, n_samples: int, every: int, seed: int, log) -> Path:
    """Train the demo GAN and ingest its checkpoints into a Zarr store, once; return the folder.

    The folder holds ``run/`` (the trainer's output), ``demo.zarr`` (the store) and
    ``recorded.json``, written last: a folder without it is recorded again from scratch.
    """
    out = _demo_dir(workdir, n_steps, n_samples, every, seed)
    marker = out / "recorded.json"
    if marker.exists():
        log(f"[demo] reusing the recorded run in {out}")
        return out
    if out.exists():
        import shutil

        shutil.rmtree(out)
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "examples.demo_trainer", str(out), "--steps", str(n_steps * every),
                    "--every", str(every), "--n-samples", str(n_samples), "--seed", str(seed),
                    "--threads", "1", "--quiet"], cwd=ROOT, check=True)
    t1 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "engine.cli", "watch", str(out / "run"), "--store", str(out / "demo.zarr"),
                    "--once", "--encoder", "pixels", "--no-layout", "--no-metrics", "--settle", "0"],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t2 = time.perf_counter()
    marker.write_text(json.dumps({"steps": n_steps * every, "every": every, "n_samples": n_samples, "seed": seed,
                                  "encoder": "pixels", "train_wall_s": round(t1 - t0, 1),
                                  "ingest_wall_s": round(t2 - t1, 1)}) + "\n")
    log(f"[demo] recorded in {out}: training {t1 - t0:.0f} s, ingest {t2 - t1:.0f} s (wall)")
    return out


def demo_run(folder: Path, n_steps: int, n_samples: int):
    """The recorded demo run as an ``EvolvingRun``, read from its store (current rows only)."""
    from stores.zarr_store import StoreReader

    store = StoreReader(folder / "demo.zarr")
    keep = store.current_rows() & (store.samples("kind") == 0)          # generated samples
    step = store.samples("step")[keep]
    emb = store.samples("embedding")[keep]
    inst = store.samples("instance")[keep].astype(np.int64)
    lab = store.samples("label")[keep].astype(np.int64)
    steps = np.unique(step)
    if len(steps) != n_steps:
        raise RuntimeError(f"Expected {n_steps} checkpoints in {folder / 'demo.zarr'}. Got {len(steps)} instead.")
    vectors, instances, labels = [], [], []
    for s in steps:
        rows = np.flatnonzero(step == s)
        rows = rows[np.argsort(inst[rows], kind="stable")]
        if len(rows) != n_samples or len(np.unique(inst[rows])) != n_samples:
            raise RuntimeError(f"Expected {n_samples} distinct instances at step {s}. Got {len(rows)} rows instead.")
        vectors.append(normalise(emb[rows]))
        instances.append(inst[rows])
        labels.append(lab[rows])
    return _synthetic().EvolvingRun("demo", vectors, instances, labels)


class Clock:
    def __enter__(self):
        self.c0, self.w0 = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.cpu = time.process_time() - self.c0
        self.wall = time.perf_counter() - self.w0


def quality(run, xys):
    pres = [neighbourhood_preservation(run.vectors[t], xys[t]) for t in range(1, run.n_steps)]
    al = [alignment_error(xys[t - 1], run.instances[t - 1], xys[t], run.instances[t]) for t in range(1, run.n_steps)]
    return float(np.mean(pres)), float(np.mean(al))


def ours(run, params):
    state, xys, cpu, wall = None, [], [], []
    for t in range(run.n_steps):
        with Clock() as c:
            state = layout_step(run.vectors[t], run.instances[t], state, params)
        xys.append(state.xy)
        cpu.append(c.cpu)
        wall.append(c.wall)
    return xys, np.array(cpu), np.array(wall)


def independent_procrustes(run, params):
    from openTSNE import TSNE, initialization
    from scipy.linalg import orthogonal_procrustes

    xys, prev, cpu = [], None, 0.0
    for t in range(run.n_steps):
        with Clock() as c:
            x = normalise(run.vectors[t])
            aff = tsne_affinities(x, params.perplexity, params.n_jobs)
            y = np.asarray(TSNE(n_jobs=params.n_jobs, random_state=params.random_state,
                                negative_gradient_method="bh").fit(
                affinities=aff, initialization=initialization.pca(x, random_state=params.random_state)), dtype=np.float64)
        cpu += c.cpu
        if prev is not None:
            ia, ib = matched_pairs(run.instances[t - 1], run.instances[t])
            mu_b, mu_a = y[ib].mean(0), prev[ia].mean(0)
            R, _ = orthogonal_procrustes(y[ib] - mu_b, prev[ia] - mu_a)
            y = (y - mu_b) @ R + mu_a
        xys.append(y)
        prev = y
    return xys, cpu


def joint(run, params, upto):
    with Clock() as c:
        xys = layout_full(run.vectors[:upto], run.instances[:upto], params)
    return xys, c.cpu, c.wall


def aligned_umap(run, seed):
    import umap

    warnings.filterwarnings("ignore", message="n_jobs value")
    relations = []
    for t in range(1, run.n_steps):
        ia, ib = matched_pairs(run.instances[t - 1], run.instances[t])
        relations.append(dict(zip(ia.tolist(), ib.tolist())))
    with Clock() as c:
        mapper = umap.AlignedUMAP(n_neighbors=15, random_state=seed).fit(
            [np.asarray(v, dtype=np.float32) for v in run.vectors], relations=relations)
    return [np.asarray(e) for e in mapper.embeddings_], c.cpu


def bench(run, params, b_steps, seed, log):
    T = run.n_steps
    res = {"name": run.name, "T": T, "n": len(run.vectors[0]), "b_steps": b_steps}
    xy_o, cpu_o, wall_o = ours(run, params)
    res["ours_cpu"], res["ours_wall"] = cpu_o, wall_o
    res["ours_q"] = quality(run, xy_o)
    log(f"[{run.name}] ours: {cpu_o.sum():.1f} cpu-s, quality {res['ours_q']}")
    xy_a, cpu_a = independent_procrustes(run, params)
    res["a_cpu"], res["a_q"] = cpu_a, quality(run, xy_a)
    log(f"[{run.name}] (a): {cpu_a:.1f} cpu-s, quality {res['a_q']}")
    res["b"] = {}
    for s in b_steps:
        xy_b, cpu_b, wall_b = joint(run, params, s)
        res["b"][s] = (cpu_b, wall_b)
        log(f"[{run.name}] (b) from scratch over {s} steps: {cpu_b:.1f} cpu-s ({wall_b:.1f} wall-s)")
    if T in res["b"]:
        res["b_q"] = quality(run, xy_b)
    xy_c, cpu_c = aligned_umap(run, seed)
    res["c_cpu"], res["c_q"] = cpu_c, quality(run, xy_c)
    log(f"[{run.name}] (c): {cpu_c:.1f} cpu-s, quality {res['c_q']}")
    return res


def _window(a, step):
    """Median over checkpoints step-1..step+1 (1-based), to damp timer noise."""
    i = step - 1
    return float(np.median(a[max(i - 1, 0):i + 2]))


def table(results) -> str:
    rows = ["| measure | bar | " + " | ".join(r["name"] for r in results) + " |",
            "|---|---|" + "---|" * len(results)]

    def row(label, bar, fn):
        rows.append(f"| {label} | {bar} | " + " | ".join(fn(r) for r in results) + " |")

    def ok(v, lo=None, hi=None):
        good = (lo is None or v >= lo) and (hi is None or v <= hi)
        return f"{v:.2f} {'pass' if good else 'FAIL'}"

    last = results[0]["T"]  # every run has the same number of steps
    row("samples x steps", "", lambda r: f"{r['n']} x {r['T']}")
    row(f"ours: CPU s per step at step 5 / step {last} (median of 3)", "",
        lambda r: f"{_window(r['ours_cpu'], 5):.2f} / {_window(r['ours_cpu'], r['T']):.2f}")
    row(f"ours: step-{last} / step-5 time (CPU, median of 3)", "<= 1.5",
        lambda r: ok(_window(r["ours_cpu"], r["T"]) / _window(r["ours_cpu"], 5), hi=1.5))
    row(f"ours: step-{last} / step-5 time (CPU, single steps)", "",
        lambda r: f"{r['ours_cpu'][r['T'] - 1] / r['ours_cpu'][4]:.2f}")
    row(f"ours: step-{last} / step-5 time (wall, median of 3)", "",
        lambda r: f"{_window(r['ours_wall'], r['T']) / _window(r['ours_wall'], 5):.2f}")
    row("(b) CPU s from scratch at steps " + ", ".join(map(str, results[0]["b_steps"])), "",
        lambda r: " / ".join(f"{r['b'][s][0]:.1f}" for s in r["b_steps"]))
    row("speed-up of ours over (b) at the last step (CPU)", ">= 10",
        lambda r: ok(r["b"][r["T"]][0] / r["ours_cpu"][r["T"] - 1], lo=10))
    row("(a) total CPU s; (c) total CPU s; ours total CPU s", "",
        lambda r: f"{r['a_cpu']:.0f}; {r['c_cpu']:.0f}; {r['ours_cpu'].sum():.0f}")
    row("preservation@10: ours / (a) / (b) / (c)", "",
        lambda r: f"{r['ours_q'][0]:.3f} / {r['a_q'][0]:.3f} / {r.get('b_q', (np.nan,))[0]:.3f} / {r['c_q'][0]:.3f}")
    row("preservation ratio ours / (a)", ">= 0.9", lambda r: ok(r["ours_q"][0] / r["a_q"][0], lo=0.9))
    row("alignment error: ours / (a) / (b) / (c)", "",
        lambda r: f"{r['ours_q'][1]:.3f} / {r['a_q'][1]:.3f} / {r.get('b_q', (0, np.nan))[1]:.3f} / {r['c_q'][1]:.3f}")
    row("alignment ratio ours / (a)", "<= 0.5", lambda r: ok(r["ours_q"][1] / r["a_q"][1], hi=0.5))
    row("alignment ratio ours / (c)", "<= 1", lambda r: ok(r["ours_q"][1] / r["c_q"][1], hi=1.0))
    return "\n".join(rows)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _one(name, args, params, b_steps):
    import faiss

    faiss.omp_set_num_threads(1)
    if name == "demo":
        run = demo_run(_demo_dir(args.workdir, args.steps, args.samples, args.demo_every, args.seed),
                       args.steps, args.samples)
    else:
        syn = _synthetic()
        make = {"synthetic": syn.evolving_run, "digits": syn.digits_run}[name]
        run = make(n_steps=args.steps, n_samples=args.samples, seed=args.seed)
    return bench(run, params, b_steps, args.seed, _log)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--datasets", default="synthetic,demo",
                    help="comma-separated: synthetic, demo (recorded demo GAN run), digits (the old stand-in)")
    ap.add_argument("--workdir", type=Path, default=ROOT / "artifacts" / "layout_bench",
                    help="where the recorded demo run is kept and reused")
    ap.add_argument("--demo-every", type=int, default=60, help="demo run: training steps between checkpoints")
    ap.add_argument("--b-steps", default="5,50", help="checkpoints at which (b) is timed")
    ap.add_argument("--alignment", type=float, default=LayoutParams.alignment)
    ap.add_argument("--n-iter", type=int, default=LayoutParams.n_iter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write-docs", action="store_true", help="write the table into docs/layout.md")
    args = ap.parse_args(argv)
    params = LayoutParams(alignment=args.alignment, n_iter=args.n_iter, n_jobs=1, random_state=args.seed)
    b_steps = sorted({min(int(s), args.steps) for s in args.b_steps.split(",")} | {args.steps})
    names = args.datasets.split(",")
    t0 = time.perf_counter()
    if "demo" in names:
        record_demo(args.workdir, args.steps, args.samples, args.demo_every, args.seed, _log)
        t0 = time.perf_counter()     # the recording is not part of the benchmark's wall time
    # one worker process per dataset (2 cores); inside a worker every method runs on the same data
    with ProcessPoolExecutor(max_workers=min(len(names), 2)) as pool:
        results = list(pool.map(_one, names, [args] * len(names), [params] * len(names), [b_steps] * len(names)))
    md = table(results)
    cmd = "python benchmarks/layout.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(md)
    print(f"\n{time.perf_counter() - t0:.0f} s wall in all; command: {cmd}")
    if args.write_docs:
        doc = ROOT / "docs" / "layout.md"
        text = doc.read_text()
        start, end = "<!-- benchmark-table -->", "<!-- /benchmark-table -->"
        if start in text and end in text:
            head, rest = text.split(start, 1)
            _, tail = rest.split(end, 1)
            block = (f"{start}\nParams: alignment={params.alignment}, n_iter={params.n_iter}, "
                     f"perplexity={params.perplexity}, n_jobs=1.\n\n{md}\n{end}")
            doc.write_text(head + block + tail)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
