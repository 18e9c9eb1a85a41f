"""Whether a file repeats what a sibling of its name holds, one rule for a run's levels
(:mod:`engine.discovery.levels`) and inside a checkpoint folder (:mod:`engine.discovery.samples`):
read too, its samples were counted twice and skewed the diversity and near-copy signals."""
from __future__ import annotations

import re
from pathlib import Path

from engine.backlog_log import counted
from engine.discovery.options import IMAGE_EXTENSIONS, TENSOR_EXTENSIONS
from stores.format import listed

#: The end of a smaller copy's name (MLflow's ``{key}+step+500+…+compressed.webp``).
_THUMBNAIL_SUFFIX = re.compile(r"[+%_.-](?:compressed|thumbs?|thumbnail)$", re.IGNORECASE)


def is_copy_beside(path: Path, folders: set[str], images: set[str], videos: set[str]) -> bool:
    """A file that repeats what a sibling of the same name holds: a sample folder packed as a
    tensor (DiT's ``FOLDER.npz``) or drawn as one grid (AnimateDiff's ``sample-500.gif`` beside
    ``sample-500/``), or a tensor file beside an image of its name (pytorch_GAN_zoo's
    ``celebaHQ_s5_i16000.pt`` weights beside ``celebaHQ_s5_i16000.jpg``; ``images`` leaves out
    those the tensor holds more samples than they show), or an image beside a video of its
    name (CogVideoX's image-to-video input beside the ``.mp4`` made from it), or a smaller copy
    of an image (MLflow's ``…+compressed.webp`` beside each logged ``.png``; ``cat.png+compressed.webp``
    beside ``cat.png``). ``folders``, ``images``, ``videos``: the stems beside it."""
    suffix = path.suffix.lower()
    return ((suffix in TENSOR_EXTENSIONS or suffix in IMAGE_EXTENSIONS) and path.stem in folders
            or suffix in TENSOR_EXTENSIONS and path.stem in images
            or suffix in IMAGE_EXTENSIONS and (path.stem in videos or _thumbnail_of(path.stem, images)))


def _thumbnail_of(stem: str, images: set[str]) -> bool:
    if not (small := _THUMBNAIL_SUFFIX.search(stem)):
        return False
    of = stem[:small.start()]
    return of in images or Path(of).suffix.lower() in IMAGE_EXTENSIONS and Path(of).stem in images


def copies_line(folder: Path, names: list[str], weights: bool = True) -> str:
    """The line saying which files of ``folder`` are left out as copies beside (``weights``: a
    tensor beside an image is among the reasons; a checkpoint says those on their own line)."""
    one = len(names) == 1
    why = ", weights saved beside their samples," if weights else ","
    return (f"{folder}: {counted(len(names), 'file')} named as a folder, an image or a video beside "
            f"{'it' if one else 'them'} ({listed(names, 2)}) left out: "
            f"a sample folder packed or drawn as one file{why} a video's input image or a smaller copy; the samples "
            "are read once, from the folder or the full-size image (--samples GLOB picks one)")


def videos_line(folder: Path, names: list[str]) -> str:
    """The line saying ``folder``'s videos are not read: beside them an image of their name is left
    out as their input, so a checkpoint of videos alone holds no sample, and this says why."""
    return (f"{folder}: {counted(len(names), 'video file')} ({listed(names, 2)}) "
            "not read: evowatch reads images; have the trainer save its samples as images, or as GIF or WebP "
            "(read at their last frame)")
