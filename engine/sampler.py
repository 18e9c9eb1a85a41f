"""Samplers for weight-only checkpoints: ``evowatch watch RUN --sampler module:function``.

Many trainers save only weights (``model-12.pt``, ``checkpoint-500/``,
``epoch=3-step=1000.ckpt``, ``network-snapshot-000200.pkl``). With ``--sampler`` the
checkpoints of a run are those weight files and folders, and for each new one evowatch
calls the user's function::

    def sample(checkpoint_path: str, n_samples: int, seed: int, device: str = "cpu"):
        ...  # build the model, load the weights, generate
        return images  # (N, C, H, W) floats in [-1, 1] or [0, 1], or (N, H, W, C) uint8

``device`` is passed only when the function accepts it (``"cuda"`` when a GPU is there).
The function may also return a mapping with ``images`` and optionally ``labels`` and
``latents`` (the keys :mod:`engine.decode.tensors` reads in tensor files).

Alignment: every checkpoint is sampled with the same ``seed``, and the call runs with
torch's, numpy's and Python's global random generators seeded with it (and restored
afterwards), so row ``i`` of every step comes from the same noise: instance id = row.

Safety: :func:`load_checkpoint`, the loader offered to sampler authors, unpickles with
``torch.load(weights_only=True)`` (tensors, dicts, numbers and strings only). A checkpoint
that pickles whole Python objects (a StyleGAN ``.pkl``, some Lightning hyper-parameters)
needs ``--trust-checkpoints``: unpickling runs arbitrary code from the file, so pass it only
for checkpoints you produced yourself.
"""
from __future__ import annotations

import contextlib
import contextvars
import fnmatch
import hashlib
import importlib
import importlib.util
import inspect
import logging
import os
import pickle
import random
import re
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.decode.pixels import pixel_scaling, to_rgb, uint8_rows
from engine.decode.samples import iter_samples
from engine.decode.skip import SkipFile
from engine.decode.tensors import IMAGE_KEYS, LABEL_KEYS, LATENT_KEYS, array_under, label_text, to_nhwc
from engine.discovery.folders import folder_entries, walk_files
from engine.discovery.identity import content_hash, file_versions, reading_settings
from engine.discovery.names import is_weight_file
from engine.discovery.options import MODEL_EXTENSIONS, DiscoveryOptions
from engine.discovery.ready import is_ready
from engine.discovery.steps import step_of
from engine.errors import EvowatchError, message_lines
from engine.records import Checkpoint, Sample, SkippedFile

log = logging.getLogger(__name__)

DEFAULT_SAMPLES_PER_CHECKPOINT = 64
DEFAULT_SEED = 0

#: Weight files that never hold the generator (optimizer state, discriminators, RNG state).
_NOT_GENERATOR = re.compile(
    r"^(?:.*[-_.])?(?:(?:optimi[sz]er|optim|opt|scheduler|scaler|rng_state|random_states?|training_args|trainer_state"
    r"|training[-_]state|net_?d|discriminator|disc|critic)(?:[-_.=]|\d|$)|d(?:[-_.=]|$))"  # ignite's glow_optimizer_3.pth,
    r"|.*discriminator", re.IGNORECASE)  # D_500.pth; sngan_projection's SNResNetProjectionDiscriminator_5000.npz
#: Lightning's ``step=N`` wins over the last integer (``epoch=3-step=1000-v1.ckpt`` is step 1000).
_STEP_KEY = re.compile(r"(?:^|[-_])step[=_-]?(\d+)", re.IGNORECASE)
_MAX_DEPTH = 8
_SKIP_DIRS = frozenset({"__pycache__", "wandb", "node_modules"})

_TRUST: contextvars.ContextVar[bool] = contextvars.ContextVar("evowatch_trust_checkpoints", default=False)


class SamplerError(EvowatchError, ValueError):
    """A ``--sampler`` spec that cannot be loaded."""


# --- the loader offered to sampler authors ---------------------------------------------------

def load_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu", trusted: bool | None = None) -> Any:
    """Load a weight file, or the weights of a checkpoint folder, safely by default.

    Parameters
    ----------
    path
        A ``.pt``/``.pth``/``.ckpt``/``.bin``/``.safetensors`` file, or a folder such as
        ``checkpoint-500/`` (its ``model.safetensors``, ``diffusion_pytorch_model.safetensors``,
        ``pytorch_model.bin`` or single weight file is used).
    map_location
        Passed to ``torch.load``.
    trusted
        Allow full unpickling (arbitrary code in the file runs). ``None``: what the watcher
        was started with (``--trust-checkpoints``), else ``False``.
    """
    import torch

    path = Path(path)
    if path.is_dir():
        path = _weights_in_folder(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device=str(map_location))
    trusted = _TRUST.get() if trusted is None else trusted
    try:
        with warnings.catch_warnings():  # a plain pickle: said below in one line, not also as torch's warning
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(path, map_location=map_location, weights_only=not trusted)
    except RuntimeError as exc:
        if not (trusted and "Invalid magic number" in str(exc)):
            raise
        # a plain pickle (StyleGAN's network-snapshot-*.pkl, pickle.dump of the networks): torch
        # reads only what torch.save wrote; trusted, it is unpickled as it was written
        with open(path, "rb") as fh:
            return pickle.load(fh)
    except Exception as exc:
        if not trusted and "weights_only" in str(exc):
            lines = message_lines(exc)
            what = next((line for line in lines if "Unsupported" in line), lines[0] if lines else "")
            what = what.split(" was not an allowed")[0][:160]  # keep the hint below in view
            raise SamplerError(f"{path}: holds Python objects that weights_only loading refuses ({what}); "
                               "if you produced this checkpoint yourself, pass --trust-checkpoints") from None
        raise


_FOLDER_WEIGHTS = ("model.safetensors", "diffusion_pytorch_model.safetensors", "pytorch_model.bin",
                   "diffusion_pytorch_model.bin", "model.pt", "model.pth", "generator.pt", "ema.pt")


def _weights_in_folder(folder: Path) -> Path:
    for name in _FOLDER_WEIGHTS:
        if (folder / name).is_file():
            return folder / name
    candidates = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in MODEL_EXTENSIONS | {".pt"}
                        and not _NOT_GENERATOR.match(p.name))
    if len(candidates) != 1:
        raise SamplerError(f"{folder}: cannot tell which file holds the weights "
                           f"({', '.join(p.name for p in candidates) or 'none'}); load it explicitly")
    return candidates[0]


# --- the spec ----------------------------------------------------------------------------

def parse_sampler_spec(spec: str) -> tuple[str, str]:
    """Split ``package.module:function`` or ``path/to/file.py:function`` into (target, function)."""
    target, sep, function = (spec or "").rpartition(":")
    if not sep or not target or not function.isidentifier():
        raise SamplerError(f"Expected --sampler as package.module:function or path/to/file.py:function. "
                           f"Got {spec!r} instead.")
    return target, function


@contextlib.contextmanager
def _own_argv(target: str) -> Iterator[None]:
    """Around the sampler's import and calls: its ``sys.argv`` is its own name, not evowatch's
    command line (a training script that parses its options, as PyTorch-GAN's do at import,
    gets its defaults; it printed "evowatch: error: unrecognized arguments: watch RUN ...")."""
    argv = sys.argv
    sys.argv = [target]
    try:
        yield
    finally:
        sys.argv = argv


@contextlib.contextmanager
def _importing(target: str, name: str | None = None) -> Iterator[None]:
    """Around a sampler's import (:func:`_own_argv`): an import that exits is said as the
    sampler's failure."""
    try:
        with _own_argv(target):
            yield
    except SystemExit as exc:
        sys.modules.pop(name or target, None)
        raise SamplerError(f"{target}: importing the sampler failed: it exited (SystemExit: {exc.code}); a script "
                           "that parses its command line or exits when imported: keep that under "
                           "`if __name__ == \"__main__\":`") from None


def _import_target(target: str) -> tuple[Any, Path | None]:
    if target.endswith(".py") or os.sep in target or "/" in target:
        path = Path(target).expanduser().resolve()
        if not path.is_file():
            raise SamplerError(f"{target}: {'is a folder, not a' if path.is_dir() else 'no such'} sampler file; give "
                               "path/to/file.py:function")
        name = f"evowatch_sampler_{hashlib.blake2b(str(path).encode(), digest_size=6).hexdigest()}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None:  # no Python suffix: nothing knows how to load it
            raise SamplerError(f"{target}: not a Python file; give path/to/file.py:function")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module  # dataclasses and pickling look the module up by name
        sys.path.insert(0, str(path.parent))  # so the file can import its neighbours
        try:
            with _importing(target, name):
                module_spec.loader.exec_module(module)
        except SamplerError:
            raise
        except Exception as exc:
            sys.modules.pop(name, None)
            raise SamplerError(f"{target}: importing the sampler failed ({type(exc).__name__}: {exc})") from exc
        finally:
            sys.path.remove(str(path.parent))
        if str(path.parent) not in sys.path:  # and when its function runs (`from netdef import G` in it, a
            sys.path.append(str(path.parent))  # whole model unpickled), after evowatch's own modules
        return module, path
    if Path(target).is_dir() and not (Path(target) / "__init__.py").is_file():  # imported as an empty namespace
        raise SamplerError(f"{target}: is a folder, not a sampler file; give path/to/file.py:function")
    try:
        with _importing(target):
            module = importlib.import_module(target)
    except ImportError as exc:
        raise SamplerError(f"{target}: sampler module not importable ({exc}); check PYTHONPATH or give a file path") from exc
    except SamplerError:
        raise
    except Exception as exc:  # a SyntaxError, a RuntimeError at import: one line, as for a file
        raise SamplerError(f"{target}: importing the sampler failed ({type(exc).__name__}: {exc})") from exc
    file = getattr(module, "__file__", None)
    return module, Path(file) if file else None


def _file_digest(path: Path | None) -> str | None:
    if path is None or not path.is_file():
        return None
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "blake2b").hexdigest()[:32]


def resolve_device(device: str) -> str:
    """``auto`` is ``cuda`` when torch sees a GPU, else ``cpu``."""
    if device != "auto":
        return device
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


# --- the sampler ----------------------------------------------------------------------------

@dataclass
class Sampler:
    """A loaded ``--sampler``: discovers weight checkpoints and turns each into samples.

    It stands in for :func:`engine.discovery.scan.scan_run`, :func:`engine.discovery.identity.content_hash`
    and :func:`engine.decode.samples.iter_samples` for generated checkpoints; reference sets
    (``--real``/``--holdout``) go through the ordinary functions.
    """

    spec: str
    function: Callable[..., Any]
    n_samples: int = DEFAULT_SAMPLES_PER_CHECKPOINT
    seed: int = DEFAULT_SEED
    device: str = "cpu"
    trust_checkpoints: bool = False
    weight_globs: tuple[str, ...] = ()
    source_file: Path | None = None
    source_hash: str | None = None
    _accepts: frozenset[str] = field(default=frozenset(), init=False, repr=False)
    _options: DiscoveryOptions | None = field(default=None, init=False, repr=False)  # the last scan's

    def __post_init__(self) -> None:
        if self.n_samples < 1:
            raise ValueError(f"Expected --samples-per-checkpoint >= 1. Got {self.n_samples} instead.")
        try:
            params = inspect.signature(self.function).parameters
        except (TypeError, ValueError):
            params = {}
        names = set(params)
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            names |= {"device"}
        self._accepts = frozenset(names)

    @property
    def identity(self) -> dict[str, Any]:
        """What the store records: the spec, the code's hash and the sampling settings."""
        return {"spec": self.spec, "file": str(self.source_file) if self.source_file else None,
                "file_hash": self.source_hash, "n_samples": self.n_samples, "seed": self.seed,
                "device": self.device, "trust_checkpoints": self.trust_checkpoints}

    # --- discovery --------------------------------------------------------------------
    def scan(self, run_dir: str | os.PathLike[str], options: DiscoveryOptions | None = None) -> list[Checkpoint]:
        """The run's weight checkpoints, sorted by step (see :func:`scan_weights`)."""
        self._options = options
        return scan_weights(run_dir, options, self.weight_globs)

    def content_hash(self, checkpoint: Checkpoint) -> str:
        """The weights' version, salted with the sampler's identity: a changed sampler resamples;
        and with how the samples are read where set by hand (``--value-range``): another reads
        them again (they were kept as first read).

        Weights can be gigabytes and trainers write each file once, so a version is the
        files' names, sizes and modification times rather than their bytes.
        """
        if checkpoint.kind != "generated":
            return content_hash(checkpoint)
        version = hashlib.blake2b(digest_size=16)
        for name, size, mtime_ns in file_versions(checkpoint):
            version.update(f"{name}|{size}|{mtime_ns}\n".encode())
        salt = f"{self.source_hash}|{self.spec}|{self.n_samples}|{self.seed}"
        digest = hashlib.blake2b(f"{version.hexdigest()}|{salt}".encode(), digest_size=16).hexdigest()
        settings = reading_settings(checkpoint, self._options)
        return hashlib.blake2b(f"{digest}|{settings}".encode(), digest_size=16).hexdigest() if settings else digest

    @staticmethod
    def is_ready(checkpoint: Checkpoint, options: DiscoveryOptions | None = None, now: float | None = None) -> bool:
        """Weights are ready as sample files are: once they stopped changing (or their ready file exists)."""
        return is_ready(checkpoint, options, now)

    # --- sampling ----------------------------------------------------------------------
    def __call__(self, checkpoint_path: str | os.PathLike[str]) -> Any:
        """Call the function once, with the global RNGs seeded and restored afterwards."""
        kwargs = {"device": self.device} if "device" in self._accepts else {}
        with _seeded(self.seed, self.device), _own_argv(self.spec.rpartition(":")[0]):
            token = _TRUST.set(self.trust_checkpoints)
            try:
                return self.function(str(checkpoint_path), self.n_samples, self.seed, **kwargs)
            finally:
                _TRUST.reset(token)

    def iter_samples(self, checkpoint: Checkpoint, options: DiscoveryOptions | None = None) -> Iterator[Sample | SkippedFile]:
        """Samples of one checkpoint (instance = row); a failing sampler is one skipped file."""
        if checkpoint.kind != "generated":
            yield from iter_samples(checkpoint, options)
            return
        path = checkpoint.root / checkpoint.source
        try:
            images, labels, latents, given = _as_arrays(self(path))
        except (Exception, SystemExit) as exc:  # the user's code: any failure is reported, never fatal
            lines = message_lines(exc) or ["(no message)"]
            first = " ".join(lines[:2]) if lines[0].endswith(":") else lines[0]  # "Error(s) in loading state_dict for G:"
            reason = f"sampler {self.spec} failed: {type(exc).__name__}: {first}"[:500]
            yield SkippedFile(path=checkpoint.source, reason=reason, retry=True)
            return
        if len(images) != self.n_samples:
            log.warning("%s: the sampler returned %d images, asked for %d", checkpoint.source, len(images), self.n_samples)
        try:  # a diverged generator's NaN, a sampler that forgot to denormalise: said, and the watch goes on
            value_range = pixel_scaling(images, given or (options.value_range if options else None))
            for row, pixels in uint8_rows(images, value_range):
                label = label_text(labels[row]) if labels is not None else None
                latent = np.asarray(latents[row], np.float32).reshape(-1) if latents is not None else None
                yield Sample(image=to_rgb(pixels), instance=row, path=f"{checkpoint.source}#{row}",
                             label=label, latent=latent)
        except SkipFile as exc:
            yield SkippedFile(path=checkpoint.source, reason=f"the output of sampler {self.spec}: {exc}",
                              diverged=exc.diverged)


def _as_arrays(result: Any) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, tuple[float, float] | None]:
    """A sampler's return value as (NHWC images, labels or None, latents or None, the float
    images' (low, high) range when the mapping says it: ``"value_range": (-1, 1)``)."""
    def numpy(value: Any) -> np.ndarray:
        if hasattr(value, "detach"):  # a torch tensor, on any device
            value = value.detach().cpu()
            if str(value.dtype) == "torch.bfloat16":
                value = value.float()
            return value.numpy()
        return np.asarray(value)

    given = None
    sequence = isinstance(result, (list, tuple)) and bool(result) and not np.isscalar(result[0])
    first = np.ndim(numpy(result[0])) if sequence else None  # a list of images, or (images, labels)
    if isinstance(result, Mapping):
        given = result.get("value_range")
        if given is not None:
            given = tuple(float(v) for v in given)
            if len(given) != 2 or not given[0] < given[1]:
                raise TypeError(f"returned value_range {result['value_range']!r}: expected (low, high), low < high")
        arrays = {str(k): numpy(v) for k, v in result.items() if v is not None and k != "value_range"}
        images = array_under(arrays, IMAGE_KEYS)
        if images is None:
            raise TypeError(f"returned a mapping without images (keys: {', '.join(arrays)})")
        labels, latents = array_under(arrays, LABEL_KEYS), array_under(arrays, LATENT_KEYS)
    elif first == 4 and isinstance(result, tuple):
        # (images, labels): numpy's "inhomogeneous shape" said nothing of what to return instead
        raise TypeError(f"returned a tuple of {len(result)}, the first a batch of images: return the images, or a "
                        "mapping {'images': ..., 'labels': ..., 'latents': ...}")
    elif first == 3:
        images, labels, latents = np.stack([numpy(v) for v in result]), None, None
    else:
        images, labels, latents = numpy(result), None, None
    try:
        images = to_nhwc(images)
    except SkipFile as exc:
        raise TypeError(f"returned no image batch: {exc}") from None
    if not len(images):  # stored as a step of 0 samples, never sampled again
        raise TypeError("returned no images")
    for name, extra in (("labels", labels), ("latents", latents)):
        if extra is not None and (extra.ndim == 0 or len(extra) != len(images)):
            raise TypeError(f"returned {len(np.atleast_1d(extra))} {name} for {len(images)} images")
    return images, labels, latents, given


@contextlib.contextmanager
def _seeded(seed: int, device: str) -> Iterator[None]:
    """Seed torch (CPU and the GPU in use), numpy and ``random``; restore them afterwards."""
    py_state, np_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        import torch
    except ImportError:
        torch = None
    try:
        if torch is None:
            yield
        else:
            devices = [torch.device(device).index or 0] if device.startswith("cuda") else []
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(seed)
                yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def load_sampler(spec: str, n_samples: int = DEFAULT_SAMPLES_PER_CHECKPOINT, seed: int = DEFAULT_SEED,
                 device: str = "auto", trust_checkpoints: bool = False,
                 weight_globs: tuple[str, ...] | list[str] | None = None) -> Sampler:
    """Import a ``--sampler`` spec and check that it names a callable."""
    target, name = parse_sampler_spec(spec)
    module, file = _import_target(target)
    function = getattr(module, name, None)
    if not callable(function):
        raise SamplerError(f"{spec}: {target} has no function {name!r}")
    sampler = Sampler(spec=spec, function=function, n_samples=int(n_samples), seed=int(seed),
                      device=resolve_device(device), trust_checkpoints=bool(trust_checkpoints),
                      weight_globs=tuple(weight_globs or ()), source_file=file, source_hash=_file_digest(file))
    log.info("sampler %s: %d samples per checkpoint, seed %d, on %s%s", spec, sampler.n_samples, sampler.seed,
             sampler.device, " (trusting checkpoints: full unpickling)" if trust_checkpoints else "")
    return sampler


# --- weight checkpoints -----------------------------------------------------------------------

def weight_step(name: str, options: DiscoveryOptions) -> int | None:
    """The step of a weight file or folder: ``step=N`` when present, else the discovery rule."""
    if options.step_regex is None:
        match = _STEP_KEY.search(name)
        if match:
            return int(match[1])
    return step_of(name, options, is_file=not os.path.splitext(name)[1] == "")


def is_generator_weights(name: str, weight_globs: tuple[str, ...] = ()) -> bool:
    """A weight file that may hold the generator (no optimizer, discriminator or RNG state)."""
    if weight_globs:
        return any(fnmatch.fnmatch(name.lower(), g.lower()) for g in weight_globs)
    ext = os.path.splitext(name)[1].lower()
    # Any .pt counts: with --sampler the user says the run saves weights (`G_0100.pt`);
    # .npy/.npz hold arrays, not models.
    weightish = is_weight_file(name) or ext in MODEL_EXTENSIONS or ext == ".pt"
    return weightish and not _NOT_GENERATOR.match(name) and not name.startswith(".")


def _path_picked(path: Path, root: Path, weight_globs: tuple[str, ...]) -> bool:
    """A ``--weights`` glob with a ``/`` is matched against the path below the run
    (``checkpoints/netG_*.pth``): against the name alone, it matched nothing, unsaid."""
    relative = path.relative_to(root).as_posix().lower()
    return any("/" in glob and fnmatch.fnmatch(relative, glob.lower()) for glob in weight_globs)


def _is_checkpoint_folder(folder: Path, options: DiscoveryOptions) -> bool:
    """A numbered folder that holds one checkpoint's weights (``checkpoint-500/``), not a run
    folder of numbered weight files (EDM's ``00000-cifar10-32x32-…/network-snapshot-*.pkl``,
    mmengine's ``work_dirs/EXP_800k/iter_*.pth``: read as one checkpoint at step 32 or 800)."""
    try:
        weights = [p.name for p in folder.iterdir() if p.is_file() and (
            os.path.splitext(p.name)[1].lower() in MODEL_EXTENSIONS or is_weight_file(p.name))]
    except OSError:
        return False
    stems = {os.path.splitext(name)[0] for name in weights}
    steps = {weight_step(name, options) for name in weights if is_generator_weights(name)
             and not _a_further_model(name, stems)} - {None}
    return bool(weights) and len(steps) < 2


def _a_further_model(name: str, stems: set[str]) -> bool:
    """accelerate's ``save_state`` numbers a checkpoint's further models beside the first
    (``model.safetensors``, ``model_1.safetensors``, ``model_2.safetensors``: G, D, EMA): their
    numbers were read as two steps, the folder as a run, and steps 1 and 2 were sampled."""
    match = re.fullmatch(r"(.+)_\d{1,2}", os.path.splitext(name)[0])
    return bool(match) and match[1] in stems


def scan_weights(run_dir: str | os.PathLike[str], options: DiscoveryOptions | None = None,
                 weight_globs: tuple[str, ...] = (), without_step: list[str] | None = None) -> list[Checkpoint]:
    """Weight checkpoints below ``run_dir``: numbered weight files and numbered folders of weights.

    ``model-12.pt``, ``epoch=3-step=1000.ckpt`` and ``network-snapshot-000200.pkl`` are
    checkpoints; so is a folder named with a step that holds weights (``checkpoint-500/``),
    taken whole. Names without a step (``last.ckpt``, ``model-best.pt``) and optimizer,
    discriminator and RNG-state files are left out; ``weight_globs`` (``--weights``) picks
    the files instead, e.g. ``netG_*.pth``. Sorted by (step, source). Weight files whose
    names carry no step are added to ``without_step`` when given (VAR rewrites its
    ``ar-ckpt-last.pth``: nothing to place samples at).
    """
    options = options or DiscoveryOptions()
    root = Path(run_dir)
    if not root.is_dir():
        raise SamplerError(f"{root}: run directory not found (or not a directory); check the path.")
    found: list[Checkpoint] = []

    def visit(folder: Path, depth: int) -> None:
        for entry in folder_entries(folder):  # stores, unreadable folders (said) left out
            path = Path(entry.path)
            if entry.name.startswith(".") or entry.name in _SKIP_DIRS:
                continue
            try:
                is_dir, is_file = entry.is_dir(follow_symlinks=False), entry.is_file()
            except OSError:
                continue
            if is_file and (is_generator_weights(entry.name, weight_globs) or _path_picked(path, root, weight_globs)):
                step = weight_step(entry.name, options)
                if step is None and weight_globs:  # picked by name in a numbered folder: the folder's step
                    step = next((s for part in reversed(path.relative_to(root).parts[:-1])  # (accelerate's
                                 if (s := weight_step(part, options)) is not None), None)  # checkpoint-500/ema_model...)
                if step is not None:
                    found.append(Checkpoint(step=step, source=path.relative_to(root).as_posix(), files=(path,), root=root))
                elif without_step is not None:
                    without_step.append(path.relative_to(root).as_posix())
            elif is_dir:
                step = weight_step(entry.name, options)
                if step is not None and not weight_globs and _is_checkpoint_folder(path, options):
                    files = tuple(sorted(p for p in walk_files(path) if not p.name.startswith(".")))
                    if files:
                        found.append(Checkpoint(step=step, source=path.relative_to(root).as_posix(), files=files, root=root))
                elif depth < _MAX_DEPTH:
                    visit(path, depth + 1)

    visit(root, 0)
    found.sort(key=lambda c: (c.step, c.source))
    log.debug("scan %s for weights: %d checkpoints", root, len(found))
    return found
