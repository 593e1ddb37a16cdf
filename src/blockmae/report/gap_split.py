"""Where a blockwise run's gap to E2E lives: the verdict over frozen-base continuation rows
(`experiments.continuation`).

Per blockwise regime R, over seeds (paired with E2E's by seed):
  gap      = E2E's final-block probe - R's, both as trained (`continue_start_probe`), in pp, with its 95% t-interval;
  share(k) = (R continued with stages 1..k frozen - R as trained) / gap, on the seed means.
The rule:
  * no gap:          the gap is below 2 pp or its interval reaches 0: nothing to split;
  * budget too short: share(0) < 1/2: even retraining the whole encoder end to end does not close half of the
                     gap in the budget, so freezing cannot say where it lives;
  * extra steps:     share(K-1) >= 1/2: training the top stage alone on its own loss (what blockwise training
                     already did) closes half of it: the blockwise run was short of steps, not of credit
                     assignment;
  * lower blocks:    share(1) < 1/2: with only stage 1 fixed, end-to-end training of everything above it leaves
                     more than half of the gap: what the lowest stage hands up limits;
  * upper blocks:    otherwise: the stages above the largest k with share(k) >= 1/2 fail to learn what end-to-end
                     credit assignment gives them, and stages 1..k hand up enough.
The finding's verdict is simultaneous's if it was continued, else the first blockwise regime's.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from ..eval.stats import mean_ci
from ..regimes import DEFAULT, REFERENCE, REGIMES, display_name

MARGIN_PP = 2.0
HALF = 0.5
RULE = (f"gap = E2E minus the blockwise run's final-block probe (paired by seed, 95% t-interval); share(k) = the "
        f"part of it that continuing with stages 1..k frozen closes; no gap if below {MARGIN_PP:g} pp or its "
        f"interval reaches 0; budget too short if share(0) < {HALF}; extra steps if share(K-1) >= {HALF}; lower "
        f"blocks if share(1) < {HALF}; else upper blocks, above the largest k with share(k) >= {HALF}")


def by_seed(rows: list[dict], metric: str) -> dict:
    """(regime, block) -> {seed: value} for one metric."""
    out: dict[tuple, dict] = defaultdict(dict)
    for r in rows:
        if r.get("metric") == metric:
            out[(r["regime"], r.get("block"))][r.get("seed")] = r["value"]
    return out


def split_regime(regime: str, start: dict, continued: dict[int, dict], e2e: dict) -> dict:
    """The numbers and verdict for one blockwise regime (`start`, `e2e`: {seed: probe}; `continued`: k -> those)."""
    seeds = sorted(set(start) & set(e2e), key=str)
    gaps = [100 * (e2e[s] - start[s]) for s in seeds]
    gap, low, high = mean_ci(gaps)
    base = float(np.mean(list(start.values())))
    shares = {k: (100 * (float(np.mean(list(v.values()))) - base)) / gap if gap else float("nan")
              for k, v in sorted(continued.items())}
    gains = {k: mean_ci([100 * (v[s] - start[s]) for s in v if s in start]) for k, v in sorted(continued.items())}
    out = {"label": display_name(regime), "gap_pp": {"mean": gap, "low": low, "high": high, "n": len(gaps)},
           "share": shares, "gain_pp": {k: {"mean": m, "low": lo, "high": hi} for k, (m, lo, hi) in gains.items()}}
    top = max(continued, default=None)
    if not gaps or not np.isfinite(gap) or gap < MARGIN_PP or not np.isfinite(low) or low <= 0:
        out["verdict"] = "no gap"
    elif 0 in shares and shares[0] < HALF:
        out["verdict"] = "budget too short"
    elif top is not None and top > 0 and shares[top] >= HALF:
        out["verdict"] = "extra steps"
    elif 1 in shares and shares[1] < HALF:
        out["verdict"] = "lower blocks"
    elif any(v >= HALF for v in shares.values()):
        out["verdict"] = f"upper blocks (above stage {max(k for k, v in shares.items() if v >= HALF)})"
    else:
        out["verdict"] = "inconclusive"
    return out


def gap_split_finding(rows: list[dict]) -> dict:
    """Finding 9 (beyond the paper): where the blockwise gap lives, from the continuation rows among `rows`
    (one dataset: the first that has them)."""
    rows = [r for r in rows if str(r.get("metric", "")).startswith("continue")]
    datasets = list(dict.fromkeys(r.get("dataset") for r in rows))
    if not datasets:
        return {"by_regime": {}, "rule": RULE, "verdict": "not measured (no continuation rows)", "key_numbers": ""}
    rows = [r for r in rows if r.get("dataset") == datasets[0]]
    start, continued = by_seed(rows, "continue_start_probe"), by_seed(rows, "continued_probe")
    e2e = start.get((REFERENCE, None), {})
    out = {}
    for regime in dict.fromkeys(r for r, _ in continued):
        if regime in REGIMES and REGIMES[regime].blockwise:
            ks = {k: v for (r, k), v in continued.items() if r == regime}
            out[regime] = split_regime(regime, start.get((regime, None), {}), ks, e2e)
    if not e2e:
        verdict = "inconclusive (no E2E run to measure the gap against)"
    elif not out:
        verdict = "not measured (no continued blockwise run)"
    else:
        verdict = out.get(DEFAULT, next(iter(out.values())))["verdict"]
    key = "; ".join(f"{v['label']}: gap {v['gap_pp']['mean']:+.1f} [{v['gap_pp']['low']:+.1f}, "
                    f"{v['gap_pp']['high']:+.1f}] pp, gain with 1..k frozen "
                    + ", ".join(f"k={k} {g['mean']:+.1f}" for k, g in v["gain_pp"].items()) + " pp"
                    for v in out.values())
    return {"dataset": datasets[0], "by_regime": out, "rule": RULE, "verdict": verdict, "key_numbers": key}


def continuation_markdown(rows: list[dict]) -> str:
    """The continuation section of `interfaces.md`: per blockwise regime, the gap and what each k closes."""
    finding = gap_split_finding(rows)
    lines = ["# Where the gap lives: frozen-base continuation", "", f"Rule: {RULE}.", ""]
    if not finding["by_regime"]:
        return "\n".join(lines + [f"**Verdict: {finding['verdict']}**", ""])
    lines += [f"Data `{finding['dataset']}`. Gain: the continued run's final-block probe minus the run's own, "
              "mean [95% t-interval] over seeds; share: of the E2E-minus-blockwise gap.", "",
              "| regime | gap to E2E (pp) | stages frozen (k) | gain (pp) | share of the gap | verdict |",
              "|---|---|---|---|---|---|"]
    for v in finding["by_regime"].values():
        gap = v["gap_pp"]
        for k, gain in v["gain_pp"].items():
            share = "-" if v["verdict"] == "no gap" else f"{v['share'][k]:+.0%}"  # a share of no gap means nothing
            lines.append(f"| {v['label']} | {gap['mean']:+.1f} [{gap['low']:+.1f}, {gap['high']:+.1f}] | {k} "
                         f"| {gain['mean']:+.1f} [{gain['low']:+.1f}, {gain['high']:+.1f}] | {share} "
                         f"| {v['verdict']} |")
    return "\n".join(lines + ["", f"**Verdict: {finding['verdict']}**", ""])
