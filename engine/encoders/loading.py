"""open_clip model loading: a parsed ``clip:`` spec -> the model on CPU and its identity, one line on failure."""
from __future__ import annotations

import contextlib
import json
import logging
import pickle
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from engine.clip_weights import find_weights_in_dir, pretrained_weights, refuse_lfs_pointer, sha256_bytes, sha256_file
from engine.encoders.spec import RANDOM_SEED, EncoderSpec
from engine.errors import EncoderSpecError, EvowatchError, WeightsNotFoundError, message_lines
from stores.format import did_you_mean

if TYPE_CHECKING:  # pragma: no cover
    import torch


def _load_clip(spec: EncoderSpec, precision: str = "fp32") -> tuple["torch.nn.Module", str, str]:
    """Create the open_clip model on CPU in ``precision`` (open_clip's: ``fp32``, ``fp16``);
    returns (model, open_clip model name, identity)."""
    import open_clip
    import torch

    if spec.source == "local-dir":
        folder = spec.path
        assert folder is not None
        config = folder / "open_clip_config.json"
        if not config.is_file():
            raise WeightsNotFoundError(
                f"{config} does not exist: 'clip:local-dir:FOLDER' needs open_clip_config.json and a weights file."
            )
        weights = find_weights_in_dir(folder, f"put the weights beside {config.name}")
        refuse_lfs_pointer(weights)
        name = f"local-dir:{folder}"
        # the file hashed into the identity, loaded by us: open_clip's own pick skips .pt files
        # (a random model was used under the identity of those weights) and orders others its way
        with _quiet_random_init_warning():
            model = _create(name, None, load_weights=False, precision=precision)
        _load_weights(model, name, weights)
        cfg_hash = sha256_bytes(config.read_bytes())[:10]
        return model, name, f"clip:local-dir#cfg-{cfg_hash}@sha256-{sha256_file(weights)[:12]}"

    name, arch_label = _resolve_arch(spec.arch)
    if spec.source == "random":
        with torch.random.fork_rng(devices=[]), _quiet_random_init_warning():
            torch.manual_seed(RANDOM_SEED)
            model = _create(name, None, precision=precision)
        return model, name, f"clip:{arch_label}/random-seed{RANDOM_SEED}"
    if spec.source == "path":
        assert spec.path is not None
        weights = find_weights_in_dir(spec.path) if spec.path.is_dir() else spec.path
        if not weights.is_file():
            raise WeightsNotFoundError(
                f"Weights file {weights} does not exist (from clip:{spec.arch}@{spec.path})."
            )
        refuse_lfs_pointer(weights)
        if spec.tag is None:
            model = _create(name, str(weights), precision=precision)
            return model, name, f"clip:{arch_label}@sha256-{sha256_file(weights)[:12]}"
        tag, settings, quick = _as_tag(name, spec.tag)
        model = _create(name, str(weights), precision=precision, **settings)
        return model, name, f"clip:{arch_label}/{tag}@sha256-{sha256_file(weights)[:12]}" + ("+quickgelu" if quick else "")
    assert spec.source == "tag" and spec.tag is not None
    tag, settings, quick = _as_tag(name, spec.tag)
    weights = pretrained_weights(name, tag, open_clip.get_pretrained_cfg(name, tag))
    model = _create(name, str(weights), precision=precision, **settings)
    return model, name, f"clip:{arch_label}/{tag}" + ("+quickgelu" if quick else "")


def _as_tag(name: str, tag: str) -> tuple[str, dict[str, Any], bool]:
    """(tag, open_clip model settings, QuickGELU?) to build ``name`` as pretrained ``tag``'s
    weights were trained: its image preprocessing (SigLIP's mean 0.5 and squash resize, ...)
    and QuickGELU (OpenAI's, laion400m_e3x...). Given a file path, open_clip sets neither from
    a tag nor warns: ViT-B-32/openai ran on GELU, and a copy of a tag's file read as ARCH@FILE
    gave other vectors than the tag (cosine -0.38 for one image). The identity says QuickGELU:
    a store of the GELU model's vectors refuses these."""
    import open_clip

    tag = open_clip.pretrained._clean_tag(tag)
    cfg = open_clip.get_pretrained_cfg(name, tag)
    if not cfg:
        known = open_clip.list_pretrained_tags_by_model(name)
        raise EncoderSpecError(f"Expected a pretrained tag for {name} (one of {known}) or 'random'. Got {tag!r} "
                               f"instead{did_you_mean(tag, known)}.")
    pp = {f"image_{k}": cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if cfg.get(k)}
    quick = bool(cfg.get("quick_gelu")) and not (open_clip.get_model_config(name) or {}).get("quick_gelu")
    return tag, {"force_quick_gelu": quick, **pp}, quick


def _create(name: str, pretrained: str | None, **kwargs: Any) -> "torch.nn.Module":
    import open_clip

    try:
        with _no_pickle_protocol_warning():
            model, _, _ = open_clip.create_model_and_transforms(name, pretrained=pretrained, device="cpu", **kwargs)
    except Exception as exc:  # weights of another model, a damaged or foreign file: any error, one line
        raise _cannot_build(name, pretrained, exc) from exc
    return model


@contextlib.contextmanager
def _no_pickle_protocol_warning() -> Iterator[None]:
    """torch's "Detected pickle protocol 4" warning of a file it will not load: on stderr
    before our one line saying why (round AJ)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected pickle protocol")
        yield


def _load_weights(model: "torch.nn.Module", name: str, weights: Path) -> None:
    import open_clip

    try:
        with _no_pickle_protocol_warning():
            open_clip.load_checkpoint(model, str(weights))
    except Exception as exc:
        raise _cannot_build(name, str(weights), exc) from exc


def _cannot_build(name: str, weights: str | None, exc: Exception) -> EvowatchError:
    """One line for a model that could not be built or loaded: the error's first two lines
    (a state dict's "Error(s) in loading state_dict for CLIP:" says what only on the next)."""
    lines = message_lines(exc)[:2] or [type(exc).__name__]
    if isinstance(exc, pickle.UnpicklingError):  # torch's second line advises unpickling anyway: not for
        why = ("not a file torch.save wrote" if "Unsupported operand" in str(exc)  # text, a plain pickle
               else "no checkpoint torch loads without running its code")
        lines = [lines[0].split(". ")[0].rstrip(".") + ": " + why]
    elif isinstance(exc, EOFError):
        lines = ["the file is empty or cut short"]
    where = f" from {weights}" if weights else ""
    said = f"{type(exc).__name__}: " + " ".join(lines)
    if len(said) > 300:  # a state dict's key list: cut between keys, not inside one
        cut = said.rfind(", ", 0, 300)
        said = (said[:cut] if cut > 0 else said[:300]) + ", ..."
    if weights and not _may_be_weights(Path(weights)):  # a text file's pickle error read "KeyError: 101"
        said = "not a file torch.save or safetensors wrote"
    return EvowatchError(f"Cannot build open_clip model {name}{where} ({said}); "
                         "the weights must be the architecture's (a file saved by open_clip or torch.save of its "
                         "state_dict)")


def _may_be_weights(path: Path) -> bool:
    """Whether a file starts as torch.save (a zip since torch 1.6, a pickle's protocol opcode
    before) or safetensors (a little-endian header length, then its JSON) writes one; one that
    cannot be read is said otherwise."""
    try:
        with path.open("rb") as f:
            head = f.read(9)
    except OSError:
        return True
    return not head or head.startswith((b"PK\x03\x04", b"\x80")) or head[8:9] == b"{"  # empty: said as cut short


class _DropRandomInitWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("No pretrained weights loaded", "Local config loaded, but no CLIP weights"))


@contextlib.contextmanager
def _quiet_random_init_warning() -> Iterator[None]:
    """open_clip warns on the root logger about random init: for ``/random`` it was asked for,
    for a local-dir folder the weights are loaded next (:func:`_load_weights`)."""
    root, flt = logging.getLogger(), _DropRandomInitWarning()
    root.addFilter(flt)
    try:
        yield
    finally:
        root.removeFilter(flt)


def _resolve_arch(arch: str) -> tuple[str, str]:
    """Return (open_clip model name, identity label) for a built-in name or a config JSON path."""
    import open_clip

    if arch.endswith(".json"):
        return _register_config(Path(arch).expanduser())
    if arch in open_clip.list_models():
        return arch, arch
    raise EncoderSpecError(
        f"Expected an open_clip model name (see open_clip.list_models(), e.g. ViT-B-32) or a model-config "
        f".json path. Got {arch!r} instead{did_you_mean(arch, open_clip.list_models())}."
    )


_registered_configs: dict[str, Path] = {}


def _register_config(path: Path) -> tuple[str, str]:
    """Register an open_clip model-config JSON under its file stem (once per content)."""
    import open_clip

    if not path.is_file():
        raise EncoderSpecError(f"Model config file {path} does not exist.")
    raw = path.read_bytes()
    try:
        cfg = json.loads(raw)
    except ValueError as exc:
        raise EncoderSpecError(f"Model config file {path} is not valid JSON: {exc}") from exc
    missing = [k for k in ("embed_dim", "vision_cfg", "text_cfg") if not isinstance(cfg, dict) or k not in cfg]
    if missing:
        raise EncoderSpecError(
            f"Expected an open_clip model config with embed_dim, vision_cfg and text_cfg. "
            f"Got {path} without {', '.join(missing)} instead."
        )
    name = path.stem
    label = f"{name}#cfg-{sha256_bytes(raw)[:10]}"
    existing = open_clip.get_model_config(name)
    if existing is not None:
        if existing == cfg:
            return name, label
        source = _registered_configs.get(name, "open_clip's built-in configs")
        raise EncoderSpecError(
            f"A different model config named {name!r} is already registered (from {source}); "
            f"rename {path} to give it a unique file name."
        )
    open_clip.add_model_config(path)
    _registered_configs[name] = path.resolve()
    return name, label
