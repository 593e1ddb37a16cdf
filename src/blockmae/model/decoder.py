"""VideoMAE's light decoder: visible features + learned mask tokens -> pixels of the hidden tubelets."""

from __future__ import annotations

import torch
from torch import nn

from .vit import Layer, sincos_positions


class Decoder(nn.Module):
    def __init__(self, in_dim: int, width: int, depth: int, heads: int, num_tokens: int, out_dim: int,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, eps: float = 1e-6, input_norm: bool = True):
        super().__init__()
        # VideoMAE's final encoder norm sits here, so every stage's decoder reads normalised features
        # while the encoder's own outputs stay raw (what `encode` returns).
        self.input_norm = nn.LayerNorm(in_dim, eps=eps) if input_norm else nn.Identity()
        self.proj = nn.Linear(in_dim, width, bias=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, width))
        self.layers = nn.ModuleList(Layer(width, heads, mlp_ratio, qkv_bias, eps) for _ in range(depth))
        self.norm = nn.LayerNorm(width, eps=eps)
        self.head = nn.Linear(width, out_dim)
        self.register_buffer("pos", sincos_positions(num_tokens, width), persistent=False)

    def forward(self, visible: torch.Tensor, visible_idx: torch.Tensor, hidden_idx: torch.Tensor) -> torch.Tensor:
        """visible (B, n_vis, in_dim) encoder features -> (B, n_hidden, out_dim) predictions.

        `hidden_idx` may be any subset of the hidden tokens (decoder masking): the decoder then
        sees the visible tokens plus mask tokens at those positions only, and predicts those.
        """
        x = self.proj(self.input_norm(visible))
        b, _, width = x.shape
        n_hidden = hidden_idx.shape[1]
        # One lookup of the positions of [visible, hidden] and one add (the same sums as adding them apart).
        pos = self.pos.to(x.dtype)[torch.cat([visible_idx, hidden_idx], dim=1)]
        x = torch.cat([x, self.mask_token.to(x.dtype).expand(b, n_hidden, width)], dim=1) + pos
        for i, layer in enumerate(self.layers):
            # only the hidden tokens' outputs of the top layer are read: compute only those
            x = layer(x, last=n_hidden if i == len(self.layers) - 1 else None)
        return self.head(self.norm(x[:, x.shape[1] - n_hidden:]))
