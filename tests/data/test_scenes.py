import numpy as np
import pytest
import torch

from blockmae.data import TexturedScenes, build_dataset
from blockmae.data.scenes import DIRECTIONS, SLOPES, SPEEDS, texture


def _shift(a: np.ndarray, b: np.ndarray, keep_a: np.ndarray, keep_b: np.ndarray, reach: int) -> tuple[int, int]:
    """The integer (rows, cols) displacement that best maps frame a onto frame b (least squares over the
    pixels kept in both)."""
    best, arg = np.inf, (0, 0)
    h = a.shape[0]
    for dr in range(-reach, reach + 1):
        for dc in range(-reach, reach + 1):
            sa = (slice(max(0, -dr), h - max(0, dr)), slice(max(0, -dc), h - max(0, dc)))
            sb = (slice(max(0, dr), h - max(0, -dr)), slice(max(0, dc), h - max(0, -dc)))
            keep = keep_a[sa] & keep_b[sb]
            err = np.mean((a[sa][keep] - b[sb][keep]) ** 2)
            if err < best:
                best, arg = err, (dr, dc)
    return arg


def _background(p: dict, t: int, size: int) -> np.ndarray:
    """Pixels of frame t that no shape covers (with a margin)."""
    rows, cols = np.mgrid[:size, :size] + 0.5
    keep = np.ones((size, size), dtype=bool)
    for obj in p["objects"]:
        cy, cx = obj["start"] + obj["velocity"] * t
        keep &= (rows - cy) ** 2 + (cols - cx) ** 2 > (1.5 * obj["radius"] + 1) ** 2
    return keep


def test_same_index_same_clip_and_splits_differ():
    a = TexturedScenes(frames=4, image_size=32, n=6, seed=2)
    b = TexturedScenes(frames=4, image_size=32, n=6, seed=2)
    test = TexturedScenes("test", frames=4, image_size=32, n=6, seed=2)
    for i in reversed(range(6)):
        assert torch.equal(a[i][0], b[i][0]) and torch.equal(a[i][1], b[i][1])
        assert not torch.equal(a[i][0], test[i][0])
    clip, labels = a[0]
    assert clip.shape == (4, 32, 32, 3) and clip.dtype == torch.uint8
    assert labels.shape == (len(TexturedScenes.target_names),)
    assert torch.equal(a.all_labels(), torch.stack([a[i][1] for i in range(6)]))


def test_camera_moves_in_the_labelled_direction_at_the_labelled_speed():
    ds = TexturedScenes(frames=3, image_size=48, n=60, seed=0, shapes=1)
    checked = 0
    for i in range(len(ds)):
        p = ds.params(i)
        if p["speed"] != list(SPEEDS).index("fast"):
            continue
        clip = ds[i][0].numpy().astype(np.float64).mean(-1)
        dr, dc = _shift(clip[0], clip[1], _background(p, 0, 48), _background(p, 1, 48), reach=14)
        angle = np.deg2rad(DIRECTIONS[p["direction"]])
        step = SPEEDS["fast"] * 48
        # x right, y up: content moving up goes towards row 0.
        assert abs(dc - step * np.cos(angle)) <= 1 and abs(-dr - step * np.sin(angle)) <= 1, (i, dr, dc)
        checked += 1
    assert checked >= 6


def test_labels_describe_the_front_shape_and_the_count():
    ds = TexturedScenes(frames=2, image_size=32, n=30, seed=1)
    names = ds.target_names
    for i in range(len(ds)):
        p = ds.params(i)
        labels = dict(zip(names, p["labels"]))
        assert labels["count"] == len(p["objects"]) - 1
        front = p["objects"][-1]
        assert labels["shape"] == front["kind"] and labels["colour"] == front["colour"]
        assert len({o["colour"] for o in p["objects"]}) == len(p["objects"])
    assert all(dict(zip(names, TexturedScenes(frames=2, image_size=32, n=5, shapes=2).params(i)["labels"]))["count"] == 1
               for i in range(5))


def test_texture_roughness_follows_the_slope():
    rng = np.random.default_rng(0)
    energy = []
    for slope in SLOPES.values():  # smooth, medium, rough: more high-frequency energy in that order
        field = texture(rng, 64, slope, 1)[..., 0]
        energy.append(np.mean(np.diff(field, axis=1) ** 2))
    assert energy[0] < energy[1] < energy[2]


def test_spec_options_and_errors():
    ds = build_dataset("scenes,n=7,shapes=3", "test", frames=4, image_size=16, channels=1)
    assert len(ds) == 7 and ds[0][0].shape == (4, 16, 16, 1)
    with pytest.raises(ValueError, match="shapes"):
        build_dataset("scenes,shapes=5", "train", frames=4, image_size=16)
    with pytest.raises(ValueError, match="split"):
        build_dataset("scenes", "val", frames=4, image_size=16)


def test_illumination_is_a_linear_ramp_of_the_given_strength():
    lit = texture(np.random.default_rng(5), 64, 1.5, 3, light=0.4)[..., :1]  # one RGB channel (no luma mixing)
    dark = texture(np.random.default_rng(5), 64, 1.5, 3, light=0.0)[..., :1]
    inside = (lit > 0.001) & (lit < 0.999) & (dark > 0.001) & (dark < 0.999)  # unclipped in both
    ramp = (lit - dark)[inside]
    assert inside.mean() > 0.9
    span = ramp.max() - ramp.min()  # light * (|cos| + |sin|) of the ramp's angle
    assert 0.4 * 0.97 < span < 0.4 * np.sqrt(2) + 0.01
    if inside.all():  # then the difference is a plane: constant steps along rows and along columns
        difference = (lit - dark)[..., 0]
        assert np.ptp(np.diff(difference, axis=0)) < 1e-9 and np.ptp(np.diff(difference, axis=1)) < 1e-9
