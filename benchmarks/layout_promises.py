"""The evolutionary map's promises, measured on several shapes of run (round BE).

Run (about 2.5 minutes on 2 cores)::

    .venv/bin/python benchmarks/layout_promises.py

DESIGN.md promises that "a layout update costs time proportional to the new checkpoint, not
to the history" and that "the map keeps same-instance points aligned while preserving each
step's neighbourhoods". ``benchmarks/layout.py`` measures both on two 50 x 1,000 runs; this
script measures them on the shapes those runs do not have, each against a baseline measured
in the same run:

* **quality** (``layout_step`` per checkpoint against (a), an independent t-SNE per step
  Procrustes-aligned to the previous one, as in ``benchmarks/layout.py``): kNN recall@10 and
  trustworthiness@10 of each step against its own encoder-space kNN, and the alignment error
  (median same-instance displacement between consecutive steps, in band radii), on few
  samples a step (16) or many (1,000), 2 instances or 64, a run that collapses onto one
  sample, and one whose sample count changes from step to step;
* **stability**: the largest change of a stored row, and of its place on the map
  (``engine.layout.place`` as the viewer calls it), when later checkpoints (in order, out of
  order, and a rewritten earlier one) are laid out through the store;
* **resume**: a layout killed between two checkpoints and resumed, against one never killed;
* **cost against history**: ``update_layout`` for one new 16-sample checkpoint in stores
  holding 10, 100 and 1,000 laid-out checkpoints (CPU time, median of 7), as a ratio to the 10.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from layout import _synthetic, independent_procrustes  # noqa: E402

from engine.layout import LayoutParams, alignment_error, layout_step, neighbourhood_preservation, place  # noqa: E402
from engine.layout.knn import normalise  # noqa: E402

ENCODER = {"identity": "bench:32", "dim": 32}


def trust(vectors, xy, k=10) -> float:
    from sklearn.manifold import trustworthiness

    k = min(k, (len(xy) - 1) // 2)
    return float(trustworthiness(normalise(vectors), xy, n_neighbors=k, metric="cosine")) if k >= 1 else float("nan")


def measures(run, xys) -> tuple[float, float, float]:
    """Mean over steps 1.. of recall@10, trustworthiness@10 and the alignment error."""
    steps = range(1, run.n_steps)
    big = [t for t in steps if len(xys[t]) > 2]
    pres = np.mean([neighbourhood_preservation(run.vectors[t], xys[t]) for t in big]) if big else np.nan
    tw = np.mean([trust(run.vectors[t], xys[t]) for t in big]) if big else np.nan
    al = np.nanmean([alignment_error(xys[t - 1], run.instances[t - 1], xys[t], run.instances[t]) for t in steps])
    return float(pres), float(tw), float(al)


def incremental(run, params):
    state, xys = None, []
    for v, i in zip(run.vectors, run.instances):
        state = layout_step(v, i, state, params)
        xys.append(state.xy)
    return xys


def _run(name, vectors, instances):
    syn = _synthetic()
    return syn.EvolvingRun(name, list(vectors), list(instances), [np.zeros(len(i), np.int64) for i in instances])


def shapes(seed: int):
    """The runs measured: (name, run)."""
    syn = _synthetic()
    out = [("few: 16 a step x 30", syn.evolving_run(30, 16, dim=64, seed=seed)),
           ("64 a step x 30", syn.evolving_run(30, 64, dim=64, seed=seed)),
           ("many: 1000 a step x 8", syn.evolving_run(8, 1000, dim=64, seed=seed)),
           ("2 instances x 30", syn.evolving_run(30, 2, dim=64, n_clusters=3, seed=seed))]
    base = syn.evolving_run(20, 300, dim=64, seed=seed)
    one = base.vectors[-1][0]
    rng = np.random.default_rng(seed)
    vecs = []
    for t, v in enumerate(base.vectors):   # collapse: from step 10 every sample slides onto one
        m = min(max((t - 9) / 5, 0.0), 1.0)
        vecs.append(normalise((1 - m) * v + m * one + 0.02 * (1 - m) * rng.normal(size=v.shape)))
    out.append(("collapse: 300 a step x 20", _run("collapse", vecs, base.instances)))
    sizes = [300, 40, 300, 8, 300, 120] * 4
    rows = [np.sort(rng.choice(300, s, replace=False)) for s in sizes[:base.n_steps]]
    picked = [v[r] for v, r in zip(base.vectors, rows)], [i[r] for i, r in zip(base.instances, rows)]
    out.append(("sizes 300/40/300/8/300/120", _run("sizes", *picked)))
    return out


def quality_table(params, seed, log) -> list[str]:
    rows = ["| run | recall@10 ours / (a) | trustworthiness@10 ours / (a) | alignment ours / (a) |",
            "|---|---|---|---|"]
    for name, run in shapes(seed):
        t0 = time.perf_counter()
        o = measures(run, incremental(run, params))
        if min(len(v) for v in run.vectors) >= 5:
            a = measures(run, independent_procrustes(run, params)[0])
            cell = [f"{o[j]:.3f} / {a[j]:.3f} ({o[j] / a[j]:.2f})" for j in range(3)]
        else:
            cell = [f"{o[j]:.3f} / - " for j in range(3)]
        rows.append(f"| {name} | " + " | ".join(cell) + " |")
        log(f"{rows[-1]}  [{time.perf_counter() - t0:.0f} s]")
    return rows


# ---------------------------------------------------------------------------------------
# through the store


def _add(store, step, vectors, instances, source=None):
    n = len(vectors)
    with store.checkpoint(int(step), source or f"run/step_{step}", f"h{step}-{source}") as tx:
        tx.add(vectors, instances, [None] * n, np.zeros((n, 4, 4, 3), np.uint8), [f"{i}.png" for i in range(n)])


def _placed(store) -> np.ndarray:
    """The map as the viewer draws it (viewer/data/map_data.py: current generated steps' ordinals)."""
    from stores.zarr_store import StoreReader

    r = StoreReader(store.path)
    n = r.layout_rows
    step, kind = r.samples("step")[:n], r.samples("kind")[:n]
    steps = np.unique(step[(kind == 0) & r.current_rows()[:n]])
    ckpt = r.checkpoints()
    order = np.lexsort((ckpt["row_stop"], ckpt["row_start"]))
    solution = order[np.searchsorted(ckpt["row_start"][order], np.arange(n), side="right") - 1]
    return place(r.layout_xy(), np.where(kind == 0, np.searchsorted(steps, step), -1), "rectilinear", groups=solution)


def stability(params, seed, log) -> list[str]:
    from engine.layout_runner import update_layout
    from stores.zarr_store import StoreWriter

    run = _synthetic().evolving_run(8, 64, dim=32, seed=seed)
    rows = ["| event | stored rows moved (max abs) | placed rows moved (max abs, map units: a band is 6) |", "|---|---|---|"]
    with tempfile.TemporaryDirectory() as d, StoreWriter(Path(d) / "s.zarr", ENCODER, thumbnail_size=4) as store:
        for t in (0, 1, 2, 4):
            _add(store, 100 * t, run.vectors[t], run.instances[t])
        update_layout(store, params)
        events = [("next step in order (500)", lambda: _add(store, 500, run.vectors[5], run.instances[5])),
                  ("a missed step arrives late (300)", lambda: _add(store, 300, run.vectors[3], run.instances[3])),
                  ("step 200 rewritten", lambda: _add(store, 200, run.vectors[2][::-1], run.instances[2][::-1],
                                                      source="run/step_200"))]
        for label, event in events:
            xy, placed, n = store.layout_xy().copy(), _placed(store), store.layout_rows
            event()
            update_layout(store, params)
            moved = float(np.abs(store.layout_xy()[:n] - xy).max())
            now = _placed(store)[:n]
            shown = store.current_rows()[:n]
            moved_placed = float(np.abs(now[shown] - placed[shown]).max())
            rows.append(f"| {label} | {moved:.3g} | {moved_placed:.3g} |")
            log(rows[-1])
    return rows


def resume(params, seed, log) -> list[str]:
    import engine.layout_runner as runner
    from stores.zarr_store import StoreWriter

    run = _synthetic().evolving_run(6, 64, dim=32, seed=seed)
    out = {}
    for killed in (False, True):
        with tempfile.TemporaryDirectory() as d:
            with StoreWriter(Path(d) / "s.zarr", ENCODER, thumbnail_size=4) as store:
                for t in range(run.n_steps):
                    _add(store, 100 * t, run.vectors[t], run.instances[t])
                if killed:
                    real, calls = runner.layout_step, []

                    def dies(*a, **k):
                        if len(calls) == 3:
                            raise KeyboardInterrupt
                        calls.append(1)
                        return real(*a, **k)

                    runner.layout_step = dies
                    try:
                        runner.update_layout(store, params)
                    except KeyboardInterrupt:
                        pass
                    finally:
                        runner.layout_step = real
            with StoreWriter(Path(d) / "s.zarr", ENCODER, thumbnail_size=4) as store:
                runner.update_layout(store, params)
                out[killed] = store.layout_xy().copy()
    diff = float(np.abs(out[True] - out[False]).max())
    row = f"| killed after 3 of 6 checkpoints, resumed | {diff:.3g} |"
    log(row)
    return ["| event | max abs difference to a layout never killed |", "|---|---|", row]


def cost(params, seed, log, sizes=(10, 100, 1000), n=16, repeats=7) -> list[str]:
    from engine.layout_runner import update_layout
    from stores.zarr_store import StoreWriter

    rng = np.random.default_rng(seed)
    probe = normalise(rng.normal(size=(n, 32)))   # every timed checkpoint is this one: same t-SNE work
    times = {}
    with tempfile.TemporaryDirectory() as d, StoreWriter(Path(d) / "s.zarr", ENCODER, thumbnail_size=4) as store:
        step = 0
        for T in sizes:
            while step < T:
                _add(store, step, normalise(rng.normal(size=(n, 32))), np.arange(n))
                step += 1
            update_layout(store, params)
            ts = []
            for _ in range(repeats):
                _add(store, step, probe, np.arange(n))
                step += 1
                c = time.process_time()
                update_layout(store, params)
                ts.append(time.process_time() - c)
            times[T] = float(np.median(ts))
            log(f"cost at {T} checkpoints: {times[T] * 1000:.1f} ms")
    base = times[sizes[0]]
    rows = ["| checkpoints stored | update_layout, one new checkpoint of 16 (CPU, median of 7) | ratio to 10 |",
            "|---|---|---|"]
    rows += [f"| {T:,} | {times[T] * 1000:.1f} ms | {times[T] / base:.2f} |" for T in sizes]
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--parts", default="quality,stability,resume,cost")
    args = ap.parse_args(argv)
    import faiss

    faiss.omp_set_num_threads(1)
    params = LayoutParams(n_jobs=1, random_state=args.seed)

    def log(m):
        print(m, file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    parts = {"quality": quality_table, "stability": stability, "resume": resume, "cost": cost}
    blocks = ["\n".join(parts[p](params, args.seed, log)) for p in args.parts.split(",")]
    print("\n\n".join(blocks))
    print(f"\n{time.perf_counter() - t0:.0f} s wall; command: python benchmarks/layout_promises.py "
          + " ".join(argv if argv is not None else sys.argv[1:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
