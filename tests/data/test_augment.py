import numpy as np
import pytest
import torch

from blockmae.data.augment import (SCALES, center_crop, eval_clips, fixed_offsets, horizontal_flip,
                                   multi_scale_crop_box, random_resized_crop_box, resize, short_side_resize,
                                   three_crop, to_channels, train_clip)


def ramp(t=4, h=24, w=32):
    """A clip whose pixel (y, x) in frame t is (x * 8 % 256, y * 10 % 256, t)."""
    clip = torch.zeros((t, h, w, 3), dtype=torch.uint8)
    clip[..., 0] = (torch.arange(w) * 8 % 256).to(torch.uint8)
    clip[..., 1] = (torch.arange(h) * 10 % 256).to(torch.uint8)[:, None]
    clip[..., 2] = torch.arange(t, dtype=torch.uint8)[:, None, None]
    return clip


def test_resize_shapes_and_values():
    clip = ramp()
    assert resize(clip, 24, 32) is clip
    out = resize(clip, 12, 20)
    assert out.dtype == torch.uint8 and out.shape == (4, 12, 20, 3)
    flat = torch.full((2, 10, 10, 3), 77, dtype=torch.uint8)
    assert torch.equal(resize(flat, 37, 5), torch.full((2, 37, 5, 3), 77, dtype=torch.uint8))
    assert short_side_resize(ramp(h=24, w=32), 12).shape == (4, 12, 16, 3)
    assert short_side_resize(ramp(h=32, w=24), 12).shape == (4, 16, 12, 3)
    with pytest.raises(ValueError, match="uint8 clip"):
        resize(clip.float(), 8, 8)


def test_multi_scale_crop_follows_videomae():
    h, w, size = 240, 320, 112
    allowed = [int(240 * s) for s in SCALES]  # 240, 210, 180, 158; none within 3 px of 112
    seen = set()
    for seed in range(300):
        top, left, ch, cw = multi_scale_crop_box(h, w, size, np.random.default_rng(seed))
        assert ch in allowed and cw in allowed and abs(allowed.index(ch) - allowed.index(cw)) <= 1
        assert (left, top) in fixed_offsets(w, h, cw, ch)
        assert 0 <= top and top + ch <= h and 0 <= left and left + cw <= w
        seen.add((ch, cw))
    assert len(seen) == 10  # 4 squares + 6 one-step distortions
    # a crop side within 3 px of the output size snaps to it
    sides = {multi_scale_crop_box(128, 128, 112, np.random.default_rng(s))[2] for s in range(200)}
    assert sides == {128, 112, 96, 84}  # int(128 * .875) = 112 exactly; .75 -> 96; .66 -> 84
    sides = {multi_scale_crop_box(130, 130, 112, np.random.default_rng(s))[2] for s in range(200)}
    assert 112 in sides and 113 not in sides  # int(130 * .875) = 113 snaps to 112


def test_fixed_offsets_are_videomae_positions():
    assert fixed_offsets(100, 60, 60, 60) == [(0, 0), (40, 0), (0, 0), (40, 0), (20, 0), (0, 0), (40, 0), (20, 0),
                                               (20, 0), (10, 0), (30, 0), (10, 0), (30, 0)]


def test_random_resized_crop_box():
    for seed in range(200):
        top, left, ch, cw = random_resized_crop_box(24, 32, np.random.default_rng(seed))
        assert 0 <= top and top + ch <= 24 and 0 <= left and left + cw <= 32 and ch > 0 and cw > 0
        assert ch * cw <= 24 * 32
    # impossible tries fall back to the central crop at the nearest allowed aspect ratio
    box = random_resized_crop_box(10, 100, np.random.default_rng(0), scale=(1.0, 1.0))
    assert box == (0, (100 - 13) // 2, 10, 13)


def test_crops_and_flip():
    clip = ramp()
    c = center_crop(clip, 16)
    assert c.shape == (4, 16, 16, 3) and torch.equal(c, clip[:, 4:20, 8:24])
    crops = three_crop(clip, 24)
    assert [x.shape for x in crops] == [(4, 24, 24, 3)] * 3
    assert [int(x[0, 0, 0, 0]) // 8 for x in crops] == [0, 4, 8]  # left, middle, right along the long side
    tall = three_crop(ramp(h=32, w=24), 24)
    assert [int(x[0, 0, 0, 1]) // 10 for x in tall] == [0, 4, 8]  # top, middle, bottom
    flipped = horizontal_flip(clip)
    assert torch.equal(flipped[:, :, 0], clip[:, :, -1]) and torch.equal(horizontal_flip(flipped), clip)
    with pytest.raises(ValueError, match="centre-crop 30x30"):
        center_crop(clip, 30)


def test_channels():
    clip = ramp()
    gray = to_channels(clip, 1)
    assert gray.shape == (4, 24, 32, 1) and gray.dtype == torch.uint8
    white = torch.full((1, 2, 2, 3), 255, dtype=torch.uint8)
    assert int(to_channels(white, 1).min()) == 255
    assert to_channels(clip, 3) is clip


@pytest.mark.parametrize("mode", ["multiscale", "resized"])
def test_train_clip(mode):
    clip = ramp(t=5)
    out = train_clip(clip, 16, np.random.default_rng(0), crop_mode=mode)
    assert out.shape == (5, 16, 16, 3) and out.dtype == torch.uint8
    again = train_clip(clip, 16, np.random.default_rng(0), crop_mode=mode)
    assert torch.equal(out, again)
    # the same crop for every frame: the blue channel still counts the frames
    assert out[..., 2].flatten(1).float().mean(1).round().tolist() == [0, 1, 2, 3, 4]


def test_flip_probability_and_off_switch():
    clip = ramp(h=32, w=32)

    def flipped(seed, flip):
        out = train_clip(clip, 32, np.random.default_rng(seed), flip=flip)
        return int(out[0, 0, 0, 0]) > int(out[0, 0, -1, 0])  # red falls from left to right

    share = np.mean([flipped(s, True) for s in range(120)])
    assert 0.3 < share < 0.7
    assert not any(flipped(s, False) for s in range(30))


def test_eval_clips():
    clip = ramp(h=24, w=32)
    [one] = eval_clips(clip, 12)
    assert one.shape == (4, 12, 12, 3)
    three = eval_clips(clip, 12, crops=3)
    assert len(three) == 3 and all(x.shape == (4, 12, 12, 3) for x in three)
    assert eval_clips(clip, 12, short_side=16)[0].shape == (4, 12, 12, 3)
    with pytest.raises(ValueError, match="short_side=8"):
        eval_clips(clip, 12, short_side=8)
