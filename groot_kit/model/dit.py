"""The diffusion transformer (DiT) of System 1, with diffusers-compatible parameter names.

Block i (AdaLN-conditioned on the flow timestep):
    h = h + Attn(AdaLN(h, temb), context)     context = VL tokens for even i, h itself for odd i
    h = h + FF(LayerNorm_noaffine(h))         FF = Linear(4w) -> GELU(tanh) -> Linear(w)
Output: (shift, scale) = proj_out_1(SiLU(temb)); y = proj_out_2(LN(h) * (1 + scale) + shift).

Reuse across the K Euler steps of one chunk (same numbers, less work): `context_kv` projects the VL
tokens to every cross-attention block's keys/values once; `modulations` computes every AdaLN
(scale, shift) of one timestep once (they depend on nothing else); `keep_last=n` computes the last
block's queries, FF and the output layer for the last n tokens only (the action tokens).
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

    def modulation(self, temb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """temb [B, w] -> (scale, shift), each [B, w]."""
        scale, shift = self.linear(F.silu(temb)).chunk(2, dim=-1)
        return scale, shift

    def forward(self, x: torch.Tensor, temb: torch.Tensor | None,
                mod: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        scale, shift = mod if mod is not None else self.modulation(temb)
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

    def project_kv(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """context [B, M, c] -> keys, values [B, heads, M, head_dim] (reusable across calls)."""
        return self._split(self.to_k(context)), self._split(self.to_v(context))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                context_mask: torch.Tensor | None = None, return_weights: bool = False,
                kv: tuple[torch.Tensor, torch.Tensor] | None = None):
        """`kv`: keys/values already projected by `project_kv` (then `context` is not used)."""
        k, v = kv if kv is not None else self.project_kv(x if context is None else context)
        q = self._split(self.to_q(x))
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

    def forward(self, h: torch.Tensor, temb: torch.Tensor | None, context: torch.Tensor | None,
                context_mask: torch.Tensor | None = None, kv=None, mod=None,
                keep_last: int | None = None) -> torch.Tensor:
        """h [B, N, w] -> [B, N, w], or [B, keep_last, w]: only the last tokens as queries (the
        keys of a self-attention block still come from all N tokens)."""
        x = self.norm1(h, temb, mod)
        q_in = x if keep_last is None else x[:, -keep_last:]
        h = h if keep_last is None else h[:, -keep_last:]
        if self.is_cross:
            h = h + self.attn1(q_in, context, context_mask, kv=kv)
        else:
            h = h + self.attn1(q_in, None if keep_last is None else x)
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

    def context_kv(self, context: torch.Tensor) -> list:
        """Keys/values of every cross-attention block for context [B, L, c] (None at self blocks)."""
        return [b.attn1.project_kv(context) if b.is_cross else None for b in self.transformer_blocks]

    def modulations(self, timestep: torch.Tensor) -> list:
        """Every timestep-dependent tensor of one pass: the blocks' AdaLN (scale, shift) and the
        output (shift, scale). timestep [B] -> list of num_layers + 1 pairs of [B, w]."""
        temb = self.timestep_encoder(timestep)
        mods = [b.norm1.modulation(temb) for b in self.transformer_blocks]
        shift, scale = self.proj_out_1(F.silu(temb)).chunk(2, dim=-1)
        return mods + [(shift, scale)]

    def forward(self, h: torch.Tensor, context: torch.Tensor | None, timestep: torch.Tensor | None,
                context_mask: torch.Tensor | None = None, *, kv: list | None = None,
                mods: list | None = None, keep_last: int | None = None) -> torch.Tensor:
        """`kv` from `context_kv` and `mods` from `modulations` replace context/timestep when given.
        keep_last=n returns only the last n tokens [B, n, out_dim] (their values are unchanged)."""
        mods = mods if mods is not None else self.modulations(timestep)
        last = len(self.transformer_blocks) - 1
        for i, block in enumerate(self.transformer_blocks):
            h = block(h, None, context if block.is_cross else None, context_mask if block.is_cross else None,
                      kv=None if kv is None else kv[i], mod=mods[i], keep_last=keep_last if i == last else None)
        shift, scale = mods[-1]
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
