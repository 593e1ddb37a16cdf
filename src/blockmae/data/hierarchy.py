"""A video Random Hierarchy Model: clips whose hidden content is predictable only through composed inference.

A fixed grammar (drawn once from `grammar=`) has `levels` levels of `symbols` latent symbols. Each symbol of
level l has `rules` synonymous productions, each a 2 x 2 block of level l-1 symbols, and no block is produced
by two symbols of a level (Cagnetta et al., 2024, "How deep neural networks learn compositional data"). A clip
draws its root symbol, expands every symbol by one of its productions chosen at random, and draws each leaf
symbol as a spatiotemporal primitive filling one cell: a grating with its own orientation, frequency, drift
and per-channel phase, so the cell's normalised-pixel target is fixed by the leaf's symbol.

Why depth: a hidden cell's target is its leaf symbol, and the only thing that ties leaves together is their
ancestors. One visible sibling leaves several productions of the parent possible; the parent's siblings (its
own parent's production) narrow it, and so on up the tree. Predicting a hidden leaf is inferring the parent
from visible leaves, the grandparent from parents, and back down: composition, one level at a time. There is
no clip-wide shortcut: no illumination, no background, every cell carries one primitive.

With `balanced=1` (rules = symbols) every symbol's productions show each child symbol once at each position, so
a single cell's symbol is uniform whatever its ancestors: a linear read of the cells one at a time says nothing of
any latent above them; only cells taken together (a block names its parent) do. In the default grammar the cells'
symbols, position by position, already name the root (a logistic regression on them reads it at 100% with 4
symbols and 2 rules: `benchmarks/hierarchy_bounds.py`).

Targets are the latent at each level: `root` (the top symbol), then the top-left node's symbol at every level
below it (`level2`, `level1`, `leaf` for three levels), a ground truth for what a block should decode.
Every clip is drawn from `default_rng([seed, split, index])` alone, so train and test never share a clip and
every process draws the same one; the grammar is the same in both splits.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from .shape import check_clip_shape

SPLITS = ("train", "test")
DEFAULT_N = {"train": 100_000, "test": 1024}
CELL = 4  # pixels per leaf cell: one patch of the tiny preset
CONTRAST = 0.4  # amplitude of a primitive's grating, around grey


def balanced_productions(rng: np.random.Generator, symbols: int) -> np.ndarray:
    """(symbols, symbols, 4) productions in which every symbol's `symbols` blocks show each child symbol once at
    each of the 4 positions: position 0 runs through a permutation shared by all symbols, positions 1-3 through the
    rows of random Latin squares. A cell's marginal is then uniform whatever its parent (and so, level by level,
    whatever its root), while two cells of a block name the parent: the column property of the Latin square keeps
    the blocks of different symbols distinct."""
    v = symbols
    out = np.empty((v, v, 4), dtype=np.int64)
    out[:, :, 0] = rng.permutation(v)[None, :]
    for position in (1, 2, 3):
        rows, cols, values = rng.permutation(v), rng.permutation(v), rng.permutation(v)
        out[:, :, position] = values[(rows[:, None] + cols[None, :]) % v]
    return out


class Grammar:
    """`productions[l][s, r]`: the 2 x 2 children (level l-1 symbols, row-major) of symbol s of level l by
    production r, for l = 1 (its children are leaves) .. levels. No 2 x 2 block appears twice in a level."""

    def __init__(self, levels: int, symbols: int, rules: int, seed: int, balanced: bool = False):
        if symbols * rules > symbols ** 4:
            raise ValueError(f"hierarchy: {symbols} symbols x {rules} rules exceed the {symbols ** 4} distinct 2x2 "
                             "blocks; lower rules=")
        if balanced and rules != symbols:
            raise ValueError(f"hierarchy: balanced=1 needs rules= equal to symbols= (each symbol's productions show "
                             f"every child symbol once at each position); got rules={rules}, symbols={symbols}")
        rng = np.random.default_rng([seed, 7919])
        self.levels, self.symbols, self.rules, self.balanced = levels, symbols, rules, balanced
        self.productions = {}
        for level in range(1, levels + 1):
            if balanced:
                self.productions[level] = balanced_productions(rng, symbols)
                continue
            blocks = rng.choice(symbols ** 4, size=symbols * rules, replace=False)
            digits = (blocks[:, None] // symbols ** np.arange(3, -1, -1)) % symbols
            self.productions[level] = digits.reshape(symbols, rules, 4)
        self.primitives = rng.permutation(symbols)  # which grating each leaf symbol shows

    def expand(self, rng: np.random.Generator, root: int) -> list[np.ndarray]:
        """The symbol grids from the root (1 x 1) down to the leaves (2^levels square), root first."""
        grids = [np.array([[root]])]
        for level in range(self.levels, 0, -1):
            parent = grids[-1]
            side = parent.shape[0]
            choice = rng.integers(self.rules, size=parent.shape)
            blocks = self.productions[level][parent, choice].reshape(side, side, 2, 2)
            grids.append(blocks.transpose(0, 2, 1, 3).reshape(2 * side, 2 * side))
        return grids


def primitive(symbol: int, frames: int, channels: int, symbols: int) -> np.ndarray:
    """(frames, CELL, CELL, channels) in [0, 1]: a grating whose orientation, frequency, drift and per-channel
    phases are set by the symbol, so every symbol's normalised cell differs from every other's."""
    angle = np.pi * symbol / symbols + 0.3
    cycles = 1.0 if symbol % 2 else 1.5  # per cell
    drift = (1 + symbol % 3) * np.pi / 4 * (1 if symbol % 4 < 2 else -1)  # phase per frame
    t, y, x = np.meshgrid(np.arange(frames), np.arange(CELL) + 0.5, np.arange(CELL) + 0.5, indexing="ij")
    along = 2 * np.pi * cycles * (x * np.cos(angle) + y * np.sin(angle)) / CELL
    phases = 2 * np.pi * ((symbol * 0.37 + np.arange(channels) * 0.29) % 1.0)
    out = 0.5 + CONTRAST * np.sin(along[..., None] + drift * t[..., None] + phases)
    return np.clip(out, 0.0, 1.0)


class HierarchyVideos(Dataset):
    """Clips drawn from a random hierarchy of latent symbols; one target per level."""

    def __init__(self, split: str = "train", *, frames: int, image_size: int, channels: int = 3, seed: int = 0,
                 n: int | None = None, symbols: int = 8, rules: int = 2, grammar: int = 0, balanced: bool = False):
        check_clip_shape("hierarchy", frames, image_size, channels)
        if split not in SPLITS:
            raise ValueError(f"hierarchy: unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
        cells = image_size // CELL
        if image_size % CELL or cells < 2 or cells & (cells - 1):
            raise ValueError(f"hierarchy: size={image_size} must be {CELL} pixels times a power of 2 (8, 16, 32, "
                             "64, ...): every level halves the grid; set size= or the model's image size")
        n = DEFAULT_N[split] if n is None else n
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"hierarchy: n={n!r}, expected a positive integer")
        levels = cells.bit_length() - 1
        self.name = "hierarchy"
        self.split, self.frames, self.image_size, self.channels = split, frames, image_size, channels
        self.seed, self.n = seed, int(n)
        self._split_id = SPLITS.index(split)
        self.grammar = Grammar(levels, symbols, rules, grammar, balanced)
        names = ["root"] + [f"level{level}" for level in range(levels - 1, 0, -1)] + ["leaf"]
        self.target_names = names
        self.class_names = {name: [str(s) for s in range(symbols)] for name in names}
        self._primitives = np.stack([primitive(s, frames, channels, symbols) for s in self.grammar.primitives])

    def __len__(self) -> int:
        return self.n

    def _rng(self, index: int) -> np.random.Generator:
        if not 0 <= index < self.n:
            raise IndexError(f"hierarchy: index {index} out of range for {self.n} clips")
        return np.random.default_rng([self.seed, self._split_id, index])

    def grids(self, index: int) -> list[np.ndarray]:
        """Clip `index`'s symbol grids, root (1 x 1) first, leaves last."""
        rng = self._rng(index)
        return self.grammar.expand(rng, int(rng.integers(self.grammar.symbols)))

    def labels(self, index: int) -> list[int]:
        """The top-left node's symbol at every level, root first (the targets, in `target_names` order)."""
        return [int(grid[0, 0]) for grid in self.grids(index)]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        grids = self.grids(index)
        leaves = grids[-1]
        cells = leaves.shape[0]
        # (cells, cells, T, CELL, CELL, C) -> (T, H, W, C)
        tiles = self._primitives[leaves]
        clip = tiles.transpose(2, 0, 3, 1, 4, 5).reshape(self.frames, cells * CELL, cells * CELL, self.channels)
        pixels = np.floor(clip * 255.0 + 0.5).astype(np.uint8)
        return torch.from_numpy(pixels), torch.tensor([int(g[0, 0]) for g in grids], dtype=torch.int64)

    def all_labels(self) -> torch.Tensor:
        """Labels of every clip (len, n_targets) without rendering: for stratification and probes."""
        return torch.tensor([self.labels(i) for i in range(self.n)], dtype=torch.int64)

    def __repr__(self) -> str:
        g = self.grammar
        return (f"HierarchyVideos(split={self.split!r}, n={self.n}, frames={self.frames}, image_size={self.image_size}, "
                f"channels={self.channels}, seed={self.seed}, levels={g.levels}, symbols={g.symbols}, rules={g.rules}, "
                f"balanced={g.balanced})")


def leaf_posterior(grammar: Grammar, leaves: np.ndarray, visible: np.ndarray, height: int | None = None) -> np.ndarray:
    """P(leaf symbol | the visible leaves), (cells, cells, symbols), by exact inference on the tree.

    `visible`: (cells, cells) bool. `height` limits the inference to subtrees of that many levels (1: a cell's
    2x2 block of siblings only; None: the whole tree), each subtree's top symbol taken as uniform: what a
    predictor that composes `height` steps can know. Upward messages m(s) = P(visible leaves below | node = s),
    then downward: each child's outside message from its parent's and its siblings'."""
    v, levels = grammar.symbols, grammar.levels
    height = levels if height is None else min(height, levels)
    evidence = np.where(visible[..., None], np.eye(v)[leaves], 1.0)  # the leaf messages
    ups = [evidence]
    for level in range(1, height + 1):  # upward: m_parent(s) = mean_r prod_j m_child_j(c_{s,r,j})
        child = ups[-1]
        side = child.shape[0] // 2
        blocks = child.reshape(side, 2, side, 2, v).transpose(0, 2, 1, 3, 4).reshape(side, side, 4, v)
        table = grammar.productions[level]  # (v, rules, 4)
        picked = blocks[:, :, np.arange(4)[None, None, :], table]  # (side, side, v, rules, 4)
        ups.append(picked.prod(-1).mean(-1))
    outside = np.ones_like(ups[-1]) / v  # the subtrees' top symbols: uniform
    for level in range(height, 0, -1):  # downward: o_child_j(c) = sum_{s,r} o(s)/R [c_{s,r,j} = c] prod_{k!=j} m_k
        child = ups[level - 1]
        side = child.shape[0] // 2
        blocks = child.reshape(side, 2, side, 2, v).transpose(0, 2, 1, 3, 4).reshape(side, side, 4, v)
        table = grammar.productions[level]
        picked = blocks[:, :, np.arange(4)[None, None, :], table]  # (side, side, v, rules, 4)
        others = np.stack([np.delete(picked, j, axis=-1).prod(-1) for j in range(4)], -1)  # (side, side, v, R, 4)
        weight = outside[:, :, :, None, None] * others / grammar.rules
        down = np.zeros((side, side, 4, v))
        for j in range(4):
            for s in range(v):
                for r in range(grammar.rules):
                    down[:, :, j, table[s, r, j]] += weight[:, :, s, r, j]
        outside = down.reshape(side, side, 2, 2, v).transpose(0, 2, 1, 3, 4).reshape(2 * side, 2 * side, v)
    posterior = outside * evidence
    return posterior / posterior.sum(-1, keepdims=True)
