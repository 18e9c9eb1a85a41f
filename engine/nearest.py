"""Exact nearest-neighbour search on the best device there is.

FAISS on its GPUs when a faiss-gpu build is installed; otherwise torch on CUDA when torch
sees a GPU (faiss-gpu and faiss-cpu ship the same ``faiss`` module and cannot be installed
together, so most installs have the CPU build, while a CUDA torch is there anyway for the
encoder, and an exact search is one matrix product and a top-k); otherwise FAISS on the
CPU. All three are exact in float32, so they return the same neighbours up to ties and
float32 rounding. The choice is made at run time and logged once per backend.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Literal

import numpy as np

log = logging.getLogger(__name__)

Metric = Literal["ip", "l2"]
Backend = Literal["faiss-gpu", "torch-cuda", "faiss-cpu", "torch-cpu"]

_SCORE_BLOCK_BYTES = 256 * 2**20  # one block of query-by-base scores on the GPU
_logged: set[str] = set()


def available_backend() -> Backend:
    """The backend :class:`ExactIndex` uses when none is named (see the module docstring)."""
    import faiss

    if getattr(faiss, "get_num_gpus", lambda: 0)() > 0:
        return "faiss-gpu"
    if "torch" not in sys.modules and _no_gpu_driver():  # importing torch to ask cost a pixels watch 6 s, 290 MB
        return "faiss-cpu"
    try:
        import torch
    except ImportError:  # torch is a dependency; only a broken install lacks it
        return "faiss-cpu"
    return "torch-cuda" if torch.cuda.is_available() else "faiss-cpu"


def _no_gpu_driver() -> bool:
    """Whether this Linux machine has no NVIDIA or AMD GPU driver loaded: torch.cuda cannot be
    available there."""
    return sys.platform.startswith("linux") and not any(
        os.path.exists(path) for path in ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia", "/dev/kfd"))


class ExactIndex:
    """A flat (brute-force) index over ``base`` with FAISS's ``search(queries, k)``.

    ``metric`` is ``"ip"`` (inner product, best = largest) or ``"l2"`` (squared Euclidean,
    best = smallest). ``backend`` defaults to :func:`available_backend`; ``"torch-cpu"``
    runs the torch path on the CPU (for checking it where there is no GPU).
    """

    def __init__(self, base: np.ndarray, metric: Metric, backend: Backend | None = None) -> None:
        if metric not in ("ip", "l2"):
            raise ValueError(f"Expected metric 'ip' or 'l2'. Got {metric!r} instead.")
        self.metric = metric
        self.backend = backend or available_backend()
        self.ntotal = len(base)
        base = np.ascontiguousarray(base, dtype=np.float32)
        if self.backend.startswith("torch"):
            import torch

            self._base = torch.from_numpy(base).to(self.backend.removeprefix("torch-"))
            self._base_sq = (self._base * self._base).sum(dim=1) if metric == "l2" else None
        else:
            import faiss

            index = faiss.IndexFlatIP(base.shape[1]) if metric == "ip" else faiss.IndexFlatL2(base.shape[1])
            if self.backend == "faiss-gpu":
                index = faiss.index_cpu_to_all_gpus(index)
            index.add(base)
            self._index = index
        if self.backend not in _logged:
            device = "the GPU" if self.backend in ("faiss-gpu", "torch-cuda") else "the CPU"
            log.info("nearest neighbours (layout, memorisation): exact search on %s (%s)", device, self.backend)
            _logged.add(self.backend)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, indices)``, each (len(queries), k), best first, as FAISS returns them."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if not self.backend.startswith("torch"):
            return self._index.search(queries, k)
        return self._torch_search(queries, k)

    def _torch_search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        import torch

        scores = np.empty((len(queries), k), np.float32)
        indices = np.empty((len(queries), k), np.int64)
        block = max(1, _SCORE_BLOCK_BYTES // (4 * max(self.ntotal, 1)))
        with torch.inference_mode():
            for lo in range(0, len(queries), block):
                q = torch.from_numpy(queries[lo : lo + block]).to(self._base.device)
                s = q @ self._base.T
                if self.metric == "l2":  # |q - b|^2 = |q|^2 + |b|^2 - 2 q.b, as IndexFlatL2
                    s = ((q * q).sum(dim=1, keepdim=True) + self._base_sq).sub_(s, alpha=2.0).clamp_(min=0.0)
                best, idx = torch.topk(s, k, dim=1, largest=self.metric == "ip", sorted=True)
                scores[lo : lo + len(q)] = best.cpu().numpy()
                indices[lo : lo + len(q)] = idx.cpu().numpy()
        return scores, indices
