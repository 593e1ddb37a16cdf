"""The tidy metric rows (`metrics.jsonl`) and the queries the figures, the report, the findings and the demo
ask of them.

A row is one number: which run (run, regime, model, K, seed), on what (dataset, split), where in the encoder
(block or layer, 1-based), what (metric; target: a label column, or "mean" over them), the value, and the
training step it was measured at (None: the final model). Pair metrics add `block2`, `layer2` or `run2`
(the second block, layer or run); `clips_left_out` rows add `files`.

Runs that share (model, regime, K) form a *group*: they differ only by seed, and a group's number is the
mean over its runs with a 95% t-interval (`eval.stats.mean_ci`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import NamedTuple

import numpy as np

from ..eval.stats import mean_ci
from ..regimes import display_order

ROW_KEYS = ("run", "regime", "model", "K", "seed", "dataset", "split", "block", "layer", "metric", "target", "value",
            "step")
RUN_KEYS = ROW_KEYS[:5]  # what identifies the run a row is about


def make_row(run: dict, dataset: str, split: str | None, metric: str, value: float, *, block=None, layer=None,
             target: str = "mean", step=None, **extra) -> dict:
    """A row in schema order (`run` holds the RUN_KEYS); `extra` holds block2/layer2/run2/files."""
    return {**run, "dataset": dataset, "split": split, "block": block, "layer": layer, "metric": metric,
            "target": target, "value": float(value), "step": step, **extra}


class Group(NamedTuple):
    """Runs that differ only by seed."""
    model: str
    regime: str
    K: int | None


def group_of(row: dict) -> Group:
    return Group(str(row.get("model")), str(row.get("regime")), row.get("K"))


def group_sort_key(g: Group):
    order = display_order()
    regime = order.index(g.regime) if g.regime in order else len(order)
    return (g.model, regime, g.regime, g.K if g.K is not None else -1)


def mean_and_half_width(values) -> tuple[float, float]:
    """Mean over runs and the half-width of its 95% t-interval (nan for a single run). None and nan values
    (a metric a run could not compute) are left out rather than poisoning the group."""
    mean, _, high = mean_ci([v for v in values if v is not None and math.isfinite(v)])
    return mean, high - mean


def ordered(values) -> list:
    """Unique values in order of first appearance."""
    return list(dict.fromkeys(values))


def datasets_of(rows: list[dict]) -> list[str]:
    return ordered(r.get("dataset") for r in rows)


def targets_of(rows: list[dict]) -> list[str]:
    """'mean' first, then the label targets in order of first appearance."""
    names = ordered(r.get("target", "mean") for r in rows)
    return (["mean"] if "mean" in names else []) + [t for t in names if t != "mean"]


def is_pair(row: dict) -> bool:
    """A row about two blocks, layers or runs (CKA between them)."""
    return row.get("block2") is not None or row.get("layer2") is not None or row.get("run2") is not None


def final_rows(rows: list[dict]) -> list[dict]:
    """Rows about final models (step unset), one named split per dataset ('test' when there are several;
    rows without a split, such as cross-run CKA, are always kept)."""
    rows = [r for r in rows if r.get("step") is None]
    splits = defaultdict(set)
    for r in rows:
        if r.get("split") is not None:
            splits[r.get("dataset")].add(r["split"])
    keep = {d: ("test" if "test" in s else sorted(s)[0]) for d, s in splits.items() if len(s) > 1}
    return [r for r in rows if r.get("dataset") not in keep or r.get("split") in (None, keep[r.get("dataset")])]


def select(rows: list[dict], metric: str, unit: str = "block", *, dataset=None, target="mean",
           pairs: bool = False) -> list[dict]:
    """Rows of one metric indexed by `unit` ('block' or 'layer'); `pairs` keeps only cross-unit rows."""
    other = "layer" if unit == "block" else "block"
    return [r for r in rows if r.get("metric") == metric and r.get(unit) is not None and r.get(other) is None
            and (dataset is None or r.get("dataset") == dataset) and (target is None or r.get("target") == target)
            and is_pair(r) == pairs]


def consecutive_pairs(rows: list[dict], metric: str, dataset: str) -> list[dict]:
    """Rows of a pair metric (CKA, mutual kNN) between blocks k and k+1 of one run."""
    return [r for r in select(rows, metric, "block", dataset=dataset, pairs=True)
            if r.get("run2") is None and r.get("block2") == r["block"] + 1]


def last_block(rows: list[dict]) -> dict[str, int]:
    """run -> the highest block among these rows (runs in order of first appearance)."""
    last = defaultdict(int)
    for r in rows:
        if r.get("block") is not None:
            last[r.get("run")] = max(last[r.get("run")], r["block"])
    return dict(last)


def series(rows: list[dict], x_key: str = "block") -> dict[Group, dict[int, list[float]]]:
    """group -> x -> one value per run (a run's duplicate rows are averaged first)."""
    per_run = defaultdict(list)
    for r in rows:
        per_run[(group_of(r), r[x_key], r.get("run"))].append(r["value"])
    out: dict[Group, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for (g, x, _), vals in per_run.items():
        out[g][x].append(float(np.mean(vals)))
    return out


def final_block_values(rows: list[dict], metric: str, dataset: str, target: str = "mean") -> dict[Group, list[float]]:
    """group -> the metric at each run's last block (one value per run)."""
    sel = select(rows, metric, "block", dataset=dataset, target=target)
    last = last_block(sel)
    per_run = defaultdict(list)
    for r in sel:
        if r["block"] == last[r.get("run")]:
            per_run[(group_of(r), r.get("run"))].append(r["value"])
    out = defaultdict(list)
    for (g, _), vals in per_run.items():
        out[g].append(float(np.mean(vals)))
    return dict(out)


def last_pair_values(rows: list[dict], metric: str, dataset: str) -> dict[Group, list[float]]:
    """group -> a pair metric between each run's last two blocks (one value per run)."""
    sel = consecutive_pairs(rows, metric, dataset)
    last = {run: block + 1 for run, block in last_block(sel).items()}  # the pair (K-1, K) ends at block K
    out = defaultdict(list)
    for r in sel:
        if r["block2"] == last[r.get("run")]:
            out[group_of(r)].append(r["value"])
    return dict(out)


def run_values(rows: list[dict], metric: str, dataset: str) -> dict[Group, list[float]]:
    """group -> one value per run of a metric that is not about a block (the trivial predictors' losses)."""
    per_run = {}
    for r in rows:
        if r.get("metric") == metric and r.get("dataset") == dataset and r.get("block") is None:
            per_run[(group_of(r), r.get("run"))] = r["value"]
    out = defaultdict(list)
    for (g, _), v in per_run.items():
        out[g].append(v)
    return out


def lookup_losses(rows: list[dict], dataset: str) -> list[float]:
    """Each trained run's loss of predicting each position's mean target on `dataset` (the lookup table)."""
    return [r["value"] for r in rows if r.get("metric") == "recon_loss_position_mean"
            and r.get("dataset") == dataset and r.get("regime") != "random"]
