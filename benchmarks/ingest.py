"""Ingest throughput: decode stage alone, encode stage alone, end to end — in one run.

    .venv/bin/python benchmarks/ingest.py [--clip-images 384] [--pixels-images 20000] [--only pixels|clip]
                                          [--rss [--rss-repeats 3]]

Writes a synthetic run of torchvision-style PNG grids (8x8 tiles of 32 px; the demo's and
DCGAN's shape), then for each encoder (a ViT-B-32-sized open_clip model with random
weights, and `pixels`) measures, each with its CPU time (this process and its children):
- decode: discovery + PNG decode + grid split + preprocess + thumbnails, by one worker in
  this process, and by the pipeline's decode worker processes;
- encode: the encoder on already-preprocessed batches (the model side);
- store: appending and committing already-encoded rows, 64-sample checkpoints grouped as the pipeline groups a backlog;
- end to end: `evowatch watch --once`'s code path into a fresh store.
The bar is end-to-end >= 0.8 x the slowest stage alone. With --rss it also ingests 10k and
100k samples with `pixels` in child processes and compares the peak memory of the ingest's
process tree (proportional set size, so pages a forked worker shares are counted once; bar:
<= 10% growth). A peak is the maximum of a noisy series (each commit's working copies come
and go), so each size is measured --rss-repeats times, alternately, and the growth is given
between the medians, with every repeat's peak.
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.decode.samples import iter_samples  # noqa: E402
from engine.discovery.identity import content_hash  # noqa: E402
from engine.discovery.options import DiscoveryOptions  # noqa: E402
from engine.discovery.scan import scan_run  # noqa: E402
from engine.encoders import make_encoder  # noqa: E402
from engine.batches import END, PreparedBatch, Preparation, prepare_batch  # noqa: E402
from engine.decode_workers import start_decode_processes  # noqa: E402
from engine.pipeline import GROUP_ROWS, default_workers, ingest, writer_process_wanted  # noqa: E402
from engine.session import encoder_record  # noqa: E402
from stores.zarr_store import StoreWriter  # noqa: E402

TILE, NROW, PAD = 32, 8, 2


def write_run(folder: Path, n_images: int, seed: int = 0) -> Path:
    """Grid PNGs as torchvision.utils.save_image writes them (8x8, padding 2, pad value 0)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    per_grid = NROW * NROW
    side = NROW * (TILE + PAD) + PAD
    base = rng.integers(0, 256, size=(per_grid, TILE, TILE, 3), dtype=np.uint8)
    for g in range(int(np.ceil(n_images / per_grid))):
        grid = np.zeros((side, side, 3), np.uint8)
        tiles = np.clip(base.astype(np.int16) + rng.integers(-20, 20, size=base.shape), 0, 255).astype(np.uint8)
        for k in range(per_grid):
            y, x = divmod(k, NROW)
            grid[PAD + y * (TILE + PAD): PAD + y * (TILE + PAD) + TILE, PAD + x * (TILE + PAD): PAD + x * (TILE + PAD) + TILE] = tiles[k]
        Image.fromarray(grid).save(folder / f"fake_samples_epoch_{g:04d}.png")
    return folder


def _decode_stage(checkpoints, encoder, options) -> tuple[float, float]:
    start, n = _now(), 0
    batch = []
    for ckpt in checkpoints:
        for sample in iter_samples(ckpt, options):
            if hasattr(sample, "image"):
                batch.append(sample)
                if len(batch) == encoder.batch_size:
                    n += len(prepare_batch(batch, encoder.preprocessor, 48).pixels)
                    batch = []
    if batch:
        n += len(prepare_batch(batch, encoder.preprocessor, 48).pixels)
    return _rate(n, start, _now())


def _decode_workers_stage(checkpoints, encoder, options) -> tuple[float, float]:
    """The pipeline's decode worker processes alone: their batches are received and dropped."""
    jobs = [(c, content_hash(c)) for c in checkpoints]
    out: queue.Queue = queue.Queue(maxsize=4)
    start, n = _now(), 0
    receiver, workers = start_decode_processes(jobs, Preparation(options, encoder.preprocessor, encoder.batch_size, 48),
                                                default_workers(), out)
    while (item := out.get()) is not END:
        if isinstance(item, PreparedBatch):
            n += len(item.pixels)
            if item.release:
                item.release()
    wall = time.perf_counter()
    for worker in workers:
        worker.join()  # a child's CPU time is counted once it is reaped
    return _rate(n, start, (wall, _cpu_seconds()))


def _cpu_seconds() -> float:
    return sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for f in ("ru_utime", "ru_stime"))


def _now() -> tuple[float, float]:
    """Wall-clock and CPU seconds (this process and its reaped children)."""
    return time.perf_counter(), _cpu_seconds()


def _rate(n: int, start: tuple[float, float], stop: tuple[float, float]) -> tuple[float, float]:
    """(images/s, CPU seconds per 1,000 images) of the timed part of a stage (not its set-up)."""
    return n / (stop[0] - start[0]), 1000 * (stop[1] - start[1]) / n


def _encode_stage(checkpoints, encoder, options, n_images: int) -> tuple[float, float]:
    samples = [s for c in checkpoints for s in iter_samples(c, options) if hasattr(s, "image")][:n_images]
    pre = encoder.preprocessor
    pixels = np.stack([pre.pixels(s.image) for s in samples])
    encoder.encode_pixels(pixels[: min(len(pixels), 8)])  # warm-up
    start = _now()
    for i in range(0, len(pixels), encoder.batch_size):  # the encoder thread's work: finish the inputs, encode
        encoder.encode_pixels(pixels[i: i + encoder.batch_size])
    return _rate(len(pixels), start, _now())


def _store_stage(checkpoints, encoder, options, store_path: Path) -> tuple[float, float]:
    """Appending and committing already-encoded rows, grouped as the pipeline does for a backlog."""
    per_checkpoint = [[s for s in iter_samples(c, options) if hasattr(s, "image")] for c in checkpoints]
    dim = encoder.dim
    rng = np.random.default_rng(0)
    start, n = None, 0
    with StoreWriter(store_path, encoder_record(encoder)) as store:
        start = _now()
        for c, samples in zip(checkpoints, per_checkpoint):
            vectors = rng.normal(size=(len(samples), dim)).astype(np.float32)
            thumbs = np.zeros((len(samples), 48, 48, 3), np.uint8)
            defer = store.pending_rows + len(samples) < GROUP_ROWS
            with store.checkpoint(c.step, c.source, "bench", defer=defer) as tx:
                tx.add(vectors, [s.instance for s in samples], [s.label for s in samples], thumbs, [s.path for s in samples])
            n += len(samples)
        store.commit_pending()
    return _rate(n, start, _now())


def _end_to_end(checkpoints, encoder, options, store_path: Path) -> tuple[float, float]:
    jobs = [(c, content_hash(c)) for c in checkpoints]
    start = _now()
    with StoreWriter(store_path, encoder_record(encoder)) as store:
        rows = sum(r.rows for r in ingest(store, jobs, encoder, options))
    return _rate(rows, start, _now())


def measure(name: str, spec: str, n_images: int, workdir: Path) -> dict:
    run = write_run(workdir / f"run-{name}", n_images)
    options = DiscoveryOptions()
    checkpoints = scan_run(run, options)
    encoder = make_encoder(spec, device="auto")
    stages = {
        "decode_one": _decode_stage(checkpoints, encoder, options),
        "decode_workers": _decode_workers_stage(checkpoints, encoder, options),
        "encode": _encode_stage(checkpoints, encoder, options, n_images),
        "store": _store_stage(checkpoints, encoder, options, workdir / f"{name}-store-only.zarr"),
        "end_to_end": _end_to_end(checkpoints, encoder, options, workdir / f"{name}.zarr"),
    }
    rate = {k: v[0] for k, v in stages.items()}
    cpu = {k: v[1] for k, v in stages.items()}
    # When every stage runs on the same cores, "the bottleneck kept busy" is those cores kept busy.
    cores = len(os.sched_getaffinity(0))
    busy = cpu["end_to_end"] * rate["end_to_end"] / 1000 / cores
    per_worker = min(rate["decode_one"], rate["encode"], rate["store"])
    whole = min(rate["decode_workers"], rate["encode"], rate["store"])
    return {"encoder": name, "spec": spec, "device": encoder.device, "images": n_images, "cores": cores,
            "workers": default_workers(),
            "store_writes": "writer process" if writer_process_wanted(len(checkpoints), default_workers()) else "this process",
            **{f"{k}_img_s": round(v) for k, v in rate.items()},
            **{f"{k}_cpu_s_per_1k": round(v, 3) for k, v in cpu.items()},
            "e2e_vs_slowest_one_decode_worker": round(rate["end_to_end"] / per_worker, 2),
            "e2e_vs_slowest_all_decode_workers": round(rate["end_to_end"] / whole, 2),
            "e2e_cores_busy": round(busy, 2)}


def _rss_child(n_images: int, workdir: str) -> None:
    work = Path(workdir)
    run = work / f"rss-run-{n_images}"  # the same run for every repeat, each into a fresh store
    if not run.is_dir():
        write_run(run, n_images, seed=1)
    store_path = Path(tempfile.mkdtemp(dir=work)) / f"rss-{n_images}.zarr"
    options = DiscoveryOptions()
    encoder = make_encoder("pixels")
    jobs = [(c, content_hash(c)) for c in scan_run(run, options)]
    # ru_maxrss would report the import-time peak (torch): sample the live memory during ingest instead.
    samples: list[int] = []
    done = threading.Event()

    def watch_rss() -> None:
        while not done.is_set():
            if (kb := _rss_kb()) is not None:
                samples.append(kb)
            time.sleep(0.05)

    with StoreWriter(store_path, encoder_record(encoder)) as store:
        before = _rss_kb()
        sampler = threading.Thread(target=watch_rss, daemon=True)
        sampler.start()
        rows = sum(r.rows for r in ingest(store, jobs, encoder, options))
        done.set()
        sampler.join()
    tenths = [round(max(part) / 1024, 1) for part in np.array_split(np.array(samples), 10) if len(part)]
    print(json.dumps({"images": rows, "peak_rss_mb": round(max(samples) / 1024, 1),
                      "rss_before_ingest_mb": round(before / 1024, 1), "peak_by_tenth_mb": tenths}))


def _rss_kb() -> int | None:
    """Proportional set size of this process and its children (the decode workers), in kB;
    None when a child exited during the reading.

    The processes are read one after another: a worker that exits between its own reading
    and the next one's hands its share of their common pages to the others, which are then
    counted in full while its share was already counted (~6 MB too much at a worker's exit).
    """
    total = 0
    children = _children(os.getpid())
    for pid in [os.getpid(), *children]:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as rollup:
                total += next(int(line.split()[1]) for line in rollup if line.startswith("Pss:"))
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            return None  # a worker that just exited (a zombie has no mappings)
    return total if all(_alive(pid) for pid in children) else None


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:
            pass
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip-images", type=int, default=384)
    parser.add_argument("--pixels-images", type=int, default=20000)
    parser.add_argument("--clip-spec", default="clip:ViT-B-32/random")
    parser.add_argument("--only", choices=("pixels", "clip"), help="measure one encoder")
    parser.add_argument("--rss", action="store_true", help="also compare peak RSS at 10k vs 100k samples")
    parser.add_argument("--rss-repeats", type=int, default=3, help="ingests per size for --rss (median)")
    parser.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        _rss_child(args.rss_child, args.workdir)
        return
    with tempfile.TemporaryDirectory(prefix="evowatch-bench-") as tmp:
        rows = [measure("pixels", "pixels", args.pixels_images, Path(tmp)) if args.only != "clip" else None,
                measure("clip-vit-b-32", args.clip_spec, args.clip_images, Path(tmp)) if args.only != "pixels" else None]
        rows = [r for r in rows if r is not None]
        print("| encoder | device | images | decode, 1 worker | decode, pipeline's workers | encode | store | "
              "end to end | e2e / slowest stage (1 decode worker) | e2e / slowest stage (all workers) | "
              "cores busy end to end | store writes end to end |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['spec']} | {r['device']} | {r['images']} | {r['decode_one_img_s']} | "
                  f"{r['decode_workers_img_s']} ({r['workers']}) | {r['encode_img_s']} | {r['store_img_s']} | "
                  f"{r['end_to_end_img_s']} | {r['e2e_vs_slowest_one_decode_worker']} | "
                  f"{r['e2e_vs_slowest_all_decode_workers']} | {r['e2e_cores_busy']:.0%} of {r['cores']} | {r['store_writes']} |")
        print("\nCPU seconds per 1,000 images (this process and its workers):")
        print("| encoder | decode | encode | store | end to end |")
        print("|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['spec']} | {r['decode_one_cpu_s_per_1k']} | {r['encode_cpu_s_per_1k']} | "
                  f"{r['store_cpu_s_per_1k']} | {r['end_to_end_cpu_s_per_1k']} |")
        print(json.dumps(rows))
        if args.rss:
            peaks: dict[int, list[dict]] = {10_000: [], 100_000: []}
            for _ in range(args.rss_repeats):
                for n in peaks:
                    out = subprocess.run([sys.executable, __file__, "--rss-child", str(n), "--workdir", tmp],
                                         capture_output=True, text=True, check=True)
                    peaks[n].append(json.loads(out.stdout.strip().splitlines()[-1]))
            median = {n: float(np.median([p["peak_rss_mb"] for p in runs])) for n, runs in peaks.items()}
            growth = median[100_000] / median[10_000] - 1
            each = {n: ", ".join(str(p["peak_rss_mb"]) for p in runs) for n, runs in peaks.items()}
            print(f"\npeak memory (PSS of the process tree) during ingest (pixels), median of {args.rss_repeats}: "
                  f"10k samples {median[10_000]:.1f} MB ({each[10_000]}), 100k samples {median[100_000]:.1f} MB "
                  f"({each[100_000]}): growth {growth:+.1%} (bar <= +10%); before ingest "
                  f"{peaks[10_000][0]['rss_before_ingest_mb']} / {peaks[100_000][0]['rss_before_ingest_mb']} MB")


if __name__ == "__main__":
    main()
