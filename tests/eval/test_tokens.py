import numpy as np
import pytest
import torch

from blockmae.eval import occlude, occlusion_drop, occlusion_mask, relative_update_norm, token_similarity


def test_token_similarity_matches_a_double_loop():
    g = torch.Generator().manual_seed(0)
    tokens = torch.randn(3, 7, 5, generator=g) + torch.randn(3, 1, 5, generator=g)
    per_clip = []
    for b in range(3):
        t = tokens[b].double()
        t = (t - t.mean(-1, keepdim=True)) / torch.sqrt(t.var(-1, unbiased=False, keepdim=True) + 1e-12)
        t = t / t.norm(dim=-1, keepdim=True)
        sims = [float(t[i] @ t[j]) for i in range(7) for j in range(7) if i != j]
        per_clip.append(np.mean(sims))
    assert token_similarity(tokens) == pytest.approx(np.mean(per_clip), abs=1e-5)


def test_token_similarity_extremes():
    same = torch.randn(2, 1, 6).expand(2, 5, 6)
    assert token_similarity(same) == pytest.approx(1.0, abs=1e-5)
    assert np.isnan(token_similarity(torch.randn(2, 1, 6)))


def test_relative_update_norm_direct():
    g = torch.Generator().manual_seed(1)
    before, after = torch.randn(2, 4, 3, generator=g), torch.randn(2, 4, 3, generator=g)
    ratios = [float((after[b, t] - before[b, t]).norm() / before[b, t].norm()) for b in range(2) for t in range(4)]
    assert relative_update_norm(before, after) == pytest.approx(np.mean(ratios), rel=1e-5)
    assert relative_update_norm(before, before) == 0.0
    assert relative_update_norm(before, 3 * before) == pytest.approx(2.0, rel=1e-5)


def test_one_region_keeps_one_aligned_patch_in_every_frame():
    g = torch.Generator().manual_seed(2)
    mask = occlusion_mask(8, 48, 64, patch=16, generator=g)
    assert mask.shape == (8, 48, 64) and mask.dtype == torch.bool
    for m in mask.numpy():
        ys, xs = np.nonzero(m)
        assert m.sum() == 16 * 16
        assert ys.max() - ys.min() == 15 and xs.max() - xs.min() == 15  # one contiguous square
        assert ys.min() % 16 == 0 and xs.min() % 16 == 0  # on the patch grid
    clips = torch.randint(1, 256, (8, 3, 48, 64, 3), dtype=torch.uint8, generator=g)
    out = occlude(clips, mask)
    assert out.dtype == torch.uint8
    keep = mask[:, None, :, :, None].expand_as(clips)
    assert torch.equal(out[keep], clips[keep])  # kept square untouched in every frame
    assert (out[~keep] == 0).all()  # black elsewhere
    positions = {tuple(np.argwhere(m.numpy())[0]) for m in mask}
    assert len(positions) > 1  # placed at random per clip


def test_two_regions_one_square_per_half():
    g = torch.Generator().manual_seed(3)
    w = 64
    mask = occlusion_mask(10, 32, w, patch=16, regions=2, generator=g)
    for m in mask.numpy():
        assert m.sum() == 2 * 16 * 16
        left, right = m[:, : w // 2], m[:, w // 2:]
        assert left.sum() == 16 * 16 and right.sum() == 16 * 16  # fully inside each half
        for half in (left, right):
            ys, xs = np.nonzero(half)
            assert ys.max() - ys.min() == 15 and xs.max() - xs.min() == 15


def test_unaligned_and_numpy_paths():
    g = torch.Generator().manual_seed(4)
    mask = occlusion_mask(20, 20, 20, patch=5, generator=g, aligned=False)
    assert (mask.sum((1, 2)) == 25).all()
    assert any(int(np.argwhere(m.numpy())[0][0]) % 5 for m in mask)  # not restricted to the grid
    clips = np.full((20, 2, 20, 20, 3), 200, dtype=np.uint8)
    out = occlude(clips, mask.numpy(), fill=7)
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8
    assert (out.sum(axis=(1, 2, 3, 4)) == 2 * 3 * (25 * 200 + (400 - 25) * 7)).all()


def test_occlusion_errors_name_the_sizes():
    with pytest.raises(ValueError, match="12x20.*16x16"):
        occlusion_mask(1, 12, 20, patch=16)
    with pytest.raises(ValueError, match="right"):
        occlusion_mask(1, 16, 40, patch=16, regions=2)  # right half [20, 40) holds no grid-aligned 16 square
    with pytest.raises(ValueError, match="mask must be"):
        occlude(torch.zeros(2, 1, 8, 8, 3, dtype=torch.uint8), torch.ones(2, 8, 9, dtype=torch.bool))


def test_occlusion_drop():
    assert occlusion_drop(0.8, 0.6) == pytest.approx(0.25)
    assert occlusion_drop(0.5, 0.5) == 0.0
    assert np.isnan(occlusion_drop(0.0, 0.0))
