"""Linear-probe accuracies of every block and layer of a feature set, memoised so that the occlusion rows and
the block view reuse the probes already fitted, and the attentive probe's on the kept token sets. Which clips
fit and which score a probe is `eval.protocols`; the probes themselves are `eval.probe` and `eval.attentive`."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from ..devices import usable_cpus
from ..eval import probe_folds, probe_unit, torch_linear_probe
from ..eval.attentive import attentive_probe
from ..eval.features import Features


def per_target(fit, test: Features, train: Features | None, units,
               tick=lambda: None) -> dict[tuple[str, int], dict[str, float]]:
    """{unit: {target: accuracy, "mean": ...}} from `fit(train_units, train_y, test_units, test_y) -> {unit: acc}`
    run once per target: fitted on `train` and scored on `test`, or averaged over the probe folds of single-set
    data (`eval.probe_folds`, stratified on the first target, grouped by `test.groups` when known).
    `units(features, rows)` -> {unit: array}. `tick()` after every target (a bar)."""
    folds = probe_folds(test.labels[:, 0], groups=test.groups) if train is None else []
    accs: dict[tuple, list[float]] = defaultdict(list)
    for t in range(test.labels.shape[1]):
        if train is not None:
            result = fit(units(train), train.labels[:, t], units(test), test.labels[:, t])
        else:
            per_fold = [fit(units(test, tr), test.labels[tr, t], units(test, te), test.labels[te, t])
                        for tr, te in folds]
            result = {unit: float(np.mean([r[unit] for r in per_fold])) for unit in per_fold[0]}
        for unit, acc in result.items():
            accs[unit].append(acc)
        tick()
    return {unit: dict(zip(test.target_names, values)) | {"mean": float(np.mean(values))}
            for unit, values in accs.items()}


class Probes:
    """backend: "sklearn" (the authors' protocol, units spread over `jobs` processes, default every core) or "torch"
    (every unit in one batched L-BFGS, GPU when present). `layers`: probe every layer (a block shares its last
    layer's probe), else every block only."""

    def __init__(self, backend: str = "sklearn", layers: bool = True, jobs: int | None = None,
                 progress: bool = False):
        self.backend, self.layers, self.progress = backend, layers, progress
        self.jobs = jobs or usable_cpus()  # sklearn probes fitted at once
        self.memo: dict[tuple, dict[str, float]] = {}  # (test key, train key, kind, index) -> accuracies

    def accuracies(self, test: Features, train: Features | None, kind: str, index: int, partition,
                   all_units: bool = True) -> dict[str, float]:
        """{target: accuracy, "mean": ...} of block or layer `index`: fitted on `train` and scored on `test` when
        there is a train split, else cross-validated on `test`.

        The first request probes every unit of these features in one go; later ones read the memo. With
        `all_units=False` (one checkpoint's final block) only the unit asked for is probed.
        """
        key = self._key(test, train, kind, index)
        if key not in self.memo and not all_units:
            x = (lambda f: f.blocks(partition)[index - 1]) if kind == "block" else (lambda f: f.layers[index - 1])
            self.memo[key] = probe_unit(test, train, x)
        if key not in self.memo:
            (self._torch if self.backend == "torch" else self._sklearn)(test, train, partition)
            if self.layers:  # a block's features are its last layer's: share the probe
                for k, end in enumerate(np.cumsum(partition), 1):
                    self.memo[key[:2] + ("block", k)] = self.memo[key[:2] + ("layer", int(end))]
        return self.memo[key]

    @staticmethod
    def _key(test: Features, train: Features | None, kind: str, index: int) -> tuple:
        return (test.key, train.key if train is not None else None, kind, index)

    def _units(self, f: Features, partition, rows=slice(None)) -> dict[tuple[str, int], np.ndarray]:
        if self.layers:
            return {("layer", i): x[rows] for i, x in enumerate(f.layers, 1)}
        return {("block", k): x[rows] for k, x in enumerate(f.blocks(partition), 1)}

    def _sklearn(self, test: Features, train: Features | None, partition) -> None:
        units = self._units(test, partition)
        train_units = self._units(train, partition) if train is not None else {}

        def one(unit):
            return probe_unit(test, train, lambda f: (units if f is test else train_units)[unit])

        results = Parallel(n_jobs=min(len(units), self.jobs), prefer="processes", return_as="generator")(
            delayed(one)(unit) for unit in units)
        with self._bar("linear probes", len(units), "unit") as bar:
            for (kind, index), accs in zip(units, results):
                self.memo[self._key(test, train, kind, index)] = accs
                bar.update()

    def _bar(self, desc: str, total: int, unit: str):
        return tqdm(total=total, desc=desc, unit=unit, disable=not self.progress, dynamic_ncols=True, leave=False)

    def _torch(self, test: Features, train: Features | None, partition) -> None:
        """One batched L-BFGS per target (and fold), same objective as scikit-learn."""
        def units(f: Features, rows=slice(None)):
            return self._units(f, partition, rows)

        with self._bar("linear probes", test.labels.shape[1], "target") as bar:
            results = per_target(torch_linear_probe, test, train, units, bar.update)
        for (kind, index), accs in results.items():
            self.memo[self._key(test, train, kind, index)] = accs

    def attentive(self, test: Features, train: Features | None, partition, device=None) -> dict[tuple[str, int], dict]:
        """{(kind, index): {target: accuracy, "mean": ...}} of the attentive probe (`eval.attentive`) on the kept
        token sets (`Features.tokens`): every block, and every layer when layer probes are on (a block then shares
        its last layer's probe). Every unit of a target trains in one batch; same splits as the linear probe."""
        ends = [int(e) for e in np.cumsum(partition)]

        def units(f: Features, rows=slice(None)):
            if self.layers:
                return {("layer", i): f.tokens[i][rows] for i in range(1, ends[-1] + 1)}
            return {("block", k): f.tokens[e][rows] for k, e in enumerate(ends, 1)}

        needed = range(1, ends[-1] + 1) if self.layers else ends
        kept = set(test.tokens) & set((train if train is not None else test).tokens)
        missing = sorted(set(needed) - kept)
        if missing:
            raise ValueError(f"the attentive probe needs the token sets of layers {missing}: extract the features "
                             "with tokens=True")
        with self._bar("attentive probes", test.labels.shape[1], "target") as bar:
            results = per_target(lambda *data: attentive_probe(*data, device=device), test, train, units, bar.update)
        blocks = {("block", k): results[("layer", e)] for k, e in enumerate(ends, 1)} if self.layers else {}
        return blocks | results
