"""The watcher's own process with a host-bound GPU encoder: encoder thread and store writes.

    .venv/bin/python benchmarks/watcher_gil.py [--checkpoints 480] [--op-us 80] [--wait-ms 5]

On the lent H100 the pipeline's end-to-end rate was close to what its stages would give
run one after another (docs/ingest.md, "On a GPU machine"). A CUDA encoder is host-bound
there: each batch is ~180 Python-level torch calls, the GIL held between launches that
release it. This runs the pipeline's own encoder thread and consumer
(``engine.pipeline._encode`` and ``_consume``, real store writes) fed with ready batches
(what the decode processes hand over), with a synthetic encoder of that shape: per
256-sample batch, 180 steps of ``--op-us`` of Python holding the GIL each followed by a
GIL-free call, then ``--wait-ms`` waiting with the GIL released (the GPU finishing).
Reported: the encoder alone, the store alone (the same consumer fed encoded rows), both
together, and together / the slower of the two (1.0: the stages overlap; what stages run
one after another would give is printed beside it), each with the store written in this
process and by the writer process (engine/writer_process.py), alternating; and this
process's own CPU per 1,000 rows when only the store works (the share the encoder's thread
competes with). No decoding: the 2-core development machine can show this process's share
of the problem without a GPU.
"""
from __future__ import annotations

import argparse
import functools
import queue
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from encoder_calls import TimedEncoder  # noqa: E402

from engine.batches import END, Done, PreparedBatch, Start, StoreColumns  # noqa: E402
from engine.pipeline import _consume, _encode, _Encoded, encoded_queue  # noqa: E402
from engine.records import Checkpoint  # noqa: E402
from engine.session import encoder_record  # noqa: E402
from engine.writer_process import WriterProcess  # noqa: E402
from stores.zarr_store import StoreWriter  # noqa: E402

PER_CHECKPOINT = 64
_RELEASED = bytes(8 * 1024)  # zlib.crc32 releases the GIL on buffers over 5 kB: a kernel launch


class HostBoundEncoder(TimedEncoder):
    """A CUDA encoder's host side: Python between GIL-free launches, then the wait for the GPU."""

    def __init__(self, op_seconds: float, wait_seconds: float, ops: int = 180) -> None:
        super().__init__(wait_seconds)
        self.op_seconds, self.ops = op_seconds, ops

    def encode_pixels(self, pixels) -> np.ndarray:
        n = sum(len(p) for p in ([pixels] if isinstance(pixels, np.ndarray) else pixels))
        for _ in range(self.ops):
            until = time.perf_counter() + self.op_seconds
            while time.perf_counter() < until:  # the module's Python, holding the GIL
                pass
            zlib.crc32(_RELEASED)
        time.sleep(self.call_seconds)
        self.calls += 1
        v = self._rng.standard_normal((n, self.dim)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def _checkpoint_messages(n_checkpoints: int, encoded: bool, encoder: HostBoundEncoder) -> list:
    """What the decode processes hand over (``encoded``: what the encoder thread hands on)."""
    rng = np.random.default_rng(0)
    pixels = np.zeros((PER_CHECKPOINT, 224, 224, 3), np.uint8)
    items: list = []
    for i in range(n_checkpoints):
        checkpoint = Checkpoint(step=i, source=f"samples/step_{i:06d}.png", files=())
        columns = StoreColumns(thumbnails=rng.integers(0, 256, (PER_CHECKPOINT, 48, 48, 3), dtype=np.uint8),
                               instances=list(range(PER_CHECKPOINT)), labels=[None] * PER_CHECKPOINT,
                               paths=[f"{checkpoint.source}#{k}" for k in range(PER_CHECKPOINT)], latents=None)
        if encoded:
            vectors = rng.standard_normal((PER_CHECKPOINT, encoder.dim)).astype(np.float32)
            batch = _Encoded(vectors / np.linalg.norm(vectors, axis=1, keepdims=True), columns)
        else:
            batch = PreparedBatch(pixels, columns)
        items += [Start(checkpoint, f"hash{i}"), batch, Done(checkpoint)]
    return items + [END]


def _fed(items: list) -> queue.Queue:
    """A bounded queue filled by a thread, as the decode processes' receiver fills it."""
    out: queue.Queue = queue.Queue(maxsize=16)
    threading.Thread(target=lambda: [out.put(x) for x in items], daemon=True).start()
    return out


def _encoder_alone(encoder: HostBoundEncoder, n_rows: int) -> float:
    pixels = np.zeros((encoder.batch_size, 224, 224, 3), np.uint8)
    start = time.perf_counter()
    for _ in range(n_rows // encoder.batch_size):
        encoder.encode_pixels(pixels)
    return n_rows // encoder.batch_size * encoder.batch_size / (time.perf_counter() - start)


def _store(encoder: HostBoundEncoder, inbox: queue.Queue, n_jobs: int, work: Path, child: bool) -> tuple[float, float]:
    """Rows/s of the consumer fed from ``inbox`` (in this process, or in the writer process),
    and this process's own CPU milliseconds per 1,000 rows (what the encoder competes with)."""
    with StoreWriter(Path(tempfile.mkdtemp(dir=work)) / "s.zarr", encoder_record(encoder)) as store:
        start, cpu = time.perf_counter(), time.process_time()
        if child:
            results = WriterProcess(store, functools.partial(_consume, n_jobs=n_jobs, on_rows=None)).results(inbox)
        else:
            results = _consume(store, inbox, n_jobs, None)
        rows = sum(r.rows for r in results)
        return rows / (time.perf_counter() - start), (time.process_time() - cpu) * 1e6 / rows


def _together(encoder: HostBoundEncoder, n_checkpoints: int, work: Path, child: bool) -> float:
    decoded, encoded = _fed(_checkpoint_messages(n_checkpoints, False, encoder)), encoded_queue(encoder)
    threading.Thread(target=_encode, args=(encoder, decoded, encoded, threading.Event()), daemon=True).start()
    return _store(encoder, encoded, n_checkpoints, work, child)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=480, help="checkpoints of 64 samples")
    parser.add_argument("--op-us", type=float, default=80.0, help="Python per torch call, GIL held (microseconds)")
    parser.add_argument("--wait-ms", type=float, default=5.0, help="waiting for the GPU per batch, GIL released")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    encoder = HostBoundEncoder(args.op_us / 1e6, args.wait_ms / 1000)
    n = args.checkpoints
    print(f"{n * PER_CHECKPOINT} rows in {n} checkpoints of {PER_CHECKPOINT}; encoder: 180 x {args.op_us:g} us "
          f"GIL held + {args.wait_ms:g} ms wait per {encoder.batch_size}-sample batch")
    print("| store writes | encoder alone | store alone | this process's CPU, store alone (ms / 1,000 rows) | together "
          "| together / slower | stages one after another |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="evowatch-bench-") as tmp:
        for _ in range(args.repeats):
            for child in (False, True):  # alternating, in one run
                enc = _encoder_alone(encoder, n * PER_CHECKPOINT)
                store, store_cpu = _store(encoder, _fed(_checkpoint_messages(n, True, encoder)), n, Path(tmp), child)
                both = _together(encoder, n, Path(tmp), child)
                serial = 1 / (1 / enc + 1 / store)
                where = "writer process" if child else "this process"
                print(f"| {where} | {enc:,.0f} | {store:,.0f} | {store_cpu:.1f} | {both:,.0f} | {both / min(enc, store):.2f} "
                      f"| {serial:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
