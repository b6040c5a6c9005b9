"""The diffusion transformer (DiT) of System 1, with diffusers-compatible parameter names.

Block i (AdaLN-conditioned on the flow timestep):
    h = h + Attn(AdaLN(h, temb), context)     context = VL tokens for even i, h itself for odd i
    h = h + FF(LayerNorm_noaffine(h))         FF = Linear(4w) -> GELU(tanh) -> Linear(w)
Output: (shift, scale) = proj_out_1(SiLU(temb)); y = proj_out_2(LN(h) * (1 + scale) + shift).
"""

from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F


def timestep_sinusoid(timesteps: torch.Tensor, channels: int = 256) -> torch.Tensor:
    """diffusers `Timesteps(channels, flip_sin_to_cos=True, downscale_freq_shift=1)`.

    timesteps: [B] -> [B, channels] with the cosine half first.
    """
    half = channels // 2
    exponent = -math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / (half - 1)
    angles = timesteps.float()[:, None] * torch.exp(exponent)[None, :]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


class TimestepEmbedding(nn.Module):
    def __init__(self, in_channels: int, width: int):
        super().__init__()
        self.linear_1 = nn.Linear(in_channels, width)
        self.linear_2 = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.silu(self.linear_1(x)))


class TimestepEncoder(nn.Module):
    """Integer flow timestep [B] -> temb [B, w]."""

    def __init__(self, width: int, channels: int = 256):
        super().__init__()
        self.channels = channels
        self.timestep_embedder = TimestepEmbedding(channels, width)

    def forward(self, timestep: torch.Tensor) -> torch.Tensor:
        return self.timestep_embedder(timestep_sinusoid(timestep, self.channels).to(self.timestep_embedder.linear_1.weight.dtype))


class AdaLayerNorm(nn.Module):
    """LN_noaffine(x) * (1 + scale) + shift, with (scale, shift) = Linear(SiLU(temb)) in that order."""

    def __init__(self, width: int, eps: float = 1e-5):
        super().__init__()
        self.linear = nn.Linear(width, 2 * width)
        self.norm = nn.LayerNorm(width, eps=eps, elementwise_affine=False)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        scale, shift = self.linear(F.silu(temb)).chunk(2, dim=-1)
        return self.norm(x) * (1 + scale[:, None]) + shift[:, None]


class Attention(nn.Module):
    """Multi-head attention with biases (diffusers names: to_q, to_k, to_v, to_out.0).

    x: [B, N, w], context: [B, M, c] or None (self-attention), context_mask: [B, M] bool or None.
    """

    def __init__(self, query_dim: int, heads: int, head_dim: int, context_dim: int | None = None):
        super().__init__()
        inner = heads * head_dim
        self.heads, self.head_dim = heads, head_dim
        self.to_q = nn.Linear(query_dim, inner)
        self.to_k = nn.Linear(context_dim or query_dim, inner)
        self.to_v = nn.Linear(context_dim or query_dim, inner)
        self.to_out = nn.ModuleList([nn.Linear(inner, query_dim), nn.Dropout(0.0)])

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        B, N, _ = x.shape
        return x.view(B, N, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                context_mask: torch.Tensor | None = None, return_weights: bool = False):
        ctx = x if context is None else context
        q, k, v = self._split(self.to_q(x)), self._split(self.to_k(ctx)), self._split(self.to_v(ctx))
        mask = None if context_mask is None else context_mask[:, None, None, :].bool()
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        B, _, N, _ = out.shape
        out = self.to_out[0](out.transpose(1, 2).reshape(B, N, self.heads * self.head_dim))
        if return_weights:  # for teaching plots only; recomputed explicitly
            logits = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)
            if mask is not None:
                logits = logits.masked_fill(~mask, float("-inf"))
            return out, logits.softmax(-1)
        return out


class FeedForward(nn.Module):
    """diffusers FeedForward(activation_fn='gelu-approximate'): net.0.proj, net.2."""

    def __init__(self, width: int, mult: int = 4):
        super().__init__()
        self.net = nn.ModuleList([_GELUProj(width, mult * width), nn.Dropout(0.0), nn.Linear(mult * width, width)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            x = layer(x)
        return x


class _GELUProj(nn.Module):
    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.proj(x), approximate="tanh")


class DiTBlock(nn.Module):
    """One AdaLN DiT block; cross-attends when `context_dim` is given, else self-attends."""

    def __init__(self, width: int, heads: int, head_dim: int, context_dim: int | None):
        super().__init__()
        self.is_cross = context_dim is not None
        self.norm1 = AdaLayerNorm(width)
        self.attn1 = Attention(width, heads, head_dim, context_dim)
        self.norm3 = nn.LayerNorm(width, eps=1e-5, elementwise_affine=False)
        self.ff = FeedForward(width)

    def forward(self, h: torch.Tensor, temb: torch.Tensor, context: torch.Tensor | None,
                context_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.norm1(h, temb)
        h = h + (self.attn1(x, context, context_mask) if self.is_cross else self.attn1(x))
        return h + self.ff(self.norm3(h))


class DiT(nn.Module):
    """Interleaved cross/self-attention DiT.

    forward(h [B, N, w], context [B, L, c], timestep [B]) -> [B, N, out_dim]
    """

    def __init__(self, width: int, heads: int, head_dim: int, num_layers: int, context_dim: int, out_dim: int):
        super().__init__()
        self.timestep_encoder = TimestepEncoder(width)
        self.transformer_blocks = nn.ModuleList(
            DiTBlock(width, heads, head_dim, context_dim if i % 2 == 0 else None) for i in range(num_layers))
        self.norm_out = nn.LayerNorm(width, eps=1e-6, elementwise_affine=False)
        self.proj_out_1 = nn.Linear(width, 2 * width)
        self.proj_out_2 = nn.Linear(width, out_dim)

    def forward(self, h: torch.Tensor, context: torch.Tensor, timestep: torch.Tensor,
                context_mask: torch.Tensor | None = None) -> torch.Tensor:
        temb = self.timestep_encoder(timestep)
        for block in self.transformer_blocks:
            h = block(h, temb, context if block.is_cross else None, context_mask if block.is_cross else None)
        shift, scale = self.proj_out_1(F.silu(temb)).chunk(2, dim=-1)
        return self.proj_out_2(self.norm_out(h) * (1 + scale[:, None]) + shift[:, None])


class VLSelfAttentionBlock(nn.Module):
    """N1.5 VL self-attention block: pre-LN (affine) attention and FF, no timestep."""

    def __init__(self, width: int, heads: int, head_dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=1e-5)
        self.attn1 = Attention(width, heads, head_dim)
        self.norm3 = nn.LayerNorm(width, eps=1e-5)
        self.ff = FeedForward(width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = h + self.attn1(self.norm1(h))
        return h + self.ff(self.norm3(h))


class VLSelfAttention(nn.Module):
    """N1.5: a stack of self-attention blocks over the VL tokens. [B, L, c] -> [B, L, c]"""

    def __init__(self, width: int, heads: int, num_layers: int):
        super().__init__()
        self.transformer_blocks = nn.ModuleList(
            VLSelfAttentionBlock(width, heads, width // heads) for _ in range(num_layers))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for block in self.transformer_blocks:
            h = block(h)
        return h
