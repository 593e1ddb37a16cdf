"""The reconstructions figure: what each stage's decoder fills in, next to the input and the masked input."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .style import new_figure, save, styled


def _strip(clip: np.ndarray, frames: list[int]) -> np.ndarray:
    """Chosen frames of a (T, H, W, C) clip side by side, a thin white gap between, values clipped to [0, 1]."""
    clip = np.clip(np.nan_to_num(np.asarray(clip, dtype=np.float32)), 0.0, 1.0)
    if clip.ndim == 3:
        clip = clip[..., None]
    if clip.shape[-1] == 2 or clip.shape[-1] > 3:
        clip = clip[..., :3] if clip.shape[-1] > 3 else clip.mean(-1, keepdims=True)
    gap = np.ones((clip.shape[1], max(1, clip.shape[2] // 16), clip.shape[3]), np.float32)
    parts = []
    for f in frames:
        parts += [clip[min(f, clip.shape[0] - 1)], gap]
    return np.concatenate(parts[:-1], axis=1)


@styled
def fig_reconstructions(samples: list[dict] | None, out_path: Path, max_rows: int = 16) -> list[Path]:
    """Rows = clips (labelled with their run), columns = input, masked input (hidden tubelets grey), then each
    stage's reconstruction; each cell shows the first and the middle frame. Returns [] without samples."""
    samples = [s for s in (samples or []) if s.get("input") is not None][:max_rows]
    if not samples:
        return []
    T = np.asarray(samples[0]["input"]).shape[0]
    frames = sorted({0, T // 2})
    K = max(len(s.get("stages") or []) for s in samples)
    cols = ["Input", "Masked input"] + [f"Stage {k} recon." for k in range(1, K + 1)]
    H, W = np.asarray(samples[0]["input"]).shape[1:3]
    cell_w = 1.25 * len(frames)
    cell_h = max(0.9, cell_w * H / (W * len(frames) * 1.06))
    fig = new_figure(1.6 + cell_w * len(cols), 0.6 + cell_h * len(samples))
    axes = np.atleast_2d(fig.subplots(len(samples), len(cols), squeeze=False))
    for i, s in enumerate(samples):
        images = [s["input"], s.get("masked")] + list(s.get("stages") or [])
        for j, ax in enumerate(axes[i]):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            for spine in ax.spines.values():
                spine.set_visible(False)
            if j < len(images) and images[j] is not None:
                strip = _strip(images[j], frames)
                if strip.shape[-1] == 1:
                    ax.imshow(strip[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
                else:
                    ax.imshow(strip, interpolation="nearest")
            if i == 0:
                ax.set_title(cols[j])
        axes[i, 0].set_ylabel(str(s.get("run", "")), rotation=0, ha="right", va="center", fontsize=8)
    shown = " and ".join(str(f + 1) for f in frames)
    fig.suptitle(f"Masked reconstructions per stage (frames {shown} of {T} in each cell)")
    return [save(fig, Path(out_path))]
