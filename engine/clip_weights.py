"""Where CLIP weights come from: a local file or folder, or the Hugging Face cache, and the
hub only when it answers (asking an unreachable hub takes ~50 s to fail; the cache and a
4 s connection probe come first), with one line saying how to provide missing weights."""
from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from engine.errors import WeightsNotFoundError

__all__ = ["cached_pretrained_path", "find_weights_in_dir", "hf_cache_dir", "pretrained_weights", "sha256_bytes",
           "sha256_file"]

log = logging.getLogger(__name__)

HUB_PROBE_TIMEOUT_S = 4.0
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_PREFERRED_WEIGHT_NAMES = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth",
    "model.safetensors",
    "pytorch_model.bin",
)


def find_weights_in_dir(folder: Path, fix_for_none: str | None = None) -> Path:
    """The weights file of a folder: open_clip's and Hugging Face's usual names first, else its
    only weights file; several or none is an error naming the fix (``fix_for_none``: for none)."""
    if not folder.is_dir():
        raise WeightsNotFoundError(f"Weights folder {folder} does not exist.")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in _WEIGHT_SUFFIXES)
    for preferred in _PREFERRED_WEIGHT_NAMES:
        if (folder / preferred) in files:
            return folder / preferred
    if len(files) == 1:
        return files[0]
    if not files:
        raise WeightsNotFoundError(
            f"No weights file ({', '.join(_WEIGHT_SUFFIXES)}) in {folder}; "
            + (f"{fix_for_none}." if fix_for_none else f"name the file: clip:ARCH@{folder}/FILE.")
        )
    raise WeightsNotFoundError(
        f"Several weights files in {folder} ({', '.join(p.name for p in files)}); name one: clip:ARCH@{folder}/FILE."
    )


def refuse_lfs_pointer(weights: Path) -> None:
    """A Git LFS pointer (a repository cloned without ``git lfs``) is said as such: torch's own
    error advised ``weights_only=False``, which cannot help."""
    try:
        with open(weights, "rb") as fh:
            head = fh.read(64)
    except OSError:
        return
    if head.startswith(b"version https://git-lfs"):
        raise WeightsNotFoundError(f"{weights} is a Git LFS pointer, not the weights: run `git lfs pull` in its "
                                   "repository (or download the file itself)")


def sha256_bytes(data: bytes) -> str:
    """Hex digest; identities name configs and weights by content, not by path."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex digest of a file read in 4 MB blocks (weights files are hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment now (not at import time)."""
    env = os.environ
    for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if env.get(key):
            return Path(env[key]).expanduser()
    home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(home).expanduser() / "hub"


def _hub_files(cfg: dict[str, Any]) -> list[tuple[str, str]]:
    """(repo id, filename) candidates for a pretrained cfg, in open_clip's order of preference."""
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    hub = cfg.get("hf_hub") or ""
    if not hub:
        return []
    repo, filename = os.path.split(hub)
    filename = filename or HF_WEIGHTS_NAME
    names = []
    if filename == HF_WEIGHTS_NAME:
        names.append(HF_SAFE_WEIGHTS_NAME)
    elif filename.endswith((".bin", ".pth")):
        names.append(filename[:-4] + ".safetensors")
    names.append(filename)
    return [(repo, n) for n in names]


def cached_pretrained_path(cfg: dict[str, Any], cache_dir: Path | None = None) -> Path | None:
    """The local file holding a pretrained tag's weights, or None; never touches the network."""
    from huggingface_hub import try_to_load_from_cache

    if cfg.get("file") and Path(cfg["file"]).is_file():
        return Path(cfg["file"])
    cache = cache_dir or hf_cache_dir()
    for repo, filename in _hub_files(cfg):
        found = try_to_load_from_cache(repo, filename, cache_dir=str(cache))
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None


def _hub_offline() -> bool:
    import huggingface_hub.constants as hc

    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")
    return flag or bool(getattr(hc, "HF_HUB_OFFLINE", False))


def _hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """One TCP connection to the hub endpoint, bounded by ``timeout`` (DNS included)."""
    import huggingface_hub.constants as hc

    url = urlparse(os.environ.get("HF_ENDPOINT") or hc.ENDPOINT)
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True, name="evowatch-hub-probe")
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def pretrained_weights(name: str, tag: str, cfg: dict[str, Any]) -> Path:
    """The local file of an open_clip pretrained tag: the cache, else a download when the hub
    answers, else :class:`WeightsNotFoundError` within seconds."""
    cache = hf_cache_dir()
    found = cached_pretrained_path(cfg, cache)
    if found is not None:
        log.info("weights for %s/%s from the local cache: %s", name, tag, found)
        return found
    files = _hub_files(cfg)
    what = f"{files[-1][0]}/{files[-1][1]}" if files else cfg.get("url", "?")
    offline = _hub_offline()
    if not offline and _hub_reachable():
        from open_clip.pretrained import download_pretrained

        log.info("downloading weights for %s/%s (%s) into %s", name, tag, what, cache)
        try:
            target = download_pretrained(cfg, cache_dir=str(cache))
        except Exception as exc:  # huggingface_hub raises many types; one line for the user
            raise WeightsNotFoundError(_missing_message(name, tag, what, cache, f"download failed: {exc}")) from exc
        if target and Path(target).is_file():
            return Path(target)
        raise WeightsNotFoundError(_missing_message(name, tag, what, cache, "download gave no file"))
    why = "HF_HUB_OFFLINE is set" if offline else "the hub is unreachable"
    raise WeightsNotFoundError(_missing_message(name, tag, what, cache, why))


def _missing_message(name: str, tag: str, what: str, cache: Path, why: str) -> str:
    why = " ".join(str(why).split())[:200]
    return (
        f"Pretrained weights clip:{name}/{tag} ({what}) are not in the local cache {cache} and {why}. "
        f"Provide them with --encoder clip:{name}/{tag}@/path/to/weights.pt, or pre-download them on a "
        f"connected machine (HF_HOME=DIR python -c \"import open_clip; "
        f"open_clip.create_model('{name}', pretrained='{tag}')\") and point HF_HOME at a copy of DIR here, "
        f"or use --encoder pixels offline."
    )
