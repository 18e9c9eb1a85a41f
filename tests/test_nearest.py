"""Exact kNN backends agree: the torch path (run on the CPU here, on CUDA when there is one)
returns FAISS's neighbours for both metrics."""
from pathlib import Path

import numpy as np
import pytest
import torch

from engine import nearest
from engine.nearest import ExactIndex, available_backend

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _data(n_base=700, n_query=230, dim=48, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n_base, dim)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    query = rng.standard_normal((n_query, dim)).astype(np.float32)
    return base, query


def _reference(base, query, metric, k):
    b, q = base.astype(np.float64), query.astype(np.float64)
    if metric == "ip":
        scores = q @ b.T
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    else:
        scores = ((q[:, None, :] - b[None]) ** 2).sum(-1)
        order = np.argsort(scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), order


def _check(backend, metric, monkeypatch, block_bytes=None):
    if block_bytes is not None:  # several query blocks
        monkeypatch.setattr(nearest, "_SCORE_BLOCK_BYTES", block_bytes)
    base, query = _data()
    scores, idx = ExactIndex(base, metric, backend=backend).search(query, 9)
    ref_scores, ref_idx = _reference(base, query, metric, 9)
    assert scores.shape == idx.shape == (len(query), 9) and idx.dtype == np.int64
    assert np.array_equal(idx, ref_idx)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("backend", ["faiss-cpu", "torch-cpu"])
def test_backends_return_the_exact_neighbours(backend, metric, monkeypatch):
    _check(backend, metric, monkeypatch, block_bytes=4 * 700 * 50)


@needs_cuda
@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_torch_cuda_returns_the_exact_neighbours(metric, monkeypatch):
    _check("torch-cuda", metric, monkeypatch)
    _check("torch-cuda", metric, monkeypatch, block_bytes=4 * 700 * 50)


def test_backend_follows_the_devices(monkeypatch):
    import faiss

    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 0, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert available_backend() == "faiss-cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert available_backend() == "torch-cuda"
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1, raising=False)
    assert available_backend() == "faiss-gpu"


def test_choosing_the_backend_without_a_gpu_driver_does_not_import_torch():
    """Round AF: a pixels watch on a CPU machine imported torch only to ask torch.cuda (6 s and
    290 MB in every process that laid out a step)."""
    import subprocess
    import sys

    from engine.nearest import _no_gpu_driver

    if not _no_gpu_driver():
        pytest.skip("a GPU driver is loaded here")
    code = "import sys; from engine.nearest import available_backend; print(available_backend(), 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1]).stdout
    assert out.split() == ["faiss-cpu", "False"]


@needs_cuda
def test_a_gpu_is_used_when_there_is_one():
    assert available_backend() in ("faiss-gpu", "torch-cuda")


def test_bad_metric():
    with pytest.raises(ValueError, match="Expected metric 'ip' or 'l2'"):
        ExactIndex(np.zeros((3, 2), np.float32), "cosine")
