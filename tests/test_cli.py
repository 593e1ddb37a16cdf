"""The command line as a user runs it: every regime, convert both ways, errors that say what to do."""

import argparse
import json

import pytest
import torch
from transformers import VideoMAEForPreTraining

import blockmae
from blockmae.cli import build_parser, main

TINY_FAST = ["train.max_steps=4", "train.batch_size=2", "data.train=digits,n=8", "train.progress=false"]


@pytest.mark.parametrize("regime", ["e2e", "simultaneous", "sequential", "deep-supervision"])
def test_pretrain_every_regime_from_the_cli(tmp_path, capsys, regime):
    main(["pretrain", "tiny", f"train.regime={regime}", *TINY_FAST, "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert f"blockmae: {regime}, K=4 stages [3, 3, 3, 3]" in out and "held-out" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["regime"] == regime and len(summary["held_out"]["losses"]) == 4
    model = blockmae.load(tmp_path)
    assert model.num_stages == 4 and not model.training


def test_convert_to_hugging_face_and_back(tmp_path):
    run = tmp_path / "run"
    main(["pretrain", "tiny", *TINY_FAST, "--out", str(run)])
    main(["convert", str(run), str(tmp_path / "hf"), "--to", "hf"])
    hf = VideoMAEForPreTraining.from_pretrained(tmp_path / "hf").eval()
    ours = blockmae.load(run)  # the preset has LayerScale: its gains are folded into the branches' output weights
    video = torch.randn(2, 3, ours.cfg.frames, 32, 32)
    mask = ours.make_mask(2, torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert abs(ours.losses(video, mask)[-1].item() - hf(video.transpose(1, 2), bool_masked_pos=mask).loss.item()) < 1e-4
    main(["convert", str(tmp_path / "hf"), str(tmp_path / "back"), "--to", "blockmae"])
    back = blockmae.load(tmp_path / "back")
    assert torch.equal(back.layers[5].attn.qkv.weight, ours.layers[5].attn.qkv.weight)
    assert torch.equal(back.decoders[0].head.weight, ours.decoders[-1].head.weight)
    assert blockmae.load(tmp_path / "hf").cfg.depth == 12  # a HF directory loads directly too


def test_convert_official_round_trip(tmp_path):
    run = tmp_path / "run"
    main(["pretrain", "tiny", *TINY_FAST, "train.regime=e2e", "model.partition=1", "--out", str(run)])
    main(["convert", str(run), str(tmp_path / "videomae.pth"), "--to", "official"])
    assert "encoder.blocks.11.attn.q_bias" in torch.load(tmp_path / "videomae.pth", weights_only=True)["model"]
    main(["convert", str(tmp_path / "videomae.pth"), str(tmp_path / "back"), "--to", "blockmae",
          "--frames", "2", "--image-size", "32", "--heads", "3", "--decoder-heads", "2"])
    ours, back = blockmae.load(run), blockmae.load(tmp_path / "back")
    a, b = ours.state_dict(), back.state_dict()
    # LayerScale's gains come back folded into the weights they scale; every other tensor comes back unchanged
    folded = {k for k in a if k.endswith((".gamma_1", ".gamma_2"))}
    assert folded and set(b) == set(a) - folded
    assert all(torch.equal(a[k], b[k]) for k in b if not k.endswith(("attn.proj.weight", "attn.proj.bias",
                                                                       "mlp.fc2.weight", "mlp.fc2.bias")))
    video = torch.randn(2, 3, 2, 32, 32)
    mask = ours.make_mask(2, torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(ours.losses(video, mask)[-1], back.losses(video, mask)[-1], atol=1e-5)


def test_errors_name_the_problem(tmp_path, capsys):
    with pytest.raises(SystemExit, match="did you mean 'train.batch_size'"):
        main(["pretrain", "tiny", "train.batchsize=4", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="neither a file nor a built-in config"):
        main(["pretrain", "nonexistent.yaml", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="pass --frames and --image-size"):
        main(["convert", str(tmp_path / "x.pth"), str(tmp_path / "y"), "--to", "blockmae"])


def test_help_has_an_example_for_every_command(capsys):
    parser = build_parser()
    commands = next(a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert len(commands) >= 9
    for command in commands:
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = capsys.readouterr().out
        assert f"example:\n  blockmae {command}" in out, command


def test_analyze_help_gives_every_option_a_sentence_and_a_default():
    from blockmae.cli import build_parser

    parser = build_parser()
    analyze = next(a for a in parser._actions if a.dest == "command").choices["analyze"]
    options = [a for a in analyze._actions if a.option_strings and a.dest != "help"]
    assert {"--blocks", "--threads", "--batch-size", "--device", "--no-occlusion"} <= {
        s for a in options for s in a.option_strings}
    for action in options:
        assert action.help and len(action.help) > 30, action.option_strings
        assert "Default" in action.help or "Required" in action.help, action.option_strings
    occlusion = next(a for a in options if "--no-occlusion" in a.option_strings)
    assert "doubles" in occlusion.help  # what the default costs


def test_datasets_lists_the_built_in_specs(capsys):
    main(["datasets"])
    out = capsys.readouterr().out
    assert all(name in out for name in ("digits", "gratings", "gratings2"))


def _write_video(path, frames=24, width=48, height=40):
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            image = np.full((height, width, 3), (i * 10) % 256, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_pretrain_on_a_list_file_skips_and_counts_corrupt_videos(tmp_path, capsys):
    videos = tmp_path / "my videos"  # a space in the path, as list files allow
    videos.mkdir()
    lines = []
    for i in range(6):
        _write_video(videos / f"clip {i}.avi")
        lines.append(f"my videos/clip {i}.avi {i % 2}")
    (videos / "broken.avi").write_bytes(b"")
    lines.append("my videos/broken.avi 1")
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    spec = f"data.train=list:{tmp_path / 'train.txt'},rate=2"
    main(["pretrain", "tiny", spec, "train.max_steps=4", "train.batch_size=7", "train.progress=false",
          "model.partition=2", "train.log_every=1", "--out", str(tmp_path / "run")])
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["skipped"] >= 4 and "broken.avi" in summary["skipped_files"][0]
    out = capsys.readouterr().out
    named = [line for line in out.splitlines() if "broken.avi: empty" in line and "named once" in line]
    assert len(named) == 1 and "unreadable samples (replaced by others)" in out  # named once, then counted
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert sum(r["skipped"] for r in rows) == summary["skipped"]
    with pytest.raises(SystemExit, match="broken.avi: empty"):
        main(["pretrain", "tiny", spec, "data.strict=true", "train.max_steps=1", "train.batch_size=7",
              "train.progress=false", "--out", str(tmp_path / "strict")])


def test_datasets_check_reports_what_fails(tmp_path, capsys):
    _write_video(tmp_path / "ok.avi")
    (tmp_path / "empty.avi").write_bytes(b"")
    (tmp_path / "list.txt").write_text("ok.avi 0\nempty.avi 1\nmissing.avi 0\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["datasets", "check", f"list:{tmp_path / 'list.txt'}", "--frames", "8", "--size", "32"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 1 and "1 of 3 entries decode" in out and "missing" in out


def test_random_floor_takes_an_optional_number():
    from blockmae.analysis.sources import random_floor_count
    from blockmae.cli import build_parser

    def floor(*extra):
        args = build_parser().parse_args(["analyze", "runs/a", "runs/b", "--data", "digits", "--out", "o", *extra])
        assert args.sources == ["runs/a", "runs/b"]
        return random_floor_count(args.random_floor)

    assert floor() == 0
    assert floor("--random-floor") == 3  # as scripts wrote it before: now three encoders
    assert floor("--random-floor", "--dynamics") == 3
    assert floor("--random-floor", "5") == 5
    with pytest.raises(ValueError, match="number of random encoders"):
        random_floor_count(-1)
