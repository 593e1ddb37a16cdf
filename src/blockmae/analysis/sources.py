"""What `analyze` is pointed at: run directories, checkpoints, Hugging Face directories, random floors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import Config, config_from_dict, to_dict
from ..hub import load, resolve_checkpoint
from ..model import BlockMAE
from ..checkpoint import checkpoint_steps, load_weights


@dataclass
class Source:
    run: str  # short name shown in tables and figures
    path: str
    regime: str  # a training regime, "pretrained" (Hugging Face / converted) or "random"
    model_name: str
    K: int
    seed: int | None
    config: dict
    run_dir: Path | None = None  # set for blockmae runs: learning dynamics read their checkpoints

    def meta(self) -> dict:
        return {"run": self.run, "regime": self.regime, "model": self.model_name, "K": self.K, "seed": self.seed}

    def model(self) -> BlockMAE:
        if self.regime == "random":
            torch.manual_seed(self.seed or 0)
            return BlockMAE(config_from_dict(self.config).model).eval()
        return load(self.path)

    def checkpoints(self) -> list[tuple[int, BlockMAE]]:
        """(step, model) for every checkpoint a run kept (snapshots included), oldest first."""
        if self.run_dir is None:
            return []
        model = BlockMAE(config_from_dict(self.config).model).eval()
        for step in checkpoint_steps(self.run_dir):
            model.load_state_dict(load_weights(self.run_dir / "checkpoints" / str(step)))
            yield step, model


def describe(path: str) -> Source:
    p = Path(path)
    try:
        cfg, ckpt = resolve_checkpoint(p)
    except FileNotFoundError:
        model = load(p)  # a Hugging Face directory (or a clear error)
        cfg = Config()
        cfg.model = model.cfg
        return Source(p.name, str(p), "pretrained", model.cfg.size, model.num_stages, None, to_dict(cfg))
    run_dir = ckpt.parent.parent
    name = p.name if p == run_dir else f"{run_dir.name}@{ckpt.name}"
    return Source(name, str(p), cfg.train.regime, cfg.model.size, len(cfg.model.partition),
                  cfg.train.seed, to_dict(cfg), run_dir if p == run_dir else None)


# Random encoders a floor is measured on when asked for without a number: enough for a mean and an interval.
DEFAULT_RANDOM_FLOORS = 3


def random_floor_count(value: bool | int) -> int:
    """How many random encoders `value` asks for: True the default number, False none, an int that many."""
    if isinstance(value, bool):
        return DEFAULT_RANDOM_FLOORS if value else 0
    if not isinstance(value, int) or value < 0:
        raise ValueError(f"random floor: {value!r} is not a number of random encoders (true, false or an integer >= 0)")
    return value


def random_floors(like: Source, count: int) -> list[Source]:
    """`count` randomly initialised encoders of the same shape (seeds 0..count-1): the floor every trained model
    must beat, measured like a trained group, as a mean over seeds with an interval."""
    return [Source(f"random-{like.model_name}-K{like.K}-s{seed}", like.path, "random", like.model_name, like.K, seed,
                   like.config) for seed in range(count)]
