"""`blockmae bench`'s command line: its options, and which bench they start (throughput, `--accuracy` or
`--pipeline`). Building the parser imports no torch, so `blockmae --help` stays fast."""

from __future__ import annotations

import argparse

from .accuracy import BASE, run_from_args as run_accuracy_from_args
from .harness import run
from .pipeline import run_pipeline
from .presets import PRESETS

DESCRIPTION = ("`blockmae bench`: training and extraction throughput and peak memory, ours against Hugging Face "
               "VideoMAE.")
EXAMPLE = ("blockmae bench --preset tiny --threads 1 --repeats 3 --json bench-tiny.json\n"
           "  blockmae bench --accuracy --seeds 0,1,2 --jobs 2 --bench bench-tiny.json --json levers-tiny.json\n"
           "  blockmae bench --pipeline --stages 2 --steps 60 --json pipeline-tiny.json")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="tiny", choices=list(PRESETS),
                   help="tiny: the tiny preset (configs/tiny.yaml, 2 x 32 x 32 clips); tiny-scenes: the first CPU "
                        "preset's shape (8 x 32 x 32); deit-s: DeiT-S, 16 x 128 x 128, 2 x 8 x 8 tubelets")
    p.add_argument("--configs", default="all",
                   help="comma-separated configuration names, or core / levers / all (default)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--quick", action="store_true", help="batch <= 4, 1 warm-up + 2 timed steps, no torch.compile rows")
    p.add_argument("--repeats", type=int, default=1, help="run the whole list this many times (interleaved); medians")
    p.add_argument("--threads", type=int, default=None, help="torch threads per worker (default: torch's choice)")
    p.add_argument("--batch", type=int, default=None, help="clips per step (default: the preset's for the device)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps (after the loss-check and FLOP-count steps)")
    p.add_argument("--steps", type=int, default=None, help="timed steps")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="config override applied to every configuration (repeatable), e.g. model.depth=6")
    p.add_argument("--no-compile", dest="compile", action="store_false", help="skip the torch.compile rows")
    p.add_argument("--no-flops", dest="flops", action="store_false", help="skip FLOP counting")
    p.add_argument("--timer", choices=["wall", "cpu"], default="wall",
                   help="step time: wall clock (default), or the process's CPU time, which a busy shared machine "
                        "does not inflate (use with --threads 1)")
    p.add_argument("--malloc", choices=["tuned", "default"], default="tuned",
                   help="CPU: glibc malloc keeps freed memory for reuse (tuned, default; as jemalloc would) or "
                        "glibc's defaults, which re-fault large tensors every step")
    p.add_argument("--in-process", action="store_true",
                   help="measure in this process (debugging/tests; peak memory is then not per configuration)")
    p.add_argument("--json", dest="json_path", metavar="PATH", help="also write the results as JSON")
    a = p.add_argument_group("lever accuracy (--accuracy)")
    a.add_argument("--accuracy", action="store_true",
                   help="instead of timing: pretrain simultaneous K=4 with each lever (the preset's config and "
                        "schedule) and report the final-block probe accuracy per lever beside E2E's, and when each "
                        "run left the plateau (benchmarks/lever_accuracy.py)")
    a.add_argument("--levers", default=None,
                   help="comma-separated: none,dmask0.5,dmask0.75,narrow,dmask0.5-narrow,shallow,light-lower,"
                        "light-lower-dmask0.75 (default: all the preset has)")
    a.add_argument("--base", default=BASE,
                   help=f"the lever every other is compared with, per target and seed (default {BASE}: the "
                        f"simultaneous regimes' default decoders; none: the paper's)")
    a.add_argument("--seeds", default="0", help="comma-separated pretraining seeds (default 0)")
    a.add_argument("--jobs", type=int, default=1, help="runs pretrained at once, each on cores // jobs threads")
    a.add_argument("--random-floor", type=int, default=3,
                   help="random-init encoders whose final block is probed beside the levers (default 3)")
    a.add_argument("--no-e2e", action="store_true",
                   help="skip the reference: the same preset trained end to end per seed, probed beside the levers, "
                        "with each lever's time to leave the plateau in E2E's")
    a.add_argument("--probe-data", default=None,
                   help="data spec with train and test splits for the probe (default: the preset's: the grammar for "
                        "tiny, digits for tiny-scenes and deit-s)")
    a.add_argument("--runs", default=None, metavar="DIR",
                   help="where the lever (or pipeline) runs go (default: a temporary folder); finished lever runs "
                        "there are reused, not trained again")
    a.add_argument("--bench", dest="bench_json", default=None, metavar="JSON",
                   help="a `blockmae bench --json` result of the same preset: adds its isolated step times")
    q = p.add_argument_group("pipeline throughput (--pipeline)")
    q.add_argument("--pipeline", action="store_true",
                   help="instead: train the preset (simultaneous) in one process, as a K-stage pipeline under "
                        "torchrun (dist.mode=pipeline) and data parallel on the same K processes (dist.mode=ddp), "
                        "with --steps steps (default 60), and report clips/s and where each rank's time goes")
    q.add_argument("--stages", type=int, default=2, help="K: pipeline stages = processes (default 2)")


def run_from_args(args: argparse.Namespace) -> dict:
    if getattr(args, "accuracy", False):
        return run_accuracy_from_args(args)
    if getattr(args, "pipeline", False):
        return run_pipeline(args.preset, args.stages, args.steps or 60, args.threads, args.batch, args.sets,
                            args.runs, args.device, args.json_path, repeats=args.repeats)
    return run(args.preset, args.device, args.configs, args.quick, args.repeats, args.threads, args.batch,
               args.warmup, args.steps, args.sets, args.compile, args.flops, args.in_process, args.json_path,
               timer=args.timer, malloc=args.malloc)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="blockmae bench", description=DESCRIPTION,
                                     epilog=f"example:\n  {EXAMPLE}", formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))
