"""Does the video loader keep up with training? Clips/s delivered vs clips/s consumed, in one run.

    python benchmarks/data_throughput.py [--quick] [--json results.json]

1. Writes a few 320p (568x320) H.264 files of 2-4 s at 30 fps into a temporary folder
   (libx264 defaults: one keyframe per file, as with most re-encoded Kinetics clips).
2. Loader: clips/s a `DataLoader` delivers from `list:` training items (PyAV, VideoMAE
   sampling at rate 4, multi-scale crop, flip; uint8 clips), for 16 frames at 112 and 224 px
   and 0, 1 and 2 workers, plus the tiny-scenes preset's clip shape. Timed after the first
   batch, so worker start-up is not counted.
3. Training: clips/s of one training step (forward + backward + AdamW, the engine's memory-
   lean simultaneous step on uint8 clips normalised in the step) of the tiny-scenes preset as
   configured and of a ViT-S ("small": model.size=vit-small at 16x112, patch 16), after warm-up.

Loader and training are timed separately; in a real run they share the machine's cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing

from blockmae.bench.machine import machine as bench_machine  # noqa: E402
from blockmae.config import config_path, load_config  # noqa: E402
from blockmae.data import build_dataset, collate  # noqa: E402
from blockmae.data.transforms import to_model_input  # noqa: E402
from blockmae.model import BlockMAE
from blockmae.regimes import regime_plan  # noqa: E402
from blockmae.train.step import Micro, Stepper  # noqa: E402
from blockmae.train.optim import build_optimizer  # noqa: E402

WIDTH, HEIGHT, FPS = 568, 320, 30


def write_videos(folder: Path, durations: list[float]) -> list[Path]:
    """Textured scenes panning, with a moving block and sensor-like noise, so the codec works as on real footage."""
    import av

    paths = []
    rng = np.random.default_rng(0)
    for i, seconds in enumerate(durations):
        frames = int(seconds * FPS)
        # detail every 4 px: ~570 kbit/s, about what 320p clips cut from YouTube (Kinetics) carry
        coarse = rng.integers(0, 256, (HEIGHT // 4 + 2, (WIDTH + frames * 3) // 4 + 2, 3), dtype=np.uint8)
        texture = torch.nn.functional.interpolate(torch.from_numpy(coarse).permute(2, 0, 1)[None].float(),
                                                  scale_factor=4, mode="bilinear")[0].permute(1, 2, 0).byte().numpy()
        path = folder / f"clip {i:02d}.mp4"
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=FPS)
            stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
            for t in range(frames):
                image = texture[:HEIGHT, t * 3:t * 3 + WIDTH].copy()
                x = int((WIDTH - 80) * (0.5 + 0.5 * np.sin(t / 12 + i)))
                image[120:200, x:x + 80] = (255 - 40 * i) % 256
                noise = rng.integers(-6, 7, image.shape, dtype=np.int16)
                image = np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8)
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        paths.append(path)
    return paths


def loader_rate(spec: str, frames: int, size: int, workers: int, batch: int, batches: int, repeats: int = 1) -> float:
    dataset = build_dataset(spec + (f",clips={repeats}" if repeats > 1 else ""), "train", frames=frames, image_size=size)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers,
                                         collate_fn=collate, drop_last=True,
                                         generator=torch.Generator().manual_seed(0))
    it = iter(loader)
    next(it)  # worker start-up and first decode are not counted
    start, count = time.perf_counter(), 0
    for _ in range(batches):
        clips, _ = next(it)  # repeated clips (clips=R) come flattened: batch * R
        assert clips.shape[1:] == (frames, size, size, 3)
        count += clips.shape[0]
    rate = count / (time.perf_counter() - start)
    del it
    return rate


def training_rate(overrides: list[str], batch: int, steps: int, warmup: int = 2) -> dict:
    cfg = load_config(config_path("tiny-scenes"), overrides)
    m = cfg.model
    model = BlockMAE(m)
    optimizer = build_optimizer(model, 1e-4, cfg.train.weight_decay, cfg.train.betas)
    plan = regime_plan(cfg.train.regime, model.num_stages)
    stepper = Stepper(model, optimizer)
    gen = torch.Generator().manual_seed(0)
    clips = torch.randint(0, 256, (batch, m.frames, m.image_size, m.image_size, m.channels), dtype=torch.uint8,
                          generator=gen)

    def step():
        video = to_model_input(clips, m.pixel_mean, m.pixel_std)
        mask = model.make_mask(batch, gen, cfg.mask.kind, cfg.mask.ratio)
        stepper.step(plan, [Micro(video, mask)], 1, optimizer.param_groups[0]["lr"])

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - start) / steps
    return {"frames": m.frames, "size": m.image_size, "patch": m.patch, "width": m.width, "depth": m.depth,
            "partition": list(model.partition), "regime": cfg.train.regime, "batch": batch,
            "step_s": seconds, "clips_per_s": batch / seconds}


def machine() -> dict:
    import av

    info = bench_machine("cpu")  # the bench's machine description, plus the decoder's version
    return {**info, "torch_threads": torch.get_num_threads(), "av": av.__version__}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer files, batches and steps (about a minute)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads of this process (default: torch's choice); 1 is fairer on a busy machine")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    quick = args.quick
    batches, batch = (4, 8) if quick else (12, 8)
    steps = 3 if quick else 8
    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']} ({info['torch_threads']} threads), "
          f"PyAV {info['av']}, Python {info['python']}; load average {info['load_average_1min_at_start']:.1f} at start "
          "(other work on the machine slows every number below)")

    results = {"machine": info, "quick": quick, "loader": [], "training": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        durations = [(2.0, 3.0, 4.0)[i % 3] for i in range(3 if quick else 4)]
        paths = write_videos(tmp, durations)
        listing = tmp / "train.txt"
        copies = -(-(batches + 1) * batch // len(paths))  # enough entries for every timed batch
        listing.write_text("".join(f"{p.name} 0\n" for _ in range(copies) for p in paths))
        sizes = [p.stat().st_size * 8 / 1000 / seconds for p, seconds in zip(paths, durations)]
        results["videos"] = {"count": len(paths), "width": WIDTH, "height": HEIGHT, "fps": FPS,
                             "kbit_per_s": round(float(np.mean(sizes)))}
        print(f"wrote {len(paths)} H.264 files {WIDTH}x{HEIGHT} @ {FPS} fps, ~{np.mean(sizes):.0f} kbit/s, "
              f"in {time.perf_counter() - start:.1f} s")
        spec = f"list:{listing},rate=4"
        tiny = load_config(config_path("tiny-scenes")).model
        # (frames, size, clips per decoded video): the issue's shapes, then tiny-scenes' own, plain and
        # with repeated sampling (4 clips per decode, as VideoMAE v2 / MAE-ST use to cut decoding cost)
        shapes = [(16, 112, 1), (16, 224, 1), (tiny.frames, tiny.image_size, 1), (tiny.frames, tiny.image_size, 4)]
        for frames, size, repeats in shapes:
            for workers in (0, 1, 2):
                rate = loader_rate(spec, frames, size, workers, batch, batches, repeats)
                results["loader"].append({"frames": frames, "size": size, "clips_per_video": repeats,
                                          "workers": workers, "batch": batch, "clips_per_s": rate})
                print(f"  loader {frames:>2} x {size:>3} px, clips={repeats}, {workers} workers: {rate:6.1f} clips/s",
                      flush=True)

    presets = {
        "tiny": ([], 32),
        "small": (["model.size=vit-small", "model.width=384", "model.heads=6", "model.frames=16",
                   "model.image_size=112", "model.patch=16", "model.decoder.width=192", "model.decoder.heads=3"], 8),
    }
    for name, (overrides, batch_size) in presets.items():
        row = {"preset": name, **training_rate(overrides, batch_size, steps)}
        results["training"].append(row)
        print(f"  train  {name}: {row['frames']} x {row['size']} px, patch {row['patch']}, width {row['width']}, "
              f"{row['regime']} {row['partition']}, batch {row['batch']}: {row['step_s']:.2f} s/step, "
              f"{row['clips_per_s']:6.1f} clips/s", flush=True)

    print()
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
        print(f"wrote {args.json}")
    return results


def table(results: dict) -> str:
    rows = [f"{'clips/s':<36} {'0 workers':>10} {'1 worker':>10} {'2 workers':>10}"]
    by_shape: dict = {}
    for r in results["loader"]:
        key = (r["frames"], r["size"], r["clips_per_video"])
        by_shape.setdefault(key, {})[r["workers"]] = r["clips_per_s"]
    for (frames, size, repeats), rates in by_shape.items():
        label = f"loader {frames:>2} x {size:>3} px" + (f", {repeats} clips/decode" if repeats > 1 else "")
        rows.append(f"{label:<36} " + " ".join(f"{rates.get(w, 0):10.1f}" for w in (0, 1, 2)))
    for r in results["training"]:
        label = f"train {r['preset']} {r['frames']} x {r['size']} px, batch {r['batch']}"
        rows.append(f"{label:<36} {r['clips_per_s']:10.1f}   (one step: {r['step_s']:.2f} s)")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
