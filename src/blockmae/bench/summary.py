"""From measurements to the table's derived columns: medians over repeats, ratios to the baseline and to our
E2E, MFU, the Hugging Face loss check, and the verdicts on the bench's targets."""

from __future__ import annotations

import statistics

from .losscheck import BF16_LOSS_TOLERANCE, LOSS_TOLERANCE, first_losses_match


def median_of_measured(values):
    """The median of the values that were measured (None: not measured), or None when none was."""
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def aggregate(runs: list[dict]) -> dict:
    """Repeats of one configuration -> one row (medians; spread kept)."""
    ok = [r for r in runs if "error" not in r and "skipped" not in r]
    if not ok:
        return dict(runs[0])
    row = {k: v for k, v in ok[0].items() if k not in ("step_times",)}
    for key in ("step_s", "clips_per_s", "peak_bytes", "resting_bytes", "step_bytes", "live_step_bytes",
                "flops_per_step"):
        row[key] = median_of_measured([r.get(key) for r in ok])
    row["clips_per_s_runs"] = [r["clips_per_s"] for r in ok]
    row["repeats"] = len(ok)
    return row


E2E_MONITORS = "e2e-K4-monitors"


def step_memory_ratio(a: dict, b: dict) -> float | None:
    """a's step memory over b's, like with like: live tensors where both measured them (CPU), else the step peaks
    (CUDA allocated, or RSS)."""
    if a.get("live_step_bytes") and b.get("live_step_bytes"):
        return a["live_step_bytes"] / b["live_step_bytes"]
    return a["step_bytes"] / b["step_bytes"] if b["step_bytes"] else None


def add_ratios(rows: list[dict], matmul: dict | None) -> None:
    """Each measured row's ratio columns, in place: against its baseline (hf, or extract-hf for extraction), step
    time against ours E2E and E2E with per-stage monitors, step memory against E2E, achieved FLOP/s and MFU."""
    by = {r["name"]: r for r in rows}

    def ok(name):
        return name in by and "clips_per_s" in by[name]

    peak_rate = matmul["flop_per_s"] if matmul and "flop_per_s" in matmul else None
    for r in rows:
        if "clips_per_s" not in r:
            continue
        base = "extract-hf" if r.get("task") == "extract" else "hf"
        r["baseline"] = base
        r["x_baseline"] = r["clips_per_s"] / by[base]["clips_per_s"] if ok(base) else None
        r["mem_x_baseline"] = (r["step_bytes"] / by[base]["step_bytes"]
                               if ok(base) and by[base]["step_bytes"] else None)
        r["live_x_baseline"] = (r["live_step_bytes"] / by[base]["live_step_bytes"]
                                if ok(base) and r.get("live_step_bytes") and by[base].get("live_step_bytes") else None)
        train = r.get("task") == "train"
        r["time_x_e2e"] = r["step_s"] / by["e2e"]["step_s"] if ok("e2e") and train else None
        # the fairer yardstick for a blockwise row: E2E that also trains a decoder per stage (the monitors)
        r["time_x_e2e_monitors"] = (r["step_s"] / by[E2E_MONITORS]["step_s"] if ok(E2E_MONITORS) and train
                                    else None)
        r["mem_x_e2e"] = step_memory_ratio(r, by["e2e"]) if ok("e2e") and train else None
        r["achieved_flop_per_s"] = r["flops_per_step"] / r["step_s"] if r.get("flops_per_step") else None
        r["mfu"] = r["achieved_flop_per_s"] / peak_rate if peak_rate and r["achieved_flop_per_s"] else None


def memory_target(target: str, a: dict, b: dict, limit: float) -> dict:
    """Verdict on a / b memory: live tensors (CUDA: allocated; CPU: the profiler's allocator records) where
    measured, else the step's resident-set peak; every measure in the detail."""
    rss = a["step_bytes"] / b["step_bytes"] if b["step_bytes"] else None
    live = a["live_step_bytes"] / b["live_step_bytes"] if a.get("live_step_bytes") and b.get("live_step_bytes") else None
    whole = a["peak_bytes"] / b["peak_bytes"]
    value = live if live is not None else rss
    parts = ([f"live tensors {live:.2f}x"] if live is not None and a["device"] == "cpu" else []) + \
            [f"step peak ({'allocated' if a['device'].startswith('cuda') else 'RSS'}) {rss:.2f}x" if rss else "n/a",
             f"whole-process peak {whole:.2f}x"]
    return {"target": target, "value": value, "met": value is not None and value <= limit,
            "rss_value": rss, "live_value": live, "detail": "; ".join(parts)}


def summarise(rows: list[dict], matmul: dict | None) -> tuple[list[dict], dict | None, list[dict]]:
    """Add ratio columns, the loss check and the targets' verdicts."""
    add_ratios(rows, matmul)
    by = {r["name"]: r for r in rows}

    def ok(name):
        return name in by and "clips_per_s" in by[name]

    check = None
    if ok("hf") and ok("e2e"):
        bf16 = by["e2e"].get("amp") == "bf16"  # two bf16 implementations round differently: a looser check
        check = first_losses_match(by["hf"]["first_losses"][0], by["e2e"]["first_losses"][0],
                                   BF16_LOSS_TOLERANCE if bf16 else LOSS_TOLERANCE)

    targets = []
    if ok("hf") and ok("e2e"):
        x = by["e2e"]["x_baseline"]
        detail = f"{x:.2f}x (both with the engine's AdamW); first-step loss |diff| {check['abs_diff']:.1e}"
        if ok("hf-adamw-unfused"):
            detail += (f"; against Hugging Face with PyTorch's default AdamW "
                       f"{by['e2e']['clips_per_s'] / by['hf-adamw-unfused']['clips_per_s']:.2f}x")
        targets.append({"target": "ours e2e clips/s >= 1.0x Hugging Face, first-step loss within tolerance",
                        "value": x, "met": x >= 1.0 and bool(check and check["ok"]), "detail": detail})
    if ok("e2e"):
        for name in ("e2e-K4-monitors", "e2e-K4-monitors-every4", "e2e-K4-fitted-monitors"):
            if ok(name):
                x = by[name]["step_s"] / by["e2e"]["step_s"]
                targets.append({"target": f"{name} step time <= 1.2x e2e", "value": x, "met": x <= 1.2,
                                "detail": f"{x:.2f}x"})
    if ok("sim-K4") and ok("sim-K4-lean"):
        x = by["sim-K4-lean"]["step_s"] / by["sim-K4"]["step_s"]
        targets.append({"target": "memory-lean sim K=4 step time <= standard sim K=4", "value": x, "met": x <= 1.0,
                        "detail": f"{x:.3f}x"})
        targets.append(memory_target("memory-lean sim K=4 peak <= 0.6x standard sim K=4",
                                     by["sim-K4-lean"], by["sim-K4"], 0.6))
        if ok("e2e"):
            targets.append(memory_target("memory-lean sim K=4 peak <= e2e peak (same batch)",
                                         by["sim-K4-lean"], by["e2e"], 1.0))
    if ok("e2e"):
        sims = [r for r in rows if r["name"].startswith("sim-K4") and r.get("time_x_e2e") is not None]
        for r in sims:
            if r["name"] in ("sim-K4", "sim-K4-lean"):
                targets.append({"target": f"{r['name']} step time <= 1.5x e2e", "value": r["time_x_e2e"],
                                "met": r["time_x_e2e"] <= 1.5, "detail": f"{r['time_x_e2e']:.2f}x"})
        levers = [r for r in sims if r.get("group") == "lever"]
        if levers:
            best = min(levers, key=lambda r: r["time_x_e2e"])
            targets.append({"target": "sim K=4 step time <= 1.5x e2e with a lever", "value": best["time_x_e2e"],
                            "met": best["time_x_e2e"] <= 1.5,
                            "detail": f"best: {best['name']} {best['time_x_e2e']:.2f}x"})
    return rows, check, targets
