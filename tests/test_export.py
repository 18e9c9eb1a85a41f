"""`evowatch export STORE --to parquet|csv`, on a store built through engine.hooks.save_samples."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import zarr
from PIL import Image

from engine.cli import main
from engine.export import default_output, export_store
from engine.hooks import save_samples
from stores.zarr_store import StoreReader, StoreWriter


def settle(folder: Path) -> None:
    old = time.time() - 10
    for path in folder.rglob("*"):
        os.utime(path, (old, old))


def blobs(rng: np.random.Generator, n: int) -> np.ndarray:
    """Smooth random (n, 3, 16, 16) images in [-1, 1]."""
    coarse = rng.uniform(-1, 1, (n, 3, 4, 4))
    return np.repeat(np.repeat(coarse, 4, axis=2), 4, axis=3).astype(np.float32)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("export")
    rng = np.random.default_rng(0)
    real = root / "real"
    real.mkdir()
    for i in range(40):
        Image.fromarray(((blobs(rng, 1)[0].transpose(1, 2, 0) + 1) * 127.5).astype(np.uint8)).save(real / f"{i}.png")
    run = root / "run"
    for step in (100, 200, 300):
        save_samples(run, step, blobs(rng, 24), labels=np.arange(24) % 3, latents=rng.normal(size=(24, 4)),
                     value_range=(-1, 1))
    settle(root)
    store = root / "run.zarr"
    assert main(["-q", "watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--real", str(real)]) == 0
    # The trainer rewrites step 300: its first version's rows become superseded.
    save_samples(run, 300, blobs(rng, 24), labels=np.arange(24) % 3, value_range=(-1, 1))
    settle(root)
    assert main(["-q", "watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--real", str(real)]) == 0
    return store


def test_parquet_columns_and_values(store, tmp_path, capsys):
    out = tmp_path / "rows.parquet"
    assert main(["export", str(store), "--to", "parquet", "--out", str(out)]) == 0
    assert "wrote 136 rows" in capsys.readouterr().out
    assert main(["-q", "export", str(store), "--to", "parquet", "--out", str(out)]) == 0
    assert capsys.readouterr() == ("", "")  # -q: warnings, errors and alerts only
    df = pd.read_parquet(out)
    reader = StoreReader(store)
    assert len(df) == reader.n_rows == 40 + 4 * 24
    assert list(df.columns[:11]) == ["row", "step", "kind", "label", "instance", "path", "checkpoint", "source",
                                     "superseded", "x", "y"]
    assert df["kind"].value_counts().to_dict() == {"generated": 96, "real": 40}
    generated = df[df.kind == "generated"]
    assert set(generated.label) == {"0", "1", "2"} and df[df.kind == "real"].label.isna().all()
    assert sorted(generated.step.unique()) == [100, 200, 300]
    assert generated.groupby("checkpoint").instance.apply(list).map(lambda ids: ids == list(range(24))).all()
    assert generated.superseded.sum() == 24 and (generated[generated.superseded].step == 300).all()
    np.testing.assert_array_equal(df[["x", "y"]].to_numpy(np.float32)[: reader.layout_rows], reader.layout_xy())
    for name in reader.sample_metric_names():  # per-sample metrics, NaN where not computed
        np.testing.assert_array_equal(df[name].to_numpy(np.float32), reader.sample_metric(name))
    assert generated["nn_train_dist"].notna().all()  # measured against the --real set
    table = reader.step_metrics()
    current = generated[~generated.superseded]
    by_step = current.groupby("step")["step_pairwise_cosine"].first()
    expected = dict(zip(table["step"].tolist(), table["pairwise_cosine"].tolist()))
    assert by_step.to_dict() == pytest.approx({s: expected[s] for s in by_step.index})
    # a rewritten checkpoint's earlier rows were measured as another version: not this one's figures
    assert generated[generated.superseded].filter(like="step_").isna().all().all()
    assert df.path.iloc[-1].startswith("samples_00000300.npz#")
    assert "embedding" not in df.columns


def test_embeddings_in_both_formats_and_chunking(store, tmp_path):
    reader = StoreReader(store)
    vectors = reader.samples("embedding").astype(np.float32)
    parquet, rows = export_store(store, "parquet", tmp_path / "e.parquet", embeddings=True, chunk_rows=50)
    assert rows == reader.n_rows and pq.ParquetFile(parquet).metadata.num_row_groups == 3
    df = pd.read_parquet(parquet)
    np.testing.assert_array_equal(np.stack(df.embedding.to_numpy()), vectors)
    assert df.row.tolist() == list(range(reader.n_rows))
    csv, _ = export_store(store, "csv", tmp_path / "e.csv", embeddings=True, chunk_rows=50)
    frame = pd.read_csv(csv)
    dim = vectors.shape[1]
    assert list(frame.columns[-dim:]) == [f"e{i}" for i in range(dim)] and len(frame) == reader.n_rows
    np.testing.assert_allclose(frame[[f"e{i}" for i in range(dim)]].to_numpy(), vectors, rtol=1e-6)
    no_vectors = pd.read_csv(export_store(store, "csv", tmp_path / "plain.csv")[0])
    pd.testing.assert_frame_equal(no_vectors, frame.iloc[:, :-dim])
    assert not list(tmp_path.glob(".*.tmp"))  # nothing half-written left behind


def test_a_first_chunk_without_labels_does_not_type_the_label_column(store, tmp_path):
    """The 40 unlabelled real rows come first: a chunk of them alone gave `label` the null type,
    and the next chunk's labels failed to cast (ArrowNotImplementedError, nothing written)."""
    out, rows = export_store(store, "parquet", tmp_path / "first.parquet", chunk_rows=40)
    df = pd.read_parquet(out)
    assert rows == len(df) and df.label.iloc[:40].isna().all()
    assert set(df.label.iloc[40:]) == {"0", "1", "2"}


def test_default_output_and_empty_store(store, tmp_path):
    """Round AQ: ``lr0.001`` and ``lr0.002`` both exported to ``lr0.parquet``, the second over
    the first; an empty store's export typed ``row``, ``step``, ``superseded`` ... as doubles
    (its table did not concatenate with another run's)."""
    assert default_output(Path("runs/exp42.zarr"), "csv") == Path("runs/exp42.csv")
    assert default_output(Path("runs/exp42"), "parquet") == Path("runs/exp42.parquet")
    assert default_output(Path("runs/lr0.001"), "parquet") == Path("runs/lr0.001.parquet")
    assert default_output(Path("runs/run.v2.ZARR"), "csv") == Path("runs/run.v2.csv")
    assert default_output(Path("."), "csv") == Path.cwd().parent / f"{Path.cwd().name}.csv"  # not ".csv"
    empty = tmp_path / "empty.zarr"
    StoreWriter(empty, {"identity": "pixels:16", "dim": 768, "device": "cpu", "fallback": None}).close()
    path, rows = export_store(empty, "parquet", embeddings=True)
    assert path == tmp_path / "empty.parquet" and rows == 0
    assert len(pd.read_parquet(path)) == 0 and "step" in pd.read_parquet(path).columns
    full, _ = export_store(store, "parquet", tmp_path / "full.parquet", embeddings=True)
    common = [f for f in pq.read_schema(full) if f.name in pq.read_schema(path).names]
    assert [f.name for f in common] == pq.read_schema(path).names[:len(common)]
    assert common == [pq.read_schema(path).field(f.name) for f in common]


def test_cli_errors(tmp_path, capsys):
    assert main(["export", str(tmp_path / "absent.zarr")]) == 2
    assert "no such store" in capsys.readouterr().err
    assert main(["-v", "info", str(tmp_path / "absent.zarr")]) == 2  # -v adds the traceback, not another status
    err = capsys.readouterr().err
    assert "Traceback" in err and err.endswith(f"evowatch: error: {tmp_path / 'absent.zarr'}: no such store; create one "
                                                f"with 'evowatch watch RUN_DIR --store {tmp_path / 'absent.zarr'}'\n")
    with pytest.raises(SystemExit):
        main(["export", str(tmp_path), "--to", "xlsx"])


def test_the_format_follows_the_out_name_and_a_contradiction_is_refused(store, tmp_path, capsys):
    """`--out rows.csv` wrote Parquet (pd.read_csv failed on it); a folder given as --out was
    answered with a file name inside the store, where plain zarr then warned about it."""
    assert main(["export", str(store), "--out", str(tmp_path / "rows.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "rows.csv")) > 0
    assert main(["export", str(store), "--to", "parquet", "--out", str(tmp_path / "x.csv")]) == 2
    assert "x.csv: --to parquet writes Parquet, but the name says csv; name it x.parquet" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()
    assert main(["export", str(store), "--out", str(store)]) == 2
    assert f"give --out a file name, e.g. {store.with_suffix('.parquet')}" in capsys.readouterr().err


def test_save_samples_hook(tmp_path):
    images = np.zeros((2, 3, 8, 8), np.float32)
    images[1] = 1.0
    path = save_samples(tmp_path / "run", 7, images, labels=["cat", "dog"], value_range=(-1, 1))
    assert path.name == "samples_00000007.npz" and sorted(p.name for p in path.parent.iterdir()) == [path.name]
    with np.load(path) as data:
        assert data["images"].dtype == np.uint8 and data["images"][0].max() == 128 and data["images"][1].min() == 255
        assert data["labels"].tolist() == ["cat", "dog"]
    with pytest.raises(ValueError, match="Expected 2 latents"):
        save_samples(tmp_path / "run", 8, images, latents=np.zeros((3, 4)))
    with pytest.raises(ValueError, match="Expected images"):
        save_samples(tmp_path / "run", 8, np.zeros((8, 8)))
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [path.name]
    old = os.umask(0o022)  # round AB: mkstemp's 0600 stayed, and a watch run as another user could not read it
    try:
        assert save_samples(tmp_path / "run", 9, images).stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(old)


def test_save_samples_keeps_what_the_reader_needs_to_say(tmp_path, capsys):
    """Round AQ: with ``value_range`` a diverged generator's NaN batch was written as black
    uint8 images, stored without a word; labels holding ``None`` were pickled and the reader
    skipped the whole file; step -1 was written as ``samples_-0000001.npz``, read as step 1."""
    run = tmp_path / "run"
    images = blobs(np.random.default_rng(1), 4)
    diverged = images.copy()
    diverged[2] = np.nan
    diverged[3, 0, :2] = np.inf  # round AR: clipped first, inf was a white image stored
    save_samples(run, 100, diverged, value_range=(-1, 1))
    save_samples(run, 200, images, labels=["cat", None, "dog", "cat"], value_range=(-1, 1))
    np.savez(run / "samples_00000150.npz", images=(images + 1) / 2, value_range=np.array(["unit"]))  # round AS:
    # another tool's key, not a range: read as any file (it was skipped), as is one given --value-range
    with pytest.raises(ValueError, match="Expected a training step of 0 or more. Got -1 instead."):
        save_samples(run, -1, images)
    with pytest.raises(ValueError, match=r"Expected latents as numbers. Got Python objects \(str\) instead."):
        save_samples(run, 300, images, latents=np.array(["a", None, "b", "c"], dtype=object))
    assert sorted(p.name for p in run.iterdir()) == ["samples_00000100.npz", "samples_00000150.npz",
                                                     "samples_00000200.npz"]
    settle(run)
    store = tmp_path / "run.zarr"
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels",
                 "--no-layout", "--no-metrics"]) == 0
    assert "samples_00000100.npz: 2 of 4 samples hold NaN or infinite values" in capsys.readouterr().err
    reader = StoreReader(store)
    steps, labels = reader.samples("step"), reader.labels
    assert steps.tolist() == [100, 100, 150, 150, 150, 150, 200, 200, 200, 200]
    # round AR: None was stored as a label '' (a label_drift over it); it is no label
    assert [labels[code] if code >= 0 else None for code in reader.samples("label")[6:]] == ["cat", None, "dog", "cat"]
    thumbnails = reader.samples("thumbnail").astype(int)
    for row in (0, 2):  # step 100's finite rows and step 150's unit floats read as step 200's same images
        assert np.abs(thumbnails[row] - thumbnails[6]).max() <= 1
    for given in ("tanh", "unit"):  # round AR: pre-scaled to [0, 1], the NaN batch read washed out under tanh;
        other = tmp_path / f"{given}.zarr"  # round AT: the file's own range wins over the option, as a sampler's
        assert main(["-q", "watch", str(run), "--store", str(other), "--once", "--settle", "0", "--encoder", "pixels",
                     "--no-layout", "--no-metrics", "--value-range", given]) == 0
        thumbnails = StoreReader(other).samples("thumbnail").astype(int)
        assert np.abs(thumbnails[0] - thumbnails[6]).max() <= 1, given


def test_the_export_file_gets_the_umasks_mode_and_is_reported_once(store, tmp_path, capsys):
    old = os.umask(0o022)
    try:
        for to in ("csv", "parquet"):
            out = tmp_path / f"rows.{to}"
            capsys.readouterr()
            assert main(["export", str(store), "--to", to, "--out", str(out)]) == 0
            printed = capsys.readouterr()
            assert (printed.out, printed.err) == (f"wrote 136 rows to {out}\n", "")
            assert out.stat().st_mode & 0o777 == 0o644  # like the store's files (mkstemp made it 0600)
    finally:
        os.umask(old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.csv", "rows.parquet"]  # no temporary file left


def test_an_export_killed_mid_write_leaves_its_temporary_file_only_until_the_next_export(store, tmp_path, capsys):
    """kill -9 left ``.rows.csv.PID@HOST.HEX.tmp`` (the size of the export) beside the output
    for good; a running export's file, another machine's (its PID says nothing here), another
    output's and an unrecognised one stay."""
    import socket

    exited = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead, host = int(exited.stdout), socket.gethostname()
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        killed = [tmp_path / f".rows.csv.{dead}@{host}.0a19df3a.tmp",
                  tmp_path / f".rows.csv.{dead}.0a19df3a.tmp"]  # named before the host was added
        kept = [tmp_path / f".rows.csv.{running.pid}@{host}.1b2c3d4e.tmp",  # an export still writing
                tmp_path / f".rows.csv.{dead}@gpu-node-17.cluster.0a19df3a.tmp",  # another machine's
                tmp_path / f".rows.csv.x.{dead}@{host}.0a19df3a.tmp",  # rows.csv.x's
                tmp_path / ".rows.csv.notes.tmp"]
        for path in (*killed, *kept):
            path.write_text("half an export")
        assert main(["export", str(store), "--to", "csv", "--out", str(tmp_path / "rows.csv")]) == 0
    finally:
        running.kill()
        running.wait()
    assert "wrote 136 rows" in capsys.readouterr().out
    assert sorted(tmp_path.iterdir()) == sorted([tmp_path / "rows.csv", *kept])


def test_an_export_stopped_by_ctrl_c_leaves_the_file_there_was_and_says_so(store, tmp_path, capsys, monkeypatch):
    """Ctrl-C of an export ended with status 130 and no word on what it left."""
    import engine.export

    out = tmp_path / "rows.csv"
    out.write_text("an earlier export")
    written = engine.export._write_csv

    def ctrl_c_midway(frames, tmp):
        def rows_then_ctrl_c():
            yield next(frames)
            raise KeyboardInterrupt

        return written(rows_then_ctrl_c(), tmp)

    monkeypatch.setattr(engine.export, "_write_csv", ctrl_c_midway)
    assert main(["export", str(store), "--out", str(out)]) == 130
    assert capsys.readouterr().err.strip().splitlines() == ["evowatch: interrupted; no file written or changed"]
    assert sorted(tmp_path.iterdir()) == [out] and out.read_text() == "an earlier export"


def test_an_out_path_that_cannot_be_written_is_one_line_naming_it(store, tmp_path, capsys, monkeypatch):
    """It said "[Errno 21] Is a directory: '.out.1a2b.tmp' -> 'out'", "[Errno 17] File exists",
    and a full disk blamed the store ("STORE: no space left ... everything committed before is kept")."""
    import errno

    import engine.export

    (tmp_path / "folder").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    capsys.readouterr()
    assert main(["export", str(store), "--out", str(tmp_path / "folder")]) == 2
    assert capsys.readouterr().err == (f"evowatch: error: {tmp_path / 'folder'}: is a folder; give --out a file name, "
                                       f"e.g. {tmp_path / 'folder' / default_output(store, 'parquet').name}\n")
    assert main(["export", str(store), "--out", str(tmp_path / "notes.txt" / "x.csv"), "--to", "csv"]) == 2
    assert capsys.readouterr().err == (f"evowatch: error: {tmp_path / 'notes.txt' / 'x.csv'}: cannot write the export "
                                       f"there ({tmp_path / 'notes.txt'} is a file, not a folder); choose another --out\n")
    # round AF: written over the store's own metadata, which plain zarr could then not read
    assert main(["export", str(store), "--out", str(store / "samples" / "zarr.json")]) == 2
    assert capsys.readouterr().err == (f"evowatch: error: {store / 'samples' / 'zarr.json'}: is inside the store; give "
                                       f"--out a file name, e.g. {default_output(store, 'parquet')}\n")
    zarr.open_group(str(store), mode="r")["samples"]
    assert main(["export", str(store), "--out", "/proc/evowatch-test.csv", "--to", "csv"]) == 2  # a folder of no files
    assert capsys.readouterr().err == ("evowatch: error: /proc/evowatch-test.csv: cannot write the export there "
                                       "(No such file or directory); choose another --out\n")

    def full(frames, tmp):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(engine.export, "_write_csv", full)
    assert main(["export", str(store), "--out", str(tmp_path / "x.csv"), "--to", "csv"]) == 2
    assert capsys.readouterr().err == (f"evowatch: error: {tmp_path / 'x.csv'}: no space left for the export (No space "
                                       "left on device); free some space or choose another --out (the store is unchanged)\n")

    def too_large(frames, tmp):  # a file size limit (ulimit -f), said as one
        raise OSError(errno.EFBIG, "File too large")

    monkeypatch.setattr(engine.export, "_write_csv", too_large)
    assert main(["export", str(store), "--out", str(tmp_path / "x.csv"), "--to", "csv"]) == 2
    assert capsys.readouterr().err == (f"evowatch: error: {tmp_path / 'x.csv'}: the export reached the file size limit "
                                       "(File too large); raise the limit (ulimit -f) or choose another --out (the "
                                       "store is unchanged)\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "notes.txt"]


@pytest.mark.parametrize("to", ["csv", "parquet"])
def test_an_export_to_a_pipe_streams_into_it_and_leaves_it_a_pipe(store, tmp_path, capsys, to):
    """`--out /dev/stdout` (a pipe): the export was written beside it and renamed over it (as
    root, /dev/stdout became a regular file); Parquet's own writer could not seek a pipe."""
    import stat
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    assert main(["export", str(store), "--to", to, "--out", str(fifo)]) == 0
    reader.join(timeout=30)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    rows = pd.read_csv(io.BytesIO(received[0])) if to == "csv" else pd.read_parquet(io.BytesIO(received[0]))
    assert len(rows) == 136
    printed = capsys.readouterr()
    assert (printed.out, printed.err) == ("", f"wrote 136 rows to {fifo}\n")  # not into the rows


@pytest.mark.parametrize("out", ["-", "/dev/stdout"])
def test_an_export_to_standard_output_redirected_to_a_file_is_written_there(store, tmp_path, out):
    """`--out -` wrote a file named '-'; `--out /dev/stdout > rows.csv` renamed the export over
    /dev/stdout (as root: the device link replaced by a file) instead of writing rows.csv."""
    was_link = os.path.islink("/dev/stdout")
    with open(tmp_path / "rows.csv", "wb") as redirected:
        done = subprocess.run([sys.executable, "-m", "engine.cli", "export", str(store), "--to", "csv", "--out", out],
                              stdout=redirected, stderr=subprocess.PIPE, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0 and done.stderr == f"wrote 136 rows to {out}\n"
    assert len(pd.read_csv(tmp_path / "rows.csv")) == 136 and not (tmp_path / "-").exists()
    assert os.path.islink("/dev/stdout") == was_link


def test_a_file_in_dev_shm_is_written_beside_and_renamed_as_anywhere():
    """Round AB: every path under /dev/ was streamed, so an export to /dev/shm (a file system
    in memory) killed mid-write left the previous good file cut to 0 bytes."""
    from engine.export import is_stream

    assert not is_stream(Path("/dev/shm/run.csv"))
    assert is_stream(Path("/dev/stdout")) and is_stream(Path("/dev/fd/1")) and is_stream(Path("-"))


def test_a_csv_export_in_the_run_is_no_trainer_log(store, tmp_path):
    """Round AB: a store inside the run exported to CSV beside it was read back as a trainer
    log at the next watch: 776 scalars (e0 … e767, x, y, step_fd …), one Zarr array each."""
    from engine.trainer_logs import read_trainer_scalars
    from stores.format import EXPORT_COLUMNS

    run = tmp_path / "run"
    run.mkdir()
    (run / "log.jsonl").write_text('{"step": 100, "loss_D": 0.5}\n')
    assert main(["export", str(store), "--to", "csv", "--embeddings", "--out", str(run / "run.csv")]) == 0
    assert tuple(pd.read_csv(run / "run.csv", nrows=1).columns[:len(EXPORT_COLUMNS)]) == EXPORT_COLUMNS
    assert list(read_trainer_scalars(run)) == ["loss_D"]
