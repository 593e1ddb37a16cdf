import pytest
import torch

from blockmae.data import (DatasetInfo, DriftingGratings, MovingDigits, Option, TwoRegionGratings,
                           available_datasets, build_dataset, parse_spec)
from blockmae.data import spec as spec_module


def test_parse_spec():
    assert parse_spec("digits,n=100,digits=2") == ("digits", {"n": "100", "digits": "2"})
    assert parse_spec("gratings") == ("gratings", {})
    assert parse_spec(" digits , n = 5 ,") == ("digits", {"n": "5"})
    # the name is everything before the first comma: paths with colons and spaces survive
    assert parse_spec("list:/a b/c.txt,root=/x") == ("list:/a b/c.txt", {"root": "/x"})
    assert parse_spec("x,path=a=b") == ("x", {"path": "a=b"})


@pytest.mark.parametrize("bad,match", [
    ("", "no dataset name"),
    (",n=3", "no dataset name"),
    ("digits,n", "'n' is not of the form key=value"),
    ("digits,=3", "not of the form key=value"),
    ("digits,n=1,n=2", "'n' given twice"),
])
def test_parse_spec_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        parse_spec(bad)


def test_build_converts_options_and_overrides_shape():
    ds = build_dataset("digits,n=7,digits=2,size=24,frames=3", "test", frames=16, image_size=64, channels=1, seed=4)
    assert isinstance(ds, MovingDigits) and len(ds) == 7 and ds.digits == 2 and ds.seed == 4
    assert ds.split == "test"
    assert ds[0][0].shape == (3, 24, 24, 1)
    g = build_dataset("gratings,fps=12.5,n=9", frames=4, image_size=16)
    assert isinstance(g, DriftingGratings) and g.fps == 12.5 and len(g) == 9
    g2 = build_dataset("gratings2", "test", frames=4, image_size=16, channels=3)
    assert isinstance(g2, TwoRegionGratings) and len(g2) == 15_552 and g2[0][0].shape == (4, 16, 16, 3)


def _error(spec, split="train"):
    with pytest.raises(ValueError) as info:
        build_dataset(spec, split, frames=4, image_size=16)
    return str(info.value)


def test_unknown_dataset_lists_names_and_suggests():
    msg = _error("digts")
    assert "'digts'" in msg and "did you mean 'digits'" in msg
    assert all(name in msg for name in ("digits", "gratings", "gratings2"))
    assert "did you mean" not in _error("zzzzzz")
    assert "gratings2" in _error("gratings3")


def test_unknown_option_names_dataset_key_valid_keys_and_suggestion():
    msg = _error("digits,digit=2")
    assert "'digits'" in msg and "'digit'" in msg and "did you mean 'digits'" in msg
    assert "n, digits, frames, size" in msg
    msg = _error("gratings,sizee=8")
    assert "'gratings'" in msg and "'sizee'" in msg and "did you mean 'size'" in msg and "fps" in msg


@pytest.mark.parametrize("spec,key,value,expected", [
    ("digits,digits=3", "digits", "3", "1 or 2"),
    ("digits,n=abc", "n", "abc", "a positive integer"),
    ("digits,n=0", "n", "0", "a positive integer"),
    ("gratings,fps=-1", "fps", "-1", "a positive number"),
    ("gratings2,size=big", "size", "big", "a positive integer"),
])
def test_bad_value_names_key_value_and_expectation(spec, key, value, expected):
    msg = _error(spec)
    assert f"{key}='{value}'" in msg and expected in msg


def test_bad_split_and_subset_size():
    msg = _error("digits", "val")
    assert "'val'" in msg and "train, test" in msg
    assert "10800" in _error("gratings,n=20000")
    assert len(build_dataset("gratings,n=3", "anything", frames=2, image_size=8)) == 3  # split ignored


def test_available_datasets_describe_and_build():
    listing = {d["name"]: d for d in available_datasets()}
    assert {"digits", "gratings", "gratings2"} <= set(listing)
    classes = {"digits": MovingDigits, "gratings": DriftingGratings, "gratings2": TwoRegionGratings}
    for name, cls in classes.items():
        d = listing[name]
        assert d["description"] and "\n" not in d["description"]
        assert d["targets"] == cls.target_names
        assert {"n", "frames", "size"} <= set(d["options"])
        ds = build_dataset(d["example"], frames=2, image_size=16)
        assert isinstance(ds, cls) and ds.name == name
        clip, labels = ds[0]
        assert clip.dtype == torch.uint8 and labels.shape == (len(d["targets"]),)
    assert listing["digits"]["options"]["digits"]["default"] == 1
    assert listing["gratings"]["options"]["fps"]["default"] == 6.25
    assert listing["digits"]["splits"] == ["train", "test"] and listing["gratings"]["splits"] is None


def test_registered_dataset_with_argument(monkeypatch):
    calls = []

    def factory(split, **kwargs):
        calls.append((split, kwargs))
        return list(range(3))

    info = DatasetInfo("fake", factory, "a test double", ["label"],
                       {"root": Option(str, "a folder", None)}, example="fake:PATH", takes_argument=True)
    monkeypatch.setitem(spec_module.REGISTRY, "fake", info)
    build_dataset("fake:/a b/c.txt,root=/x", "test", frames=4, image_size=16, seed=1)
    assert calls == [("test", dict(frames=4, image_size=16, channels=3, seed=1, root="/x", argument="/a b/c.txt"))]
    assert "needs an argument" in _error("fake")
    assert "takes no ':' argument" in _error("digits:3")
