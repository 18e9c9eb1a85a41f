"""--sampler: weight-checkpoint discovery, the call contract, errors per checkpoint, safe loading."""
from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.cli import main
from engine.discovery.options import DiscoveryOptions
from engine.records import Checkpoint, Sample
from engine.sampler import (Sampler, SamplerError, _as_arrays, load_checkpoint, load_sampler, parse_sampler_spec,
                            scan_weights)
from stores.zarr_store import StoreReader

# A sampler whose output depends on the weights and on the noise: instance i is the noise
# row i (seeded) scaled by the checkpoint's one weight, so rows align across checkpoints.
SAMPLER_SOURCE = '''
import torch
from engine.sampler import load_checkpoint

CALLS = []

def sample(checkpoint_path, n_samples, seed, device="cpu"):
    CALLS.append((checkpoint_path, n_samples, seed, device))
    weights = load_checkpoint(checkpoint_path)
    if weights.get("broken"):
        raise RuntimeError("cannot build the model\\nsecond line of the traceback")
    g = torch.Generator().manual_seed(seed)
    z = torch.rand(n_samples, 3, 1, 1, generator=g)
    images = (z * weights["scale"]).expand(n_samples, 3, 16, 16)  # [0, 1]
    return {"images": images, "latents": z.flatten(1)}

def ignores_seed(checkpoint_path, n_samples, seed):
    # uses the global generator evowatch seeds: still aligned
    return torch.rand(n_samples, 16, 16, 3)
'''


def settle(path: Path) -> None:
    old = time.time() - 10
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(p, (old, old))


def weights(path: Path, **values) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: torch.tensor(v) if isinstance(v, float) else v for k, v in values.items()}, path)
    settle(path)
    return path


@pytest.fixture
def sampler_file(tmp_path) -> Path:
    path = tmp_path / "my_sampler.py"
    path.write_text(SAMPLER_SOURCE)
    return path


def watch(run: Path, store: Path, *extra: str) -> int:
    return main(["-q", "watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-metrics", *extra])


# --- spec and discovery ----------------------------------------------------------------------

@pytest.mark.parametrize("spec", ["", "nofunction", "module:", ":f", "a.b:not-an-identifier"])
def test_bad_specs(spec):
    with pytest.raises(SamplerError, match="Expected --sampler"):
        parse_sampler_spec(spec)


def test_spec_forms(tmp_path, sampler_file, monkeypatch):
    assert parse_sampler_spec("pkg.mod:fn") == ("pkg.mod", "fn")
    assert parse_sampler_spec("C:/x/s.py:fn") == ("C:/x/s.py", "fn")
    by_path = load_sampler(f"{sampler_file}:sample", n_samples=4, device="cpu")
    assert by_path.source_file == sampler_file.resolve() and len(by_path.source_hash) == 32
    monkeypatch.syspath_prepend(str(tmp_path))
    by_module = load_sampler("my_sampler:sample", n_samples=4, device="cpu")
    assert by_module.source_hash == by_path.source_hash
    with pytest.raises(SamplerError, match="no function"):
        load_sampler("my_sampler:missing")
    with pytest.raises(SamplerError, match="not importable"):
        load_sampler("no_such_module_here:sample")
    with pytest.raises(SamplerError, match="no such sampler file; give path/to/file.py:function"):
        load_sampler(f"{tmp_path / 'absent.py'}:sample")
    (tmp_path / "hook.sh").write_text("echo hi\n")  # round AF: an AttributeError traceback
    with pytest.raises(SamplerError, match="hook.sh: not a Python file; give path/to/file.py:function"):
        load_sampler(f"{tmp_path / 'hook.sh'}:sample")
    with pytest.raises(SamplerError, match="is a folder, not a sampler file"):
        load_sampler(f"{tmp_path}/:sample")
    (tmp_path / "lab").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SamplerError, match="lab: is a folder, not a sampler file"):  # was "lab has no function"
        load_sampler("lab:sample")


def test_scan_weights_units(tmp_path):
    run = tmp_path / "run"
    for name in ["model-12.pt", "model-3.pt", "model-best.pt", "last.ckpt", "optimizer-12.pt",
                 "netD_epoch_5.pth", "netG_epoch_5.pth", "network-snapshot-000200.pkl",
                 "lightning_logs/version_0/checkpoints/epoch=3-step=1000-v1.ckpt",
                 "lightning_logs/version_0/checkpoints/epoch=0-step=500.ckpt",
                 "samples_00000100.npz", "sample-4.png", ".hidden-7.pt",
                 "glow_optimizer_12.pth", "D_12.pth", "opt000012.pt", "critic_12.pt",  # ignite, yunjey, guided-diffusion
                 "SNResNetProjectionDiscriminator_12.npz"]:
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_bytes(b"x")
    hf = run / "out" / "checkpoint-500"
    hf.mkdir(parents=True)
    for name in ["model.safetensors", "optimizer.pt", "scheduler.pt", "trainer_state.json"]:
        (hf / name).write_bytes(b"x")
    (run / "store.zarr" / "c").mkdir(parents=True)
    (run / "store.zarr" / "zarr.json").write_text("{}")
    (run / "store.zarr" / "model-9.pt").write_bytes(b"x")
    (hf / "evo.zarr" / "c").mkdir(parents=True)  # a store kept in a checkpoint folder: its writes are no new version
    (hf / "evo.zarr" / "zarr.json").write_text("{}")
    (hf / "evo.zarr" / "c" / "0").write_bytes(b"x")
    (hf / "evo.zarr.lock").write_bytes(b"x")

    found = {c.source: c.step for c in scan_weights(run)}
    assert found == {
        "model-3.pt": 3, "netG_epoch_5.pth": 5, "model-12.pt": 12, "network-snapshot-000200.pkl": 200,
        "lightning_logs/version_0/checkpoints/epoch=0-step=500.ckpt": 500, "out/checkpoint-500": 500,
        "lightning_logs/version_0/checkpoints/epoch=3-step=1000-v1.ckpt": 1000,
    }
    folder = next(c for c in scan_weights(run) if c.source == "out/checkpoint-500")
    assert {p.name for p in folder.files} == {"model.safetensors", "optimizer.pt", "scheduler.pt", "trainer_state.json"}
    assert [c.source for c in scan_weights(run, weight_globs=("netG_*",))] == ["netG_epoch_5.pth"]
    # round AB: a glob with a folder in it matched nothing (names alone were matched)
    assert [c.source for c in scan_weights(run, weight_globs=("lightning_logs/*/checkpoints/epoch=0-*",))] == [
        "lightning_logs/version_0/checkpoints/epoch=0-step=500.ckpt"]
    # a file picked by name in a numbered folder takes the folder's step (round Z: accelerate's
    # checkpoint-500/ema_model.safetensors was said to carry no step)
    (hf / "ema_model.safetensors").write_bytes(b"x")
    assert {c.source: c.step for c in scan_weights(run, weight_globs=("ema_model.safetensors",))} == {
        "out/checkpoint-500/ema_model.safetensors": 500}
    assert [c.step for c in scan_weights(run, DiscoveryOptions(step_regex=r"snapshot-(\d+)"))] == [200]
    # round AB: accelerate numbers a checkpoint's further models (G, D, EMA): not steps 1 and 2
    for step in (500, 1000):
        for name in ("model.safetensors", "model_1.safetensors", "model_2.safetensors", "optimizer.bin"):
            (tmp_path / "acc" / f"checkpoint-{step}" / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / "acc" / f"checkpoint-{step}" / name).write_bytes(b"x")
    assert [(c.step, c.source) for c in scan_weights(tmp_path / "acc")] == [(500, "checkpoint-500"),
                                                                           (1000, "checkpoint-1000")]


def test_a_numbered_run_folder_of_numbered_weights_is_no_checkpoint(tmp_path):
    """Watched from its parent, NVlabs EDM's ``training-runs/00000-cifar10-32x32-…-fp32/`` (its
    ``network-snapshot-*.pkl`` and ``training-state-*.pt``) was one weight checkpoint at step
    32, and mmengine's ``work_dirs/…_800k/iter_*.pth`` one at step 800: the sampler was called
    with the folder. EDM's training state is no generator."""
    edm = tmp_path / "training-runs" / "00000-cifar10-32x32-uncond-ddpmpp-edm-gpus8-batch512-fp32"
    mm = tmp_path / "work_dirs" / "stylegan2_c2_ffhq_256_b4x8_800k"
    for kimg in (0, 200):
        for name in (f"network-snapshot-{kimg:06d}.pkl", f"training-state-{kimg:06d}.pt"):
            (edm.mkdir(parents=True, exist_ok=True) or edm / name).write_bytes(b"x")
        (mm.mkdir(parents=True, exist_ok=True) or mm / f"iter_{kimg + 10000}.pth").write_bytes(b"x")
    assert [(c.step, c.source) for c in scan_weights(tmp_path / "training-runs")] == [
        (0, f"{edm.name}/network-snapshot-000000.pkl"), (200, f"{edm.name}/network-snapshot-000200.pkl")]
    assert [c.step for c in scan_weights(tmp_path / "work_dirs")] == [10000, 10200]


# --- the call contract ------------------------------------------------------------------------

def test_output_forms():
    nchw = torch.linspace(-1, 1, 2 * 3 * 8 * 8).view(2, 3, 8, 8)
    images, labels, latents, given = _as_arrays(nchw)
    assert images.shape == (2, 8, 8, 3) and labels is None and latents is None and given is None
    nhwc = np.zeros((2, 8, 8, 3), np.uint8)
    assert _as_arrays(nhwc)[0].shape == (2, 8, 8, 3)
    assert _as_arrays([np.zeros((3, 8, 8)), np.ones((3, 8, 8))])[0].shape == (2, 8, 8, 3)
    images, labels, latents, given = _as_arrays({"samples": nhwc, "y": torch.tensor([3, 4]), "z": torch.zeros(2, 5),
                                                 "value_range": (-1, 1)})
    assert labels.tolist() == [3, 4] and latents.shape == (2, 5) and given == (-1.0, 1.0)
    with pytest.raises(TypeError, match="value_range"):
        _as_arrays({"images": nhwc, "value_range": (1, 0)})
    with pytest.raises(TypeError, match="without images"):
        _as_arrays({"weights": nhwc})
    with pytest.raises(TypeError, match="no image batch"):
        _as_arrays(np.zeros((2, 5)))
    with pytest.raises(TypeError, match="3 labels for 2 images"):
        _as_arrays({"images": nhwc, "labels": [1, 2, 3]})
    # round AB: numpy's "inhomogeneous shape" for (images, labels); no images stored a 0-sample step for good
    with pytest.raises(TypeError, match=r"returned a tuple of 2, the first a batch of images: return the images, or a mapping"):
        _as_arrays((nhwc, [1, 2]))
    with pytest.raises(TypeError, match="returned no images"):
        _as_arrays(np.zeros((0, 8, 8, 3), np.uint8))


def test_device_only_when_accepted_and_rng_restored(tmp_path):
    seen = {}

    def plain(path, n, seed):
        seen["plain"] = torch.rand(1).item()
        return np.zeros((n, 8, 8, 3), np.uint8)

    def with_kwargs(path, n, seed, **kwargs):
        seen["kwargs"] = kwargs
        return np.zeros((n, 8, 8, 3), np.uint8)

    torch.manual_seed(123)
    before = torch.rand(1).item()
    torch.manual_seed(123)
    Sampler("x:plain", plain, n_samples=2, seed=5, device="cpu")(tmp_path)
    assert torch.rand(1).item() == before  # the caller's generator state is untouched
    torch.manual_seed(5)
    assert seen["plain"] == torch.rand(1).item()  # the call ran seeded with `seed`
    Sampler("x:with_kwargs", with_kwargs, n_samples=2, device="cpu")(tmp_path)
    assert seen["kwargs"] == {"device": "cpu"}


def test_iter_samples_rows_are_instances(tmp_path, sampler_file):
    ckpt = weights(tmp_path / "run" / "model-1.pt", scale=0.5)
    sampler = load_sampler(f"{sampler_file}:sample", n_samples=5, seed=3, device="cpu")
    checkpoint = Checkpoint(step=1, source="model-1.pt", files=(ckpt,), root=tmp_path / "run")
    items = list(sampler.iter_samples(checkpoint))
    assert all(isinstance(s, Sample) for s in items)
    assert [s.instance for s in items] == list(range(5))
    assert [s.path for s in items] == [f"model-1.pt#{i}" for i in range(5)]
    assert items[0].image.shape == (16, 16, 3) and items[0].image.dtype == np.uint8 and items[0].latent.shape == (3,)
    module = sampler.function.__globals__
    assert module["CALLS"][-1] == (str(ckpt), 5, 3, "cpu")


# --- end to end through `evowatch watch --sampler` ----------------------------------------------

def test_watch_sampler_aligned_errors_reported_and_resample_on_change(tmp_path, sampler_file, capsys):
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    for step, scale in [(1, 0.25), (2, 0.5), (4, 1.0)]:
        weights(run / f"model-{step}.pt", scale=scale)
    weights(run / "model-3.pt", scale=1.0, broken=True)  # the sampler raises on this one
    weights(run / "optimizer-3.pt", state=1.0)  # never sampled
    (run / "model-best.pt").write_bytes(b"not even a torch file")  # no step: never sampled

    spec = f"{sampler_file}:sample"
    assert watch(run, store, "--sampler", spec, "--samples-per-checkpoint", "6", "--sampler-seed", "7") == 0
    reader = StoreReader(store)
    info = reader.info()
    # a failed sampling is not stored as an empty step: the next run samples it again
    assert info["steps"] == [1, 2, 4] and info["rows"] == 18 and info["warnings"] == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "model-3.pt" in line]
    assert len(lines) == 2, lines  # the failure in one line, and the watcher went on
    reason = lines[0].removeprefix("evowatch: skipped model-3.pt: ")
    assert reason.startswith(f"sampler {spec} failed: RuntimeError: cannot build the model")
    assert lines[1] == ("evowatch: step 3 (model-3.pt): nothing stored; the next run of this command samples it "
                        "again (a live watch: once its weights change; a fixed sampler is read when the watch restarts)")

    # Instance ids align: row i is noise row i at every step (same seed), scaled by the weights.
    steps, instances = reader.samples("step"), reader.samples("instance")
    latents, thumbs = reader.samples("latent"), reader.samples("thumbnail").astype(float)
    for step in (1, 2, 4):
        rows = steps == step
        assert instances[rows].tolist() == list(range(6))
        np.testing.assert_array_equal(latents[rows], latents[steps == 1])
    ratio = thumbs[steps == 4].mean(axis=(1, 2, 3)) / np.maximum(thumbs[steps == 2].mean(axis=(1, 2, 3)), 1)
    np.testing.assert_allclose(ratio, 2.0, atol=0.05)

    identity = reader.attrs["history"][-1]["sampler"]
    assert identity["spec"] == spec and identity["seed"] == 7 and identity["n_samples"] == 6
    assert identity["file_hash"] and identity["trust_checkpoints"] is False

    # Idempotent (the failing one is tried again); then a changed sampler resamples every
    # checkpoint (old rows superseded).
    assert watch(run, store, "--sampler", spec, "--samples-per-checkpoint", "6", "--sampler-seed", "7") == 0
    assert StoreReader(store).n_rows == 18
    assert "skipped model-3.pt: sampler" in capsys.readouterr().err
    sampler_file.write_text(SAMPLER_SOURCE.replace("weights.get(\"broken\")", "False and weights.get(\"broken\")"))
    assert watch(run, store, "--sampler", spec, "--samples-per-checkpoint", "6", "--sampler-seed", "7") == 0
    after = StoreReader(store)
    assert after.n_rows == 18 + 24 and int(after.current_rows().sum()) == 24
    # Weights rewritten in place (a new version of model-4.pt) are sampled again; the others are not.
    weights(run / "model-4.pt", scale=0.75)
    os.utime(run / "model-4.pt", ns=(1_600_000_000 * 10**9,) * 2)  # settled, and a new version
    assert watch(run, store, "--sampler", spec, "--samples-per-checkpoint", "6", "--sampler-seed", "7") == 0
    assert StoreReader(store).n_rows == 18 + 24 + 6


DIVERGING_SAMPLER = '''
import torch
from engine.sampler import load_checkpoint

def sample(checkpoint_path, n_samples, seed):
    scale = float(load_checkpoint(checkpoint_path)["scale"])  # NaN: the generator diverged
    images = torch.linspace(-1, 1, n_samples).view(-1, 1, 1, 1).expand(n_samples, 3, 8, 8) * scale
    if scale == 0.5:
        images = images.clone()
        images[1, 0, 0, 0] = float("inf")  # one sample gone bad
    return images
'''


def test_a_diverged_generators_samples_are_said_and_the_watch_goes_on(tmp_path, capsys):
    """Round Z: a sampler returning NaN (weights gone NaN), an infinite pixel or values out of
    every range raised SkipFile out of the watch (exit 1, every rerun at the same checkpoint);
    a sample partly NaN was stored as flat grey without a word."""
    sampler = tmp_path / "diverging.py"
    sampler.write_text(DIVERGING_SAMPLER)
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    for step, scale in [(1, 1.0), (2, 0.5), (3, float("nan")), (4, 1000.0)]:
        weights(run / f"model-{step}.pt", scale=scale)
    assert watch(run, store, "--sampler", f"{sampler}:sample", "--samples-per-checkpoint", "4",
                 "--value-range", "auto") == 0
    reasons = {line.split(": ", 2)[1].removeprefix("skipped "): line.split(": ", 3)[-1]
               for line in capsys.readouterr().err.splitlines() if ": skipped " in line}
    assert reasons == {
        "model-2.pt": "1 of 4 samples hold NaN or infinite values (row 1), not stored: a diverged generator?",
        "model-3.pt": "holds no finite value (NaN or infinite everywhere): a diverged generator?",
        "model-4.pt": "values span [-1e+03, 1e+03]: not images in [-1, 1], [0, 1] or [0, 255]"}
    reader = StoreReader(store)
    steps, instances = reader.samples("step"), reader.samples("instance")
    assert reader.info()["steps"] == [1, 2, 3, 4]
    assert instances[steps == 1].tolist() == [0, 1, 2, 3] and instances[steps == 2].tolist() == [0, 2, 3]
    assert not (steps == 3).any() and not (steps == 4).any()


def test_a_live_watch_does_not_sample_a_failing_checkpoint_again_and_again(tmp_path, sampler_file):
    """Not stored, a checkpoint whose sampler failed would be found again at every pass of a
    live watch (every tick): it is tried again only once its weights change."""
    from engine.cli import build_parser
    from engine.session import open_session

    run, store = tmp_path / "run", tmp_path / "s.zarr"
    weights(run / "model-1.pt", scale=1.0)
    weights(run / "model-2.pt", scale=1.0, broken=True)
    args = build_parser().parse_args(["watch", str(run), "--store", str(store), "--encoder", "pixels", "--no-metrics",
                                      "--no-layout", "--settle", "0", "--sampler", f"{sampler_file}:sample",
                                      "--samples-per-checkpoint", "2"])
    with open_session(args) as watcher:
        calls = watcher.config.sampler.function.__globals__["CALLS"]
        watcher.run_once()
        watcher.run_once()
        assert [Path(c[0]).name for c in calls] == ["model-1.pt", "model-2.pt"]
        weights(run / "model-2.pt", scale=1.0)  # fixed: a new version
        os.utime(run / "model-2.pt", ns=(1_600_000_000 * 10**9,) * 2)
        watcher.run_once()
        assert [Path(c[0]).name for c in calls][-1] == "model-2.pt" and watcher.store.n_rows == 4


def test_sampler_that_ignores_the_seed_is_still_aligned(tmp_path, sampler_file):
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    for step in (10, 20):
        weights(run / f"model-{step}.pt", scale=1.0)
    assert watch(run, store, "--sampler", f"{sampler_file}:ignores_seed", "--samples-per-checkpoint", "4") == 0
    reader = StoreReader(store)
    steps, thumbs = reader.samples("step"), reader.samples("thumbnail")
    np.testing.assert_array_equal(thumbs[steps == 10], thumbs[steps == 20])
    assert thumbs[steps == 10].std() > 10


# --- safe loading --------------------------------------------------------------------------

class Pickled:  # a full Python object in a checkpoint: weights_only refuses it
    def __init__(self) -> None:
        self.scale = 1.0


def test_load_checkpoint_is_safe_by_default(tmp_path, sampler_file, capsys):
    path = tmp_path / "run" / "model-1.pt"
    path.parent.mkdir()
    torch.save({"net": Pickled(), "scale": torch.tensor(1.0)}, path)
    settle(path)
    with pytest.raises(SamplerError, match="--trust-checkpoints"):
        load_checkpoint(path)
    assert isinstance(load_checkpoint(path, trusted=True)["net"], Pickled)
    # round AB: StyleGAN's network-snapshot-*.pkl is a plain pickle: "Invalid magic number" when trusted
    import pickle

    with open(tmp_path / "network-snapshot-000200.pkl", "wb") as fh:
        pickle.dump({"G_ema": Pickled()}, fh)
    with pytest.raises(SamplerError, match="--trust-checkpoints"):
        load_checkpoint(tmp_path / "network-snapshot-000200.pkl")
    assert isinstance(load_checkpoint(tmp_path / "network-snapshot-000200.pkl", trusted=True)["G_ema"], Pickled)

    # Through the watcher: refused (one skipped file), then, the same command with
    # --trust-checkpoints into the same store, sampled (the refused step was stored empty and
    # never sampled again, whatever the flag).
    store = tmp_path / "s.zarr"
    # nothing stored: status 1 (round BC), as for a run of no checkpoint
    assert watch(path.parent, store, "--sampler", f"{sampler_file}:sample", "--samples-per-checkpoint", "2") == 1
    assert "pass --trust-checkpoints" in capsys.readouterr().err
    assert not store.exists() or StoreReader(store).n_rows == 0
    assert watch(path.parent, store, "--sampler", f"{sampler_file}:sample", "--samples-per-checkpoint", "2",
                 "--trust-checkpoints") == 0
    assert StoreReader(store).n_rows == 2
    assert StoreReader(store).attrs["history"][-1]["sampler"]["trust_checkpoints"] is True


def test_load_checkpoint_folder(tmp_path):
    folder = tmp_path / "checkpoint-500"
    folder.mkdir()
    torch.save({"w": torch.ones(2)}, folder / "model.pt")
    torch.save({"state": 1}, folder / "optimizer.pt")
    assert load_checkpoint(folder)["w"].tolist() == [1.0, 1.0]
    torch.save({"w": torch.ones(2)}, folder / "other.pth")
    (folder / "model.pt").unlink()
    assert load_checkpoint(folder)["w"].tolist() == [1.0, 1.0]
    torch.save({"w": torch.ones(2)}, folder / "another.pth")
    with pytest.raises(SamplerError, match="cannot tell which file"):
        load_checkpoint(folder)


def test_references_still_decoded(tmp_path, sampler_file):
    from PIL import Image

    real = tmp_path / "real"
    real.mkdir()
    for i in range(3):
        Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(real / f"{i}.png")
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    weights(run / "model-1.pt", scale=1.0)
    assert watch(run, store, "--sampler", f"{sampler_file}:sample", "--samples-per-checkpoint", "4", "--real", str(real)) == 0
    assert StoreReader(store).info()["kinds"] == {"generated": 4, "real": 3, "holdout": 0}
    # round AG: weights kept under the --real folder are no samples of the run read as real ones
    weights(real / "ckpt" / "model-1.pt", scale=1.0)
    assert watch(real / "ckpt", tmp_path / "t.zarr", "--sampler", f"{sampler_file}:sample", "--samples-per-checkpoint",
                 "4", "--real", str(real)) == 0
    assert StoreReader(tmp_path / "t.zarr").info()["kinds"] == {"generated": 4, "real": 3, "holdout": 0}


def test_the_sample_files_a_sampler_leaves_unread_are_said(tmp_path, sampler_file, capsys):
    """Round AF: DCGAN's fake_samples_epoch_N.png beside netG_epoch_N.pth were left out
    without a word when --sampler read the weights."""
    from PIL import Image

    run, store = tmp_path / "run", tmp_path / "s.zarr"
    for epoch in (1, 2):
        weights(run / f"netG_epoch_{epoch}.pth", scale=0.5 * epoch)
        Image.fromarray(np.full((16, 16, 3), 40 * epoch, np.uint8)).save(run / f"fake_samples_epoch_{epoch:03d}.png")
    settle(run)
    argv = ["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-metrics",
            "--sampler", f"{sampler_file}:sample", "--samples-per-checkpoint", "4"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert (f"{run}: 2 checkpoints of sample files (fake_samples_epoch_001.png, ...) not read: with --sampler the "
            "samples come from the weights; to read the files, watch without --sampler (into another --store)") in err
    assert StoreReader(store).info()["steps"] == [1, 2] and StoreReader(store).n_rows == 8


def test_a_sampler_that_parses_the_command_line_or_exits_is_the_samplers_failure(tmp_path, capsys, monkeypatch):
    """Round Z: a sampler importing a training script that parses its options at import read
    evowatch's own command line ("evowatch: error: unrecognized arguments: watch RUN ..."), and
    `sys.exit` in a sampler ended the watch: the script gets its defaults, an exit is said."""
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    weights(run / "model-1.pt", scale=1.0)
    parses = tmp_path / "parses.py"
    parses.write_text(textwrap.dedent('''
        import argparse, sys, torch
        parser = argparse.ArgumentParser()
        parser.add_argument("--img_size", type=int, default=8)
        opt = parser.parse_args()
        ARGV = list(sys.argv)

        def sample(checkpoint_path, n_samples, seed):
            return torch.zeros(n_samples, 3, opt.img_size, opt.img_size)

        def exits(checkpoint_path, n_samples, seed):
            sys.exit("no GPU, giving up")

        def parses_when_called(checkpoint_path, n_samples, seed):  # round AA
            size = argparse.ArgumentParser().parse_args() and 8
            return torch.zeros(n_samples, 3, size, size)
        '''))
    monkeypatch.setattr("sys.argv", ["evowatch", "watch", str(run), "--store", str(store)])
    assert watch(run, store, "--sampler", f"{parses}:sample", "--samples-per-checkpoint", "2") == 0
    assert StoreReader(store).n_rows == 2
    module = load_sampler(f"{parses}:sample", n_samples=2, seed=0, device="cpu").function.__globals__
    assert module["ARGV"] == [str(parses)] and __import__("sys").argv[0] == "evowatch"
    assert watch(run, tmp_path / "u.zarr", "--sampler", f"{parses}:parses_when_called", "--samples-per-checkpoint", "2") == 0
    assert StoreReader(tmp_path / "u.zarr").n_rows == 2
    capsys.readouterr()
    other = tmp_path / "t.zarr"
    assert watch(run, other, "--sampler", f"{parses}:exits", "--samples-per-checkpoint", "2") == 1  # nothing stored
    assert "evowatch: skipped model-1.pt: sampler " + f"{parses}:exits failed: SystemExit: no GPU, giving up" \
        in capsys.readouterr().err
    exits_at_import = tmp_path / "quits.py"
    exits_at_import.write_text("import sys\nsys.exit(3)\n")
    with pytest.raises(SamplerError, match=r"quits.py: importing the sampler failed: it exited \(SystemExit: 3\); "
                                           r"a script that parses its command line or exits when imported"):
        load_sampler(f"{exits_at_import}:sample", n_samples=2, seed=0, device="cpu")


def test_another_value_range_samples_again_and_neighbours_import_when_the_sampler_runs(tmp_path, capsys):
    """Round AB: `--value-range` given with --sampler left the samples read the old way (the
    docs: another choice reads the checkpoints again); a sampler importing a module beside it
    inside its function failed at every checkpoint (the folder was on sys.path at import only);
    a module that raised at import was a traceback, not one line."""
    run, store, folder = tmp_path / "run", tmp_path / "s.zarr", tmp_path / "samplers"
    folder.mkdir()
    (folder / "netdef.py").write_text("SCALE = 0.5\n")
    (folder / "late.py").write_text(textwrap.dedent('''
        import torch

        def sample(checkpoint_path, n_samples, seed):
            from netdef import SCALE  # imported when called
            return torch.full((n_samples, 3, 8, 8), SCALE)
    '''))
    weights(run / "model-1.pt", scale=1.0)
    spec = ["--sampler", f"{folder / 'late.py'}:sample", "--samples-per-checkpoint", "2"]
    assert watch(run, store, *spec) == 0
    assert StoreReader(store).info()["rows"] == 2 and "failed" not in capsys.readouterr().err
    assert watch(run, store, *spec, "--value-range", "byte") == 0  # read again: a new version
    summary = StoreReader(store).info()
    assert (summary["rows"], summary["current_rows"]) == (4, 2)

    (folder / "raises_at_import.py").write_text("raise RuntimeError('no kernel image')\n")
    sys.path.insert(0, str(folder))
    try:
        assert watch(run, tmp_path / "t.zarr", "--sampler", "raises_at_import:sample") == 2
    finally:
        sys.path.remove(str(folder))
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "evowatch: error: raises_at_import: importing the sampler failed (RuntimeError: no kernel image)")
