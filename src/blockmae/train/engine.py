"""Pretraining: `pretrain` sets a run up (`run.Run`) for its process layout and `train` is the one loop, for every
regime (a regime only changes the model's `Plan`) and every layout: one process or data parallel
(`distributed.Replicas`), or one stage per process (`pipeline.Pipeline`).

Every random stream is a function of (seed, step) (`batches.py`), so a resumed run, a data-parallel rank and a
pipeline stage see exactly the batches and masks the uninterrupted single-process run would have seen.
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
from .batches import decoder_draws, mask_generator, train_batches
from .logging import LossWindow, SkipReport
from .pipeline import Pipeline
from .run import Layout, Run
from .schedule import step_lr
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
        layout = Pipeline.join(cfg) if cfg.dist.mode == "pipeline" else distributed.Replicas.join(cfg)
        summary = train(Run.open(cfg, out, device, layout), layout)
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


def train(run: Run, layout: Layout) -> dict | None:
    """Each step: its plan, batches and learning rate -> the step -> the log row -> the checkpoint. Returns the
    summary on the writer, None elsewhere."""
    cfg, model, schedule, clock, device = run.cfg, run.model, run.schedule, run.clock, run.device
    t, m = cfg.train, cfg.model
    regime = get_regime(t.regime)
    options = {"lean": t.memory_lean, **layout.step_options}  # the pipeline always backpropagates stage by stage
    stepper = Stepper(model, run.optimizer, weights=t.loss_weights, grad_clip=t.grad_clip, amp=t.amp, **options)
    loader = train_batches(cfg, run.dataset, run.start, device, layout.shard)
    window, skips = LossWindow(model.num_stages), SkipReport()

    def micro_batches(step: int):
        """This step's micro-batches: this process's rows of the global batch and of its masks, and its input."""
        for micro in range(t.accum_steps):
            with clock("data"):
                clips, _, skipped = next(loader)
                skips.add(skipped)
                window.count_batch(clips.shape[0] * layout.replicas, len(skipped))
                video = to_model_input(clips.to(device, non_blocking=True), m.pixel_mean, m.pixel_std)
                rows = video.shape[0] * layout.replicas  # the global batch, repeated clips (data spec clips=N) included
                mine = layout.rows(rows)
                mask = model.make_mask(rows, mask_generator(t.seed, step, micro), cfg.mask.kind, cfg.mask.ratio)[mine]
            draws = decoder_draws(t.seed, step, micro, rows, mine)
            yield Micro(video, mask, draws=draws, **layout.stage_input(step, micro))

    model.train()
    bar = tqdm(total=schedule.end, initial=run.start, desc=f"pretrain {t.regime}",
               disable=not (t.progress and layout.writer), dynamic_ncols=True)
    for step in range(run.start, schedule.end):
        if step == run.start + t.log_every:  # time from the second log window on: the first fills and warms up
            clock.reset(step)
        fitting = schedule.fitting(step)  # after training: fit the monitors on the frozen encoder
        if fitting and step == schedule.total:
            bar.set_description("fit monitors")
            if t.monitor_every == 0:
                start_monitors_from_top(model)
        phase = len(schedule.phase_ends) if fitting else schedule.phase(step) if regime.phased else 0
        plan = layout.plan(step_plan(regime, model.num_stages, phase, t, step, t.monitor_every, fitting))
        layout.begin(step)
        with clock("compute"):
            losses = stepper.backward(plan, micro_batches(step), t.accum_steps)
        run_dir.check_finite(losses, step, run.out)
        lr = step_lr(cfg, schedule, phase, step, run.peak_lr)
        with clock("compute"):
            stepper.update(plan, lr)
        logged = layout.gather(step, losses)
        if logged is not None:
            window.add(logged)
        done = step + 1
        bar.update(1)
        if layout.writer and (done % t.log_every == 0 or done in (schedule.total, schedule.end)):
            row = window.row(done, schedule.steps_per_epoch, phase, lr)
            run.log.write(row)
            bar.set_postfix_str(" ".join(f"{v:.3f}" for v in row["losses"] if v is not None))
        if done % t.checkpoint_every == 0 or done in (schedule.total, schedule.end):
            with clock("checkpoint"):
                layout.save(done)
    bar.close()
    extra = layout.finish(clock.report(schedule.end))
    if not layout.writer:
        return None
    run.log.close()
    return write_summary(run.out, cfg, model, schedule.end, skips.files, device, **extra)


@torch.no_grad()
def start_monitors_from_top(model: BlockMAE) -> None:
    """Each monitor decoder that has the top decoder's shapes starts from its weights: the top decoder has learnt
    to read the final encoder, whose lower stages' features are much like its output (a residual stream), so a
    short fit starts close to the answer instead of from random weights."""
    top = model.decoders[-1].state_dict()
    for decoder in model.decoders[:-1]:
        if all(v.shape == top[name].shape for name, v in decoder.state_dict().items()):
            decoder.load_state_dict(top)
