"""Several processes under torchrun: process-group setup and data-parallel replicas (docs/distributed.md).

`dist.mode=ddp`: every rank holds the whole model and trains on its share of each global batch
(`train.batch_size` is the global batch, as in one process). Batch indices and masks are
functions of (seed, step), so each rank takes its rows of the very batch and masks one process
would draw, without communication. Gradients are averaged once per step, after accumulation,
one flat all-reduce per stage, launched as soon as the stage's gradient is final: what
DistributedDataParallel's reducer does with its buckets, with one bucket per stage. This keeps the
rule of one reduction per parameter per step even though the memory-lean step runs a backward per
stage inside the forward (where a DDP wrapper around the whole model would see no backward at all,
its reducer being armed only after its forward returns). One process is `Replicas()`: every
collective a no-op.

`Replicas` is a `run.Layout`: what the run and the loop (`engine.train`) ask of the process layout.
`dist.mode=pipeline` is the other layout, in `pipeline.py`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from ..config import Config, ConfigError
from ..model import BlockMAE
from ..regimes import Plan


def launched() -> bool:
    """Whether torchrun (or an equivalent launcher) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def start(cfg: Config, device: torch.device) -> tuple[torch.device, bool]:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR/PORT in the environment).

    Returns this rank's device (cuda:LOCAL_RANK on GPU) and whether this call created the group
    (so the caller destroys it when done). One process, `dist.mode=none`: nothing happens.
    """
    mode = cfg.dist.mode
    if not launched():
        if mode == "pipeline":
            raise ConfigError("dist.mode=pipeline needs one process per stage: "
                              "torchrun --nproc-per-node K -m blockmae pretrain ...")
        return device, False
    if mode == "none":
        raise ConfigError(f"{os.environ['WORLD_SIZE']} processes were launched but dist.mode=none, so every one would "
                          f"train the same run; add dist.mode=ddp (data parallel) or dist.mode=pipeline")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if dist.is_initialized():
        return device, False
    backend = cfg.dist.backend if cfg.dist.backend != "auto" else ("nccl" if device.type == "cuda" else "gloo")
    dist.init_process_group(backend)
    return device, True


def wait_for_every_rank(created: bool) -> None:
    """After a finished run: the other ranks wait while the writer writes the summary, so that no rank tears
    the process group down under another (a rank leaving early was seen to abort in gloo's teardown)."""
    if created and dist.is_initialized():
        dist.barrier()


def stop(created: bool) -> None:
    if created and dist.is_initialized():
        dist.destroy_process_group()


def rank_rows(n: int, rank: int, world: int) -> slice:
    """Rank `rank`'s contiguous share of n rows (n divides evenly: checked by `Replicas.join`)."""
    share = n // world
    return slice(rank * share, (rank + 1) * share)


class ShardedBatches(Sampler):
    """This rank's rows of every global batch an `EpochBatches` sampler yields."""

    def __init__(self, batches: Sampler, rank: int, world: int):
        self.batches, self.rank, self.world = batches, rank, world

    def __iter__(self):
        for batch in self.batches:
            yield batch[rank_rows(len(batch), self.rank, self.world)]


@dataclass
class Replicas:
    """This process's place among data-parallel replicas (rank 0 of 1: a single process): a `run.Layout`."""
    rank: int = 0
    world: int = 1
    _in_flight: dict = field(default_factory=dict, repr=False, compare=False)  # stage -> (flat, grads, work)
    run: object = field(default=None, repr=False, compare=False)  # the `run.Run` it takes part in (`ready`)

    @classmethod
    def join(cls, cfg: Config) -> "Replicas":
        if not dist.is_initialized() or cfg.dist.mode != "ddp":
            return cls()
        replicas = cls(dist.get_rank(), dist.get_world_size())
        if cfg.train.batch_size % replicas.world:
            raise ConfigError(f"train.batch_size={cfg.train.batch_size} (the global batch) does not split evenly over "
                              f"{replicas.world} ranks; use a multiple of {replicas.world}")
        return replicas

    @property
    def writer(self) -> bool:
        """The rank that writes the run directory (config, log, checkpoints, summary)."""
        return self.rank == 0

    @property
    def replicas(self) -> int:
        return self.world

    @property
    def description(self) -> str:
        return f", {self.world} data-parallel ranks" if self.world > 1 else ""

    @property
    def step_options(self) -> dict:
        return {"sync": self}

    def place(self, model: BlockMAE, device: torch.device) -> None:
        model.to(device)

    def ready(self, run) -> None:
        """Every replica starts from rank 0's weights (as DistributedDataParallel does)."""
        self.run = run
        if self.world > 1:
            for tensor in run.model.state_dict().values():
                dist.broadcast(tensor, 0)

    def gather(self, step: int, values: list[float | None]) -> list[float | None]:
        """The global batch's losses: each replica's mean over its rows, averaged (an all-reduce of K numbers)."""
        if self.world == 1:
            return values
        t = torch.tensor([v if v is not None else 0.0 for v in values], dtype=torch.float64, device=self.run.device)
        dist.all_reduce(t)
        return [mean if v is not None else None for mean, v in zip((t / self.world).tolist(), values)]

    def plan(self, plan: Plan) -> Plan:
        return plan

    def begin(self, step: int) -> None:
        pass

    def stage_input(self, step: int, micro: int) -> dict:
        return {}

    def save(self, step: int) -> None:
        if self.writer:
            self.run.save(step)

    def finish(self, times: dict) -> dict:
        return {}

    def rows(self, global_batch: int) -> slice:
        """This rank's rows of a global batch (and of its masks)."""
        return rank_rows(global_batch, self.rank, self.world)

    def shard(self, batches: Sampler) -> Sampler:
        return batches if self.world == 1 else ShardedBatches(batches, self.rank, self.world)

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def start_averaging(self, k: int, params: list[torch.nn.Parameter]) -> None:
        """Launch the all-reduce of stage k's gradients, which are final: it runs while the next stages compute."""
        if self.world == 1 or k in self._in_flight:
            return
        grads = [p.grad for p in params if p.grad is not None]
        if grads:
            flat = torch._utils._flatten_dense_tensors(grads)
            self._in_flight[k] = (flat, grads, dist.all_reduce(flat, async_op=True))

    def average_gradients(self, groups: list[list[torch.nn.Parameter]]) -> None:
        """Average every gradient over the replicas: one flat all-reduce per group (stage), all in flight at once."""
        if self.world == 1:
            return
        for k, params in enumerate(groups):
            self.start_averaging(k, params)
        for flat, grads, work in self._in_flight.values():
            work.wait()
            flat.div_(self.world)
            for grad, reduced in zip(grads, torch._utils._unflatten_dense_tensors(flat, grads)):
                grad.copy_(reduced)
        self._in_flight.clear()
