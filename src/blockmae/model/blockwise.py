"""The model: an encoder cut into K stages, each with its own decoder and local loss.

Every training regime is the same forward under a different `Plan` (docs/design.md), which says per
stage what happens: whether its input is detached from the stage before, whether its loss reaches the
encoder, whether it is frozen, and its lead layers, input noise and target pooling. End-to-end training
is K stages whose lower decoders only monitor.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import nn

from ..config import ModelConfig, per_stage
from ..regimes import Plan, evaluation_plan
from .decoder import Decoder
from .grouped import decoder_losses
from .masking import gather_tokens, make_mask, split_indices, subset_indices
from .objective import coarse_targets, pixel_targets, reconstruction_loss, tubelet_targets
from .vit import Layer, TubeletEmbed, init_weights


@dataclass
class StageResult:
    output: torch.Tensor  # the stage's last layer's tokens
    loss: torch.Tensor | None  # its decoder's masked-reconstruction loss (None when not decoded)
    tap: torch.Tensor | None  # the tokens entering its last `tap` layers (what an overlapping next stage starts from)
    decoder_input: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # (features, hidden_idx, target)


@dataclass
class MaskedBatch:
    """What every stage's loss needs about one batch: which tokens are visible, which hidden, and the
    hidden tubelets' targets (B, n_hidden, t*p*p*C)."""
    visible_idx: torch.Tensor
    hidden_idx: torch.Tensor
    target: torch.Tensor


class BlockMAE(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        if not isinstance(cfg.partition, list):
            raise ValueError("BlockMAE needs a resolved config (config.resolve makes model.partition a list)")
        self.partition = list(cfg.partition)
        k = len(self.partition)
        self.embed = TubeletEmbed(cfg.channels, cfg.width, cfg.frames, cfg.image_size, cfg.tubelet, cfg.patch)
        self.layers = nn.ModuleList(
            Layer(cfg.width, cfg.heads, cfg.mlp_ratio, cfg.qkv_bias, cfg.norm_eps, cfg.layer_scale)
            for _ in range(cfg.depth))
        d = cfg.decoder
        out_dim = cfg.channels * cfg.tubelet * cfg.patch ** 2
        self.decoders = nn.ModuleList(
            Decoder(cfg.width, w, depth, h, self.embed.num_tokens, out_dim, d.mlp_ratio, cfg.qkv_bias, cfg.norm_eps, d.input_norm)
            for w, depth, h in zip(per_stage(d.width, k, "decoder.width"), per_stage(d.depth, k, "decoder.depth"),
                                   per_stage(d.heads, k, "decoder.heads")))
        self.decoder_mask_ratio = per_stage(d.mask_ratio, k, "decoder.mask_ratio")
        # The standard step runs the decoders whose shapes agree as one batched computation (model/grouped.py).
        self.grouped_decoders = d.grouped
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
        return self.run_layers(x, *self.stage_bounds(k))

    def run_layers(self, x: torch.Tensor, first: int, end: int) -> torch.Tensor:
        for layer in self.layers[first:end]:
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

    def masked_batch(self, video: torch.Tensor, mask: torch.Tensor,
                     embed: bool = True) -> tuple[torch.Tensor | None, MaskedBatch]:
        """The visible tokens that enter stage 1 (None without `embed`) and the batch's `MaskedBatch`.

        Only visible tubelets are embedded and only hidden ones normalised: the same numbers as
        embedding everything and gathering (`embed`, `targets`), with ~N/n_visible times less work.
        """
        visible_idx, hidden_idx = split_indices(mask.to(video.device))
        tubelets = self.embed.tubelets(video)  # one copy of the clip, cut into tubelets
        c = self.cfg
        target = tubelet_targets(gather_tokens(tubelets, hidden_idx), c.channels, c.pixel_mean, c.pixel_std, c.norm_pix)
        tokens = self.embed.tokens_at(tubelets, visible_idx) if embed else None
        return tokens, MaskedBatch(visible_idx, hidden_idx, target)

    def stage_loss(self, k: int, x: torch.Tensor, batch: MaskedBatch, monitor: bool = False,
                   decoder_mask_ratio: float = 0.0,
                   draws: Callable[[int, int, float], torch.Tensor] | None = None,
                   lead: int = 0, tap: int = 0, pool: int = 1, encoder_grad: bool = True,
                   decode: bool = True) -> StageResult:
        """Stage k on its input `x` (detach it first for a gradient-isolated stage), then its local decoder's
        masked-reconstruction loss.

        `monitor`: the decoder reads detached features, so the loss trains the decoder only. With
        `decoder_mask_ratio` > 0 the decoder reconstructs a random subset of the hidden tubelets
        (`draws(k, n_hidden, ratio)`, the kept positions; default: from torch's global CPU generator) and the loss
        covers only those.
        `lead`: `x` enters that many layers before the stage's first (the previous stage's last layers, which
        this loss then trains too: overlapping blocks); `tap`: also return the tokens entering the last `tap` layers.
        `pool` > 1: the target is the coarser `objective.coarse_targets`.
        `encoder_grad` False: the stage's layers run without a graph (only the decoder trains: fitting monitors).
        `decode` False: the decoder does not run; the result's `decoder_input` holds what it would read (and `loss`
        is None), for `grouped.decoder_losses`.
        """
        start, end = self.stage_bounds(k)
        tapped = None
        with nullcontext() if encoder_grad else torch.no_grad():
            if tap:
                x = tapped = self.run_layers(x, start - lead, end - tap)
                x = self.run_layers(x, end - tap, end)
            else:
                x = self.run_layers(x, start - lead, end)
        hidden, target = batch.hidden_idx, batch.target
        if pool > 1:
            c = self.cfg
            target = coarse_targets(target, c.channels, c.tubelet, c.patch, pool, c.norm_pix)
        if decoder_mask_ratio > 0:
            n = hidden.shape[1]
            keep = (draws(k, n, decoder_mask_ratio) if draws is not None
                    else subset_indices(hidden.shape[0], n, decoder_mask_ratio)).to(x.device)
            hidden, target = hidden.gather(1, keep), gather_tokens(target, keep)
        features = x.detach() if monitor else x
        if not decode:
            return StageResult(x, None, tapped, (features, hidden, target))
        return StageResult(x, reconstruction_loss(self.decoders[k](features, batch.visible_idx, hidden), target), tapped)

    # ------------------------------------------------------------------ public API
    def encode(self, video: torch.Tensor, at: str = "blocks") -> list[torch.Tensor]:
        """Unmasked tokens (B, N, D) after every stage (`blocks`) or every layer (`layers`), raw (no extra norm)."""
        if at not in ("blocks", "layers"):
            raise ValueError(f"at='{at}' must be 'blocks' or 'layers'")
        ends = {self.stage_bounds(k)[1] for k in range(self.num_stages)}
        states = self.token_states(video)
        next(states)  # the embedding
        return [x for i, x in enumerate(states, start=1) if at == "layers" or i in ends]

    def token_states(self, video: torch.Tensor) -> Iterator[torch.Tensor]:
        """The unmasked tokens (B, N, D) after the embedding, then after every layer, one at a time: a caller that
        measures each and lets it go holds at most two layers' tokens (`eval.features.extract_features`)."""
        x = self.embed(video)
        yield x
        for layer in self.layers:
            x = layer(x)
            yield x

    def losses(self, video: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """Every stage's masked-reconstruction loss on `video` under `mask` (True = hidden), on all hidden tubelets."""
        return self.run_plan(video, mask, evaluation_plan(self.num_stages), decoder_masking=False)

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
                 decoder_masking: bool | None = None, draws: Callable[[int, int, float], torch.Tensor] | None = None,
                 start: int = 0, inputs: torch.Tensor | None = None,
                 after_stage: Callable[[int, torch.Tensor], None] | None = None,
                 ) -> list[torch.Tensor | None]:
        """Per-stage losses under `plan` (None for stages that compute none).

        With `backward`, a loss whose graph ends inside its own stage (detached input, or a
        monitor decoder) is backpropagated as soon as it exists, so at most one stage's graph
        is alive (the memory-lean step); such losses come back detached.

        `start` > 0 begins at that stage with `inputs` (stage start-1's output, computed elsewhere: the
        pipeline trainer). `after_stage(k, output)` sees the output of each stage that computed a loss.
        Decoder masking (`model.decoder.mask_ratio` > 0) applies by default only in training mode; `draws` as in
        `stage_loss`. Without `backward`, every decoder's input exists before any loss is needed: the decoders then
        run after the stages, those of one shape as one batched computation (`grouped_decoders`; model/grouped.py).
        """
        if (start > 0) != (inputs is not None):
            raise ValueError("run_plan: give `inputs` exactly when starting after the first stage")
        stages = plan.stages
        # No loss reaching the encoder (fitting monitors): the encoder needs no graph at all.
        encoder_grad = any(stages[k].encoder_loss and not stages[k].frozen for k in range(start, plan.active))
        with torch.no_grad() if stages[0].frozen or not encoder_grad else nullcontext():
            x, batch = self.masked_batch(video, mask, embed=start == 0)
        if decoder_masking is None:
            decoder_masking = self.training
        losses: list[torch.Tensor | None] = [None] * self.num_stages
        x = x if inputs is None else inputs
        tapped = None  # overlapping blocks: the tokens entering the previous stage's last `lead` layers
        deferred = []  # (k, features, hidden_idx, target) of the decoders that run after the stages
        defer = backward is None and self.grouped_decoders
        for k in range(start, plan.active):
            s, lead = stages[k], 0
            if k > 0 and s.detach:
                x, lead = (tapped.detach(), s.lead) if tapped is not None else (x.detach(), 0)
                if s.noise and self.training:  # noisy interfaces: relative to the input's RMS
                    x = x + s.noise * x.detach().square().mean().sqrt() * torch.randn_like(x)
            above = stages[k + 1] if k + 1 < plan.active else None
            tap = above.lead if above is not None and above.detach else 0
            if s.frozen:  # runs without grad, computes no loss and hands up no tap
                with torch.no_grad():
                    x, tapped = self.run_layers(x, self.stage_bounds(k)[0] - lead, self.stage_bounds(k)[1]), None
                continue
            if not s.encoder_loss and not plan.monitors:  # a monitor's off step: the stage runs, its decoder not
                x, tapped = self.run_layers(x, self.stage_bounds(k)[0] - lead, self.stage_bounds(k)[1]), None
                continue
            ratio = self.decoder_mask_ratio[k] if decoder_masking else 0.0
            result = self.stage_loss(k, x, batch, monitor=not s.encoder_loss, decoder_mask_ratio=ratio,
                                     draws=draws, lead=lead, tap=tap, pool=s.pool, encoder_grad=encoder_grad,
                                     decode=not defer)
            x, loss, tapped = result.output, result.loss, result.tap
            if defer:
                deferred.append((k, *result.decoder_input))
                if after_stage is not None:
                    after_stage(k, x)
                continue
            # Backpropagate now where the loss's graph ends here: a monitor's, or a detached stage's that the
            # stage above does not continue.
            own_graph = s.detach and (above is None or above.detach)
            if backward is not None and loss.requires_grad and (own_graph or not s.encoder_loss):
                backward(k, loss)
                loss = loss.detach()
            losses[k] = loss
            if after_stage is not None:
                after_stage(k, x)
        for k, loss in decoder_losses(self.decoders, batch.visible_idx, deferred).items():
            losses[k] = loss
        return losses
