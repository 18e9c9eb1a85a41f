"""Ingest throughput: decode stage alone, encode stage alone, end to end — in one run.

    .venv/bin/python benchmarks/ingest.py [--clip-images 384] [--pixels-images 20000] [--rss]

Writes a synthetic run of torchvision-style PNG grids (8x8 tiles of 32 px; the demo's and
DCGAN's shape), then for each encoder (a ViT-B-32-sized open_clip model with random
weights, and `pixels`) measures:
- decode: discovery + PNG decode + grid split + preprocess + thumbnails (the worker side);
- encode: the encoder on already-preprocessed batches (the model side);
- store: appending and committing already-encoded rows, 64-sample checkpoints grouped as the pipeline groups a backlog;
- end to end: `evowatch watch --once`'s code path into a fresh store.
The bar is end-to-end >= 0.8 x the slowest stage alone. With --rss it also ingests 10k and
100k samples with `pixels` in child processes and compares their peak RSS (bar: <= 10% growth).
"""
from __future__ import annotations

import argparse
import json
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

from engine.decode import iter_samples  # noqa: E402
from engine.discovery import DiscoveryOptions, content_hash, scan_run  # noqa: E402
from engine.encoders import make_encoder  # noqa: E402
from engine.pipeline import GROUP_ROWS, _prepare, ingest  # noqa: E402
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


def _decode_stage(checkpoints, encoder, options) -> tuple[int, float]:
    start, n = time.perf_counter(), 0
    batch = []
    for ckpt in checkpoints:
        for sample in iter_samples(ckpt, options):
            if hasattr(sample, "image"):
                batch.append(sample)
                if len(batch) == encoder.batch_size:
                    n += len(_prepare(batch, encoder, 48).inputs)
                    batch = []
    if batch:
        n += len(_prepare(batch, encoder, 48).inputs)
    return n, time.perf_counter() - start


def _encode_stage(checkpoints, encoder, options, n_images: int) -> tuple[int, float]:
    samples = [s for c in checkpoints for s in iter_samples(c, options) if hasattr(s, "image")][:n_images]
    inputs = np.stack([encoder.preprocess(s.image) for s in samples])
    encoder.encode(inputs[: min(len(inputs), 8)])  # warm-up
    start = time.perf_counter()
    for i in range(0, len(inputs), encoder.batch_size):
        encoder.encode(inputs[i: i + encoder.batch_size])
    return len(inputs), time.perf_counter() - start


def _store_stage(checkpoints, encoder, options, store_path: Path) -> tuple[int, float]:
    """Appending and committing already-encoded rows, grouped as the pipeline does for a backlog."""
    per_checkpoint = [[s for s in iter_samples(c, options) if hasattr(s, "image")] for c in checkpoints]
    dim = encoder.dim
    rng = np.random.default_rng(0)
    start, n = None, 0
    with StoreWriter(store_path, encoder_record(encoder)) as store:
        start = time.perf_counter()
        for c, samples in zip(checkpoints, per_checkpoint):
            vectors = rng.normal(size=(len(samples), dim)).astype(np.float32)
            thumbs = np.zeros((len(samples), 48, 48, 3), np.uint8)
            defer = store.pending_rows + len(samples) < GROUP_ROWS
            with store.checkpoint(c.step, c.source, "bench", defer=defer) as tx:
                tx.add(vectors, [s.instance for s in samples], [s.label for s in samples], thumbs, [s.path for s in samples])
            n += len(samples)
        store.commit_pending()
    return n, time.perf_counter() - start


def _end_to_end(checkpoints, encoder, options, store_path: Path) -> tuple[int, float]:
    jobs = [(c, content_hash(c)) for c in checkpoints]
    start = time.perf_counter()
    with StoreWriter(store_path, encoder_record(encoder)) as store:
        rows = sum(r.rows for r in ingest(store, jobs, encoder, options))
    return rows, time.perf_counter() - start


def measure(name: str, spec: str, n_images: int, workdir: Path) -> dict:
    run = write_run(workdir / f"run-{name}", n_images)
    options = DiscoveryOptions()
    checkpoints = scan_run(run, options)
    encoder = make_encoder(spec, device="auto")
    n_dec, t_dec = _decode_stage(checkpoints, encoder, options)
    n_enc, t_enc = _encode_stage(checkpoints, encoder, options, n_images)
    n_sto, t_sto = _store_stage(checkpoints, encoder, options, workdir / f"{name}-store-only.zarr")
    n_e2e, t_e2e = _end_to_end(checkpoints, encoder, options, workdir / f"{name}.zarr")
    rates = {"decode": n_dec / t_dec, "encode": n_enc / t_enc, "store": n_sto / t_sto, "end_to_end": n_e2e / t_e2e}
    slower = min(rates["decode"], rates["encode"], rates["store"])
    return {"encoder": name, "spec": spec, "device": encoder.device, "images": n_e2e,
            **{f"{k}_img_s": round(v, 1) for k, v in rates.items()},
            "bottleneck": min(("decode", "encode", "store"), key=rates.get),
            "end_to_end_vs_slower_stage": round(rates["end_to_end"] / slower, 3)}


def _rss_child(n_images: int, workdir: str) -> None:
    work = Path(workdir)
    run = write_run(work / f"rss-run-{n_images}", n_images, seed=1)
    options = DiscoveryOptions()
    encoder = make_encoder("pixels")
    jobs = [(c, content_hash(c)) for c in scan_run(run, options)]
    # ru_maxrss would report the import-time peak (torch): sample the live RSS during ingest instead.
    samples: list[int] = []
    done = threading.Event()

    def watch_rss() -> None:
        while not done.is_set():
            samples.append(_rss_kb())
            time.sleep(0.05)

    with StoreWriter(work / f"rss-{n_images}.zarr", encoder_record(encoder)) as store:
        before = _rss_kb()
        sampler = threading.Thread(target=watch_rss, daemon=True)
        sampler.start()
        rows = sum(r.rows for r in ingest(store, jobs, encoder, options))
        done.set()
        sampler.join()
    print(json.dumps({"images": rows, "peak_rss_mb": round(max(samples) / 1024, 1),
                      "rss_before_ingest_mb": round(before / 1024, 1)}))


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip-images", type=int, default=384)
    parser.add_argument("--pixels-images", type=int, default=20000)
    parser.add_argument("--clip-spec", default="clip:ViT-B-32/random")
    parser.add_argument("--rss", action="store_true", help="also compare peak RSS at 10k vs 100k samples")
    parser.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        _rss_child(args.rss_child, args.workdir)
        return
    with tempfile.TemporaryDirectory(prefix="evowatch-bench-") as tmp:
        rows = [measure("pixels", "pixels", args.pixels_images, Path(tmp)),
                measure("clip-vit-b-32", args.clip_spec, args.clip_images, Path(tmp))]
        print("| encoder | device | images | decode img/s | encode img/s | store img/s | end-to-end img/s | slowest stage | end-to-end / slowest stage |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['spec']} | {r['device']} | {r['images']} | {r['decode_img_s']} | {r['encode_img_s']} | "
                  f"{r['store_img_s']} | {r['end_to_end_img_s']} | {r['bottleneck']} | {r['end_to_end_vs_slower_stage']} |")
        if args.rss:
            peaks = {}
            for n in (10_000, 100_000):
                out = subprocess.run([sys.executable, __file__, "--rss-child", str(n), "--workdir", tmp],
                                     capture_output=True, text=True, check=True)
                peaks[n] = json.loads(out.stdout.strip().splitlines()[-1])
            growth = peaks[100_000]["peak_rss_mb"] / peaks[10_000]["peak_rss_mb"] - 1
            print(f"\npeak RSS during ingest (pixels): 10k samples {peaks[10_000]['peak_rss_mb']} MB, 100k samples "
                  f"{peaks[100_000]['peak_rss_mb']} MB: growth {growth:+.1%} (bar <= +10%); "
                  f"before ingest {peaks[10_000]['rss_before_ingest_mb']} / {peaks[100_000]['rss_before_ingest_mb']} MB")


if __name__ == "__main__":
    main()
