import numpy as np
import pytest
import torch
from scipy import ndimage
from sklearn.datasets import load_digits

from blockmae.data import MovingDigits


def _centroids(clip: torch.Tensor) -> np.ndarray:
    """Intensity-weighted (row, col) centroid of every frame: (T, 2)."""
    g = clip[..., 0].numpy().astype(np.float64)
    rows, cols = np.mgrid[: g.shape[1], : g.shape[2]]
    mass = g.sum(axis=(1, 2))
    return np.stack([(g * rows).sum(axis=(1, 2)) / mass, (g * cols).sum(axis=(1, 2)) / mass], axis=1)


def test_same_index_same_clip_across_instances_and_order():
    a = MovingDigits(frames=6, image_size=32, n=20, seed=3)
    b = MovingDigits(frames=6, image_size=32, n=20, seed=3)
    later = [b[i] for i in reversed(range(20))][::-1]  # other instance, other order
    for i in range(20):
        clip, labels = a[i]
        again, labels_again = a[i]
        assert torch.equal(clip, again) and torch.equal(labels, labels_again)
        assert torch.equal(clip, later[i][0]) and torch.equal(labels, later[i][1])


def test_different_seeds_and_splits_differ():
    a = MovingDigits(frames=4, image_size=32, n=10, seed=0)
    b = MovingDigits(frames=4, image_size=32, n=10, seed=1)
    t = MovingDigits("test", frames=4, image_size=32, n=10, seed=0)
    assert sum(not torch.equal(a[i][0], b[i][0]) for i in range(10)) >= 9
    assert sum(not torch.equal(a[i][0], t[i][0]) for i in range(10)) >= 9


def test_dataloader_workers_do_not_change_clips():
    ds = MovingDigits(frames=4, image_size=16, n=8, seed=5)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, shuffle=False)
    clips = torch.cat([c for c, _ in loader])
    assert torch.equal(clips, torch.stack([ds[i][0] for i in range(8)]))


@pytest.mark.parametrize("frames,size,channels", [(4, 32, 3), (7, 33, 1), (16, 64, 3), (2, 20, 1)])
def test_shapes_dtypes_and_label_ranges(frames, size, channels):
    ds = MovingDigits(frames=frames, image_size=size, channels=channels, n=12)
    assert len(ds) == 12 and ds.name == "digits"
    assert ds.target_names == ["digit", "direction", "speed"]
    for i in range(12):
        clip, labels = ds[i]
        assert clip.shape == (frames, size, size, channels) and clip.dtype == torch.uint8
        assert labels.shape == (3,) and labels.dtype == torch.int64
        for k, name in enumerate(ds.target_names):
            assert 0 <= labels[k] < len(ds.class_names[name])
        if channels == 3:  # white digit: the three channels are the same gray value
            assert torch.equal(clip[..., 0], clip[..., 1]) and torch.equal(clip[..., 0], clip[..., 2])
        assert clip.max() > 100 and clip.min() == 0
    assert torch.equal(ds.all_labels(), torch.stack([ds[i][1] for i in range(12)]))


def test_default_sizes_and_bad_arguments():
    assert len(MovingDigits(frames=2, image_size=16)) == 2048
    assert len(MovingDigits("test", frames=2, image_size=16)) == 512
    with pytest.raises(ValueError, match="valid splits: train, test"):
        MovingDigits("val", frames=2, image_size=16)
    with pytest.raises(ValueError, match="channels"):
        MovingDigits(frames=2, image_size=16, channels=2)
    with pytest.raises(ValueError, match="digits=3"):
        MovingDigits(frames=2, image_size=16, digits=3)


def test_train_and_test_use_disjoint_images_and_true_digit_labels():
    train = MovingDigits("train", frames=2, image_size=16, n=300)
    test = MovingDigits("test", frames=2, image_size=16, n=300, seed=7)
    assert not set(train.image_ids) & set(test.image_ids)
    assert len(train.image_ids) + len(test.image_ids) == 1797
    assert 0.75 < len(train.image_ids) / 1797 < 0.85
    # The split of source images does not depend on the dataset seed.
    assert np.array_equal(test.image_ids, MovingDigits("test", frames=2, image_size=16, seed=0).image_ids)
    targets = load_digits().target
    for ds in (train, test):
        used = [ds.params(i)["sprites"][0]["image_id"] for i in range(len(ds))]
        assert set(used) <= set(ds.image_ids)
        assert [targets[u] for u in used] == ds.all_labels()[:, 0].tolist()


def test_digit_stays_inside_canvas_every_frame():
    size = 64
    ds = MovingDigits(frames=16, image_size=size, channels=1, n=150)
    for i in range(len(ds)):
        box = ds.params(i)["sprites"][0]["box"]
        assert box.min() >= -1e-9 and box.max() + ds.footprint <= size + 1e-9
        # Nothing is cut off: the digit's total intensity is the same in every frame.
        mass = ds[i][0].numpy().astype(np.float64).sum(axis=(1, 2, 3))
        assert (mass.max() - mass.min()) / mass.mean() < 0.03
    # Fast clips reach close to the edge, so the free space is really used.
    speed = ds.all_labels()[:, 2]
    fast_ends = [ds.params(i)["sprites"][0]["box"][-1] for i in range(len(ds)) if speed[i] == 2]
    assert min(min(b.min(), ds.free - b.max()) for b in fast_ends) < 0.1 * ds.free


def test_direction_label_matches_centroid_motion():
    ds = MovingDigits(frames=8, image_size=48, channels=1, n=240, seed=11)
    labels = ds.all_labels()
    assert set(labels[:, 1].tolist()) == set(range(8))
    for i in range(len(ds)):
        c = _centroids(ds[i][0])
        d_rows, d_cols = c[-1] - c[0]
        angle = np.degrees(np.arctan2(-d_rows, d_cols)) % 360  # up = towards row 0
        expected = 45 * int(labels[i, 1])
        assert abs((angle - expected + 180) % 360 - 180) < 22.5, (i, angle, expected)


def test_speed_classes_are_ordered_and_motion_is_smooth():
    ds = MovingDigits(frames=16, image_size=64, channels=1, n=240, seed=2)
    labels = ds.all_labels()
    dist = {0: [], 1: [], 2: []}
    for i in range(len(ds)):
        c = _centroids(ds[i][0])
        dist[int(labels[i, 2])].append(np.hypot(*(c[-1] - c[0])))
        steps = np.hypot(*np.diff(c, axis=0).T)
        if labels[i, 2] == 0:
            # Sub-pixel placement: even slow digits move every frame, by nearly equal steps.
            assert steps.min() > 0.5 * steps.mean()
    means = [np.mean(dist[k]) for k in range(3)]
    assert means[0] < means[1] < means[2]
    assert means[0] / means[2] == pytest.approx(0.2 / 0.9, rel=0.15)  # slow 0.2, fast 0.9 of the free space


def test_two_digits_add_a_distractor_and_keep_labels():
    one = MovingDigits(frames=8, image_size=48, channels=1, n=100, seed=4)
    two = MovingDigits(frames=8, image_size=48, channels=1, n=100, seed=4, digits=2)
    assert torch.equal(one.all_labels(), two.all_labels())  # labels describe the first digit
    apart = 0
    for i in range(len(one)):
        c1, c2 = one[i][0].numpy()[..., 0], two[i][0].numpy()[..., 0]
        assert (c2 >= c1).all()  # the first digit is unchanged, the second is combined by max
        s = two.params(i)["sprites"]
        assert len(s) == 2 and s[0]["image_id"] != s[1]["image_id"]
        gap = np.abs(s[0]["box"] - s[1]["box"]).max(axis=1)  # per frame, larger of the row/col offsets
        f = int(np.argmax(gap))
        if gap[f] < two.footprint:
            continue  # the footprints overlap in every frame
        apart += 1
        # Two separate blobs: the extra intensity is a digit's worth, centred in the distractor's box.
        extra = c2[f].astype(np.float64) - c1[f]
        assert extra.sum() > 0.5 * c1[f].sum()
        centre = np.array(ndimage.center_of_mass(extra))
        assert (s[1]["box"][f] <= centre).all() and (centre <= s[1]["box"][f] + two.footprint).all()
        blobs = ndimage.label(c2[f] > 40)[1]
        assert blobs >= ndimage.label(c1[f] > 40)[1] + 1
    assert apart >= 15
