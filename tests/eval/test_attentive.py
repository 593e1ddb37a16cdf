"""The attentive probe (`eval.attentive`) and the token sets it reads (`eval.features`)."""

import numpy as np
import pytest
import torch

from blockmae.eval.attentive import AttentiveProbe, attentive_probe
from blockmae.eval.features import MAX_TOKENS, Features, cap_tokens
from blockmae.eval.probe import linear_probe

CLASSES, TOKENS, WIDTH = 4, 16, 16


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)  # tensors this small: a second thread only waits (10x slower on a busy 2-core machine)


def one_token_clips(n: int, rng: np.random.Generator, directions: np.ndarray, strength: float = 6.0):
    """Gaussian-noise tokens; the class's direction added to one token at a random place and taken from another,
    so that the mean over tokens carries no trace of the label."""
    x = rng.normal(size=(n, TOKENS, WIDTH))
    y = rng.integers(0, CLASSES, n)
    rows = np.arange(n)
    marked = rng.integers(0, TOKENS, n)
    other = (marked + rng.integers(1, TOKENS, n)) % TOKENS
    x[rows, marked] += strength * directions[y]
    x[rows, other] -= strength * directions[y]
    return x.astype(np.float16), y


def test_attentive_probe_finds_the_one_token_the_mean_dilutes():
    rng = np.random.default_rng(0)
    directions = np.linalg.qr(rng.normal(size=(WIDTH, WIDTH)))[0][:CLASSES]
    train_x, train_y = one_token_clips(600, rng, directions)
    test_x, test_y = one_token_clips(200, rng, directions)
    noise = {"train": rng.normal(size=train_x.shape).astype(np.float16),
             "test": rng.normal(size=test_x.shape).astype(np.float16)}
    accs = attentive_probe({"signal": train_x, "noise": noise["train"]}, train_y,
                           {"signal": test_x, "noise": noise["test"]}, test_y)
    linear = linear_probe(train_x.astype(np.float32).mean(1), train_y, test_x.astype(np.float32).mean(1), test_y)
    chance = 1 / CLASSES
    assert accs["signal"] >= 0.95
    assert linear <= chance + 0.15
    assert accs["noise"] <= chance + 0.15  # probes trained in one batch stay independent


def hand_forward(probe: AttentiveProbe, tokens: np.ndarray) -> np.ndarray:
    """Multi-head cross attention written out: q . k / sqrt(d) softmax-weighted values, heads concatenated, then the
    linear head; keys and values from the layer-normalised tokens."""
    q = probe.query.detach().numpy()[0, 0]
    wk, wv = probe.keys.detach().numpy()[0], probe.values.detach().numpy()[0]
    head, bias = probe.head.detach().numpy()[0], probe.bias.detach().numpy()[0, 0]
    x = tokens[0].astype(np.float64)
    x = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    d = x.shape[-1] // probe.heads
    out = []
    for clip in x:  # (N, D)
        keys, values = clip @ wk, clip @ wv
        attended = []
        for h in range(probe.heads):
            part = slice(h * d, (h + 1) * d)
            scores = keys[:, part] @ q[part] / np.sqrt(d)
            weights = np.exp(scores - scores.max())
            weights /= weights.sum()
            attended.append(weights @ values[:, part])
        out.append(np.concatenate(attended) @ head + bias)
    return np.array(out)


@pytest.mark.parametrize("heads", [1, 2])
def test_forward_equals_the_hand_computation(heads):
    probe = AttentiveProbe(units=1, dim=4, classes=3, heads=heads, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():  # weights large enough that the attention is far from uniform
        probe.query.copy_(torch.tensor([[[1.5, -2.0, 0.5, 1.0]]]))
        probe.bias.copy_(torch.tensor([[[0.1, -0.2, 0.3]]]))
    tokens = np.random.default_rng(2).normal(size=(1, 2, 5, 4)).astype(np.float32)
    expected = hand_forward(probe, tokens)
    got = probe(torch.from_numpy(tokens)).detach().numpy()[0]
    assert probe.heads == heads
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_same_seed_same_accuracy():
    rng = np.random.default_rng(3)
    directions = np.linalg.qr(rng.normal(size=(WIDTH, WIDTH)))[0][:CLASSES]
    x, y = one_token_clips(96, rng, directions, strength=3.0)
    fit = dict(train_tokens={"a": x[:64]}, train_y=y[:64], test_tokens={"a": x[64:]}, test_y=y[64:], epochs=3)
    first, again = attentive_probe(**fit, seed=5), attentive_probe(**fit, seed=5)
    assert first == again
    probes = [AttentiveProbe(1, WIDTH, CLASSES, generator=torch.Generator().manual_seed(s)) for s in (5, 5, 6)]
    assert torch.equal(probes[0].keys, probes[1].keys) and not torch.equal(probes[0].keys, probes[2].keys)


def test_token_cap_pools_time_pairs_then_spatial_cells():
    grid = (8, 4, 4)  # 128 tokens: time pairs (64), then 2x2 cells (16)
    tokens = torch.randn(3, 128, 5)
    capped = cap_tokens(tokens, grid, max_tokens=16)
    by_hand = tokens.reshape(3, 4, 2, 2, 2, 2, 2, 5).mean(dim=(2, 4, 6)).reshape(3, 16, 5)
    torch.testing.assert_close(capped, by_hand)
    assert cap_tokens(tokens, grid, max_tokens=128) is tokens
    assert cap_tokens(torch.randn(1, 8 * 14 * 14, 2), (8, 14, 14)).shape[1] == 4 * 7 * 7 <= MAX_TOKENS
    assert cap_tokens(torch.randn(1, 7 * 5 * 5, 2), (7, 5, 5), max_tokens=20).shape[1] == 2 * 3 * 3


def test_token_sets_merge_across_shards_and_round_trip(tmp_path):
    rng = np.random.default_rng(0)

    def shard(n):
        return Features([rng.normal(size=(n, 4))], rng.integers(0, 2, (n, 1)), ["t"],
                        tokens={2: rng.normal(size=(n, 6, 4)).astype(np.float16)})
    a, b = shard(3), shard(2)
    merged = Features.merge([a, b])
    assert np.array_equal(merged.tokens[2], np.concatenate([a.tokens[2], b.tokens[2]]))
    merged.save_tokens(tmp_path / "t.npz")
    loaded = Features.load_tokens(tmp_path / "t.npz", [2])
    assert loaded[2].dtype == np.float16 and np.array_equal(loaded[2], merged.tokens[2])
    assert Features.load_tokens(tmp_path / "t.npz", [1, 2]) is None  # a layer that was not kept
    assert Features.load_tokens(tmp_path / "missing.npz", [2]) is None
