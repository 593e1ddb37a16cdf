"""The training clips and masks of every step, as functions of (seed, step).

The batch order comes from a seeded permutation per epoch and the masks from a generator seeded
per step, so a resumed run (or another process of a pipelined one) sees exactly the batches and
masks an uninterrupted single-process run would have seen.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Sampler

from ..config import Config, ConfigError
from ..data import SkipCorrupt, build_dataset, collate
from ..model.masking import subset_indices


class EpochBatches(Sampler):
    """Infinite batches of indices: epoch e is a permutation seeded by (seed, e), cut into full batches.

    Starting at batch `start` replays the exact same sequence an uninterrupted run would see.
    With `with_epoch`, indices are (index, epoch) pairs, so video datasets draw new clips and
    crops every epoch even inside persistent DataLoader workers.
    """

    def __init__(self, size: int, batch: int, seed: int, start: int = 0, with_epoch: bool = False):
        if size < batch:
            raise ConfigError(f"the training set has {size} clips, fewer than train.batch_size={batch}")
        self.size, self.batch, self.seed, self.start, self.with_epoch = size, batch, seed, start, with_epoch
        self.per_epoch = size // batch

    def __iter__(self):
        b = self.start
        while True:
            epoch, pos = divmod(b, self.per_epoch)
            perm = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch))
            indices = perm[pos * self.batch:(pos + 1) * self.batch].tolist()
            yield [(i, epoch) for i in indices] if self.with_epoch else indices
            b += 1


def mask_generator(seed: int, step: int, micro: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 64 + micro)


def decoder_draws(seed: int, step: int, micro: int, rows: int, pick=slice(None)):
    """Decoder masking's subsets for one micro-batch: stage k's draw for all `rows` of the global batch comes from a
    generator seeded by (seed, step, micro, k), and `pick` takes this process's rows, so one process, data-parallel
    ranks and pipeline stages (each holding one stage) all draw the same subsets."""
    def draw(stage: int, n: int, ratio: float) -> torch.Tensor:
        generator = torch.Generator().manual_seed(((seed * 1_000_003 + step) * 64 + micro) * 256 + stage + 1)
        return subset_indices(rows, n, ratio, generator)[pick]
    return draw


def train_dataset(cfg: Config):
    m, t = cfg.model, cfg.train
    return SkipCorrupt(build_dataset(cfg.data.train, "train", frames=m.frames, image_size=m.image_size,
                                     channels=m.channels, seed=t.seed), strict=cfg.data.strict, seed=t.seed)


def train_batches(cfg: Config, dataset, start: int, device: torch.device, shard=lambda batches: batches):
    """The (clips, labels, skipped) batches from step `start` on; `shard` picks a rank's rows of each batch."""
    t = cfg.train
    sampler = shard(EpochBatches(len(dataset), t.batch_size, t.seed, start=start * t.accum_steps,
                                 with_epoch=getattr(dataset, "accepts_epoch_index", False)))
    return iter(DataLoader(dataset, batch_sampler=sampler, num_workers=cfg.data.num_workers, collate_fn=collate,
                           pin_memory=device.type == "cuda", persistent_workers=cfg.data.num_workers > 0))
