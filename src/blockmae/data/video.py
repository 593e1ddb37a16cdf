"""Video decoding behind a small interface: open a file (or a folder of frames), ask its length, get frames.

    with open_video("clip.mp4") as video:       # PyAV by default
        n = len(video)                            # frames in the video
        frames = video.get([0, 4, 8])             # uint8 (3, H, W, 3), RGB, in the order asked

Backends: `pyav` (default, always installed: seeks to the keyframe before the first frame
asked for, then decodes only up to the last one), `decord` and `torchcodec` (used only when
installed and selected by name). A folder is read as numbered image files (`pattern`,
`start`), whatever the backend.

Every failure to read a sample is a `VideoDecodeError(path, reason, detail)` whose `reason`
is one of `REASONS`, so a training run can skip and count it (see `robust.py`) and
`blockmae datasets check` can tally why files fail.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np

REASONS = ("missing", "empty", "truncated", "undecodable", "too short")
DEFAULT_PATTERN = "img_{:05d}.jpg"
BACKENDS = ("pyav", "decord", "torchcodec")
# A stream that ends this few frames before its header said is still accepted (the missing
# indices read the last frame): container frame counts are often off by one or two.
LENGTH_SLACK = 2


class VideoDecodeError(ValueError):
    """A sample could not be read. `reason` is one of REASONS; the message names the file."""

    def __init__(self, path, reason: str | None = None, detail: str = ""):
        self.path, self.reason, self.detail = str(path), reason, detail
        if reason is None:  # rebuilt from a message alone (e.g. re-raised from a DataLoader worker)
            super().__init__(str(path))
        else:
            super().__init__(f"{path}: {reason}" + (f" ({detail})" if detail else ""))

    def __reduce__(self):
        return type(self), (self.path, self.reason, self.detail)


class VideoReader:
    """What every backend returns: `len(reader)` frames, `get(indices)` -> uint8 (N, H, W, 3)."""

    path: str
    fps: float | None = None

    def __len__(self) -> int:
        raise NotImplementedError

    def get(self, indices: Sequence[int]) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_indices(self, indices: Sequence[int]) -> list[int]:
        indices = [int(i) for i in indices]
        if not indices:
            raise ValueError(f"{self.path}: no frame indices asked for")
        bad = [i for i in indices if not 0 <= i < len(self)]
        if bad:
            raise IndexError(f"{self.path}: frame indices {bad[:5]} out of range for {len(self)} frames")
        return indices


def _gather(path: str, frames: dict[int, np.ndarray], indices: list[int], length: int, decoded: int,
            last_frame: np.ndarray | None, error: str | None) -> np.ndarray:
    """Stack the decoded frames in the order asked, or say why some are missing.

    `decoded` is how many frames the stream gave before it ended (or failed with `error`).
    A stream that ends at most LENGTH_SLACK frames early, cleanly, is accepted: the missing
    indices read its last frame.
    """
    missing = [i for i in indices if i not in frames]
    if missing:
        if decoded == 0 or last_frame is None:
            raise VideoDecodeError(path, "undecodable", error or "no frame could be decoded")
        if error:
            raise VideoDecodeError(path, "truncated", f"decoding failed after frame {decoded} of {length}: {error}")
        if length - decoded > LENGTH_SLACK or min(missing) < decoded:
            raise VideoDecodeError(path, "truncated", f"stream ends after frame {decoded} of {length}")
        frames = {**frames, **{i: last_frame for i in missing}}
    try:
        return np.stack([frames[i] for i in indices])
    except ValueError:
        raise VideoDecodeError(path, "undecodable", "the frame size changes within the video") from None


class PyAVReader(VideoReader):
    """PyAV (FFmpeg). The frame count comes from the container header, else from counting packets.

    `get` seeks to the keyframe at or before the first frame asked for, then decodes forward
    and stops after the last one; a frame's index is its presentation time x the average
    frame rate (exact for constant-rate video). If a seek lands after the wanted frame,
    the reader falls back to decoding from the start and counting frames.
    """

    def __init__(self, path, threads: int = 1):
        import av

        self.path = str(path)
        self.threads = threads
        self.decoded_frames = 0  # frames the decoder produced so far (seeking keeps this small)
        self._av = av
        self._open()
        stream = self.stream
        self.fps = float(stream.average_rate) if stream.average_rate else None
        self._rate = Fraction(stream.average_rate) if stream.average_rate else None
        self._base = Fraction(stream.time_base) if stream.time_base else None
        self._start = stream.start_time or 0
        length = stream.frames
        if length <= 0:
            length = self._count_packets()
        if length <= 0:
            self.close()
            raise VideoDecodeError(self.path, "empty", "no video frames")
        self.length = int(length)

    def _open(self) -> None:
        av = self._av
        try:
            self.container = av.open(self.path, metadata_errors="ignore")
        except (av.FFmpegError, UnicodeDecodeError, ValueError) as e:
            raise VideoDecodeError(self.path, "undecodable", _short(e)) from None
        if not self.container.streams.video:
            self.container.close()
            raise VideoDecodeError(self.path, "undecodable", "no video stream")
        self.stream = self.container.streams.video[0]
        self._used = False
        ctx = self.stream.codec_context
        if ctx is None:
            self.container.close()
            raise VideoDecodeError(self.path, "undecodable", "unknown or damaged video codec")
        if self.threads != 1:
            self.stream.thread_type = "AUTO"
            ctx.thread_count = self.threads  # 0: as many as FFmpeg likes
        else:
            ctx.thread_count = 1

    def _count_packets(self) -> int:
        n = 0
        try:
            for packet in self.container.demux(self.stream):
                if packet.size:
                    n += 1
        except self._av.FFmpegError:
            pass  # a truncated file: count what is there
        self.container.close()
        self._open()
        return n

    def __len__(self) -> int:
        return self.length

    def _index(self, frame) -> int | None:
        if frame.pts is None or self._rate is None or self._base is None:
            return None
        return round((frame.pts - self._start) * self._base * self._rate)

    def _decode(self, wanted: set[int], first: int, last: int, seek: bool):
        """Decode frames `wanted` -> (frames, seek_ok, frames decoded, last frame, error text or None).

        seek_ok is False when the seek overshot or timestamps are missing: retry from frame 0.
        """
        av = self._av
        if seek:
            target = self._start + int(first / self._rate / self._base)
            try:
                self.container.seek(target, stream=self.stream, backward=True, any_frame=False)
            except av.FFmpegError:  # not seekable: decode from the start
                return {}, False, 0, None, None
        out: dict[int, np.ndarray] = {}
        counter, index, previous, last_frame, error = 0, -1, -1, None, None
        try:
            for frame in self.container.decode(self.stream):
                index = self._index(frame) if seek else counter
                counter += 1
                self.decoded_frames += 1
                if index is None or (seek and counter == 1 and index > first):
                    return out, False, 0, None, None
                # a timestamp jump (variable frame rate) skips indices: they show this frame
                hits = [i for i in range(max(previous + 1, first), min(index, last) + 1) if i in wanted]
                if hits:
                    array = frame.to_ndarray(format="rgb24")
                    out.update((i, array) for i in hits)
                previous = max(previous, index)
                if index >= last:
                    break
                last_frame = frame
        except av.FFmpegError as e:
            error = _short(e)
        if len(out) < len(wanted) and last_frame is not None:
            last_frame = last_frame.to_ndarray(format="rgb24")
        return out, True, index + 1, last_frame, error

    def get(self, indices: Sequence[int]) -> np.ndarray:
        indices = self._check_indices(indices)
        wanted = set(indices)
        first, last = min(wanted), max(wanted)
        can_seek = first > 0 and self._rate is not None and self._base is not None
        if self._used:  # a decoder that reached the end of the stream does not restart cleanly
            self.container.close()
            self._open()
        self._used = True
        frames, ok, decoded, last_frame, error = self._decode(wanted, first, last, seek=can_seek)
        if not ok:  # decode from the start, counting frames
            self.container.close()
            self._open()
            frames, _, decoded, last_frame, error = self._decode(wanted, first, last, seek=False)
        return _gather(self.path, frames, indices, self.length, decoded, last_frame, error)

    def close(self) -> None:
        container = getattr(self, "container", None)
        if container is not None:
            container.close()
            self.container = None


class DecordReader(VideoReader):
    def __init__(self, path, threads: int = 1):
        import decord

        self.path = str(path)
        try:
            self.vr = decord.VideoReader(self.path, ctx=decord.cpu(0), num_threads=threads)
        except Exception as e:  # decord raises its own DECORDError and RuntimeError
            raise VideoDecodeError(self.path, "undecodable", _short(e)) from None
        self.length = len(self.vr)
        if self.length <= 0:
            raise VideoDecodeError(self.path, "empty", "no video frames")
        self.fps = float(self.vr.get_avg_fps() or 0) or None

    def __len__(self) -> int:
        return self.length

    def get(self, indices: Sequence[int]) -> np.ndarray:
        indices = self._check_indices(indices)
        try:
            return self.vr.get_batch(indices).asnumpy()
        except Exception as e:
            raise VideoDecodeError(self.path, "undecodable", _short(e)) from None


class TorchCodecReader(VideoReader):
    def __init__(self, path, threads: int = 1):
        from torchcodec.decoders import VideoDecoder

        self.path = str(path)
        try:
            self.decoder = VideoDecoder(self.path, dimension_order="NHWC", num_ffmpeg_threads=threads)
        except Exception as e:
            raise VideoDecodeError(self.path, "undecodable", _short(e)) from None
        self.length = len(self.decoder)
        if self.length <= 0:
            raise VideoDecodeError(self.path, "empty", "no video frames")
        self.fps = self.decoder.metadata.average_fps

    def __len__(self) -> int:
        return self.length

    def get(self, indices: Sequence[int]) -> np.ndarray:
        indices = self._check_indices(indices)
        try:
            return self.decoder.get_frames_at(indices=indices).data.numpy()
        except Exception as e:
            raise VideoDecodeError(self.path, "undecodable", _short(e)) from None


class FrameFolder(VideoReader):
    """A folder of numbered images, e.g. img_00001.jpg, img_00002.jpg... (`pattern`, first number `start`).

    The video is the run of consecutive numbers from `start`; files after a gap are ignored.
    Images are read with Pillow (a dependency of matplotlib), or PyAV if Pillow is missing.
    """

    def __init__(self, path, pattern: str = DEFAULT_PATTERN, start: int = 1):
        self.path, self.pattern, self.start = str(path), pattern, start
        try:
            names = set(os.listdir(self.path))
        except OSError as e:
            raise VideoDecodeError(self.path, "undecodable", _short(e)) from None
        n = 0
        while pattern.format(start + n) in names:
            n += 1
        if n == 0:
            raise VideoDecodeError(self.path, "empty", f"no frames named like {pattern.format(start)!r}")
        self.length = n

    def __len__(self) -> int:
        return self.length

    def get(self, indices: Sequence[int]) -> np.ndarray:
        indices = self._check_indices(indices)
        cache: dict[int, np.ndarray] = {}
        for i in indices:
            if i not in cache:
                cache[i] = _read_image(os.path.join(self.path, self.pattern.format(self.start + i)))
        shapes = {a.shape for a in cache.values()}
        if len(shapes) > 1:
            raise VideoDecodeError(self.path, "undecodable", f"frames differ in size: {sorted(shapes)}")
        return np.stack([cache[i] for i in indices])


def _read_image(path: str) -> np.ndarray:
    if not os.path.exists(path):
        raise VideoDecodeError(path, "missing", "frame file disappeared")
    try:
        from PIL import Image
    except ImportError:
        Image = None
    try:
        if Image is not None:
            with Image.open(path) as image:
                return np.asarray(image.convert("RGB"))
        import av

        with av.open(path) as container:
            return next(container.decode(video=0)).to_ndarray(format="rgb24")
    except VideoDecodeError:
        raise
    except Exception as e:  # Pillow and FFmpeg raise many types for a bad image
        kind = "empty" if os.path.getsize(path) == 0 else "undecodable"
        raise VideoDecodeError(path, kind, _short(e)) from None


_READERS = {"pyav": PyAVReader, "decord": DecordReader, "torchcodec": TorchCodecReader}
_MODULES = {"pyav": "av", "decord": "decord", "torchcodec": "torchcodec"}


def available_backends() -> list[str]:
    """The backends whose Python package is importable here."""
    import importlib.util

    return [name for name in BACKENDS if importlib.util.find_spec(_MODULES[name]) is not None]


def check_backend(name: str) -> None:
    """Raise a clear error now (at dataset construction), not in a worker an hour later."""
    if name not in _READERS:
        raise ValueError(f"unknown video backend {name!r}; valid: {', '.join(BACKENDS)}")
    if name not in available_backends():
        raise ValueError(f"video backend {name!r} is not installed (pip install {_MODULES[name]}); "
                         f"installed: {', '.join(available_backends())}")


def open_video(path, *, backend: str = "pyav", pattern: str = DEFAULT_PATTERN, start: int = 1,
               threads: int = 1) -> VideoReader:
    """Open a video file with `backend`, or a folder of frames; raises VideoDecodeError if it cannot."""
    p = Path(path)
    if not p.exists():
        raise VideoDecodeError(path, "missing", "no such file or folder")
    if p.is_dir():
        return FrameFolder(p, pattern, start)
    if p.stat().st_size == 0:
        raise VideoDecodeError(path, "empty", "0 bytes")
    if backend not in _READERS:
        check_backend(backend)
    return _READERS[backend](p, threads)


def _short(error: Exception) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text[:200]
