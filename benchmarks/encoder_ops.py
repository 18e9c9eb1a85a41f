"""Work the CLIP encoder launches per batch: half weights (what runs on CUDA now) against
float32 weights under autocast (what ran before), in the same run; on CUDA also the half
model captured once as a CUDA graph and replayed per batch (not in the encoder yet: this
row says what it would save).

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


def measure(encode, batch: np.ndarray, context, repeats: int) -> dict[str, float]:
    """One profiled call of ``encode``, then ``repeats`` timed ones (after a warm-up call)."""
    from torch.profiler import ProfilerActivity, profile

    with context():
        encode(batch)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            encode(batch)
        thread, wall = [], []
        for _ in range(repeats):
            t0, w0 = time.thread_time(), time.perf_counter()
            encode(batch)
            thread.append(time.thread_time() - t0)
            wall.append(time.perf_counter() - w0)
    aten = [e for e in prof.events() if e.name.startswith("aten::")]
    top = [e for e in aten if e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")]
    return {"ops": len(top), "fused_attention": sum(e.name == "aten::_native_multi_head_attention" for e in aten),
            "thread_ms": 1e3 * statistics.median(thread), "wall_ms": 1e3 * statistics.median(wall)}


def graphed(encoder: ClipEncoder, batch_size: int):
    """``encoder.encode`` for batches of ``batch_size`` as one CUDA graph replay: the image
    tower captured once on a static input (warmed up on a side stream, as torch's docs do)."""
    import torch

    model, size = encoder._model, encoder.input_size
    with torch.inference_mode():
        static_in = torch.zeros((batch_size, 3, size, size), device="cuda", dtype=encoder._input_dtype)
        static_in = static_in.contiguous(memory_format=torch.channels_last)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                model.encode_image(static_in)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = model.encode_image(static_in)

    def encode(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            static_in.copy_(torch.from_numpy(batch).pin_memory().to("cuda", non_blocking=True))
            graph.replay()
            return torch.nn.functional.normalize(static_out.float(), dim=-1).cpu().numpy()

    return encode


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
    rows = {"fp32 weights under fp16 autocast (before)": measure(before.encode, batch, autocast, args.repeats)}
    del before
    after = _encoder(args.arch, device, "fp16")
    rows["fp16 weights (open_clip precision fp16, now)"] = measure(after.encode, batch, contextlib.nullcontext,
                                                                   args.repeats)
    if device == "cuda":
        try:
            replay = graphed(after, args.batch)
        except Exception as error:  # a capture the model's code refuses is a finding too
            print(f"CUDA graph capture failed: {type(error).__name__}: {error}")
        else:
            gap = np.abs(replay(batch) - after.encode(batch)).max()
            print(f"CUDA graph replay against the eager fp16 encoder: max abs difference {gap:.2e}")
            rows["fp16 weights, one CUDA graph replay per batch"] = measure(replay, batch, contextlib.nullcontext,
                                                                          args.repeats)
    print(f"clip:{args.arch}/random on {device}, batch {args.batch}, torch {torch.__version__}")
    print("| encoder | top-level ATen ops per batch | fused attention calls | thread CPU ms per batch | wall ms per batch |")
    print("|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['ops']} | {r['fused_attention']} | {r['thread_ms']:.1f} | {r['wall_ms']:.1f} |")
    first, now, *graph = rows.values()
    print(f"ops ratio now / before: {now['ops'] / first['ops']:.2f}; thread CPU ratio: {now['thread_ms'] / first['thread_ms']:.2f}")
    if graph:
        print(f"CUDA graph / now: thread CPU ratio {graph[0]['thread_ms'] / now['thread_ms']:.2f}, "
              f"wall ratio {graph[0]['wall_ms'] / now['wall_ms']:.2f}")


if __name__ == "__main__":
    main()
