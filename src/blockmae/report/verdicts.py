"""The statistics every finding's rule is built from, so that each rule can fail both ways.

A finding's verdict is one of four outcomes:
  * reproduced:     the data show the claim, with intervals clear of zero (or inside an equivalence margin);
  * not reproduced: the data show the opposite, or an equivalence where the claim needs a difference;
  * inconclusive:   the intervals allow either;
  * not measured:   the data the rule compares are absent (a study without the regimes or K it needs).

A *difference* is a list of per-seed values (paired by seed where both sides have the seed, else Welch). It is
classified as "above" or "below" zero when its two-sided t-test rejects zero, as "equivalent" when two one-sided
tests (TOST) put it inside (-margin, +margin), else "unclear". Where a rule scans several cells (regime x K x
dataset), the p-values of one family are Holm-corrected over its cells before classifying, and a count of cells
counts only the cells so classified.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..eval.stats import mean_ci

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_MEASURED = "reproduced", "not reproduced", "inconclusive", "not measured"
OUTCOMES = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_MEASURED)
ALPHA = 0.05
CORRECTION = "Holm over the cells of each comparison"
RHO_MARGIN = 0.3  # a rank correlation inside +-this is 'no relation'


def _t_sf(t: float, dof: float) -> float:
    from scipy import stats  # imported here: training imports eval and should not load scipy

    return float(stats.t.sf(t, dof))


def one_sided(mean: float, se: float, dof: float, shift: float = 0.0) -> tuple[float, float]:
    """(p of H1: mean > shift, p of H1: mean < shift); a zero spread decides by the sign alone."""
    if dof < 1 or not math.isfinite(se):
        return 1.0, 1.0
    if se == 0:
        return (0.0 if mean > shift else 1.0), (0.0 if mean < shift else 1.0)
    t = (mean - shift) / se
    return _t_sf(t, dof), _t_sf(-t, dof)


@dataclass
class Difference:
    """A difference over seeds with its 95% t-interval and the p-values its classification uses."""
    mean: float
    low: float
    high: float
    n: int
    p_differs: float  # two-sided: the mean is not 0
    p_equivalent: float  # TOST: the mean is inside (-margin, +margin)
    margin: float
    values: list[float]
    kind: str = "unclear"  # above | below | equivalent | unclear (after `classify`)

    def as_dict(self) -> dict:
        return {"mean": self.mean, "low": self.low, "high": self.high, "n": self.n, "values": self.values,
                "p_differs": self.p_differs, "p_equivalent": self.p_equivalent, "margin": self.margin,
                "kind": self.kind}


def paired(values, margin: float) -> Difference:
    """A difference from per-seed values (already a minus b, paired by seed)."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    mean, low, high = mean_ci(v)
    dof = v.size - 1
    se = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else math.nan
    return _difference(mean, low, high, v.size, se, dof, margin, v.tolist())


def welch(a, b, margin: float) -> Difference:
    """The difference mean(a) - mean(b) of two independent groups (Welch's t, Welch-Satterthwaite dof)."""
    a, b = (np.asarray(list(x), dtype=np.float64) for x in (a, b))
    if a.size < 2 or b.size < 2:
        mean = float(a.mean() - b.mean()) if a.size and b.size else math.nan
        return _difference(mean, math.nan, math.nan, min(a.size, b.size), math.nan, 0, margin, [])
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1)) if se > 0 else a.size + b.size - 2
    from scipy import stats

    mean = float(a.mean() - b.mean())
    half = float(stats.t.ppf(0.975, dof)) * se
    return _difference(mean, mean - half, mean + half, min(a.size, b.size), se, dof, margin, [])


def _difference(mean, low, high, n, se, dof, margin, values) -> Difference:
    if n < 2 or not math.isfinite(mean):
        return Difference(mean, low, high, n, 1.0, 1.0, margin, values)
    above, below = one_sided(mean, se, dof)
    p_differs = min(1.0, 2 * min(above, below))
    inside_low, _ = one_sided(mean, se, dof, -margin)  # H1: mean > -margin
    _, inside_high = one_sided(mean, se, dof, margin)  # H1: mean < +margin
    return Difference(mean, low, high, n, p_differs, max(inside_low, inside_high), margin, values)


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given)."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    adjusted, running = [1.0] * len(pvalues), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def classify(cells: dict[str, Difference]) -> dict[str, Difference]:
    """Set each cell's `kind` after correcting both families of p-values over the cells (Holm)."""
    keys = list(cells)
    differs = holm([cells[k].p_differs for k in keys])
    equivalent = holm([cells[k].p_equivalent for k in keys])
    for key, p_diff, p_eq in zip(keys, differs, equivalent):
        d = cells[key]
        d.kind = ("above" if d.mean > 0 else "below") if p_diff < ALPHA else "equivalent" if p_eq < ALPHA else "unclear"
    return cells


def vote(cells: dict[str, Difference], claim: str) -> tuple[str, str]:
    """(outcome, reason) of a claim that the cells lie `claim` ("above" or "below") zero.

    Reproduced: at least half of the cells clearly on the claimed side and none clearly on the other.
    Not reproduced: at least half clearly on the other side or equivalent to zero, and none on the claimed side.
    Inconclusive otherwise (including clear cells on both sides); not measured without cells.
    """
    if not cells:
        return NOT_MEASURED, "no cells to compare"
    other = "below" if claim == "above" else "above"
    kinds = [d.kind for d in classify(cells).values()]
    yes, no, same = kinds.count(claim), kinds.count(other), kinds.count("equivalent")
    counts = f"{yes} of {len(kinds)} cells clearly {claim}, {no} clearly {other}, {same} equivalent"
    if yes and no:
        return INCONCLUSIVE, counts + " (the cells disagree)"
    if yes * 2 >= len(kinds):
        return REPRODUCED, counts
    if not yes and (no + same) * 2 >= len(kinds):
        return NOT_REPRODUCED, counts
    return INCONCLUSIVE, counts


def equivalence_vote(cells: dict[str, Difference]) -> tuple[str, str]:
    """(outcome, reason) of a claim that the cells are *equivalent* to zero (within their margin; a difference
    clear of zero but inside the margin still counts as equivalent).

    Reproduced: every cell equivalent (TOST, Holm-corrected). Not reproduced: some cell's interval lies wholly
    outside the margin band. Inconclusive otherwise; not measured without cells.
    """
    if not cells:
        return NOT_MEASURED, "no cells to compare"
    equivalent = [p < ALPHA for p in holm([d.p_equivalent for d in cells.values()])]
    outside = [k for k, d in cells.items() if d.low > d.margin or d.high < -d.margin]
    counts = f"{sum(equivalent)} of {len(cells)} cells equivalent within +-{_margin(cells)}"
    if all(equivalent):
        return REPRODUCED, counts
    if outside:
        return NOT_REPRODUCED, counts + f"; beyond the margin: {', '.join(outside)}"
    return INCONCLUSIVE, counts


def _margin(cells: dict[str, Difference]) -> str:
    return f"{next(iter(cells.values())).margin:g}"


def combine(parts: dict[str, tuple[str, str]], optional: tuple[str, ...] = ()) -> str:
    """One verdict from a finding's parts: not reproduced if a measured part is not reproduced; else not measured if
    a part that is not `optional` was not measured (the finding's data are absent); else reproduced if every
    measured part is; else inconclusive."""
    measured = [outcome for outcome, _ in parts.values() if outcome != NOT_MEASURED]
    if NOT_REPRODUCED in measured:
        return NOT_REPRODUCED
    if not measured or any(o == NOT_MEASURED for name, (o, _) in parts.items() if name not in optional):
        return NOT_MEASURED
    return REPRODUCED if all(o == REPRODUCED for o in measured) else INCONCLUSIVE


def correlation(rho: float, n: int) -> Difference:
    """A rank correlation as a Difference on Fisher's z scale (normal approximation, Fieller's 1.06 factor)."""
    from scipy.stats import norm

    z, se = math.atanh(max(-0.999999, min(0.999999, rho))), 1.06 / math.sqrt(max(n - 3, 1))
    margin = math.atanh(RHO_MARGIN)
    p_differs = float(2 * norm.sf(abs(z) / se))
    p_equivalent = float(max(norm.sf((z + margin) / se), norm.sf((margin - z) / se)))
    return Difference(z, z - 1.96 * se, z + 1.96 * se, n, p_differs, p_equivalent, margin, [rho])
