"""Several stages' decoders of one shape as one batched computation.

The standard (not memory-lean) step has every stage's decoder input at once. Decoders whose parameters have the
same shapes (width, depth, heads, MLP) and whose inputs have the same shapes (the same decoder-masking share) then
run as one: each linear of each layer is one batched matmul over the G decoders' weights, stacked at call time
(`torch.stack`, so the parameters, their names and the checkpoints stay per stage), and attention is one call over
G*B clips. The same sums as G separate `Decoder` calls, to float rounding (tests/model/test_grouped_decoders.py);
`model.decoder.grouped` switches it, docs/performance.md measures it. Backpropagating one stage's loss alone gives
the other decoders of its group (and their stages) zero gradients, not None; the step backpropagates their sum.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .decoder import Decoder
from .objective import reconstruction_loss


def shape_key(decoder: Decoder) -> tuple:
    """Equal for two decoders exactly when one batched computation can run both."""
    heads = decoder.layers[0].attn.heads if len(decoder.layers) else 0
    eps = tuple(m.eps for m in decoder.modules() if isinstance(m, nn.LayerNorm))
    return tuple((name, tuple(p.shape)) for name, p in decoder.named_parameters()) + (heads, eps)


def _stack(modules: list[nn.Module], get: Callable[[nn.Module], torch.Tensor]) -> torch.Tensor:
    return torch.stack([get(m) for m in modules])


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x (G, ..., in) through G stacked linears, weight (G, out, in), bias (G, out) or None -> (G, ..., out)."""
    g, *rest, dim = x.shape
    x = x.reshape(g, -1, dim)
    y = torch.bmm(x, weight.transpose(1, 2)) if bias is None else torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))
    return y.view(g, *rest, weight.shape[1])


def _linears(x: torch.Tensor, modules: list[nn.Linear]) -> torch.Tensor:
    bias = _stack(modules, lambda m: m.bias) if modules[0].bias is not None else None
    return _linear(x, _stack(modules, lambda m: m.weight), bias)


def _norms(x: torch.Tensor, modules: list[nn.Module]) -> torch.Tensor:
    """G LayerNorms (or Identities) on x (G, ..., D)."""
    if not isinstance(modules[0], nn.LayerNorm):
        return x
    shape = (len(modules),) + (1,) * (x.ndim - 2) + (x.shape[-1],)
    y = F.layer_norm(x, x.shape[-1:], eps=modules[0].eps)
    return torch.addcmul(_stack(modules, lambda m: m.bias).view(shape), y, _stack(modules, lambda m: m.weight).view(shape))


def _attention(x: torch.Tensor, attns: list[nn.Module], last: int | None) -> torch.Tensor:
    """`vit.Attention` of G decoders on x (G, B, n, d): (G, B, n or last, d)."""
    g, b, n, d = x.shape
    heads = attns[0].heads
    weight = _stack(attns, lambda a: a.qkv.weight)
    bias = (_stack(attns, lambda a: torch.cat([a.q_bias, torch.zeros_like(a.q_bias), a.v_bias]))
            if attns[0].q_bias is not None else None)
    if last is None:
        q, k, v = _linear(x, weight, bias).view(g * b, n, 3, heads, d // heads).permute(2, 0, 3, 1, 4).unbind(0)
    else:
        w_q, w_kv = weight.split([d, 2 * d], dim=1)
        b_q, b_kv = bias.split([d, 2 * d], dim=1) if bias is not None else (None, None)
        q = _linear(x[:, :, n - last:], w_q, b_q).view(g * b, last, heads, d // heads).transpose(1, 2)
        k, v = _linear(x, w_kv, b_kv).view(g * b, n, 2, heads, d // heads).permute(2, 0, 3, 1, 4).unbind(0)
    out = F.scaled_dot_product_attention(q, k, v)  # attention over G*B clips at once
    out = out.transpose(1, 2).reshape(g, b, q.shape[2], d)
    return _linears(out, [a.proj for a in attns])


def grouped_forward(decoders: list[Decoder], features: list[torch.Tensor], visible_idx: torch.Tensor,
                    hidden: list[torch.Tensor]) -> list[torch.Tensor]:
    """What `[dec(f, visible_idx, h) for dec, f, h in zip(decoders, features, hidden)]` gives, as one computation;
    the decoders share `shape_key`, the features one shape and the hidden indices (B, n_hidden) one shape."""
    g = len(decoders)
    x = _linears(_norms(torch.stack(features), [d.input_norm for d in decoders]), [d.proj for d in decoders])
    _, b, _, width = x.shape
    hidden_idx = torch.stack(hidden)
    n_hidden = hidden_idx.shape[2]
    pos = decoders[0].pos.to(x.dtype)[torch.cat([visible_idx.expand(g, *visible_idx.shape), hidden_idx], dim=2)]
    tokens = _stack(decoders, lambda d: d.mask_token).to(x.dtype).view(g, 1, 1, width).expand(g, b, n_hidden, width)
    x = torch.cat([x, tokens], dim=2) + pos
    depth = len(decoders[0].layers)
    for i in range(depth):
        layers = [d.layers[i] for d in decoders]
        last = n_hidden if i == depth - 1 else None  # the top layer: only the hidden tokens' outputs are read
        y = _attention(_norms(x, [la.norm1 for la in layers]), [la.attn for la in layers], last)
        x = (x if last is None else x[:, :, x.shape[2] - last:]) + y
        h = F.gelu(_linears(_norms(x, [la.norm2 for la in layers]), [la.mlp.fc1 for la in layers]))
        x = x + _linears(h, [la.mlp.fc2 for la in layers])
    x = x[:, :, x.shape[2] - n_hidden:]
    return list(_linears(_norms(x, [d.norm for d in decoders]), [d.head for d in decoders]).unbind(0))


def decoder_losses(decoders: nn.ModuleList, visible_idx: torch.Tensor,
                   items: list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]],
                   grouped: bool = True) -> dict[int, torch.Tensor]:
    """Stage k's masked-reconstruction loss for each (k, features, hidden_idx, target) in `items`: the decoders
    whose shapes agree run as one (`grouped_forward`), the others (or all, without `grouped`) one by one."""
    groups: dict[tuple, list] = {}
    for item in items:
        k, features, hidden, target = item
        key = (shape_key(decoders[k]), tuple(features.shape), tuple(hidden.shape), features.dtype) if grouped else k
        groups.setdefault(key, []).append(item)
    losses = {}
    for members in groups.values():
        if len(members) == 1:
            k, features, hidden, target = members[0]
            preds = [decoders[k](features, visible_idx, hidden)]
        else:
            preds = grouped_forward([decoders[m[0]] for m in members], [m[1] for m in members], visible_idx,
                                    [m[2] for m in members])
        for (k, _, _, target), pred in zip(members, preds):
            losses[k] = reconstruction_loss(pred, target)
    return losses
