"""Per-checkpoint metrics: pure functions on arrays of L2-normalised encoder vectors.

Layering follows clean-fid (``cleanfid/fid.py``): the mathematics lives in small pure
functions on feature arrays (``frechet_distance``, ``vendi_score``, ``prdc`` ...); the
real reference is summarised ONCE in a :class:`ReferenceStats` (kNN radii, mean and
covariance, nearest-neighbour indexes, the real's own diversity, label and probe shares,
the calibrated near-copy threshold); :func:`compute_step` / :func:`step_metrics` then
need only the new checkpoint's vectors and that summary, never the run's history.

Distances are Euclidean on the L2-normalised vectors (``||a - b||^2 = 2 - 2 cos``), the
convention of the ``prdc`` package, so values agree with it. Formulas and citations are
in ``docs/metrics.md``.

Modules, each importing only those listed before it
---------------------------------------------------
``vectors``     encoder vectors checked and made unit length (:func:`unit_rows`)
``neighbours``  exact distances and nearest neighbours (:func:`knn`)
``diversity``   mean pairwise cosine distance, Vendi score
``frechet``     Frechet distance to the reference's mean and covariance
``prdc``        precision, recall, density, coverage
``copying``     data-copying statistics (Z_U, the neighbourhoods' log ratio, order statistics)
``probes``      zero-shot attribute probes
``shares``      label shares, total variation and its chance level
``reference``   :class:`ReferenceStats`
``per_step``    :func:`compute_step`, :func:`step_metrics` and ``METRICS_VERSION``

The names docs/metrics.md imports from ``engine.metrics`` are re-exported here.
"""
from engine.metrics.per_step import StepResult, compute_step, step_metrics
from engine.metrics.reference import ReferenceStats
from engine.metrics.vectors import unit_rows

__all__ = ["ReferenceStats", "StepResult", "compute_step", "step_metrics", "unit_rows"]
