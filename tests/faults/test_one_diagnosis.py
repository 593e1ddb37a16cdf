"""`datasets check` and a training read give one diagnosis for the same cut file."""

import av
import numpy as np
import pytest

from blockmae.data import VideoDecodeError, build_dataset, check_dataset


def test_a_cut_h264_file_is_truncated_for_check_and_training_alike(tmp_path):
    whole = tmp_path / "whole.mp4"
    with av.open(str(whole), "w", options={"movflags": "faststart"}) as container:  # header first, as web videos
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(250):
            image = np.full((48, 64, 3), (3 * i) % 255, np.uint8)
            image[:, : i % 64] = 200
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    data = whole.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    (tmp_path / "list.txt").write_text("cut.mp4 0\n")
    spec = f"list:{tmp_path / 'list.txt'},rate=1,sampling=segment"
    with pytest.raises(VideoDecodeError) as training:
        build_dataset(spec, "test", frames=200, image_size=32)[0]
    report = check_dataset(spec, "test", frames=200, image_size=32, progress=False)
    [failure] = report["failed"]
    assert failure["reason"] == training.value.reason == "truncated"
    assert failure["detail"] == training.value.detail and "of 250" in failure["detail"]
