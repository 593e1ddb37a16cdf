import json

import pytest
import torch

from blockmae.data import ListFileError, available_datasets, build_dataset
from blockmae.data.collections import hmdb51_entries, kinetics_entries, ssv2_entries, ucf101_entries


def _build(spec, split="train"):
    return build_dataset(spec, split, frames=4, image_size=16)


# ------------------------------------------------------------------ UCF101

@pytest.fixture
def ucf(tmp_path, copy_video):
    root = tmp_path / "ucf101"
    ann = root / "ucfTrainTestlist"
    ann.mkdir(parents=True)
    (ann / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 Archery\n3 HandstandPushups\n")
    (ann / "trainlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\r\n"
                                         "HandstandPushups/v_HandStandPushups_g08_c01.avi 3\r\n")
    (ann / "testlist01.txt").write_text("Archery/v_Archery_g01_c01.avi\r\nHandstandPushups/v_HandStandPushups_g01_c02.avi\r\n")
    (ann / "trainlist02.txt").write_text("Archery/v_Archery_g01_c01.avi 2\n")
    for name in ["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", "Archery/v_Archery_g01_c01.avi"]:
        copy_video(root / "UCF-101" / name)
    return root


def test_ucf101_labels(ucf):
    train, classes = ucf101_entries(ucf, 1, "train")
    assert classes == ["ApplyEyeMakeup", "Archery", "HandstandPushups"]
    assert [(e.path, e.label) for e in train] == [
        (str(ucf / "UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi"), 0),
        (str(ucf / "UCF-101/HandstandPushups/v_HandStandPushups_g08_c01.avi"), 2)]
    test, _ = ucf101_entries(ucf, 1, "test")  # test lists: the label comes from the class folder
    assert [e.label for e in test] == [1, 2]
    assert [e.label for e in ucf101_entries(ucf, 2, "train")[0]] == [1]
    assert ucf101_entries(ucf, 1, "train", videos="/elsewhere", ext="")[0][0].path == \
        "/elsewhere/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01"


def test_ucf101_spec(ucf):
    ds = _build(f"ucf101:{ucf}")
    assert ds.class_names == {"label": ["ApplyEyeMakeup", "Archery", "HandstandPushups"]}
    clip, labels = ds[0]
    assert clip.shape == (4, 16, 16, 3) and labels.tolist() == [0]
    test = _build(f"ucf101:{ucf},split=1", "test")
    clip, labels = test[0]
    assert clip.shape == (4, 16, 16, 3) and labels.tolist() == [1]
    assert _build(f"ucf101:{ucf},split=2")[0][1].tolist() == [1]
    with pytest.raises(ListFileError, match="testlist03.txt"):
        _build(f"ucf101:{ucf},split=3", "test")
    # n= keeps a stratified subset of the official list: one of the two test videos (two classes, one each)
    subset = _build(f"ucf101:{ucf},n=1", "test")
    assert len(subset) == 1 and subset.entries == _build(f"ucf101:{ucf},n=1", "test").entries
    assert subset.entries[0] in _build(f"ucf101:{ucf}", "test").entries


def test_ucf101_bad_files(ucf):
    (ucf / "ucfTrainTestlist" / "testlist01.txt").write_text("Archery/v_Archery_g01_c01.avi\nBowling/v_B.avi\n")
    with pytest.raises(ListFileError, match=r"testlist01.txt, line 2"):
        _build(f"ucf101:{ucf}", "test")
    (ucf / "ucfTrainTestlist" / "classInd.txt").unlink()
    with pytest.raises(ListFileError, match="classInd.txt not found"):
        _build(f"ucf101:{ucf}")
    with pytest.raises(ListFileError, match="not a directory"):
        _build(f"ucf101:{ucf / 'nope'}")


# ------------------------------------------------------------------ HMDB51

@pytest.fixture
def hmdb(tmp_path, copy_video):
    root = tmp_path / "hmdb51"
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    (splits / "brush_hair_test_split1.txt").write_text("April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1 \n"
                                                       "Blonde_being_brushed_brush_hair_f_nm_np2_ri_med_0.avi 2 \n"
                                                       "unused_brush_hair_0.avi 0 \n")
    (splits / "cartwheel_test_split1.txt").write_text("Bodenturnen_cartwheel_f_cm_np1_le_med_0.avi 1 \n"
                                                      "cart_test_0.avi 2 \n")
    (splits / "cartwheel_test_split2.txt").write_text("cart_test_0.avi 1 \n")
    copy_video(root / "hmdb51_org" / "brush_hair" / "April_09_brush_hair_u_nm_np1_ba_goo_0.avi")
    return root


def test_hmdb51_labels(hmdb):
    train, classes = hmdb51_entries(hmdb, 1, "train")
    assert classes == ["brush_hair", "cartwheel"]
    assert [(e.path.split("hmdb51_org/")[1], e.label) for e in train] == [
        ("brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi", 0),
        ("cartwheel/Bodenturnen_cartwheel_f_cm_np1_le_med_0.avi", 1)]
    test, _ = hmdb51_entries(hmdb, 1, "test")
    assert [(e.path.split("/")[-1], e.label) for e in test] == [
        ("Blonde_being_brushed_brush_hair_f_nm_np2_ri_med_0.avi", 0), ("cart_test_0.avi", 1)]
    with pytest.raises(ListFileError, match="_test_split3.txt"):
        hmdb51_entries(hmdb, 3, "train")


def test_hmdb51_spec(hmdb):
    ds = _build(f"hmdb51:{hmdb},split=1")
    clip, labels = ds[0]
    assert clip.shape == (4, 16, 16, 3) and labels.tolist() == [0] and len(ds) == 2
    assert ds.class_names["label"] == ["brush_hair", "cartwheel"]


# ------------------------------------------------------------------ Kinetics

KINETICS_TRAIN = ("label,youtube_id,time_start,time_end,split\n"
                  "abseiling,--07WQ2iBlw,1,11,train\n"
                  "air drumming,-0Dn_1DIHas,13,23,train\n"
                  "zumba,zz9u3o-VP2o,100,110,train\n")
KINETICS_VAL = ("label,youtube_id,time_start,time_end,split\n"
                "zumba,-4EtZUDHpXU,30,40,val\n"
                "air drumming,0A0_bEaIrSk,0,10,val\n")


@pytest.fixture
def kinetics(tmp_path, copy_video):
    root = tmp_path / "k400"
    root.mkdir()
    (root / "train.csv").write_text(KINETICS_TRAIN)
    (root / "validate.csv").write_text(KINETICS_VAL)
    copy_video(root / "videos" / "zumba" / "-4EtZUDHpXU_000030_000040.mp4")
    copy_video(root / "videos" / "air_drumming" / "0A0_bEaIrSk_000000_000010.mp4")
    copy_video(root / "flat" / "--07WQ2iBlw_000001_000011.mp4")
    return root


def test_kinetics_labels_and_names(kinetics):
    train, classes = kinetics_entries(kinetics / "train.csv", root=str(kinetics / "flat"))
    assert classes == ["abseiling", "air drumming", "zumba"]
    assert [e.label for e in train] == [0, 1, 2]
    assert [e.path for e in train] == [str(kinetics / "flat" / n) for n in (
        "--07WQ2iBlw_000001_000011.mp4", "-0Dn_1DIHas_000013_000023.mp4", "zz9u3o-VP2o_000100_000110.mp4")]
    # validation: classes numbered as in train.csv beside it; per-class folders detected (spaces as _)
    val, val_classes = kinetics_entries(kinetics / "validate.csv", "val", root=str(kinetics / "videos"))
    assert val_classes == classes and [e.label for e in val] == [2, 1]
    assert val[1].path == str(kinetics / "videos" / "air_drumming" / "0A0_bEaIrSk_000000_000010.mp4")
    # a folder argument picks the CSV by split
    assert [e.label for e in kinetics_entries(kinetics, "val", root=str(kinetics / "videos"))[0]] == [2, 1]
    classes_file = kinetics / "classes.txt"
    classes_file.write_text("zumba\nair drumming\nabseiling\n")
    assert [e.label for e in kinetics_entries(kinetics / "validate.csv", classes=str(classes_file))[0]] == [0, 1]


def test_kinetics_spec_and_errors(kinetics):
    ds = _build(f"kinetics:{kinetics}/validate.csv,root={kinetics}/videos", "val")
    clip, labels = ds[0]
    assert clip.shape == (4, 16, 16, 3) and labels.tolist() == [2]
    assert ds.class_names["label"] == ["abseiling", "air drumming", "zumba"]
    (kinetics / "bad.csv").write_text("youtube_id,start,end\nabc,1,2\n")
    with pytest.raises(ListFileError, match="missing time_end, time_start"):
        _build(f"kinetics:{kinetics}/bad.csv")
    (kinetics / "bad.csv").write_text("label,youtube_id,time_start,time_end\nzumba,abc,one,2\n")
    with pytest.raises(ListFileError, match="bad.csv, line 2"):
        _build(f"kinetics:{kinetics}/bad.csv")
    test_csv = kinetics / "sub" / "test.csv"  # the K400 test CSV has no labels
    test_csv.parent.mkdir()
    test_csv.write_text("youtube_id,time_start,time_end,split\nabc,1,11,test\n")
    ds = _build(f"kinetics:{test_csv}", "test")
    assert ds.target_names == [] and ds.all_labels().shape == (1, 0)


# ------------------------------------------------------------------ Something-Something v2

SSV2_LABELS = {"Approaching something with your camera": "0", "Moving something from left to right": "1",
               "Pushing something so that it slightly moves": "2"}
SSV2_TRAIN = [{"id": "78687", "label": "moving a pen from left to right", "template": "Moving [something] from left to right",
               "placeholders": ["a pen"]},
              {"id": "42326", "label": "approaching a cup with your camera",
               "template": "Approaching [something] with your camera", "placeholders": ["a cup"]}]
SSV2_VAL = [{"id": "74225", "label": "pushing a box so that it slightly moves",
             "template": "Pushing [something] so that it slightly moves", "placeholders": ["a box"]}]


@pytest.fixture
def ssv2(tmp_path, copy_video):
    root = tmp_path / "ssv2"
    (root / "labels").mkdir(parents=True)
    (root / "labels" / "something-something-v2-labels.json").write_text(json.dumps(SSV2_LABELS))
    (root / "labels" / "something-something-v2-train.json").write_text(json.dumps(SSV2_TRAIN))
    (root / "labels" / "something-something-v2-validation.json").write_text(json.dumps(SSV2_VAL))
    copy_video(root / "20bn-something-something-v2" / "78687.webm")  # an H.264 MP4 under a .webm name: fine
    copy_video(root / "20bn-something-something-v2" / "74225.webm")
    return root


def test_ssv2_labels(ssv2):
    train, classes = ssv2_entries(ssv2, "train")
    assert classes == list(SSV2_LABELS)
    assert [(e.path.split("/")[-1], e.label) for e in train] == [("78687.webm", 1), ("42326.webm", 0)]
    val, _ = ssv2_entries(ssv2, "test")
    assert [(e.path, e.label) for e in val] == [(str(ssv2 / "20bn-something-something-v2" / "74225.webm"), 2)]


def test_ssv2_spec_defaults(ssv2):
    ds = _build(f"ssv2:{ssv2}")
    assert ds.sampling == "segment" and ds.flip is False
    clip, labels = ds[0]
    assert clip.shape == (4, 16, 16, 3) and labels.tolist() == [1]
    listing = {d["name"]: d for d in available_datasets()}
    assert listing["ssv2:ARG"]["options"]["flip"]["default"] is False
    assert listing["ssv2:ARG"]["options"]["sampling"]["default"] == "segment"
    bad = [{"id": "1", "template": "Dropping [something]"}]
    (ssv2 / "labels" / "something-something-v2-train.json").write_text(json.dumps(bad))
    with pytest.raises(ListFileError, match="item 0 \\(id 1\\): template 'Dropping something'"):
        _build(f"ssv2:{ssv2}")


def test_every_adapter_is_listed():
    listing = {d["name"]: d for d in available_datasets()}
    for name in ("list:ARG", "ucf101:ARG", "hmdb51:ARG", "kinetics:ARG", "ssv2:ARG"):
        info = listing[name]
        assert info["description"] and info["example"] and info["targets"] == ["label"]
    assert listing["ucf101:ARG"]["options"]["split"]["default"] == 1


def test_adapters_give_int64_labels(ucf):
    labels = _build(f"ucf101:{ucf}").all_labels()
    assert labels.dtype == torch.int64 and labels.tolist() == [[0], [2]]
