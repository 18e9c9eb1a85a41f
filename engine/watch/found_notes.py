"""What the watch says of the checkpoints it found: several at a step, or none at all."""
from __future__ import annotations

import fnmatch
import logging
import re
import shlex
from pathlib import Path, PurePosixPath

from engine.backlog_log import counted
from engine.discovery.names import SAMPLE_WORDS
from engine.discovery.options import DiscoveryOptions
from engine.discovery.samples import WEIGHT_FOLDER, hidden_sample_folders, sample_files
from engine.discovery.scan import resumed_run
from engine.discovery.steps import series_glob, step_regex_miss
from engine.records import Checkpoint
from engine.sampler import scan_weights
from engine.tensorboard_images import find_event_files
from stores.format import listed

log = logging.getLogger(__name__)


def _run_folders(sources: list[str]) -> list[str]:
    """The folders that set a step's checkpoints apart when they lie in different ones (runs
    side by side: ``baseline/samples/step_1000``, ``wider/samples/step_1000``): each parent
    without the trailing folders they all share. Empty for checkpoints in one folder (series
    of one run: ``sample-12.png`` beside ``sample-12-ema.png``)."""
    parents = [Path(source).parent.parts for source in sources]
    if len(set(parents)) < 2:
        return []
    shared = 0
    while all(len(p) > shared for p in parents) and len({p[len(p) - 1 - shared] for p in parents}) == 1:
        shared += 1
    return list(dict.fromkeys(Path(*p[:len(p) - shared]).as_posix() if len(p) > shared else "." for p in parents))


def _resumed_run(found: list[Checkpoint], folders: list[str]) -> tuple[str, str] | None:
    """(earlier, later) when two run folders read together are one run resumed from an earlier
    checkpoint (:func:`resumed_run`), from the steps of the checkpoints below each."""
    return resumed_run({folder: [c.step for c in found if c.source.startswith(f"{folder}/")] for folder in folders})


def _trainer_folder(run_dir: Path, options: DiscoveryOptions, folders: list[str]) -> str | None:
    """The folder of ``run_dir`` the trainer writes to, when the sample folders read together
    (``folders``) are not it: the first one outside them holding its weight checkpoints or
    TensorBoard logs (a DreamBooth project's ``output/`` beside the instance photos ``dog/``
    and the prior-preservation ``class_images/``, whose names carry no step); never a bare
    weights folder (``checkpoints/``, beside runs side by side)."""
    written = [Path(c.source) for c in scan_weights(run_dir, options)]
    written += [path.relative_to(run_dir) for path in find_event_files(run_dir)]
    tops = dict.fromkeys(path.parts[0] for path in written if len(path.parts) > 1)
    return next((top for top in tops if not any(top == f or top.startswith(f"{f}/") or f.startswith(f"{top}/")
                                                for f in folders) and not WEIGHT_FOLDER.fullmatch(top)), None)


def _one_series_glob(sources: list[str]) -> str | None:
    """A ``--samples`` glob that picks one of a step's sample files and not the others: one
    named as samples first (ControlNet's ``samples_cfg_scale_9.00_gs-…``, not
    ``reconstruction_gs-…``), else the shortest (``samples_gs-*_e-*_b-*.png`` beside
    ``samples_inpainting_gs-…``, ``*-ema.jpg`` beside ``100.jpg``); None when the checkpoints are folders."""
    names = [PurePosixPath(source).name for source in sources]
    globs = sorted({series_glob(name) for name in names if PurePosixPath(name).suffix},
                   key=lambda glob: (not SAMPLE_WORDS.search(glob), len(glob)))
    return next((glob for glob in globs if sum(fnmatch.fnmatch(name, glob) for name in names) == 1), None)


def _step_elsewhere(sources: list[str], step: int) -> str | None:
    """A --step-regex for checkpoints of one step whose names differ in a larger number (SiT's
    `SiT-XL-2-0400000-…-dopri5/` beside `SiT-XL-2-0800000-…-dopri5/`: both read as step 5):
    the text before the first number that differs, then the number. (Smaller ones differing,
    score_sde's `iter_500_host_0/` and `…_host_1/`, are ranks or indices, not steps.)"""
    names = [PurePosixPath(source).name for source in sources]
    numbers = [list(re.finditer(r"\d+", name)) for name in names]
    if len({len(found) for found in numbers}) != 1:
        return None
    for position, first in enumerate(numbers[0]):
        values = {int(found[position].group()) for found in numbers}
        if len(values) > 1:
            prefix = names[0][:first.start()][-12:].lstrip("0123456789")
            if not prefix or min(values) <= step:
                return None
            return re.sub(r"([.^$*+?{}\[\]\\|()])", r"\\\1", prefix) + r"(\d+)"
    return None


def _names_in(files: list[Path], run_dir: Path) -> list[str]:
    """The folder and file names of a run's sample files, each once: where steps are read."""
    return list(dict.fromkeys(part for path in files[:200] for part in path.relative_to(run_dir).parts))


class _FoundNotes:
    """The watch's lines on how the run's checkpoints were found
    (:class:`~engine.watch.watcher.Watcher` gives it ``config``, ``live`` and
    ``_shared_steps_noted``)."""

    def _note_shared_steps(self, found: list[Checkpoint]) -> None:
        """Say once that a step has several checkpoints (``samples_1000.png`` and
        ``samples_ema_1000.png``, ``step_1000/`` and ``step_1000_ema/``; runs side by side):
        a step's signals measure them together, and their instance ids repeat."""
        if self._shared_steps_noted:
            return
        by_step: dict[int, list[str]] = {}
        for checkpoint in found:
            by_step.setdefault(checkpoint.step, []).append(checkpoint.source)
        shared = {step: sources for step, sources in sorted(by_step.items()) if len(sources) > 1}
        if shared:
            step, sources = next(iter(shared.items()))
            folders = _run_folders(sources)
            example = _one_series_glob(sources)
            if example and not all(any(fnmatch.fnmatch(PurePosixPath(s).name, example) for s in at_step)
                                   for at_step in by_step.values()):  # followed, it dropped the other steps
                example = None  # (step_N.npy, then step_N.pt beside latents_N.pt: 'step_*.pt')
            option = "--weights" if self.config.sampler else "--samples"  # EDM2's two EMA snapshots of a step
            files = all(PurePosixPath(source).suffix for source in sources)  # a glob picks files, not folders
            fix = (f"; point evowatch at one of {', '.join(folders[:3])}{', ...' if len(folders) > 3 else ''}"
                   if folders else f"; {option} GLOB watches one series" + (f" ({option} '{example}')" if example else "")
                   if files or self.config.sampler else "")  # score_sde's iter_500_host_0/ beside iter_500_host_1/
            if folders and (trainer := _trainer_folder(self.config.run_dir, self.config.options, folders)):
                fix = (f"; point evowatch at {trainer}, where the trainer writes its checkpoints and logs "
                       f"({', '.join(folders[:3])}{', ...' if len(folders) > 3 else ''} hold none: its training data?)")
            if folders and (resumed := _resumed_run(found, folders)):
                fix = (f"; if {resumed[1]} resumed {resumed[0]}'s run, watch {resumed[0]}, then {resumed[1]} with "
                       "--same-run, into one store: the steps written again then supersede")
            if (regex := _step_elsewhere(sources, step)) and self.config.options.step_regex is None:
                fix = f"; if another number in their names is the step, give --step-regex '{regex}'"
            log.warning("%s: %s several checkpoints (step %d: %s): a step's signals measure them together%s",
                        self.config.run_dir, f"{counted(len(shared), 'step')} {'has' if len(shared) == 1 else 'have'}",
                        step, listed(sources), fix)
            self._shared_steps_noted = True

    def _say_nothing_found(self) -> None:
        """Why the first pass found no checkpoint, and what to do about it."""
        run_dir, options, sampler = self.config.run_dir, self.config.options, self.config.sampler
        without_step: list[str] = []
        weights = scan_weights(run_dir, options, sampler.weight_globs if sampler else (), without_step)
        samples = [] if sampler else sample_files(run_dir, options)
        has_samples = bool(samples)
        say = log.info if self.live and not weights else log.warning
        if options.samples_chosen and not sampler and not has_samples:
            say("%s: --samples %s matches no file name here%s (nor an image tag logged to TensorBoard)",
                run_dir, " ".join(f"'{glob}'" for glob in options.sample_globs), " yet" if self.live else "")
        elif weights and not sampler:
            say("%s: no sample files, but %s of weights (%s): sample them with --sampler module:function "
                "(README, weight-only runs)", run_dir, counted(len(weights), "checkpoint"),
                listed([c.source for c in weights]))
        elif without_step and not has_samples:
            say("%s: no sample files%s, and no name of its weights (%s%s) carries a step: a file the trainer "
                "rewrites has no step to place its samples at; have it save samples, or weights named with the step "
                "(ckpt-{step}.pth)", run_dir, " yet" if self.live else "", ", ".join(without_step[:3]),
                ", ..." if len(without_step) > 3 else "")
        elif sampler:
            say("%s: no weights whose names carry a step %s (model-12.pt, checkpoint-500/, "
                "network-snapshot-000200.pkl; see --weights and --step-regex)", run_dir,
                "yet, waiting for them" if self.live else "found")
        elif self.live and not has_samples:
            say("%s: no samples yet, waiting for the first checkpoint", run_dir)  # a run just started
        elif options.step_regex is not None and (miss := step_regex_miss(_names_in(samples, run_dir), options)):
            say("%s: no checkpoints %s: --step-regex '%s' %s", run_dir, "yet" if self.live else "found",
                options.step_regex, miss)
        else:  # samples the layout rules do not read as checkpoints, or a wrong path
            seen = (f"; seen, read as no checkpoint: {', '.join(f.relative_to(run_dir).as_posix() for f in samples[:3])}"
                    if samples else "")  # what was seen (DVCLive's samples.png, rewritten at every step)
            if hidden := hidden_sample_folders(run_dir, options):  # never looked into: said, with where to point
                seen += (f"; a hidden folder is not read: {listed([h.relative_to(run_dir).as_posix() + '/' for h in hidden])} "
                         f"holds sample files (point evowatch at {shlex.quote(str(hidden[0]))})")
            say("%s: no checkpoints %s (folders or sample files whose names carry a step: step_500/, "
                "sample-12.png, fakes000200.png, or images logged to TensorBoard; see --step-regex and --samples)%s",
                run_dir, "yet, waiting for them" if self.live else "found", seen)
