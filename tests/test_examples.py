"""The trainer integrations in examples/, each run for real (tiny data, CPU, offline) and ingested
with `evowatch watch --once --encoder pixels`, as their README sections say."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.cli import main
from stores.zarr_store import StoreReader

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models on a shared CI box: one torch thread is several times faster than two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def settle(folder: Path) -> None:
    old = time.time() - 10
    for path in folder.rglob("*"):
        os.utime(path, (old, old))


def watch(run: Path, store: Path, *extra: str) -> dict:
    assert main(["-q", "watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", *extra]) == 0
    return StoreReader(store).info()


def rows_by_step(store: Path, name: str) -> dict[int, np.ndarray]:
    reader = StoreReader(store)
    steps, values = reader.samples("step"), reader.samples(name)
    return {int(s): values[steps == s] for s in np.unique(steps) if s >= 0}


# --- PyTorch Lightning ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def lightning_run(tmp_path_factory) -> Path:
    pytest.importorskip("lightning")  # the dev extra's
    from examples.lightning_callback import train

    log_dir = train(tmp_path_factory.mktemp("lightning"), steps=100, every=10, n_samples=16, checkpoint_every=10)
    settle(log_dir)
    return log_dir


@pytest.fixture(scope="module")
def lightning_store(lightning_run, tmp_path_factory) -> Path:
    store = tmp_path_factory.mktemp("lstore") / "callback.zarr"
    watch(lightning_run, store)
    return store


def test_lightning_callback_layout_is_ingested(lightning_run, lightning_store):
    samples = sorted(p.name for p in (lightning_run / "samples").iterdir())
    assert samples == [f"step_{s:07d}" for s in range(10, 101, 10)]  # no temporary folder left
    info = StoreReader(lightning_store).info()
    assert info["steps"] == list(range(10, 101, 10)) and info["rows"] == 160 and info["warnings"] == 0
    assert all(ids.tolist() == list(range(16)) for ids in rows_by_step(lightning_store, "instance").values())
    scalars = StoreReader(lightning_store).scalars()  # Lightning's CSVLogger metrics.csv
    assert "loss" in scalars and len(scalars["step"]) >= 10


def test_lightning_weights_through_the_sampler_are_aligned(lightning_run, lightning_store, tmp_path):
    """10 ModelCheckpoint files, sampled by the example's sampler: the same seed gives the same
    noise to instance i at every step, and the very images the callback saved at that step."""
    store = tmp_path / "weights.zarr"
    checkpoints = sorted(p.name for p in (lightning_run / "checkpoints").iterdir())
    assert len(checkpoints) == 10 and all(name.startswith("epoch=") for name in checkpoints)
    info = watch(lightning_run / "checkpoints", store, "--sampler",
                 f"{REPO / 'examples/lightning_callback.py'}:sample_checkpoint", "--samples-per-checkpoint", "16")
    assert info["steps"] == list(range(10, 101, 10)) and info["rows"] == 160 and info["warnings"] == 0
    latents = rows_by_step(store, "latent")
    first = latents[10]
    assert first.shape == (16, 8) and len(np.unique(first, axis=0)) == 16
    for step, z in latents.items():
        np.testing.assert_array_equal(z, first, err_msg=f"step {step}: noise differs from step 10")
    assert all(ids.tolist() == list(range(16)) for ids in rows_by_step(store, "instance").values())
    sampled, saved = rows_by_step(store, "thumbnail"), rows_by_step(lightning_store, "thumbnail")
    for step in saved:
        np.testing.assert_array_equal(sampled[step], saved[step])
    assert not np.array_equal(sampled[10], sampled[100])  # the model did change
    assert StoreReader(store).attrs["history"][-1]["sampler"]["spec"].endswith("lightning_callback.py:sample_checkpoint")


def test_lightning_sampler_seed_matters(lightning_run):
    from examples.lightning_callback import sample_checkpoint

    checkpoint = sorted((lightning_run / "checkpoints").iterdir())[0]
    a, b, c = (sample_checkpoint(str(checkpoint), 4, seed)["latents"] for seed in (0, 0, 1))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_the_lightning_callback_samples_a_two_optimizer_gan_every_n_steps(tmp_path):
    """A manual-optimization GAN steps global_step once per optimizer (2 a batch): every_n_steps=25
    saved only steps 50 and 100 (an odd step is never reached). It samples the first step past each."""
    L = pytest.importorskip("lightning")
    from torch import nn

    from examples.lightning_callback import EvowatchSamples

    class GAN(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.automatic_optimization = False
            self.G, self.D = nn.Linear(4, 16), nn.Linear(16, 1)

        def sample(self, n, generator):
            return torch.tanh(self.G(torch.randn(n, 4, generator=generator))).view(n, 1, 4, 4)

        def training_step(self, batch, batch_idx):
            for opt in self.optimizers():
                opt.zero_grad()
                self.manual_backward(self.D(torch.tanh(self.G(torch.randn(8, 4)))).mean())
                opt.step()

        def configure_optimizers(self):
            return torch.optim.SGD(self.G.parameters(), 0.01), torch.optim.SGD(self.D.parameters(), 0.01)

    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(64, 1)), batch_size=1)
    trainer = L.Trainer(default_root_dir=tmp_path, max_steps=100, accelerator="cpu", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[EvowatchSamples(every_n_steps=25, n_samples=4)])
    trainer.fit(GAN(), loader)
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [
        "step_0000026", "step_0000050", "step_0000076", "step_0000100"]


def test_the_lightning_callback_makes_no_collective_call_in_a_batch_hook(tmp_path):
    """Under DDP ``trainer.log_dir`` is a broadcast every rank must make: read by rank 0 alone as
    it sampled, a 2-rank CPU run hung at the first sample batch; read by every rank before each
    batch as well, the ranks' broadcasts mismatched and gloo aborted the run. It is read once,
    in on_train_start, which every rank calls."""
    L = pytest.importorskip("lightning")
    from lightning.pytorch.loggers import CSVLogger

    from examples.lightning_callback import DigitsVAE, EvowatchSamples, digits

    in_batch, calls = [False], []

    class Spied(EvowatchSamples):
        def on_train_batch_start(self, *args) -> None:
            in_batch[0] = True
            super().on_train_batch_start(*args)
            in_batch[0] = False

        def on_train_batch_end(self, *args) -> None:
            in_batch[0] = True
            super().on_train_batch_end(*args)
            in_batch[0] = False

    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(digits(16)[:64]), batch_size=16)
    trainer = L.Trainer(default_root_dir=tmp_path, max_steps=4, accelerator="cpu", logger=CSVLogger(tmp_path),
                        callbacks=[Spied(every_n_steps=2, n_samples=4)], enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    broadcast = trainer.strategy.broadcast
    # log_dir's broadcasts (a path); the pause's decision is one every rank makes at the same batch
    trainer.strategy.broadcast = lambda obj, src=0: (isinstance(obj, str) and calls.append(in_batch[0]),
                                                     broadcast(obj, src))[1]
    trainer.fit(DigitsVAE(), loader)
    assert calls and True not in calls  # log_dir read, never in a batch hook
    assert sorted(p.name for p in (tmp_path / "lightning_logs/version_0/samples").iterdir()) == [
        "step_0000002", "step_0000004"]


@pytest.mark.parametrize("weights_only", [False, True])
def test_the_lightning_callback_waits_while_evowatch_asks_for_a_pause(tmp_path, monkeypatch, weights_only):
    """EvowatchSamples never checked EVOWATCH_PAUSE: a Lightning run trained on through every
    --pause-on-alert. It waits before the next batch while the file is in the watched folder (the
    log folder; the checkpoint folder of a weight-only run) and resumes once it is deleted."""
    pytest.importorskip("lightning")
    import threading

    from engine import pause
    from examples import lightning_callback

    watched, waiting, seen = "checkpoints" if weights_only else "version_0", threading.Event(), []
    should_pause = pause.evowatch_should_pause

    def look(run_dir):  # the callback's own look; evowatch pauses at the first batch
        if Path(run_dir).name == watched and not seen:
            Path(run_dir).mkdir(parents=True, exist_ok=True)  # ModelCheckpoint makes it at its first save
            seen.append(pause.write_pause(run_dir, {"step": 0, "rule": "collapse", "value": 1.0, "message": "m"}))
        if should_pause(run_dir):
            waiting.set()
            return True
        return False

    monkeypatch.setattr(pause, "evowatch_should_pause", look)
    monkeypatch.setattr(lightning_callback.EvowatchPause.__init__, "__defaults__", (None, 0.05, 1.0))  # poll_s
    trainer = threading.Thread(target=lightning_callback.train, args=(tmp_path,),
                               kwargs={"steps": 4, "every": 2, "n_samples": 4, "checkpoint_every": 2,
                                       "callback": not weights_only})
    trainer.start()
    try:
        while trainer.is_alive() and not waiting.wait(0.1):
            pass
        time.sleep(0.5)  # paused: nothing more is written
        assert waiting.is_set() and not list(tmp_path.rglob("*.ckpt")) and not list(tmp_path.rglob("step_*"))
    finally:
        for path in seen:
            path.unlink()
        trainer.join(60)
    version = tmp_path / "lightning_logs/version_0"
    assert len(list((version / "checkpoints").glob("*.ckpt"))) == 2
    assert len(list(version.glob("samples/step_*"))) == (0 if weights_only else 2)


def test_under_ddp_every_rank_pauses_at_the_same_batch(tmp_path):
    """Each rank looked for EVOWATCH_PAUSE itself: a file written after rank 0 looked and before rank 1
    did held rank 1 in the pause and rank 0 in the gradient all-reduce, which gloo ended at the process
    group's timeout (RuntimeError: Timed out waiting 10000ms). Rank 0 looks, every rank follows: two
    CPU ranks pause together at the next batch for longer than that timeout, and train on."""
    L = pytest.importorskip("lightning")
    import threading
    from datetime import timedelta

    from lightning.pytorch.strategies import DDPStrategy

    from engine.pause import clear_pause, evowatch_should_pause
    from examples.lightning_callback import DigitsVAE, EvowatchPause, digits
    from tests.ddp_pause import RACE_BATCH, PauseRace

    def resume_later():  # the user deletes the file once the process group's timeout has passed
        deadline = time.monotonic() + 120
        while not evowatch_should_pause(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(13)
        clear_pause(tmp_path)

    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(digits(16)[:256]), batch_size=16)
    trainer = L.Trainer(default_root_dir=tmp_path, max_steps=8, accelerator="cpu", devices=2, logger=False,
                        strategy=DDPStrategy(start_method="spawn", timeout=timedelta(seconds=10)),
                        callbacks=[PauseRace(tmp_path, "before"), EvowatchPause(tmp_path, poll_s=0.1, check_every_s=0),
                                   PauseRace(tmp_path, "after")],
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    threading.Thread(target=resume_later, daemon=True).start()
    trainer.fit(DigitsVAE(), loader)
    for rank in (0, 1):
        ends = [line.split() for line in (tmp_path / f"rank{rank}.log").read_text().splitlines()]
        assert [int(batch) for batch, _ in ends] == list(range(8))
        gaps = np.diff([float(t) for _, t in ends])
        assert gaps.argmax() == RACE_BATCH and gaps.max() > 12  # paused before batch RACE_BATCH + 1


# --- denoising-diffusion-pytorch --------------------------------------------------------------

@pytest.fixture(scope="module")
def ddpm_results(tmp_path_factory) -> Path:
    pytest.importorskip("denoising_diffusion_pytorch")  # the dev extra's
    from examples.ddpm_trainer import train

    results = train(tmp_path_factory.mktemp("ddpm"), steps=12, every=4, num_samples=9)
    settle(results)
    return results


def test_ddpm_grids(ddpm_results, tmp_path):
    names = sorted(p.name for p in ddpm_results.iterdir())
    assert names == ["model-1.pt", "model-2.pt", "model-3.pt", "sample-1.png", "sample-2.png", "sample-3.png"]
    info = watch(ddpm_results, tmp_path / "grids.zarr")
    assert info["steps"] == [1, 2, 3] and info["rows"] == 27 and info["warnings"] == 0  # 3x3 grids split
    assert all(ids.tolist() == list(range(9)) for ids in rows_by_step(tmp_path / "grids.zarr", "instance").values())


def test_ddpm_weights_through_the_sampler(ddpm_results, tmp_path, capfd):
    store = tmp_path / "weights.zarr"
    info = watch(ddpm_results, store, "--sampler", f"{REPO / 'examples/ddpm_trainer.py'}:sample_milestone",
                 "--samples-per-checkpoint", "4", "--no-metrics")
    assert info["steps"] == [1, 2, 3] and info["rows"] == 12 and info["warnings"] == 0
    assert "sampling loop" not in capfd.readouterr().err  # the library's progress bar, once a checkpoint
    assert [p for p in StoreReader(store).samples("path")[:2]] == ["model-1.pt#0", "model-1.pt#1"]
    thumbs = rows_by_step(store, "thumbnail")
    assert all(t.std() > 1 for t in thumbs.values())
    # The same seed gives the same images for the same weights (no hidden randomness).
    from engine.sampler import load_sampler

    sampler = load_sampler(f"{REPO / 'examples/ddpm_trainer.py'}:sample_milestone", n_samples=2, device="cpu")
    a, b = (sampler(ddpm_results / "model-3.pt") for _ in range(2))
    assert torch.equal(a, b) and a.shape == (2, 3, 16, 16)


# --- a plain PyTorch loop -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def plain_run(tmp_path_factory) -> Path:
    from examples.plain_loop import train

    run = train(tmp_path_factory.mktemp("plain") / "run", steps=150, every=30)
    settle(run)
    return run


def test_plain_loop(plain_run, tmp_path):
    assert sorted(p.name for p in plain_run.iterdir()) == ["losses.jsonl"] + [f"samples_{s:08d}.npz" for s in range(30, 151, 30)]
    store = tmp_path / "plain.zarr"
    info = watch(plain_run, store)
    assert info["steps"] == [30, 60, 90, 120, 150] and info["rows"] == 320 and info["warnings"] == 0
    assert set(info["labels"]) <= {str(d) for d in range(10)} and info["labels"]
    latents = rows_by_step(store, "latent")
    assert all(np.array_equal(z, latents[30]) for z in latents.values())
    scalars = StoreReader(store).scalars()
    assert {"loss_d", "loss_g"} <= set(scalars) and len(scalars["step"]) == 150


def test_the_plain_loop_waits_while_evowatch_asks_for_a_pause(tmp_path, monkeypatch):
    """The hand-written loop users copy never checked RUN_DIR/EVOWATCH_PAUSE: a trainer built
    from it trained on through every --pause-on-alert. It waits, and resumes once it is deleted."""
    import threading

    from engine import pause
    from examples import plain_loop

    waiting = threading.Event()

    def wait(run_dir):  # the loop's own call, polled faster
        if pause.evowatch_should_pause(run_dir):
            waiting.set()
        return pause.wait_if_paused(run_dir, poll_s=0.05)

    monkeypatch.setattr(plain_loop, "wait_if_paused", wait, raising=False)
    run = tmp_path / "run"
    pause.write_pause(run.mkdir() or run, {"step": 30, "rule": "collapse", "value": 1.0, "message": "diversity fell"})
    trainer = threading.Thread(target=plain_loop.train, args=(run,), kwargs={"steps": 2, "every": 1})
    trainer.start()
    try:
        assert waiting.wait(60) and not list(run.glob("samples_*.npz"))
    finally:
        pause.clear_pause(run)
        trainer.join(60)
    assert sorted(p.name for p in run.glob("samples_*.npz")) == ["samples_00000001.npz", "samples_00000002.npz"]


def test_ctrl_c_of_the_plain_loop_while_paused_ends_in_one_line(tmp_path):
    """Ctrl-C of `python -m examples.plain_loop RUN` waiting on EVOWATCH_PAUSE ended in a
    KeyboardInterrupt traceback. It ends with one line: what RUN keeps, and how to go on."""
    import signal

    from engine import pause

    run = tmp_path / "run"
    pause.write_pause(run.mkdir() or run, {"step": 30, "rule": "collapse", "value": 1.0, "message": "diversity fell"})
    proc = subprocess.Popen([sys.executable, "-m", "examples.plain_loop", str(run), "--steps", "2"], cwd=REPO,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        said = proc.stderr.readline()
        assert said.startswith("evowatch paused training (collapse): diversity fell"), said
        proc.send_signal(signal.SIGINT)
        rest = proc.stderr.read()
    finally:
        proc.kill()
    assert proc.wait(60) == 130 and "Traceback" not in rest
    assert rest == (f"plain_loop: interrupted; no samples saved in {run}; no weights are saved: the same command "
                    f"trains again from step 1 (delete {run / 'EVOWATCH_PAUSE'} first, or it waits at its first step)\n")


def test_offline_analysis_without_matplotlib_prints_its_table_and_names_the_install(tmp_path):
    """Round BO: `pip install evowatch` brings zarr and numpy but not matplotlib (the dev extra's);
    the script, "plain zarr + numpy + matplotlib", died at its first line with a ModuleNotFoundError
    traceback. Now it prints its table and says, on one line, what the plot needs."""
    from engine.hooks import save_samples

    rng = np.random.default_rng(0)
    for step in (10, 20):
        save_samples(tmp_path / "run", step, rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8))
    store, out = tmp_path / "s.zarr", tmp_path / "shares.png"
    watch(tmp_path / "run", store, "--no-layout")
    without = ("import runpy, sys; sys.modules['matplotlib'] = None; sys.argv = sys.argv[1:]; "
               "runpy.run_path(sys.argv[0], run_name='__main__')")
    done = subprocess.run([sys.executable, "-I", "-c", without, str(REPO / "examples/offline_analysis.py"), str(store),
                           "--out", str(out)], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 1 and not out.exists()
    assert [line.split(",")[0] for line in done.stdout.splitlines()] == ["step", "10", "20"]
    assert done.stderr.strip() == (f"error: {out}: the plot needs matplotlib; `pip install matplotlib` (the table "
                                   "above needs only zarr and numpy)")


def test_offline_analysis_with_plain_zarr(plain_run, tmp_path):
    store = tmp_path / "plain.zarr"
    watch(plain_run, store)
    out = tmp_path / "shares.png"
    script = REPO / "examples/offline_analysis.py"
    assert "import engine" not in script.read_text() and "from engine" not in script.read_text()
    # A fresh, isolated interpreter; the script itself imports only zarr, numpy and matplotlib.
    env = {**os.environ, "PYTHONPATH": "", "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, "-I", str(script), str(store), "--steps", "60:120", "--out", str(out)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "step,samples,diversity,stored_diversity"
    table = [line.split(",") for line in lines[1:]]
    assert [int(r[0]) for r in table] == [60, 90, 120] and all(int(r[1]) == 64 for r in table)
    for _, _, recomputed, stored in table:  # the recomputed metric matches evowatch's own
        assert float(recomputed) == pytest.approx(float(stored), abs=1e-5)
    assert out.stat().st_size > 5000 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = subprocess.run([sys.executable, "-I", str(script), str(store), "--steps", "60"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr  # a usage error, as argparse gives
    assert bad.stderr.strip().splitlines()[-1].endswith("--steps: Expected a step range as FIRST:LAST "
                                                         "(either may be empty). Got '60' instead.")
    nowhere = tmp_path / "no" / "plot.png"  # round AY: an --out it cannot write (a read-only folder) was a traceback
    bad = subprocess.run([sys.executable, "-I", str(script), str(store), "--out", str(nowhere)],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert bad.returncode == 1 and bad.stderr.strip().splitlines()[-1] == (
        f"error: {nowhere}: cannot write the plot (No such file or directory); choose another --out")
    for wrong, why in ((tmp_path / "nope.zarr", "not a store (no zarr.json)"),  # tracebacks: FileNotFoundError,
                       (store / "samples", "not an evowatch store's folder (no root attribute 'committed')")):  # KeyError
        bad = subprocess.run([sys.executable, "-I", str(script), str(wrong)], capture_output=True, text=True, env=env,
                             cwd=tmp_path, timeout=120)
        assert bad.returncode == 1 and bad.stderr.strip() == (
            f"error: {wrong}: {why}; give the folder `evowatch watch --store` created")
    # round AQ: a chunk file missing (an incomplete copy) printed NaN and exited 0
    for name in ("samples/embedding", "samples/step", "checkpoints/superseded_by"):
        chunks = sorted((store / name / "c").rglob("*"))
        moved = [c for c in chunks if c.is_file()][0]
        moved.rename(tmp_path / "aside")
        done = subprocess.run([sys.executable, "-I", str(script), str(store)], capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=120)
        assert done.returncode == 1 and done.stderr.strip() == (
            f"error: {store}: {name} lacks the files of chunks [0]: an incomplete copy; copy the store again")
        (tmp_path / "aside").rename(moved)
    # round AZ-1: an array's zarr.json from before it grew (a copy taken while written, docs/store.md): IndexError
    meta = store / "samples" / "step" / "zarr.json"
    whole = meta.read_text()
    meta.write_text(json.dumps({**json.loads(whole), "shape": [256]}))
    done = subprocess.run([sys.executable, "-I", str(script), str(store)], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 1 and done.stderr.strip() == (
        f"error: {store}: samples/step ends at row 256, before the 320 rows the commit point counts: a copy taken "
        "while it was written; copy the store again")
    meta.write_text(whole)
