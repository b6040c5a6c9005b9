"""Category-specific (per-embodiment) layers: one weight slice per embodiment slot.

A `CategorySpecificLinear` holds W[E, in, out] and b[E, out]; sample i uses slice
`embodiment_id[i]`. This is how one shared DiT serves many robot bodies: only these small
encoders/decoders differ between embodiments. Key names (`W`, `b`, `layer1`, `layer2`, `W1..W3`)
match NVIDIA's GR00T checkpoints.
"""

from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F


class CategorySpecificLinear(nn.Module):
    """y = x @ W[e] + b[e] for each sample's embodiment e.

    x: [B, T, in] , embodiment_id: [B] long  ->  [B, T, out]
    """

    def __init__(self, num_categories: int, in_features: int, out_features: int):
        super().__init__()
        self.num_categories, self.in_features, self.out_features = num_categories, in_features, out_features
        # std 1/sqrt(in): ~0.02 at NVIDIA's width (1536), and keeps signal alive at tiny widths,
        # where a fixed 0.02 shrinks activations ~10x per layer and stalls training.
        self.W = nn.Parameter(torch.randn(num_categories, in_features, out_features) / math.sqrt(in_features))
        self.b = nn.Parameter(torch.zeros(num_categories, out_features))

    def forward(self, x: torch.Tensor, embodiment_id: torch.Tensor) -> torch.Tensor:
        W = self.W[embodiment_id]                  # [B, in, out] gathered slices
        b = self.b[embodiment_id].unsqueeze(1)     # [B, 1, out]
        return torch.bmm(x, W) + b

    def slice(self, embodiment_id: torch.Tensor, uniform: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """The weights one batch uses, gathered once (e.g. per chunk) for `apply_slice`.

        uniform=True (every sample has embodiment_id[0]): W [in, out], b [out] (one slot);
        else W [B, in, out], b [B, 1, out].
        """
        if uniform:  # index_select, not W[e[0]]: no host round trip for the index
            e0 = embodiment_id[:1]
            return self.W.index_select(0, e0)[0], self.b.index_select(0, e0)[0]
        return self.W[embodiment_id], self.b[embodiment_id].unsqueeze(1)

    def extra_repr(self) -> str:
        return f"num_categories={self.num_categories}, in={self.in_features}, out={self.out_features}"


def apply_slice(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """x [B, T, in] with a slice from `CategorySpecificLinear.slice` -> [B, T, out].
    A shared [in, out] slice runs as one matmul over all B*T rows instead of B small ones."""
    y = torch.matmul(x, W) if W.dim() == 2 else torch.bmm(x, W)
    return y if b is None else y + b


class CategorySpecificMLP(nn.Module):
    """layer2(ReLU(layer1(x))), both category specific. x: [B, T, in] -> [B, T, out]."""

    def __init__(self, num_categories: int, in_features: int, hidden: int, out_features: int):
        super().__init__()
        self.layer1 = CategorySpecificLinear(num_categories, in_features, hidden)
        self.layer2 = CategorySpecificLinear(num_categories, hidden, out_features)

    def forward(self, x: torch.Tensor, embodiment_id: torch.Tensor) -> torch.Tensor:
        return self.layer2(F.relu(self.layer1(x, embodiment_id)), embodiment_id)


def sinusoidal_code(timesteps: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal code of integer timesteps, sin half first (the action encoder's variant).

    timesteps: [B, T] (any numeric dtype) -> [B, T, dim]; frequencies exp(-k ln(10000) / (dim/2)).
    """
    half = dim // 2
    k = torch.arange(half, dtype=torch.float32, device=timesteps.device)
    freqs = torch.exp(-k * (math.log(10000.0) / half))
    angles = timesteps.float().unsqueeze(-1) * freqs
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


class MultiEmbodimentActionEncoder(nn.Module):
    """Noisy action chunk + flow timestep -> action tokens.

    a: [B, H, Dmax_a], timestep: [B] integer bucket (0..999), embodiment_id: [B] -> [B, H, w]
    out = W3(swish(W2(concat[W1(a), code(timestep)])))
    """

    def __init__(self, action_dim: int, width: int, num_embodiments: int):
        super().__init__()
        self.width = width
        self.W1 = CategorySpecificLinear(num_embodiments, action_dim, width)
        self.W2 = CategorySpecificLinear(num_embodiments, 2 * width, width)
        self.W3 = CategorySpecificLinear(num_embodiments, width, width)

    def forward(self, actions: torch.Tensor, timestep: torch.Tensor, embodiment_id: torch.Tensor) -> torch.Tensor:
        B, H, _ = actions.shape
        a_emb = self.W1(actions, embodiment_id)
        code = sinusoidal_code(timestep.view(B, 1).expand(B, H), self.width).to(a_emb.dtype)
        x = F.silu(self.W2(torch.cat([a_emb, code], dim=-1), embodiment_id))
        return self.W3(x, embodiment_id)
