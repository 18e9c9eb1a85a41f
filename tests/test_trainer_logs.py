"""engine.trainer_logs: JSONL, CSV and TensorBoard event files."""
from __future__ import annotations

import base64
import json
import os
import time

import numpy as np
import pytest

from engine import listings
from engine import trainer_logs as T
from engine.event_files import crc32c
from engine.alerts import loss_roles

# An event file written by torch.utils.tensorboard.SummaryWriter (tensorboard 2.x):
# add_scalar('loss/D', 0.5 + s/100, s) and add_scalar('loss_G', 1 - s/100, s, new_style=True)
# for s in 0, 10, ..., 40; plus add_text('note', ...) and add_histogram('h', ...) at step 0.
TB_EVENTS = base64.b64decode(
    "SAAAAAAAAAD+kkidCS8g5arRwNpBGg1icmFpbi5FdmVudDoyUi4KLHRlbnNvcmJvYXJkLnN1bW1hcnkud3JpdGVyLmV2ZW50X2ZpbGVfd3JpdGVyiFKcXhoAAAAAAAAAEpvYLQmzJ+Wq0cDaQSoPCg0KBmxvc3MvRBUAAAA/l90/yywAAAAAAAAA9K7MRQlEKOWq0cDaQSohCh8KBmxvc3NfR0IICAEqBAAAgD9KCwoJCgdzY2FsYXJzAYp9txwAAAAAAAAAyMGVHQlwKOWq0cDaQRAKKg8KDQoGbG9zcy9EFZqZGT85qyRlLgAAAAAAAADFy1f6CbAo5arRwNpBEAoqIQofCgZsb3NzX0dCCAgBKgRmZmY/SgsKCQoHc2NhbGFyc4cfyYMcAAAAAAAAAMjBlR0J0SjlqtHA2kEQFCoPCg0KBmxvc3MvRBUzMzM/5xLR9C4AAAAAAAAAxctX+gn/KOWq0cDaQRAUKiEKHwoGbG9zc19HQggIASoEzcxMP0oLCgkKB3NjYWxhcnMQenZqHAAAAAAAAADIwZUdCSAp5arRwNpBEB4qDwoNCgZsb3NzL0QVzcxMPwjW89suAAAAAAAAAMXLV/oJgCnlqtHA2kEQHiohCh8KBmxvc3NfR0IICAEqBDMzMz9KCwoJCgdzY2FsYXJzzCr2GxwAAAAAAAAAyMGVHQmoKeWq0cDaQRAoKg8KDQoGbG9zcy9EFWZmZj+PykAxLgAAAAAAAADFy1f6CdUp5arRwNpBECgqIQofCgZsb3NzX0dCCAgBKgSamRk/SgsKCQoHc2NhbGFyc7qNzZA7AAAAAAAAABojrFwJUCrlqtHA2kEqMAouChFub3RlL3RleHRfc3VtbWFyeUIPCAcSBBICCAFCBWhlbGxvSggKBgoEdGV4dNZaaeQmAQAAAAAAAHWfc6oJ+jflqtHA2kEqmgIKlwIKAWgqkQIJAAAAAAAA8D8RAAAAAAAACEAZAAAAAAAACEAhAAAAAAAAGEApAAAAAAAALEAycAiZaRkVWu0/KxT6zb4k8D9jScYVBcLxP7pQjTGfiPM/Mz/oHK989T+FRcyfwKL3P3lM+uLT//k/U4dGE2mZ/D/clM0ujXX/P+AR8Qx0TQFAd2A8DmYIA0DqNg92o+8EQGi8EDWaBwdADZzFoClVCUA6cAAAAAAAAAAAAAAAAAAA8D8AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAPA/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA8D8NiS1H"
)


def _write_events(tmp_path):
    path = tmp_path / "tb" / "events.out.tfevents.1700000000.host.1.0"
    path.parent.mkdir(parents=True)
    path.write_bytes(TB_EVENTS)
    return path


def _check_tb(points):
    by = {}
    for tag, step, value in points:
        by.setdefault(tag, []).append((step, value))
    assert set(by) == {"loss/D", "loss_G"}  # text and histogram are not scalars
    assert [s for s, _ in sorted(by["loss/D"])] == [0, 10, 20, 30, 40]
    np.testing.assert_allclose([v for _, v in sorted(by["loss/D"])], [0.5, 0.6, 0.7, 0.8, 0.9], atol=1e-6)
    np.testing.assert_allclose([v for _, v in sorted(by["loss_G"])], [1.0, 0.9, 0.8, 0.7, 0.6], atol=1e-6)


def test_tensorboard_reader(tmp_path):
    _check_tb(T.read_tensorboard(_write_events(tmp_path)))


def test_tensorboard_reader_agrees_with_event_accumulator(tmp_path):
    """Scalars, new-style scalar tensors, images, histograms and text written by torch's
    SummaryWriter: the same scalars as tensorboard's own reader finds."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path / "tb"))
    rng = np.random.default_rng(0)
    for step in range(0, 50, 5):
        writer.add_scalar("loss/D", float(rng.random()), step)
        writer.add_scalar("loss_G", float(rng.random()), step, new_style=True)
        writer.add_scalars("lr", {"a": 0.1, "b": 0.2}, step)  # written to sub-folders
        writer.add_images("samples", rng.integers(0, 256, (4, 3, 8, 8), dtype=np.uint8), step)
        writer.add_histogram("h", rng.normal(size=100), step)
    writer.add_text("note", "hello", 0)
    writer.close()
    for path in T.find_log_files(tmp_path):
        acc = EventAccumulator(str(path), size_guidance={"scalars": 0, "tensors": 0})
        acc.Reload()
        expected = {(tag, e.step, round(e.value, 6)) for tag in acc.Tags()["scalars"] for e in acc.Scalars(tag)}
        expected |= {(tag, e.step, round(float(e.tensor_proto.float_val[0]), 6)) for tag in acc.Tags()["tensors"]
                     for e in acc.Tensors(tag) if e.tensor_proto.float_val}
        assert {(tag, step, round(v, 6)) for tag, step, v in T.read_tensorboard(path)} == expected and expected


def test_a_watch_reads_an_event_file_on_from_where_it_stopped(tmp_path):
    path = _write_events(tmp_path)
    half = len(TB_EVENTS) // 2
    path.write_bytes(TB_EVENTS[:half])  # the trainer is mid-write: no error
    logs = T.TrainerLogs()
    first = logs.read(tmp_path)
    assert 0 < sum(len(s) for s, _ in first.values()) < 10
    reads = []
    real = T._EventScalars.read_on
    T._EventScalars.read_on = lambda self, fh: (reads.append(self.end), real(self, fh))[1]
    try:
        with open(path, "ab") as fh:
            fh.write(TB_EVENTS[half:])
        _check_tb([(name, int(step), v) for name, (steps, values) in logs.read(tmp_path).items()
                   for step, v in zip(steps, values)])
    finally:
        T._EventScalars.read_on = real
    assert reads and reads[0] > 0  # read on from the first pass's end, not from the start


def test_tensorboard_truncated_and_corrupt(tmp_path):
    path = _write_events(tmp_path)
    path.write_bytes(TB_EVENTS[: len(TB_EVENTS) // 2])  # the trainer is mid-write: no error
    points = T.read_tensorboard(path)
    assert 0 < len(points) < 10
    path.write_bytes(b"\x00" * 40)
    assert T.read_tensorboard(path) == []  # nothing whole in it
    # through the public reader a corrupt file is skipped with a warning, not fatal
    assert T.read_trainer_scalars(tmp_path) == {}


def test_masked_crc32c_known_value():
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value


def test_jsonl_and_csv(tmp_path):
    lines = [
        {"step": 0, "loss": {"D": 1.0, "G": 2.0}, "note": "start"},
        {"global_step": 5, "loss": {"D": 0.5}},  # other step key
        {"step": 10, "loss": {"D": float("nan")}, "ok": True},
        "not json",
        {"no_step": 1, "x": 3},
        {"step": 10, "loss": {"D": 0.25}},  # resumed: the later value wins
    ]
    text = "\n".join(l if isinstance(l, str) else json.dumps(l) for l in lines) + '\n{"step": 20, "lo'
    (tmp_path / "log.jsonl").write_text(text)
    (tmp_path / "lightning").mkdir()
    (tmp_path / "lightning" / "metrics.csv").write_text(
        "epoch,Step,train_loss,val_loss\n0,0,1.5,\n0,50,1.25,\n1,100,,0.75\n")
    (tmp_path / "labels.csv").write_text("file,label\na.png,cat\n")  # no step column: ignored
    (tmp_path / "20240105_103000" / "vis_data").mkdir(parents=True)  # mmagic / mmengine's LocalVisBackend
    (tmp_path / "20240105_103000" / "vis_data" / "scalars.json").write_text(
        '{"lr": 0.0002, "loss_gen": 1.05, "iter": 50, "step": 50}\n{"lr": 0.0002, "loss_gen": 0.9, "iter": 100, "step": 100}\n')
    (tmp_path / "config.json").write_text('{"step": 5, "lr": 1}')  # other JSON: not a log
    got = T.read_trainer_scalars(tmp_path)
    assert set(got) == {"loss/D", "loss/G", "epoch", "train_loss", "val_loss", "lr", "loss_gen"}
    assert got["loss_gen"][0].tolist() == [50, 100] and got["loss_gen"][1].tolist() == [1.05, 0.9]
    steps, values = got["loss/D"]
    assert steps.dtype == np.int64 and values.dtype == np.float64
    assert steps.tolist() == [0, 5, 10] and values.tolist() == [1.0, 0.5, 0.25]
    assert got["train_loss"][0].tolist() == [0, 50] and got["train_loss"][1].tolist() == [1.5, 1.25]
    assert got["val_loss"][0].tolist() == [100]


def test_a_log_with_a_byte_that_is_not_utf8_is_still_read(tmp_path):
    """A Latin-1 byte in a prompt column or a run name skipped the whole log, with its losses."""
    (tmp_path / "metrics.csv").write_bytes(b"step,loss,prompt\n0,1.5,caf\xe9\n50,1.25,na\xefve\n")
    (tmp_path / "log.jsonl").write_bytes(b'{"step": 0, "loss_G": 2.0, "run": "\xb5-run"}\n{"step": 50, "loss_G": 1.0}\n')
    got = T.read_trainer_scalars(tmp_path)
    assert got["loss"][1].tolist() == [1.5, 1.25] and got["loss_G"][1].tolist() == [2.0, 1.0]


def _as_points(scalars):
    return sorted((name, int(step), float(v)) for name, (steps, values) in scalars.items()
                  for step, v in zip(steps, values))


@pytest.mark.parametrize("name", ["log.jsonl", "metrics.csv"])
def test_a_watch_reads_a_text_log_on_and_agrees_with_a_fresh_read(tmp_path, name, monkeypatch):
    """A text log is read on from the last pass's end (a 20,000-line log was parsed whole at
    each write); whatever the writer does (a line in two writes, a last line without its
    newline, Lightning's rewrite under a new header, a replaced or cut file) each pass reads
    what a fresh reader reads."""
    path = tmp_path / name
    header = "step,loss_D,loss_G\n"
    line = (lambda s: json.dumps({"step": s, "loss_D": s / 10, "loss_G": -s}) + "\n") if name.endswith("jsonl") \
        else (lambda s: f"{s},{s / 10},{-s}\n")
    path.write_text(("" if name.endswith("jsonl") else header) + "".join(line(s) for s in range(1000)))
    logs = T.TrainerLogs()
    assert len(logs.read(tmp_path)["loss_D"][0]) == 1000
    parsed = []
    for reader in ("_jsonl_points", "_csv_points"):
        real = getattr(T, reader)
        monkeypatch.setattr(T, reader, lambda rows, *rest, real=real: real(parsed.extend(rows := list(rows)) or rows, *rest))

    def append(text):
        with open(path, "a") as fh:
            fh.write(text)

    def check():
        parsed.clear()
        ours = _as_points(logs.read(tmp_path))
        lines_read = len([row for row in parsed if row])
        assert ours == _as_points(T.read_trainer_scalars(tmp_path)) and ours
        return lines_read

    append(line(1000))
    assert check() == 1  # the new line only, not the 1,000 before
    new = line(1001)
    append(new[:7])  # the trainer is mid-write
    check()
    append(new[7:-1])  # whole but for its newline: read, and read again once it has it
    check()
    append("\n" + line(1002))
    check()
    assert _as_points(logs.read(tmp_path))[-1][1] == 1002
    if name.endswith("csv"):  # CSVLogger rewrites the file, in place, when a metric is new
        with open(path, "r+") as fh:
            rows = fh.read().splitlines()
            fh.seek(0)
            fh.write("step,loss_D,loss_G,lr\n" + "".join(f"{r},\n" for r in rows[1:]) + "1003,0.5,-1,0.001\n")
        check()
        assert "lr" in logs.read(tmp_path)
    text = path.read_text()  # a restart rewrites it in place, as long, the last bytes as they were
    with open(path, "r+") as fh:
        fh.write(text[:40].replace("0", "9") + text[40:])
    check()
    path.write_text(path.read_text()[:len(path.read_text()) // 2])  # cut shorter
    check()
    replacement = tmp_path / "new"
    replacement.write_text(("" if name.endswith("jsonl") else header) + line(5))
    replacement.replace(path)  # replaced by a shorter file
    check()
    assert _as_points(logs.read(tmp_path)) == [("loss_D", 5, 0.5), ("loss_G", 5, -5.0)]


def test_mixed_run_dir_and_nan(tmp_path):
    _write_events(tmp_path)
    (tmp_path / "log.jsonl").write_text(json.dumps({"iter": 3, "loss_G": float("inf")}) + "\n")
    got = T.read_trainer_scalars(tmp_path)
    assert set(got) == {"loss/D", "loss_G"}
    steps, values = got["loss_G"]
    assert steps.tolist() == [0, 3, 10, 20, 30, 40] and np.isinf(values[1])
    assert [p.name for p in T.find_log_files(tmp_path)] == ["log.jsonl", "events.out.tfevents.1700000000.host.1.0"]


def _stat(mean, num=4):
    return {"num": num, "mean": mean, "std": 0.1}


def test_stylegan_and_edm_stats_jsonl(tmp_path):
    """StyleGAN2-ADA / StyleGAN3 stats.jsonl: a {num, mean, std} per statistic, the step in
    Progress/kimg (truncated like fakes000004.png); clocks and memory left out, ADA's
    augment probability kept; an empty statistic (num 0, NaN mean) is no NaN loss. EDM
    writes Progress/kimg without std."""
    lines = [{"Loss/G/loss": _stat(2.0), "Loss/D/loss": _stat(0.5), "Loss/G/reg": _stat(float("nan"), num=0),
              "Progress/tick": _stat(0.0, 1), "Progress/kimg": _stat(0.032, 1), "Progress/augment": _stat(0.0, 1),
              "Timing/total_hours": _stat(0.01, 1), "Resources/peak_gpu_mem_gb": _stat(9.5, 1),
              "timestamp": 1690000000.0},
             {"Loss/G/loss": _stat(1.5), "Loss/D/loss": _stat(0.75), "Progress/kimg": _stat(4.032, 1),
              "Progress/augment": _stat(0.01, 1), "timestamp": 1690000100.0}]
    run = tmp_path / "00000-mydata-auto1"
    run.mkdir()
    (run / "stats.jsonl").write_text("".join(json.dumps(l) + "\n" for l in lines))
    edm = tmp_path / "edm"
    edm.mkdir()
    (edm / "stats.jsonl").write_text(json.dumps({"Loss/loss": {"num": 1, "mean": 0.25}, "Progress/kimg": {"num": 1, "mean": 2000.0}}) + "\n")
    got = T.read_trainer_scalars(tmp_path)
    assert set(got) == {"Loss/G/loss", "Loss/D/loss", "Progress/augment", "Loss/loss"}
    assert got["Loss/G/loss"][0].tolist() == [0, 4] and got["Loss/G/loss"][1].tolist() == [2.0, 1.5]
    assert got["Loss/loss"][0].tolist() == [2000] and got["Loss/loss"][1].tolist() == [0.25]
    assert loss_roles(list(got)) == (["Loss/D/loss"], ["Loss/G/loss"])


def test_mmgeneration_log_json(tmp_path):
    """OpenMMLab / MMGeneration {timestamp}.log.json: JSON lines with "iter" after a first
    line of environment info; the generator's learning rate is no generator loss."""
    work = tmp_path / "work_dirs" / "stylegan2_c2_ffhq_256"
    work.mkdir(parents=True)
    lines = [{"env_info": "sys.platform: linux", "seed": 0, "exp_name": "stylegan2"}]
    lines += [{"mode": "train", "epoch": 1, "iter": it, "lr": {"generator": 0.0016, "discriminator": 0.0018},
               "time": 0.5, "loss_gan": 1.0 / it, "loss_disc_fake": 0.3, "loss_disc_real": 0.2} for it in (100, 200)]
    (work / "20221123_103102.log.json").write_text("".join(json.dumps(l) + "\n" for l in lines))
    (work / "20221123_103102.log").write_text("2022-11-23 10:31:02,000 - mmgen - INFO - Environment info:\n")
    got = T.read_trainer_scalars(tmp_path)
    assert got["loss_gan"][0].tolist() == [100, 200] and got["loss_gan"][1].tolist() == [0.01, 0.005]
    assert "seed" not in got and got["lr/generator"][1].tolist() == [0.0016, 0.0016]
    assert loss_roles(list(got)) == (["loss_disc_fake", "loss_disc_real"], ["loss_gan"])


def test_a_scalar_named_step_does_not_overwrite_the_step_column(tmp_path):
    """diffusers logs a scalar `step`: it replaced the stored steps (one turned into int64's minimum)."""
    from engine.cli import main
    from stores.zarr_store import StoreReader
    from tests.sample_fixtures import save_torchvision_grid, smooth_images

    run, store = tmp_path / "run", tmp_path / "s.zarr"
    rng = np.random.default_rng(0)
    for step in (10, 20):
        save_torchvision_grid(smooth_images(rng, 4, 16), run / f"sample-{step}.png", nrow=2)
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(run / "logs"))
    for s in (10, 15, 20):
        for name, value in (("step", s / 2), ("loss/D", 2.0), ("loss_D", 3.0)):
            writer.add_scalar(name, value, s)
    writer.close()
    assert main(["watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels", "--no-layout",
                 "--settle", "0"]) == 0
    scalars = StoreReader(store).scalars()
    assert scalars["step"].tolist() == [10, 15, 20]
    assert scalars["step_"].tolist() == [5.0, 7.5, 10.0]
    assert scalars["loss_D"].tolist() == [2.0] * 3 and scalars["loss_D_"].tolist() == [3.0] * 3


def test_a_tag_several_folders_log_is_one_series_per_folder(tmp_path):
    """``add_scalars("loss", {"D": d, "G": g})`` writes tag ``loss`` into ``loss_D/`` and
    ``loss_G/``: the generator's and discriminator's losses were merged into one series (and
    the convergence rule saw neither). Runs side by side (Lightning's ``version_0``/``version_1``)
    were spliced into one."""
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path / "run"))
    for step in range(3):
        writer.add_scalars("loss", {"D": 1.0 + step, "G": 5.0 + step}, step)
        writer.add_scalar("lr", 0.5, step)
    writer.close()
    scalars = T.read_trainer_scalars(tmp_path / "run")
    assert sorted(scalars) == ["loss_D", "loss_G", "lr"]
    assert scalars["loss_D"][1].tolist() == [1.0, 2.0, 3.0] and scalars["loss_G"][1].tolist() == [5.0, 6.0, 7.0]
    assert loss_roles(sorted(scalars)) == (["loss_D"], ["loss_G"])  # (discriminator, generator)
    for version in (0, 1):
        writer = SummaryWriter(str(tmp_path / "lightning_logs" / f"version_{version}"))
        for step in range(3):
            writer.add_scalar("d_loss", 10.0 * version + step, step)
        writer.close()
    scalars = T.read_trainer_scalars(tmp_path / "lightning_logs")
    assert {name: values.tolist() for name, (_, values) in scalars.items()} == {
        "version_0/d_loss": [0.0, 1.0, 2.0], "version_1/d_loss": [10.0, 11.0, 12.0]}


def test_a_step_no_int64_holds_is_a_line_skipped(tmp_path):
    """Round AA: `{"step": 1e19}` ended the watch with an OverflowError traceback."""
    (tmp_path / "log.jsonl").write_text('{"step": 1e19, "loss": 1}\n{"step": 5, "loss": 2}\n')
    (tmp_path / "metrics.csv").write_text("step,acc\n1e400,1\n-1e19,2\n7,3\n")
    scalars = T.read_trainer_scalars(tmp_path)
    assert {name: steps.tolist() for name, (steps, _) in scalars.items()} == {"loss": [5], "acc": [7]}


def test_an_integer_past_floats_range_is_a_value_skipped(tmp_path):
    """Round AB: JSON has no bound on integers; one of 401 digits (a counter, a step) ended the
    watch with an OverflowError traceback."""
    big = "1" + "0" * 400
    (tmp_path / "log.jsonl").write_text(f'{{"step": 5, "loss": 2, "seen": {big}}}\n{{"step": {big}, "loss": 3}}\n'
                                        '{"step": 6, "loss": 1}\n')
    scalars = T.read_trainer_scalars(tmp_path)
    assert {name: (steps.tolist(), values.tolist()) for name, (steps, values) in scalars.items()} == {
        "loss": ([5, 6], [2.0, 1.0])}


def test_a_csv_log_with_a_byte_order_mark_is_read(tmp_path):
    """Round AB: pandas' to_csv(encoding="utf-8-sig") starts the file with a byte-order mark,
    which made the header's first name '\\ufeffstep': no step column, the log ignored in silence."""
    (tmp_path / "metrics.csv").write_bytes("step,loss_D\n100,0.5\n200,inf\n".encode("utf-8-sig"))
    (tmp_path / "quoted.csv").write_bytes('"step","loss_G"\n100,0.5\n'.encode("utf-8-sig"))  # round AC
    (tmp_path / "log.jsonl").write_bytes('{"step": 100, "acc": 1}\n'.encode("utf-8-sig"))
    scalars = T.read_trainer_scalars(tmp_path)
    assert scalars["loss_D"][0].tolist() == [100, 200] and np.isinf(scalars["loss_D"][1][1])
    assert scalars["loss_G"][0].tolist() == [100] and scalars["acc"][0].tolist() == [100]


def test_a_record_of_sound_framing_but_no_event_inside_is_read_past(tmp_path, caplog):
    """Round AB: its protobuf error hid the whole event file for the pass, every scalar of a --once watch."""
    import struct

    from torch.utils.tensorboard import SummaryWriter

    from engine.event_files import masked_crc32c

    writer = SummaryWriter(tmp_path)
    for step in range(3):
        writer.add_scalar("loss_D", 0.5, step)
    writer.flush()
    (path,) = tmp_path.glob("events.out.tfevents.*")
    data = b"\x10\xff"  # field 2 (step), its varint cut short
    header = struct.pack("<Q", len(data))
    with open(path, "ab") as fh:
        fh.write(header + struct.pack("<I", masked_crc32c(header)) + data + struct.pack("<I", masked_crc32c(data)))
    for step in range(3, 6):
        writer.add_scalar("loss_D", 0.5, step)
    writer.close()
    with caplog.at_level("WARNING"):
        assert T.read_trainer_scalars(tmp_path)["loss_D"][0].tolist() == [0, 1, 2, 3, 4, 5]
    assert "(not an event: truncated protobuf varint); read on from the next whole record" in caplog.text


def test_a_csv_with_a_field_past_the_csv_modules_limit_is_a_log_skipped(tmp_path, caplog):
    """Round AQ: a captions file with a stray opening quote (a field of 200 kB) ended the watch
    with a traceback (``_csv.Error``), after its steps were stored, before layout and metrics."""
    (tmp_path / "captions.csv").write_text('step,caption\n0,"a dog, sitting\n' +
                                           "".join(f"{i},a photo of a small dog number {i}\n" for i in range(1, 6000)))
    (tmp_path / "metrics.csv").write_text("step,loss\n0,1.5\n10,1.25\n")
    with caplog.at_level("WARNING"):
        scalars = T.TrainerLogs().read(tmp_path)
    assert list(scalars) == ["loss"] and [list(part) for part in scalars["loss"]] == [[0, 10], [1.5, 1.25]]
    assert f"skipping trainer log {tmp_path / 'captions.csv'}: field larger than field limit" in caplog.text


def test_a_negative_integer_tensor_reads_negative_packed_or_not():
    """Round AQ: an unpacked ``int_val`` of -5 read as 1.8e19 (its two's complement), the
    packed one as -5."""
    from tensorboard.compat.proto import tensor_pb2, types_pb2

    def varint(value: int) -> bytes:
        out = b""
        while True:
            out += bytes([value & 0x7F | (0x80 if value > 0x7F else 0)])
            value >>= 7
            if not value:
                return out

    packed = tensor_pb2.TensorProto(dtype=types_pb2.DT_INT32, int_val=[-5]).SerializeToString()
    unpacked = varint(1 << 3) + varint(types_pb2.DT_INT32) + varint(7 << 3) + varint((1 << 64) - 5)
    assert T._tensor_value(packed) == T._tensor_value(unpacked) == -5.0


def _os_walk_logs(root):
    """The logs as find_log_files found them before (os.walk, 4 levels, no hidden folder)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        if len(os.path.relpath(dirpath, root).split(os.sep)) >= 4 and dirpath != str(root):
            dirnames[:] = []
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        out += [os.path.join(dirpath, name) for name in filenames if T.is_log_name(name)]
    return sorted(out)


def test_logs_are_looked_for_again_only_in_folders_that_changed(tmp_path, monkeypatch):
    """Round BC: a watch looked for the trainer logs in every folder of the run at every pass
    (0.2 s at 2,000 checkpoints); what a settled folder held is kept until it changes."""
    for folder in ("", "logs", "a/b/c/d", "a/b/c/d/e", ".hidden", "step_000500", "step_001000"):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        (tmp_path / folder / "metrics.csv").write_text("step,loss\n1,0.5\n")
        (tmp_path / folder / "00.png").write_bytes(b"")
    (tmp_path / "linked").symlink_to(tmp_path / "logs")  # a symlinked folder is not looked into
    monkeypatch.setattr(listings, "SETTLED_LISTING_S", 0.0)  # the times set just now: settled (test_discovery's)
    stamp = time.time() - 60
    for path in [tmp_path, *tmp_path.rglob("*")]:
        os.utime(path, (stamp, stamp), follow_symlinks=False)
    expected = _os_walk_logs(tmp_path)
    assert [str(p) for p in T.find_log_files(tmp_path)] == expected and len(expected) == 5
    listed = []
    real_scandir = os.scandir
    monkeypatch.setattr(T.os, "scandir", lambda path: listed.append(str(path)) or real_scandir(path))
    assert [str(p) for p in T.find_log_files(tmp_path)] == expected
    assert listed == [str(tmp_path)]  # holds a symlink: listed again; the others kept
    (tmp_path / "step_001000" / "events.out.tfevents.1700000000.host.1.0").write_bytes(b"")
    now = _os_walk_logs(tmp_path)
    listed.clear()
    assert [str(p) for p in T.find_log_files(tmp_path)] == now != expected
    assert sorted(listed) == [str(tmp_path), str(tmp_path / "step_001000")]
