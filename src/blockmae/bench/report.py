"""The throughput table `blockmae bench` prints: one row per configuration, the legend, the loss check and
the targets' verdicts."""

from __future__ import annotations

import copy

from .machine import describe_machine
from .summary import summarise
from .text import MiB, cell


def cell_text(text: str) -> str:
    """Text safe inside a markdown table cell (a bare | would end the cell)."""
    return str(text).replace("|", "\\|")


def format_report(results: dict) -> str:
    s = results["settings"]
    lines = [describe_machine(results["machine"], s["threads"]),
             f"preset {results['preset']}: {results['preset_about']}",
             f"batch {s['batch']}, {s['warmup']} warm-up + {s['steps']} timed steps, {s['repeats']} repeat(s), "
             f"{s.get('timer', 'wall')} time" + (f", malloc {s['malloc']}" if s.get("malloc") else "")
             + (" (quick)" if s["quick"] else "") + (f", overrides {' '.join(s['sets'])}" if s["sets"] else ""), ""]
    head = (f"{'config':<28} {'clips/s':>9} {'x base':>7} {'step s':>8} {'x e2e':>6} {'x e2e+m':>7} {'mem x e2e':>9} "
            f"{'peak MiB':>9} {'step MiB':>9} {'live MiB':>9} {'x base':>7} {'GFLOP':>8} {'MFU':>6}  first loss")
    lines += [head, "-" * len(head)]
    for r in results["rows"]:
        if "clips_per_s" not in r:
            lines.append(f"{r['name']:<28} {r.get('error') or r.get('skipped')}")
            continue
        loss = r.get("first_losses") or []
        loss_s = " ".join(f"{v:.5f}" for v in loss if v is not None) if r.get("task") == "train" else ""
        lines.append(
            f"{r['name']:<28} {r['clips_per_s']:9.2f} {cell(r.get('x_baseline'), '7.2f')} {r['step_s']:8.3f} "
            f"{cell(r.get('time_x_e2e'), '6.2f')} {cell(r.get('time_x_e2e_monitors'), '7.2f')} "
            f"{cell(r.get('mem_x_e2e'), '9.2f')} {r['peak_bytes'] / MiB:9.1f} {r['step_bytes'] / MiB:9.1f} "
            f"{cell(r['live_step_bytes'] / MiB if r.get('live_step_bytes') else None, '9.1f')} "
            f"{cell(r.get('live_x_baseline') or r.get('mem_x_baseline'), '7.2f')} {r['flops_per_step'] / 1e9:8.2f} "
            f"{cell(r.get('mfu'), '6.1%')}  {loss_s}")
    lines.append("")
    lines.append("x base: clips/s (or live step memory) relative to the baseline (hf; extract-hf for extraction rows); "
                 "x e2e: step time relative to ours e2e; x e2e+m: relative to e2e with a decoder per stage "
                 "(e2e-K4-monitors); mem x e2e: step memory (live where measured) relative to e2e;")
    lines.append("peak: whole process (RSS on CPU, allocated on CUDA); step: its peak above the resting state "
                 "(weights + optimizer state);")
    lines.append("live: peak of live tensor bytes in one step above the resting state (CPU: profiler allocator records, "
                 "no heap retention; CUDA: = step); GFLOP per step (matmul/conv/attention);")
    m = results.get("matmul")
    if m:
        lines.append(f"MFU: achieved FLOP/s / measured fp32 matmul rate {m['flop_per_s'] / 1e9:.1f} GFLOP/s "
                     f"({m['n']} x {m['n']}, {m.get('timer', 'wall')} time).")
    c = results.get("loss_check")
    if c:
        lines.append(f"loss check (first step, same weights/input/mask): Hugging Face {c['hf']:.6f}, ours {c['ours']:.6f}, "
                     f"|diff| {c['abs_diff']:.1e} {'OK' if c['ok'] else 'MISMATCH'} (tolerance {c['tolerance']:g})")
    if results["targets"]:
        lines.append("")
        lines.append("targets:")
        for t in results["targets"]:
            lines.append(f"  [{'met' if t['met'] else 'NOT met'}] {t['target']}: {t['detail']}")
    return "\n".join(lines)


def format_markdown(results: dict) -> str:
    """The same results as a markdown section for docs/performance.md: the machine and command, one table row
    per configuration, the loss check and the targets, judged by today's targets (`summary.summarise` on the
    stored rows), so an older JSON reads against the same bars (`benchmarks/performance_doc.py` writes it)."""
    s = results["settings"]
    rows, check, targets = summarise(copy.deepcopy(results["rows"]), results.get("matmul"))
    results = {**results, "rows": rows, "loss_check": check, "targets": targets}
    lines = [f"`{s.get('command') or 'blockmae bench'}`", "",
             describe_machine(results["machine"], s["threads"]) + ".",
             f"Preset {results['preset']}: {results['preset_about']}; batch {s['batch']}, {s['repeats']} repeat(s), "
             f"{s.get('timer', 'wall')} time.", "",
             "| config | what runs | clips/s | x HF | step x e2e | step x e2e+monitors | step MiB | live MiB "
             "| memory x e2e | MFU |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["rows"]:
        if "clips_per_s" not in r:
            lines.append(f"| {r['name']} | {cell_text(r.get('about', ''))} | {r.get('error') or r.get('skipped')} "
                         "| | | | | | | |")
            continue
        live = r["live_step_bytes"] / MiB if r.get("live_step_bytes") else None
        lines.append(f"| {r['name']} | {cell_text(r.get('about', ''))} | {r['clips_per_s']:.2f} | {cell(r.get('x_baseline'), '.2f')} "
                     f"| {cell(r.get('time_x_e2e'), '.2f')} | {cell(r.get('time_x_e2e_monitors'), '.2f')} "
                     f"| {r['step_bytes'] / MiB:.0f} | {cell(live, '.0f')} | {cell(r.get('mem_x_e2e'), '.2f')} "
                     f"| {cell(r.get('mfu'), '.1%')} |")
    c = results.get("loss_check")
    if c:
        lines += ["", f"Loss check (first step, same weights, clips and mask): Hugging Face {c['hf']:.6f}, ours "
                      f"{c['ours']:.6f}, |diff| {c['abs_diff']:.1e}: {'OK' if c['ok'] else 'MISMATCH'} "
                      f"(tolerance {c['tolerance']:g})."]
    if results.get("targets"):
        lines += ["", "| target | verdict |", "|---|---|"]
        lines += [f"| {t['target']} | {'met' if t['met'] else '**not met**'}: {cell_text(t['detail'])} |"
                  for t in results["targets"]]
    return "\n".join(lines)
