import pytest
import torch
from torch.utils.data import DataLoader

from blockmae.data import SkipCorrupt, TooManyCorrupt, VideoDecodeError, build_dataset, check_dataset, collate
from blockmae.data.check import format_report

BROKEN = {"missing.mp4": "missing", "empty.mp4": "empty", "garbage.mp4": "undecodable", "cut.mp4": "undecodable",
          "cut.avi": "truncated", "short.mp4": "too short"}


@pytest.fixture
def mixed(tmp_path, media):
    """Good samples at even indices, every kind of broken one at odd indices."""
    lines = []
    for k, bad in enumerate(BROKEN):
        lines += [f"{'good.mp4' if k % 2 else 'tall.avi'} {k}", f"{bad} {k}"]
    path = tmp_path / "mixed.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def build(path, media, split="train", extra=""):
    # rate=10 with 4 frames spans 40 frames, so cut.avi (40 in its header, 20 decodable) always fails as
    # truncated; min_frames=4 makes the 3-frame clip too short
    return build_dataset(f"list:{path},root={media},rate=10,min_frames=4{extra}", split, frames=4, image_size=16)


def test_dataset_raises_the_reason(mixed, media):
    ds = build(mixed, media)
    for i, (name, reason) in enumerate(BROKEN.items()):
        with pytest.raises(VideoDecodeError) as info:
            ds[2 * i + 1]
        assert info.value.reason == reason and name in str(info.value), name


def test_skip_replaces_counts_and_names(mixed, media):
    ds = SkipCorrupt(build(mixed, media), seed=3)
    total = []
    for i in range(len(ds)):
        clip, labels, skipped = ds[i]
        assert clip.shape == (4, 16, 16, 3) and labels.shape == (1,)
        if i % 2 == 0:
            assert skipped == []
        else:
            name = list(BROKEN)[i // 2]
            assert skipped[0].startswith(str(media / name) + ": " + BROKEN[name])
        total += skipped
    assert len(total) >= len(BROKEN)
    again = SkipCorrupt(build(mixed, media), seed=3)
    assert all(torch.equal(ds[i][0], again[i][0]) and ds[i][2] == again[i][2] for i in (1, 3, 5))  # deterministic
    assert ds.target_names == ["label"] and ds.all_labels().shape == (12, 1)  # the wrapped set's attributes


def test_strict_raises_at_once(mixed, media):
    ds = SkipCorrupt(build(mixed, media), strict=True)
    assert len(ds[0][2]) == 0
    with pytest.raises(VideoDecodeError) as info:
        ds[3]
    assert isinstance(info.value, ValueError) and "empty.mp4: empty" in str(info.value)


def test_all_broken_gives_up(tmp_path, media):
    path = tmp_path / "bad.txt"
    path.write_text("missing.mp4 0\nempty.mp4 0\n")
    with pytest.raises(TooManyCorrupt, match="datasets check"):
        SkipCorrupt(build(path, media), max_attempts=5)[0]


def test_collate_flattens_repeats_and_gathers_skips(mixed, media):
    ds = SkipCorrupt(build(mixed, media, extra=",clips=2"))
    clips, labels, skipped = collate([ds[0], ds[1], ds[2]])
    assert clips.shape == (6, 4, 16, 16, 3) and clips.dtype == torch.uint8
    assert labels.shape == (6, 1) and labels[0] == labels[1] and labels[4] == labels[5]
    assert len(skipped) >= 1
    clips, labels = collate([build(mixed, media)[0], build(mixed, media)[2]])
    assert clips.shape == (2, 4, 16, 16, 3) and labels.shape == (2, 1)


def test_workers_skip_the_same_way(mixed, media):
    ds = SkipCorrupt(build(mixed, media))
    serial = [ds[i] for i in range(len(ds))]
    loader = DataLoader(ds, batch_size=4, num_workers=2, collate_fn=collate)
    batches = list(loader)
    assert sum(len(b[2]) for b in batches) == sum(len(s[2]) for s in serial)
    assert torch.equal(torch.cat([b[0] for b in batches]), torch.stack([s[0] for s in serial]))


def test_strict_error_crosses_worker_processes(mixed, media):
    loader = DataLoader(SkipCorrupt(build(mixed, media), strict=True), batch_size=2, num_workers=1, collate_fn=collate)
    with pytest.raises(ValueError, match="missing.mp4: missing"):
        list(loader)


@pytest.mark.slow
def test_check_dataset_report(mixed, media):
    spec = f"list:{mixed},root={media},min_frames=4"
    report = check_dataset(spec, frames=4, image_size=16, progress=False)
    assert report["total"] == 12 and report["ok"] == 6
    assert report["reasons"] == {"undecodable": 2, "missing": 1, "empty": 1, "truncated": 1, "too short": 1}
    assert {f["path"]: f["reason"] for f in report["failed"]} == {str(media / k): v for k, v in BROKEN.items()}
    text = format_report(report)
    assert "6 of 12 entries decode" in text and str(media / "cut.avi") in text
    assert check_dataset("digits,n=3", "test", frames=2, image_size=16, progress=False)["ok"] == 3


def test_epoch_index_pairs_pass_through(mixed, media):
    ds = SkipCorrupt(build(mixed, media))
    clip, labels, skipped = ds[(1, 2)]
    assert skipped and clip.shape == (4, 16, 16, 3)
    ds.set_epoch(2)  # forwarded to the wrapped dataset
    assert torch.equal(ds[1][0], clip) and ds[1][2] == skipped
