"""The layout kept in step with the store: incremental, row-aligned, earlier rows never moved."""
from __future__ import annotations

import numpy as np
import pytest

from engine.cli import main
from engine.layout import alignment_error
from stores.zarr_store import StoreReader, StoreWriter

ENCODER = {"identity": "test:16", "dim": 16}


def add_step(store: StoreWriter, step: int, centres: np.ndarray, rng, noise: float, source: str | None = None,
             n: int = 120) -> None:
    instances = np.arange(n)
    vectors = centres[instances % len(centres)] + noise * rng.normal(size=(n, centres.shape[1]))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with store.checkpoint(step, source or f"step_{step}", f"h{step}{source}") as tx:
        tx.add(vectors, instances, [None] * n, np.zeros((n, 4, 4, 3), np.uint8), [f"{i}.png" for i in range(n)])


def test_incremental_layout_and_full_recompute(tmp_path, capsys):
    from engine.layout_runner import update_layout

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16))
    path = tmp_path / "s.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        add_step(store, 100, centres, rng, 0.6)
        add_step(store, 200, centres, rng, 0.5)
        assert update_layout(store) == 240
        before = store.layout_xy().copy()
        add_step(store, 300, centres, rng, 0.4)
        add_step(store, 300, centres, rng, 0.4, source="step_300")  # a rewritten version: superseded rows
        assert update_layout(store) == 240
        assert update_layout(store) == 0  # nothing new: nothing done
        xy = store.layout_xy()
        np.testing.assert_array_equal(xy[:240], before)   # earlier steps never move
        assert np.isfinite(xy).all() and xy.shape == (480, 2)
        # Same instances stay close across consecutive steps (alignment), far better than chance.
        err = alignment_error(xy[120:240], np.arange(120), xy[360:480], np.arange(120))
        shuffled = alignment_error(xy[120:240], np.arange(120), xy[360:480], rng.permutation(120))
        assert err < 0.5 * shuffled

    assert main(["layout", str(path), "--full"]) == 0
    reader = StoreReader(path)
    assert reader.layout_rows == 480
    assert not np.allclose(reader.layout_xy()[:240], before)  # recomputed jointly
    capsys.readouterr()
    assert main(["info", str(path), "--json"]) == 0
    assert '"layout_rows": 480' in capsys.readouterr().out


def test_a_full_recompute_places_steps_too_small_for_a_tsne_of_their_own(tmp_path):
    """A step of 3 samples (or none left readable) made ``layout --full`` refuse the whole
    store ("Expected at least 5 samples in every step"); it is placed from the step before."""
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(4, 16))
    path = tmp_path / "s.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        for step, n in ((100, 120), (200, 3), (300, 0), (400, 120)):
            add_step(store, step, centres, rng, 0.5, n=n)
    assert main(["layout", str(path), "--full"]) == 0
    xy = StoreReader(path).layout_xy()
    assert xy.shape == (243, 2) and np.isfinite(xy).all()
    # the 3 samples sit where their instances were one step before, not on a circle of their own
    own = np.linalg.norm(xy[120:123] - xy[:3], axis=1)
    typical = np.median(np.linalg.norm(xy[120:123, None] - xy[None, :120], axis=2), axis=1)
    assert (own < 0.25 * typical).all(), (own, typical)


def test_a_step_is_anchored_past_steps_too_small_to_anchor_it(tmp_path):
    """Steps of 120, 3, 1 then 3 and 120 samples: every sample of the last step got the mean of
    the 3 before as its anchor, was pulled back to it, and its alignment with the first step
    was no better than chance; the 3 distinct samples after the 1-sample step were stored at
    one point (their jitter was below float32's resolution)."""
    from engine.layout_runner import update_layout

    rng = np.random.default_rng(2)
    centres = rng.normal(size=(4, 16))
    path = tmp_path / "s.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        for step, n in ((100, 120), (200, 3), (300, 1), (400, 3), (500, 120)):
            add_step(store, step, centres, rng, 0.5, n=n)
        update_layout(store)
        xy = store.layout_xy()
    assert len(np.unique(xy[124:127], axis=0)) == 3
    err = alignment_error(xy[:120], np.arange(120), xy[127:247], np.arange(120))
    shuffled = alignment_error(xy[:120], np.arange(120), xy[127:247], rng.permutation(120))
    assert err < 0.5 * shuffled, (err, shuffled)


def test_a_step_after_one_whose_files_were_all_skipped_is_anchored_to_one_that_holds_samples():
    """Round AQ: with no earlier step large enough, the latest was taken even when it held no
    sample (its files all skipped), and the step was laid out cold."""
    from engine.layout import LayoutParams
    from engine.layout_runner import _previous
    from stores.format import KIND_CODES

    sizes = np.array([3, 0, 30])
    ckpt = {"step": np.array([100, 200, 300]), "kind": np.full(3, KIND_CODES["generated"]),
            "row_start": np.concatenate([[0], np.cumsum(sizes)[:-1]]), "row_stop": np.cumsum(sizes)}
    laid_out, current = np.array([True, True, False]), np.ones(3, bool)
    assert _previous(ckpt, laid_out, current, 2, LayoutParams()) == 0
    ckpt["row_stop"][0] = 0
    assert _previous(ckpt, laid_out, current, 2, LayoutParams()) is None


def test_the_held_out_set_is_laid_out_on_the_real_sets_map(tmp_path):
    """The real and held-out sets share the reference band; laid out apart, they were two
    unrelated maps drawn over each other (a held-out image no nearer its identical real copy
    than any real image). The held-out set is anchored to the real set's map."""
    from engine.layout import place
    from engine.layout_runner import recompute_layout, update_layout

    rng = np.random.default_rng(3)
    centres = rng.normal(size=(6, 16))
    real = centres[np.arange(150) % 6] + 0.5 * rng.normal(size=(150, 16))
    real /= np.linalg.norm(real, axis=1, keepdims=True)
    path = tmp_path / "s.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        for kind, vectors in (("real", real), ("holdout", real[:60])):  # held-out: copies of 60 real images
            n = len(vectors)
            with store.checkpoint(-1, kind, f"h{kind}", kind=kind) as tx:
                tx.add(vectors, [-1] * n, [None] * n, np.zeros((n, 4, 4, 3), np.uint8), [f"{i}.png" for i in range(n)])
        for lay_out in (update_layout, recompute_layout):
            store.replace_layout(np.zeros((0, 2)))
            lay_out(store)
            xy = place(store.layout_xy(), -1, groups=np.repeat([0, 1], [150, 60]))
            twin = np.median(np.linalg.norm(xy[150:] - xy[:60], axis=1))
            anyone = np.median(np.linalg.norm(xy[150:] - xy[rng.permutation(150)[:60]], axis=1))
            assert twin < 0.3 * anyone, (lay_out.__name__, twin, anyone)


def test_a_full_recompute_stopped_midway_keeps_the_layout_there_was(tmp_path, monkeypatch):
    """`layout --full` gave up the old layout before laying out the reference sets: a Ctrl-C
    then left the store with none (1,260 rows to 0)."""
    from engine import layout_runner

    rng = np.random.default_rng(4)
    centres = rng.normal(size=(4, 16))
    path = tmp_path / "s.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        with store.checkpoint(-1, "real", "hreal", kind="real") as tx:
            tx.add(centres[np.arange(40) % 4] + 0.3 * rng.normal(size=(40, 16)), [-1] * 40, [None] * 40,
                   np.zeros((40, 4, 4, 3), np.uint8), [f"{i}.png" for i in range(40)])
        for step in (100, 200):
            add_step(store, step, centres, rng, 0.5)
        layout_runner.update_layout(store)
        before = store.layout_xy().copy()

        def interrupted(*args, **kwargs):
            raise KeyboardInterrupt

        monkeypatch.setattr(layout_runner, "layout_step", interrupted)  # while the reference set is laid out
        with pytest.raises(KeyboardInterrupt):
            layout_runner.recompute_layout(store)
        assert store.layout_rows == 280
        np.testing.assert_array_equal(store.layout_xy(), before)


def test_a_full_recompute_killed_while_it_swaps_layouts_leaves_one_whole_and_ctrl_c_says_so(tmp_path, capsys,
                                                                                             monkeypatch):
    """`layout --full` reset the layout, then wrote it again a step at a time: a kill -9 in
    between (seconds at 400 steps) left the store with none (640 rows to 0). The new layout is
    written beside the old one and renamed into place; a writer opening after a kill at either
    rename has one layout, whole. Ctrl-C ended with status 130 and no word: it says so."""
    import os

    from engine import layout_runner
    from stores.uninterrupted import uninterrupted
    from stores.zarr_store import writer  # replace_layout's renames

    rng = np.random.default_rng(5)
    centres = rng.normal(size=(4, 16))
    path = tmp_path / "s.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        for step in (100, 200, 300):
            add_step(store, step, centres, rng, 0.5)
        layout_runner.update_layout(store)
    before = StoreReader(path).layout_xy()

    class Killed(BaseException):
        pass

    rename = os.rename
    for killed_at in (1, 2):  # before the old layout is moved aside, between the two renames
        calls = []

        def dies_at_a_rename(src, dst):
            calls.append(src)
            if len(calls) == killed_at:
                raise Killed
            rename(src, dst)

        monkeypatch.setattr(writer.os, "rename", dies_at_a_rename)
        with pytest.raises(Killed), StoreWriter(path, ENCODER) as store:
            layout_runner.recompute_layout(store)
        monkeypatch.setattr(writer.os, "rename", rename)
        with StoreWriter(path, ENCODER):  # the next writer finishes or drops the swap
            pass
        reader = StoreReader(path)
        assert reader.layout_rows == 360 and sorted(p.name for p in (path / "layout").iterdir()) == ["xy", "zarr.json"]
        generation = reader._group_attrs("layout").get("generation")
        if killed_at == 1:
            np.testing.assert_array_equal(reader.layout_xy(), before)
            assert generation is None
        else:
            assert generation == 1 and np.isfinite(reader.layout_xy()).all()
            assert not np.array_equal(reader.layout_xy(), before)

    import signal

    def ctrl_c_while_it_writes(self, xy):
        signal.raise_signal(signal.SIGINT)  # held until the swap is done
        replace(self, xy)

    replace = StoreWriter.replace_layout
    monkeypatch.setattr(StoreWriter, "replace_layout", uninterrupted(ctrl_c_while_it_writes))
    assert main(["layout", str(path), "--full"]) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"evowatch: interrupted; {path}: its layout is whole (the one before, or the new one if it was being written)")
    assert StoreReader(path).layout_rows == 360 and StoreReader(path)._group_attrs("layout")["generation"] == 2


def test_layout_on_a_store_it_cannot_write_says_what_to_do(tmp_path, capsys, monkeypatch):
    """It said 'choose a writable --store', an option `layout` does not have."""
    import errno

    path = tmp_path / "s.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        add_step(store, 100, np.random.default_rng(2).normal(size=(4, 16)), np.random.default_rng(3), 0.5, n=20)

    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(path / "layout"))

    monkeypatch.setattr(StoreWriter, "commit_layout", read_only)
    capsys.readouterr()
    assert main(["layout", str(path)]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (  # after the once-a-process search line, run alone
        f"evowatch: error: {path}: cannot write there (Read-only file system: {path / 'layout'}); copy the store "
        "where it can be written")


@pytest.mark.parametrize("full", [True, False])
def test_a_layout_of_a_store_it_cannot_write_stops_before_laying_out(tmp_path, capsys, monkeypatch, full):
    """Round AV: `layout --full` on a read-only store computed the whole layout, minutes at 400
    steps, then failed writing ``layout/xy.next``; round AY-2: an incremental one laid out its
    first step first. (Root writes through chmod: the refusal is simulated where the store is
    written.)"""
    import errno
    from pathlib import Path

    from engine import layout_runner

    path = tmp_path / "s.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        add_step(store, 100, np.random.default_rng(2).normal(size=(4, 16)), np.random.default_rng(3), 0.5, n=20)
    mkdir = Path.mkdir

    def read_only(self, *args, **kwargs):  # a read-only mount: no new entry in the store
        if path in self.parents and not self.exists():
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return mkdir(self, *args, **kwargs)

    def laid_out(*args, **kwargs):
        raise AssertionError("laid out before the store was found unwritable")

    monkeypatch.setattr(Path, "mkdir", read_only)
    monkeypatch.setattr(layout_runner, "layout_full" if full else "layout_step", laid_out)
    capsys.readouterr()
    assert main(["layout", str(path)] + ["--full"] * full) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    probed = path / "layout" if (path / "layout").is_dir() else path
    assert err.startswith(f"evowatch: error: {path}: cannot write there (Read-only file system: {probed}/"
                          ".writable-") and err.endswith("); copy the store where it can be written"), err


def test_cli_alignment_default_is_the_layout_default():
    from engine.cli import DEFAULT_ALIGNMENT
    from engine.layout import LayoutParams

    assert DEFAULT_ALIGNMENT == LayoutParams().alignment


def test_a_large_step_and_a_full_recompute_are_said_before_the_minutes_they_take(tmp_path, caplog, monkeypatch):
    """A step of 20,000 samples was laid out for 6 minutes, and `layout --full` over 300 steps
    ran for minutes, without a word."""
    from engine import layout_runner

    monkeypatch.setattr(layout_runner, "SAID_BEFORE", 100)
    rng = np.random.default_rng(6)
    centres = rng.normal(size=(4, 16))
    with StoreWriter(tmp_path / "s.zarr", ENCODER, thumbnail_size=4) as store:
        add_step(store, 100, centres, rng, 0.5, n=120)
        add_step(store, 200, centres, rng, 0.5, n=60)
        with caplog.at_level("INFO", logger="engine.layout_runner"):
            layout_runner.update_layout(store)
            layout_runner.recompute_layout(store)
    assert "laying out step 100: 120 samples (minutes for a step this large)" in caplog.messages
    assert not any(m.startswith("laying out step 200") for m in caplog.messages)
    assert ("laying out 2 steps jointly (180 samples): minutes for a large run; the layout there is stays until the "
            "new one is whole") in caplog.messages


def test_an_update_does_not_work_out_again_what_supersedes_what_from_every_checkpoint(tmp_path, monkeypatch):
    """Round BE: each update worked out the current checkpoints from every stored source
    (superseded_flags: 19 ms of CPU of a 16-sample checkpoint's 47 ms at 1,000 checkpoints,
    profiled), so its cost grew with the history. It takes the writer's record instead, and
    lays out as before: a rewritten step's old version is not the next step's anchor."""
    from engine.layout_runner import update_layout
    from stores.zarr_store import sources  # superseded_flags' and _CurrentSources' _reading_key

    rng = np.random.default_rng(3)
    centres = rng.normal(size=(4, 16))
    with StoreWriter(tmp_path / "s.zarr", ENCODER, thumbnail_size=4) as store:
        for step in (100, 200, 300):
            add_step(store, step, centres, rng, 0.5, n=30)
        update_layout(store)
        add_step(store, 300, centres, rng, 0.5, n=30, source="step_300")  # rewritten: rows 90-120 superseded
        add_step(store, 400, centres, rng, 0.5, n=30)
        read = []
        reading_key = sources._reading_key
        monkeypatch.setattr(sources, "_reading_key", lambda source: read.append(source) or reading_key(source))
        assert update_layout(store) == 60
        assert read == []
        xy = store.layout_xy()
    monkeypatch.undo()
    superseded, current = xy[60:90], xy[90:120]   # the rows of step 300's two versions
    nxt = xy[120:150]
    assert alignment_error(current, np.arange(30), nxt, np.arange(30)) < \
        alignment_error(superseded, np.arange(30), nxt, np.arange(30))


def test_a_layout_ending_inside_a_checkpoint_is_one_line_naming_layout_full(tmp_path, capsys):
    """A layout whose commit point is not at a checkpoint's first row (a store edited or
    restored by hand) stopped `evowatch layout` and the watch with a RuntimeError traceback."""
    path = tmp_path / "s.zarr"
    with StoreWriter(path, ENCODER, thumbnail_size=4) as store:
        add_step(store, 100, np.random.default_rng(2).normal(size=(4, 16)), np.random.default_rng(3), 0.5, n=20)
        store.commit_layout(np.zeros((5, 2), np.float32), 0)
    capsys.readouterr()
    assert main(["layout", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (f"evowatch: error: {path}: its layout ends at row 5, not where a checkpoint's rows "
                                    f"start (0); `evowatch layout {path} --full` lays it out again")
    assert "Traceback" not in err
    assert main(["layout", str(path), "--full"]) == 0 and StoreReader(path).layout_rows == 20  # the fix it names
