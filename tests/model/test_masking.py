import pytest
import torch

from blockmae.model.masking import gather_tokens, make_mask, num_hidden, split_indices


def test_tube_mask_hides_the_same_positions_in_every_slice():
    grid = (4, 7, 7)
    mask = make_mask("tube", 0.9, grid, batch=5, generator=torch.Generator().manual_seed(0))
    assert mask.dtype == torch.bool and mask.shape == (5, 4 * 49)
    slices = mask.view(5, 4, 49)
    assert (slices == slices[:, :1]).all()
    assert (mask.sum(1) == 4 * int(0.9 * 49)).all() and num_hidden("tube", 0.9, grid) == 4 * 44
    assert not torch.equal(slices[0, 0], slices[1, 0])  # clips differ


def test_random_mask_count_and_spread():
    mask = make_mask("random", 0.75, (4, 4, 4), batch=3, generator=torch.Generator().manual_seed(0))
    assert (mask.sum(1) == 48).all()
    assert not (mask.view(3, 4, 16) == mask.view(3, 4, 16)[:, :1]).all()


def test_split_indices_keep_token_order():
    mask = torch.tensor([[True, False, False, True, False], [False, True, True, False, False]])
    vis, hid = split_indices(mask)
    assert vis.tolist() == [[1, 2, 4], [0, 3, 4]] and hid.tolist() == [[0, 3], [1, 2]]
    x = torch.arange(10.0).view(2, 5, 1)
    assert gather_tokens(x, hid).squeeze(-1).tolist() == [[0, 3], [6, 7]]


def test_unequal_hidden_counts_are_rejected():
    with pytest.raises(ValueError, match="same number of hidden tokens"):
        split_indices(torch.tensor([[True, False], [True, True]]))
