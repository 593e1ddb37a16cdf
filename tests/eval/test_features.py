"""Feature extraction: the same numbers as encoding every layer at once, with at most two layers' tokens alive."""

import weakref

import numpy as np
import pytest
import torch

from blockmae.eval.features import extract_features
from blockmae.eval.tokens import relative_update_norm, token_similarity
from blockmae.model import BlockMAE
from helpers import small_config


def _model() -> BlockMAE:
    return BlockMAE(small_config("model.partition=2").model).eval()


def _batches(model, n_batches: int = 3, b: int = 2):
    c = model.cfg
    gen = torch.Generator().manual_seed(1)
    return [(torch.randint(0, 256, (b, c.channels, c.frames, c.image_size, c.image_size), generator=gen,
                           dtype=torch.uint8), torch.tensor([[i], [i + 1]])) for i in range(n_batches)]


def _prepare(clips):
    return clips.float() / 255 - 0.5


def test_streamed_features_equal_encoding_every_layer_at_once():
    model = _model()
    batches = _batches(model)
    feats = extract_features(model, batches, _prepare, ["y"], progress=False)
    with torch.no_grad():
        layers = [model.encode(_prepare(c), at="layers") for c, _ in batches]
        embeds = [model.embed(_prepare(c)) for c, _ in batches]
    for i in range(4):
        expected = torch.cat([ls[i].mean(dim=1) for ls in layers]).numpy()
        np.testing.assert_allclose(feats.layers[i], expected, rtol=1e-5, atol=1e-6)
        sim = np.mean([token_similarity(ls[i]) for ls in layers])
        before = [e if i == 0 else ls[i - 1] for e, ls in zip(embeds, layers)]
        upd = np.mean([relative_update_norm(p, ls[i]) for p, ls in zip(before, layers)])
        assert feats.token_similarity[i] == pytest.approx(sim, rel=1e-5)
        assert feats.update_norm[i] == pytest.approx(upd, rel=1e-5)
    assert feats.labels[:, 0].tolist() == [0, 1, 1, 2, 2, 3]


class Watched(torch.nn.Module):
    """The model, counting at every token state it hands out how many earlier ones are still alive."""

    def __init__(self, model):
        super().__init__()
        self.model, self.cfg, self.partition, self.grid = model, model.cfg, model.partition, model.grid
        self.handed: list[weakref.ref] = []
        self.most_alive = 0

    def token_states(self, video):
        for x in self.model.token_states(video):
            alive = sum(ref() is not None for ref in self.handed)
            self.most_alive = max(self.most_alive, alive)
            self.handed.append(weakref.ref(x))
            yield x


def test_extraction_keeps_at_most_two_layers_of_tokens_across_batches():
    """Before, every layer of a batch stayed referenced, and the previous batch's too while the next encoded."""
    watched = Watched(_model())
    extract_features(watched, _batches(watched.model), _prepare, ["y"], progress=False)
    assert len(watched.handed) == 3 * 5  # embedding + 4 layers per batch
    assert watched.most_alive <= 2


def test_bar_and_cost_callback_count_clips(monkeypatch):
    """The bar moves once per layer (b/L clips at a time) and ends at the clip count; on_batch hears every batch."""
    updates, heard = [], []

    class Bar:
        def __init__(self, *a, **k):
            pass

        def update(self, n):
            updates.append(n)

        def close(self):
            pass

    monkeypatch.setattr("blockmae.eval.features.tqdm", Bar)
    model = _model()
    extract_features(model, _batches(model, b=2), _prepare, ["y"], on_batch=lambda n, s: heard.append((n, s)))
    assert len(updates) == 3 * 4 and sum(updates) == 6
    assert [n for n, _ in heard] == [2, 2, 2] and all(s > 0 for _, s in heard)
