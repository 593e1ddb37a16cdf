"""The text table of `blockmae bench --accuracy` (`bench.accuracy`): the levers, the E2E reference, chance and random
init, then each lever against the base and against E2E."""

from __future__ import annotations

from .machine import describe_machine
from .text import cell

ESCAPE_PCT = 2.0  # the top stage counts as off the plateau this far below the best trivial predictor
MARGIN_PP = 1.0  # how far below the base a lever's probe may fall on any target


def _escapes(steps: list | None) -> str:
    return "/".join("-" if s is None else str(s) for s in steps) if steps else "-"


def _e2e_row(ref: dict, targets: list[str], base: dict) -> str:
    return (f"{'e2e (reference)':<22} {'':>11} {1.0:11.2f} {ref['held_out_margin_pct']:12.1f} "
            f"{_escapes(ref['escape_steps']):>17} " + " ".join(f"{ref['probe'][t]:9.3f}" for t in targets)
            + f" {100 * (ref['probe']['mean'] - base['probe']['mean']):+9.1f}")


def _against_e2e(ref: dict, max_steps: int) -> list[str]:
    """Per lever: its mean probe against E2E's, and its time to leave the plateau in E2E's."""
    lines = ["", "against e2e: the mean probe minus E2E's, pp [95% CI over seeds, paired]; the time to leave the "
                 "plateau in E2E's (escape step x harness step time, per seed; '>': some seed not off the plateau in "
                 f"its {max_steps} steps, which then count)"]
    for lever, v in ref["levers"].items():
        g, t = v["mean_minus_e2e_pp"], v["escape_time_x_e2e"]
        when = ("-" if t["per_seed"] is None else f"{t['mean']:.2f}x" if t["mean"] is not None
                else f">{t['at_least']:.2f}x")
        ci = f" [{g['low']:+.1f}, {g['high']:+.1f}]" if len(g["values"]) > 1 else " (one seed)"
        lines.append(f"  {lever:<22} {g['mean']:+.1f}{ci} pp; escape time x e2e {when}")
    return lines


def format_accuracy(results: dict) -> str:
    s = results["settings"]
    rows = results["rows"]
    base = rows[0]["lever"]
    targets = list(rows[0]["probe"])
    lines = [describe_machine(results["machine"], s["threads"]),
             f"preset {results['preset']}: simultaneous K=4 (memory-lean), {s['max_steps']} steps at batch "
             f"{s['batch_size']}, seed(s) {', '.join(map(str, results['seeds']))}"
             + (f", overrides {' '.join(s['sets'])}" if s["sets"] else ""),
             f"probe: final block, linear (standardise + logistic regression), fit on {results['data']} train, "
             f"top-1 on {results['data']} test", ""]
    head = (f"{'lever':<22} {'time x base':>11} {'bench x e2e':>11} {'loss % below':>12} {'escape step':>17} "
            + " ".join(f"{t:>9}" for t in targets) + f" {'d mean pp':>9}")
    lines += [head, "-" * len(head)]
    for r in rows:
        speed = r.get("time_x_base", r.get("time_x_none"))  # results written before the base was a choice: none
        lines.append(f"{r['lever']:<22} {cell(speed, '11.2f')} {cell(r['bench_time_x_e2e'], '11.2f')} "
                     f"{cell(r.get('held_out_margin_pct'), '12.1f')} {_escapes(r.get('escape_steps')):>17} "
                     + " ".join(f"{r['probe'][t]:9.3f}" for t in targets) + f" {r['delta_pp']['mean']:+9.1f}")
    if results.get("reference"):
        lines.append(_e2e_row(results["reference"], targets, rows[0]))
    if results.get("chance"):
        lines.append(f"{'chance':<22} {'':>11} {'':>11} {'':>12} {'':>17} "
                     + " ".join(f"{results['chance'][t]:9.3f}" for t in targets))
    floor = results.get("random_floor") or {}
    if floor.get("probe"):
        lines.append(f"{'random init (' + str(floor['encoders']) + ')':<22} {'':>11} {'':>11} {'':>12} {'':>17} "
                     + " ".join(f"{floor['probe'][t]:9.3f}" for t in targets))
    lines.append("")
    lines.append(f"time x base: pretraining time per clip relative to {base} (median clips/s over logged intervals, "
                 "data loading included);")
    lines.append("bench x e2e: the harness's isolated step time relative to plain E2E's (--bench JSON; '-' without); "
                 "loss % below: the top stage's held-out loss below the best trivial predictor's, in % of it;")
    lines.append(f"escape step, per seed: the first logged step whose top-stage training loss is {ESCAPE_PCT:g} % below "
                 "the best trivial predictor's held-out loss, when the run left the plateau ('-': not in its steps);")
    lines.append(f"accuracies are fractions, means over seeds; d mean pp: change of the mean probe accuracy against "
                 f"{base}, in percentage points.")
    compared = [r for r in rows if "against_base" in r]
    if compared:
        margin = results.get("margin_pp", MARGIN_PP)
        lines += ["", f"against {base}, per target, pp [95% CI over seeds, paired]; within {margin:g} pp: "
                      "met / not met / inconclusive (Holm over the targets)"]
        for r in compared:
            a = r["against_base"]
            cells = " ".join(f"{t} {d['mean']:+.1f} [{d['low']:+.1f}, {d['high']:+.1f}]"
                             for t, d in a["per_target"].items())
            lines.append(f"  {r['lever']:<22} {a['outcome']:<13} {cells}")
    if results.get("reference"):
        lines += _against_e2e(results["reference"], s["max_steps"])
    if len(results["seeds"]) > 1:
        spread = [max(r["probe_per_seed"]) - min(r["probe_per_seed"]) for r in rows]
        lines.append("seed spread of the mean accuracy (max - min over seeds): "
                     + ", ".join(f"{r['lever']} {100 * d:.1f} pp" for r, d in zip(rows, spread)))
    return "\n".join(lines)
