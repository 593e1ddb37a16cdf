import numpy as np
import pytest
import torch

from blockmae.data import build_dataset
from blockmae.data.sampling import (clip_indices, rate_indices, segment_eval_indices, segment_indices,
                                    uniform_indices)


def videomae_reference(n, frames, rate, start):
    """VideoMAE's loader with one segment and no jitter, in its own 1-based terms, given the drawn start."""
    skip = frames * rate
    average = n - skip + 1
    offset = (start if average > 0 else 0) + 1
    out = []
    for _ in range(0, skip, rate):
        out.append(offset - 1)  # skip offsets are 0 without jitter, so offset <= n always holds
        if offset + rate < n:
            offset += rate
    return out


@pytest.mark.parametrize("n", [1, 2, 3, 5, 15, 16, 17, 40, 64, 65, 100])
@pytest.mark.parametrize("frames,rate", [(1, 1), (4, 1), (4, 2), (8, 4), (16, 1), (16, 4)])
def test_rate_sampling_matches_videomae(n, frames, rate):
    for seed in range(5):
        got = rate_indices(n, frames, rate, np.random.default_rng(seed))
        room = n - frames * rate + 1
        start = int(np.random.default_rng(seed).integers(room)) if room > 0 else 0
        assert got.tolist() == videomae_reference(n, frames, rate, start)
        assert got.dtype == np.int64 and len(got) == frames and 0 <= got.min() and got.max() < n


def test_rate_sampling_examples():
    rng = np.random.default_rng(0)
    assert rate_indices(3, 4, 1, rng).tolist() == [0, 1, 1, 1]  # a 3-frame clip: step, then hold
    assert rate_indices(3, 4, 2, rng).tolist() == [0, 0, 0, 0]  # the next frame would be past n - 2
    assert rate_indices(16, 16, 1, rng).tolist() == list(range(15)) + [14]  # VideoMAE never steps onto n-1
    assert rate_indices(10, 4, 4, rng).tolist() == [0, 4, 8, 8]
    starts = {int(rate_indices(40, 8, 2, np.random.default_rng(s))[0]) for s in range(400)}
    assert starts == set(range(40 - 16 + 1))  # every start in [0, n - frames*rate] is drawn
    for s in range(20):
        idx = rate_indices(40, 8, 2, np.random.default_rng(s))
        assert np.all(np.diff(idx) == 2)


def test_segment_sampling():
    for seed in range(20):
        idx = segment_indices(50, 8, np.random.default_rng(seed))  # segments of 6 frames (50 // 8)
        assert np.all((idx >= np.arange(8) * 6) & (idx < np.arange(8) * 6 + 6))
    assert segment_indices(3, 8, np.random.default_rng(0)).tolist() == [0, 0, 0, 1, 1, 1, 2, 2]
    assert segment_indices(8, 8, np.random.default_rng(0)).tolist() == list(range(8))


def test_uniform_eval_sampling():
    # VideoMAE test views: stride by rate, then windows spread from the start to the end
    assert uniform_indices(100, 16, 4, 0, 2).tolist() == list(range(0, 64, 4))
    assert uniform_indices(100, 16, 4, 1, 2).tolist() == list(range(36, 100, 4))
    assert uniform_indices(100, 16, 4).tolist() == list(range(16, 80, 4))  # one view: the centre window
    assert [uniform_indices(100, 16, 4, v, 5)[0] for v in range(5)] == [0, 8, 16, 24, 36]
    assert uniform_indices(10, 6, 4).tolist() == [0, 4, 8, 8, 8, 8]  # short: padded with the last frame
    assert uniform_indices(3, 4, 1, 2, 3).tolist() == [0, 1, 2, 2]
    with pytest.raises(ValueError, match="view=2"):
        uniform_indices(10, 4, 1, 2, 2)


def test_segment_eval_sampling():
    assert segment_eval_indices(48, 8).tolist() == [3, 9, 15, 21, 27, 33, 39, 45]
    assert segment_eval_indices(48, 8, 0, 2).tolist() == [1, 7, 13, 19, 25, 31, 37, 43]
    assert segment_eval_indices(48, 8, 1, 2).tolist() == [4, 10, 16, 22, 28, 34, 40, 46]
    assert segment_eval_indices(3, 4).tolist() == [0, 1, 1, 2]


def test_clip_indices_dispatch():
    rng = np.random.default_rng(3)
    clips = clip_indices(100, 8, sampling="rate", rate=2, train=True, clips=3, rng=rng)
    assert len(clips) == 3 and len({c[0] for c in clips}) > 1  # repeated clips: their own starts
    views = clip_indices(100, 8, sampling="segment", rate=2, train=False, clips=2)
    assert [v.tolist() for v in views] == [segment_eval_indices(100, 8, v, 2).tolist() for v in range(2)]
    with pytest.raises(ValueError, match="random generator"):
        clip_indices(100, 8, sampling="rate", rate=2, train=True)
    with pytest.raises(ValueError, match="sampling='tsn'"):
        clip_indices(100, 8, sampling="tsn", rate=2, train=False)


@pytest.fixture
def videos_list(tmp_path, media):
    path = tmp_path / "train.txt"
    path.write_text(f"{media / 'good.mp4'} 0\n{media / 'tall.avi'} 1\n{media / 'short.mp4'} 0\n{media / 'frames'} 1\n")
    return path


def test_dataset_decodes_the_sampled_frames(videos_list, codes):
    lengths = [40, 30, 3, 12]
    for split, sampling in [("train", "rate"), ("train", "segment"), ("test", "rate"), ("val", "segment")]:
        ds = build_dataset(f"list:{videos_list},rate=2,sampling={sampling},clips=2", split, frames=8, image_size=16)
        for i, n in enumerate(lengths):
            clips, _ = ds.load(i)
            expected = ds.frame_indices(i, n)
            assert [codes(c.numpy()) for c in clips] == [e.tolist() for e in expected]
    ds = build_dataset(f"list:{videos_list},rate=2", "train", frames=8, image_size=16)
    assert ds.frame_indices(0, 40)[0].tolist() == rate_indices(40, 8, 2, np.random.default_rng([0, 0, 0])).tolist()


def test_randomness_is_a_function_of_seed_epoch_and_index(videos_list):
    def make(seed=0):
        return build_dataset(f"list:{videos_list},rate=2", "train", frames=8, image_size=16, seed=seed)

    a, b = make(), make()
    assert all(torch.equal(a[i][0], b[i][0]) for i in (1, 0))  # any order, any process
    starts = lambda ds: [int(ds.frame_indices(i, 40)[0][0]) for i in range(30)]  # noqa: E731
    epoch0 = starts(a)
    a.set_epoch(1)
    assert starts(a) != epoch0 and starts(make(seed=1)) != epoch0
    test = build_dataset(f"list:{videos_list},rate=2", "test", frames=8, image_size=16)
    first = test[0][0]
    test.set_epoch(5)
    assert torch.equal(test[0][0], first)  # evaluation is deterministic


def test_epoch_can_travel_with_the_index(videos_list):
    """Persistent DataLoader workers never see set_epoch: a batch sampler can pass (index, epoch) instead."""
    ds = build_dataset(f"list:{videos_list},rate=2", "train", frames=8, image_size=16)
    assert ds.accepts_epoch_index
    assert torch.equal(ds[(1, 0)][0], ds[1][0])
    ds.set_epoch(3)
    epoch3 = ds[1][0]
    ds.set_epoch(0)
    assert torch.equal(ds[(1, 3)][0], epoch3)
