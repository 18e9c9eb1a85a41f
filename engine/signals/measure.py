"""One step measured: its samples (each checkpoint's once), its metrics, and what they cannot show, said once."""
from __future__ import annotations

import hashlib
import logging

import numpy as np

from engine.alerts import memorisation_blind, probe_drift_reach
from engine.backlog_log import counted
from engine.metrics.diversity import mean_pairwise_cosine_distance, vendi_score
from engine.metrics.per_step import compute_step, metric_key
from engine.metrics.vectors import unit_rows
from stores.format import array_names, listed
from stores.zarr_store import StoreWriter

log = logging.getLogger(__name__)
#: Checkpoints named as holding another's samples before the rest are said in one line.
TWINS_SAID = 3


class _Measure:
    """:class:`~engine.signals.hook.Signals`' measure of a step. Signals gives them ``rules``,
    ``_rows``, ``_reference``, ``_names``, the ``_said_*`` flags, the rows to write
    (``_unwritten``, ``_unwritten_samples``) and the other parts' methods."""

    def _measure(self, store: StoreWriter, step: int, ranges: list[tuple[int, int]], basis: list[int],
                 losses: dict, sources: list[str]) -> None:
        parts = [self._rows.read(store, "embedding", slice(a, b)) for a, b in ranges]  # once: twins, then metrics
        twins = self._twins(step, parts, sources)
        kept = [r for i, r in enumerate(ranges) if twins[i] == i]
        rows = np.concatenate([np.arange(a, b) for a, b in kept])
        vectors = unit_rows(np.concatenate([p for i, p in enumerate(parts) if twins[i] == i]))
        if self._reference is None:
            # No --real: only what needs no reference (diversity) is measured.
            scalars = {"n_generated": float(len(vectors)),
                       "pairwise_cosine": mean_pairwise_cosine_distance(vectors) if len(vectors) > 1 else np.nan,
                       "vendi": vendi_score(vectors) if len(vectors) else np.nan}
            per_sample: dict[str, np.ndarray] = {}
        else:
            labels = self._labels(store, rows)
            if not self._reference.label_names and any(labels) and not self._said_unlabelled_real:
                self._said_unlabelled_real = True  # labelled samples, an unlabelled --real: unsaid before
                log.warning("the samples carry labels but the --real images none: label shares and label_drift are "
                            "not measured; give --real as one folder per label (ImageFolder) or with a labels file")
            self._say_foreign_labels(step, labels)
            margins = self._probe_scores(vectors)
            result = compute_step(vectors, self._reference, labels, margins, label_names=store.labels)
            scalars, per_sample = result.scalars, dict(result.per_sample)
            if margins is not None:  # per-sample margins: the viewer filters on "probe:<prompt>" > 0
                for j, prompt in enumerate(self._probe_names()):
                    per_sample["probe:" + prompt.replace("/", "_")] = margins[:, j]
        offsets = np.cumsum([0] + [b - a for a, b in kept])
        where = {r: (int(offsets[k]), int(offsets[k + 1])) for k, r in enumerate(kept)}
        for name, values in per_sample.items():
            for (start, _), twin in zip(ranges, twins):  # a repeated checkpoint gets its twin's values
                first, last = where[ranges[twin]]
                self._unwritten_samples.setdefault(name, []).append((start, np.asarray(values[first:last], np.float32)))
        keys = array_names(scalars)
        self._note_names(store, keys)
        row = {keys[k]: float(v) for k, v in scalars.items()}
        self._steps_measured(store).put({"step": step, **row})
        if not self._said_blind and memorisation_blind(row, self.rules):
            self._said_blind = True
            log.warning("step %d: memorisation cannot alert at %s a step beside %s held-out images, were every one a "
                        "copy; sample more a step, or hold out more images (--holdout)", step,
                        counted(int(row["n_generated"]), "sample"), f"{row['n_holdout']:,.0f}")
        self._say_probe_reach(step, row)
        self._unwritten.append((step, row, basis))
        self._alerts(store, step, losses)
        self._write_measured(store)  # after the alerts: the alert list written with a row is its step's

    def _say_probe_reach(self, step: int, row: dict[str, float]) -> None:
        """Once for each remedy: probes whose shares are read from so few samples or real images
        that probe_drift could see only a gap past twice its floor, or none (beside 10 real images
        it was blind, unsaid; round AQ). Said once per remedy, not once: a first step of 4 samples
        ("sample more a step") hid the later steps' 64, still short of real images (round AW)."""
        if "probe_drift" not in self.rules.enabled:
            return
        reach = probe_drift_reach(row, self.rules)
        coarse = {key: gap for key, gap in reach.items() if gap > 2 * self.rules.probe_max_diff}
        if not coarse:
            return
        said = [f"'{self._names.get(f'probe_share:{key}', key)}' "
                f"({'never' if gap == float('inf') else f'past {100 * gap:.0f} points'})"
                for key, gap in sorted(coarse.items(), key=lambda kv: -kv[1])]
        # what each remedy alone would leave: the reference's shares as exact (samples short), and
        # ~64 times as many samples as real images (the reference short; beside 10 real images
        # sampling more never saw a drift under 40 points, and was the only advice at 16 a step)
        exact_reference = probe_drift_reach({k: v for k, v in row.items() if k != "n_reference"}, self.rules)
        many_samples = probe_drift_reach({**row, "n_generated": float(min(64 * row["n_reference"], 2 ** 16))},
                                         self.rules) if row.get("n_reference", 0) > 0 else {}
        samples_short, real_short = (any(reach.get(key, 0) > 2 * self.rules.probe_max_diff for key in coarse)
                                     for reach in (exact_reference, many_samples))
        fix = ("sample more a step and give more --real images" if samples_short and real_short
               else "sample more a step" if samples_short else "give more --real images")
        if fix in self._said_probe_reach:
            return
        self._said_probe_reach.add(fix)
        log.warning("step %d: at %s a step beside %s real images probe_drift can see a drift only when it is large: "
                    "%s; %s", step, counted(int(row["n_generated"]), "sample"),
                    f"{row.get('n_reference', float('nan')):,.0f}", listed(said, 3), fix)

    def _say_foreign_labels(self, step: int, labels: list[str | None]) -> None:
        """Once: the samples' labels are none of the reference's (``0, 1, 2`` against ``cat,
        dog, bird``): label_drift then reads a drift of 100% from the first step, and blamed
        the model for two vocabularies (round AQ)."""
        given = sorted({label for label in labels if label is not None})
        if self._said_foreign or not given or not self._reference.label_names or \
                set(given) & set(self._reference.label_names):
            return
        self._said_foreign = True
        log.warning("step %d: none of the samples' labels (%s) is a label of the --real images (%s): label_drift "
                    "compares different names; label both alike (a labels file, or --real's folder names)", step,
                    listed(given, 4), listed(self._reference.label_names, 4))

    def _twins(self, step: int, parts: list[np.ndarray], sources: list[str]) -> list[int]:
        """For each of a step's checkpoints, the first one holding exactly the same samples
        (itself, unless a folder was renamed or copied in the run: stored again under its new
        name, every sample then had an exact duplicate and the step a partial collapse).
        Said once per pair; the step is measured on one copy."""
        seen: dict[bytes, int] = {}
        twins = []
        for i, part in enumerate(parts):
            if not len(part):
                twins.append(i)
                continue
            digest = hashlib.blake2b(np.ascontiguousarray(part).tobytes()).digest()
            twins.append(seen.setdefault(digest, i))
            if twins[-1] != i and (sources[i], sources[twins[-1]]) not in self._said_twins:
                self._said_twins.add((sources[i], sources[twins[-1]]))
                say = log.warning if len(self._said_twins) <= TWINS_SAID else log.debug  # then one line for the rest
                say("step %d: %s holds the same samples as %s (a checkpoint renamed or copied in the run, or a run "
                    "repeated with the same seed?): measured once", step, sources[i], sources[twins[-1]])
                if len(self._said_twins) == TWINS_SAID + 1:
                    log.warning("more checkpoints hold the same samples as another of their step: each measured once "
                                "(-v names them)")
        return twins

    def _note_names(self, store: StoreWriter, keys: dict[str, str]) -> None:
        """The labels and probes as given, by their shares' array names: an alert said
        ``'round_thing'`` of the label ``round thing`` (round AQ), and two labels of one array
        name (``dog (small)``, ``dog [small]``: ``dog_small``, ``dog_small_``) are told apart
        as their arrays were (round AR)."""
        given = {metric_key(prefix, name): name for prefix, names in (("label_share", store.labels),
                                                                     ("probe_share", self._probe_names()))
                 for name in names}
        self._names.update({key: given[metric] for metric, key in keys.items() if metric in given})
