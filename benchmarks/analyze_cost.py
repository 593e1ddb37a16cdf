"""What `blockmae analyze` costs on a real-sized checkpoint: time per clip and peak memory per batch.

    python benchmarks/analyze_cost.py [--batch 16] [--batches 3] [--threads N] [--device cpu] [--json out.json]

1. Writes H.264 videos (320x240, 25 fps, 3 s, UCF101's frame size) with random labels among 4 classes into a
   temporary folder, and a VideoMAE-Base-shaped Hugging Face checkpoint (ViT-B, 16 frames x 224 px, patch 16,
   tubelet 2; random weights: nothing is downloaded).
2. One batch: the peak resident memory of encoding a batch the way extraction does now (`token_states`, one
   layer at a time) against the way it did before (`encode(at="layers")`, every layer's tokens kept), each in a
   fresh process.
3. `blockmae analyze CKPT --data list:videos.txt --blocks 4 --no-occlusion` on one batch of clips and on
   `--batches` batches, each in a fresh process: wall time, the extraction's seconds per clip (timings.json) and
   the peak resident memory. The memory of the longer run should exceed the one-batch run's only by the pooled
   features (12 layers x 768 floats per clip).

Each process's peak is its own `ru_maxrss` (the probes' worker processes are not in it).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing

from blockmae.bench.machine import machine  # noqa: E402

WIDTH, HEIGHT, FPS, SECONDS, CLASSES = 320, 240, 25, 3, 4
GIB = 1024 ** 3

# A child process: run `code` with the arguments, then print its own peak resident memory.
CHILD = """
import resource, sys
{code}
print("PEAK_RSS_BYTES", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""

ONE_BATCH = """
import torch
from blockmae import load
torch.set_num_threads(int(sys.argv[3]))
model = load(sys.argv[1]).eval()
c = model.cfg
video = torch.randn(int(sys.argv[2]), c.channels, c.frames, c.image_size, c.image_size)
with torch.no_grad():
    if sys.argv[4] == "all-layers":
        pooled = [x.mean(dim=1) for x in model.encode(video, at="layers")]
    else:
        pooled = [x.mean(dim=1) for x in model.token_states(video)]
"""

ANALYZE = "from blockmae.cli import main\nmain(sys.argv[1:])"


def write_videos(folder: Path, count: int) -> Path:
    """`count` textured clips panning with a moving block (so the codec works as on real footage) and a list file
    with random labels; returns the list file."""
    import av

    rng = np.random.default_rng(0)
    lines = []
    for i in range(count):
        frames = SECONDS * FPS
        texture = np.kron(rng.integers(0, 256, (HEIGHT // 4, (WIDTH + 2 * frames) // 4, 3), dtype=np.uint8),
                          np.ones((4, 4, 1), np.uint8))
        name = f"v_Bench_g{i // 2 + 1:02d}_c{i % 2 + 1:02d}.mp4"
        with av.open(str(folder / name), "w") as container:
            stream = container.add_stream("libx264", rate=FPS)
            stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
            for t in range(frames):
                image = texture[:HEIGHT, 2 * t:2 * t + WIDTH].copy()
                x = int((WIDTH - 60) * (0.5 + 0.5 * np.sin(t / 10 + i)))
                image[90:150, x:x + 60] = (40 * i) % 256
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        lines.append(f"{name} {rng.integers(CLASSES)}")
    path = folder / "videos.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_checkpoint(folder: Path) -> Path:
    from transformers import VideoMAEConfig, VideoMAEForPreTraining

    path = folder / "videomae-base-random"
    VideoMAEForPreTraining(VideoMAEConfig()).save_pretrained(path)  # the defaults are VideoMAE-Base at 16x224
    return path


def child(code: str, args: list[str]) -> tuple[int, str]:
    result = subprocess.run([sys.executable, "-c", CHILD.format(code=code), *args], capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"child failed:\n{result.stderr[-3000:]}")
    peak = next(int(line.split()[1]) for line in result.stdout.splitlines() if line.startswith("PEAK_RSS_BYTES"))
    return peak, result.stdout + result.stderr


def analyze_run(checkpoint: Path, videos: Path, clips: int, out: Path, args) -> dict:
    import time

    started = time.perf_counter()
    peak, output = child(ANALYZE, ["analyze", str(checkpoint), "--data", f"list:{videos},n={clips}", "--blocks", "4",
                                   "--no-occlusion", "--batch-size", str(args.batch), "--threads", str(args.threads),
                                   "--device", args.device, "--out", str(out)])
    wall = time.perf_counter() - started
    timings = json.loads((out / "timings.json").read_text())
    estimate = next((line for line in output.splitlines() if "first batch" in line), "")
    return {"clips": clips, "wall_s": wall, "extraction_s": timings["extraction"],
            "s_per_clip": timings["extraction"] / clips, "peak_gib": peak / GIB, "timings": timings,
            "estimate_line": estimate.strip()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--batches", type=int, default=3, help="batches in the longer analyze run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        videos = write_videos(tmp, args.batch * args.batches)
        checkpoint = write_checkpoint(tmp)
        batch = {}
        for way in ("all-layers", "streamed"):
            peak, _ = child(ONE_BATCH, [str(checkpoint), str(args.batch), str(args.threads), way])
            batch[way] = peak / GIB
            print(f"one batch of {args.batch}, {way}: peak {peak / GIB:.2f} GiB", flush=True)
        runs = []
        for n in (args.batch, args.batch * args.batches):
            run = analyze_run(checkpoint, videos, n, tmp / f"analysis-{n}", args)
            runs.append(run)
            print(f"analyze {n} clips: {run['wall_s']:.0f} s wall, {run['s_per_clip']:.2f} s per clip extracted, "
                  f"peak {run['peak_gib']:.2f} GiB\n  {run['estimate_line']}", flush=True)
    pooled_gib = (runs[1]["clips"] - runs[0]["clips"]) * 12 * 768 * 4 / GIB
    result = {"machine": machine(args.device), "model": "VideoMAE-Base shape (ViT-B/16, 16x224x224, tubelet 2)",
              "batch": args.batch, "threads": args.threads, "one_batch_peak_gib": batch, "analyze": runs,
              "longer_minus_one_batch_gib": runs[1]["peak_gib"] - runs[0]["peak_gib"],
              "pooled_features_added_gib": pooled_gib}
    print(f"one-batch peak, streamed vs all layers kept: {batch['streamed']:.2f} vs {batch['all-layers']:.2f} GiB "
          f"({batch['all-layers'] / batch['streamed']:.2f}x)\n"
          f"analyze peak, {runs[1]['clips']} vs {runs[0]['clips']} clips: +{result['longer_minus_one_batch_gib']:.3f} "
          f"GiB (the extra pooled features: {pooled_gib * 1024:.1f} MiB)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
