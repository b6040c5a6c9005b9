"""System 1: the flow-matching action head.

Token layout fed to the DiT (N = 1 + F + H tokens):
    [ state token | F future tokens (N1.5 only) | H action tokens (+ learned positions) ]
and the DiT cross-attends (even blocks) to the L vision-language tokens from System 2.

Flow matching, t = 0 noise and t = 1 data:
    x_t = (1 - t) * eps + t * A ,  target velocity v = A - eps ,  timestep bucket = floor(1000 t)
    loss = sum((v_pred - v)^2 * action_mask) / sum(action_mask)
Sampling (K Euler steps): x ~ N(0, I); for k in 0..K-1: x += v(x, t=k/K) / K.
"""

from __future__ import annotations

import torch
from torch import nn

from groot_kit.config import ActionHeadConfig
from groot_kit.model.dit import DiT, VLSelfAttention
from groot_kit.model.embodiment_layers import CategorySpecificMLP, MultiEmbodimentActionEncoder


def sample_flow_time(batch_size: int, cfg: ActionHeadConfig, device: torch.device | str = "cpu") -> torch.Tensor:
    """Draw t per sample: u ~ Beta(alpha, beta); t = (s - u)/s (N1 release) or s(1 - u) (fixed). -> [B]

    The release map gives t in [-0.001, 1]; the later fix keeps t in [0, s].
    """
    u = torch.distributions.Beta(cfg.noise_beta_alpha, cfg.noise_beta_beta).sample((batch_size,))
    s = cfg.noise_s
    t = (s - u) / s if cfg.time_sampling == "n1_release" else s * (1.0 - u)
    return t.to(device)


def masked_flow_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """sum((pred - target)^2 * mask) / sum(mask). All [B, H, Dmax_a]; padded dims have mask 0."""
    mask = mask.to(pred.dtype)
    return ((pred - target) ** 2 * mask).sum() / mask.sum().clamp_min(1.0)


class FlowMatchingActionHead(nn.Module):
    """State/action encoders + DiT + action decoder, with NVIDIA's parameter names."""

    def __init__(self, cfg: ActionHeadConfig):
        super().__init__()
        self.cfg = cfg
        w, E = cfg.input_embedding_dim, cfg.max_num_embodiments
        self.model = DiT(width=w, heads=cfg.num_attention_heads, head_dim=cfg.attention_head_dim,
                         num_layers=cfg.num_layers, context_dim=cfg.cross_attention_dim, out_dim=cfg.hidden_size)
        self.state_encoder = CategorySpecificMLP(E, cfg.max_state_dim, cfg.hidden_size, w)
        self.action_encoder = MultiEmbodimentActionEncoder(cfg.max_action_dim, w, E)
        self.action_decoder = CategorySpecificMLP(E, cfg.hidden_size, cfg.hidden_size, cfg.max_action_dim)
        if cfg.num_future_tokens > 0:
            self.future_tokens = nn.Embedding(cfg.num_future_tokens, w)
        if cfg.use_vl_self_attention:
            self.vlln = nn.LayerNorm(cfg.cross_attention_dim)
            self.vl_self_attention = VLSelfAttention(cfg.cross_attention_dim, cfg.vl_self_attention_heads,
                                                     cfg.vl_self_attention_layers)
        self.position_embedding = nn.Embedding(cfg.max_seq_len, w)
        nn.init.normal_(self.position_embedding.weight, std=0.02)

    # -- pieces -----------------------------------------------------------------------------
    def process_vl(self, vl_tokens: torch.Tensor) -> torch.Tensor:
        """N1.5: vlln + VL self-attention; N1: identity. [B, L, c] -> [B, L, c]"""
        if self.cfg.use_vl_self_attention:
            return self.vl_self_attention(self.vlln(vl_tokens))
        return vl_tokens

    def encode_state(self, state: torch.Tensor, embodiment_id: torch.Tensor) -> torch.Tensor:
        """state [B, Dmax_s] -> one state token per sample [B, 1, w] (no history)."""
        return self.state_encoder(state.unsqueeze(1), embodiment_id)

    def velocity(self, x_t: torch.Tensor, timestep: torch.Tensor, state_tokens: torch.Tensor,
                 vl_tokens: torch.Tensor, embodiment_id: torch.Tensor,
                 vl_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Predicted velocity. x_t [B, H, Dmax_a], timestep [B] bucket -> [B, H, Dmax_a]."""
        B, H, _ = x_t.shape
        action_tokens = self.action_encoder(x_t, timestep, embodiment_id)
        action_tokens = action_tokens + self.position_embedding.weight[:H].unsqueeze(0)
        parts = [state_tokens]
        if self.cfg.num_future_tokens > 0:
            parts.append(self.future_tokens.weight.unsqueeze(0).expand(B, -1, -1))
        parts.append(action_tokens)
        h = torch.cat(parts, dim=1)
        mask = vl_mask if self.cfg.use_vl_mask_in_cross_attention else None
        out = self.model(h, vl_tokens, timestep, mask)
        return self.action_decoder(out, embodiment_id)[:, -H:]

    # -- training ---------------------------------------------------------------------------
    def forward(self, vl_tokens: torch.Tensor, state: torch.Tensor, embodiment_id: torch.Tensor,
                action: torch.Tensor, action_mask: torch.Tensor, vl_mask: torch.Tensor | None = None,
                noise: torch.Tensor | None = None, t: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
        """Masked flow-matching loss. `noise` [B, H, Dmax_a] and `t` [B] may be fixed by the caller."""
        B = action.shape[0]
        if noise is None:
            noise = torch.randn(action.shape, generator=generator, dtype=action.dtype).to(action.device)
        if t is None:
            t = sample_flow_time(B, self.cfg, action.device)
        t = t.to(action.dtype)
        t3 = t[:, None, None]
        x_t = (1 - t3) * noise + t3 * action
        target = action - noise
        timestep = (t * self.cfg.num_timestep_buckets).long()
        vl = self.process_vl(vl_tokens)
        pred = self.velocity(x_t, timestep, self.encode_state(state, embodiment_id), vl, embodiment_id, vl_mask)
        loss = masked_flow_loss(pred, target, action_mask)
        return loss, {"flow_loss": loss.detach(), "t_mean": t.mean().detach()}

    # -- inference --------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, vl_tokens: torch.Tensor, state: torch.Tensor, embodiment_id: torch.Tensor,
               num_steps: int | None = None, noise: torch.Tensor | None = None,
               vl_mask: torch.Tensor | None = None, generator: torch.Generator | None = None,
               return_trajectory: bool = False):
        """K-step Euler integration from noise to an action chunk [B, H, Dmax_a]."""
        K = num_steps or self.cfg.num_inference_timesteps
        B = state.shape[0]
        shape = (B, self.cfg.action_horizon, self.cfg.max_action_dim)
        x = noise if noise is not None else torch.randn(shape, generator=generator, dtype=vl_tokens.dtype).to(state.device)
        vl = self.process_vl(vl_tokens)
        state_tokens = self.encode_state(state, embodiment_id)
        trajectory = [x]
        for k in range(K):
            timestep = torch.full((B,), int(k / K * self.cfg.num_timestep_buckets), dtype=torch.long, device=x.device)
            x = x + self.velocity(x, timestep, state_tokens, vl, embodiment_id, vl_mask) / K
            trajectory.append(x)
        return (x, torch.stack(trajectory, 1)) if return_trajectory else x
