"""How distinct the tokens stay through an untrained encoder, with and without LayerScale.

    python benchmarks/token_collapse.py [--config tiny-scenes] [--set KEY=VALUE ...] [--layer-scales 0 0.1] [--clips 64]

With Xavier-initialised branches every pre-norm layer adds an O(1) attention output that, with near-uniform
attention, is close to the same vector for every token of a clip; stacked, these shared parts crowd out what is
specific to each token (rank collapse). For each `model.layer_scale`, an untrained encoder (seed 0) runs the
visible tokens of `--clips` train clips under tube masks, and each layer's output, layer-normed, is split into its
clip mean and the rest: the token-specific share of the energy (1 = tokens share nothing; 0 = all tokens equal)
and the mean cosine similarity between tokens. A decoder that must tell hidden tubelets apart starts from what
the top layer keeps of that share.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout without installing

from blockmae.config import config_path, load_config  # noqa: E402
from blockmae.data.spec import build_dataset  # noqa: E402
from blockmae.data.transforms import to_model_input  # noqa: E402
from blockmae.model import BlockMAE  # noqa: E402

DEFAULT_SET = ["data.train=hierarchy,symbols=8,rules=4", "model.frames=2", "mask.ratio=0.75"]


def token_stats(tokens: torch.Tensor) -> tuple[float, float]:
    """(token-specific share of the energy, mean cosine between a clip's tokens) of (B, n, D) features."""
    z = F.layer_norm(tokens, tokens.shape[-1:])
    specific = z - z.mean(1, keepdim=True)
    share = (specific.square().sum(-1).mean() / z.square().sum(-1).mean()).item()
    cosine = F.cosine_similarity(z[:, :, None], z[:, None], dim=-1).mean().item()
    return share, cosine


def per_layer(config: str, overrides: list[str], clips: int) -> list[tuple[float, float]]:
    """Token stats of the embedding (index 0) and of every layer's output."""
    cfg = load_config(config_path(config), overrides)
    torch.manual_seed(0)
    model = BlockMAE(cfg.model).eval()
    data = build_dataset(cfg.data.train, "train", frames=cfg.model.frames, image_size=cfg.model.image_size,
                         channels=cfg.model.channels)
    raw = torch.stack([torch.as_tensor(data[i][0]) for i in range(clips)])
    video = to_model_input(raw, cfg.model.pixel_mean, cfg.model.pixel_std)
    mask = model.make_mask(clips, torch.Generator().manual_seed(0), cfg.mask.kind, cfg.mask.ratio)
    with torch.no_grad():
        x, _ = model.masked_batch(video, mask)
        out = [token_stats(x)]
        for layer in model.layers:
            x = layer(x)
            out.append(token_stats(x))
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="tiny-scenes")
    p.add_argument("--set", action="append", default=None, metavar="KEY=VALUE",
                   help=f"config overrides (default: {' '.join(DEFAULT_SET)})")
    p.add_argument("--layer-scales", type=float, nargs="+", default=[0.0, 0.1])
    p.add_argument("--clips", type=int, default=64)
    args = p.parse_args(argv)
    overrides = DEFAULT_SET if args.set is None else args.set
    results = {scale: per_layer(args.config, overrides + [f"model.layer_scale={scale}"], args.clips)
               for scale in args.layer_scales}
    print(f"{args.config} {' '.join(overrides)}, untrained (seed 0), {args.clips} clips: token-specific share "
          "(mean cosine between tokens)")
    print("layer  " + "  ".join(f"layer_scale={s:<12g}" for s in args.layer_scales))
    for i in range(len(next(iter(results.values())))):
        name = "embed" if i == 0 else str(i)
        print(f"{name:<6} " + "  ".join(f"{results[s][i][0]:.3f} ({results[s][i][1]:.3f})    " for s in args.layer_scales))
    return results


if __name__ == "__main__":
    main()
