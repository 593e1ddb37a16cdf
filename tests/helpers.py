"""Shared test helpers (a plain module: several test folders have a conftest.py of their own)."""

import math
import os
import socket
from contextlib import contextmanager

import av
import numpy as np
import torch
from threadpoolctl import threadpool_limits

from blockmae.analysis.rows import make_row
from blockmae.config import load_config


@contextmanager
def one_thread():
    """Torch and BLAS (numpy, scipy: scikit-learn's probes) on one thread inside the block, restored after. The
    tests' models and probes are tiny: a second thread only waits on each small op (up to 10x slower on a busy 2-core
    machine; a 24 x 64 probe fit took 0.2-0.4 s on two BLAS threads there, 0.025 s on one)."""
    import sklearn.linear_model  # noqa: F401 - a limit binds only the libraries loaded: scipy's BLAS, sklearn's OpenMP

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(threads)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def join_as_rank(rank: int, world: int, port: int) -> None:
    """This process as rank `rank` of `world` on this machine (torch.distributed's env:// variables), one thread."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world))
    torch.set_num_threads(1)


def small_config(*overrides: str):
    """A model small enough for unit tests; every shape still comes from the config."""
    base = ["model.frames=4", "model.image_size=32", "model.patch=8", "model.width=64", "model.heads=4",
            "model.depth=4", "model.decoder.width=32", "model.decoder.heads=2", "model.decoder.depth=1"]
    return load_config(None, base + list(overrides))


def stitching_rows(penalties: dict[tuple[str, str], float], runs: dict[str, str], blocks=(1, 2),
                   jitter: float = 0.2) -> list[dict]:
    """Stitching rows with a given probe penalty (pp) per (regime A, regime B), +-`jitter` pp alternating over
    pairs, for every ordered pair of `runs`."""
    rows, sign = [], 1.0
    for a, regime in runs.items():
        for b, regime2 in runs.items():
            if a == b:
                continue
            meta = {"run": a, "regime": regime, "model": "vit", "K": 3, "seed": 0}
            sign = -sign
            for k in blocks:
                pp = penalties[(regime, regime2)] + sign * jitter
                for metric, value in (("stitch_loss", 1.1), ("stitch_loss_own", 1.0), ("stitch_probe_own", 0.8),
                                      ("stitch_probe", 0.8 - pp / 100)):
                    rows.append(make_row(meta, "digits", "test", metric, value, block=k, run2=b, regime2=regime2))
    return rows


def continuation_rows(e2e: list[float], sim: list[float], continued: dict[int, list[float]]) -> list[dict]:
    """Continuation rows: E2E and simultaneous as trained, and simultaneous continued with k stages frozen (per
    seed, probe accuracies in %)."""
    rows = []
    for regime, values in (("e2e", e2e), ("simultaneous", sim)):
        for seed, v in enumerate(values):
            meta = {"run": f"{regime}-s{seed}", "regime": regime, "model": "vit", "K": 4, "seed": seed}
            rows.append(make_row(meta, "scenes", "test", "continue_start_probe", v / 100))
    for k, values in continued.items():
        for seed, v in enumerate(values):
            meta = {"run": f"simultaneous-s{seed}", "regime": "simultaneous", "model": "vit", "K": 4, "seed": seed}
            rows.append(make_row(meta, "scenes", "test", "continued_probe", v / 100, block=k, continue_steps=10))
    return rows


def write_video(path, shade: int, frames: int = 10, size: int = 32, step: int = 5, bar: int | None = None) -> None:
    """A small MPEG-4 clip whose look is set by `shade` alone: a flat frame brightening by `step` per frame and a
    bar (value `bar`, default 3 x shade) growing to the right."""
    bar = (3 * shade) % 256 if bar is None else bar
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = size, size, "yuv420p"
        for i in range(frames):
            image = np.full((size, size, 3), (shade + step * i) % 256, np.uint8)
            image[: size // 2, : (i + 1) * size // frames] = bar
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


# Synthetic analysis rows, shared by the figure, report, rows and demo-table tests.
TARGETS = {
    "digits": ["digit"],
    "gratings": ["spatial_frequency", "orientation", "temporal_frequency", "contrast", "colour"],
    "gratings2": ["sf_left", "sf_right", "sf_delta", "sf_higher_side", "sf_match", "orientation_left",
                  "orientation_right", "orientation_delta", "orientation_match"],
}
SPLITS = {"digits": "test", "gratings": None, "gratings2": None}
CHANCE = {"digits": 0.11, "gratings": 0.2, "gratings2": 0.25}  # the first target's majority share
# what the trivial predictors score (the trained runs reach 0.60-0.62: between the copy and the oracle)
TRIVIAL_LOSSES = {"zero": 1.0, "position_mean": 0.93, "visible_mean": 0.64, "oracle_constant": 0.55}


def synthetic_rows(regimes=("e2e", "simultaneous"), seeds=(0, 1), Ks=(4,), models=("vit-tiny",),
                   datasets=("digits", "gratings", "gratings2"), layers_per_block=2, steps=(0, 50, 100),
                   random_floor=(0, 1, 2), seed=0) -> list[dict]:
    """Rows shaped like `blockmae analyze` writes them, with the paper's qualitative trends:
    blockwise is better early and plateaus, E2E keeps improving; the random floor (one run per seed in
    `random_floor`) is flat and low. Every run has chance rows and the four trivial predictors' losses."""
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    configs = [(m, r, K, s) for m in models for r in regimes for K in Ks for s in seeds]
    configs += [(m, "random", K, s) for m in models for K in Ks for s in random_floor or ()]
    runs = []
    for model, regime, K, s in configs:
        run = f"{model}-{regime}-K{K}-s{s}" if regime != "random" else f"random-{model}-K{K}-s{s}"
        runs.append(run)
        meta = {"run": run, "regime": regime, "model": model, "K": K, "seed": s}
        L = K * layers_per_block
        size = 0.05 if model.endswith("small") else 0.0

        def add(dataset, metric, value, **kw):
            row = {**meta, "dataset": dataset, "split": SPLITS[dataset], "block": None, "layer": None,
                   "metric": metric, "target": "mean", "value": float(value), "step": None}
            row.update(kw)
            rows.append(row)

        def quality(depth):  # depth in (0, 1]
            if regime == "random":
                return 0.15
            if regime == "e2e":
                return 0.35 + 0.45 * depth + size
            return 0.55 + 0.18 * min(depth, 0.5) + 0.02 * depth + size - 0.01 * (K - 4)

        for dataset in datasets:
            targets = TARGETS[dataset]
            chances = [CHANCE[dataset] + 0.02 * t for t in range(len(targets))]
            for target, chance in zip(targets + ["mean"], chances + [float(np.mean(chances))]):
                add(dataset, "chance_acc", chance, target=target)
            for key, loss in TRIVIAL_LOSSES.items():
                add(dataset, f"recon_loss_{key}", loss)
            for unit, n in (("block", K), ("layer", L)):
                for i in range(1, n + 1):
                    accs = [min(0.99, quality(i / n) * (0.8 + 0.4 * t / max(1, len(targets) - 1))
                                + rng.normal(0, 0.015)) for t in range(len(targets))]
                    for target, acc in zip(targets + ["mean"], accs + [float(np.mean(accs))]):
                        add(dataset, "probe_acc", acc, target=target, **{unit: i})
            for k in range(1, K + 1):
                q = quality(k / K)
                maps = [0.4 * q + rng.normal(0, 0.01) for _ in targets]
                for target, m in zip(targets + ["mean"], maps + [float(np.mean(maps))]):
                    add(dataset, "retrieval_map", m, block=k, target=target)
                    add(dataset, "retrieval_r@1", min(1, 1.5 * m), block=k, target=target)
                add(dataset, "recon_loss", (0.9 if regime == "random" else 0.62 - 0.02 * k / K)
                    + rng.normal(0, 0.004), block=k)
                drops = [0.1 + 0.3 * k / K + rng.normal(0, 0.02) for _ in targets]
                for target, d in zip(targets + ["mean"], drops + [float(np.mean(drops))]):
                    add(dataset, "occlusion_drop", d, block=k, target=target)
                add(dataset, "token_similarity", 0.2 + 0.1 * k / K + rng.normal(0, 0.01), block=k)
                add(dataset, "effective_rank", 20 + 5 * k + rng.normal(0, 1), block=k)
                if k < K:
                    c = (0.97 if regime == "e2e" else 0.985) + 0.01 * k / K + rng.normal(0, 0.003)
                    add(dataset, "cka_linear", min(c, 1.0), block=k, block2=k + 1)
                    add(dataset, "cka_rbf", min(c - 0.01, 1.0), block=k, block2=k + 1)
                    # the new rows draw no random numbers, so the rows above stay what they were
                    add(dataset, "cka_linear_debiased", min(c, 1.0) - 0.03 - 0.002 * s, block=k, block2=k + 1)
                    add(dataset, "mutual_knn", 0.3 + 0.3 * k / K + 0.01 * s, block=k, block2=k + 1)
                add(dataset, "twonn_id", 14 - 4 * k / K + 0.5 * s, block=k)
            for i in range(1, L + 1):
                add(dataset, "token_similarity", 0.2 + 0.1 * i / L + rng.normal(0, 0.01), layer=i)
                add(dataset, "update_norm", 0.5 / i, layer=i)
                add(dataset, "twonn_id", 14 - 4 * i / L + 0.5 * s, layer=i)
                if i < L:
                    add(dataset, "mutual_knn", 0.4 + 0.2 * i / L, layer=i, layer2=i + 1)
                for j in range(1, L + 1):
                    add(dataset, "cka_linear", 1.0 if i == j else math.exp(-abs(i - j) / (L / 2)) + rng.normal(0, 0.01),
                        layer=i, layer2=j)
            if regime != "random":
                for step in steps:
                    frac = (step + 10) / (max(steps) + 10)
                    add(dataset, "probe_acc", quality(1.0) * frac + rng.normal(0, 0.01), block=K, step=step)
                    add(dataset, "retrieval_map", 0.4 * quality(1.0) * frac, block=K, step=step)
                    add(dataset, "recon_loss", 1.0 - 0.4 * frac, block=K, step=step)
    # across-run CKA on the first dataset, every pair of runs with the same K
    metas = {r["run"]: r for r in rows}
    for a in range(len(runs)):
        for b in range(a + 1, len(runs)):
            ra, rb = metas[runs[a]], metas[runs[b]]
            if ra["K"] != rb["K"]:
                continue
            for p in range(1, ra["K"] + 1):
                for q in range(1, rb["K"] + 1):
                    rows.append({k: ra[k] for k in ("run", "regime", "model", "K", "seed")} | {
                        "dataset": datasets[0], "split": None, "block": p, "layer": None, "metric": "cka_linear",
                        "target": "mean", "value": float(np.clip(0.9 - 0.15 * abs(p - q) + rng.normal(0, 0.02), 0, 1)),
                        "step": None, "block2": q, "run2": rb["run"]})
    return rows


def synthetic_samples(runs=("e2e-s0 (digits)", "simultaneous-K4-s0 (digits)"), K=4, T=4, H=32, W=32, C=3):
    rng = np.random.default_rng(0)
    out = []
    for run in runs:
        clip = rng.random((T, H, W, C)).astype(np.float32)
        masked = clip.copy()
        masked[:, :16, :16] = 0.5
        out.append({"run": run, "input": clip, "masked": masked,
                    "stages": [clip + rng.normal(0, 0.3 / (k + 1), clip.shape) for k in range(K)]})  # some out of [0,1]
    return out


def interface_rows(seeds=(0, 1), K=4) -> list[dict]:
    """`blockmae interfaces` rows for the synthetic runs: stitching every ordered pair at every boundary, and the
    simultaneous runs continued with stages 1..k frozen."""
    runs = {f"{regime}-K{K}-s{seed}": (regime, seed) for regime in ("e2e", "simultaneous") for seed in seeds}
    rows = []
    for a, (regime, seed) in runs.items():
        meta = {"run": a, "regime": regime, "model": "vit-tiny", "K": K, "seed": seed}
        for b, (regime2, _) in runs.items():
            for k in range(1, K) if a != b else ():
                for metric, value in (("stitch_loss", 0.71 + 0.01 * k), ("stitch_loss_own", 0.7),
                                      ("stitch_probe", 0.5 - 0.01 * k), ("stitch_probe_own", 0.5)):
                    rows.append(make_row(meta, "digits", "test", metric, value, block=k, run2=b, regime2=regime2))
        rows.append(make_row(meta, "digits", "test", "continue_start_probe", 0.5 + 0.05 * (regime == "e2e")))
        for k in range(K) if regime == "simultaneous" else ():
            rows.append(make_row(meta, "digits", "test", "continued_probe", 0.55 - 0.01 * k, block=k,
                                 continue_steps=10))
    return rows
