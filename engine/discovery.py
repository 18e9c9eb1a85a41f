"""Find a run's checkpoints and their sample files: a pure function of a directory snapshot.

Nothing here decodes images or touches the store; the watcher calls :func:`scan_run` on
every pass and :func:`is_ready` / :func:`content_hash` to decide what to ingest.

Checkpoint level rule
---------------------
A *numbered entry* is a sample file, or a directory holding sample files somewhere below,
whose name yields a step (``step_regex``, default the last integer of the name, so
``epoch=3-step=1000`` is step 1000 and ``fake_samples_epoch_003.png`` step 3). Entries
without a step (``real_samples.png``, ``reals.png``, ``fakes_init.png``, ``logs/``) are
never checkpoints. Starting at the run directory:

1. A level whose numbered entries carry at least two distinct steps is the checkpoint
   level: each numbered entry there is one checkpoint (a file, or a folder whose sample
   files, nested or not, are its samples). Unless they are folders numbered like runs
   (``0, 1, 2``: ``lightning_logs/version_0/``, ``version_1/``) that each hold a series of
   checkpoints (rule 2): then each is a run, read with this rule, their checkpoints
   together (with a warning: point evowatch at one run).
2. Otherwise each numbered *directory* there is looked into: it is a run (descend, and
   apply the rule inside it) when the first level inside it that holds numbered sample
   entries (its folders side by side taken together: ``cat/``, ``dog/``) shows signs of a series of checkpoints rather than of one checkpoint's samples:
   numbers that are not consecutive like instance indices (kimg ``0, 200, 400``; a lone
   number above 1, as ``images/epoch=3-step=1000/`` alone below a ``version_0/``), sample
   files without a number beside them (``reals.png``), or numbered weight files beside
   them (``network-snapshot-000200.pkl``, ``model-12.pt``); not those two in a folder named as a
   checkpoint whose files are numbered as its samples (``step_100/{00000..00015}.png`` beside a
   ``grid.png``, a corrupt image or ``model_100.pt``: what lies there is the checkpoint's own; so is a
   file numbered with the folder's step, ``grid_100.png``, whose number is left out). Else it is
   one checkpoint. This is what lets ``outdir/00000-mydata-auto1/`` be read as a run and
   ``run/checkpoint-500/{00000..00063}.png`` as the first checkpoint of a run.
3. A level with no numbered entry is looked through: its unnumbered sub-directories are
   scanned with the same rule (``run/samples/step_500/``, ``results/sample-12.png``).

Single images named with a step and then a sample index, several per step at one level
(``samples/step1000_00.png`` ... ``step2000_07.png``; with ``step_regex``, the first number
after its match is the index), are one entry per step: a checkpoint whose source is the
pattern of its files (``samples/step1000_*.png``; a date, time or hash in the names is a ``?``
per character: kohya-ss's ``sample/mylora_000500_*_??????????????.png``).

The one case this cannot tell apart is a lone numbered folder holding only files with
consecutive numbers (``sample-1.png``, ``sample-2.png``); it is read as one checkpoint. Point evowatch at the run
directory itself (or pass ``step_regex``) to remove the doubt. The run directory itself named
as a checkpoint (``checkpoint-500/``, ``step_000500/samples/``) and holding such files is
read so, said with a line naming its run (:func:`_is_one_checkpoint`).

Weight and state files are never sample files: by extension (``.pth``, ``.pkl``,
``.ckpt``, ``.safetensors``, ``.bin``, ...) and by name (``model-12.pt``, ``optimizer.pt``,
``ema.pt``, ...), checked before any file is opened; a tensor file whose name speaks of
samples is one anyway (``ema_samples_1000.pt``). Neither are tensor files of evaluation results
(``statistics_0.npz``, ``report_1.npz``, ``fid_stats.npz``). Folders and files with a temporary name
(``step_3000.tmp/``, ``grid.png.part``) are ignored until renamed into place. A Zarr store (a
folder holding ``zarr.json``) and its ``STORE.lock`` are ignored at any depth: a store kept in the
run (``--store run/step_000100/evo.zarr``) is no checkpoint's content, and its writes do not keep
the checkpoint around it "being written".
"""
from __future__ import annotations

import datetime
import fnmatch
import functools
import hashlib
import itertools
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from engine import listings
from engine.backlog_log import counted
from engine.errors import GONE, DiscoveryError
from engine.grids import TileSlice, format_tile_slice
from engine.listings import is_dir as _is_dir
from engine.listings import kept_while_listed_alike
from engine.records import Checkpoint, Kind
from stores.lock import LOCK_SUFFIX
from stores.format import SAMPLE_KEY, STORE_MARKER, TRACKER_FOLDERS, is_store, listed, tracker_folder, tracker_name

log = logging.getLogger(__name__)

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
_LOG_EXTENSIONS = frozenset({".json", ".jsonl", ".txt", ".yaml", ".yml", ".log", ".csv"})
#: Stems of weight/state files that share a tensor extension (``model-12.pt``, ``optimizer.pt``).
_WEIGHT_STEM = re.compile(
    r"^(?:(?:model|net[gd]?|generator|discriminator|optimi[sz]er|optim|scheduler|scaler|rng_state|ema|vae"
    r"|checkpoint|ckpt|weights|state_dict|pytorch_model|diffusion_pytorch_model|network-snapshot"
    r"|training_args|trainer_state|training[-_]state|opt)(?:[-_.=].*|\d.*)?|last|best|latest"
    r"|.*[-_.](?:checkpoint|ckpt|weights|state_dict|model_states|optim_states)(?:[-_.=].*)?"  # Imaginaire's
    # epoch_00001_iteration_000001000_checkpoint.pt, torchcfm's otcfm_cifar10_weights_step_20000.pt,
    # DeepSpeed's global_step100/mp_rank_00_model_states.pt
    r"|.*[-_.](?:params|model)(?:[-_.]?(?:latest|last|best|\d+))?"  # U-GAT-IT's selfie2anime_params_latest.pt,
    # consistency models' target_model010000.pt
    r"|.*(?:generator|discriminator)(?:[-_.=]?\d+)?)$",  # sngan_projection's ResNetGenerator_5000.npz
    re.IGNORECASE)
#: ``torch.save``'d state dicts named for a network and a step (``G_3000.pt``, ``G_ema_4000.pt``,
#: ``unet_3000.pt``): ``.pt`` only, ``gen_1000.npy`` is samples.
_TORCH_WEIGHT_STEM = re.compile(r"^(?:[gd]|gen|disc?|critic|unet|dit|denoiser)(?:[-_]?ema)?[-_.=]?\d+(?:[-_.].*)?$",
                                re.IGNORECASE)
#: Stems of evaluation results saved as tensors beside the samples (score_sde's
#: ``eval/ckpt_1/statistics_0.npz`` Inception activations and ``eval/report_1.npz`` scores,
#: ``fid_stats.npz``, ``real_activations.npy``, ``test_ckpt_1_bpd_0.npz``; StudioGAN's ``statistics/RUN/losses.npy``):
#: no sample files.
_EVAL_STEM = re.compile(
    r"^(?:statistics|stats|report|metrics?|scores?|fid|kid|inception|activations?|logits|features?|loss(?:es)?)"
    r"(?:[-_.\d].*)?$"
    r"|.*[-_.](?:stats|statistics|activations|logits|features|bpd|nll|loss(?:es)?)(?:[-_.]\d+)?$",  # score_sde's
    re.IGNORECASE)  # eval/ckpt_1/test_ckpt_1_bpd_0.npz (bits per dim), ckpt_1_loss.npz
#: guided-diffusion's FID reference batches (``VIRTUAL_imagenet64_labeled.npz``,
#: ``VIRTUAL_lsun_bedroom256.npz``): real images, no generated samples (read by --real).
_FID_REFERENCE_BATCH = re.compile(r"^virtual_[a-z_]+\d*(?:_labeled)?$", re.IGNORECASE)
#: Words that make a tensor file's name a sample file's, whatever it starts with
#: (``ema_samples_1000.pt``, ``generator_outputs_1000.npy``, ``model_fakes_12.npz``).
SAMPLE_WORDS = re.compile(r"sample|fake|output|image|img|grid|generated", re.IGNORECASE)
#: Files and folders of the trainer's real data, or made from it, written beside its samples
#: (CycleGAN's ``epoch001_real_A.png``, ``real_samples.png``, a ``real/`` folder of training
#: images; latent-diffusion's ``inputs_gs-005000_….png`` and what it draws from them:
#: ``diffusion_row_…`` (the inputs noised), ``conditioning_…``, ``mask_…``; ControlNet's
#: ``control_…``, the edge map or pose drawn from the input; DDGAN's ``xpos_epoch_10.png``, a
#: training batch noised; reconstructions of real inputs: pytorch/examples VAE's
#: ``reconstruction_3.png``, PyTorch-VAE's ``Reconstructions/``, CycleGAN's ``rec_A``, which
#: would read as memorised training data; MONAI's ``train_img``, a training image; Palette's
#: ``Process_{name}``, the sampling from the masked input, step by step; the conditioning
#: Stability's generative-models draws: ``txt_gs-…``, ``original_size_as_tuple_gs-…``,
#: ``crop_coords_top_left_gs-…``): no samples, unless ``--samples`` names them.
_REAL_DATA = re.compile(r"(?<![a-z])(?:reals?|gt|ground[-_]?truth|inputs?|diffusion[-_]?rows?|condition(?:ing)?s?|masks?"
                        r"|controls?|xpos|noised|rec(?:s|on|ons|onst|onstruct(?:ions?|ed)?)?"
                        r"|train[-_]?(?:imgs?|images?|batch)"
                        r"|process|progressive[-_]?rows?|denoise[-_]?rows?|samples[-_](?:in|out)painting|txt(?!\d)|original[-_]?size\w*|crop[-_]?coords\w*|target[-_]?size\w*)"
                        r"(?![a-z])", re.IGNORECASE)
#: Files named as generated samples (pix2pix's ``epoch001_fake_B.png``): no real data, when a
#: ``--real`` or ``--holdout`` folder holds them beside the real images.
_GENERATED_DATA = re.compile(r"(?<![a-z])(?:fakes?|generated)(?![a-z])", re.IGNORECASE)
#: Folders whose tensor files are weights whatever their names (rosinality's ``checkpoint/000000.pt``).
#: AUTOMATIC1111's ``textual_inversion/DATE/NAME/hypernetworks/NAME-500.pt`` (and ``embeddings/``).
_WEIGHT_FOLDER = re.compile(r"(?:checkpoints?|ckpts?|weights|models?|saved_models|snapshots?|embeddings|hypernetworks"
                            r"|loras?)", re.IGNORECASE)
#: Per-process state saved inside one checkpoint (``rng_state_0.pth``, ``random_states_0.pkl``).
_PER_PROCESS_STATE = re.compile(r"rng|random_state|custom_checkpoint", re.IGNORECASE)
_TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", "~")
#: Folders a file server or an operating system keeps beside the user's files: Synology's
#: ``@eaDir/NAME.png/SYNOFILE_THUMB_M.jpg`` (thumbnails of every image, in every folder) and
#: ``#recycle``, QNAP's ``@Recycle``, a zip's ``__MACOSX``, Windows' ``$RECYCLE.BIN``.
_SYSTEM_FOLDERS = frozenset({"@eadir", "#recycle", "#snapshot", "@recycle", "@recently-snapshot", "__macosx",
                             "$recycle.bin", "system volume information", "lost+found"})
_LAST_INT = re.compile(r"(\d+)(?!.*\d)")
_FIRST_INT = re.compile(r"(\d+)")
#: Numbers in a name that are neither a step nor a sample's index: a date and time
#: (``openai-2026-01-05-10-00-00-123456``, ``2026-01-05T10-00-00_cifar10``, mmengine's
#: ``20240105_103000/``, kohya-ss's ``mylora_000500_00_20240105103000.png``), a time of day alone
#: (Hydra's ``outputs/2026-12-04/10-30-00/``), the seed kohya-ss puts after such a time when it
#: follows other numbers (``mylora_e000003_00_20240105103000_42.png``), an array's shape (``samples_16x32x32x3.npz``), a
#: hex content hash (W&B's ``samples_1000_3f2a9b81c0d4e5f6a7b8.png``; CogVideoX's five-character ``…-d527f.png``), a
#: UUID or a number of 16 digits or more, an id (MLflow's ``mlruns/<experiment id>/``, ``key+step+500+…+<uuid>.png``).
_NO_NUMBER = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T_-]\d{2}[-:]\d{2}(?:[-:]\d{2})?(?:[.-]\d+)?)?"
    r"|(?<!\d)(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])[T_-]?[0-2]\d[0-5]\d[0-5]\d(?:(?<=\d[_-].{14})(?:_\d+)+$|(?!\d))"
    r"|(?<!\d)(?:19|20)\d{2}_(?:0[1-9]|1[0-2])_(?:0[1-9]|[12]\d|3[01])_[0-2]\d_[0-5]\d_[0-5]\d(?!\d)"  # StudioGAN's
    r"|(?<!\d)\d{2}[-:]\d{2}[-:]\d{2}(?![\d.:-])"
    r"|\d+(?:x\d+)+"
    r"|(?<![0-9a-z])[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?![0-9a-z])"  # a UUID (MLflow's image names)
    r"|(?<![0-9a-z])(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{12,}(?![0-9a-z])"
    r"|(?<![0-9a-z])(?=[0-9a-f]*[a-f]\d+[a-f])[0-9a-f]{5,11}(?![0-9a-z])"  # a short one, digits between letters
    r"|(?<=\d{8}_\d{6}-)[a-z0-9]{8}(?![a-z0-9])"  # W&B's run id: wandb/run-20261206_100000-k3j9x2pq
    r"|(?<!\d)1[5-9]\d{8}(?:\d{3})?(?!\d)"  # Unix time, s or ms (ai-toolkit's 1712345678901__000000250_0.jpg)
    r"|(?<!\d)\d{16,}(?!\d)", re.IGNORECASE)  # an id: MLflow's 18-digit experiment ids
#: Numbers in a name that are no step either, those named as a setting (DiT's
#: ``DiT-XL-2-0400000-size-256-vae-ema-cfg-1.5-seed-0``, LlamaGen's ``…-VQ-16-topk-0-…``, ``lr1e-4_bs64``, a process's
#: ``0001000_rank1.png``, whose rank may still index its samples).
_NOT_A_STEP = re.compile(
    _NO_NUMBER.pattern + r"|(?<![a-z])(?:seed|size|res|cfg|guidance|scale|bs|[gd]?lr|rank|gpus?|nfe|top[-_]?[kp]"
    r"|temperature)[-_=]?\d+"
    r"(?:\.\d+)?(?:e-?\d+)?(?![a-z\d])"
    r"|(?<![a-z])vq[-_]?\d+(?=[-_][a-z])"  # a VQ model's name inside a longer one
    r"|(?<![a-z])v\d+(?:\.\d+)*(?![a-z\d])"  # a version: my_first_lora_v1
    r"|(?<=[a-z])2(?=[a-z])"  # "to": MUNIT's gen_a2b_train_current, U-GAT-IT's selfie2anime, img2img
    r"|(?<![a-z])(?:current|latest)[-_]\d{1,2}(?!\d)"  # a rolling copy's image index: FUNIT's gen_train_current_00
    r"|(?<![\d.])\d+\.\d+(?![\d.])", re.IGNORECASE)  # a decimal: EDM2's network-snapshot-0001000-0.100
#: A number the name says is the step (``samples_gs-005000_e-000003_b-000123``, ``epoch=3-step=1000``).
_NAMED_STEP = re.compile(r"(?<![a-z])(?:global_step|gs|step|iter|itr|it|kimg|(?<=e\d_)s|(?<=e\d\d_)s|(?<=e\d\d\d_)s)"
                         r"[-_=+%]?(\d+)", re.IGNORECASE)  # naifu's sample_e{epoch}_s{step}_p{rank}_{i}; MLflow's key+step+500
_EPOCH = re.compile(r"(?<![a-z])(?:epoch|ep|e)[-_=]?(\d+)", re.IGNORECASE)
_EPOCH_MARK = re.compile(r"(?<![a-z])(?:epoch|ep|e)[-_=]?$", re.IGNORECASE)  # just before a number
_MAX_DEPTH = 8


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


# --- names ---------------------------------------------------------------------------

def _stem(name: str) -> str:
    base, ext = os.path.splitext(name)
    return base if ext else name


@functools.lru_cache(maxsize=1 << 16)  # a pass asks about every file; checkpoints repeat their names
def is_weight_file(name: str) -> bool:
    """Weights and trainer state, recognised by name alone (cheap: nothing is opened)."""
    ext = os.path.splitext(name)[1].lower()
    if ext in MODEL_EXTENSIONS:
        return True
    stem = _stem(name)
    named = _WEIGHT_STEM.match(stem) or ext == ".pt" and _TORCH_WEIGHT_STEM.match(stem)
    return ext in TENSOR_EXTENSIONS and bool(named) and not SAMPLE_WORDS.search(stem)


def _is_temporary(name: str) -> bool:
    """A file or folder still being written under a temporary name (``step_3000.tmp``)."""
    return name.lower().endswith(_TEMP_SUFFIXES)


@functools.lru_cache(maxsize=1 << 16)  # a pass asks about every file; checkpoints repeat their names
def is_sample_name(name: str, options: DiscoveryOptions, reference: bool = False) -> bool:
    """Whether a file name can hold samples: matches a sample glob and is no weight, temporary
    or evaluation-result file (see ``_EVAL_STEM``), nor, but in a ``reference`` set, an FID
    reference batch; ``--samples`` globs decide alone between samples and weights
    (``ema_1000.npy``, named like weights, could not be picked)."""
    lower = name.lower()
    ext = os.path.splitext(lower)[1]
    chosen = options.samples_chosen
    if lower.startswith(".") or _is_temporary(lower) or ext in _LOG_EXTENSIONS or (is_weight_file(name) and not chosen):
        return False
    if options.ready_file and name == options.ready_file:
        return False
    if not chosen and ext in TENSOR_EXTENSIONS and _EVAL_STEM.match(_stem(name)) and not SAMPLE_WORDS.search(_stem(name)):
        return False
    if not (chosen or reference) and ext in TENSOR_EXTENSIONS and _FID_REFERENCE_BATCH.match(_stem(name)):
        return False
    return any(fnmatch.fnmatch(lower, pattern.lower()) for pattern in options.sample_globs)


def last_integer(text: str) -> int | None:
    """The last run of digits in ``text`` (``epoch=3-step=1000`` gives 1000), or ``None``."""
    match = _LAST_INT.search(text)
    return int(match[1]) if match else None


def series_glob(name: str) -> str:
    """A ``--samples`` glob for the series a file name belongs to: its numbers, dates, times
    and hashes as ``*`` (``validation_500_<hash>.png`` -> ``validation_*_*.png``)."""
    return re.sub(r"[*?\d]+", "*", _NO_NUMBER.sub("*", name.replace(SAMPLE_KEY, "*")))


def index_in_name(stem: str) -> int | None:
    """A sample's index in its file name: the last number that is no size, setting, seed,
    date or hash (``sample_007_256x256`` and ``00007_seed42`` are 7: their last numbers left
    every sample without an id), else its last number (StyleGAN's ``seed0042.png``: 42)."""
    masked = last_integer(_NOT_A_STEP.sub("_", stem))
    return last_integer(stem) if masked is None else masked  # StyleGAN's seed0000.png: the seed is the index


#: A step counted in thousands or millions (``sample_10k.png``, ``sample_1.5k.png``,
#: ``sample_1.2M.png``: steps 10,000, 1,500 and 1,200,000).
_SCALED = re.compile(r"(?<![\d.a-z])(\d+(?:\.\d+)?)([km])(?![a-z\d])", re.IGNORECASE)
_SCALES = {"k": 1000, "m": 1_000_000}


def _scaled(match: re.Match) -> int:
    return round(float(match[1]) * _SCALES[match[2].lower()])


def step_in_name(text: str) -> int | None:
    """The step a name carries by default: the last number named as one (``gs-005000``,
    ``step=1000``, ``iter5000``), else the last number that is no date, time, setting, shape or
    hash; ``10k`` is 10,000 (it was step 10, and ``1.5k`` no step), ``1M`` 1,000,000."""
    text = _SCALED.sub(lambda m: str(_scaled(m)), text)
    text = _NOT_A_STEP.sub("_", text)
    named = _NAMED_STEP.findall(text)
    return int(named[-1]) if named else last_integer(text)


def step_of(name: str, options: DiscoveryOptions, is_file: bool = True) -> int | None:
    """The step a checkpoint's name carries, or ``None`` when it carries none."""
    text = _stem(name) if is_file else name
    if options.step_regex is None:
        return step_in_name(text)
    match = re.search(options.step_regex, text) or re.search(options.step_regex, name)  # '_(\d+)\.png' too
    if not match:
        return None
    try:
        step = int(_step_text(match))
    except (TypeError, ValueError):
        return None
    return step if abs(step) < 2**63 else None  # steps are int64: no number of 20 digits is one


def _step_text(match: re.Match) -> str | None:
    """What a ``step_regex`` match reads as the step: its group ``step``, else its first group,
    else all of it."""
    return match.groupdict().get("step") or (match.group(1) if match.re.groups else match.group(0))


def step_regex_miss(names: list[str], options: DiscoveryOptions) -> str | None:
    """Why ``--step-regex`` read no step from these names: it matches none of them, or what it
    captures is no number (``step_(.*)`` on ``step_100/`` captures ``100/``... of a file name);
    None when it reads a step from one (the layout rules then left it out)."""
    captured = []
    for name in names:
        match = re.search(options.step_regex, _stem(name)) or re.search(options.step_regex, name)
        if match is None:
            continue
        if step_of(name, options) is not None or step_of(name, options, is_file=False) is not None:
            return None
        captured.append(f"{_step_text(match)!r} of {name}")
    if captured:
        return (f"captures no number ({', '.join(captured[:2])}): let its group, or the named group step, "
                r"capture the digits only, e.g. 'step_(\d+)'")
    return f"matches no name here ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"


# --- file system (a vanished entry is an absent one) -----------------------------------

def folder_entries(folder: Path) -> list[os.DirEntry]:
    """A folder's entries, sorted; none in a store, and no store's lock file (``STORE.lock``;
    its staging folder ``.STORE.creating-PID@HOST`` is hidden)."""
    try:
        entries = sorted(listings.listed_entries(folder), key=lambda e: e.name)
        if entries:  # listed but not searchable (`chmod -R 644`): its files cannot be opened
            os.stat(entries[0].path, follow_symlinks=False)
    except GONE:
        listings.note(None)  # gone, or its first entry gone since: a listing not to keep
        return []
    except PermissionError as exc:  # said, or a checkpoint folder would be left out without a word
        warn_once(folder, f"{folder}: cannot be read ({exc.strerror}); what it holds is left out: fix its permissions")
        listings.note(None)
        return []
    if not entries:
        return []
    names = {entry.name for entry in entries}
    if STORE_MARKER in names and is_store(folder):
        return []
    entries = [entry for entry in entries if not _aliases_a_sibling(entry, folder) and not _loops_back(entry, folder)]
    locks = {name for name in names if name.endswith(LOCK_SUFFIX) and name.removesuffix(LOCK_SUFFIX) in names
             and is_store(folder / name.removesuffix(LOCK_SUFFIX))}
    return [entry for entry in entries if entry.name not in locks]


def _aliases_a_sibling(entry: os.DirEntry, folder: Path) -> bool:
    """A symlink to a folder beside it (W&B's ``wandb/latest-run``, a ``latest/`` link to the
    newest checkpoint): that folder is read once, under its own name."""
    if not entry.is_symlink():
        return False
    target = os.path.realpath(entry.path)
    return os.path.dirname(target) == os.path.realpath(folder) and os.path.isdir(target)


def _loops_back(entry: os.DirEntry, folder: Path) -> bool:
    """A symlink to the folder it sits in or to one above it (``run/here -> .``,
    ``run/project -> ..``): followed, every checkpoint was read again under each path through
    it, down to the depth limit (32 rows for 8 samples; 510 checkpoints with two such links)."""
    return entry.is_symlink() and _leads_up(entry.path, (os.path.realpath(folder),))


def _is_file(entry: os.DirEntry) -> bool:
    try:
        return entry.is_file()
    except OSError:
        return False


def _is_hidden_dir(entry: os.DirEntry) -> bool:
    """Hidden, still being written under a temporary name, or a file server's or the system's
    own (``@eaDir``: its thumbnails were read as three more samples of each image): not looked into."""
    return (entry.name.startswith(".") or _is_temporary(entry.name) or entry.name.lower() in _SYSTEM_FOLDERS) \
        and _is_dir(entry)


def walk_files(folder: Path, depth: int = 0, _above: tuple[str, ...] = ()) -> Iterator[Path]:
    """Every file below ``folder`` (sorted, depth-limited; hidden and temporary folders,
    stores and their lock files skipped). A symlinked folder is followed unless it leads
    back up the walk (a loop); a link to nothing is said once and left out."""
    above = (*_above, os.path.realpath(folder))
    for entry in folder_entries(folder):
        if _is_file(entry):
            yield Path(entry.path)
        elif depth < _MAX_DEPTH and not _is_hidden_dir(entry) and _is_dir(entry):
            if not (entry.is_symlink() and _leads_up(entry.path, above)):
                yield from walk_files(Path(entry.path), depth + 1, above)
        elif entry.is_symlink() and not os.path.exists(entry.path):
            warn_once(Path(entry.path), f"{entry.path}: a link to nothing ({_link_target(entry.path)}) is left out: "
                                         "restore what it names or remove the link", about="link")


def _link_target(link: str) -> str:
    try:
        return os.readlink(link)
    except OSError:  # replaced meanwhile
        return "?"


def _leads_up(link: str, above: tuple[str, ...]) -> bool:
    """Whether a symlinked folder is one of the folders it sits in, or holds one (a loop)."""
    target = os.path.realpath(link)
    return any(folder == target or folder.startswith(target.rstrip(os.sep) + os.sep) for folder in above)


@functools.lru_cache(maxsize=1 << 16)  # a pass asks about every file; checkpoints repeat their names
def is_real_data(name: str, options: DiscoveryOptions) -> bool:
    """A run's copy of its real data (see ``_REAL_DATA``), with the default sample globs."""
    return not options.samples_chosen and bool(_REAL_DATA.search(_stem(name)))


#: A folder of training data inside the trainer's working directory (SAGAN's ``./data/CelebA/``,
#: watched from where it runs: every image was a checkpoint).
_DATA_FOLDER = re.compile(r"data(?:sets?)?", re.IGNORECASE)


#: Copies of the samples made for another use: AUTOMATIC1111 writes each preview of
#: ``images/`` again in ``image_embeddings/``, captioned and with the embedding's data drawn
#: into its edges (a second sample of every step, a near-copy of the first).
_SAMPLE_COPIES_FOLDER = re.compile(r"image[-_]?embeddings?", re.IGNORECASE)


#: The end of a smaller copy's name (MLflow's ``{key}+step+500+…+compressed.webp``).
_THUMBNAIL_SUFFIX = re.compile(r"[+%_.-](?:compressed|thumbs?|thumbnail)$", re.IGNORECASE)


def _is_copy_beside(path: Path, folders: set[str], images: set[str], videos: set[str]) -> bool:
    """A file that repeats what a sibling of the same name holds: a sample folder packed as a
    tensor (DiT's ``FOLDER.npz``) or drawn as one grid (AnimateDiff's ``sample-500.gif`` beside
    ``sample-500/``), or a tensor file beside an image of its name (pytorch_GAN_zoo's
    ``celebaHQ_s5_i16000.pt`` weights beside ``celebaHQ_s5_i16000.jpg``), or an image beside
    a video of its name (CogVideoX's image-to-video input beside the ``.mp4`` made from it), or
    a smaller copy of an image (MLflow's ``…+compressed.webp`` beside each logged ``.png``)."""
    suffix = path.suffix.lower()
    small = _THUMBNAIL_SUFFIX.search(path.stem)
    return ((suffix in TENSOR_EXTENSIONS or suffix in IMAGE_EXTENSIONS) and path.stem in folders
            or suffix in TENSOR_EXTENSIONS and path.stem in images
            or suffix in IMAGE_EXTENSIONS and (path.stem in videos or bool(small) and path.stem[:small.start()] in images))


def _is_real_data_folder(name: str, options: DiscoveryOptions) -> bool:
    return is_real_data(name, options) or (not options.samples_chosen
                                            and bool(_DATA_FOLDER.fullmatch(name)))


def _is_generated_sample(path: Path, options: DiscoveryOptions) -> bool:
    return is_sample_name(path.name, options) and not is_real_data(path.name, options)


def _unnamed_tensor(path: Path) -> bool:
    """A tensor file whose name does not call it samples (``010000.pt``,
    ``SNResNetProjectionDiscriminator_5000.npz``): beside a folder of sample images, a
    trainer's weights or state (StyleSwin writes ``CKPT/{iter:06d}.pt`` where its README puts
    the samples too); sample tensors are named so (``samples_1000.npz``, ``fakes_3.pt``)."""
    return path.suffix.lower() in TENSOR_EXTENSIONS and not SAMPLE_WORDS.search(path.stem)


def _weights_by_folder(path: Path, folder_name: str) -> bool:
    """A tensor file in a folder named for weights (rosinality's ``checkpoint/000000.pt``) is
    weights, whatever its name, unless that names it a sample file."""
    return bool(_WEIGHT_FOLDER.fullmatch(folder_name)) and _unnamed_tensor(path)


def _generated_files(folder: Path, options: DiscoveryOptions, listed: Iterable[Path] | None = None) -> Iterator[Path]:
    """A checkpoint folder's sample files (of ``listed``, its files if given), none of real data:
    by name, or below a folder named so (``step_1000/real/`` beside ``step_1000/fake/``); no
    tensors in a weights folder (DiT's ``results/000-DiT-XL-2/checkpoints/0100000.pt``)."""
    for path in walk_files(folder) if listed is None else listed:
        parent = os.path.dirname(path) or os.curdir  # a file right in Path("."): "" (relpath refused it)
        parts = _relative(parent, folder).split(os.sep) if parent != os.fspath(folder) else ()
        if _is_generated_sample(path, options) and not any(
                _is_real_data_folder(part, options) or _weights_by_folder(path, part) for part in parts):
            yield path


#: A picture of a checkpoint's single samples put together (stable-diffusion's txt2img writes
#: ``grid-0000.png`` beside ``samples/00000.png`` …): read, it was one more sample, and took
#: the instance id 0 from ``00000.png``.
_GRID_OF_SAMPLES = re.compile(r"grids?(?:[-_]\d+)?", re.IGNORECASE)


def sample_files(folder: Path, options: DiscoveryOptions, generated: bool = True) -> list[Path]:
    """The sample files below ``folder``, sorted by path (of a checkpoint: none of real data,
    nor a grid of the single samples beside it)."""
    return list(_sample_files(folder, options, generated))


@kept_while_listed_alike
def _sample_files(folder: Path, options: DiscoveryOptions, generated: bool) -> tuple[Path, ...]:
    if not generated:
        return tuple(sorted(p for p in walk_files(folder) if is_sample_name(p.name, options, reference=True)))
    listed = list(walk_files(folder))
    files = sorted(_generated_files(folder, options, listed))
    if options.samples_chosen:
        return tuple(files)
    if reals := [p.name for p in listed if is_sample_name(p.name, options) and is_real_data(p.name, options)]:
        warn_once(folder.parent, f"{folder}: {counted(len(reals), 'file')} named as real data or made from it "
                                 f"({', '.join(reals[:2])}{', ...' if len(reals) > 2 else ''}) not read as samples "
                                 "(--samples GLOB reads them)", about="reals in checkpoints", say=log.info)
    images = [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS]
    grids = [p for p in images if _GRID_OF_SAMPLES.fullmatch(p.stem)]
    singles = [p for p in images if p not in grids]
    if grids and len(singles) >= 2 and all(_FIRST_INT.search(p.stem) for p in singles):  # numbered samples
        warn_once(folder.parent, f"{folder}: {', '.join(p.name for p in grids[:2])} beside the single samples: "
                                 "a grid of them, not read (--samples GLOB reads it)", about="grid of samples", say=log.info)
        files = [p for p in files if p not in grids]
    return tuple(files)


def hidden_sample_folders(run_dir: Path, options: DiscoveryOptions) -> list[Path]:
    """The hidden folders (``.samples/``) at a run's top, or one level below, that hold sample
    files: never read, so a run keeping its checkpoints there found none without a word of them."""
    tops = [Path(e.path) for e in folder_entries(run_dir) if _is_dir(e) and not _is_hidden_dir(e)]
    return [Path(e.path) for folder in (run_dir, *tops) for e in folder_entries(folder)
            if e.name.startswith(".") and _is_dir(e) and not _holds_environments(Path(e.path))
            and _holds_samples(Path(e.path), options)]


def _holds_environments(folder: Path) -> bool:
    """Whether a folder is a Python environment (``.venv``, a conda one) or holds them (``.tox``,
    ``.nox``): its packages' images (matplotlib's icons) are no run's samples. A project's
    folder given as the run was told to point evowatch at its ``.venv``."""
    places = (folder, *(Path(e.path) for e in folder_entries(folder) if _is_dir(e)))
    return any((place / marker).exists() for place in places for marker in ("pyvenv.cfg", "conda-meta"))


@kept_while_listed_alike
def _holds_samples(folder: Path, options: DiscoveryOptions) -> bool:
    return any(True for _ in _generated_files(folder, options))


@kept_while_listed_alike
def _holds_images(folder: Path, options: DiscoveryOptions) -> bool:
    return any(path.suffix.lower() in IMAGE_EXTENSIONS for path in _generated_files(folder, options))


# --- the level rule -----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Level:
    numbered: tuple[tuple[int, Path, bool], ...]  # (step, path, is_dir); a group's path is its pattern
    unnumbered_files: int
    numbered_weights: int
    plain_dirs: tuple[Path, ...]
    groups: dict[Path, tuple[Path, ...]]  # pattern -> its files (see _per_sample_groups)


#: A name's last two numbers: ``step1000_03`` -> 1000, 03; ``img_0001_step_0500`` -> 0001, 0500.
_LAST_TWO_NUMBERS = re.compile(r"(\d+)\D+(\d+)\D*$")
#: W&B's media file name, ``{key}_{step}_{sha256[:20]}``: the step is the number before the hash
#: whatever the key holds (x-flux logs under ``f"Results, step {global_step}"``).
_WANDB_MEDIA = re.compile(r"_(\d+)_[0-9a-f]{20}$")
#: A W&B key's own trailing number (``sample_2``: a key per prompt), its sample's index.
_WANDB_KEY_INDEX = re.compile(r"(?<=[-_ ])(\d+)$")


def _blanked(pattern: re.Pattern, text: str) -> str:
    """``text`` with ``pattern``'s matches as ``?`` runs of their length: spans hold in both."""
    return pattern.sub(lambda m: "?" * len(m[0]), text)


def _step_at(text: str, start: int, end: int) -> int:
    """The step whose digits are ``text[start:end]``; followed by ``k`` (``M``) it counts
    thousands (millions), as in :func:`step_in_name` (``sample_10k_0``, ``sample_1.5k_0``:
    steps 10,000 and 1,500)."""
    whole = re.search(r"(?<![\d.])\d+\.$", text[:start])  # 1.5k: the digits before the point too
    for begin in ([whole.start()] if whole else []) + [start]:
        if (match := _SCALED.match(text, begin)) and match.end(1) == end:
            return _scaled(match)
    return int(text[start:end])


def _is_scaled(text: str, end: int) -> bool:
    return bool(re.match(r"[km](?![a-z\d])", text[end:], re.IGNORECASE))


def _readings(path: Path, options: DiscoveryOptions) -> list[tuple[int, int, str]]:
    """(step, index, pattern) readings of a single image's name that carries a step and a
    sample index: step then index (``step1000_03.png`` -> 1000, 3, ``step1000_*.png``), or
    index then step (``img_0001_step_0500.png``); a number named as the step (``gs-000500``)
    is the step, the last other number after it (else before it) the index; a date, time or
    hash is a ``?`` per character (kohya-ss's ``mylora_000500_*_??????????????.png``), and a
    name whose only other part is one has no index (-1: W&B's ``validation_500_<hash>.png``).
    With ``step_regex`` the index is the first number after its match, else the last before it."""
    stem, found = path.stem, []
    masked = _blanked(_NO_NUMBER, stem)
    if options.step_regex is None and (wandb := _WANDB_MEDIA.search(stem)):  # x-flux's key "Results, step 500"
        step, key = int(wandb[1]), _WANDB_KEY_INDEX.search(stem, 0, wandb.start())
        whole = [(step, -1, masked + path.suffix)]
        if key and int(key[1]) != step:  # kohya-ss's wandb.log({f"sample_{i}": ...}): sample_2_500_<hash>; a
            # list under such a key repeats its number, and is the step's files as a whole
            return [(step, int(key[1]), f"{masked[:key.start(1)]}*{masked[key.end(1):]}{path.suffix}")] + whole
        return whole
    named = list(_NAMED_STEP.finditer(masked))
    if options.step_regex is None and named:  # latent-diffusion's samples_gs-000500_e-000001_b-000003
        step = named[-1]
        index = _LAST_INT.search(masked, step.end()) or _LAST_INT.search(masked[:step.start()])
        if index and index.start(1) < step.start() and _EPOCH_MARK.search(masked[:index.start(1)]):
            index = None  # VQ-Diffusion's e0_itr1999: the epoch, not a sample's index
        found = [(_step_at(masked, *step.span(1)), index.span(1))] if index else []
    elif options.step_regex is None:
        match = _LAST_TWO_NUMBERS.search(masked)
        if match:  # either number the step; one counted in thousands (10k) is no index
            found = [(_step_at(masked, *match.span(a)), match.span(b)) for a, b in ((1, 2), (2, 1))
                     if not _is_scaled(masked, match.end(b))]
    else:
        match, step = re.search(options.step_regex, stem), step_of(path.name, options)
        if match and step is not None:
            index = _FIRST_INT.search(masked, match.end()) or _LAST_INT.search(masked[:match.start()])
            found = [(step, index.span(1))] if index else []
    if not found and "?" in masked and (step := step_of(path.name, options)) is not None:
        return [(step, -1, masked + path.suffix)]  # W&B's validation_500_<hash>.png: a step, no index
    return [(step, int(masked[a:b]), f"{masked[:a]}*{masked[b:]}{path.suffix}") for step, (a, b) in found]


def _index_like(indices: list[int]) -> bool:
    """Distinct sample indices from 0 or 1, dense even with gaps: not steps (0, 500, 1000)."""
    return len(set(indices)) == len(indices) and min(indices) <= 1 and max(indices) < 2 * len(indices) + 2


#: File times spread over less than this say nothing of how a run was written (a copy).
_MIN_TIME_SPREAD_S = 2.0


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


#: A date and time of day in a name (OneTrainer's ``2024-05-14_10-12-33-training-sample-…``,
#: kohya-ss's ``…_20240105103000.png``).
_NAME_TIME = re.compile(r"(?<!\d)(20\d\d)-?(\d\d)-?(\d\d)[-_T ]?(\d\d)[-:]?(\d\d)[-:]?(\d\d)(?!\d)")


def _name_time(path: Path) -> float | None:
    if not (match := _NAME_TIME.search(path.stem)):
        return None
    try:
        return datetime.datetime(*map(int, match.groups())).timestamp()
    except ValueError:  # not a date after all
        return None


def _telling_times(paths: list[Path]) -> list[float] | None:
    """The files' modification times, when they tell in what order the files were written;
    else (a copy gave them one time: ``cp -r``, ``gsutil cp``) the times their names carry,
    when they all carry one; None when neither spreads over _MIN_TIME_SPREAD_S."""
    for times in ([_mtime(path) for path in paths], [_name_time(path) for path in paths]):
        if None not in times and max(times) - min(times) >= _MIN_TIME_SPREAD_S:
            return times
    return None


def _written_together(steps: list[list[float]]) -> bool | None:
    """Whether each step's files were written one after another, no other step's between
    them (a trainer saves a step's samples together, however long each takes to sample):
    ``None`` when the times cannot tell (one step so far, or a copy that gave every file the
    same time)."""
    times = [t for step in steps for t in step]
    if len(steps) < 2 or not times or max(times) - min(times) < _MIN_TIME_SPREAD_S:
        return None
    order = [k for _, k in sorted((t, k) for k, step in enumerate(steps) for t in step)]
    runs = 1 + sum(a != b for a, b in zip(order, order[1:]))
    return runs == sum(1 for step in steps if step)


def _per_sample_groups(files: list[Path], options: DiscoveryOptions) -> dict[Path, tuple[int, tuple[Path, ...]]]:
    """Single images named with a step and a sample index (``samples/step1000_00.png`` ...
    ``step2000_07.png``): one checkpoint per step, named by its pattern (``step1000_*.png``).

    Names alike but for their numbers are grouped when, in one reading of the two numbers,
    some step has several files and every step's indices look like sample indices; a grid
    per step named ``epoch=3-step=1000.png`` stays one checkpoint per file. Where both
    readings fit (``generated_img_{index}_{epoch}.png``, small numbers both), the files'
    times decide: a step's files are written together; a reading whose steps each span the
    whole run is refused (``train_{epoch}_{batch}.png``, one grid per file). Without
    telling times, step-then-index wins. (A step's first file alone is read as its own
    checkpoint until a second one comes; that reading is then superseded, see
    ``stores.zarr_store.superseded_flags``.)"""
    images = [path for path in files if path.suffix.lower() in IMAGE_EXTENSIONS]
    by_shape: dict[tuple[str, int], dict[Path, list[tuple[int, int, Path]]]] = {}
    named: dict[str, str] = {}  # a pattern, its ? runs as one, -> the first file's pattern (the checkpoint's name)
    for path in images:
        for reading, (step, index, pattern) in enumerate(_readings(path, options)):
            # a date, time or hash matches whatever its length: kohya-ss adds a seed to some
            # prompts' names only (mylora_000500_00_<time>.png, mylora_000500_01_<time>_42.png)
            any_length = re.sub(r"\?+", "?", pattern)
            pattern = named.setdefault(any_length, pattern)
            shape = (re.sub(r"\d+", "#", any_length), reading)
            by_shape.setdefault(shape, {}).setdefault(path.with_name(pattern), []).append((step, index, path))
    mtimes: dict[Path, float | None] = {}

    def times(entries: list[tuple[int, int, Path]]) -> list[float]:
        for _, _, path in entries:
            if path not in mtimes:
                mtimes[path] = _mtime(path)
        return [t for _, _, path in entries if (t := mtimes[path]) is not None]

    candidates = []
    for (_, reading), patterns in by_shape.items():
        if max(map(len, patterns.values())) < 2 or not all(
                _index_like(indices) or max(indices) < 0
                for indices in ([index for _, index, _ in entries] for entries in patterns.values())):
            continue
        steps = [entries[0][0] for entries in patterns.values()]
        if len(set(steps)) < len(steps):  # a step's files under several patterns: another number
            continue  # tells them apart too (naifu's sample_e0_s500_p{rank}_{i}: keyed by p{rank}_{i})
        together = None if options.step_regex else _written_together([times(e) for e in patterns.values()])
        if together is not False:
            candidates.append((together is None, reading, patterns))
    groups: dict[Path, tuple[int, tuple[Path, ...]]] = {}
    taken: set[Path] = set()
    series, series_steps = [], []
    untold = [{path: step for entries in patterns.values() for step, _, path in entries}
              for untimed, _, patterns in candidates if untimed]
    for _, _, patterns in sorted(candidates, key=lambda c: c[:2]):  # told by the times, then step-then-index
        members = [entry for entries in patterns.values() for entry in entries]
        if any(path in taken for _, _, path in members):
            continue
        paths = {path for _, _, path in members}  # readings that give these files other steps
        if len({frozenset((p, s) for p, s in steps.items() if p in paths) for steps in untold if paths & steps.keys()}) > 1:
            steps = sorted({step for step, _, _ in members})
            warn_once(images[0].parent, f"{images[0].parent}: in names like {members[0][2].name} either number may be "
                      f"the step, and the files' times do not tell (written at one time: a copy?); read as step, then "
                      f"sample index (steps {steps[0]:,} to {steps[-1]:,}); if the other number is the step, say so with "
                      "--step-regex", about="untold reading")
        for pattern, entries in patterns.items():
            groups[pattern] = (entries[0][0], tuple(sorted(path for _, _, path in entries)))
        taken.update(path for _, _, path in members)
        steps = sorted(step for step, _, _ in members)
        series.append(f"{min(path.name for _, _, path in members)}, steps {steps[0]:,} to {steps[-1]:,}")
        series_steps.append(set(steps))
    counting = [steps for steps in series_steps if steps != {0}]  # kohya-ss's --sample_at_first: e000000, before any
    if len(counting) > 1 and not set.intersection(*counting):  # not prompts of the same steps (SimpleTuner)
        warn_once(images[0].parent, f"{images[0].parent}: {len(series)} series of per-step files (like {'; '.join(series)}): "
                                     "if they count different things (kohya-ss's epochs and steps) their steps interleave "
                                     "on the map; --samples GLOB reads one", about="series")
    return groups | _keyed_groups([path for path in images if path not in taken], options)


#: What a sample's name says apart from the step: joined to the step by these.
_KEY_SEPARATORS = "-_ ."


def _keyed_groups(images: list[Path], options: DiscoveryOptions) -> dict[Path, tuple[int, tuple[Path, ...]]]:
    """Single images named by a step and then a prompt or a class (SimpleTuner's
    ``step_500_street_0_512x512.png``, EveryDream2's ``gs00499-1-a photo of 2 cats.jpg``):
    one checkpoint per step, named ``step_500_{sample}.png``. Only where the step is named
    as one (or matched by ``step_regex``), every name of the series goes on after it, some
    step has several files and the same names come back at other steps: ``step_1000.png``
    beside ``step_1000_ema.png`` stays two series of grids."""
    series: dict[tuple[Path, str, str], list[tuple[int, str, str, str, Path]]] = {}
    for path in images:
        stem = path.stem
        if options.step_regex is None:
            masked = _blanked(_NOT_A_STEP, stem)
            named = list(_NAMED_STEP.finditer(masked))
            found = (int(named[-1][1]), named[-1].start(1), named[-1].end()) if named else None
        else:
            match = re.search(options.step_regex, stem)
            step = step_of(path.name, options) if match else None
            found = (step, match.end(), match.end()) if step is not None else None
        if found is None:
            continue
        step, digits, end = found
        key = stem[end:]
        sep = key[:len(key) - len(key.lstrip(_KEY_SEPARATORS))]
        series.setdefault((path.parent, stem[:digits], path.suffix), []).append(
            (step, stem[:end], sep, key[len(sep):], path))
    groups = {}
    for (folder, _, suffix), members in series.items():
        if len({sep for _, _, sep, _, _ in members}) != 1 or not all(sep and key for _, _, sep, key, _ in members):
            continue
        keys_by_step: dict[int, set[str]] = {}
        for step, _, _, key, _ in members:
            keys_by_step.setdefault(step, set()).add(key)
        keys = list(keys_by_step.values())
        repeated = len(keys) == 1 or any(a & b for i, a in enumerate(keys) for b in keys[i + 1:])
        if max(map(len, keys)) < 2 or not repeated:
            continue
        for step in keys_by_step:
            files = sorted(path for s, _, _, _, path in members if s == step)
            head, sep = next((head, sep) for s, head, sep, _, _ in members if s == step)
            groups[folder / f"{head}{sep}{SAMPLE_KEY}{suffix}"] = (step, tuple(files))
    return groups


def _steps_in_series(files: list[Path], options: DiscoveryOptions,
                     position: int | None = None) -> tuple[dict[int, Path], int | None] | None:
    """One folder's images by step, each with its own, the steps growing as the files were
    written, and where in the names the step was read (None: the number a name carries by
    default); None if no number does. The step a name carries by default, else the first
    number that does (OneTrainer's ``…-training-sample-{step}-{epoch}-{epoch_step}.jpg`` ends
    with the step in the epoch, which starts again each epoch); or the number at ``position``."""
    default = [step_of(path.name, options) for path in files]
    if None not in default and len(set(default)) == len(files) and _index_like(default):
        return None  # sample indices (checkpoint-500/00000.png ...): known without a file's time
    times = _telling_times(files)
    told = times is not None  # else a copy: any order
    order = sorted(range(len(files)), key=lambda i: times[i]) if told else range(len(files))

    def growing(steps: list[int | None]) -> dict[int, Path] | None:
        ordered = [steps[i] for i in order]
        if None in ordered or len(set(ordered)) != len(files) or (told and ordered != sorted(ordered)):
            return None
        return {step: path for step, path in zip(steps, files)}

    numbers = [[int(n) for n in re.findall(r"\d+", _NOT_A_STEP.sub("_", path.stem))] for path in files]
    if position is not None:
        found = growing([n[position] if position < len(n) else None for n in numbers])
        return (found, position) if found else None
    if (found := growing(default)) or options.step_regex is not None:
        return (found, None) if found else None
    if len({len(n) for n in numbers}) != 1:
        return None
    return next(((found, at) for at in range(len(numbers[0])) if (found := growing([n[at] for n in numbers]))), None)


#: A folder name's ending that sets another model's samples apart (OneTrainer's
#: ``0 - a photo of 2 cats - no-ema`` beside ``0 - a photo of 2 cats``): a series of its own.
_MODEL_VARIANT = re.compile(r"[-_ ]+(?:no|non)?[-_ ]?ema$", re.IGNORECASE)


def _counted_together(folders: list[Path], options: DiscoveryOptions) -> dict[Path, dict[int, Path]]:
    """Folders of one sample each holding its image at every step counted 0, 1, 2 ... (DVCLive's
    ``live.log_image(f"sample_{i}/{live.step}.png")``), told from folders of indexed samples
    by the files' times: each number's files, across the folders, were written together."""
    numbered = {}
    for folder in folders:
        if (steps := _images_by_number(folder, options)) is None:
            return {}
        numbered[folder] = dict(steps)
    if len(numbered) < 2 or len({frozenset(steps) for steps in numbered.values()}) != 1:
        return {}
    by_number = [[t for steps in numbered.values() if (t := _mtime(steps[n])) is not None]
                 for n in next(iter(numbered.values()))]
    return numbered if _written_together(by_number) else {}


@kept_while_listed_alike
def _images_by_number(folder: Path, options: DiscoveryOptions) -> tuple[tuple[int, Path], ...] | None:
    """A folder's sample images by the number each name carries, if they are two or more, each
    of its own number; else None."""
    files = [Path(e.path) for e in folder_entries(folder) if _is_file(e) and _is_generated_sample(Path(e.path), options)]
    steps = {step_of(path.name, options): path for path in files}
    if len(files) < 2 or None in steps or len(steps) != len(files) or any(
            p.suffix.lower() not in IMAGE_EXTENSIONS for p in files):
        return None
    return tuple(steps.items())


def _checkpoints_of_seeds(series: dict[Path, dict[int, Path]], options: DiscoveryOptions) -> bool:
    """Whether folders read as series of steps are checkpoints of samples named by a seed
    or class instead (EDM's ``network-snapshot-000200/000100.png`` … ``000107.png`` from
    ``--seeds=100-107``): folders named with steps (not a prompt, ``cat``, nor a class
    index, ``0``), every file name a bare number, and no step's images written across the
    folders together (each folder's written at once, or a copy whose times cannot tell).
    Read as series, each seed was a step and each checkpoint a sample."""
    files = [path for steps in series.values() for path in steps.values()]
    if not all(path.stem.isdigit() for path in files):
        return False
    named = [step_of(folder.name, options, is_file=False) for folder in series]
    if None in named or len(set(named)) != len(named) or _index_like(sorted(named)):
        return False
    by_folder = [[t for path in steps.values() if (t := _mtime(path)) is not None] for steps in series.values()]
    return _written_together(by_folder) is not False


@kept_while_listed_alike
def _images_named_by_step(folder: Path, options: DiscoveryOptions) -> tuple[Path, ...] | None:
    """A folder's images if it holds nothing else and the first and last names carry steps
    that are no sample indices (``checkpoint-500/00000.png`` ...: told by two names of
    thousands); else None."""
    entries = folder_entries(folder)
    ends = [step_of(name, options) for name in (min(e.name for e in entries), max(e.name for e in entries))] \
        if entries else [None]
    if None in ends or (min(ends) <= 1 and max(ends) < 2 * len(entries) + 2):
        return None
    files = [Path(e.path) for e in entries if _is_file(e) and _is_generated_sample(Path(e.path), options)]
    if not files or len(files) != len(entries) or any(p.suffix.lower() not in IMAGE_EXTENSIONS for p in files):
        return None
    return tuple(files)


def _series_folders(folders: list[Path], options: DiscoveryOptions) -> dict[Path, tuple[int, tuple[Path, ...]]]:
    """Folders of one prompt or class each, holding its image at every step (OneTrainer's
    ``samples/0 - a photo of 2 cats/{time}-training-sample-{step}-{epoch}-{epoch_step}.jpg``,
    ``samples/cat/step_1000.png``): one checkpoint per step across them, named
    ``samples/{sample}/step_1000.png``, each folder a sample. Only folders of nothing but
    images named with distinct steps that are no sample indices (``checkpoint-500/00000.png``
    ...), two or more, with a step in common."""
    series = {}
    for folder in folders:
        if _names_a_checkpoint(folder.name):  # step_500/samples_ddim50.png ...: one checkpoint each (round AN)
            continue
        if (files := _images_named_by_step(folder, options)) is None:
            continue
        read = _steps_in_series(list(files), options)
        if read and not _index_like(list(read[0])):
            series[folder] = read
    if not series:
        series = {folder: (steps, None) for folder, steps in _counted_together(folders, options).items()}
    # where most folders of several images read the step, every folder reads it: a folder of one
    # (OneTrainer's samples/custom/) fits any number of its name (its epoch step, 80, not 200)
    positions = Counter(at for steps, at in series.values() if len(steps) >= 2)
    if positions and (common := positions.most_common(1)[0][0]) is not None:
        for folder, (steps, at) in list(series.items()):
            if at != common:
                read = _steps_in_series(list(steps.values()), options, common)
                del series[folder]
                if read:
                    series[folder] = read
    series = {folder: steps for folder, (steps, _) in series.items()}
    counts = Counter(step for steps in series.values() for step in steps)
    if len(series) < 2 or max(counts.values()) < 2 or _checkpoints_of_seeds(series, options):
        return {}
    parent = next(iter(series)).parent
    names = sorted(folder.name for folder in series)
    warn_once(parent, f"{parent}: {len(series)} folders ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''}) "
                       "hold an image at every step: one checkpoint per step, each folder's samples labelled by its "
                       "name (to watch one alone, point evowatch at it)", about="series folders", say=log.info)
    groups = {}
    variants = {folder: m[0] if (m := _MODEL_VARIANT.search(folder.name)) else "" for folder in series}
    for variant in sorted(set(variants.values())):
        for step in counts:
            files = tuple(sorted(steps[step] for folder, steps in series.items()
                                 if step in steps and variants[folder] == variant))
            if files:
                name = _NO_NUMBER.sub("?", files[0].name)  # a time apart in each folder
                groups[files[0].parent.parent / f"{SAMPLE_KEY}{variant}" / name] = (step, files)
    return groups


#: A name of two numbers and nothing else that counts (a date, a setting masked): the text
#: before, the first, the text between, the second, the text after.
_TWO_COUNTERS = re.compile(r"(\D*)(\d+)(\D+)(\d+)(\D*)")


def _epoch_batch_steps(files: list[Path]) -> dict[Path, int]:
    """Steps of single files named by the epoch and then the batch in it, which starts again
    each epoch (DCGAN-tensorflow's ``train_{epoch:02d}_{idx:04d}.png``, dome272's VQGAN
    ``results/{epoch}_{i}.jpg``): read as the batch, later epochs came before earlier ones.
    Where the files' times show the batch starting again while epoch and batch together
    grow, the step is epoch x 10^digits + batch (``train_01_0006`` -> 10,006): training order,
    the batch as it is in each epoch. Nothing changes while the first epoch runs."""
    series: dict[tuple[Path, str, str, str], list[tuple[int, int, int, Path]]] = {}
    for path in files:
        masked = _blanked(_NOT_A_STEP, path.stem)
        match = _TWO_COUNTERS.fullmatch(masked)
        if match and not _NAMED_STEP.search(masked):
            before, epoch, between, batch, after = match.groups()
            series.setdefault((path.parent, before, between, after + path.suffix), []).append(
                (int(epoch), int(batch), len(batch), path))
    steps = {}
    for members in series.values():
        times = _telling_times([path for *_, path in members]) if len(members) >= 3 else None
        if times is None:
            continue  # too few, or a copy: the times tell nothing
        ordered = [pair for _, pair in sorted(zip(times, [(e, b) for e, b, _, _ in members]))]
        restarts = any(b2 < b1 for (_, b1), (_, b2) in zip(ordered, ordered[1:]))
        if restarts and all(a < b for a, b in zip(ordered, ordered[1:])):
            steps.update(_epoch_major(members))
    return steps


def _epoch_major(members: list[tuple[int, int, int, Path]]) -> dict[Path, int]:
    """(epoch, count in the epoch, its digits, path) -> epoch x 10^digits + count: training order."""
    scale = 10 ** max(digits for _, _, digits, _ in members)
    return {path: epoch * scale + count for epoch, count, _, path in members}


def _steps_in_epochs(files: list[Path]) -> dict[Path, int]:
    """Steps of single files named by the epoch, then a step counted within it (VQ-Diffusion's
    ``e{epoch:010d}_itr{iter % iters_per_epoch:010d}_rank0_ema.jpg``): read as the named step,
    every epoch of its default config was one step, 2999. Where a later epoch's step is not
    past an earlier epoch's, the step is epoch x 10^digits + step, as for an epoch's batches."""
    series: dict[tuple[Path, str], list[tuple[int, int, int, Path]]] = {}
    for path in files:
        masked = _blanked(_NOT_A_STEP, path.stem)
        named = list(_NAMED_STEP.finditer(masked))
        epoch = _EPOCH.search(masked)
        if len(named) == 1 and epoch and epoch.end() <= named[0].start():
            key = masked[:epoch.start(1)] + "#" + masked[epoch.end(1):named[0].start(1)] + "#" + masked[named[0].end(1):]
            series.setdefault((path.parent, key + path.suffix), []).append(
                (int(epoch[1]), int(named[0][1]), len(named[0][1]), path))
    steps = {}
    for members in series.values():
        by_epoch: dict[int, list[int]] = {}
        for epoch, step, _, _ in members:
            by_epoch.setdefault(epoch, []).append(step)
        epochs = sorted(by_epoch)
        if any(max(by_epoch[a]) >= min(by_epoch[b]) for a, b in zip(epochs, epochs[1:])):
            steps.update(_epoch_major(members))
    return steps


def _steps_before_a_constant(files: list[Path]) -> dict[Path, int]:
    """Steps of single files whose last number, the step by default, is the same in every
    name that starts alike and holds as many numbers, while an earlier number differs:
    CogVideoX's ``validation-{step}-{rank}-{prompt}-{hash}.png`` (rank 0 in every name) was
    step 0 throughout. The last such earlier number is the step. A name alone of its kind
    (a live run's first sample file) whose last numbers are 0, a first sample's index, reads
    the number before them (:func:`_step_before_first_indices`). Names that call a number the
    step keep it."""
    series: dict[tuple[Path, str, int], list[tuple[list[int], Path]]] = {}
    for path in files:
        masked = _NOT_A_STEP.sub("_", path.stem)
        numbers = [int(n) for n in re.findall(r"\d+", masked)]
        if len(numbers) >= 2 and not _NAMED_STEP.search(masked):
            series.setdefault((path.parent, re.split(r"\d", masked, maxsplit=1)[0], len(numbers)), []).append((numbers, path))
    steps = {}
    for members in series.values():
        columns = list(zip(*(numbers for numbers, _ in members)))
        varying = [i for i, column in enumerate(columns[:-1]) if len(set(column)) > 1]
        if len(members) >= 2 and len(set(columns[-1])) == 1 and varying:
            steps.update({path: numbers[varying[-1]] for numbers, path in members})
        elif len(members) == 1 and (step := _step_before_first_indices(members[0][1].stem)) is not None:
            steps[members[0][1]] = step
    return steps


#: A number that counts on its own: at the start, after a separator or an epoch mark
#: (``mylora_000500``, ``__000000250``, ``_e000003``), not glued to a word (``cifar10``, ``sd15``).
_STANDALONE_NUMBER = re.compile(r"(?:^|(?<=[-_. ])|(?<=(?<![a-z])e)|(?<=(?<![a-z])ep)|(?<=(?<![a-z])epoch))(\d+)",
                                re.IGNORECASE)


#: A date without a time of day (``20240514``, ``2024_05_14``): a folder's or run's name, no step.
_DATE = re.compile(r"(?<!\d)(?:19|20)\d\d([-_.]?)(?:0[1-9]|1[0-2])\1(?:0[1-9]|[12]\d|3[01])(?!\d)")


def _step_before_first_indices(stem: str) -> int | None:
    """The step of a lone ``{step}_{index}`` name whose index is 0: the first file a per-sample
    writer saves (kohya-ss's ``mylora_000500_00_<time>.png``, ai-toolkit's
    ``<time>__000000250_0.jpg``, ``sample_1000_0.png``) read alone until a second one comes;
    its last number, the prompt index, was the step (0). The last non-zero number before the
    trailing zeros, standing alone and no date; None where there is none (``cifar10_0``,
    ``run_20240514_0``: step 0)."""
    masked = _NOT_A_STEP.sub("_", stem)
    numbers = list(re.finditer(r"\d+", masked))
    count = len(numbers)
    while numbers and int(numbers[-1][0]) == 0:
        numbers.pop()
    if len(numbers) == count or not numbers:
        return None  # no trailing index 0, or nothing but zeros (step 0 itself)
    last = numbers[-1]
    if not any(m.span(1) == last.span() for m in _STANDALONE_NUMBER.finditer(masked)) or any(
            m.start() <= last.start() and last.end() <= m.end() for m in _DATE.finditer(masked)):
        return None  # a number glued to a word, or a date (run_20240514_0: step 0, not 20,240,514)
    return int(last[0])


def _read_level(folder: Path, options: DiscoveryOptions) -> _Level:
    numbered, plain, unnumbered_files, weights, reals = [], [], 0, 0, []
    entries = folder_entries(folder)
    stems = {Path(entry.name).stem for entry in entries if _is_file(entry)}
    # folders a file of their name may repeat: only those of samples (epoch_1.png, a grid, beside
    # epoch_1/ of weights was left out as the folder's copy, and nothing was read)
    folders = {entry.name for entry in entries if entry.name in stems and _is_dir(entry)
               and _holds_samples(Path(entry.path), options)}
    images = {Path(entry.name).stem for entry in entries if Path(entry.name).suffix.lower() in IMAGE_EXTENSIONS}
    videos = {Path(entry.name).stem for entry in entries if Path(entry.name).suffix.lower() in VIDEO_EXTENSIONS}
    packed = []
    for entry in entries:
        path = Path(entry.path)
        if _is_hidden_dir(entry):
            continue
        if not options.samples_chosen and _is_copy_beside(path, folders, images, videos) and _is_file(entry):
            packed.append(entry.name)
            continue
        if _is_dir(entry):
            step = step_of(entry.name, options, is_file=False)
            if _is_real_data_folder(entry.name, options):  # the training data or a copy (``data/``, ``real/``, ``gt/``)
                if any(is_sample_name(p.name, options) for p in walk_files(path)):
                    reals.append(f"{entry.name}/")
            elif not options.samples_chosen and _SAMPLE_COPIES_FOLDER.fullmatch(entry.name):
                warn_once(folder, f"{folder}: {entry.name}/ holds copies of the samples made to carry an embedding "
                                   "(captioned, data drawn in): not read as samples (--samples GLOB reads it)",
                           about="copies", say=log.info)
            elif step is None:
                plain.append(path)
            elif _holds_samples(path, options):
                numbered.append((step, path, True))
        elif _is_file(entry):
            step = step_of(entry.name, options)
            weight = (is_weight_file(entry.name) or _weights_by_folder(path, folder.name)) and not (
                options.samples_chosen and is_sample_name(entry.name, options))  # --samples picks it
            if weight:
                if step is not None and not _PER_PROCESS_STATE.search(entry.name):
                    weights += 1
            elif is_sample_name(entry.name, options):
                real = step is not None and is_real_data(entry.name, options)
                if real:
                    reals.append(entry.name)
                if step is None or real:  # either is a sign of a run beside its samples
                    unnumbered_files += 1
                else:
                    numbered.append((step, path, False))
    if (unnamed := [e for e in numbered if _unnamed_tensor(e[1])]) and any(
            _holds_images(path, options) for path in plain):
        numbered = [entry for entry in numbered if entry not in unnamed]  # StyleSwin's weights beside its samples/
        weights += len(unnamed)
    if videos := sorted(e.name for e in entries if Path(e.name).suffix.lower() in VIDEO_EXTENSIONS and _is_file(e)):
        warn_once(folder, f"{folder}: {counted(len(videos), 'video file')} ({', '.join(videos[:2])}"
                           f"{', ...' if len(videos) > 2 else ''}) not read: evowatch reads images; have the trainer "
                           "save its samples as images, or as GIF or WebP (read at their last frame)", about="videos")
    if packed:
        one = len(packed) == 1
        warn_once(folder, f"{folder}: {counted(len(packed), 'file')} named as a folder, an image or a video beside "
                           f"{'it' if one else 'them'} ({', '.join(packed[:2])}{', ...' if len(packed) > 2 else ''}) "
                           f"left out: a sample folder packed or drawn as one file, weights saved beside their samples, "
                           "a video's input image or a smaller copy; the samples are read once, from the folder or the "
                           "full-size image (--samples GLOB picks one)", about="packed")
    if reals:
        folders, one = sum(name.endswith("/") for name in reals), len(reals) == 1
        what = "files" if not folders else "folders" if folders == len(reals) else "files and folders"
        warn_once(folder, f"{folder}: {len(reals)} {what[:-1] if one else what} named as real data or made from it "
                           f"({', '.join(reals[:2])}{', ...' if len(reals) > 2 else ''}) {'is' if one else 'are'} "
                           f"not read as samples (--samples GLOB reads {'it' if one else 'them'})")
    groups = _per_sample_groups([path for _, path, is_dir in numbered if not is_dir], options)
    series = _series_folders([path for _, path, is_dir in numbered if is_dir] + plain, options)
    if series:
        in_series = {f.parent for _, files in series.values() for f in files}
        numbered = [entry for entry in numbered if entry[1] not in in_series]
        plain = [path for path in plain if path not in in_series]
        groups |= series
    if groups:
        grouped = {f for _, group_files in groups.values() for f in group_files}
        numbered = [entry for entry in numbered if entry[1] not in grouped]
        numbered += [(step, pattern, False) for pattern, (step, _) in groups.items()]
    singles = [path for _, path, is_dir in numbered if not is_dir and path not in groups]
    if options.step_regex is None and (counted_on := _epoch_batch_steps(singles) or _steps_in_epochs(singles)
                                       or _steps_before_a_constant(singles)):
        numbered = [(counted_on.get(path, step), path, is_dir) for step, path, is_dir in numbered]
    return _Level(tuple(numbered), unnumbered_files, weights, tuple(plain),
                  {pattern: group_files for pattern, (_, group_files) in groups.items()})


def _first_numbered_levels(folder: Path, options: DiscoveryOptions, depth: int) -> list[_Level]:
    """Breadth-first through unnumbered sub-folders to the first depth with numbered entries:
    its levels that have them (label folders side by side: ``cat/``, ``dog/``)."""
    frontier = [folder]
    for _ in range(max(0, _MAX_DEPTH - depth)):
        levels = [_read_level(f, options) for f in frontier]
        found = [lv for lv in levels if lv.numbered]
        if found:
            return found
        frontier = [d for lv in levels for d in lv.plain_dirs]
        if not frontier:
            break
    return []


def _is_index_sequence(numbers: Iterable[int]) -> bool:
    """Consecutive numbers, as a checkpoint's sample or label indices are; a lone number
    only if it can start such a sequence (0 or 1): a lone 1000 is a step."""
    values = sorted(set(numbers))
    if len(values) == 1:
        return values[0] <= 1
    return bool(values) and values[-1] - values[0] == len(values) - 1


def _looks_like_run(folder: Path, options: DiscoveryOptions, depth: int) -> bool:
    """Whether a lone numbered folder holds a series of checkpoints (see the module rule). Label
    folders side by side are read together: files numbered in the data set's order are spread
    over them (``cat/00000.png``, ``dog/00001.png``, ...), no folder's numbers consecutive, and
    one checkpoint was read as a checkpoint per image."""
    levels = _first_numbered_levels(folder, options, depth)
    if not levels:
        return False
    numbered = [entry for level in levels for entry in level.numbered]
    named = _names_a_checkpoint(folder.name)
    if named:  # a file named with the folder's own step is the checkpoint's too (round AZ: step_100/grid_100.png
        own = step_of(folder.name, options, is_file=False)  # beside 00000.png ... was step 100 of a run)
        numbered = [entry for entry in numbered if entry[0] != own] or numbered
    steps = [step for step, _, _ in numbered]
    counted_in = any(_COUNTER_NAME.search(path.name) for _, path, _ in numbered)  # epoch_001.png: no index
    # a folder named as a checkpoint holds its samples' indices, gaps and all (round AJ: step_000100/
    # without 00006.png was a checkpoint per image, until a second checkpoint came)
    # and a number its files all share (step_500/samples_ddim50.png, checkpoint-500/grid_512.png: a
    # setting; round AN: read as a run of one checkpoint at step 50)
    indices = (_is_index_sequence(steps) or _counts_training(folder.name) and _index_like(steps)
               or named and len(set(steps)) == 1)
    # what lies beside such samples in a folder named as a checkpoint is its own (round AZ: step_100/
    # with a grid.png, an unnumbered or corrupt image, or its weights was a checkpoint per image,
    # steps 0 to 15, until a second checkpoint came): a sign of a run elsewhere (reals.png by fakes000000.png)
    beside = not (named and indices) and any(level.unnumbered_files > 0 or level.numbered_weights > 0 for level in levels)
    return beside or counted_in or not indices


#: A number a name says counts training (Sacred's ``runs/1/epoch_001.png`` copies): a step, not a sample's index.
_COUNTER_NAME = re.compile(r"(?<![a-z])(?:epoch|ep|step|iter|itr|it|gs|kimg|global_step)[-_=+%]?\d", re.IGNORECASE)


#: A folder named as a checkpoint (``checkpoint-2/``, ``ckpt_4``): never a run of its own.
_CHECKPOINT_NAME = re.compile(r"(?<![a-z])(?:checkpoint|ckpt)[-_=]?\d", re.IGNORECASE)


def _counts_training(name: str) -> bool:
    """Whether a name carries a training counter or a checkpoint number anywhere in it
    (``step_500``, ``epoch=3-step=1000``, ``checkpoint-500``, and ``ddpm_ep500``, ``run-it2``)."""
    return bool(_COUNTER_NAME.search(name) or _CHECKPOINT_NAME.search(name))


#: A folder name made of nothing but training counters (``checkpoint-500``, ``step_000500``,
#: ``epoch=3-step=1000``, ``gs-000500``): a checkpoint's own folder. Not a run's or a prompt's
#: that has one in it (``ddpm_ep500``, ``run-it2``, ``gs_3`` or ``gs-3`` a guidance scale; round AO).
#: Not ``steps_50`` either: a sampler's number of steps as often as a checkpoint.
_CHECKPOINT_FOLDER = re.compile(
    r"(?:(?:checkpoint|ckpt|global_step|step|iteration|iter|itr|it|epoch|ep|kimg|gs(?=-\d{3}))[-_=]?\d+[-_]?)+",
    re.IGNORECASE)
#: A training counter spelt out, with a number of three digits or more, among other words
#: (``step-500-ema``, ``ema_step_500``, ``checkpoint_epoch_500``; round AP): a checkpoint's folder
#: too. Not ``step2_finetune``, a run's.
_CHECKPOINT_WORD = re.compile(r"(?<![a-z])(?:checkpoint|global_step|step|iteration|iter|epoch|kimg)[-_=]?\d{3,}",
                              re.IGNORECASE)


def _names_a_checkpoint(name: str) -> bool:
    """Whether a folder's name is a checkpoint's (:data:`_CHECKPOINT_FOLDER`, :data:`_CHECKPOINT_WORD`)."""
    return _CHECKPOINT_FOLDER.fullmatch(name) is not None or _CHECKPOINT_WORD.search(name) is not None


def _holds_runs(level: _Level, options: DiscoveryOptions, depth: int) -> bool:
    """Numbered folders numbered like runs, each a run: consecutive (version_3, version_4, the
    earlier ones deleted), or dense from 0 or 1 (version_2 beside version_0, a failed version_1
    deleted); never folders named by a training counter or as checkpoints (epoch_1/, epoch_3/
    of weights and samples, saved every 2 epochs)."""
    entries = level.numbered
    steps = sorted({step for step, _, _ in entries})
    return (all(is_dir for _, _, is_dir in entries) and (_is_index_sequence(steps) or _index_like(steps))
            and not any(_counts_training(path.name) for _, path, _ in entries)
            and all(_looks_like_run(path, options, depth + 1) for _, path, _ in entries))


_warned: set[str] = set()


def warn_once(folder: Path, message: str, about: str = "layout", say: Callable[..., None] = log.warning) -> None:
    """A warning (or what ``say`` logs) about a folder, once per folder, subject and process
    (the watcher rescans on every change)."""
    if (key := f"{folder}\0{about}") not in _warned:
        _warned.add(key)
        say("%s", message)


def _units(folder: Path, options: DiscoveryOptions, depth: int) -> list[tuple[int, Path, tuple[Path, ...] | None]]:
    """(step, path, files): ``files`` is None for a folder or a file, whose files follow from it."""
    level = _read_level(folder, options)
    if level.numbered and level.plain_dirs and depth < _MAX_DEPTH:
        _say_hidden_checkpoints(folder, level, options, depth)
    if depth < _MAX_DEPTH and (in_epochs := _checkpoints_in_epoch_folders(level, options, depth)):
        return in_epochs
    if len({step for step, _, _ in level.numbered}) >= 2:
        if depth < _MAX_DEPTH and _holds_runs(level, options, depth):
            warn_once(folder, f"{folder}: holds several runs ({', '.join(p.name for _, p, _ in level.numbered)}); "
                               "their checkpoints are read together: point evowatch at one of them")
            return [unit for _, path, _ in level.numbered for unit in _units(path, options, depth + 1)]
        return [(step, path, level.groups.get(path)) for step, path, _ in level.numbered]
    units: list[tuple[int, Path, tuple[Path, ...] | None]] = []
    for step, path, is_dir in level.numbered:
        if is_dir and depth < _MAX_DEPTH and _looks_like_run(path, options, depth + 1):
            units.extend(_units(path, options, depth + 1))
        else:
            units.append((step, path, level.groups.get(path)))
    if not level.numbered and depth < _MAX_DEPTH:
        units.extend(_plain_dirs_units(folder, level, options, depth))
    return units


def _checkpoints_in_epoch_folders(level: _Level, options: DiscoveryOptions,
                                  depth: int) -> list[tuple[int, Path, tuple[Path, ...] | None]]:
    """The checkpoints of folders per epoch that hold checkpoints named by their step
    (``epoch_005/iter_000300/``, ``epoch_5/step_1200.png``): each epoch was read as one
    checkpoint at the epoch's number, its iterations' samples mixed. The step is the inner
    one; where it starts again each epoch, epoch x 10^digits + it, as for names that carry
    both (:func:`_steps_in_epochs`). [] when the level is no such thing."""
    if options.step_regex is not None or not level.numbered or not all(
            is_dir and _EPOCH.fullmatch(path.name) for _, path, is_dir in level.numbered):
        return []

    def step_names(units: list) -> dict:
        return {unit: _NAMED_STEP.search(_blanked(_NOT_A_STEP, unit[1].name)) for unit in units}

    latest_epoch, latest, _ = level.numbered[-1]  # alone first: most epoch folders hold one checkpoint's samples
    inner = {latest_epoch: _units(latest, options, depth + 1)}
    if not all(step_names(inner[latest_epoch]).values()):
        return []
    inner = {epoch: inner[latest_epoch] if path == latest else _units(path, options, depth + 1)
             for epoch, path, _ in level.numbered}
    named = {unit: match for units in inner.values() for unit, match in step_names(units).items()}
    if not named or not all(named.values()):
        return []
    epochs = sorted(inner)
    steps = {epoch: [step for step, _, _ in inner[epoch]] for epoch in epochs if inner[epoch]}
    kept = [epoch for epoch in epochs if epoch in steps]
    if all(max(steps[a]) < min(steps[b]) for a, b in zip(kept, kept[1:])):
        return [unit for epoch in epochs for unit in inner[epoch]]
    scale = 10 ** max(len(match[1]) for match in named.values())
    return [(epoch * scale + step, path, files) for epoch in epochs for step, path, files in inner[epoch]]


def _say_hidden_checkpoints(folder: Path, level: _Level, options: DiscoveryOptions, depth: int) -> None:
    """Say (once a process: a look through the folders) that a level read by its numbered
    entries has unnumbered folders holding checkpoints of their own, which are not read: a
    ``samples_2500.npz`` or a plot ``final_grid_3000.png`` at a run's top hid ``samples/step_N/``
    without a word."""
    if (key := f"{folder}\0hidden checked") in _warned:
        return
    _warned.add(key)
    runs = functools.lru_cache(maxsize=None)(lambda sub: _looks_like_run(folder / sub, options, depth + 1))
    hidden = [unit for unit in _plain_dirs_units(folder, level, options, depth) if unit[1].is_relative_to(folder)
              and runs(unit[1].relative_to(folder).parts[0])]  # each folder looked into once
    steps = sorted({step for step, _, _ in hidden})
    if len(steps) < 2:
        return
    subs = sorted({path.relative_to(folder).parts[0] for _, path, _ in hidden})
    read = listed([path.name for _, path, _ in level.numbered], 2)
    warn_once(folder, f"{folder}: {', '.join(s + '/' for s in subs[:3])} hold{'s' if len(subs) == 1 else ''} "
              f"{len(hidden):,} more checkpoints (steps {steps[0]:,} to {steps[-1]:,}) that are not read: the run is "
              f"read at this level ({read}); to read them, point evowatch at {folder / subs[0]}", about="hidden")


def _plain_dirs_units(folder: Path, level: _Level, options: DiscoveryOptions,
                      depth: int) -> list[tuple[int, Path, tuple[Path, ...] | None]]:
    """The checkpoints of a level's unnumbered folders; a tracker's copies (``wandb/``) only
    when no other folder holds the trainer's own files."""
    found = {sub: _units(sub, options, depth + 1) for sub in level.plain_dirs}
    copies = [sub for sub in found if sub.name.lower() in TRACKER_FOLDERS and found[sub]]
    if copies and any(found[sub] for sub in found if sub not in copies):
        for sub in copies:
            _say_tracker_copies_left_out(folder, sub.name)
        found = {sub: sub_units for sub, sub_units in found.items() if sub not in copies}
    _say_interleaved(folder, found)
    return [unit for sub_units in found.values() for unit in sub_units]


def _say_tracker_copies_left_out(folder: Path, copies: str) -> None:
    """Say once that the tracker's folder ``copies`` (below ``folder``) is left out, beside the
    trainer's own sample files."""
    warn_once(folder, f"{folder}: {copies}/ holds {tracker_name(copies)}'s copies of the images the trainer logged, beside its "
                      f"own sample files: the trainer's files are read, not the copies (point evowatch at {copies}/ "
                      "to read them)", about=copies, say=log.info)


def _without_tracker_copies(checkpoints: list[Checkpoint], root: Path) -> list[Checkpoint]:
    """A tracker's copies (``wandb/``, ``mlruns/``) left out beside the trainer's own files,
    wherever in the run they lie: a level leaves out those beside its own folders, but
    ``logs/wandb/`` beside ``samples/`` made every step two checkpoints (and the store takes the
    copies for stand-ins its own files supersede: :func:`stores.format.stand_in_for_files`)."""
    folders = {c.source: tracker_folder(c.source) for c in checkpoints}
    if all(folders.values()) or not any(folders.values()):
        return checkpoints
    for copies in sorted({folder for folder in folders.values() if folder}):
        _say_tracker_copies_left_out(root, copies)
    return [c for c in checkpoints if folders[c.source] is None]


def _say_interleaved(folder: Path, found: dict[Path, list]) -> None:
    """Say once that two folders' checkpoints take turns in step without sharing one
    (``baseline/`` at 1000, 2000, 3000 and ``ablation/`` at 1500, 2500): read together as one
    run, two experiments made one series. One folder going on where the other stopped (a
    resumed run's ``phase2/``) is none; steps both hold are said by the watcher."""
    series = {sub: sorted({step for step, _, _ in units}) for sub, units in found.items()}
    series = {sub: steps for sub, steps in series.items() if len(steps) >= 2}
    if _is_index_sequence(step for steps in series.values() for step in steps):
        return  # a data set's numbers spread over label folders: indices, not steps
    for a, b in itertools.combinations(series, 2):
        sa, sb = series[a], series[b]
        if sa[0] < sb[-1] and sb[0] < sa[-1] and not set(sa) & set(sb):
            warn_once(folder, f"{folder}: the checkpoints of {a.name}/ (steps {sa[0]:,} to {sa[-1]:,}) and {b.name}/ "
                              f"({sb[0]:,} to {sb[-1]:,}) take turns in step: they are read as one series; if they are "
                              f"two runs or two series (train and validation samples), point evowatch at one of them "
                              f"({folder / a.name})", about="interleaved")
            return


def scan_run(run_dir: str | os.PathLike[str], options: DiscoveryOptions | None = None) -> list[Checkpoint]:
    """Every candidate checkpoint of a run, sorted by (step, source), each with its sample files.

    Checkpoints that are empty so far are left out (they are not checkpoints yet), and so is
    anything that vanishes during the scan. Readiness is decided separately by :func:`is_ready`.
    """
    options = options or DiscoveryOptions()
    root = Path(run_dir)
    if not root.is_dir():
        raise DiscoveryError(f"{root}: run directory not found (or not a directory); check the path.")
    if (itself := _is_one_checkpoint(root, options)) is not None:
        warn_once(root, itself, about="one checkpoint")
    checkpoints = []
    for step, path, grouped in _units(root, options, 0):
        files = grouped or (tuple(sample_files(path, options)) if path.is_dir() else (path,))
        if files:
            checkpoints.append(Checkpoint(step=step, source=_relative(path, root), files=files, root=root))
    checkpoints = _without_tracker_copies(_read_once(checkpoints, root), root)
    checkpoints.sort(key=lambda c: (c.step, c.source))
    log.debug("scan %s: %d checkpoints", root, len(checkpoints))
    return checkpoints


def _read_once(checkpoints: list[Checkpoint], root: Path) -> list[Checkpoint]:
    """Leave out a checkpoint read again through a symlink to a folder elsewhere in the run
    (``run/latest -> runs/run1``, ``run/other/s2 -> ../samples``, ``latest -> samples/step_1000``
    read as a checkpoint per file): its files all read through fewer links (round AN: every
    checkpoint was stored twice). A link to a folder the scan reads otherwise or not at all
    (``samples -> data/outputs``) is how its checkpoints are read (round AO)."""
    links = {c.source: _links_on(root, c.source) for c in checkpoints}
    if not any(links.values()):
        return checkpoints
    real_folder = functools.lru_cache(maxsize=None)(os.path.realpath)

    def real_files(checkpoint: Checkpoint) -> list[str]:
        return [os.path.join(real_folder(os.path.dirname(f)), os.path.basename(f)) for f in checkpoint.files]

    reals = [real_files(checkpoint) for checkpoint in checkpoints]
    fewest: dict[str, int] = {}
    for checkpoint, files in zip(checkpoints, reals):
        for file in files:
            fewest[file] = min(fewest.get(file, links[checkpoint.source]), links[checkpoint.source])
    return [c for c, files in zip(checkpoints, reals)
            if not links[c.source] or not all(fewest[f] < links[c.source] for f in files)]


def _links_on(root: Path, source: str) -> int:
    """How many entries on the way from ``root`` to a checkpoint, itself included, are symbolic links."""
    path, count = root, 0
    for part in Path(source).parts:
        path = path / part
        count += path.is_symlink()
    return count


def _is_one_checkpoint(root: Path, options: DiscoveryOptions) -> str | None:
    """Why ``root`` looks like one checkpoint, not a run, or None: a folder named as a
    checkpoint (``checkpoint-500/``, ``step_000500/samples/``) whose sample files are
    numbered as one checkpoint's samples. Pointed at by mistake, it is read as a checkpoint
    per image, at steps 0, 1, 2 ... (round AN): said, not refused, for a run may look so
    too (round AP: ``ep25/`` of per-epoch grids ``0.png`` ...)."""
    if options.step_regex is not None or (decided := f"{root}\0one checkpoint checked") in _warned:
        return None
    absolute = Path(os.path.abspath(root))  # `.` and `samples` have names too (round AO)
    step, named = next(((step, folder) for folder in (absolute, absolute.parent)
                        if (step := step_of(folder.name, options, is_file=False)) is not None), (None, None))
    if named is None or not _names_a_checkpoint(named.name):
        return None
    levels = _first_numbered_levels(root, options, 0)
    numbered = [path for level in levels for _, path, is_dir in level.numbered if not is_dir]
    if len(numbered) < 2:
        return None  # not yet told: a checkpoint still being written, or a run just begun
    _warned.add(decided)  # told once a process: a pass over a run named so read its levels twice
    if len(numbered) < sum(len(level.numbered) for level in levels) or _looks_like_run(root, options, 0):
        return None
    first, last = (f(numbered, key=lambda p: (step_of(p.name, options) or 0, p.name)) for f in (min, max))
    return (f"{root}: looks like one checkpoint (its name says step {step:,}; "
            f"{len(numbered)} files numbered as samples, {first.name} to {last.name}), read as a checkpoint per file: "
            f"if it is one, point evowatch at the run folder that holds it ({named.parent}); --step-regex says how "
            "its files' names carry steps")


def scan_reference(folder: str | os.PathLike[str], kind: Kind,
                   options: DiscoveryOptions | None = None) -> Checkpoint:
    """A ``--real``/``--holdout`` set as one checkpoint (step -1): a folder of images, maybe
    one sub-folder per label (ImageFolder layout), or a single tensor/image file."""
    if kind not in ("real", "holdout"):
        raise ValueError(f"Expected kind 'real' or 'holdout'. Got {kind!r} instead.")
    options = options or DiscoveryOptions()
    path = Path(folder)
    if path.is_file():
        root, files = path.parent, (path,)
    elif path.is_dir():
        root, files = path, tuple(sample_files(path, options, generated=False))
    else:
        raise DiscoveryError(f"{path}: --{kind} folder not found; check the path.")
    if not files:
        raise DiscoveryError(f"{path}: --{kind} holds no sample files (looked for {', '.join(options.sample_globs)}).")
    generated = [f for f in files if not options.samples_chosen and _GENERATED_DATA.search(f.stem)]
    if generated and len(generated) < len(files):
        files = tuple(f for f in files if f not in generated)
        warn_once(path, f"{path}: {counted(len(generated), 'file')} named as generated samples "
                         f"({', '.join(f.name for f in generated[:2])}{', ...' if len(generated) > 2 else ''}) "
                         f"{'is' if len(generated) == 1 else 'are'} not read as --{kind} data", about=kind)
    return Checkpoint(step=-1, source=f"{kind}:{path.absolute().as_posix()}", files=files, kind=kind, root=root)


# --- completeness and identity ---------------------------------------------------------------

def checkpoint_path(checkpoint: Checkpoint) -> Path:
    """The checkpoint's folder or file on disk."""
    return checkpoint.root / checkpoint.source if checkpoint.kind == "generated" else checkpoint.root


def ready_file_name(checkpoint: Checkpoint, template: str) -> str:
    """The ``--ready-file`` a checkpoint waits for, its ``{step}``, ``{stem}``, ``{name}`` filled in."""
    name = checkpoint_path(checkpoint).name
    return template.format(stem=_stem(name), name=name, step=checkpoint.step)


def is_ready(checkpoint: Checkpoint, options: DiscoveryOptions | None = None, now: float | None = None) -> bool:
    """Whether the trainer has finished writing the checkpoint.

    With ``ready_file``: once that file exists. Otherwise once no file in it was modified for
    ``settle`` seconds (a folder renamed into place keeps its old mtimes, so it is taken at
    once). A checkpoint that vanished is not ready.
    """
    options = options or DiscoveryOptions()
    path = checkpoint_path(checkpoint)
    is_folder = path.is_dir()
    if options.ready_file:
        name = ready_file_name(checkpoint, options.ready_file)
        if path.parent.name.startswith(SAMPLE_KEY):  # across per-sample folders: in each of them
            return all((file.parent / name).exists() for file in checkpoint.files)
        return ((path if is_folder else path.parent) / name).exists()
    files = list(walk_files(path)) if is_folder else list(checkpoint.files)  # a file, or a pattern's files
    now = time.time() if now is None else now
    try:
        newest = max(_arrived(st, now) for st in map(os.stat, files)) if files else None
    except (*GONE, PermissionError):  # gone, or made unreadable since the scan
        return False
    if newest is None:
        return False
    return now - newest >= options.settle


def _arrived(st: os.stat_result, now: float) -> float:
    """When a file was last written here: its modification time, or its change time when later
    (a copy keeping the source's old times: ``rsync -a``, ``cp -a``), or alone when the
    modification time lies ahead (copied from a machine whose clock runs ahead: held back for
    the whole skew, as "still being written")."""
    return max(st.st_mtime if st.st_mtime <= now else 0.0, st.st_ctime)


def _relative(path: str | os.PathLike, root: str | os.PathLike) -> str:
    """``os.path.relpath(path, root)``, by slicing when ``path`` is spelt below ``root`` (as a
    scan's paths are: relpath makes both absolute first, 0.1 s of a 0.9 s pass at 300 checkpoints)."""
    text, prefix = os.fspath(path), os.path.join(os.fspath(root), "")
    rest = text[len(prefix):] if text.startswith(prefix) else ""
    return rest if rest and os.path.normpath(rest) == rest else os.path.relpath(text, root)


def file_versions(checkpoint: Checkpoint, changes: bool = False) -> tuple[tuple[str, int, int], ...]:
    """(name relative to the run, size, mtime in ns) of each file: a version read from the
    file system without reading the files; with ``changes``, each file's change time too (a
    file made readable again, or rewritten keeping its size and mtime: ``cp -p``, ``touch -d``).
    Raises ``FileNotFoundError`` if one vanished."""
    versions = []
    for path in checkpoint.files:
        st = os.stat(path)
        versions.append((_relative(path, checkpoint.root), st.st_size, st.st_mtime_ns)
                        + ((st.st_ctime_ns,) if changes else ()))
    return tuple(versions)


def in_one_folder(checkpoint: Checkpoint) -> bool:
    """Whether all of a checkpoint's files sit in one folder just below its own
    (``step_1000/circle/``), a label's in a run of ImageFolder checkpoints."""
    parents = {f.parent for f in checkpoint.files}
    return len(parents) == 1 and next(iter(parents)).parent == checkpoint_path(checkpoint)


def in_a_label_folder(checkpoint: Checkpoint, options: DiscoveryOptions) -> bool:
    """Whether a checkpoint's files all sit in one folder that is a label folder of the run's
    other checkpoints (``options.folder_label_names``): labelled by it (auto ``label_folders``)."""
    return options.label_folders is None and in_one_folder(checkpoint) and \
        checkpoint.files[0].parent.name in options.folder_label_names


def reading_settings(checkpoint: Checkpoint, options: DiscoveryOptions | None) -> str:
    """How the files are read, where a user set it by hand (empty with the defaults)."""
    if options is None:
        return ""
    if checkpoint.kind != "generated":  # a reference set is never split into tiles and has no step:
        # salted alike, --grid read every --real/--holdout image again and measured every step again
        return f"range={options.value_range[0]:g},{options.value_range[1]:g}" if options.value_range else ""
    parts = [f"grid={options.grid[0]}x{options.grid[1]}" if options.grid else "",
             f"tile={options.tile_size}" if options.tile_size else "",
             f"rows={format_tile_slice(options.tile_rows)}" if options.tile_rows else "",
             f"cols={format_tile_slice(options.tile_cols)}" if options.tile_cols else "",
             f"step={checkpoint.step}" if options.step_regex is not None else "",
             f"range={options.value_range[0]:g},{options.value_range[1]:g}" if options.value_range else "",
             # a lone folder that became a label folder of the run (a live watch saw it before the
             # run's other steps showed it was one): read again, labelled (round AR)
             "labels=folder" if in_a_label_folder(checkpoint, options) else ""]
    return ";".join(p for p in parts if p)


def content_hash(checkpoint: Checkpoint, options: DiscoveryOptions | None = None) -> str:
    """BLAKE2b of the sample files' relative names and bytes, and of ``--grid``,
    ``--tile-size``, ``--tile-rows``/``--tile-cols``, ``--value-range`` and the step when set by hand.

    A grid the trainer rewrites in place (DCGAN rewrites each epoch's file every 100
    iterations) gets a new hash, and so does a checkpoint read again with another grid or
    step setting: its rows read the old way are then superseded, as a rewritten grid's are.
    A file this process may not read counts by its name (decoding skips it, naming it).
    Raises ``FileNotFoundError`` if a file vanished meanwhile.
    """
    return combined_hash(reading_settings(checkpoint, options), file_digests(checkpoint))


def file_digests(checkpoint: Checkpoint) -> list[tuple[str, bytes]]:
    """(name relative to the run, BLAKE2b of the bytes) of each file, in path order."""
    out = []
    for path in sorted(checkpoint.files):
        try:
            name = _relative(path, checkpoint.root)
        except ValueError:
            name = path.name
        try:
            with open(path, "rb") as fh:
                out.append((name, hashlib.file_digest(fh, "blake2b").digest()))
        except PermissionError:  # ingested with the file skipped; read again once its permissions change
            out.append((name, b"unreadable\0"))
    return out


def combined_hash(settings: str, digests: list[tuple[str, bytes]]) -> str:
    """:func:`content_hash` from a checkpoint's :func:`file_digests`: with the names of another
    source, it is the hash that checkpoint had there (a folder renamed: the same files)."""
    digest = hashlib.blake2b(digest_size=16)
    if settings:
        digest.update(settings.encode() + b"\0")
    for name, file_digest in digests:
        digest.update(os.fsencode(name) + b"\0")  # a name that is not UTF-8 has its own bytes
        digest.update(file_digest)
    return digest.hexdigest()
