"""What steps are measured against: the reference statistics of --real and --holdout, and the probes."""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence

import numpy as np

from engine.metrics.neighbours import knn_distances
from engine.metrics.per_step import METRICS_VERSION, metric_key
from engine.metrics.probes import encode_probes, parse_probe, probe_scores
from engine.metrics.reference import ReferenceStats
from engine.metrics.vectors import unit_rows
from stores.format import KIND_CODES, array_name
from stores.zarr_store import StoreWriter

log = logging.getLogger(__name__)
#: Fewest samples a reference set (--real, --holdout) must have to be used at all.
MIN_REFERENCE = 8
_NEEDS = {"real": "precision/recall, the Fréchet distance, near-copies and label drift",
          "holdout": "the memorisation signals (near-copies calibrated on held-out data)"}


def _warn_small_references(key: tuple, counts: dict[str, int]) -> None:
    """A reference set given but too small to use turns signals off: say which, and why; and
    --real without --holdout, which leaves memorisation unmeasured (said as --probe without
    --real is: a store of copied training images raised nothing), and --holdout without --real."""
    given = {kind for _, _, code in key for kind in counts if code == KIND_CODES[kind]}
    if "real" in given and "holdout" not in given:
        log.warning("no --holdout: %s are not measured; give a folder of real images never trained on",
                    _NEEDS["holdout"])
    elif "holdout" in given and "real" not in given:  # the held-out set calibrates distances to the training set
        log.warning("--holdout without --real: nothing uses it: %s need the training images too; give --real the "
                    "folder of the training images", _NEEDS["holdout"])
    for kind, n in counts.items():
        sources = [source.removeprefix(kind + ":") for source, _, code in key if code == KIND_CODES[kind]]
        if sources and n < MIN_REFERENCE:
            log.warning("--%s %s: %d readable sample%s, fewer than %d: %s are not measured; give it a folder "
                        "of images (hundreds for stable figures)", kind, ", ".join(sources), n, "" if n == 1 else "s",
                        MIN_REFERENCE, _NEEDS[kind])


def _fresh_holdout(real: np.ndarray, holdout: np.ndarray, sources: str) -> np.ndarray | None:
    """The held-out samples that are not also real (training) ones. A --holdout given the
    --real folder, or sharing images with it, calibrates the near-copy rate on copies: every
    sample then looks as close to training data as a held-out one is, and a run copying its
    training images raised no memorisation alert (near_copy_frac 0). Those are left out, said
    once; too few left turns memorisation off."""
    nearest = knn_distances(holdout, real, 1)[:, 0]
    same = nearest <= 1e-3 * float(np.median(np.linalg.norm(real, axis=1)))
    if not same.any():
        return holdout
    left = int(np.count_nonzero(~same))
    log.warning("--holdout %s: %s of %s held-out samples are also in --real (the same images): a held-out set "
                "must be images never trained on; %s", sources, f"{int(same.sum()):,}", f"{len(holdout):,}",
                f"measured on the other {left:,}" if left >= MIN_REFERENCE else f"{_NEEDS['holdout']} are not measured")
    return holdout[~same] if left >= MIN_REFERENCE else None


def check_probe_names(specs: Sequence[str]) -> None:
    """Raise ``ValueError`` for two probes whose metrics would share an array: they are keyed
    by their prompt, and ``"a woman|a man"`` beside ``"a woman|a child"`` stored the second
    one's shares only, under the first one's name."""
    seen: dict[str, str] = {}
    for spec in specs:
        key = array_name(metric_key("probe_share", parse_probe(spec)[0]))
        if key in seen:
            raise ValueError(f"--probe {spec!r} and --probe {seen[key]!r} would be stored under one name ({key}): "
                             "give each probe its own prompt")
        seen[key] = spec


class _References:
    """:class:`~engine.signals.hook.Signals`' reference statistics, rebuilt when the reference rows
    change, and the probes' scores. Signals gives them ``probes``, ``rules``, ``encoder``, ``_rows``
    and the state ``_reference``, ``_reference_key``, ``_probe_vectors``."""

    def _refresh_reference(self, store: StoreWriter, ckpt: dict, current: np.ndarray) -> str | None:
        """(Re)build the reference statistics when the reference rows changed (in this process:
        at its first call too); returns a digest of what metrics are measured against then
        (reference checkpoints, probes, rules), else None. A restarted watch whose digest is the
        store's keeps its metrics: re-measuring every step announced each rule's onset again."""
        references = np.flatnonzero(current & (ckpt["kind"] != KIND_CODES["generated"]))
        key = tuple(sorted((str(ckpt["source"][i]), str(ckpt["hash"][i]), int(ckpt["kind"][i])) for i in references))
        if key == self._reference_key:
            return None
        self._reference_key = key
        digest = hashlib.blake2b(repr((key, tuple(self.probes), self.rules, METRICS_VERSION)).encode(), digest_size=12).hexdigest()
        kinds = store.samples("kind")
        live = store.current_rows()
        real_rows = np.flatnonzero(live & (kinds == KIND_CODES["real"]))
        holdout_rows = np.flatnonzero(live & (kinds == KIND_CODES["holdout"]))
        _warn_small_references(key, {"real": len(real_rows), "holdout": len(holdout_rows)})
        if len(real_rows) < MIN_REFERENCE:
            self._reference = None
            return digest
        real = unit_rows(store.samples("embedding", real_rows))
        holdout = unit_rows(store.samples("embedding", holdout_rows)) if len(holdout_rows) >= MIN_REFERENCE else None
        if holdout is not None:
            holdout = _fresh_holdout(real, holdout, ", ".join(s.removeprefix("holdout:") for s, _, k in key
                                                              if k == KIND_CODES["holdout"]))
        labels = self._labels(store, real_rows)
        names = sorted({x for x in labels if x is not None}) or None
        real_scores = self._probe_scores(real)
        log.info("reference statistics: %d real, %d held-out samples", len(real_rows), 0 if holdout is None else len(holdout))
        self._reference = ReferenceStats.build(
            real, holdout, labels if names else None, label_names=names,
            probe_names=[p for p in self._probe_names()], real_probe_scores=real_scores)
        return digest

    def _labels(self, store: StoreWriter, rows: np.ndarray) -> list[str | None]:
        names = store.labels
        return [names[c] if c >= 0 else None for c in self._rows.read(store, "label", rows)]

    def _probe_names(self) -> list[str]:
        return list(self._probe_vectors[0]) if self._probe_vectors else []

    def _probe_scores(self, vectors: np.ndarray) -> np.ndarray | None:
        if not self.probes:
            return None
        if self._probe_vectors is None:
            self._probe_vectors = encode_probes(self.encoder, self.probes)
        _, texts, contrasts = self._probe_vectors
        return probe_scores(vectors, texts, contrasts)
