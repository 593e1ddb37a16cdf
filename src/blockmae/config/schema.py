"""The config's shape: every section and key with its default, the model-size presets, and the keys a
resumed run may change."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..regimes import DEFAULT

# width, depth, heads, and the VideoMAE decoder that goes with each size.
PRESETS = {
    "vit-tiny": dict(width=192, depth=12, heads=3, decoder_width=96, decoder_heads=3),
    "vit-small": dict(width=384, depth=12, heads=6, decoder_width=192, decoder_heads=3),
    "vit-base": dict(width=768, depth=12, heads=12, decoder_width=384, decoder_heads=6),
    "vit-large": dict(width=1024, depth=24, heads=16, decoder_width=512, decoder_heads=8),
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class DecoderConfig:
    # An int applies to every stage's decoder; a list gives one value per stage.
    depth: int | list[int] = 4
    width: int | list[int] | None = None  # None: the preset's decoder width
    heads: int | list[int] | None = None  # None: the preset's decoder heads
    mlp_ratio: float = 4.0
    # LayerNorm on the encoder features a decoder reads (VideoMAE's final encoder norm).
    input_norm: bool = True
    # Decoder masking (VideoMAE v2's dual masking): during training each decoder reconstructs a
    # random subset of the hidden tubelets, skipping this share of them (and their mask tokens).
    # 0: every hidden tubelet (VideoMAE). A list gives one value per stage. Evaluation uses all.
    # None: the regime's default (`decoder_mask_default`): 0.5 where every stage's decoder trains at once
    # (simultaneous K=4 1.4-1.5x E2E's step instead of 2.1x, probes within 1 pp; docs/performance.md), else 0.
    mask_ratio: float | list[float] | None = None
    # true: the standard (not memory-lean) step runs the decoders whose shapes agree as one batched computation
    # (stacked weights, one batched matmul per linear, attention over K*B clips): the same numbers to float rounding,
    # the parameters still per stage (model/grouped.py). Off by default: on CPU it measured no faster
    # (docs/performance.md); not yet measured on a GPU, where K small kernels become one.
    grouped: bool = False


@dataclass
class ModelConfig:
    size: str = "vit-tiny"
    width: int | None = None  # None: from `size`
    depth: int | None = None
    heads: int | None = None
    mlp_ratio: float = 4.0
    frames: int = 16
    image_size: int = 112
    tubelet: int = 2
    patch: int = 16
    channels: int = 3
    # An int K splits the depth into K equal stages; a list gives each stage's layer count.
    # A loaded config always holds the list (resolved once, in `resolve`).
    partition: int | list[int] = 1
    qkv_bias: bool = True  # VideoMAE: learned query and value biases, no key bias
    # Target: per-tubelet, per-channel normalised pixels (VideoMAE); false: raw [0, 1] pixels.
    norm_pix: bool = True
    norm_eps: float = 1e-6
    # LayerScale on the encoder's layers: per-channel gains on each branch, starting at this value (official
    # VideoMAE's init_values); 0: none, as Hugging Face's VideoMAE. Exports fold the gains into the weights.
    layer_scale: float = 0.0
    # How input clips are normalised; the objective undoes it to build pixel targets.
    pixel_mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    pixel_std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    decoder: DecoderConfig = field(default_factory=DecoderConfig)


@dataclass
class MaskConfig:
    kind: str = "tube"  # tube | random
    ratio: float = 0.9


@dataclass
class DataConfig:
    train: str = "digits"
    test: str | None = None  # held-out spec for the end-of-run per-stage loss; None: train spec, test split
    num_workers: int = 0
    strict: bool = False  # True: a sample that fails to load is an error instead of being skipped


@dataclass
class TrainConfig:
    regime: str = DEFAULT  # a name in the regime table (blockmae.regimes.REGIMES)
    # The chosen regime's settings (its `Regime.settings`: names, defaults and ranges live in its table entry),
    # e.g. {overlap: 2}; a loaded config holds that dataclass, every default filled in (config/settings.py). Names
    # only other regimes declare are dropped, so a study's overrides may set several regimes' settings across a
    # grid of regimes. Older configs' train.overlap, train.phase_split, ... are read as these (config/legacy.py).
    regime_settings: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 32
    max_steps: int | None = None  # None: derived from `epochs`
    epochs: int | None = None
    lr: float = 1.5e-4  # base LR for a batch of 256; the effective LR scales with the batch
    min_lr: float = 1e-6
    warmup_steps: int | None = None  # None: 5% of the steps (of each phase when sequential)
    weight_decay: float = 0.05
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    grad_clip: float | None = None
    accum_steps: int = 1
    # Backward each stage right after its forward, so only one stage's graph is alive.
    memory_lean: bool = True
    # Monitor decoders (E2E's per-stage decoders, whose losses do not reach the encoder) train and log only every
    # monitor_every-th step (0: never during training): they cost most of E2E's step on small models, and never
    # change the encoder.
    monitor_every: int = 1
    # Regimes that fit monitors (`Regime.fits_monitors`: E2E): after max_steps, this many steps fit the monitors on
    # the frozen final encoder (each starts from the top decoder's weights if monitor_every=0), so the per-stage
    # losses cost a fraction of always-on monitors.
    monitor_fit_steps: int = 0
    # Weights to start from (a run directory or one of its checkpoints): a fresh optimiser at step 0, unlike resuming.
    init_from: str | None = None
    # Weight of each stage's loss; None: all 1.
    loss_weights: list[float] | None = None
    seed: int = 0
    amp: str = "none"  # none | bf16
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    log_every: int = 10
    checkpoint_every: int = 500
    keep_last: int = 2
    snapshot_every: int | None = None  # permanent checkpoints for learning-dynamics analysis
    tensorboard: bool = False
    progress: bool = True
    # torch.compile each encoder layer and decoder (BlockMAE.compile_layers); false: eager.
    compile: bool = False


@dataclass
class DistConfig:
    # Under torchrun (docs/distributed.md). none: one process. ddp: data parallel, train.batch_size is the
    # global batch, split across ranks. pipeline: stage k on rank k (simultaneous regime, K ranks).
    mode: str = "none"  # none | ddp | pipeline
    backend: str = "auto"  # auto (nccl on GPU, gloo on CPU) | nccl | gloo


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    mask: MaskConfig = field(default_factory=MaskConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    dist: DistConfig = field(default_factory=DistConfig)


# Keys that may change when a run resumes (they do not change what is learned).
RESUMABLE_KEYS = {
    "train.max_steps", "train.epochs", "train.log_every", "train.checkpoint_every",
    "train.keep_last", "train.snapshot_every", "train.tensorboard", "train.progress",
    "train.device", "train.compile", "data.num_workers", "data.test", "data.strict",
    "dist.mode", "dist.backend",  # every mode learns what one process learns (to float rounding)
    "model.decoder.grouped",  # the same sums, batched or one by one
    "train.monitor_fit_steps",  # fitting E2E's monitors after training changes nothing trained before it
}
