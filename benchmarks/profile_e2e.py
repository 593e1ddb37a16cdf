"""Where an E2E training step spends its time: ours against Hugging Face VideoMAE, phase by phase.

    python benchmarks/profile_e2e.py [--preset tiny] [--batch 32] [--steps 10] [--threads 1] [--table]

Same model, weights, clips, masks and optimizer for both (as `blockmae bench`'s hf and e2e rows), in one
process, steps interleaved; prints the median time of forward, backward and optimizer step (and `.item()`),
the optimizer both fused (the engine's default) and unfused, and gradient clipping's cost. `--table` adds
torch.profiler's top operators for each (the profiler inflates small element-wise ops; use it for ranking).
Numbers and the commands that produced them: docs/performance.md.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout without installing

import torch  # noqa: E402

from blockmae.bench.presets import PRESETS  # noqa: E402
from blockmae.bench.probes import tune_glibc_malloc  # noqa: E402
from blockmae.bench.steps import build_ours, hf_twin, make_inputs, make_optimizer  # noqa: E402
from blockmae.config import config_path, load_config  # noqa: E402
from blockmae.regimes import regime_plan  # noqa: E402


def phases(args) -> dict:
    preset = PRESETS[args.preset]
    cfg = load_config(config_path(preset.config) if preset.config else None,
                      list(preset.overrides) + ["model.partition=1"])
    batch = args.batch or preset.batch["cpu"]
    ours = build_ours(cfg, 0, torch.device("cpu"))
    hf = hf_twin(ours)
    video, masks = make_inputs(ours, cfg, batch, args.steps + 3, 0, torch.device("cpu"))
    pixel_values = video.transpose(1, 2).contiguous()
    plan = regime_plan("e2e", 1)
    ours.train()
    hf.train()
    times: dict[str, list[float]] = {}

    def run(name, model, optimizer, forward, i, clip=False):
        t0 = time.process_time()
        loss = forward(i)
        t1 = time.process_time()
        loss.backward()
        t2 = time.process_time()
        loss.item()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1e9)
        t3 = time.process_time()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        t4 = time.process_time()
        for key, value in (("forward", t1 - t0), ("backward", t2 - t1), ("item+clip" if clip else "item", t3 - t2),
                           ("optimizer", t4 - t3), ("total", t4 - t0)):
            times.setdefault(f"{name} {key}", []).append(value)

    def ours_forward(i):
        return ours.run_plan(video, masks[i], plan)[0]

    def hf_forward(i):
        return hf(pixel_values, bool_masked_pos=masks[i]).loss

    setups = [("ours", ours, make_optimizer(ours), ours_forward, False),
              ("hf", hf, make_optimizer(hf), hf_forward, False),
              ("ours unfused-adamw", ours, make_optimizer(ours, "unfused"), ours_forward, False),
              ("hf unfused-adamw", hf, make_optimizer(hf, "unfused"), hf_forward, False),
              ("ours clip", ours, make_optimizer(ours), ours_forward, True)]
    for i in range(args.steps + 3):
        for name, model, optimizer, forward, clip in setups:
            run(name if i >= 3 else "warm-up", model, optimizer, forward, i, clip)
    times.pop("warm-up", None)
    result = {k: statistics.median(v) for k, v in times.items() if not k.startswith("warm-up")}
    if args.table:
        from torch.profiler import ProfilerActivity, profile

        for name, model, optimizer, forward, _ in setups[:2]:
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for i in range(3):
                    run("profiled", model, optimizer, forward, i)
            print(f"{name}: top operators (self CPU time, 3 steps)")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    return {"batch": batch, "threads": torch.get_num_threads(), "ms": {k: 1000 * v for k, v in result.items()}}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="tiny", choices=list(PRESETS))
    p.add_argument("--batch", type=int, default=None, help="clips per step (default: the preset's CPU batch)")
    p.add_argument("--steps", type=int, default=10, help="timed steps per setup (after 3 warm-up steps)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--table", action="store_true", help="also print torch.profiler's top operators")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    tune_glibc_malloc()
    out = phases(args)
    print(f"preset {args.preset}, batch {out['batch']}, {out['threads']} thread(s), median CPU time per step (ms):")
    ms = out["ms"]
    print(f"{'':22} {'forward':>8} {'backward':>9} {'item':>6} {'optimizer':>9} {'total':>7}")
    for name in ("ours", "hf", "ours unfused-adamw", "hf unfused-adamw"):
        print(f"{name:22} {ms[name + ' forward']:8.1f} {ms[name + ' backward']:9.1f} {ms[name + ' item']:6.1f} "
              f"{ms[name + ' optimizer']:9.1f} {ms[name + ' total']:7.1f}")
    print(f"gradient clipping (clip_grad_norm_ over all parameters): "
          f"{ms['ours clip item+clip'] - ms['ours item']:.1f} ms")
    print(f"hf / ours total: {ms['hf total'] / ms['ours total']:.2f}x (fused AdamW both), "
          f"{ms['hf unfused-adamw total'] / ms['ours total']:.2f}x (hf with the unfused AdamW)")
    return out


if __name__ == "__main__":
    main()
