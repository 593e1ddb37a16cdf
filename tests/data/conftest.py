"""Small real videos for the data tests, written with PyAV.

Frame i shows the binary code of i as 6 vertical black/white stripes (bit k = stripe k), which
survives lossy codecs, so a test can read back exactly which frames were decoded.
"""

from __future__ import annotations

import shutil

import av
import numpy as np
import pytest

BITS = 6
# (extension, codec): every combination this PyAV build can write; tests run over all of them
CODECS = [(ext, codec) for ext, codec in [("mp4", "libx264"), ("avi", "mpeg4"), ("webm", "libvpx-vp9"),
                                          ("mkv", "libx264"), ("webm", "libvpx"), ("mp4", "mpeg4")]
          if codec in av.codecs_available]


def code_frame(i: int, width: int, height: int) -> np.ndarray:
    frame = np.zeros((height, width, 3), np.uint8)
    for k in range(BITS):
        if (i >> k) & 1:
            frame[:, k * width // BITS:(k + 1) * width // BITS] = 255
    return frame


def read_codes(frames) -> list[int]:
    """Frame numbers shown by full-size decoded frames (N, H, W, C)."""
    frames = np.asarray(frames)
    width = frames.shape[2]
    codes = []
    for f in frames:
        columns = f.astype(np.float64).mean(axis=(0, 2))
        bits = [columns[k * width // BITS + 1:(k + 1) * width // BITS - 1].mean() > 128 for k in range(BITS)]
        codes.append(sum(1 << k for k, b in enumerate(bits) if b))
    return codes


def write_video(path, frames: int, *, codec: str = "libx264", width: int = 32, height: int = 24, fps: int = 25,
                gop: int = 8, options: dict | None = None):
    with av.open(str(path), "w", options=options or {}) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = gop
        for i in range(frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(code_frame(i, width, height), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_frames(folder, frames: int, *, width: int = 32, height: int = 24, pattern: str = "img_{:05d}.jpg",
                 start: int = 1):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(frames):
        Image.fromarray(code_frame(i, width, height)).save(folder / pattern.format(start + i), quality=95)
    return folder


@pytest.fixture(scope="session")
def media(tmp_path_factory):
    """A folder of good and broken samples, built once per test session.

    good.mp4 (40 frames 32x24 @25), tall.avi (30 frames 24x32 @12, mpeg4), short.mp4 (3 frames),
    frames/ (12 JPEGs), empty.mp4 (0 bytes), garbage.mp4 (text), cut.mp4 (H.264 cut in half),
    cut.avi (MPEG-4 cut at 80%: opens, stream ends early), missing.mp4 (absent).
    """
    root = tmp_path_factory.mktemp("media")
    write_video(root / "good.mp4", 40)
    write_video(root / "tall.avi", 30, codec="mpeg4", width=24, height=32, fps=12)
    write_video(root / "short.mp4", 3)
    write_frames(root / "frames", 12)
    (root / "empty.mp4").write_bytes(b"")
    (root / "garbage.mp4").write_text("this is not a video\n" * 20)
    data = (root / "good.mp4").read_bytes()
    (root / "cut.mp4").write_bytes(data[:len(data) // 2])
    write_video(root / "whole.avi", 40, codec="mpeg4")
    data = (root / "whole.avi").read_bytes()
    (root / "cut.avi").write_bytes(data[:int(len(data) * 0.8)])
    (root / "whole.avi").unlink()
    return root


@pytest.fixture
def copy_video(media):
    """copy_video(dest): put a copy of good.mp4 at dest (folders created)."""
    def copy(dest):
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(media / "good.mp4", dest)
        return dest
    return copy


def pytest_generate_tests(metafunc):
    """A test asking for `codec` runs once per (extension, codec) this PyAV build can write."""
    if "codec" in metafunc.fixturenames:
        metafunc.parametrize("codec", CODECS, ids=[f"{ext}-{codec}" for ext, codec in CODECS])


@pytest.fixture
def codecs():
    return list(CODECS)


@pytest.fixture
def codes():
    """codes(frames) -> the frame numbers shown by full-size decoded frames."""
    return read_codes


@pytest.fixture
def make_video():
    """make_video(path, frames, codec=..., width=, height=, fps=, gop=) -> path."""
    return write_video


@pytest.fixture
def make_frames():
    """make_frames(folder, frames, pattern=, start=) -> folder of JPEGs."""
    return write_frames
