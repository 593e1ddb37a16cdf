"""Shared test helpers (a plain module: several test folders have a conftest.py of their own)."""

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
