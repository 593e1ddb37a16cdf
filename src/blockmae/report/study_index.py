"""A study's final-model rows, indexed the way the findings' rules read them (`report.findings`)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from ..analysis.rows import datasets_of, is_pair

TRIVIAL = ("zero", "position_mean", "visible_mean")  # learn nothing about the hidden content; the oracle peeks


def paired_by_seed(a: dict, b: dict) -> list[float]:
    """Per-seed differences a - b over the seeds both have ({seed: value} dicts)."""
    return [a[s] - b[s] for s in sorted(set(a) & set(b), key=str)]


class StudyIndex:
    """A study's final-model rows, indexed: block values of trained runs, the random-init encoders' values, held-out
    losses on the pretraining data, and which runs had which K."""

    def __init__(self, rows: list[dict], summaries: dict):
        self.values = defaultdict(dict)  # (regime, K, dataset, metric, target, block) -> {seed: value}
        self.consecutive = defaultdict(dict)  # (metric, regime, K, dataset, block) -> {seed: value to block + 1}
        self.random = defaultdict(dict)  # (dataset, metric, target) -> {seed: value at the random encoder's top}
        self.random_cka = defaultdict(dict)  # dataset -> {seed: CKA between the random encoder's last two blocks}
        self.trivial = defaultdict(list)  # baseline name -> its losses on the pretraining data
        final = [r for r in rows if r.get("step") is None]
        self.K_of_run = {r["run"]: r["K"] for r in final}
        self.pretrain_data = _pretraining_dataset(summaries)
        kept = [r for r in final if r["block"] is not None and r["regime"] != "random"]
        self.datasets = datasets_of(kept)
        self.Ks = sorted({r["K"] for r in kept})
        for r in kept:
            if is_pair(r):
                if r.get("block2") == r["block"] + 1 and r.get("run2") is None:
                    self.consecutive[(r["metric"], r["regime"], r["K"], r["dataset"], r["block"])][r["seed"]] = r["value"]
                continue
            self.values[(r["regime"], r["K"], r["dataset"], r["metric"], r["target"], r["block"])][r["seed"]] = r["value"]
        self._index_random([r for r in final if r["regime"] == "random"])
        for r in final:  # the trivial predictors do not depend on the model: any source's rows will do
            metric = str(r.get("metric"))
            if metric.startswith("recon_loss_") and r.get("dataset") == self.pretrain_data:
                self.trivial[metric[len("recon_loss_"):]].append(r["value"])

    def _index_random(self, rows: list[dict]) -> None:
        top = defaultdict(int)
        for r in rows:
            if r.get("block") is not None:
                top[r["run"]] = max(top[r["run"]], r["block"])
        for r in rows:
            if r.get("block") != top.get(r["run"]) or r.get("layer") is not None:
                continue
            if not is_pair(r):
                self.random[(r["dataset"], r["metric"], r["target"])][r["run"]] = r["value"]
        for r in rows:
            if r["metric"] == "cka_linear" and r.get("run2") is None and r.get("block2") == top.get(r["run"]) \
                    and r["block"] == r["block2"] - 1:
                self.random_cka[r["dataset"]][r["run"]] = r["value"]

    def get(self, regime, K, dataset, metric, block, target="mean") -> dict:
        return self.values.get((regime, K, dataset, metric, target, block), {})

    def has(self, regime, K) -> bool:
        return any(key[0] == regime and key[1] == K for key in self.values)

    def over_datasets(self, regime, K, metric, block, datasets=None) -> dict:
        """{seed: mean over datasets of a block's value} (seeds that have every dataset)."""
        datasets = datasets or self.datasets
        per = [self.get(regime, K, d, metric, block) for d in datasets]
        seeds = set.intersection(*(set(p) for p in per)) if per and all(per) else set()
        return {s: float(np.mean([p[s] for p in per])) for s in seeds}

    def probe_datasets(self, metric) -> list[str]:
        return [d for d in self.datasets if any(k[2] == d and k[3] == metric for k in self.values)]

    def loss(self, regime, K, block) -> dict:
        """{seed: held-out loss of stage `block` on the pretraining data}."""
        return self.get(regime, K, self.pretrain_data, "recon_loss", block)

    def copy_loss(self) -> float | None:
        """The best trivial predictor's held-out loss on the pretraining data (the oracle excluded)."""
        found = [float(np.mean(self.trivial[b])) for b in TRIVIAL if self.trivial.get(b)]
        return min(found) if found else None


def _pretraining_dataset(summaries: dict) -> str | None:
    specs = {str(s.get("held_out", {}).get("data", "")).split(",")[0].split(":")[0] for s in summaries.values()}
    specs.discard("")
    return specs.pop() if len(specs) == 1 else None
