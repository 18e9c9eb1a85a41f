"""What discovery is told: the kinds of file it reads, by extension, and the user's discovery
settings (the CLI's discovery flags), checked once when given."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from engine.grids import TileSlice


#: What Pillow reads that a trainer or a user's script saves samples as (``.avif`` needs
#: Pillow 11.3 or a plugin; a file Pillow cannot read is skipped with a warning).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".webp", ".avif", ".bmp", ".tif", ".tiff", ".gif", ".apng",
                    ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".qoi", ".jp2")
TENSOR_EXTENSIONS = (".npy", ".npz", ".pt")
DEFAULT_SAMPLE_GLOBS: tuple[str, ...] = tuple(f"*{ext}" for ext in IMAGE_EXTENSIONS + TENSOR_EXTENSIONS)
#: Video files (CogVideoX's, DynamiCrafter's, OneTrainer's samples of video models): not read, said.
VIDEO_EXTENSIONS = frozenset({".mp4", ".webm", ".mov", ".mkv", ".avi", ".m4v"})

#: Extensions of model weights and trainer state: never sample files.
MODEL_EXTENSIONS = frozenset({".pth", ".pkl", ".ckpt", ".safetensors", ".bin", ".h5", ".onnx", ".msgpack"})


@dataclass(frozen=True, slots=True)
class DiscoveryOptions:
    """How to find checkpoints and read their samples (the CLI's discovery flags).

    Parameters
    ----------
    step_regex
        Searched in each entry's name without its extension, then with it; the step is the
        named group ``step``, else the first group, else the whole match. ``None``: the
        number the name calls a step, else its last integer (:func:`step_in_name`).
    sample_globs
        Shell patterns (case-insensitive) matched against file names; weight files never match.
    grid
        Force ``(rows, cols)`` for every image, which is then split into tiles.
    tile_size
        Force the (square) tile size in pixels of every image.
    tile_rows, tile_cols
        Keep only these rows / columns of every grid of a generated checkpoint
        (:func:`engine.grids.parse_tile_slice`): the others hold the trainer's real inputs,
        reconstructions or attention maps. Tiles keep their index as instance id.
    ready_file
        When set, a checkpoint is ready only once this file exists in its folder (beside it
        for a single-file checkpoint; ``{stem}``, ``{name}`` and ``{step}`` are filled in).
    settle
        Without ``ready_file``: seconds that no file of the checkpoint may have changed.
    labels_file
        CSV (``file,label`` or ``instance,label``) or JSON mapping; a relative path is
        looked up in each checkpoint folder first, then in the run directory. ``None``: a
        ``labels.csv`` or ``labels.json`` inside the checkpoint folder, if there is one.
    label_folders
        ``True``: a sample's label is its parent folder's name (below the checkpoint);
        ``False``: never; ``None`` (auto): only when the checkpoint's files are spread over
        two or more sibling folders (ImageFolder layout), or sit in one that is such a folder
        of another checkpoint of the run (``folder_label_names``).
    """

    step_regex: str | None = None
    sample_globs: tuple[str, ...] = DEFAULT_SAMPLE_GLOBS
    grid: tuple[int, int] | None = None
    tile_size: int | None = None
    tile_rows: TileSlice | None = None
    tile_cols: TileSlice | None = None
    ready_file: str | None = None
    settle: float = 2.0
    labels_file: Path | None = None
    label_folders: bool | None = None
    value_range: tuple[float, float] | None = None
    #: the label folders of the run's other checkpoints (auto ``label_folders``): one whose
    #: files all sit in one of them (a step drifted to one class) is labelled by it too
    folder_label_names: frozenset[str] = frozenset()

    @property
    def samples_chosen(self) -> bool:
        """Whether the user chose the sample globs (``--samples``): they then decide alone what
        is read, above the names that say weights, real data or copies."""
        return self.sample_globs != DEFAULT_SAMPLE_GLOBS

    def __post_init__(self) -> None:
        if self.step_regex is not None:
            try:
                re.compile(self.step_regex)
            except re.error as exc:
                raise ValueError(f"Expected a regular expression for step_regex. Got {self.step_regex!r} "
                                 f"instead ({exc}).") from None
        if isinstance(self.sample_globs, str):
            object.__setattr__(self, "sample_globs", (self.sample_globs,))
        for name in ("sample_globs", "grid", "value_range"):  # lists given by a library caller: hashable, as
            if isinstance(getattr(self, name), list):  # the name checks' cache needs (it raised TypeError)
                object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.grid is not None and (len(self.grid) != 2 or min(self.grid) < 1):
            raise ValueError(f"Expected grid as (rows, cols) of positive integers. Got {self.grid!r} instead.")
        if self.tile_size is not None and self.tile_size < 1:
            raise ValueError(f"Expected a positive tile_size. Got {self.tile_size!r} instead.")
        if self.value_range is not None and not self.value_range[0] < self.value_range[1]:
            raise ValueError(f"Expected value_range as (low, high), low < high. Got {self.value_range!r} instead.")
        if not self.settle >= 0:  # NaN too
            raise ValueError(f"Expected settle >= 0 seconds. Got {self.settle!r} instead.")


def parse_grid(text: str) -> tuple[int, int]:
    """Parse ``ROWSxCOLS`` (``"8x8"``, ``"4X16"``) into ``(rows, cols)``."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text or "")
    if not match or min(int(match[1]), int(match[2])) < 1:
        raise ValueError(f"Expected a grid as ROWSxCOLS with positive numbers, e.g. 8x8. Got {text!r} instead.")
    return int(match[1]), int(match[2])
