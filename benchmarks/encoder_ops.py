"""Work the CLIP encoder launches per batch: half weights (what runs on CUDA now) against
float32 weights under autocast (what ran before), in the same run.

    .venv/bin/python benchmarks/encoder_ops.py [--arch ViT-B-32] [--device cpu] [--batch 8]

A CUDA encoder is host-bound (docs/ingest.md): every top-level ATen operation is launched
from the encoder's thread with the GIL held, which the store's writes need too. Counted with
torch's profiler over one ``encode`` call: top-level ATen operations and fused attention
calls; timed (median of ``--repeats``): the calling thread's CPU seconds and the wall time
per batch. The counts are the device's own on any device; on a CPU the times are compute
(CPU kernels in float16 are slow), so only a GPU's times speak for the GPU.
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.encoders import ClipEncoder, _load_clip, parse_encoder_spec, resolve_device  # noqa: E402


def _encoder(arch: str, device: str, precision: str) -> ClipEncoder:
    spec = parse_encoder_spec(f"clip:{arch}/random")
    model, name, identity = _load_clip(spec, precision)
    return ClipEncoder(model, name, identity, device, None, precision=precision)


def measure(encoder: ClipEncoder, batch: np.ndarray, context, repeats: int) -> dict[str, float]:
    """One profiled call, then ``repeats`` timed ones (after a warm-up call)."""
    from torch.profiler import ProfilerActivity, profile

    with context():
        encoder.encode(batch)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            encoder.encode(batch)
        thread, wall = [], []
        for _ in range(repeats):
            t0, w0 = time.thread_time(), time.perf_counter()
            encoder.encode(batch)
            thread.append(time.thread_time() - t0)
            wall.append(time.perf_counter() - w0)
    aten = [e for e in prof.events() if e.name.startswith("aten::")]
    top = [e for e in aten if e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")]
    return {"ops": len(top), "fused_attention": sum(e.name == "aten::_native_multi_head_attention" for e in aten),
            "thread_ms": 1e3 * statistics.median(thread), "wall_ms": 1e3 * statistics.median(wall)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="ViT-B-32")
    parser.add_argument("--device", default="cpu", help="cpu, cuda")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import torch

    device, _ = resolve_device(args.device)
    before = _encoder(args.arch, device, "fp32")
    size = before.input_size
    batch = np.random.default_rng(0).standard_normal((args.batch, 3, size, size)).astype(np.float32)
    autocast = lambda: torch.autocast(torch.device(device).type, dtype=torch.float16)  # noqa: E731
    rows = {"fp32 weights under fp16 autocast (before)": measure(before, batch, autocast, args.repeats)}
    del before
    after = _encoder(args.arch, device, "fp16")
    rows["fp16 weights (open_clip precision fp16, now)"] = measure(after, batch, contextlib.nullcontext, args.repeats)
    print(f"clip:{args.arch}/random on {device}, batch {args.batch}, torch {torch.__version__}")
    print("| encoder | top-level ATen ops per batch | fused attention calls | thread CPU ms per batch | wall ms per batch |")
    print("|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['ops']} | {r['fused_attention']} | {r['thread_ms']:.1f} | {r['wall_ms']:.1f} |")
    first, now = rows.values()
    print(f"ops ratio now / before: {now['ops'] / first['ops']:.2f}; thread CPU ratio: {now['thread_ms'] / first['thread_ms']:.2f}")


if __name__ == "__main__":
    main()
