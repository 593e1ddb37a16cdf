"""Linear-probe accuracies of every block and layer of a feature set, memoised so that the occlusion rows and
the block view reuse the probes already fitted. Which clips fit and which score a probe is
`eval.protocols`; the probe itself is `eval.probe`."""

from __future__ import annotations

import os
from collections import defaultdict

import numpy as np
from joblib import Parallel, delayed

from ..eval import probe_folds, probe_targets, torch_linear_probe
from ..eval.features import Features


class Probes:
    """backend: "sklearn" (the authors' protocol, units spread over the CPU cores) or "torch" (every unit in one
    batched L-BFGS, GPU when present). `layers`: probe every layer (a block shares its last layer's probe),
    else every block only."""

    def __init__(self, backend: str = "sklearn", layers: bool = True):
        self.backend, self.layers = backend, layers
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
            self.memo[key] = (probe_targets(x(train), train.labels, test.target_names, test_x=x(test),
                                            test_y=test.labels)
                              if train is not None else probe_targets(x(test), test.labels, test.target_names))
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
            if train is not None:
                return probe_targets(train_units[unit], train.labels, test.target_names,
                                     test_x=units[unit], test_y=test.labels)
            return probe_targets(units[unit], test.labels, test.target_names)

        results = Parallel(n_jobs=min(len(units), os.cpu_count() or 1), prefer="processes")(
            delayed(one)(unit) for unit in units)
        for (kind, index), accs in zip(units, results):
            self.memo[self._key(test, train, kind, index)] = accs

    def _torch(self, test: Features, train: Features | None, partition) -> None:
        """One batched L-BFGS per target (and fold), same objective as scikit-learn."""
        def units(f: Features, rows=slice(None)):
            return self._units(f, partition, rows)

        folds = probe_folds(test.labels[:, 0]) if train is None else []
        accs: dict[tuple, list[float]] = defaultdict(list)
        for t in range(test.labels.shape[1]):
            if train is not None:
                result = torch_linear_probe(units(train), train.labels[:, t], units(test), test.labels[:, t])
            else:
                per_fold = [torch_linear_probe(units(test, tr), test.labels[tr, t], units(test, te), test.labels[te, t])
                            for tr, te in folds]
                result = {unit: float(np.mean([r[unit] for r in per_fold])) for unit in per_fold[0]}
            for unit, acc in result.items():
                accs[unit].append(acc)
        for (kind, index), values in accs.items():
            accs_by_target = dict(zip(test.target_names, values)) | {"mean": float(np.mean(values))}
            self.memo[self._key(test, train, kind, index)] = accs_by_target
