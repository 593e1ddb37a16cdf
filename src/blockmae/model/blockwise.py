"""The model: an encoder cut into K stages, each with its own decoder and local loss.

Every training regime is the same forward under a different `Plan` (docs/design.md):
whether a stage's input is detached from the stage before, and which decoders' losses
reach the encoder. End-to-end training is K stages whose lower decoders only monitor.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ..config import ModelConfig, partition_layers, per_stage
from .decoder import Decoder
from .masking import gather_tokens, make_mask, split_indices, subset_indices
from .objective import pixel_targets, reconstruction_loss
from .vit import Layer, TubeletEmbed, init_weights


@dataclass(frozen=True)
class Plan:
    detach: bool  # cut the graph between consecutive stages
    encoder_loss: tuple[bool, ...]  # stage k's loss reaches the encoder; else its decoder reads detached features
    frozen: tuple[bool, ...]  # stage k runs without grad and computes no loss (sequential: earlier phases)
    active: int  # stages computed (sequential: up to the current phase)


def regime_plan(regime: str, num_stages: int, phase: int = 0) -> Plan:
    """The plan of a regime; `phase` (0-based) is the stage being trained in `sequential`."""
    k = num_stages
    if regime == "e2e":
        return Plan(False, tuple(i == k - 1 for i in range(k)), (False,) * k, k)
    if regime == "simultaneous":
        return Plan(True, (True,) * k, (False,) * k, k)
    if regime == "sequential":
        return Plan(True, (True,) * k, tuple(i < phase for i in range(k)), phase + 1)
    if regime == "deep-supervision":
        return Plan(False, (True,) * k, (False,) * k, k)
    raise ValueError(f"unknown regime '{regime}'")


@torch.no_grad()
def _tubelet_targets(tubelets: torch.Tensor, channels: int, mean, std, norm_pix: bool) -> torch.Tensor:
    """`objective.pixel_targets` for tubelets already cut out: (B, n, C*t*p*p) normalised input, kernel order
    -> (B, n, t*p*p*C) targets in the decoder's order. Per channel rows, so every reduction is contiguous."""
    x = tubelets.float().unflatten(2, (channels, -1))  # (B, n, C, t*p*p)
    x = torch.addcmul(torch.as_tensor(mean, device=x.device).view(-1, 1), x,
                      torch.as_tensor(std, device=x.device).view(-1, 1))  # back to [0, 1] pixels
    if norm_pix:  # per tubelet and channel: (x - mean) / (unbiased std + 1e-6), in place
        x.sub_(x.mean(dim=-1, keepdim=True))
        std_ = x.square().sum(dim=-1, keepdim=True).div_(x.shape[-1] - 1).sqrt_()
        x.div_(std_.add_(1e-6))
    return x.transpose(-1, -2).flatten(2)


class BlockMAE(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.partition = partition_layers(cfg.partition, cfg.depth)
        k = len(self.partition)
        self.embed = TubeletEmbed(cfg.channels, cfg.width, cfg.frames, cfg.image_size, cfg.tubelet, cfg.patch)
        self.layers = nn.ModuleList(
            Layer(cfg.width, cfg.heads, cfg.mlp_ratio, cfg.qkv_bias, cfg.norm_eps) for _ in range(cfg.depth))
        d = cfg.decoder
        out_dim = cfg.channels * cfg.tubelet * cfg.patch ** 2
        self.decoders = nn.ModuleList(
            Decoder(cfg.width, w, depth, h, self.embed.num_tokens, out_dim, d.mlp_ratio, cfg.qkv_bias, cfg.norm_eps, d.input_norm)
            for w, depth, h in zip(per_stage(d.width, k, "decoder.width"), per_stage(d.depth, k, "decoder.depth"),
                                   per_stage(d.heads, k, "decoder.heads")))
        self.decoder_mask_ratio = per_stage(d.mask_ratio, k, "decoder.mask_ratio")
        init_weights(self)
        for dec in self.decoders:
            nn.init.trunc_normal_(dec.mask_token, std=0.02)

    # ------------------------------------------------------------------ structure
    @property
    def num_stages(self) -> int:
        return len(self.partition)

    @property
    def grid(self) -> tuple[int, int, int]:
        return self.embed.grid

    def stage_bounds(self, k: int) -> tuple[int, int]:
        start = sum(self.partition[:k])
        return start, start + self.partition[k]

    def stage_modules(self, k: int) -> list[nn.Module]:
        """The encoder modules stage k owns (the embedding belongs to stage 0), without its decoder."""
        start, end = self.stage_bounds(k)
        return ([self.embed] if k == 0 else []) + list(self.layers[start:end])

    def run_stage(self, k: int, x: torch.Tensor) -> torch.Tensor:
        start, end = self.stage_bounds(k)
        for layer in self.layers[start:end]:
            x = layer(x)
        return x

    def make_mask(self, batch: int, generator: torch.Generator | None = None, kind: str = "tube", ratio: float = 0.9):
        return make_mask(kind, ratio, self.grid, batch, generator)

    def targets(self, video: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        return pixel_targets(video, c.pixel_mean, c.pixel_std, c.tubelet, c.patch, c.norm_pix)

    def compile_layers(self, **options) -> None:
        """`torch.compile` every encoder layer and decoder in place (parameter names do not change).

        Stages stay separate graphs, so the memory-lean step's per-stage backward still works.
        """
        for module in list(self.layers) + list(self.decoders):
            module.compile(**options)

    def _visible_and_targets(self, video: torch.Tensor, visible_idx: torch.Tensor, hidden_idx: torch.Tensor):
        """Embedded visible tokens and the hidden tubelets' targets, from one tubelet view of the clip.

        Only visible tubelets are embedded and only hidden ones normalised: the same numbers as
        embedding everything and gathering (`embed`, `targets`), with ~N/n_visible times less work.
        """
        tubelets = self.embed.tubelets(video)  # one copy of the clip, cut into tubelets
        return self.embed.tokens_at(tubelets, visible_idx), self.hidden_targets(video, hidden_idx, tubelets)

    def hidden_targets(self, video: torch.Tensor, hidden_idx: torch.Tensor,
                       tubelets: torch.Tensor | None = None) -> torch.Tensor:
        """The hidden tubelets' reconstruction targets; only those are normalised (`tubelets`: the clip already cut)."""
        tubelets = self.embed.tubelets(video) if tubelets is None else tubelets
        c = self.cfg
        return _tubelet_targets(gather_tokens(tubelets, hidden_idx), c.channels, c.pixel_mean, c.pixel_std, c.norm_pix)

    # ------------------------------------------------------------------ public API
    def encode(self, video: torch.Tensor, at: str = "blocks") -> list[torch.Tensor]:
        """Unmasked tokens (B, N, D) after every stage (`blocks`) or every layer (`layers`), raw (no extra norm)."""
        if at not in ("blocks", "layers"):
            raise ValueError(f"at='{at}' must be 'blocks' or 'layers'")
        x = self.embed(video)
        outs = []
        ends = {self.stage_bounds(k)[1] for k in range(self.num_stages)}
        for i, layer in enumerate(self.layers, start=1):
            x = layer(x)
            if at == "layers" or i in ends:
                outs.append(x)
        return outs

    def losses(self, video: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """Every stage's masked-reconstruction loss on `video` under `mask` (True = hidden), on all hidden tubelets."""
        k = self.num_stages
        return self.run_plan(video, mask, Plan(False, (True,) * k, (False,) * k, k), decoder_masking=False)

    def reconstruct(self, video: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """Each stage's predictions for the hidden tubelets, (B, n_hidden, tubelet*patch*patch*C)."""
        visible_idx, hidden_idx = split_indices(mask.to(video.device))
        x = self.embed.tokens_at(self.embed.tubelets(video), visible_idx)
        preds = []
        for k in range(self.num_stages):
            x = self.run_stage(k, x)
            preds.append(self.decoders[k](x, visible_idx, hidden_idx))
        return preds

    def run_plan(self, video: torch.Tensor, mask: torch.Tensor, plan: Plan,
                 backward: Callable[[int, torch.Tensor], None] | None = None,
                 decoder_masking: bool | None = None, generator: torch.Generator | None = None,
                 ) -> list[torch.Tensor | None]:
        """Per-stage losses under `plan` (None for stages that compute none).

        With `backward`, a loss whose graph ends inside its own stage (detached input, or a
        monitor decoder) is backpropagated as soon as it exists, so at most one stage's graph
        is alive (the memory-lean step); such losses come back detached.

        Decoder masking (`model.decoder.mask_ratio` > 0; by default only in training mode):
        each stage's decoder reconstructs its own random subset of the hidden tubelets, drawn
        from `generator` (default: torch's global CPU generator), and its loss covers only those.
        """
        visible_idx, hidden_idx = split_indices(mask.to(video.device))
        with torch.no_grad() if plan.frozen[0] else nullcontext():
            first, target = self._visible_and_targets(video, visible_idx, hidden_idx)
        if decoder_masking is None:
            decoder_masking = self.training
        losses: list[torch.Tensor | None] = [None] * self.num_stages
        x = None
        for k in range(plan.active):
            with torch.no_grad() if plan.frozen[k] else nullcontext():
                if k == 0:
                    x = first
                elif plan.detach:
                    x = x.detach()
                x = self.run_stage(k, x)
            if plan.frozen[k]:
                continue
            features = x if plan.encoder_loss[k] else x.detach()
            stage_hidden, stage_target = hidden_idx, target
            ratio = self.decoder_mask_ratio[k]
            if decoder_masking and ratio > 0:
                keep = subset_indices(hidden_idx.shape[0], hidden_idx.shape[1], ratio, generator).to(video.device)
                stage_hidden, stage_target = hidden_idx.gather(1, keep), gather_tokens(target, keep)
            loss = reconstruction_loss(self.decoders[k](features, visible_idx, stage_hidden), stage_target)
            if backward is not None and loss.requires_grad and (plan.detach or not plan.encoder_loss[k]):
                backward(k, loss)
                loss = loss.detach()
            losses[k] = loss
        return losses
