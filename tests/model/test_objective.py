import torch

from blockmae.model.objective import patchify, pixel_targets, unpatchify


def test_patchify_round_trip_and_layout():
    x = torch.randn(2, 3, 4, 8, 12)
    p = patchify(x, tubelet=2, patch=4)
    assert p.shape == (2, 2 * 2 * 3, 2 * 4 * 4, 3)
    # token 0 holds frames 0-1, rows 0-3, cols 0-3, channels last
    assert torch.equal(p[0, 0, :, 1], x[0, 1, 0:2, 0:4, 0:4].reshape(-1))
    assert torch.equal(unpatchify(p.flatten(2), 3, (2, 2, 3), 2, 4), x)


def test_norm_pix_target_is_standardised_per_tubelet_and_channel():
    video = torch.randn(1, 3, 2, 4, 4)
    t = pixel_targets(video, [0.5] * 3, [0.2] * 3, tubelet=2, patch=4).view(1, 1, 32, 3)
    assert torch.allclose(t.mean(dim=2), torch.zeros(1, 1, 3), atol=1e-5)
    assert torch.allclose(t.std(dim=2), torch.ones(1, 1, 3), atol=1e-4)
    raw = pixel_targets(video, [0.5] * 3, [0.2] * 3, tubelet=2, patch=4, norm_pix=False)
    assert torch.allclose(raw.view(1, 1, 32, 3)[0, 0, :, 0], (video[0, 0] * 0.2 + 0.5).reshape(-1))
