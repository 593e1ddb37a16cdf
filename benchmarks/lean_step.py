"""The memory-lean step against the standard one (and both against E2E), paired: one process, steps interleaved.

    python benchmarks/lean_step.py [--preset tiny] [--regime simultaneous] [--stages 4] [--rounds 30] [--set KEY=VALUE]

`blockmae bench` times each configuration in its own fresh process, one after another; on a shared 2-core machine
its repeats of one configuration differ by up to ~30%, more than the lean step's difference from the standard
step there. Here the two steps (same weights, clips, masks and decoder-masking draws; two models) and plain E2E's
step (one stage, its own defaults) take turns within one process, which cancels that drift: prints each step's
median CPU time over the rounds (the first 4 are warm-up) and their ratios. Peak memory is the bench's (fresh
processes); numbers: docs/performance.md.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout without installing

import torch  # noqa: E402

from blockmae.bench.machine import describe_machine, machine  # noqa: E402
from blockmae.bench.presets import PRESETS  # noqa: E402
from blockmae.bench.probes import tune_glibc_malloc  # noqa: E402
from blockmae.bench.steps import build_ours, make_inputs, make_optimizer, ours_train_step  # noqa: E402
from blockmae.config import config_path, load_config  # noqa: E402

WARMUP = 4


def paired_times(args) -> dict[str, list[float]]:
    """CPU seconds of each step kind, the order of the kinds rotating every round."""
    preset = PRESETS[args.preset]
    batch = args.batch or preset.batch["cpu"]
    steps = {}
    for name, regime, stages, lean in (("lean", args.regime, args.stages, True),
                                       ("standard", args.regime, args.stages, False), ("e2e", "e2e", 1, True)):
        cfg = load_config(config_path(preset.config) if preset.config else None,
                          list(preset.overrides) + [f"model.partition={stages}", f"train.regime={regime}", *args.set])
        model = build_ours(cfg, 0, torch.device("cpu"))
        video, masks = make_inputs(model, cfg, batch, args.rounds, 0, torch.device("cpu"))
        steps[name] = ours_train_step(model, make_optimizer(model), video, masks, regime, lean)
    names = list(steps)
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(args.rounds):
        for name in names[i % 3:] + names[:i % 3]:
            start = time.process_time()
            steps[name](i)
            times[name].append(time.process_time() - start)
    return times


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="tiny", choices=list(PRESETS))
    p.add_argument("--regime", default="simultaneous")
    p.add_argument("--stages", type=int, default=4)
    p.add_argument("--batch", type=int, default=None, help="clips per step (default: the preset's CPU batch)")
    p.add_argument("--rounds", type=int, default=30, help=f"steps of each kind (the first {WARMUP} warm up)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a config override")
    args = p.parse_args(argv)
    if args.rounds <= WARMUP:
        p.error(f"--rounds must be more than the {WARMUP} warm-up rounds")
    torch.set_num_threads(args.threads)
    tune_glibc_malloc()
    times = paired_times(args)
    median = {name: statistics.median(t[WARMUP:]) for name, t in times.items()}
    print(describe_machine(machine("cpu")))
    print(f"{args.preset}, {args.regime} K={args.stages}, {' '.join(args.set) or 'default settings'}, "
          f"{args.rounds - WARMUP} timed rounds, {args.threads} thread(s), median CPU ms per step:")
    print(f"  lean {1000 * median['lean']:.1f}, standard {1000 * median['standard']:.1f}, e2e (K=1) "
          f"{1000 * median['e2e']:.1f}")
    print(f"  lean / standard {median['lean'] / median['standard']:.3f}x; lean / e2e "
          f"{median['lean'] / median['e2e']:.2f}x, standard / e2e {median['standard'] / median['e2e']:.2f}x")
    return {"median_s": median, "ratio": median["lean"] / median["standard"], "times": times}


if __name__ == "__main__":
    main()
