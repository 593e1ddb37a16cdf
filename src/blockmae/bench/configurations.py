"""The rows of the throughput table: the core configurations (ours in every regime against Hugging Face) and
the levers that make simultaneous K=4 cheaper, and picking some of them by name."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace

from ..regimes import DEFAULT, REFERENCE, REGIMES, Regime
from .presets import Preset


@dataclass(frozen=True)
class Configuration:
    """One configuration (a row of the table)."""
    name: str
    impl: str = "ours"  # ours | hf
    task: str = "train"  # train | extract
    regime: str = REFERENCE
    K: int = 1
    lean: bool = True  # memory-lean step (backward per stage); the engine's default
    overrides: tuple[str, ...] = ()
    compile: bool = False
    optimizer: str = "engine"
    inference: bool = False
    group: str = "core"  # core | lever
    about: str = ""


FULL = "model.decoder.mask_ratio=0.0"  # the paper's decoders (simultaneous regimes default to 0.5)


def regime_row(regime: Regime) -> Configuration:
    """The row of a regime that has one (`Regime.bench`): K=4, memory-lean, its default settings."""
    settings = ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(regime.settings()).items() if v is not None)
    return Configuration(regime.bench, regime=regime.name, K=4,
                         about=f"{regime.label}, K=4" + (f" ({settings})" if settings else "")
                         + (", mean over the 4 phases" if regime.phased else ""))


def configurations(preset: Preset) -> list[Configuration]:
    rows = [
        Configuration("hf", impl="hf", about="Hugging Face VideoMAEForPreTraining (baseline)"),
        Configuration("e2e", about="ours, E2E, one decoder: the same model as the baseline"),
        Configuration("e2e-K4-monitors", K=4, about="ours, E2E with 4 stage decoders as monitors (the paper's E2E)"),
        Configuration("e2e-K4-monitors-every4", K=4, overrides=("train.monitor_every=4",),
                      about="ours, E2E with the monitors trained every 4th step (train.monitor_every=4)"),
        Configuration("e2e-K4-fitted-monitors", K=4,
                      overrides=("train.monitor_every=0", "train.monitor_fit_steps=60", "train.max_steps=600"),
                      about="ours, E2E with the monitors fitted after training: 60 fitting steps per 600 training "
                            "steps (train.monitor_every=0, train.monitor_fit_steps=60)"),
        Configuration("sim-K4", regime=DEFAULT, K=4, lean=False,
                      about="simultaneous K=4, all graphs alive (default decoder masking 0.5)"),
        Configuration("sim-K4-lean", regime=DEFAULT, K=4,
                      about="simultaneous K=4, memory-lean (the defaults: memory-lean, decoder masking 0.5)"),
        # the reference for the default's decoder masking, not a lever
        Configuration("sim-K4-lean-dmask0", regime=DEFAULT, K=4, overrides=(FULL,),
                      about="no decoder masking: every decoder reconstructs every hidden tubelet (the paper's decoders)"),
        Configuration("sim-K6", regime=DEFAULT, K=6, lean=False, about="simultaneous K=6, all graphs alive"),
        Configuration("sim-K6-lean", regime=DEFAULT, K=6, about="simultaneous K=6, memory-lean (default)"),
        *(regime_row(r) for r in REGIMES.values() if r.bench),
        Configuration("extract-hf", impl="hf", task="extract", about="Hugging Face hidden states, all layers, no_grad"),
        Configuration("extract", task="extract", about="ours encode(at='layers'), no_grad (as eval/features.py)"),
        Configuration("extract-inference", task="extract", inference=True, about="ours, torch.inference_mode"),
    ]
    lean4 = Configuration("", regime=DEFAULT, K=4, group="lever")
    levers = [
        replace(lean4, name="hf-adamw-unfused", impl="hf", regime=REFERENCE, K=1, optimizer="unfused",
                about="Hugging Face with PyTorch's default AdamW (no fused kernel), as `torch.optim.AdamW(...)` gives"),
        replace(lean4, name="e2e-adamw-unfused", regime=REFERENCE, K=1, optimizer="unfused",
                about="ours E2E with PyTorch's default AdamW (the engine uses the fused kernel)"),
        replace(lean4, name="e2e-compile", regime=REFERENCE, K=1, compile=True, about="E2E, torch.compile per layer"),
        replace(lean4, name="sim-K4-lean-compile", compile=True, about="torch.compile per layer/decoder"),
        replace(lean4, name="sim-K4-lean-dmask0.75", overrides=("model.decoder.mask_ratio=0.75",),
                about="decoder masking: 25% of the hidden tubelets"),
        replace(lean4, name="sim-K4-lean-narrow", overrides=(FULL,) + preset.narrow,
                about="narrower decoders, no decoder masking: " + " ".join(preset.narrow)),
    ]
    if preset.shallow:
        levers.append(replace(lean4, name="sim-K4-lean-shallow", overrides=(FULL,) + preset.shallow,
                              about="shallower lower-stage decoders, no decoder masking: " + " ".join(preset.shallow)))
    levers.append(replace(lean4, name="sim-K4-lean-dmask0.5-narrow",
                          overrides=("model.decoder.mask_ratio=0.5",) + preset.narrow,
                          about="decoder masking 0.5 and narrower decoders"))
    if preset.light_lower:
        levers.append(replace(lean4, name="sim-K4-lean-light-lower", overrides=preset.light_lower,
                              about="light lower-stage decoders: " + " ".join(preset.light_lower)))
    if preset.light_lower_masked:
        levers.append(replace(lean4, name="sim-K4-lean-light-lower-dmask0.75", overrides=preset.light_lower_masked,
                              about="light lower-stage decoders, a quarter of the hidden tubelets: "
                                    + " ".join(preset.light_lower_masked)))
    return rows + levers


def select(rows: list[Configuration], names: str | None) -> list[Configuration]:
    """The rows `names` asks for (comma-separated names, `core`, `levers`; None or `all`: every row)."""
    if not names or names == "all":
        return rows
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    known = {r.name for r in rows} | {"core", "levers"}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise SystemExit(f"unknown configuration(s) {', '.join(unknown)}; choose from core, levers, "
                         + ", ".join(r.name for r in rows))
    return [r for r in rows if r.name in wanted or (r.group == "core" and "core" in wanted)
            or (r.group == "lever" and "levers" in wanted)]
