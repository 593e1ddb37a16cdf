"""The standard step's K decoders as one batched computation against K separate ones (and against plain E2E), paired:
one process, steps interleaved.

    python benchmarks/grouped_decoders.py [--preset tiny] [--stages 4] [--rounds 30] [--set KEY=VALUE]

Arms, same weights, clips, masks and decoder-masking draws: `grouped` (the standard, not memory-lean, simultaneous
step with `model.decoder.grouped=true`: decoders of one shape run as one, model/grouped.py), `separate` (the same
step, `model.decoder.grouped=false`: one decoder after another), `lean` (the memory-lean step, which never groups)
and `e2e` (plain E2E, one stage, its own defaults; `--set` applies to the other arms only). The order of the arms rotates every round; prints each arm's
median CPU time over the rounds (the first 4 warm up) and the ratios. Numbers: docs/performance.md.
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
ARMS = (("grouped", "simultaneous", False, True), ("separate", "simultaneous", False, False),
        ("lean", "simultaneous", True, False), ("e2e", "e2e", True, False))  # name, regime, memory-lean, grouped


def paired_times(args, device: torch.device) -> dict[str, list[float]]:
    """Seconds of each arm's step (CPU time on the CPU, synchronised wall time on a GPU), rotating the order."""
    preset = PRESETS[args.preset]
    batch = args.batch or preset.batch[device.type]
    steps = {}
    for name, regime, lean, grouped in ARMS:
        e2e = regime == "e2e"  # plain E2E: one stage, the preset's decoder, without the --set overrides
        cfg = load_config(config_path(preset.config) if preset.config else None,
                          list(preset.overrides) + [f"model.partition={1 if e2e else args.stages}",
                                                    f"train.regime={regime}",
                                                    f"model.decoder.grouped={str(grouped).lower()}",
                                                    *([] if e2e else args.set)])
        model = build_ours(cfg, 0, device)
        video, masks = make_inputs(model, cfg, batch, args.rounds, 0, device)
        steps[name] = ours_train_step(model, make_optimizer(model), video, masks, regime, lean)
    names = list(steps)
    times: dict[str, list[float]] = {name: [] for name in names}
    cuda = device.type == "cuda"
    clock = time.perf_counter if cuda else time.process_time
    for i in range(args.rounds):
        for name in names[i % len(names):] + names[:i % len(names)]:
            if cuda:
                torch.cuda.synchronize()
            start = clock()
            steps[name](i)
            if cuda:
                torch.cuda.synchronize()
            times[name].append(clock() - start)
    return times


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="tiny", choices=list(PRESETS))
    p.add_argument("--stages", type=int, default=4)
    p.add_argument("--batch", type=int, default=None, help="clips per step (default: the preset's batch)")
    p.add_argument("--rounds", type=int, default=30, help=f"steps of each arm (the first {WARMUP} warm up)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a config override of the K-stage arms (e.g. per-stage decoder sizes)")
    args = p.parse_args(argv)
    if args.rounds <= WARMUP:
        p.error(f"--rounds must be more than the {WARMUP} warm-up rounds")
    torch.set_num_threads(args.threads)
    tune_glibc_malloc()
    device = torch.device(args.device)
    times = paired_times(args, device)
    median = {name: statistics.median(t[WARMUP:]) for name, t in times.items()}
    print(describe_machine(machine(device.type)))
    print(f"{args.preset}, simultaneous K={args.stages}, {' '.join(args.set) or 'default settings'}, "
          f"{args.rounds - WARMUP} timed rounds, {args.threads} thread(s), median "
          f"{'wall' if device.type == 'cuda' else 'CPU'} ms per step:")
    print("  " + ", ".join(f"{name} {1000 * median[name]:.1f}" for name in median))
    print(f"  grouped / separate {median['grouped'] / median['separate']:.3f}x; grouped / e2e "
          f"{median['grouped'] / median['e2e']:.2f}x, separate / e2e {median['separate'] / median['e2e']:.2f}x, "
          f"lean / e2e {median['lean'] / median['e2e']:.2f}x")
    return {"median_s": median, "ratio": median["grouped"] / median["separate"], "times": times}


if __name__ == "__main__":
    main()
