import runpy
from pathlib import Path

import numpy as np
import pytest
import torch

from blockmae.data import HierarchyVideos, build_dataset
from blockmae.data.hierarchy import CELL, Grammar, leaf_posterior, primitive


def test_same_index_same_clip_and_splits_differ():
    a = HierarchyVideos(frames=4, image_size=32, n=8, seed=3)
    b = HierarchyVideos(frames=4, image_size=32, n=8, seed=3)
    test = HierarchyVideos("test", frames=4, image_size=32, n=8, seed=3)
    for i in reversed(range(8)):
        assert torch.equal(a[i][0], b[i][0]) and torch.equal(a[i][1], b[i][1])
    assert not all(torch.equal(a[i][0], test[i][0]) for i in range(8))
    clip, labels = a[0]
    assert clip.shape == (4, 32, 32, 3) and clip.dtype == torch.uint8
    assert a.target_names == ["root", "level2", "level1", "leaf"] and labels.shape == (4,)
    assert torch.equal(a.all_labels(), torch.stack([a[i][1] for i in range(8)]))


def test_every_symbol_expands_by_one_of_its_productions_and_no_block_is_shared():
    grammar = Grammar(levels=3, symbols=8, rules=2, seed=0)
    for level, table in grammar.productions.items():
        blocks = {tuple(block) for block in table.reshape(-1, 4)}
        assert len(blocks) == 8 * 2, f"level {level}: a 2x2 block is produced by two symbols"
    ds = HierarchyVideos(frames=2, image_size=32, n=20, seed=1)
    for i in range(20):
        grids = ds.grids(i)
        assert [g.shape[0] for g in grids] == [1, 2, 4, 8]
        for depth, (parent, child) in enumerate(zip(grids, grids[1:])):
            table = grammar.productions[3 - depth]
            for r in range(parent.shape[0]):
                for c in range(parent.shape[1]):
                    block = child[2 * r:2 * r + 2, 2 * c:2 * c + 2].reshape(-1)
                    assert any((block == option).all() for option in table[parent[r, c]])
        assert ds.labels(i) == [int(g[0, 0]) for g in grids]


def test_each_cell_shows_its_leaf_symbols_primitive():
    ds = HierarchyVideos(frames=4, image_size=16, n=5, seed=0, symbols=6, rules=3)
    clip, labels = ds[4]
    leaves = ds.grids(4)[-1]
    assert leaves.shape == (4, 4) and labels[-1] == leaves[0, 0]
    for r in range(4):
        for c in range(4):
            cell = clip[:, r * CELL:(r + 1) * CELL, c * CELL:(c + 1) * CELL].numpy() / 255.0
            expected = primitive(int(ds.grammar.primitives[leaves[r, c]]), 4, 3, 6)
            assert np.abs(cell - expected).max() <= 0.5 / 255 + 1e-9


def test_symbols_differ_after_per_tubelet_normalisation():
    """The decoders predict each tubelet standardised per channel: distinct symbols must stay distinct there."""
    cells = np.stack([primitive(s, 2, 3, 8) for s in range(8)]).reshape(8, -1, 3)
    normalised = (cells - cells.mean(1, keepdims=True)) / cells.std(1, keepdims=True)
    distance = ((normalised[:, None] - normalised[None]) ** 2).mean((2, 3))
    assert distance[~np.eye(8, dtype=bool)].min() > 0.1


def test_spec_options_and_errors():
    ds = build_dataset("hierarchy,n=7,symbols=4,rules=3,grammar=2", "test", frames=4, image_size=32)
    assert len(ds) == 7 and ds.grammar.symbols == 4 and ds.grammar.rules == 3
    assert ds.class_names["root"] == ["0", "1", "2", "3"]
    with pytest.raises(ValueError, match="power of 2"):
        HierarchyVideos(frames=4, image_size=24)
    with pytest.raises(ValueError, match="lower rules="):
        HierarchyVideos(frames=4, image_size=16, symbols=2, rules=17)
    with pytest.raises(ValueError, match="no split 'val'"):
        build_dataset("hierarchy", "val", frames=4, image_size=32)


def test_a_balanced_grammar_hides_the_parent_from_any_single_cell_but_not_from_a_block():
    for seed in range(3):
        grammar = Grammar(levels=3, symbols=4, rules=4, seed=seed, balanced=True)
        for level, table in grammar.productions.items():  # (parent, rule, position)
            assert len({tuple(block) for block in table.reshape(-1, 4)}) == 16  # no block produced by two symbols
            # every parent shows each child symbol once at each position: a cell's marginal does not depend on it
            assert (np.sort(table, axis=1) == np.arange(4)[None, :, None]).all(), level
            # two cells of a block do: the pairs at positions 0 and 1 of different parents never coincide
            pairs = [{(a, b) for a, b in table[s, :, :2]} for s in range(4)]
            assert all(not pairs[i] & pairs[j] for i in range(4) for j in range(i))
    default = Grammar(levels=3, symbols=4, rules=2, seed=0)  # the default grammar: marginals differ by parent
    assert not (np.sort(default.productions[1], axis=1)[:, :, 0] == np.sort(default.productions[1], axis=1)[0, :, 0]).all()
    ds = build_dataset("hierarchy,n=4,symbols=4,rules=4,balanced=1", "test", frames=2, image_size=32)
    assert ds.grammar.balanced and "balanced=True" in repr(ds)
    with pytest.raises(ValueError, match="balanced=1 needs rules= equal to symbols="):
        build_dataset("hierarchy,symbols=4,rules=2,balanced=1", "test", frames=2, image_size=32)


def _brute_force_posterior(grammar, leaves, visible):
    """P(leaf | visible leaves) by enumerating every tree of a 2-level grammar (uniform root and rules)."""
    v, R = grammar.symbols, grammar.rules
    post = np.zeros((4, 4, v))
    for root in range(v):
        for r in range(R):
            mids = grammar.productions[2][root, r].reshape(2, 2)
            for choice in np.ndindex(*(R,) * 4):
                grid = np.zeros((4, 4), int)
                for (a, b), rr in zip(np.ndindex(2, 2), choice):
                    grid[2 * a:2 * a + 2, 2 * b:2 * b + 2] = grammar.productions[1][mids[a, b], rr].reshape(2, 2)
                if (grid[visible] == leaves[visible]).all():
                    post[np.arange(4)[:, None], np.arange(4)[None, :], grid] += 1.0
    return post / post.sum(-1, keepdims=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_leaf_posterior_is_exact_inference(seed):
    ds = HierarchyVideos(frames=2, image_size=16, n=4, symbols=3, rules=2, grammar=seed)
    rng = np.random.default_rng(seed)
    leaves = ds.grids(seed)[-1]
    visible = rng.random((4, 4)) < 0.4
    posterior = leaf_posterior(ds.grammar, leaves, visible)
    assert np.allclose(posterior, _brute_force_posterior(ds.grammar, leaves, visible))
    assert np.allclose(posterior[visible], np.eye(3)[leaves[visible]])  # a visible leaf is known
    # one level up only: a cell's posterior depends on its own 2x2 block alone
    local = leaf_posterior(ds.grammar, leaves, visible, height=1)
    alone = leaf_posterior(ds.grammar, leaves, visible & (np.arange(4)[:, None] < 2) & (np.arange(4)[None, :] < 2),
                           height=1)
    assert np.allclose(local[:2, :2], alone[:2, :2])


@pytest.mark.slow  # 12 logistic-regression fits
def test_the_bounds_script_reads_the_default_grammars_latents_off_the_cells_and_not_the_balanced_ones():
    """benchmarks/hierarchy_bounds.py's linear read of the cells one at a time (docs/depth_screen.md's table)."""
    script = runpy.run_path(str(Path(__file__).resolve().parents[2] / "benchmarks" / "hierarchy_bounds.py"))
    for rules, balanced in ((2, False), (4, True)):
        test = HierarchyVideos("test", frames=2, image_size=32, n=200, symbols=4, rules=rules, balanced=balanced)
        read = script["linear_from_leaves"](4, rules, balanced, test, train_clips=400)
        assert set(read) == {f"{t}_from_leaf_{f}" for t in ("root", "level2", "level1") for f in ("counts", "cells")}
        cells = [read[f"{t}_from_leaf_cells"] for t in ("root", "level2", "level1")]
        assert min(cells) > 0.9 if not balanced else max(cells) < 0.4  # chance is 0.25
