import pickle

import numpy as np
import pytest

from blockmae.data.video import (BACKENDS, REASONS, FrameFolder, PyAVReader, VideoDecodeError, available_backends,
                                 check_backend, open_video)

# (width, height, fps) per container, so sizes and frame rates vary across the codecs
SHAPES = {"mp4": (32, 24, 25), "avi": (24, 32, 12), "webm": (40, 24, 30), "mkv": (32, 32, 24)}


def test_several_codecs_are_available(codecs):
    assert len(codecs) >= 2


def test_decodes_exactly_the_frames_asked_for(tmp_path, codec, make_video, codes):
    ext, name = codec
    width, height, fps = SHAPES[ext]
    path = make_video(tmp_path / f"v.{ext}", 40, codec=name, width=width, height=height, fps=fps)
    rng = np.random.default_rng(0)
    with open_video(path) as video:
        assert len(video) == 40 and video.fps == pytest.approx(fps)
        asks = [[0], [39], [39, 0, 5], [7, 7, 7, 8], [33, 35]] + [rng.integers(0, 40, 6).tolist() for _ in range(6)]
        for ask in asks:
            frames = video.get(ask)
            assert frames.dtype == np.uint8 and frames.shape == (len(ask), height, width, 3)
            assert codes(frames) == ask, (codec, ask)


def test_seeks_instead_of_decoding_from_the_start(tmp_path, make_video, codes):
    path = make_video(tmp_path / "v.mp4", 40, gop=8)
    with open_video(path) as video:
        assert isinstance(video, PyAVReader)
        assert codes(video.get([33, 35])) == [33, 35]
        assert video.decoded_frames <= 12  # from the keyframe at or before 33, not from frame 0
        before = video.decoded_frames
        assert codes(video.get([2, 3])) == [2, 3]
        assert video.decoded_frames - before == 4


def test_three_frame_clip(media, codes):
    with open_video(media / "short.mp4") as video:
        assert len(video) == 3
        assert codes(video.get([0, 1, 2, 2])) == [0, 1, 2, 2]


def test_frame_folder(tmp_path, media, make_frames, codes):
    with open_video(media / "frames") as video:
        assert isinstance(video, FrameFolder) and len(video) == 12
        assert codes(video.get([11, 0, 4])) == [11, 0, 4]
        assert video.get([1]).shape == (1, 24, 32, 3)
    folder = make_frames(tmp_path / "f", 5, pattern="frame{}.png", start=0)
    (folder / "frame7.png").write_bytes((folder / "frame0.png").read_bytes())  # after a gap: ignored
    with open_video(folder, pattern="frame{}.png", start=0) as video:
        assert len(video) == 5 and codes(video.get([4, 0])) == [4, 0]
    with pytest.raises(VideoDecodeError) as info:
        open_video(folder)  # default pattern img_00001.jpg: nothing matches
    assert info.value.reason == "empty"
    (folder / "frame2.png").write_bytes(b"")
    with pytest.raises(VideoDecodeError) as info:
        open_video(folder, pattern="frame{}.png", start=0).get([2])
    assert info.value.reason == "empty" and "frame2.png" in str(info.value)


@pytest.mark.parametrize("name,reason", [
    ("missing.mp4", "missing"), ("empty.mp4", "empty"), ("garbage.mp4", "undecodable"), ("cut.mp4", "undecodable"),
])
def test_unreadable_files_raise_with_path_and_reason(media, name, reason):
    with pytest.raises(VideoDecodeError) as info:
        with open_video(media / name) as video:
            video.get([0])
    error = info.value
    assert isinstance(error, ValueError) and error.reason == reason and reason in REASONS
    assert str(media / name) in str(error) and error.path == str(media / name)


def test_truncated_stream(media, codes):
    with open_video(media / "cut.avi") as video:
        assert len(video) == 40  # the header still says 40
        assert codes(video.get([0, 3])) == [0, 3]  # the start is intact
        with pytest.raises(VideoDecodeError) as info:
            video.get([0, 39])
    assert info.value.reason == "truncated" and "of 40" in str(info.value)


def test_error_survives_pickling_and_rebuild_from_message():
    error = VideoDecodeError("/x/y.mp4", "truncated", "stream ends after frame 3 of 9")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.path, copy.reason, copy.detail, str(copy)) == (error.path, error.reason, error.detail, str(error))
    assert str(VideoDecodeError("some message")) == "some message"  # how DataLoader workers re-raise


def test_backends():
    assert "pyav" in available_backends()
    with pytest.raises(ValueError, match="unknown video backend 'ffmpeg'"):
        check_backend("ffmpeg")
    for name in BACKENDS:
        if name not in available_backends():
            with pytest.raises(ValueError, match=f"pip install {name}"):
                check_backend(name)


def test_out_of_range_index_is_a_bug_not_a_skip(media):
    with open_video(media / "good.mp4") as video:
        with pytest.raises(IndexError):
            video.get([40])
