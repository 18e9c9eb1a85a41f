"""Failure detection end to end: the demo GAN trained healthy, collapsing and copying, each run
ingested by ``evowatch watch --once`` (pixels encoder, --real/--holdout), alerts read back
with ``evowatch info --json``. The short version of ``benchmarks/detection.py``.

Bars (issue 5): each failure is detected within <= 1 checkpoint of its onset, the healthy
run raises no alert, and no alert fires before an onset. The on-alert command, the pause
file and zero-shot probes (real open_clip code path, tiny random CLIP) are checked on the way.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY_CLIP = f"clip:{ROOT / 'tests' / 'data' / 'evowatch-tiny.json'}/random"

# Short runs (checkpoint every 250 steps, 64 samples). The collapse onset is where the
# model is trained enough for collapse to be a drop (early on the generator's diversity is
# itself low); copying is induced between two checkpoints to check the delay count.
EVERY = 250
HEALTHY_STEPS = 1500
COLLAPSE_STEPS, COLLAPSE_ONSET = 1750, 1500
COPY_STEPS, COPY_ONSET = 1000, 700


def _bench():
    spec = importlib.util.spec_from_file_location("evowatch_bench_detection", ROOT / "benchmarks" / "detection.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


bench = _bench()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Train the three runs (concurrently, one torch thread each), ingest each through the
    CLI; the healthy and copy runs with --on-alert and --pause-on-alert."""
    root = tmp_path_factory.mktemp("detection")
    specs = {
        "healthy": bench.RunSpec(0, None, None, HEALTHY_STEPS, EVERY),
        "collapse": bench.RunSpec(0, "collapse", COLLAPSE_ONSET, COLLAPSE_STEPS, EVERY),
        "copy": bench.RunSpec(0, "copy", COPY_ONSET, COPY_STEPS, EVERY),
    }
    data, _ = bench.train_runs(list(specs.values()), root, jobs=3)
    out = {"root": root, "data": data}
    for name, spec in specs.items():
        run_root = root / spec.name
        extra: list[str] = []
        if name != "collapse":
            log = root / f"{name}-on-alert.txt"
            extra = ["--on-alert", f'echo "$EVOWATCH_STEP $EVOWATCH_RULE $EVOWATCH_VALUE" >> "{log}"', "--pause-on-alert"]
            out[f"{name}-on-alert"] = log
        err = io.StringIO()
        with contextlib.redirect_stderr(err):  # the watcher prints alerts on sys.stderr
            out[name] = bench.ingest_run(spec, run_root, data, root / f"{name}.zarr", *extra)
        out[f"{name}-stderr"] = err.getvalue()
    return out


@pytest.mark.slow
def test_healthy_run_raises_no_alert(runs):
    res = runs["healthy"]
    assert res.checkpoints == list(range(EVERY, HEALTHY_STEPS + 1, EVERY))
    assert res.alerts == []
    assert not runs["healthy-on-alert"].exists()
    assert not (runs["root"] / res.spec.name / "run" / "EVOWATCH_PAUSE").exists()


@pytest.mark.slow
@pytest.mark.parametrize("failure", ["collapse", "copy"])
def test_failure_detected_within_one_checkpoint(runs, failure):
    res = runs[failure]
    assert res.false_alerts == [], f"alerts before the onset: {res.false_alerts}"
    assert res.detected_at is not None, f"{failure} not detected; alerts: {res.alerts}"
    assert res.delay <= 1, f"{failure} detected {res.delay} checkpoints after onset; alerts: {res.alerts}"
    if failure == "copy":
        assert res.first_affected == 750  # onset 700 lies between checkpoints 500 and 750


@pytest.mark.slow
def test_info_json_lists_alerts_with_four_keys(runs, capsys):
    from engine.cli import main

    assert main(["info", str(runs["root"] / "copy.zarr"), "--json"]) == 0
    alerts = json.loads(capsys.readouterr().out)["alerts"]
    assert alerts and all(set(a) == {"step", "rule", "value", "message"} for a in alerts)
    first = min(alerts, key=lambda a: a["step"])
    assert first["rule"] == "memorisation" and first["step"] == 750
    assert isinstance(first["value"], float) and "near-copies" in first["message"]


@pytest.mark.slow
def test_on_alert_command_and_pause_file(runs):
    res = runs["copy"]
    lines = runs["copy-on-alert"].read_text().splitlines()
    # The command runs at an alert's onset only, not again while it holds.
    assert len(lines) == len({(a["rule"]) for a in res.alerts})
    step, rule, value = lines[0].split()
    first = next(a for a in res.alerts if a["rule"] == rule)
    assert (int(step), rule) == (750, "memorisation") == (first["step"], first["rule"])
    assert float(value) == pytest.approx(first["value"])
    pause = runs["root"] / res.spec.name / "run" / "EVOWATCH_PAUSE"
    assert pause.is_file()
    assert json.loads(pause.read_text())["rule"] == "memorisation"


@pytest.mark.slow
def test_alerts_printed_on_stderr_at_onset(runs):
    err = runs["copy-stderr"]
    assert "evowatch: ALERT step 750 [memorisation]" in err
    assert "ALERT step 1000 [memorisation]" not in err  # still holding: announced once
    assert "evowatch: ALERT step 1500 [collapse]" in runs["collapse-stderr"]
    assert "ALERT" not in runs["healthy-stderr"]


def _small_reference(src: Path, dst: Path, per_label: int) -> None:
    for label_dir in sorted(p for p in src.iterdir() if p.is_dir()):
        (dst / label_dir.name).mkdir(parents=True)
        for f in sorted(label_dir.glob("*.png"))[:per_label]:
            shutil.copy(f, dst / label_dir.name / f.name)


@pytest.mark.slow
def test_probe_shares_through_open_clip(runs, tmp_path, capsys):
    """--probe with a real open_clip model (tiny config, random weights): the shares are
    stored per step and equal the CLIP text-vs-image margins recomputed from the store."""
    from engine.cli import main
    from engine.encoders import make_encoder
    from engine.metrics.probes import encode_probes, probe_scores, probe_shares
    from stores.format import KIND_CODES
    from stores.zarr_store import StoreReader

    run = tmp_path / "run"
    src = runs["root"] / runs["healthy"].spec.name / "run"
    for step in (1250, 1500):
        shutil.copytree(src / f"step_{step:06d}", run / f"step_{step:06d}")
    _small_reference(runs["data"] / "train", tmp_path / "train", 4)
    _small_reference(runs["data"] / "holdout", tmp_path / "holdout", 2)
    probes = ["a photo of the digit seven|a photo of the digit one", "a thick stroke"]
    store = tmp_path / "p.zarr"
    argv = ["-q", "watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", TINY_CLIP, "--device", "cpu",
            "--real", str(tmp_path / "train"), "--holdout", str(tmp_path / "holdout"), "--no-layout", "--settle", "0"]
    for p in probes:
        argv += ["--probe", p]
    assert main(argv) == 0
    err = capsys.readouterr().err  # 40 real images: a probe's share is known to about +-0.08
    assert "beside 40 real images probe_drift can see a drift only when it is large: 'a " in err, err
    assert err.count("probe_drift can see") == 1 and "points); give more --real images" in err

    reader = StoreReader(store)
    table = reader.step_metrics()
    assert list(table["step"]) == [1250, 1500]
    keys = ["probe_share:a_photo_of_the_digit_seven", "probe_share:a_thick_stroke"]
    for key in keys:
        assert key in table and key.replace("share", "ref_share") in table

    _, texts, contrasts = encode_probes(make_encoder(TINY_CLIP, device="cpu"), probes)
    kinds = reader.samples("kind")
    gen_code, real_code = KIND_CODES["generated"], KIND_CODES["real"]
    steps = reader.samples("step")
    emb = reader.samples("embedding")
    real = emb[kinds == real_code]
    ref = probe_shares(probe_scores(real, texts, contrasts))
    for i, step in enumerate(table["step"]):
        gen = emb[(kinds == gen_code) & (steps == step)]
        shares = probe_shares(probe_scores(gen, texts, contrasts))
        for j, key in enumerate(keys):
            assert table[key][i] == pytest.approx(shares[j], abs=1e-12)
            assert table[key.replace("share", "ref_share")][i] == pytest.approx(ref[j], abs=1e-12)
    assert np.isfinite([table[k] for k in keys]).all()
    # Per-sample margins are stored for the viewer's probe filter; their positive share is the step's share.
    names = ["probe:a photo of the digit seven", "probe:a thick stroke"]
    assert set(names) <= set(reader.sample_metric_names())
    for name, key in zip(names, keys):
        margins = reader.sample_metric(name)
        for i, step in enumerate(table["step"]):
            rows = (kinds == gen_code) & (steps == step)
            assert (margins[rows] > 0).mean() == pytest.approx(table[key][i], abs=1e-12)

    # Round Z: resumed with another probe list, every step was re-measured into emptied columns
    # but the dropped probe's: `watch` failed (IndexError) and `info` with it from then on.
    argv[argv.index(probes[1])] = "a thin stroke"
    assert main(argv) == 0
    table = StoreReader(store).step_metrics()
    assert list(table["step"]) == [1250, 1500] and {len(v) for v in table.values()} == {2}
    assert np.isnan(table["probe_share:a_thick_stroke"]).all() and np.isfinite(table["probe_share:a_thin_stroke"]).all()
    assert np.isfinite(table["fd"]).all() and np.isfinite(table[keys[0]]).all()
    assert main(["info", str(store), "--json"]) == 0


@pytest.mark.filterwarnings("ignore:Matrix is singular")  # scipy's sqrtm on the rank-deficient product
def test_fd_of_a_small_batch_matches_scipy_and_the_full_rank_path():
    """compute_step's FD takes the n x n route when a checkpoint has fewer samples than
    dimensions (64 samples of 768-d pixels in the demo): same value as scipy's sqrtm formula
    and as the d x d route, to 1e-6."""
    from engine.metrics.frechet import frechet_distance, frechet_distance_fast, frechet_distance_samples, mean_cov, sym_sqrt
    from engine.metrics.per_step import step_metrics
    from engine.metrics.reference import ReferenceStats

    rng = np.random.default_rng(3)

    def unit(x):
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    for n, d in ((64, 96), (24, 24), (2, 16)):
        real = unit(rng.normal(size=(500, d)))
        gen = unit(rng.normal(size=(n, d)) + 0.3)
        mu1, s1 = mean_cov(gen)
        mu2, s2 = mean_cov(real)
        want = frechet_distance(mu1, s1, mu2, s2)
        full = frechet_distance_fast(mu1, s1, mu2, sym_sqrt(s2), float(np.trace(s2)))
        got = frechet_distance_samples(gen, mu2, s2, sym_sqrt(s2), float(np.trace(s2)))
        assert got == pytest.approx(want, abs=1e-6) and got == pytest.approx(full, abs=1e-6), (n, d)
        assert step_metrics(gen, ReferenceStats.build(real, None))["fd"] == pytest.approx(want, abs=1e-6)


@pytest.mark.slow
def test_a_restarted_watch_keeps_its_metrics_and_announces_nothing_again(runs, capsys):
    """Restarting `watch` on a run with an alert re-measured every step against the same
    reference and took each rule's first alert for a new onset: the ALERT line, --on-alert and
    the pause file came again. Metrics measured against the same reference are kept."""
    from engine.cli import main
    from stores.zarr_store import StoreReader

    res, store = runs["copy"], runs["root"] / "copy.zarr"
    run = runs["root"] / res.spec.name / "run"
    (run / "EVOWATCH_PAUSE").unlink()  # the user resumed the trainer
    before = StoreReader(store)
    metrics, alerts, log = before.step_metrics(), before.alerts(), runs["copy-on-alert"].read_text()
    argv = bench.watch_argv(run, store, runs["data"], "--on-alert", "echo again >> " + str(runs["copy-on-alert"]),
                            "--pause-on-alert")
    capsys.readouterr()
    assert main(argv) == 0
    assert "ALERT" not in capsys.readouterr().err
    assert runs["copy-on-alert"].read_text() == log and not (run / "EVOWATCH_PAUSE").exists()
    after = StoreReader(store)
    assert after.alerts() == alerts
    np.testing.assert_array_equal(after.step_metrics()["step"], metrics["step"])
    np.testing.assert_array_equal(after.step_metrics()["vendi"], metrics["vendi"])
