"""Steps and sample indices read from names: which numbers are no step (dates, hashes,
settings), which one a name calls its step, whether numbers count like sample indices, and
which names are a training counter's or a checkpoint's."""
from __future__ import annotations

import re
from collections.abc import Iterable

from engine.discovery.names import _stem
from engine.discovery.options import DiscoveryOptions
from stores.format import SAMPLE_KEY, listed


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


#: A process's rank in a sample's name (``rank1_3``, ``3_rank01``, ``gpu2-3``): each process numbers its samples from 0.
_RANK = re.compile(r"(?<![a-z])(?:rank|gpu)[-_=]?(\d+)(?!\d)", re.IGNORECASE)


def rank_and_index(stem: str) -> tuple[int, int] | None:
    """The process rank a name marks and its sample index there (``rank1_3`` is (1, 3)), read
    from the name alone, so the same name gives the same pair whatever files are beside it (a step
    holding one rank's files); ``None`` without a rank or an index beside it (``rank1``), a step
    named in it (``rank1_3_step1000``) being none."""
    if (rank := _RANK.search(stem)) is None:
        return None
    index = index_in_name(_NAMED_STEP.sub("_", f"{stem[:rank.start()]}_{stem[rank.end():]}"))
    return None if index is None else (int(rank[1]), index)


def numbers_in_name(stem: str) -> tuple[int, ...]:
    """Every number of a name that is no date, time, shape or hash, in order (``rank1_3`` is
    (1, 3)): what tells apart samples whose last numbers repeat."""
    return tuple(int(n) for n in _FIRST_INT.findall(_NO_NUMBER.sub("_", stem)))


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
    return f"matches no name here ({listed(names, 3)})"


def _blanked(pattern: re.Pattern, text: str) -> str:
    """``text`` with ``pattern``'s matches as ``?`` runs of their length: spans hold in both."""
    return pattern.sub(lambda m: "?" * len(m[0]), text)


def _index_like(indices: list[int]) -> bool:
    """Distinct sample indices from 0 or 1, dense even with gaps: not steps (0, 500, 1000)."""
    return len(set(indices)) == len(indices) and min(indices) <= 1 and max(indices) < 2 * len(indices) + 2


def _is_index_sequence(numbers: Iterable[int]) -> bool:
    """Consecutive numbers, as a checkpoint's sample or label indices are; a lone number
    only if it can start such a sequence (0 or 1): a lone 1000 is a step."""
    values = sorted(set(numbers))
    if len(values) == 1:
        return values[0] <= 1
    return bool(values) and values[-1] - values[0] == len(values) - 1


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
