"""Does a cheaper setting stay within a margin of the one it would replace? A non-inferiority rule over targets.

Each target gives per-seed differences (the change minus the base, paired by seed). The claim is that every target's
mean difference lies above -margin. Per target, two one-sided t-tests: H1 "the mean lies above -margin" and H1 "it
lies below -margin"; each family's p-values are Holm-corrected over the targets. Met: every target clears the first
test; not met: some target clears the second (clearly worse by more than the margin); inconclusive otherwise;
not measured with fewer than two seeds.
"""

from __future__ import annotations

import math

import numpy as np

from .depth_rule import INCONCLUSIVE, MET, NOT_MEASURED, NOT_MET
from .verdicts import ALPHA, Difference, holm, one_sided, paired


def no_worse(cells: dict[str, list[float]], margin: float) -> tuple[str, str, dict[str, Difference]]:
    """(outcome, reason, per-target differences) of the claim that no target falls more than `margin` below the base.

    `cells`: target -> per-seed differences, change minus base (the same units as `margin`)."""
    diffs = {target: paired(values, margin) for target, values in cells.items()}
    if not diffs or any(d.n < 2 for d in diffs.values()):
        return NOT_MEASURED, "fewer than two seeds: no interval", diffs
    tests = [one_sided(d.mean, float(np.std(d.values, ddof=1)) / math.sqrt(d.n), d.n - 1, -margin)
             for d in diffs.values()]
    above = holm([t[0] for t in tests])
    below = holm([t[1] for t in tests])
    worse = [target for target, p in zip(diffs, below) if p < ALPHA]
    if worse:
        return NOT_MET, f"clearly more than {margin:g} below the base on {', '.join(worse)}", diffs
    unclear = [target for target, p in zip(diffs, above) if p >= ALPHA]
    if unclear:
        return INCONCLUSIVE, (f"the interval reaches {margin:g} below the base on {', '.join(unclear)} "
                              f"(Holm over {len(diffs)} targets)"), diffs
    return MET, f"every target clearly above -{margin:g} (Holm over {len(diffs)} targets)", diffs
