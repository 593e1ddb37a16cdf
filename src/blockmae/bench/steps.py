"""What a benchmark configuration runs: models with identical weights, inputs and masks, one step of each kind,
and the Hugging Face loss check (the probes around a step, memory and FLOPs, are in `probes`).

Our training step is the engine's own (`train/step.py`, `Stepper`): `run_plan` with the memory-lean backward,
one backward for what is left, `loss.item()` per stage, AdamW step, `zero_grad(set_to_none=True)`. The
Hugging Face step is what a user of `VideoMAEForPreTraining` writes: forward, `loss.backward()`, the same
optimizer with the same parameter groups, `loss.item()`.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..config import Config
from ..devices import resolve_device
from ..model import BlockMAE
from ..model.convert import hf_config_from_model, to_hf
from ..regimes import REFERENCE, get_regime, regime_plan, step_plan
from ..train.batches import decoder_draws
from ..train.optim import build_optimizer
from ..train.step import Micro, Stepper
from .losscheck import first_losses_match


# ----------------------------------------------------------------------------- models and inputs

def build_ours(cfg: Config, seed: int, device: torch.device) -> BlockMAE:
    torch.manual_seed(seed)
    return BlockMAE(cfg.model).to(device)


def hf_twin(model: BlockMAE) -> torch.nn.Module:
    """Hugging Face `VideoMAEForPreTraining` carrying `model`'s weights (top stage's decoder), on its device."""
    from transformers import VideoMAEConfig, VideoMAEForPreTraining

    hf = VideoMAEForPreTraining(VideoMAEConfig(**hf_config_from_model(model.cfg)))
    hf.load_state_dict(to_hf({k: v.cpu() for k, v in model.state_dict().items()}))
    return hf.to(next(model.parameters()).device)


def make_inputs(model: BlockMAE, cfg: Config, batch: int, count: int, seed: int,
                device: torch.device) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """A normalised clip batch (B, C, T, H, W) and `count` masks, the same for every configuration and seed."""
    m = cfg.model
    gen = torch.Generator().manual_seed(seed)
    video = torch.randn(batch, m.channels, m.frames, m.image_size, m.image_size, generator=gen)
    masks = [model.make_mask(batch, torch.Generator().manual_seed(seed * 100_003 + i), cfg.mask.kind, cfg.mask.ratio)
             for i in range(count)]
    return video.to(device), [mask.to(device) for mask in masks]


def make_optimizer(model: torch.nn.Module, kind: str = "engine") -> torch.optim.Optimizer:
    """The engine's AdamW (`build_optimizer`: no decay on norms, biases, mask tokens; the fused kernel where
    PyTorch has one); `unfused`: the same groups with PyTorch's default AdamW implementation."""
    lr, weight_decay, betas = 1e-4, 0.05, (0.9, 0.95)
    if kind not in ("engine", "unfused"):
        raise ValueError(f"optimizer '{kind}' must be 'engine' or 'unfused'")
    return build_optimizer(model, lr, weight_decay, betas, fused=False if kind == "unfused" else None)


# ----------------------------------------------------------------------------- steps

Step = Callable[[int], list[float]]


def ours_train_step(model: BlockMAE, optimizer, video: torch.Tensor, masks: list[torch.Tensor], regime: str,
                    lean: bool, phase_of: Callable[[int], int] = lambda i: 0, monitor_every: int = 1,
                    amp: str = "none", fitting: Callable[[int], bool] = lambda i: False) -> Step:
    """The engine's step for `regime` on step i's mask (monitors on every `monitor_every`-th step, 0: never; bf16
    autocast with `amp`; where `fitting(i)`, the step that fits the monitors after training), as the engine does;
    returns the per-stage losses (None: not computed)."""
    model.train()
    stepper = Stepper(model, optimizer, lean=lean, amp=amp)

    def step(i: int) -> list[float]:
        plan = step_plan(get_regime(regime), model.num_stages, phase_of(i), None, i, monitor_every, fitting(i))
        micro = Micro(video, masks[i % len(masks)], draws=decoder_draws(0, i, 0, video.shape[0]))  # as the engine
        return stepper.step(plan, [micro], 1, optimizer.param_groups[0]["lr"])

    return step


def hf_train_step(hf, optimizer, video: torch.Tensor, masks: list[torch.Tensor], amp: str = "none") -> Step:
    """Hugging Face's step, under the same autocast as ours with `amp` bf16."""
    hf.train()
    pixel_values = video.transpose(1, 2).contiguous()  # Hugging Face takes (B, T, C, H, W)

    def step(i: int) -> list[float]:
        with torch.autocast(video.device.type, dtype=torch.bfloat16, enabled=amp == "bf16"):
            loss = hf(pixel_values, bool_masked_pos=masks[i % len(masks)]).loss
        loss.backward()
        value = loss.item()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return [value]

    return step


def ours_extract_step(model: BlockMAE, video: torch.Tensor, inference: bool) -> Step:
    """Analysis features: every layer's tokens of unmasked clips, pooled over tokens (eval/features.py)."""
    model.eval()

    def step(i: int) -> list[float]:
        with torch.inference_mode() if inference else torch.no_grad():
            pooled = [tokens.mean(dim=1) for tokens in model.encode(video, at="layers")]
        return [pooled[-1].float().abs().mean().item()]

    return step


def hf_extract_step(hf, video: torch.Tensor, inference: bool) -> Step:
    hf.eval()
    pixel_values = video.transpose(1, 2).contiguous()

    def step(i: int) -> list[float]:
        with torch.inference_mode() if inference else torch.no_grad():
            hidden = hf.videomae(pixel_values, output_hidden_states=True).hidden_states[1:]
            pooled = [tokens.mean(dim=1) for tokens in hidden]
        return [pooled[-1].float().abs().mean().item()]

    return step


# ----------------------------------------------------------------------------- the loss check

def hf_loss_check(cfg: Config, batch: int = 2, seed: int = 0, device: str | torch.device = "cpu") -> dict:
    """Build ours (E2E, one stage) and its Hugging Face twin with the same weights; compare their losses
    on the same input and mask, in training mode, before any update."""
    device = resolve_device(device)
    if cfg.model.partition != [cfg.model.depth]:  # a loaded config's partition is a list of layer counts
        raise ValueError(f"the Hugging Face check needs model.partition=1 (one decoder), got {cfg.model.partition}")
    ours = build_ours(cfg, seed, device)
    hf = hf_twin(ours)
    video, masks = make_inputs(ours, cfg, batch, 1, seed, device)
    ours.train()
    hf.train()
    with torch.no_grad():
        (loss,) = ours.run_plan(video, masks[0], regime_plan(REFERENCE, 1), decoder_masking=False)
        theirs = hf(video.transpose(1, 2), bool_masked_pos=masks[0]).loss
    return first_losses_match(theirs.item(), loss.item())
