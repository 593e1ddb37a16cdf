"""Pretraining: one loop for every regime (a regime only changes the model's `Plan`), in one process or
data parallel (`dist.mode=ddp`); `dist.mode=pipeline` hands over to `pipeline.py`.

Every random stream is a function of (seed, step) (`batches.py`), so a resumed run sees exactly the
batches and masks the uninterrupted run would have seen.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..checkpoint import latest_checkpoint
from ..config import Config
from ..data.transforms import to_model_input
from ..devices import resolve_device
from ..errors import Interrupted
from ..model import BlockMAE
from ..regimes import get_regime, step_plan
from . import distributed, lock, run_dir
from .batches import decoder_draws, mask_generator, train_batches, train_dataset
from .logging import RunLog
from .optim import build_optimizer, effective_lr
from .schedule import make_schedule, step_lr
from .step import Micro, Stepper
from .summary import write_summary


def pretrain(cfg: Config, out: str | Path) -> dict | None:
    """Train (or resume) a run in `out`; returns the summary also written to out/summary.json.

    Under torchrun (`dist.mode=ddp|pipeline`, docs/distributed.md) every rank calls this; the
    rank that wrote the run directory returns the summary, the others None.
    """
    out = Path(out)
    fresh = not out.exists()
    device, created = distributed.start(cfg, resolve_device(cfg.train.device, "train.device"))
    try:
        if cfg.dist.mode == "pipeline":
            from .pipeline import pretrain_pipeline
            summary = pretrain_pipeline(cfg, out, device)
        else:
            summary = _pretrain(cfg, out, device)
        distributed.wait_for_every_rank(created)
        return summary
    except KeyboardInterrupt:
        last = latest_checkpoint(out) if out.is_dir() else None
        run_dir.forget_failed_start(out, fresh)
        raise Interrupted(f"interrupted; the last checkpoint is {last or 'none (nothing trained is kept)'}; run the "
                          "same command again to resume from it") from None
    except BaseException:
        run_dir.forget_failed_start(out, fresh)
        raise
    finally:
        lock.release(out)
        distributed.stop(created)


class SkipReport:
    """Corrupt samples that were replaced: each named once, the first 20 kept for summary.json."""

    def __init__(self):
        self.files, self.named = [], set()

    def add(self, skipped: list) -> None:
        for item in skipped:
            if item not in self.named:
                self.named.add(item)
                tqdm.write(f"skipped {item} (named once; later skips are only counted)")
            if len(self.files) < 20 and item not in self.files:
                self.files.append(item)


def _pretrain(cfg: Config, out: Path, device: torch.device) -> dict | None:
    replicas = distributed.Replicas.join(cfg)  # one process: rank 0 of 1, every call below a no-op
    if not replicas.main:
        replicas.barrier()
    cfg, ckpt = run_dir.prepare(cfg, out, write=replicas.main)
    if replicas.main:
        replicas.barrier()
    t, m = cfg.train, cfg.model
    regime = get_regime(t.regime)
    torch.manual_seed(t.seed)

    dataset = train_dataset(cfg)
    model = BlockMAE(m).to(device)
    schedule = make_schedule(cfg, len(dataset), model.num_stages)
    global_batch = t.batch_size * t.accum_steps
    peak_lr = effective_lr(t.lr, global_batch)
    optimizer = build_optimizer(model, peak_lr, t.weight_decay, t.betas)
    if ckpt is None and t.init_from:
        run_dir.initial_weights(model, t.init_from)
    start = run_dir.restore(ckpt, model, optimizer)
    replicas.broadcast_(model)
    if t.compile:  # per layer and decoder, so the memory-lean per-stage backward still works
        model.compile_layers()
    stepper = Stepper(model, optimizer, weights=t.loss_weights, lean=t.memory_lean, grad_clip=t.grad_clip,
                      amp=t.amp, sync=replicas)
    log = RunLog(out, start, t.tensorboard) if replicas.main else None
    if replicas.main:
        print(f"blockmae: {t.regime}, K={model.num_stages} stages {model.partition}, {schedule.total} steps, "
              f"batch {global_batch}, effective lr {peak_lr:.3g} (base {t.lr:g} x {global_batch}/256), device {device}"
              + (f", {replicas.world} data-parallel ranks" if replicas.world > 1 else "")
              + (f", then {schedule.fit_steps} steps fitting the monitors" if schedule.fit_steps else "")
              + (f", resuming at step {start}" if start else ""))

    loader = train_batches(cfg, dataset, start, device, replicas.shard)
    window, skips = run_dir.LossWindow(model.num_stages), SkipReport()

    def micro_batches(step: int):
        """This step's micro-batches: this rank's rows of the global batch and of its masks."""
        for micro in range(t.accum_steps):
            clips, _, skipped = next(loader)
            skips.add(skipped)
            window.count_batch(clips.shape[0] * replicas.world, len(skipped))
            video = to_model_input(clips.to(device, non_blocking=True), m.pixel_mean, m.pixel_std)
            rows = video.shape[0] * replicas.world  # the global batch, repeated clips (data spec clips=N) included
            mine = replicas.rows(rows)
            mask = model.make_mask(rows, mask_generator(t.seed, step, micro), cfg.mask.kind, cfg.mask.ratio)[mine]
            yield Micro(video, mask, draws=decoder_draws(t.seed, step, micro, rows, mine))

    model.train()
    bar = tqdm(total=schedule.end, initial=start, desc=f"pretrain {t.regime}",
               disable=not (t.progress and replicas.main), dynamic_ncols=True)
    for step in range(start, schedule.end):
        fitting = schedule.fitting(step)  # after training: fit the monitors on the frozen encoder
        if fitting and step == schedule.total:
            bar.set_description("fit monitors")
            if t.monitor_every == 0:
                start_monitors_from_top(model)
        phase = len(schedule.phase_ends) if fitting else schedule.phase(step) if regime.phased else 0
        plan = step_plan(regime, model.num_stages, phase, t, step, t.monitor_every, fitting)
        losses = stepper.backward(plan, micro_batches(step), t.accum_steps)
        run_dir.check_finite(losses, step, out)
        lr = step_lr(cfg, schedule, phase, step, peak_lr)
        stepper.update(plan, lr)
        means = replicas.mean([v if v is not None else 0.0 for v in losses], device)  # over the global batch
        window.add([mean if v is not None else None for mean, v in zip(means, losses)])
        done = step + 1
        bar.update(1)
        if replicas.main and (done % t.log_every == 0 or done in (schedule.total, schedule.end)):
            row = window.row(done, schedule.steps_per_epoch, phase, lr)
            log.write(row)
            bar.set_postfix_str(" ".join(f"{v:.3f}" for v in row["losses"] if v is not None))
        if replicas.main and (done % t.checkpoint_every == 0 or done in (schedule.total, schedule.end)):
            run_dir.save(out, done, model, optimizer.state_dict(), cfg)
    bar.close()
    if not replicas.main:
        return None
    log.close()
    return write_summary(out, cfg, model, schedule.end, skips.files, device)


@torch.no_grad()
def start_monitors_from_top(model: BlockMAE) -> None:
    """Each monitor decoder that has the top decoder's shapes starts from its weights: the top decoder has learnt
    to read the final encoder, whose lower stages' features are much like its output (a residual stream), so a
    short fit starts close to the answer instead of from random weights."""
    top = model.decoders[-1].state_dict()
    for decoder in model.decoders[:-1]:
        if all(v.shape == top[name].shape for name, v in decoder.state_dict().items()):
            decoder.load_state_dict(top)
