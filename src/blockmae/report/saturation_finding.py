"""Finding 7 (beyond the paper): is late-block saturation the plain CKA estimator's small-sample bias? The
linear CKA between a run's last two blocks, plain and debiased (unbiased HSIC), per (regime, K)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from ..eval.stats import mean_ci
from ..regimes import REFERENCE, blockwise_regimes
from .study_index import StudyIndex, paired_by_seed
from .verdicts import INCONCLUSIVE, NOT_MEASURED, NOT_REPRODUCED, REPRODUCED


def _ci(values) -> dict:
    values = [float(v) for v in values]
    mean, low, high = mean_ci(values)
    return {"mean": mean, "low": low, "high": high, "n": len(values), "values": values}


SATURATED, ARTEFACT = 0.95, 0.90  # plain late CKA that counts as a plateau; debiased CKA that says it was bias


def _last_pair(idx: StudyIndex, metric: str, regime, K) -> dict:
    """{seed: the metric between blocks K-1 and K, mean over datasets}."""
    per_seed = defaultdict(list)
    for dataset in idx.datasets:
        for seed, v in idx.consecutive.get((metric, regime, K, dataset, K - 1), {}).items():
            per_seed[seed].append(v)
    return {seed: float(np.mean(v)) for seed, v in per_seed.items()}


def saturation_debiased(idx: StudyIndex) -> dict:
    """Finding 7 (beyond the paper): late-block saturation is not the plain CKA estimator's small-sample bias."""
    out = {}
    for K in (K for K in idx.Ks if K >= 2):
        for regime in (REFERENCE,) + blockwise_regimes():
            plain, debiased = (_last_pair(idx, m, regime, K) for m in ("cka_linear", "cka_linear_debiased"))
            if plain and debiased:
                out[f"{regime}-K{K}"] = {"plain": _ci(plain.values()), "debiased": _ci(debiased.values()),
                                         "plain_minus_debiased": _ci(paired_by_seed(plain, debiased))}
    saturated = {k: v for k, v in out.items() if v["plain"]["mean"] >= SATURATED}
    if not out:
        verdict, reason = NOT_MEASURED, "no debiased CKA rows"
    elif not saturated:
        verdict, reason = INCONCLUSIVE, "no cell is saturated: nothing to test"
    elif any(v["debiased"]["high"] < ARTEFACT for v in saturated.values()):
        verdict, reason = NOT_REPRODUCED, "artefact: a saturated cell's debiased CKA is clearly below " f"{ARTEFACT}"
    elif all(v["debiased"]["low"] >= SATURATED for v in saturated.values()):
        verdict, reason = REPRODUCED, f"survives: every saturated cell's debiased CKA stays >= {SATURATED}"
    else:
        verdict, reason = INCONCLUSIVE, "some debiased interval reaches between the thresholds"
    key = "; ".join(f"{k} late CKA plain {format_ci(v['plain'])} vs debiased {format_ci(v['debiased'])}"
                    for k, v in out.items()) or "no debiased CKA rows"
    return {"by_run": out, "saturated": list(saturated), "verdict": verdict,
            "parts": {"survives debiasing": {"verdict": verdict, "reason": reason}}, "key_numbers": key,
            "rule": f"per (regime, K), the linear CKA between blocks K-1 and K (mean over datasets), plain and "
                    f"debiased (unbiased HSIC); among the cells whose plain CKA is >= {SATURATED} (saturated): "
                    f"reproduced (survives) if every debiased 95% interval stays >= {SATURATED}; not reproduced "
                    f"(artefact) if one lies below {ARTEFACT}; inconclusive otherwise or with no saturated cell; "
                    "not measured without debiased rows."}


def format_ci(ci: dict, scale: float = 1.0, digits: int = 3) -> str:
    if ci["n"] < 2:  # no interval from one run: say so rather than print [nan, nan]
        return f"{ci['mean'] * scale:.{digits}f} ({ci['n']} seed{'s' if ci['n'] != 1 else ''}, no interval)"
    return f"{ci['mean'] * scale:.{digits}f} [{ci['low'] * scale:.{digits}f}, {ci['high'] * scale:.{digits}f}]"
