"""Command line: argument parsing only; the work happens in the layers below."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from .config import ConfigError, builtin_configs, config_path
from .errors import CheckpointWriteError, Interrupted, NonFiniteLoss

def cmd_pretrain(args) -> None:
    from .config import load_config
    from .train.engine import pretrain
    from .train.logging import loss_table

    cfg = load_config(config_path(args.config), args.overrides)
    summary = pretrain(cfg, args.out)
    if summary is None:  # torchrun: a rank other than the one that wrote the run directory
        return
    print(loss_table({cfg.train.regime: summary}))
    if summary["skipped"]:
        print(f"skipped {summary['skipped']} unreadable samples (replaced by others), e.g. {summary['skipped_files'][0]}")
    print(f"run directory: {args.out}")


def cmd_convert(args) -> None:
    from . import hub

    src = Path(args.src)
    if args.to == "blockmae":
        out = hub.prepare_target(args.out, directory=True, force=args.force)
        if src.is_dir():
            out = hub.import_hf(src, out)
        else:
            if args.frames is None or args.image_size is None:
                raise ConfigError("official VideoMAE weights do not record the clip shape: pass --frames and --image-size")
            out = hub.import_official(src, out, args.frames, args.image_size, args.heads, args.decoder_heads)
        print(f"wrote blockmae run directory {out} (use it with blockmae.load or blockmae analyze)")
        return
    model = hub.load(src)
    stage = hub.stage_index(model, args.stage)
    if args.to == "hf":
        out = hub.save_hf(model, hub.prepare_target(args.out, directory=True, force=args.force), stage)
        print(f"wrote Hugging Face directory {out} with stage {stage + 1}'s decoder "
              "(VideoMAEForPreTraining.from_pretrained reads it)")
    else:
        out = hub.save_official(model, hub.prepare_target(args.out, directory=False, force=args.force), stage)
        print(f"wrote official VideoMAE checkpoint {out} with stage {stage + 1}'s decoder")


def cmd_datasets(args) -> None:
    if args.action == "check":
        return cmd_datasets_check(args)
    from .data import available_datasets

    for info in available_datasets():
        print(f"{info['name']}: {info['description']}")
        if info["targets"]:
            print(f"    targets: {', '.join(info['targets'])}")
        for key, opt in info.get("options", {}).items():
            print(f"    {key + '=' + str(opt['default']):<22} {opt.get('help', '')}")
        print(f"    example: {info['example']}\n")


def cmd_datasets_check(args) -> None:
    import json

    from .data.check import check_dataset, format_report

    if not args.spec:
        raise ConfigError("usage: blockmae datasets check SPEC [--split train] [--frames N] [--size N]")
    report = check_dataset(args.spec, args.split, frames=args.frames, image_size=args.size)
    print(format_report(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    if report["failed"]:
        sys.exit(1)


def cmd_analyze(args) -> None:
    from .report.analyze import analyze
    from .analysis.options import Options
    from .analysis.suite import extraction_workers
    from .data.spec import check_spec

    for spec in args.data:  # every spec checked before hours of work on the first ones
        check_spec(spec)
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise ConfigError(f"--out {args.out} is a file; give a directory for the analysis")
    created = not Path(args.out).exists()  # only a directory this call creates may be removed after a failure
    if args.batch_size < 1 or args.workers < 0 or (args.threads is not None and args.threads < 1):
        raise ConfigError(f"--batch-size {args.batch_size}, --workers {args.workers} and --threads {args.threads}: "
                          "give a batch size >= 1, workers >= 0 and threads >= 1")
    options = Options(batch_size=args.batch_size, num_workers=args.workers, layers=not args.blocks_only,
                      occlusion=not args.no_occlusion, dynamics=args.dynamics, save_features=args.save_features,
                      device=args.device, probe=args.probe, strict=args.strict, attentive=args.attentive,
                      blocks=args.blocks, threads=args.threads, figures=not args.no_figures)
    with extraction_workers(options) as main:  # under torchrun: every rank extracts a shard, rank 0 analyses
        if main:
            try:
                report = analyze(args.sources, args.data, args.out, options, with_random_floor=args.random_floor)
            except BaseException:
                if created:
                    _remove_if_empty(Path(args.out))
                raise
            print(f"metrics: {Path(args.out) / 'metrics.jsonl'}\nreport:  {report}")


def _blocks(text: str) -> int | list[int]:
    """--blocks: K, or layer counts separated by commas."""
    try:
        counts = [int(n) for n in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of equal blocks (e.g. 4) or layer counts "
                                         "separated by commas (e.g. 3,3,6)") from None
    return counts[0] if len(counts) == 1 else counts


def _remove_if_empty(out: Path) -> None:
    """Remove `out` if it holds no file at all (cached features are kept: a re-run reuses them)."""
    if out.is_dir() and not any(p.is_file() for p in out.rglob("*")):
        shutil.rmtree(out)


def cmd_interfaces(args) -> None:
    from .experiments.interfaces import interfaces
    from .data.spec import check_spec

    check_spec(args.data)
    runs = [args.run_a, args.run_b, *args.runs]
    for run in runs:  # a missing run is named before any stitching starts
        if not Path(run).exists():
            raise FileNotFoundError(f"run directory {run} does not exist")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise ConfigError(f"--out {args.out} is a file; give a directory for the stitching results")
    if args.steps < 0 or args.continue_steps < 0 or not (args.steps or args.continue_steps):
        raise ConfigError(f"--steps {args.steps} and --continue-steps {args.continue_steps} must be >= 0, and one of "
                          "them positive (stitching, continuation or both)")
    written = interfaces(runs, args.data, args.out, stitch_steps=args.steps, continue_steps=args.continue_steps,
                         boundaries=args.boundaries, batch_size=args.batch_size, device=args.device, say=print)
    print("\n".join(line for line in Path(written["report"]).read_text().splitlines() if line.startswith("**Verdict")))
    print("\n".join(f"{key + ':':<8} {path}" for key, path in written.items()))


def _boundaries(text: str) -> list[int]:
    """--boundaries: block numbers separated by commas."""
    try:
        return [int(k) for k in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} must be block numbers separated by commas, e.g. 1,2,3") from None


def cmd_bench(args) -> None:
    from .bench import run_from_args

    run_from_args(args)


def cmd_demo(args) -> None:
    from .demo import run_demo

    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise ConfigError(f"--out {args.out} is a file; give a directory for the demo")
    run_demo(Path(args.out), quick=args.quick)


def cmd_study(args) -> None:
    from .report.findings import findings_markdown
    from .study import run_study

    report, _, _, findings = run_study(args.study, args.out, jobs=args.jobs, publish=args.publish)
    print(findings_markdown(findings))
    if args.publish:
        print(f"published: {args.publish}")
    print(f"report: {report}")


def cmd_screen(args) -> None:
    from .screen import run_screen, screen_markdown

    result = run_screen(args.config, args.overrides, args.out, data=args.data,
                        seeds=list(range(args.seeds)), snapshots=args.snapshots, random_floor=args.random_floor,
                        jobs=args.jobs, attentive=args.attentive)
    print(screen_markdown(result))
    print(f"curves: {Path(args.out) / 'screen.png'}")


EXAMPLES = {
    "pretrain": "blockmae pretrain tiny train.regime=sequential model.partition=4 train.max_steps=300 --out runs/seq",
    "convert": "blockmae convert runs/seq hf_dir --to hf    |    blockmae convert hf_dir runs/imported --to blockmae",
    "analyze": "blockmae analyze runs/e2e runs/sim --data hierarchy,symbols=8,rules=4,n=512 --random-floor "
               "--out runs/analysis",
    "interfaces": "blockmae interfaces runs/e2e-s0 runs/e2e-s1 runs/sim-s0 runs/sim-s1 "
                  "--data hierarchy,symbols=8,rules=4,n=512 --out runs/interfaces",
    "datasets": "blockmae datasets    |    blockmae datasets check ucf101:/data/UCF101,split=1 --frames 16",
    "demo": "blockmae demo --out runs/demo",
    "screen": "blockmae screen tiny --seeds 3 --random-floor 3 --out runs/screen",
    "study": "blockmae study studies/hierarchy/study.yaml --out runs/hierarchy --publish docs/results/hierarchy",
    "bench": "blockmae bench --preset tiny --threads 1 --repeats 3 --json bench-tiny.json    |    "
             "blockmae bench --accuracy --bench bench-tiny.json --json levers-tiny.json",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="blockmae", description="Blockwise and end-to-end masked-autoencoder pretraining of video transformers, "
                                     "and depth-wise analysis of their representations.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_: str, fn):
        p = sub.add_parser(name, help=help_, description=help_, epilog=f"example:\n  {EXAMPLES[name]}",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(fn=fn)
        return p

    p = add("pretrain", "Pretrain a model (any regime); re-running with the same --out resumes.", cmd_pretrain)
    p.add_argument("config", help=f"YAML config file or built-in name ({', '.join(builtin_configs())})")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.lr=1e-3 model.partition=[6,6]")
    p.add_argument("--out", required=True, help="run directory (created; resumed if it has a checkpoint)")

    p = add("convert", "Convert weights between blockmae, Hugging Face VideoMAE and official VideoMAE.", cmd_convert)
    p.add_argument("src", help="run dir or checkpoint (to hf/official); HF dir or official .pth (to blockmae)")
    p.add_argument("out", help="output directory (hf, blockmae) or .pth file (official)")
    p.add_argument("--to", choices=["hf", "official", "blockmae"], required=True)
    p.add_argument("--stage", type=int, default=None,
                   help="whose decoder to export, counted from 1 like every stage (default: the top one)")
    p.add_argument("--force", action="store_true", help="write into a non-empty directory or over an existing file "
                                                        "(never into a run directory)")
    p.add_argument("--frames", type=int, help="official weights only: frames per clip")
    p.add_argument("--image-size", type=int, help="official weights only: clip height/width")
    p.add_argument("--heads", type=int, help="official weights only: encoder heads (default: from the known VideoMAE "
                                             "shapes; required for any other width)")
    p.add_argument("--decoder-heads", type=int, help="official weights only: decoder heads (default: from the known "
                                                     "VideoMAE shapes; required for any other width)")

    p = add("analyze", "Depth-wise analysis of runs, checkpoints or Hugging Face VideoMAE directories: "
                       "metrics.jsonl, figures and report.html.", cmd_analyze)
    p.add_argument("sources", nargs="+", help="run directories, checkpoint directories or Hugging Face VideoMAE "
                                              "directories (every one is analysed on every --data)")
    p.add_argument("--data", action="append", required=True,
                   help="data spec (repeatable), e.g. digits, gratings,n=2000, ucf101:/data/UCF101,split=1 or "
                        "list:train.txt,test=test.txt; n=N on any spec takes a label-stratified subset "
                        "(`blockmae datasets` lists them). Required")
    p.add_argument("--out", required=True, help="output directory: metrics.jsonl, figures/, report.html and the "
                                                "feature cache a re-run reuses. Required")
    p.add_argument("--blocks", metavar="K|N,N,...", type=_blocks,
                   help="view every model as K equal blocks of its layers (e.g. 4), or blocks of these layer counts "
                        "(e.g. 3,3,6), so an end-to-end or Hugging Face checkpoint gets the same block figures as a "
                        "blockwise run; reconstruction rows stay at the blocks that end where a trained stage ends. "
                        "Default: each model's own stages (a Hugging Face checkpoint is one block)")
    p.add_argument("--random-floor", nargs="?", const=True, default=False, type=int, metavar="N",
                   help="also analyse N randomly initialised encoders (seeds 0..N-1) of the first source's shape, the "
                        "floor as a mean with a 95%% interval; without N: 3. Put it after the sources, or give N. "
                        "Default: none. Cost: each is one more source")
    p.add_argument("--no-occlusion", action="store_true",
                   help="skip the occlusion diagnostic. Default: on, which encodes every clip twice more (the "
                        "occluded passes): it doubles the feature extraction")
    p.add_argument("--no-figures", action="store_true",
                   help="write metrics.jsonl and the report's tables only, without figures/ (drawing them takes "
                        "about a second per figure). Default: figures drawn and embedded in the report")
    p.add_argument("--blocks-only", action="store_true",
                   help="probe and compare blocks only, not every layer (skips per-layer probes and layer x layer "
                        "CKA). Default: every layer too")
    p.add_argument("--probe", choices=["sklearn", "torch"], default="sklearn",
                   help="sklearn: the authors' probe; torch: every layer in one batched L-BFGS, meant for a GPU "
                        "(agrees within 0.5 pp; slower than sklearn on a 2-core CPU). Default: sklearn")
    p.add_argument("--attentive", action="store_true",
                   help="also fit V-JEPA's attentive probe (a learned query cross-attending over each block's tokens, "
                        "every layer's without --blocks-only): attentive_probe_acc rows. Default: off. Cost: the "
                        "token sets are kept (float16, at most 256 tokens per clip) in memory and in the cache, and "
                        "each target (and fold) trains 20 epochs: a minute or more per thousand clips on a CPU core, "
                        "far less on a GPU (--device)")
    p.add_argument("--dynamics", action="store_true",
                   help="also measure every saved checkpoint of run directories (final block). Default: off. Cost: "
                        "one more feature pass per checkpoint and split")
    p.add_argument("--save-features", action="store_true",
                   help="also write the pooled features as features/<run>_<dataset>_<split>.npz. Default: off")
    p.add_argument("--strict", action="store_true", help="an unreadable clip is an error. Default: it is left out of "
                                                          "every metric, counted and named")
    p.add_argument("--batch-size", type=int, default=64,
                   help="clips encoded at once; sets the memory (ViT-B at 16x224 on a CPU: docs/analyse-your-own.md "
                        "gives the measured peak per batch). Default: 64")
    p.add_argument("--workers", type=int, default=0,
                   help="DataLoader processes decoding video beside the encoding. Default: 0 (decode in the main "
                        "process)")
    p.add_argument("--threads", type=int,
                   help="CPU threads for the encoder and the probes (torch and BLAS; probes run this many "
                        "at once). Default: torch's choice, usually every core")
    p.add_argument("--device", default="auto",
                   help="where the models run: auto (a GPU when there is one), cpu, cuda or cuda:N. Default: auto")

    p = add("interfaces", "Test the interfaces blocks form: stitch every ordered pair of runs at every block boundary "
                          "(a trained affine map from run A's first k stages into run B's later ones) and say whether "
                          "regimes' interfaces differ; with --continue-steps, also continue each blockwise run with "
                          "stages 1..k frozen and the rest trained end to end, to say where its gap to E2E lives: "
                          "metrics.jsonl, interfaces.md, stitching.png, continuation.png.", cmd_interfaces)
    p.add_argument("run_a", metavar="RUN_A", help="run directory (or checkpoint)")
    p.add_argument("run_b", metavar="RUN_B", help="run directory (or checkpoint) of the same model shape and stages")
    p.add_argument("runs", nargs="*", metavar="RUN", help="more runs (seeds of a regime make the baseline)")
    p.add_argument("--data", required=True, help="data spec, e.g. scenes,n=512 (the stitch trains on its train split)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--steps", type=int, default=100, help="stitch training steps per pair and boundary (0: no stitching)")
    p.add_argument("--boundaries", type=_boundaries,
                   help="boundaries k to stitch at, e.g. 1,2,3 (default: every one, 1..K-1)")
    p.add_argument("--continue-steps", type=int, default=0,
                   help="frozen-base continuation: steps per blockwise run and k = 0..K-1 (default 0: none); the "
                        "continued runs are kept under OUT/continued and reused")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="auto")

    p = add("datasets", "List the data specs and their options, or check that a collection decodes.", cmd_datasets)
    p.add_argument("action", nargs="?", choices=["list", "check"], default="list")
    p.add_argument("spec", nargs="?", help="with check: the data spec to scan, e.g. list:train.txt,root=videos")
    p.add_argument("--split", default="train")
    p.add_argument("--frames", type=int, default=16, help="clip length the scan requires")
    p.add_argument("--size", type=int, default=112, help="clip size the scan renders")
    p.add_argument("--json", help="also write the report as JSON")

    p = add("bench", "Throughput and peak memory: ours (every regime and lever) against Hugging Face VideoMAE, "
                     "each configuration in a fresh process; --accuracy: the levers' probe accuracy.", cmd_bench)
    from .bench import add_arguments as add_bench_arguments  # argparse only: importing it does not import torch

    add_bench_arguments(p)

    p = add("demo", "Pretrain the tiny preset end to end on the built-in grammar (where depth pays), analyse it "
                    "against three random-init encoders, chance and the trivial predictors, and write a report "
                    "(about 10 minutes on 2 CPU cores).", cmd_demo)
    p.add_argument("--out", default="runs/demo", help="output directory")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run of the same path on a few clips and steps (about 2 minutes on 2 CPU cores)")

    p = add("screen", "Does depth pay in a setting? Train it end to end deep (K stages with monitors) and shallow "
                      "(the first stage's layers alone), score every snapshot's held-out loss beside the trivial "
                      "predictors and probe the final blocks: screen.md, screen.json, screen.png (learning curves).",
            cmd_screen)
    p.add_argument("config", help=f"YAML config file or built-in name ({', '.join(builtin_configs())})")
    p.add_argument("overrides", nargs="*", help="dotted overrides of the setting, e.g. data.train=hierarchy "
                                                "mask.ratio=0.75 train.max_steps=1200")
    p.add_argument("--out", required=True, help="work directory (runs, analysis, screen.*); re-running resumes. "
                                                "Required")
    p.add_argument("--data", help="evaluation data spec. Default: the setting's test data (or its train data's test "
                                  "split), 512 clips")
    p.add_argument("--seeds", type=int, default=1, help="seeds per encoder (0..N-1), for intervals: with one, neither "
                                                       "rule is measured and the page gives the means' reading. "
                                                       "Default: 1")
    p.add_argument("--snapshots", type=int, default=5, help="points on each learning curve. Default: 5")
    p.add_argument("--random-floor", type=int, default=1, help="random-init encoders probed beside (the probe rule's "
                                                              "interval needs 2 or more; claims use 3). Default: 1")
    p.add_argument("--jobs", type=int, default=2, help="runs trained at once. Default: 2")
    p.add_argument("--attentive", action="store_true",
                   help="also fit the attentive probe on every block and apply the probe rule under it (the rule is "
                        "met under either probe). Default: linear only. Cost: a few seconds per target and encoder "
                        "at 512 clips of the tiny shape on a CPU core")

    p = add("study", "Train a grid of runs (regimes x K x seeds), analyse them together and measure the paper's "
                     "findings; re-running resumes.", cmd_study)
    p.add_argument("study", help="study file (YAML): base config, overrides, grid, data (see studies/cpu_repro)")
    p.add_argument("--out", required=True, help="work directory (runs, checkpoints, analysis)")
    p.add_argument("--jobs", type=int, default=None, help="runs trained at once (default: the study file's)")
    p.add_argument("--publish", metavar="DIR", help="copy metrics, figures, findings and summaries (no checkpoints) here")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.fn(args)
    except (ConfigError, FileNotFoundError, ValueError, NonFiniteLoss, CheckpointWriteError) as e:
        if os.environ.get("BLOCKMAE_DEBUG"):  # the traceback, for bug reports
            raise
        sys.exit(f"blockmae {args.command}: error: {e}")
    except (Interrupted, KeyboardInterrupt) as e:
        print(f"\nblockmae {args.command}: {e or 'interrupted'}", file=sys.stderr)
        sys.exit(130)
