"""The alert record and every rule's thresholds (AlertRules, DEFAULT_RULES)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

from stores.format import json_number


RULE_NAMES: tuple[str, ...] = ("collapse", "memorisation", "fd_rising", "label_drift", "probe_drift", "convergence")


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert: the checkpoint step, the rule's stable name, the value that tripped it
    and one sentence for a human."""

    step: int
    rule: str
    value: float
    message: str

    def to_dict(self) -> dict[str, Any]:
        """``{"step", "rule", "value", "message"}`` (what ``info --json`` lists); a NaN value
        (a NaN loss) is None (:func:`stores.format.json_number`)."""
        return {**asdict(self), "value": json_number(self.value)}


@dataclass(frozen=True, slots=True)
class AlertRules:
    """Thresholds of every rule (defaults documented in ``docs/metrics.md``)."""

    enabled: tuple[str, ...] = RULE_NAMES
    #: checkpoints seen before collapse / label_drift / probe_drift may fire
    warmup: int = 2
    # collapse: diversity fell by more than max_drop below min(best so far, real's value),
    # or (partial collapse, which Vendi underrates) the share of samples with a near-duplicate
    # among the step's samples rose more than duplicate_rise above its lowest so far (real
    # data: ~1%; trained healthy runs: <= 11%; an untrained generator's blobs: up to 100%)
    collapse_metrics: tuple[str, ...] = ("vendi", "pairwise_cosine")
    collapse_max_drop: float = 0.5
    # ... and, where the row has the metric's real spread at the step's size (real_<metric>_sd), to
    # below the real's value by more than collapse_noise_z of it: the pairwise cosine distance of 2
    # fresh samples fell more than half below the real's at 10% of steps (two of one digit)
    collapse_noise_z: float = 4.0
    # without a real reference, the best so far counts only values that rose more than
    # built_rise above an earlier one, that the next held_steps checkpoints kept within
    # held_within, or that the run settled at (see _built_or_held): an untrained diffusion
    # model's noise is more diverse than the data, and its fall to the data's level is no collapse
    collapse_built_rise: float = 0.25
    collapse_held_within: float = 0.1
    collapse_held_steps: int = 2
    collapse_duplicate_rise: float = 0.25
    # ... at two checkpoints running for steps of fewer samples than this
    collapse_duplicate_hold_below: int = 32
    # or (mode dropping without labels) the step's shares of the real data's regions are off
    # by more than chance (engine.metrics.per_step.REGION_NOISE_Z), at the previous realistic step too,
    # and their total variation rose more than region_tv_rise above its lowest so far
    collapse_region_tv_rise: float = 0.1
    # memorisation: near-copy fraction above max(min_frac, q + z * binomial sd) or the
    # median log(d_train / d_holdout) over distinct neighbourhoods below copy_log_ratio_max,
    # significantly (sign test over those neighbourhoods, p < copy_log_ratio_alpha): a
    # collapsed generator's few neighbourhoods are too few evidence of copying
    near_copy_min_frac: float = 0.15
    near_copy_z: float = 4.0
    copy_log_ratio_max: float = -0.2
    copy_log_ratio_alpha: float = 0.01
    # ... at the previous checkpoint whose test could pass (_sign_testable) too, unless p <
    # copy_log_ratio_alone_alpha: one test per checkpoint at alpha, a healthy run of 100
    # checkpoints of 8 fresh samples beside 20 held-out images alerted in 4 of 40 runs (1 of 40
    # at 32 samples); two running, in none
    # (benchmarks/memorisation_null.py)
    copy_log_ratio_alone_alpha: float = 1e-4
    # fd_rising: FD rose at each of the last k transitions by > min_step_rise (relative)
    # and over the k transitions by > max(min_total_rise x FD, noise_z x a robust sd of
    # FD's checkpoint-to-checkpoint noise estimated from at least noise_steps earlier
    # checkpoints; before those, by > early_total_rise: a healthy run's FD on 64 samples rose
    # +25% by chance at its sixth checkpoint, early divergences +100% and more)
    fd_rising_k: int = 3
    fd_min_step_rise: float = 0.0
    fd_min_total_rise: float = 0.2
    fd_noise_z: float = 4.0
    fd_noise_steps: int = 5
    fd_early_total_rise: float = 0.5
    # ... or FD jumped and held: each of the last jump_hold checkpoints' FD above the lowest
    # median of 3 running among the FD_JUMP_LOOKBACK before them by > max(jump_rise x that
    # level, noise_z x sd) (round AH: a run
    # broken from one checkpoint to the next, precision 0.92 -> 0.02 and FD 0.04 -> 0.29
    # then flat, rose once, and nothing fired; round AI: one whose FD rose +77%, precision
    # 0.7 -> 0, stayed under a bar of +100%)
    fd_jump_rise: float = 0.5
    fd_jump_hold: int = 2
    # both compare checkpoints whose sizes are within fd_size_ratio of each other: FD's
    # upward bias grows as 1/n (a healthy run halved from 32 to 16 samples per checkpoint
    # read as a jump of +60%, held; within 2x, 64 -> 32 -> 16 fired on 6 of 6 seeds); at
    # 1.25x a run diverging 14x while its sizes took turns, 64 and 48, was never judged
    fd_size_ratio: float = 1.5
    # label_drift / probe_drift are evaluated only once samples are realistic (precision
    # >= drift_min_precision; shares of off-manifold samples mean little)
    drift_min_precision: float = 0.25
    # label_drift: TV distance to the reference shares above max(tv_max, the TV that chance
    # exceeds as rarely as z standard deviations of a normal)
    label_tv_max: float = 0.2
    label_noise_z: float = 4.0
    # probe_drift: |share - reference share| above max(diff_max, z * the sd of their gap), z as
    # label_drift's (round AQ: at z = 3, 4-7% of healthy 20-step runs alerted, whatever the
    # reference's size; benchmarks/probe_drift.py)
    probe_max_diff: float = 0.15
    probe_noise_z: float = 4.0
    # convergence: non-finite loss, or discriminator loss below d_loss_floor while the
    # generator loss rose to g_loss_rise x its earlier median
    d_loss_floor: float = 0.05
    g_loss_rise: float = 2.0
    loss_recent_frac: float = 0.1
    loss_recent_min: int = 5
    d_loss_names: tuple[str, ...] = ()
    g_loss_names: tuple[str, ...] = ()
    # convergence from the samples (no losses needed): over the last stall_checkpoints
    # checkpoints no step's precision reached stall_max_precision and FD's median over the
    # window's second half is not stall_min_fd_gain below its first half's
    stall_checkpoints: int = 8
    stall_max_precision: float = 0.05
    stall_min_fd_gain: float = 0.1

    def __post_init__(self) -> None:
        unknown = set(self.enabled) - set(RULE_NAMES)
        if unknown:
            raise ValueError(f"Expected rule names among {RULE_NAMES}. Got {sorted(unknown)} instead.")
        if self.fd_rising_k < 1:
            raise ValueError(f"Expected fd_rising_k >= 1. Got {self.fd_rising_k} instead.")
        if not self.fd_size_ratio >= 1:
            raise ValueError(f"Expected fd_size_ratio >= 1. Got {self.fd_size_ratio} instead.")
        if self.stall_checkpoints < 2:
            raise ValueError(f"Expected stall_checkpoints >= 2. Got {self.stall_checkpoints} instead.")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "AlertRules":
        """Build from a plain dict (e.g. parsed from JSON/CLI), refusing unknown keys."""
        known = set(cls.__dataclass_fields__)
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"Expected alert settings among {sorted(known)}. Got {sorted(unknown)} instead.")
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**kw)


DEFAULT_RULES = AlertRules()


Losses = Mapping[str, tuple[Sequence[float], Sequence[float]]]
