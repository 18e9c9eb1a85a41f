"""The ingest pipeline with an encoder whose every call costs a fixed time, as a GPU's does.

    .venv/bin/python benchmarks/encoder_calls.py [--images 4096] [--call-ms 0,15,60]

A GPU encoder's call pays a fixed cost (the model's Python dispatch, launches, waiting for
the result) whatever the batch, so small checkpoints encoded one call each starve it. This
runs the real pipeline (decode worker processes, shared slots, store writes) on the
benchmark's 64-sample grids of 224-px CLIP inputs, with a synthetic encoder that copies the
pixels it is given (the host-to-device copy), waits ``call-ms`` with the GIL released and
returns random unit vectors. Reported per cost: samples/s and its ratio to the free
encoder's rate measured in the same run, the number of encoder calls, and the watcher
process's CPU per sample by thread (where a GPU machine's host time goes).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from ingest import write_run  # noqa: E402

from engine.discovery.identity import content_hash  # noqa: E402
from engine.discovery.options import DiscoveryOptions  # noqa: E402
from engine.discovery.scan import scan_run  # noqa: E402
from engine.encoders import ClipPreprocessor  # noqa: E402
from engine.pipeline import ingest  # noqa: E402
from engine.session import encoder_record  # noqa: E402
from stores.zarr_store import StoreWriter  # noqa: E402


class TimedEncoder:
    """CLIP-shaped inputs (224 px, batch 256), a fixed cost per call, random unit vectors."""

    spec = identity = "synthetic-timed"
    dim, device, fallback, input_size, batch_size, supports_text = 512, "cuda", None, 224, 256, False
    preprocessor = ClipPreprocessor(size=224, mean=(0.48, 0.46, 0.41), std=(0.27, 0.26, 0.28))

    def __init__(self, call_seconds: float) -> None:
        self.call_seconds, self.calls = call_seconds, 0
        self._rng = np.random.default_rng(0)

    def encode_pixels(self, pixels) -> np.ndarray:
        parts = [pixels] if isinstance(pixels, np.ndarray) else list(pixels)
        n = sum(len(np.array(p)) for p in parts)  # the copy to the device
        time.sleep(self.call_seconds)
        self.calls += 1
        v = self._rng.standard_normal((n, self.dim)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def _thread_cpu() -> dict[int, tuple[str, float]]:
    names = {t.native_id: t.name for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
            comm = Path(f"/proc/self/task/{tid}/comm").read_text().strip()
        except FileNotFoundError:  # a thread that just ended
            continue
        out[int(tid)] = (names.get(int(tid), comm), (int(fields[11]) + int(fields[12])) / tick)
    return out


def measure(run: Path, call_seconds: float, work: Path) -> dict:
    encoder, options = TimedEncoder(call_seconds), DiscoveryOptions()
    jobs = [(c, content_hash(c)) for c in scan_run(run, options)]
    seen: dict[int, tuple[str, float]] = {}
    done = threading.Event()

    def watch() -> None:  # threads come and go: keep each one's last reading
        while not done.is_set():
            seen.update(_thread_cpu())
            time.sleep(0.1)

    before = _thread_cpu()
    threading.Thread(target=watch, name="benchmark-monitor", daemon=True).start()
    start = time.perf_counter()
    with StoreWriter(Path(tempfile.mkdtemp(dir=work)) / "s.zarr", encoder_record(encoder)) as store:
        rows = sum(r.rows for r in ingest(store, jobs, encoder, options))
    wall = time.perf_counter() - start
    done.set()
    seen.update(_thread_cpu())
    by_thread: dict[str, float] = {}
    for tid, (name, cpu) in seen.items():
        if name != "benchmark-monitor":
            name = name.rstrip("0123456789_")  # pools' numbered threads together
            by_thread[name] = by_thread.get(name, 0.0) + cpu - before.get(tid, ("", 0.0))[1]
    return {"rate": rows / wall, "calls": encoder.calls,
            "cpu_ms": {k: 1000 * v / rows for k, v in sorted(by_thread.items(), key=lambda kv: -kv[1]) if v > 0}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--call-ms", default="0,15,60")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="evowatch-bench-") as tmp:
        run = write_run(Path(tmp) / "run", args.images)
        print(f"cores: {len(os.sched_getaffinity(0))}; {args.images} samples in {args.images // 64} checkpoints of 64")
        print("| ms per encoder call | samples/s | / free encoder | encoder calls | watcher CPU ms per sample (by thread) |")
        print("|---|---|---|---|---|")
        free = None
        for ms in [float(x) for x in args.call_ms.split(",")]:
            r = measure(run, ms / 1000, Path(tmp))
            free = free or r["rate"]
            threads = ", ".join(f"{k} {v:.3f}" for k, v in r["cpu_ms"].items() if v >= 0.005)
            print(f"| {ms:g} | {r['rate']:,.0f} | {r['rate'] / free:.2f} | {r['calls']} | "
                  f"{sum(r['cpu_ms'].values()):.3f} ({threads}) |", flush=True)


if __name__ == "__main__":
    main()
