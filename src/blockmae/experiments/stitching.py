"""Model stitching at block boundaries (Lenc & Vedaldi 2015; Bansal et al. 2021): do the blocks of one run form
an interface the later blocks of another run can read?

At boundary k (1..K-1) the first k stages of run A feed the remaining stages and the top decoder of run B through
a trained affine stitch (`nn.Linear(D, D)` on every token, initialised to the identity); A and B stay frozen.
Only the stitch is trained, for a fixed budget (AdamW, lr 1e-3; tube or random masks from B's mask settings,
seeded), on B's top decoder's masked-reconstruction loss. It is then scored on held-out clips under the fixed
masks of `eval.reconstruction` (the stitched top loss beside B's own, `held_out_losses`) and by the final-block
linear probe on pooled features with the analysis protocol (`eval.protocols.split_plan`, `eval.probe_unit`)
beside B's own. The stitch is trained on the fit split (train) where the data has one, else on the one set (it
never sees labels). What the rows say about interfaces is `report.stitching_finding`.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..analysis.extraction import WithIndex, clip_groups, dataset_name, dataset_splits, indexed_batches
from ..analysis.rows import make_row
from ..analysis.sources import describe
from ..data import SkipCorrupt, build_dataset, collate
from ..data.batches import model_batches
from ..data.transforms import to_model_input
from ..devices import resolve_device
from ..eval import probe_unit, split_plan
from ..eval.features import Features, extract_features
from ..eval.reconstruction import held_out_losses
from ..model.objective import reconstruction_loss

STEPS = 100
LR = 1e-3
# what must agree for A's tokens to enter B: token width, clip shape, tokenisation, input normalisation, targets
SHARED = ("width", "frames", "image_size", "channels", "tubelet", "patch", "pixel_mean", "pixel_std", "norm_pix",
          "partition")


def identity_stitch(width: int) -> nn.Linear:
    stitch = nn.Linear(width, width)
    with torch.no_grad():
        stitch.weight.copy_(torch.eye(width))
        stitch.bias.zero_()
    return stitch


def check_stitchable(a, b, k: int | None = None, names: tuple[str, str] = ("A", "B")) -> None:
    """A ValueError naming what differs if A's first k stages cannot feed B's remaining ones (or, with k None,
    if no boundary can join them)."""
    for key in SHARED:
        va, vb = getattr(a.cfg, key), getattr(b.cfg, key)
        if (list(va) if isinstance(va, (list, tuple)) else va) != (list(vb) if isinstance(vb, (list, tuple)) else vb):
            raise ValueError(f"cannot stitch {names[0]} into {names[1]}: model.{key} differs ({va} vs {vb}); "
                             "stitching needs the same stages, token width and clip shape")
    if b.num_stages < 2:
        raise ValueError(f"{names[1]} has one stage: there is no block boundary to stitch at")
    if k is not None and not 1 <= k < b.num_stages:
        raise ValueError(f"boundary {k} does not exist: the models have {b.num_stages} stages, so boundaries "
                         f"1..{b.num_stages - 1}")


class Stitched(nn.Module):
    """A's embedding and first k stages, the stitch, then B's stages k+1..K and B's top decoder."""

    def __init__(self, a, b, k: int, stitch: nn.Module | None = None):
        super().__init__()
        check_stitchable(a, b, k)
        self.A, self.B, self.k = a, b, k
        self.cut = a.stage_bounds(k - 1)[1]  # the first layer B runs
        device = next(a.parameters()).device
        self.stitch = stitch if stitch is not None else identity_stitch(a.cfg.width).to(device)
        self.cfg = b.cfg  # what preparing input reads (A and B share the clip shape and normalisation)
        self.partition = list(b.partition)

    @property
    def num_stages(self) -> int:
        return self.B.num_stages

    def encode(self, video: torch.Tensor, at: str = "blocks") -> list[torch.Tensor]:
        """Unmasked tokens after every stage (`blocks`) or layer (`layers`): A's up to the boundary (before the
        stitch), B's after it, as `BlockMAE.encode`."""
        if at not in ("blocks", "layers"):
            raise ValueError(f"at='{at}' must be 'blocks' or 'layers'")
        ends = {self.B.stage_bounds(j)[1] for j in range(self.num_stages)}
        states = self.token_states(video)
        next(states)  # the embedding
        return [x for i, x in enumerate(states, start=1) if at == "layers" or i in ends]

    def token_states(self, video: torch.Tensor) -> Iterator[torch.Tensor]:
        """A's embedding, then every layer's output one at a time (before the stitch at the boundary), as
        `BlockMAE.token_states`."""
        x = self.A.embed(video)
        yield x
        for i in range(len(self.B.layers)):
            if i == self.cut:
                x = self.stitch(x)
            x = (self.A if i < self.cut else self.B).layers[i](x)
            yield x

    def targets(self, video: torch.Tensor) -> torch.Tensor:
        return self.B.targets(video)

    def make_mask(self, batch: int, generator: torch.Generator, kind: str, ratio: float) -> torch.Tensor:
        return self.B.make_mask(batch, generator, kind, ratio)

    def losses(self, video: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """As `BlockMAE.losses`, for the one decoder the stitched model has: B's top one (the held-out scorer,
        `eval.reconstruction.held_out_losses`, reads it)."""
        return [self.top_loss(video, mask)]

    def top_loss(self, video: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """B's top decoder's masked-reconstruction loss (every hidden tubelet) on the stitched encoder's visible
        tokens; `mask` (B, N) bool, True = hidden."""
        _, batch = self.B.masked_batch(video, mask, embed=False)
        x = self.A.embed.tokens_at(self.A.embed.tubelets(video), batch.visible_idx)
        x = self.stitch(self.A.run_layers(x, 0, self.cut))
        x = self.B.run_layers(x, self.cut, len(self.B.layers))
        return reconstruction_loss(self.B.decoders[-1](x, batch.visible_idx, batch.hidden_idx), batch.target)


@contextmanager
def frozen(*models: nn.Module):
    """The models in eval mode with no parameter requiring grad; both restored after."""
    params = [(p, p.requires_grad) for m in models for p in m.parameters()]
    modes = [(m, m.training) for m in models]
    for p, _ in params:
        p.requires_grad_(False)
    for m, _ in modes:
        m.eval()
    try:
        yield
    finally:
        for p, flag in reversed(params):
            p.requires_grad_(flag)
        for m, mode in reversed(modes):
            m.train(mode)


def train_stitch(a, b, k: int, clips_fn: Callable[[], Iterable[torch.Tensor]], steps: int = STEPS, seed: int = 0,
                 *, kind: str = "tube", ratio: float = 0.9, lr: float = LR) -> tuple[Stitched, list[float]]:
    """An identity-initialised stitch at boundary k trained for `steps` steps; A and B are left untouched.

    `clips_fn()` yields model-input batches (B, C, T, H, W) and is called again whenever it runs out. Masks
    (`kind`, `ratio`) come from a generator seeded with `seed`. Returns the stitched model and each step's loss.
    """
    stitched = Stitched(a, b, k)
    stitched.stitch.train()
    generator = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(stitched.stitch.parameters(), lr=lr)
    history: list[float] = []
    batches: Iterable[torch.Tensor] = iter(())
    with frozen(a, b):
        for _ in range(steps):
            video = next(batches, None)
            if video is None:
                batches = iter(clips_fn())
                video = next(batches, None)
                if video is None:
                    raise ValueError("train_stitch: clips_fn() yielded no clips")
            loss = stitched.top_loss(video, b.make_mask(video.shape[0], generator, kind, ratio))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            history.append(loss.item())
    stitched.eval()
    return stitched, history


class Clips:
    """One split of a data spec at the models' clip shape, as the analysis reads it (an unreadable clip is left
    out, never replaced)."""

    def __init__(self, spec: str, split: str, cfg, batch_size: int, device: torch.device):
        self.dataset = SkipCorrupt(WithIndex(build_dataset(spec, split, frames=cfg.frames, image_size=cfg.image_size,
                                                           channels=cfg.channels, seed=0)), replace=False)
        self.cfg, self.device = cfg, device
        self.batch = max(1, min(batch_size, len(self.dataset)))

    def prepare(self, clips: torch.Tensor) -> torch.Tensor:
        return to_model_input(clips.to(self.device), self.cfg.pixel_mean, self.cfg.pixel_std)

    def videos(self, limit: int | None = None, generator: torch.Generator | None = None) -> Iterable[torch.Tensor]:
        """Full batches of model input: the first `limit` clips in order, or (with `generator`) all, shuffled."""
        n = len(self.dataset) if limit is None else min(limit, len(self.dataset))
        order = torch.randperm(n, generator=generator).tolist() if generator is not None else range(n)
        return model_batches(self.dataset, order, self.batch, self.device, self.cfg.pixel_mean, self.cfg.pixel_std)

    def features(self, model) -> Features:
        """Pooled features of every layer (eval mode, no gradient; `eval.features`)."""
        loader = DataLoader(self.dataset, batch_size=self.batch, collate_fn=collate)
        indices: list[np.ndarray] = []
        feats = extract_features(model, indexed_batches(loader, [], indices), self.prepare,
                                 self.dataset.target_names, token_stats=False, progress=False)
        feats.groups = clip_groups(self.dataset, indices)  # single-set probes keep a video on one side of a fold
        return feats


def final_probe(test: Features, train: Features | None) -> float | None:
    """Mean over targets of the final-block linear probe, as `analyze` fits it (None: unlabelled data)."""
    if not test.labels.shape[1]:
        return None
    return probe_unit(test, train, lambda f: f.layers[-1])["mean"]


def masks_of(source) -> tuple[str, float]:
    """The run's own mask settings (kind, ratio), as its held-out loss uses them."""
    mask = source.config.get("mask", {})
    return mask.get("kind", "tube"), mask.get("ratio", 0.9)


def held_out_top(model, clips: Clips, limit: int, kind: str, ratio: float) -> float:
    """The top decoder's held-out loss on the first `limit` clips (`held_out_losses`: fixed masks per batch)."""
    return held_out_losses(model, lambda: clips.videos(limit), kind, ratio)["losses"][-1]


def own_loss_and_probe(model, source, test: Clips, train: Clips | None, recon_clips: int) -> tuple[float, float | None]:
    """A model's held-out top-decoder loss (under its run's masks) and final-block probe."""
    loss = held_out_top(model, test, recon_clips, *masks_of(source))
    return loss, final_probe(test.features(model), train.features(model) if train else None)


def stitch_rows(paths: list[str], spec: str, *, steps: int = STEPS, boundaries: list[int] | None = None,
                batch_size: int = 32, recon_clips: int = 256, device: str = "auto", seed: int = 0,
                say: Callable[[str], None] = lambda _: None) -> list[dict]:
    """Tidy rows (`analysis.rows`) of stitching every ordered pair of these runs at every boundary (default
    1..K-1): `stitch_loss`, `stitch_loss_own`, `stitch_probe`, `stitch_probe_own`, with A in run/regime,
    B in `run2`/`regime2` and the boundary as `block`."""
    sources = [describe(p) for p in paths]  # every path checked before any work
    if len(sources) < 2:
        raise ValueError("stitching needs at least two runs")
    names = [s.run for s in sources]
    for i, s in enumerate(sources):  # two runs with the same directory name stay distinguishable
        if names.count(s.run) > 1:
            s.run = f"{s.run}-{i + 1}"
    dev = resolve_device(device, "--device")
    models = [s.model().to(dev).eval() for s in sources]
    boundaries = list(range(1, models[0].num_stages)) if boundaries is None else sorted(set(boundaries))
    for s, m in zip(sources[1:], models[1:]):
        for k in boundaries or [None]:
            check_stitchable(models[0], m, k, (sources[0].run, s.run))
    cfg, name = models[0].cfg, dataset_name(spec)
    plan = split_plan(dataset_splits(spec))
    test = Clips(spec, plan.evaluate, cfg, batch_size, dev)
    train = Clips(spec, plan.fit, cfg, batch_size, dev) if plan.fit else None
    fit = train or test

    def features(model) -> tuple[Features, Features | None]:
        return test.features(model), train.features(model) if train else None

    own = {s.run: own_loss_and_probe(m, s, test, train, recon_clips) for s, m in zip(sources, models)}
    rows: list[dict] = []
    for i, (sa, a) in enumerate(zip(sources, models)):
        for j, (sb, b) in enumerate(zip(sources, models)):
            if i == j:
                continue
            kind, ratio = masks_of(sb)
            for k in boundaries:
                say(f"stitch {sa.run} -> {sb.run} at boundary {k}: {steps} steps")
                order = torch.Generator().manual_seed(seed)  # the same clips in the same order for every pair
                stitched, _ = train_stitch(a, b, k, lambda: fit.videos(generator=order), steps, seed, kind=kind,
                                           ratio=ratio)
                values = {"stitch_loss": held_out_top(stitched, test, recon_clips, kind, ratio),
                          "stitch_loss_own": own[sb.run][0],
                          "stitch_probe": final_probe(*features(stitched)), "stitch_probe_own": own[sb.run][1]}
                rows += [make_row(sa.meta(), name, plan.row_split, metric, value, block=k, run2=sb.run,
                                  regime2=sb.regime) for metric, value in values.items() if value is not None]
    return rows

