"""Do blockwise-trained blocks form interfaces? The verdict over stitching rows (`experiments.stitching`).

A stitching row pair says, for runs A (run, regime) and B (run2, regime2) at boundary k (block), how much worse
B's top decoder reconstructs (`stitch_loss` - `stitch_loss_own`) and how much worse the final-block probe reads
(`stitch_probe_own` - `stitch_probe`, in percentage points) when A's first k stages replace B's. Ordered pairs of
runs of one regime (seeds) give the penalty stitching costs anyway; pairs across regimes are compared with it.

The rule, per boundary k and per cross-regime pair type (regime A -> regime B, A != B):
  excess = mean probe penalty of its pairs - mean probe penalty of the seed pairs of regimes A and B together,
  with a 95% Welch t-interval over the two groups of pairs (approximate: pairs that share a run are not
  independent).
  * differ:       excess > 2 pp and the interval above 0, for some pair type at k;
  * same:         for every pair type at k the interval lies below 2 pp (a cross-regime penalty below the
                  seeds' counts as same);
  * inconclusive: otherwise: an interval that straddles, fewer than two pairs on a side (a regime with fewer
                  than two runs has no seed pair), no cross-regime pair, or no probe (unlabelled data).
Over all boundaries: differ if some boundary differs, same if every boundary is same, else inconclusive.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from ..analysis.rows import STITCH_METRICS, Pair, pairs_of
from ..eval.stats import t_quantile
from ..regimes import display_name

MARGIN_PP = 2.0
RULE = ("interfaces differ if the cross-regime probe penalty (own minus stitched, pp) exceeds the same-regime "
        f"seed-pair penalty by more than {MARGIN_PP:g} pp, its 95% Welch interval above 0, at some boundary; same "
        f"if the interval of that excess lies below {MARGIN_PP:g} pp everywhere; else inconclusive (also with "
        "fewer than two runs of a regime)")


@dataclass
class PairType:
    """Every pair of one (regime A -> regime B) at one boundary."""
    regime: str
    regime2: str
    pairs: list[Pair]
    baseline_pp: float | None = None  # the seed pairs' mean probe penalty (cross-regime types only)
    interval_pp: tuple[float, float] | None = None  # 95% Welch interval of the excess
    verdict: str = "baseline"  # baseline (seed pairs) | differ | same | inconclusive
    reason: str = ""

    @property
    def cross(self) -> bool:
        return self.regime != self.regime2

    @property
    def loss(self) -> float:
        return mean([p.loss for p in self.pairs])

    @property
    def probe_pp(self) -> float:
        return mean([p.probe_pp for p in self.pairs])

    @property
    def excess_pp(self) -> float | None:
        return None if self.baseline_pp is None else self.probe_pp - self.baseline_pp

    @property
    def label(self) -> str:
        return f"{display_name(self.regime)} -> {display_name(self.regime2)}" + ("" if self.cross else " (seeds)")


@dataclass
class BoundaryVerdict:
    block: int
    verdict: str  # differ | same | inconclusive
    types: list[PairType] = field(default_factory=list)
    reason: str = ""


def mean(values) -> float:
    values = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


def welch_interval(a: list[float], b: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """The interval of mean(a) - mean(b) (Welch's t, unequal variances); (-inf, inf) with fewer than two of
    either, so no verdict rests on a single pair."""
    a, b = (np.asarray([v for v in x if v is not None and np.isfinite(v)], dtype=np.float64) for x in (a, b))
    if a.size < 2 or b.size < 2:
        return float("-inf"), float("inf")
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    diff, se = float(a.mean() - b.mean()), float(np.sqrt(va + vb))
    if se == 0:
        return diff, diff
    dof = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
    half = t_quantile((1 + confidence) / 2, dof) * se
    return diff - half, diff + half


def runs_per_regime(pairs: list[Pair]) -> dict[str, int]:
    runs = defaultdict(set)
    for p in pairs:
        runs[p.regime].add(p.run)
        runs[p.regime2].add(p.run2)
    return {regime: len(names) for regime, names in runs.items()}


def boundary_verdicts(rows: list[dict], margin: float = MARGIN_PP) -> list[BoundaryVerdict]:
    """The verdict at every boundary of these stitching rows (one dataset; see the module docstring)."""
    datasets = {r.get("dataset") for r in rows if r.get("metric") in STITCH_METRICS}
    if len(datasets) > 1:
        raise ValueError(f"stitching verdicts are per dataset: these rows hold {sorted(map(str, datasets))}")
    pairs = pairs_of(rows)
    runs = runs_per_regime(pairs)
    out = []
    for block in sorted({p.block for p in pairs}):
        here = [p for p in pairs if p.block == block]
        grouped: dict[tuple[str, str], list[Pair]] = defaultdict(list)
        for p in here:
            grouped[(p.regime, p.regime2)].append(p)
        types = [PairType(a, b, ps) for (a, b), ps in grouped.items()]
        seeds = {t.regime: [p.probe_pp for p in t.pairs] for t in types if not t.cross}
        for t in types:
            if not t.cross:
                continue
            few = [r for r in (t.regime, t.regime2) if runs.get(r, 0) < 2]
            seed_pp = seeds.get(t.regime, []) + seeds.get(t.regime2, [])
            baseline = mean(seed_pp)
            if few:
                t.verdict, t.reason = "inconclusive", f"fewer than two runs of {', '.join(map(display_name, few))}"
            elif not np.isfinite(t.probe_pp) or not np.isfinite(baseline):
                t.verdict, t.reason = "inconclusive", "no probe (unlabelled data?)"
            else:
                t.baseline_pp = baseline
                t.interval_pp = welch_interval([p.probe_pp for p in t.pairs], seed_pp)
                low, high = t.interval_pp
                if t.excess_pp > margin and low > 0:
                    t.verdict = "differ"
                elif high < margin:
                    t.verdict = "same"
                else:
                    t.verdict = "inconclusive"
                t.reason = f"excess {t.excess_pp:+.1f} pp [{low:+.1f}, {high:+.1f}] vs {margin:g} pp"
        cross = [t for t in types if t.cross]
        if any(t.verdict == "differ" for t in cross):
            verdict, reason = "differ", "; ".join(f"{t.label}: {t.reason}" for t in cross if t.verdict == "differ")
        elif cross and all(t.verdict == "same" for t in cross):
            verdict, reason = "same", f"every cross-regime pair type's excess below {margin:g} pp (95% interval)"
        else:
            verdict = "inconclusive"
            reason = ("; ".join(f"{t.label}: {t.reason}" for t in cross if t.verdict == "inconclusive")
                      or "no cross-regime pair")
        out.append(BoundaryVerdict(block, verdict, types, reason))
    return out


def overall_verdict(verdicts: list[BoundaryVerdict]) -> str:
    if any(v.verdict == "differ" for v in verdicts):
        return "differ"
    if verdicts and all(v.verdict == "same" for v in verdicts):
        return "same"
    return "inconclusive"


def fmt(value: float | None, spec: str = "+.2f") -> str:
    return "-" if value is None or not np.isfinite(value) else format(value, spec)


def interval(bounds: tuple[float, float] | None) -> str:
    return "-" if bounds is None else f"[{fmt(bounds[0], '+.1f')}, {fmt(bounds[1], '+.1f')}]"


def interfaces_markdown(rows: list[dict], *, spec: str = "", steps: int | None = None) -> str:
    """The table of `interfaces.md`: every pair type at every boundary, its penalties and the verdicts."""
    verdicts = boundary_verdicts(rows)
    lines = ["# Interfaces: stitching at block boundaries", ""]
    about = [f"data `{spec}`" if spec else "", f"{steps} stitch steps" if steps is not None else ""]
    if any(about):
        lines += [", ".join(a for a in about if a) + ".", ""]
    lines += [f"Rule: {RULE}.", "",
              "Loss penalty: stitched minus B's own top-decoder loss; probe penalty: B's own minus stitched "
              "final-block probe (pp). Positive = stitching costs. Seed pairs (same regime) are the baseline.", "",
              "| boundary | A -> B | pairs | loss penalty | probe penalty (pp) | seed baseline (pp) | excess (pp) "
              "| 95% interval (pp) | verdict |",
              "|---|---|---|---|---|---|---|---|---|"]
    for v in verdicts:
        for t in sorted(v.types, key=lambda t: (t.cross, t.regime, t.regime2)):
            lines.append(f"| {v.block} | {t.label} | {len(t.pairs)} | {fmt(t.loss, '+.4f')} "
                         f"| {fmt(t.probe_pp, '+.1f')} | {fmt(t.baseline_pp, '+.1f')} | {fmt(t.excess_pp, '+.1f')} "
                         f"| {interval(t.interval_pp)} | {t.verdict} |")
    lines += [""] + [f"- boundary {v.block}: **{v.verdict}** ({v.reason})" for v in verdicts]
    lines += ["", f"**Verdict: {overall_verdict(verdicts)}**"
              + (" (no stitching rows)" if not verdicts else ""), ""]
    return "\n".join(lines)


def stitching_finding(rows: list[dict]) -> dict:
    """Finding 8 (beyond the paper): do blockwise and E2E blocks form different interfaces? The verdict over
    the stitching rows among `rows`, per dataset, then over datasets as over boundaries."""
    by_dataset: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        if r.get("metric") in STITCH_METRICS:
            by_dataset[str(r.get("dataset"))].append(r)
    out, verdicts = {}, []
    for dataset, found in by_dataset.items():
        boundaries = boundary_verdicts(found)
        verdicts.append(BoundaryVerdict(0, overall_verdict(boundaries)))
        out[dataset] = {str(v.block): {"verdict": v.verdict, "reason": v.reason} for v in boundaries}
    key = "; ".join(f"{dataset} boundary {k}: {v['verdict']}" for dataset, by in out.items() for k, v in by.items())
    return {"by_dataset": out, "rule": RULE, "key_numbers": key,
            "verdict": overall_verdict(verdicts) if verdicts else "not measured (no stitching rows)"}
