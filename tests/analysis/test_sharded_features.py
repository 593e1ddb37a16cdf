"""`blockmae analyze` under torchrun: every rank extracts a shard, gathered in order, equal to one pass."""

import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from blockmae.analysis.extraction import FeatureStore
from blockmae.analysis.options import Options
from blockmae.analysis.sources import Source
from blockmae.analysis.suite import extraction_workers
from blockmae.config import to_dict
from blockmae.eval.features import Features
from helpers import small_config

DATA = "digits,n=22"  # 3 batches of 8 (the last one short): shards of 1 and 2 batches


def _source() -> Source:
    cfg = small_config("model.partition=2", "model.frames=4")
    return Source("random", "none", "random", cfg.model.size, 2, 0, to_dict(cfg))


def _options() -> Options:
    return Options(batch_size=8, progress=False, device="cpu")


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    options = _options()
    with extraction_workers(options) as main:
        if main:
            store = FeatureStore(out, options)
            source = _source()
            model = source.model()
            for occluded in (False, True):
                feats = store.features(source, model, DATA, "train", occluded=occluded)
                feats.save(os.path.join(out, f"sharded-{occluded}.npz"), model.partition)


@pytest.mark.slow
def test_sharded_extraction_equals_one_pass(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_worker, args=(2, port, str(tmp_path / "dist")), nprocs=2, join=True)
    source = _source()
    model = source.model()
    one = FeatureStore(tmp_path / "one", _options())
    for occluded in (False, True):
        a = one.features(source, model, DATA, "train", occluded=occluded)
        b = Features.load(tmp_path / "dist" / f"sharded-{occluded}.npz")
        assert len(a.labels) == len(b.labels) == 22
        assert np.array_equal(a.labels, b.labels)
        assert all(np.allclose(x, y, atol=1e-6) for x, y in zip(a.layers, b.layers))
        assert np.allclose(a.token_similarity, b.token_similarity) and np.allclose(a.update_norm, b.update_norm)
        assert len(a.token_similarity) == (0 if occluded else 4)
