import itertools
import math

import numpy as np
import pytest
import torch

from blockmae.data import DriftingGratings, TwoRegionGratings, build_dataset, render_grating, render_two_region
from blockmae.data.gratings import COLOURS, LUMA


def _pixel(frame, row, col, ch, *, size, channels, fps, sf, orientation, tf, contrast, colour):
    """The documented formula, written out for one pixel."""
    x, y, t = (col + 0.5) / size, (size - row - 0.5) / size, frame / fps
    th = math.radians(orientation)
    s = math.sin(2 * math.pi * (sf * (x * math.cos(th) + y * math.sin(th)) - tf * t))
    rgb = COLOURS[colour]
    c = rgb[ch] if channels == 3 else sum(w * v for w, v in zip(LUMA, rgb))
    return math.floor(255 * (0.5 + 0.5 * contrast * s * c) + 0.5)


def test_sizes_and_factorial_order():
    g, g2 = DriftingGratings(frames=2, image_size=8), TwoRegionGratings(frames=2, image_size=8)
    assert len(g) == 10_800 and len(g2) == 15_552
    assert g.name == "gratings" and g2.name == "gratings2"
    assert g.target_names == ["spatial_frequency", "orientation", "temporal_frequency", "contrast", "colour"]
    product = list(itertools.product(*(range(len(g.class_names[t])) for t in g.target_names)))
    assert g.all_labels().tolist() == [list(p) for p in product]


def test_index_decodes_to_the_expected_labels():
    g = DriftingGratings(frames=2, image_size=8)
    assert g[0][1].tolist() == [0, 0, 0, 0, 0]
    assert g[1][1].tolist() == [0, 0, 0, 0, 1]  # colour varies fastest
    assert g[5][1].tolist() == [0, 0, 0, 1, 0]
    assert g[10_799][1].tolist() == [5, 11, 5, 4, 4]
    i = (((2 * 12 + 5) * 6 + 3) * 5 + 1) * 5 + 4
    labels = g[i][1].tolist()
    assert labels == [2, 5, 3, 1, 4]
    assert [g.class_names[t][k] for t, k in zip(g.target_names, labels)] == ["12", "150", "4", "0.4", "orange"]
    assert g.params(i) == dict(spatial_frequency=12, orientation=150, temporal_frequency=4, contrast=0.4,
                               colour="orange")
    g2 = TwoRegionGratings(frames=2, image_size=8)
    # sf_left=16, sf_right=4, orientation_left=330, delta=90, tf, contrast, colour last
    i = ((((((2 * 3 + 0) * 12 + 11) * 4 + 2) * 3 + 1) * 3 + 2) * 4 + 3)
    names = [g2.class_names[t][k] for t, k in zip(g2.target_names, g2[i][1].tolist())]
    assert names == ["16", "4", "-12", "left", "no", "330", "60", "90", "no"]


@pytest.mark.parametrize("channels", [3, 1])
def test_pixels_follow_the_formula(channels):
    size, frames = 24, 5
    g = DriftingGratings(frames=frames, image_size=size, channels=channels)
    rng = np.random.default_rng(0)
    mismatches = 0
    for i in rng.choice(len(g), 12, replace=False):
        clip, _ = g[int(i)]
        p = g.params(int(i))
        for _ in range(20):
            f, r, c, ch = (int(rng.integers(k)) for k in (frames, size, size, channels))
            want = _pixel(f, r, c, ch, size=size, channels=channels, fps=6.25, sf=p["spatial_frequency"],
                          orientation=p["orientation"], tf=p["temporal_frequency"], contrast=p["contrast"],
                          colour=p["colour"])
            got = int(clip[f, r, c, ch])
            assert abs(got - want) <= 1  # float32 rendering may round a .5 the other way
            mismatches += got != want
    assert mismatches <= 5


def test_drift_direction_convention():
    # sf=4 cycles/width, 1 Hz at 8 fps on 64 px: the pattern moves exactly 2 px per frame.
    kw = dict(frames=2, image_size=64, channels=1, fps=8.0, sf=4, tf=1, contrast=1.0, colour="gray")
    right = render_grating(orientation=0, **kw)[..., 0].astype(int)
    assert np.abs(right[1, :, 2:] - right[0, :, :-2]).max() <= 1  # 0 deg: moves right
    up = render_grating(orientation=90, **kw)[..., 0].astype(int)
    assert np.abs(up[1, :-2, :] - up[0, 2:, :]).max() <= 1  # 90 deg: moves up, towards row 0
    assert np.abs(up[1, 2:, :] - up[0, :-2, :]).max() > 100  # and not down


@pytest.mark.parametrize("tf", [0.5, 1, 2])
def test_temporal_frequency_is_visible_in_the_fft(tf):
    frames, fps = 32, 6.25
    g = DriftingGratings(frames=frames, image_size=16)
    index = int(np.ravel_multi_index((0, 0, g.factors["temporal_frequency"].index(tf), 4, 0), g.shape))
    assert g.params(index)["temporal_frequency"] == tf and g.params(index)["spatial_frequency"] == 4
    series = g[index][0][:, 5, 7, 0].numpy().astype(np.float64)
    spectrum = np.abs(np.fft.rfft(series - series.mean()))
    peak = np.fft.rfftfreq(frames, d=1 / fps)[np.argmax(spectrum)]
    assert abs(peak - tf) <= fps / frames  # within one frequency bin


def test_zero_contrast_is_constant_and_gray_is_luma_of_rgb():
    for colour in COLOURS:
        for channels in (1, 3):
            clip = render_grating(frames=3, image_size=16, channels=channels, sf=8, orientation=30, tf=2,
                                  contrast=0.0, colour=colour)
            assert (clip == 128).all()
        kw = dict(frames=3, image_size=16, sf=8, orientation=30, tf=2, contrast=0.8, colour=colour)
        rgb = render_grating(channels=3, **kw).astype(np.float64)
        gray = render_grating(channels=1, **kw)[..., 0].astype(np.float64)
        assert np.abs(rgb @ np.asarray(LUMA) - gray).max() <= 1.0


@pytest.mark.parametrize("cls", [DriftingGratings, TwoRegionGratings])
@pytest.mark.parametrize("frames,size,channels", [(4, 32, 3), (3, 33, 1), (16, 64, 3)])
def test_shapes_dtypes_and_label_ranges(cls, frames, size, channels):
    ds = cls(frames=frames, image_size=size, channels=channels, n=10, seed=1)
    assert len(ds) == 10
    for i in range(len(ds)):
        clip, labels = ds[i]
        assert clip.shape == (frames, size, size, channels) and clip.dtype == torch.uint8
        assert labels.shape == (len(ds.target_names),) and labels.dtype == torch.int64
    all_labels = cls(frames=frames, image_size=size).all_labels()
    for k, name in enumerate(ds.target_names):
        # every class occurs, and no label points past its class names
        assert sorted(set(all_labels[:, k].tolist())) == list(range(len(ds.class_names[name])))


def test_same_clip_every_time_and_split_is_ignored():
    a = build_dataset("gratings2,n=50", "train", frames=4, image_size=16, seed=2)
    b = build_dataset("gratings2,n=50", "test", frames=4, image_size=16, seed=2)
    for i in (0, 17, 49):
        assert torch.equal(a[i][0], a[i][0]) and torch.equal(a[i][0], b[i][0])
        assert torch.equal(a[i][1], b[i][1])


def test_subset_is_deterministic_sorted_and_taken_from_the_full_set():
    full = DriftingGratings(frames=3, image_size=16)
    a = DriftingGratings(frames=3, image_size=16, n=100, seed=0)
    b = DriftingGratings(frames=3, image_size=16, n=100, seed=0)
    c = DriftingGratings(frames=3, image_size=16, n=100, seed=1)
    assert len(a) == 100 and len(set(a.indices.tolist())) == 100
    assert np.array_equal(a.indices, b.indices) and np.all(np.diff(a.indices) > 0)
    assert not np.array_equal(a.indices, c.indices)
    for k in (0, 50, 99):
        assert torch.equal(a[k][0], full[int(a.indices[k])][0])
        assert torch.equal(a[k][1], full[int(a.indices[k])][1])
    assert torch.equal(a.all_labels(), full.all_labels()[a.indices])
    with pytest.raises(ValueError, match="10800"):
        DriftingGratings(frames=3, image_size=16, n=10_801)


def test_two_region_relational_targets_are_consistent():
    g2 = TwoRegionGratings(frames=2, image_size=8)
    lab = g2.all_labels().numpy()
    value = {t: np.array([float(v) if v.lstrip("-").isdigit() else np.nan for v in g2.class_names[t]])
             for t in ("sf_left", "sf_right", "sf_delta", "orientation_left", "orientation_right", "orientation_delta")}
    col = {t: lab[:, k] for k, t in enumerate(g2.target_names)}
    v = {t: value[t][col[t]] for t in value}
    assert np.array_equal(col["sf_match"], v["sf_left"] == v["sf_right"])
    assert np.array_equal(v["sf_delta"], v["sf_right"] - v["sf_left"])
    side = np.array(g2.class_names["sf_higher_side"])[col["sf_higher_side"]]
    assert np.array_equal(side == "left", v["sf_left"] > v["sf_right"])
    assert np.array_equal(side == "right", v["sf_right"] > v["sf_left"])
    assert np.array_equal(side == "equal", v["sf_left"] == v["sf_right"])
    assert np.array_equal(v["orientation_right"], (v["orientation_left"] + v["orientation_delta"]) % 360)
    assert np.array_equal(col["orientation_match"], v["orientation_delta"] == 0)
    assert g2.class_names["orientation_right"] == [str(a) for a in range(0, 360, 15)]


def test_two_region_halves_carry_their_own_gratings():
    size, half = 32, 16
    g2 = TwoRegionGratings(frames=4, image_size=size)
    labels = g2.all_labels()
    col = {t: k for k, t in enumerate(g2.target_names)}
    sf_match, ori_match = labels[:, col["sf_match"]] == 1, labels[:, col["orientation_match"]] == 1
    groups = {"same": sf_match & ori_match, "sf": ~sf_match & ori_match, "orientation": sf_match & ~ori_match,
              "both": ~sf_match & ~ori_match}
    rng = np.random.default_rng(0)
    picks = [int(i) for m in groups.values() for i in rng.choice(np.flatnonzero(m.numpy()), 4, replace=False)]
    checked = {"same": 0, "differ": 0}
    for i in picks:
        clip, lab = g2[i]
        p = g2.params(i)
        common = dict(frames=4, image_size=size, tf=p["temporal_frequency"], contrast=p["contrast"],
                      colour=p["colour"])
        left = torch.from_numpy(render_grating(sf=p["sf_left"], orientation=p["orientation_left"], **common))
        ori_r = (p["orientation_left"] + p["orientation_delta"]) % 360
        right = torch.from_numpy(render_grating(sf=p["sf_right"], orientation=ori_r, **common))
        # each half is its own grating in whole-frame coordinates
        assert torch.equal(clip[:, :, :half], left[:, :, :half])
        assert torch.equal(clip[:, :, half:], right[:, :, half:])
        differ = (clip[:, :, half:].int() - left[:, :, half:].int()).abs().max() > 20
        if lab[col["sf_match"]] == 1 and lab[col["orientation_match"]] == 1:
            checked["same"] += 1
            assert not differ  # one grating continuing across the frame
        else:
            checked["differ"] += 1
            assert differ
    assert checked == {"same": 4, "differ": 12}
    assert labels.shape == (15_552, 9)


def test_render_two_region_odd_width_splits_at_half():
    common = dict(frames=2, image_size=9, channels=1, tf=2, contrast=1.0, colour="gray")
    clip = render_two_region(sf_left=4, sf_right=16, orientation_left=0, orientation_right=90, **common)
    left = render_grating(sf=4, orientation=0, **common)
    right = render_grating(sf=16, orientation=90, **common)
    assert np.array_equal(clip[:, :, :4], left[:, :, :4])  # left half: columns < W // 2
    assert np.array_equal(clip[:, :, 4:], right[:, :, 4:])
    assert not np.array_equal(left[:, :, 4], right[:, :, 4])
