"""The tidy metric rows (`metrics.jsonl`) and the queries the figures, the report, the findings and the demo
ask of them.

A row is one number: which run (run, regime, model, K, seed), on what (dataset, split), where in the encoder
(block or layer, 1-based), what (metric; target: a label column, or "mean" over them), the value, and the
training step it was measured at (None: the final model). Pair metrics add `block2`, `layer2` or `run2`
(the second block, layer or run); `clips_left_out` rows add `files`.

Runs that share (model, regime, K) form a *group*: they differ only by seed, and a group's number is the
mean over its runs with a 95% t-interval (`eval.stats.mean_ci`). The random-init floor is such a group too
(regime "random", one run per seed).

Depth on a common axis: block k of a K-block run ends at fraction k/K of the encoder (the equal partitions the
studies use), so runs with different K are compared at the same depth (`with_depth`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..eval.reconstruction import BASELINES, best_reference
from ..eval.stats import mean_ci, t_quantile
from ..regimes import display_order

ROW_KEYS = ("run", "regime", "model", "K", "seed", "dataset", "split", "block", "layer", "metric", "target", "value",
            "step")
RUN_KEYS = ROW_KEYS[:5]  # what identifies the run a row is about
# a stitching pair's rows (`experiments.stitching`): A in run/regime, B in run2/regime2, the boundary as block
STITCH_METRICS = ("stitch_loss", "stitch_loss_own", "stitch_probe", "stitch_probe_own")


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


def difference_and_half_width(a, b) -> tuple[float, float]:
    """mean(a) - mean(b) over two independent groups of runs, and the half-width of its 95% Welch interval. A group
    of one run adds no spread of its own; the half-width is nan when neither group has two runs."""
    a, b = ([v for v in values if v is not None and math.isfinite(v)] for values in (a, b))
    if not a or not b:
        return math.nan, math.nan
    difference = float(np.mean(a) - np.mean(b))
    spread = [(np.var(v, ddof=1) / len(v), len(v) - 1) for v in (a, b) if len(v) > 1]  # (s^2/n, dof) per group
    if not spread:
        return difference, math.nan
    variance = sum(term for term, _ in spread)
    if variance == 0:
        return difference, 0.0
    dof = variance ** 2 / sum(term ** 2 / d for term, d in spread)  # Welch-Satterthwaite
    return difference, t_quantile(0.975, dof) * math.sqrt(variance)


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


def with_depth(rows: list[dict], pairs: bool = False) -> list[dict]:
    """Block rows with `depth`, where the block ends as a fraction of the encoder: k/K for block k of K (K from the
    row, else the run's highest block); a pair k->k+1 (`pairs`) sits at (k+1)/K, the end of the block that made the
    change. Block K of every run lands on 1.0."""
    blocks = last_block(rows)
    out = []
    for r in rows:
        K = r.get("K") or blocks[r.get("run")] + (1 if pairs else 0)
        out.append({**r, "depth": (r["block"] + (1 if pairs else 0)) / K})
    return out


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


def chance_of(rows: list[dict], dataset: str, target: str = "mean") -> float | None:
    """The majority-class share of `target` on `dataset` (rows `chance_acc`, one per source, all alike); None
    without such rows."""
    values = [r["value"] for r in rows if r.get("metric") == "chance_acc" and r.get("dataset") == dataset
              and r.get("target", "mean") == target and r.get("step") is None]
    return float(np.mean(values)) if values else None


def trivial_losses_of(rows: list[dict], dataset: str) -> dict[str, float]:
    """Baseline key -> its held-out loss on `dataset` (rows `recon_loss_<key>` of final models), the mean over the
    trained runs (over every run when only random encoders have them): the same clips and masks for each."""
    out = {}
    for key in BASELINES:
        values = [(r.get("regime") != "random", r["value"]) for r in rows
                  if r.get("metric") == f"recon_loss_{key}" and r.get("dataset") == dataset
                  and r.get("block") is None and r.get("step") is None]
        trained = [v for is_trained, v in values if is_trained] or [v for _, v in values]
        if trained:
            out[key] = float(np.mean(trained))
    return out


def reference_loss(rows: list[dict], dataset: str) -> float | None:
    """The lower of the position-mean (lookup table) and visible-mean (copy) losses on `dataset`: what a model must
    beat to have learned anything; None without them."""
    best = best_reference(trivial_losses_of(rows, dataset))
    return best[1] if best else None


@dataclass
class Pair:
    """One ordered pair of runs (A -> B) at one boundary."""
    run: str
    run2: str
    regime: str
    regime2: str
    block: int
    loss: float | None  # stitched minus B's own top-decoder loss (positive: stitching costs)
    probe_pp: float | None  # B's own minus stitched final-block probe, in pp (positive: stitching costs)


def pairs_of(rows: list[dict]) -> list[Pair]:
    """The stitching pairs in these rows (one dataset), in order of first appearance."""
    found: dict[tuple, dict] = {}
    for r in rows:
        if r.get("metric") in STITCH_METRICS and r.get("run2") is not None:
            key = (r["run"], r["run2"], r.get("regime"), r.get("regime2"), r.get("block"))
            found.setdefault(key, {})[r["metric"]] = r["value"]
    out = []
    for (run, run2, regime, regime2, block), v in found.items():
        loss = v["stitch_loss"] - v["stitch_loss_own"] if {"stitch_loss", "stitch_loss_own"} <= v.keys() else None
        probe = (100 * (v["stitch_probe_own"] - v["stitch_probe"])
                 if {"stitch_probe", "stitch_probe_own"} <= v.keys() else None)
        out.append(Pair(run, run2, str(regime), str(regime2), int(block), loss, probe))
    return out
