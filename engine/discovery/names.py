"""What a file's name says it holds (weights, trainer state, evaluation results, the trainer's
real data, a file still being written): decided before any file is opened."""
from __future__ import annotations

import fnmatch
import functools
import os
import re

from engine.discovery.options import MODEL_EXTENSIONS, TENSOR_EXTENSIONS, DiscoveryOptions


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
#: Words naming a chart of the run's numbers, not its samples (``plots/loss_epoch_3.png``,
#: ``G_D_losses_1000.png``, ``fid_curve_5000.png``, a TensorBoard ``add_figure("loss_curve", …)``):
#: taken as samples, a plot a step was a one-sample checkpoint beside that step's real ones.
_PLOT_WORDS = re.compile(r"(?<![a-z])(?:loss(?:es)?|curves?|plots?|histograms?|charts?|confusion[-_]?matri(?:x|ces))"
                         r"(?![a-z])", re.IGNORECASE)
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


_TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", "~")


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


def is_plot_name(name: str) -> bool:
    """Whether an image's name (a file's stem, a TensorBoard tag) calls it a plot of the run's
    numbers (see ``_PLOT_WORDS``) and not samples: ``samples_curve_1000.png`` is samples."""
    return bool(_PLOT_WORDS.search(name)) and not SAMPLE_WORDS.search(name)


def is_plot_file(name: str, options: DiscoveryOptions) -> bool:
    """Whether a file is left out of the samples for its name alone calling it a plot (see
    ``_PLOT_WORDS``): said to the user, or a run of ``plot_1000.png`` had "no checkpoints found"."""
    return (not options.samples_chosen and os.path.splitext(name)[1].lower() not in TENSOR_EXTENSIONS
            and is_plot_name(_stem(name)) and is_sample_name(name, options, reference=True))


@functools.lru_cache(maxsize=1 << 16)  # a pass asks about every file; checkpoints repeat their names
def is_sample_name(name: str, options: DiscoveryOptions, reference: bool = False) -> bool:
    """Whether a file name can hold samples: matches a sample glob and is no weight, temporary
    or evaluation-result file (see ``_EVAL_STEM``), nor, but in a ``reference`` set, an FID
    reference batch or a plot (see ``_PLOT_WORDS``); ``--samples`` globs decide alone between samples and weights
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
    if not (chosen or reference) and ext not in TENSOR_EXTENSIONS and is_plot_name(_stem(name)):
        return False
    if not (chosen or reference) and ext in TENSOR_EXTENSIONS and _FID_REFERENCE_BATCH.match(_stem(name)):
        return False
    return any(fnmatch.fnmatch(lower, pattern.lower()) for pattern in options.sample_globs)


@functools.lru_cache(maxsize=1 << 16)  # a pass asks about every file; checkpoints repeat their names
def is_real_data(name: str, options: DiscoveryOptions) -> bool:
    """A run's copy of its real data (see ``_REAL_DATA``), with the default sample globs."""
    return not options.samples_chosen and bool(_REAL_DATA.search(_stem(name)))
