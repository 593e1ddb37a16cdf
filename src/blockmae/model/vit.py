"""VideoMAE's ViT pieces: tubelet embedding, fixed sine-cosine positions, pre-norm layers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .masking import gather_tokens
from .objective import kernel_tubelets


def sincos_positions(num_tokens: int, dim: int) -> torch.Tensor:
    """VideoMAE's 1-D sinusoid table over the flattened (t, h, w) token index: (num_tokens, dim).

    Even channels hold sin(pos / 10000^(2i/dim)), odd channels the cos of the same angle.
    Computed in float64 and rounded once, as the reference does.
    """
    pos = torch.arange(num_tokens, dtype=torch.float64)[:, None]
    exponent = 2 * (torch.arange(dim) // 2) / dim
    angles = pos / torch.pow(torch.tensor(10000.0, dtype=torch.float64), exponent)
    table = torch.empty_like(angles)
    table[:, 0::2] = torch.sin(angles[:, 0::2])
    table[:, 1::2] = torch.cos(angles[:, 1::2])
    return table.float()


class TubeletEmbed(nn.Module):
    """(B, C, T, H, W) clip -> (B, N, D) tokens: a Conv3d over t x p x p tubelets plus positions."""

    def __init__(self, channels: int, width: int, frames: int, image_size: int, tubelet: int, patch: int):
        super().__init__()
        self.grid = (frames // tubelet, image_size // patch, image_size // patch)
        self.expected = (channels, frames, image_size, image_size)
        self.proj = nn.Conv3d(channels, width, kernel_size=(tubelet, patch, patch), stride=(tubelet, patch, patch))
        num_tokens = self.grid[0] * self.grid[1] * self.grid[2]
        self.register_buffer("pos", sincos_positions(num_tokens, width), persistent=False)

    @property
    def num_tokens(self) -> int:
        return self.pos.shape[0]

    def check(self, video: torch.Tensor) -> None:
        if video.ndim != 5 or tuple(video.shape[1:]) != self.expected:
            raise ValueError(
                f"video has shape {tuple(video.shape)}, expected (B, C, T, H, W) = (B, {', '.join(map(str, self.expected))})"
                " from model.channels/frames/image_size")

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """Every token of the clip."""
        self.check(video)
        x = self.proj(video).flatten(2).transpose(1, 2) + self.pos.to(video.dtype)
        # The conv's output, transposed, is strided; so would be every layer's output after it (residual adds
        # keep the layout), each layer norm and matmul then copying it. One copy here instead.
        return x.contiguous()

    def tubelets(self, video: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, N, C*t*p*p): each token's tubelet, flattened in the Conv3d kernel's (C, t, p, p) order."""
        self.check(video)
        t, p, _ = self.proj.kernel_size
        return kernel_tubelets(video, t, p)

    def tokens_at(self, tubelets: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Only the tokens at `idx` (B, n), from `tubelets(video)`: what `forward` gives there, without
        embedding the other tokens (the Conv3d is the same linear map applied to each tubelet)."""
        weight = self.proj.weight.reshape(self.proj.weight.shape[0], -1)
        x = F.linear(gather_tokens(tubelets, idx), weight, self.proj.bias)
        return x + self.pos.to(x.dtype)[idx]


class Attention(nn.Module):
    """Multi-head self-attention with fused qkv; VideoMAE learns query and value biases, not key bias."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        if qkv_bias:
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
        else:
            self.q_bias = self.v_bias = None
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, last: int | None = None) -> torch.Tensor:
        """Self-attention over all tokens of x; with `last`, outputs only for the final `last` tokens
        (their queries attend to every token; the other queries are not computed)."""
        b, n, d = x.shape
        bias = None
        if self.q_bias is not None:
            bias = torch.cat([self.q_bias, torch.zeros_like(self.q_bias), self.v_bias])
        if last is None:
            qkv = F.linear(x, self.qkv.weight, bias).view(b, n, 3, self.heads, d // self.heads)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        else:
            w_q, w_kv = self.qkv.weight.split([d, 2 * d])
            b_q, b_kv = bias.split([d, 2 * d]) if bias is not None else (None, None)
            q = F.linear(x[:, n - last:], w_q, b_q).view(b, last, self.heads, d // self.heads).transpose(1, 2)
            k, v = F.linear(x, w_kv, b_kv).view(b, n, 2, self.heads, d // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, q.shape[2], d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Layer(nn.Module):
    """Pre-norm transformer layer: x + attn(norm(x)), then x + mlp(norm(x)).

    `layer_scale` > 0 adds LayerScale (CaiT; official VideoMAE's `init_values`): learned per-channel gains
    `gamma_1`, `gamma_2` on the two branches, starting at that value, so a deep stack starts close to the
    identity instead of each layer adding an O(1) branch.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True, eps: float = 1e-6,
                 layer_scale: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        if layer_scale > 0:
            self.gamma_1 = nn.Parameter(torch.full((dim,), float(layer_scale)))
            self.gamma_2 = nn.Parameter(torch.full((dim,), float(layer_scale)))
        else:
            self.gamma_1 = self.gamma_2 = None

    def forward(self, x: torch.Tensor, last: int | None = None) -> torch.Tensor:
        """With `last`, only the final `last` tokens' outputs (the same numbers, less work): for a
        decoder's top layer, whose other outputs are never read."""
        y = self.attn(self.norm1(x), last)
        if self.gamma_1 is not None:
            y = y * self.gamma_1
        x = (x if last is None else x[:, x.shape[1] - last:]) + y
        y = self.mlp(self.norm2(x))
        return x + (y if self.gamma_2 is None else y * self.gamma_2)


def init_weights(module: nn.Module) -> None:
    """VideoMAE's initialisation: Xavier-uniform linears (and the tubelet conv as a linear), zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv3d):
            nn.init.xavier_uniform_(m.weight.view(m.weight.shape[0], -1))
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
