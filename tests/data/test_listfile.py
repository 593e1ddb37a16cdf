import pytest
import torch

from blockmae.data import (ListFileError, VideoDataset, available_datasets, build_dataset, read_list)
from blockmae.data.listfile import Entry


def test_read_list_splits_from_the_right(tmp_path):
    path = tmp_path / "lists" / "train.txt"
    path.parent.mkdir()
    path.write_text("# a comment\n\nvideos/a b c.mp4 3\n  /abs/x.webm\t12  \nframes/v_1 0\n")
    entries = read_list(path)
    base = tmp_path / "lists"
    assert entries == [Entry(str(base / "videos/a b c.mp4"), 3), Entry("/abs/x.webm", 12), Entry(str(base / "frames/v_1"), 0)]
    assert read_list(path, root="/data")[0] == Entry("/data/videos/a b c.mp4", 3)
    bare = tmp_path / "bare.txt"
    bare.write_text("videos/a b c.mp4\nvideos/d 7.mp4\n")
    assert read_list(bare, labels=False) == [Entry(str(tmp_path / "videos/a b c.mp4")),
                                             Entry(str(tmp_path / "videos/d 7.mp4"))]


@pytest.mark.parametrize("text,line", [("a.mp4 1\nb.mp4\n", 2), ("a.mp4 1\n\nb.mp4 x\n", 3), ("a.mp4 -1\n", 1),
                                       ("a.mp4 1.5\n", 1)])
def test_bad_line_names_file_and_line(tmp_path, text, line):
    path = tmp_path / "list.txt"
    path.write_text(text)
    with pytest.raises(ListFileError) as info:
        read_list(path)
    assert str(path) in str(info.value) and f"line {line}" in str(info.value) and "labels=0" in str(info.value)
    with pytest.raises(ListFileError, match=f"line {line}"):  # at dataset construction, not in a worker
        build_dataset(f"list:{path}", frames=4, image_size=16)


def test_missing_and_empty_lists(tmp_path):
    with pytest.raises(ListFileError, match="does not exist"):
        read_list(tmp_path / "nope.txt")
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(ListFileError, match="no entries"):
        read_list(tmp_path / "empty.txt")


@pytest.fixture
def collection(tmp_path, media):
    """A list with a video file, an AVI of another size, a 3-frame clip and a frame folder, relative to root."""
    path = tmp_path / "train.txt"
    path.write_text("good.mp4 0\ntall.avi 2\nshort.mp4 1\nframes 2\n")
    return path


def test_list_dataset_items(collection, media):
    ds = build_dataset(f"list:{collection},root={media},rate=2", "train", frames=8, image_size=16, seed=1)
    assert isinstance(ds, VideoDataset) and len(ds) == 4
    assert ds.target_names == ["label"] and ds.class_names == {"label": ["0", "1", "2"]}
    for i, label in enumerate([0, 2, 1, 2]):
        clip, labels = ds[i]
        assert clip.dtype == torch.uint8 and clip.shape == (8, 16, 16, 3)
        assert labels.dtype == torch.int64 and labels.tolist() == [label]
    assert ds.all_labels().tolist() == [[0], [2], [1], [2]]


@pytest.mark.parametrize("split", ["train", "test", "val"])
def test_options_shape_the_items(collection, media, split):
    spec = f"list:{collection},root={media},rate=1"
    assert build_dataset(spec + ",clips=3", split, frames=4, image_size=16)[0][0].shape == (3, 4, 16, 16, 3)
    assert build_dataset(spec + ",frames=6,size=20", split, frames=4, image_size=16)[1][0].shape == (6, 20, 20, 3)
    assert build_dataset(spec, split, frames=4, image_size=16, channels=1)[2][0].shape == (4, 16, 16, 1)
    views = build_dataset(spec + ",clips=2,crops=3", split, frames=4, image_size=16)[3][0]
    assert views.shape == ((2, 4, 16, 16, 3) if split == "train" else (6, 4, 16, 16, 3))  # crops: evaluation only


def test_eval_is_deterministic_and_centred(collection, media):
    ds = build_dataset(f"list:{collection},root={media},rate=2", "test", frames=8, image_size=16)
    assert torch.equal(ds[0][0], ds[0][0])
    wide = build_dataset(f"list:{collection},root={media},rate=2,short_side=24", "test", frames=8, image_size=16)
    assert wide[0][0].shape == (8, 16, 16, 3)


def test_unlabelled_list(tmp_path, media):
    path = tmp_path / "bare.txt"
    path.write_text(f"{media / 'good.mp4'}\n{media / 'frames'}\n")
    ds = build_dataset(f"list:{path},labels=0", "train", frames=4, image_size=16)
    clip, labels = ds[1]
    assert clip.shape == (4, 16, 16, 3) and labels.shape == (0,) and labels.dtype == torch.int64
    assert ds.target_names == [] and ds.class_names == {} and ds.all_labels().shape == (2, 0)


def test_frame_folder_pattern_options(tmp_path, make_frames):
    make_frames(tmp_path / "clip", 6, pattern="{:03d}.jpg", start=0)
    path = tmp_path / "list.txt"
    path.write_text("clip 0\n")
    ds = build_dataset(f"list:{path},pattern={{:03d}}.jpg,start=0,rate=1", "test", frames=4, image_size=8)
    assert ds[0][0].shape == (4, 8, 8, 3)


def test_list_spec_is_registered_with_options():
    listing = {d["name"]: d for d in available_datasets()}
    info = listing["list:ARG"]
    assert info["targets"] == ["label"] and info["splits"] == ["train", "val", "test"]
    options = info["options"]
    for key, default in [("root", None), ("labels", True), ("pattern", "img_{:05d}.jpg"), ("rate", 4), ("clips", 1),
                         ("sampling", "rate"), ("backend", "pyav"), ("flip", True), ("crops", 1)]:
        assert options[key]["default"] == default, key
    assert info["example"].startswith("list:")


@pytest.mark.parametrize("spec,match", [
    ("list:{p},rate=0", "rate='0'.*positive integer"),
    ("list:{p},sampling=tsn", "rate or segment"),
    ("list:{p},backend=opencv", "pyav or decord or torchcodec"),
    ("list:{p},pattern=img.jpg", "one {} field"),
    ("list:{p},crops=2", "1 or 3"),
    ("list:{p},short_side=8", "short_side=8 is smaller"),
    ("list:{p},labels=maybe", "0 or 1"),
    ("list:{p},rat=2", "did you mean 'rate'"),
    ("list", "needs an argument"),
])
def test_bad_options(collection, spec, match):
    with pytest.raises(ValueError, match=match):
        build_dataset(spec.format(p=collection), frames=4, image_size=16)
