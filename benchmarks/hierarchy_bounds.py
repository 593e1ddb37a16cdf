"""How much depth can pay on `hierarchy`: the held-out loss of predictors that compose 1, 2, ... levels of inference.

    python benchmarks/hierarchy_bounds.py [--clips 256] [--ratios 0.75 0.9] [--settings 8,2 4,2] [--frames 8 4]
                                          [--size 32] [--balanced] [--json out.json]

For each grammar (symbols, rules), clip length and tube-mask ratio, on the test split at the tiny preset's shape
(32 px unless --size, patch 4, tubelet 2), the masked normalised-pixel loss of:
- predict 0, each position's mean target, the clip's visible mean and the per-clip oracle constant (the trivial
  predictors a model must beat; over 8 frames every cell's drift completes whole cycles, so the last two score
  like 0 there);
- `height h`: the exact posterior of each hidden leaf given the visible leaves inside its subtree of h levels
  (h = 1: its 2x2 block of siblings), predicting its expected target: the best a predictor composing h steps can do;
- the full tree (h = all levels): the Bayes-optimal loss, the floor of any model.
Depth can pay where the full tree lies far below height 1. Beside them, how well a logistic regression (2048 train
clips, held-out accuracy) reads each latent above the leaves (the probe targets root, level2, level1) from the
leaves taken one cell at a time, with no composition: from each cell's symbol, cell by cell (`<target>_from_leaf_
cells`, one-hot) and from how often each symbol occurs (`<target>_from_leaf_counts`); chance is 1 / symbols. A
target a linear probe reads from the cells alone cannot show a probe rising with depth.
`--balanced`: the grammars with `balanced=1` (rules = symbols), whose single cells say nothing of their ancestors.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing

from blockmae.data.hierarchy import CELL, HierarchyVideos, leaf_posterior  # noqa: E402
from blockmae.eval.reconstruction import trivial_losses  # noqa: E402
from blockmae.model.masking import make_mask  # noqa: E402
from blockmae.model.objective import pixel_targets  # noqa: E402

TUBELET = 2
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def targets_of(clips: torch.Tensor) -> torch.Tensor:
    """(B, T, H, W, C) uint8 clips -> (B, N, D) normalised-pixel targets, tokens in (t, row, col) order."""
    video = clips.permute(0, 4, 1, 2, 3).float() / 255
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1, 1), torch.tensor(STD).view(1, 3, 1, 1, 1)
    return pixel_targets((video - mean) / std, MEAN, STD, TUBELET, CELL)


def symbol_targets(ds: HierarchyVideos, frames: int) -> torch.Tensor:
    """(symbols, T', D): each leaf symbol's target at each tubelet time slot (a clip of that leaf alone)."""
    size = ds.image_size
    cells = size // CELL
    out = []
    for s in range(ds.grammar.symbols):
        tiles = np.broadcast_to(ds._primitives[s], (cells, cells) + ds._primitives[s].shape)
        clip = tiles.transpose(2, 0, 3, 1, 4, 5).reshape(frames, size, size, 3)
        t = targets_of(torch.from_numpy(np.floor(clip * 255 + 0.5).astype(np.uint8))[None])[0]
        out.append(t.view(frames // TUBELET, cells * cells, -1)[:, 0])
    return torch.stack(out)


def leaf_features(ds: HierarchyVideos) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per clip, the leaves read one cell at a time: `counts` (how often each symbol occurs) and `cells` (each
    cell's symbol, one-hot, cell by cell); and the targets (root first, leaf last)."""
    grids = [ds.grids(i) for i in range(len(ds))]
    eye = np.eye(ds.grammar.symbols)
    features = {"counts": np.stack([np.bincount(g[-1].ravel(), minlength=ds.grammar.symbols) for g in grids]),
                "cells": np.stack([eye[g[-1].ravel()].ravel() for g in grids])}
    return features, np.array([[int(grid[0, 0]) for grid in g] for g in grids])


def linear_from_leaves(symbols: int, rules: int, balanced: bool, test: HierarchyVideos,
                       train_clips: int = 2048) -> dict[str, float]:
    """Held-out accuracy of a logistic regression reading each latent above the leaves from the leaves taken one
    cell at a time: `<target>_from_leaf_<counts|cells>`."""
    from sklearn.linear_model import LogisticRegression

    train = HierarchyVideos("train", frames=2, image_size=test.image_size, n=train_clips, symbols=symbols, rules=rules,
                            balanced=balanced)
    (x, y), (x_test, y_test) = leaf_features(train), leaf_features(test)
    out = {}
    for t, target in enumerate(test.target_names[:-1]):
        for name in x:
            probe = LogisticRegression(max_iter=2000).fit(x[name], y[:, t])
            out[f"{target}_from_leaf_{name}"] = float(probe.score(x_test[name], y_test[:, t]))
    return out


@functools.lru_cache(maxsize=None)
def linear_read(symbols: int, rules: int, balanced: bool, size: int, clips: int) -> dict[str, float]:
    """`linear_from_leaves` once per grammar: the leaves, and so the read, do not depend on frames or mask."""
    test = HierarchyVideos("test", frames=2, image_size=size, n=clips, symbols=symbols, rules=rules, balanced=balanced)
    return linear_from_leaves(symbols, rules, balanced, test)


def bounds(symbols: int, rules: int, frames: int, ratio: float, clips: int, balanced: bool = False,
           size: int = 32) -> dict:
    ds = HierarchyVideos("test", frames=frames, image_size=size, n=clips, symbols=symbols, rules=rules,
                         balanced=balanced)
    cells, slots, levels = size // CELL, frames // TUBELET, ds.grammar.levels
    by_leaf = symbol_targets(ds, frames)  # (symbols, slots, D)
    targets = targets_of(torch.stack([ds[i][0] for i in range(clips)]))  # (B, N, D)
    mask = make_mask("tube", ratio, (slots, cells, cells), clips, generator=torch.Generator().manual_seed(0))
    hidden = targets[mask]
    out = {"symbols": symbols, "rules": rules, "balanced": balanced, "size": size, "frames": frames, "ratio": ratio,
           "clips": clips, "levels": levels, **trivial_losses(targets, mask, targets.mean(0)),
           **linear_read(symbols, rules, balanced, size, clips)}
    for height in range(1, levels + 1):
        predicted = torch.empty_like(targets)
        for i in range(clips):
            visible = ~mask[i].view(slots, cells, cells)[0].numpy()  # tube masks: the same cells in every slot
            post = torch.from_numpy(leaf_posterior(ds.grammar, ds.grids(i)[-1], visible, height)).float()
            expected = torch.einsum("hws,std->thwd", post, by_leaf)  # (slots, cells, cells, D)
            predicted[i] = expected.reshape(slots * cells * cells, -1)
        out[f"height_{height}"] = float((hidden - predicted[mask]).square().mean())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=256)
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.75, 0.9])
    parser.add_argument("--settings", nargs="+", default=["8,2", "4,2"], help="symbols,rules")
    parser.add_argument("--frames", type=int, nargs="+", default=[8, 4])
    parser.add_argument("--size", type=int, default=32, help="frame size: 4 px per cell, a level per halving")
    parser.add_argument("--balanced", action="store_true", help="grammars with balanced=1 (rules must equal symbols)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    results = []
    for setting in args.settings:
        symbols, rules = map(int, setting.split(","))
        for frames in args.frames:
            for ratio in args.ratios:
                r = bounds(symbols, rules, frames, ratio, args.clips, args.balanced, args.size)
                results.append(r)
                heights = "  ".join(f"h{h} {r[f'height_{h}']:.3f}" for h in range(1, r["levels"] + 1))
                grammar = f"symbols {symbols:2d} rules {rules}{' balanced' if args.balanced else ''} size {args.size}"
                print(f"{grammar} frames {frames} mask {ratio}: zero {r['zero']:.3f}  "
                      f"position mean {r['position_mean']:.3f}  visible mean {r['visible_mean']:.3f}  oracle "
                      f"constant {r['oracle_constant']:.3f}  {heights}  (h{r['levels']} = Bayes-optimal)", flush=True)
                linear = "  ".join(f"{key.split('_from_')[0]} {r[key]:.1%}" for key in r if key.endswith("_from_leaf_cells"))
                print(f"    linear from the cells one at a time: {linear}; root from leaf counts "
                      f"{r['root_from_leaf_counts']:.1%} (chance {1 / symbols:.1%})", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
