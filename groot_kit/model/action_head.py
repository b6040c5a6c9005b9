"""System 1: the flow-matching action head.

Token layout fed to the DiT (N = 1 + F + H tokens):
    [ state token | F future tokens (N1.5 only) | H action tokens (+ learned positions) ]
and the DiT cross-attends (even blocks) to the L vision-language tokens from System 2.

Flow matching, t = 0 noise and t = 1 data:
    x_t = (1 - t) * eps + t * A ,  target velocity v = A - eps ,  timestep bucket = floor(1000 t)
    loss = sum((v_pred - v)^2 * action_mask) / sum(action_mask)
Sampling (K Euler steps): x ~ N(0, I); for k in 0..K-1: x += v(x, t=k/K) / K.

Two paths give the same numbers (tested to 1e-5 in fp32): the reference path
(`exact_reference=True`) recomputes everything in every Euler step, as NVIDIA's code does; the
default path computes once per chunk what the K steps share (`plan_chunk`: VL tokens and every
cross-attention block's keys/values, the state and future tokens, the per-embodiment weight slices)
and caches the timestep-only tensors of the K fixed timesteps across chunks. Only the action tokens
then go through the DiT K times, and the last block and output layers run for the H action tokens
only (the only ones decoded).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from groot_kit.config import ActionHeadConfig
from groot_kit.model.dit import DiT, VLSelfAttention
from groot_kit.model.embodiment_layers import (CategorySpecificMLP, MultiEmbodimentActionEncoder, apply_slice,
                                               sinusoidal_code)


def sample_flow_time(batch_size: int, cfg: ActionHeadConfig, device: torch.device | str = "cpu") -> torch.Tensor:
    """Draw t per sample: u ~ Beta(alpha, beta); t = (s - u)/s (N1 release) or s(1 - u) (fixed). -> [B]

    The release map gives t in [-0.001, 1]; the later fix keeps t in [0, s].
    """
    # drawn on `device` itself: no host-to-device copy per training step (on the CPU: the same draws)
    a, b = (torch.tensor(v, dtype=torch.float32, device=device) for v in (cfg.noise_beta_alpha, cfg.noise_beta_beta))
    u = torch.distributions.Beta(a, b).sample((batch_size,))
    s = cfg.noise_s
    return (s - u) / s if cfg.time_sampling == "n1_release" else s * (1.0 - u)


def masked_flow_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """sum((pred - target)^2 * mask) / sum(mask). All [B, H, Dmax_a]; padded dims have mask 0."""
    mask = mask.to(pred.dtype)
    return ((pred - target) ** 2 * mask).sum() / mask.sum().clamp_min(1.0)


@dataclass
class VLContext:
    """System 2's output as the DiT consumes it (`prepare_vl`): N1.5's vlln + VL self-attention and
    every cross-attention block's keys/values. Fixed until System 2 sends new tokens, so a runtime
    whose System 2 runs slower than System 1 can reuse it over several chunks."""

    kv: list                           # per DiT block: (keys, values) [B, heads, L, d], or None (self blocks)
    context_mask: torch.Tensor | None  # [B, L] bool, only when the config applies the VL mask

    @property
    def dtype(self) -> torch.dtype:
        return next(kv[0] for kv in self.kv if kv is not None).dtype


@dataclass
class ChunkPlan:
    """What stays fixed while one chunk is denoised (built once by `plan_chunk`)."""

    prefix: torch.Tensor               # [B, 1+F, w] state token (+ N1.5 future tokens)
    kv: list                           # per DiT block: cross-attention (keys, values) [B, heads, L, d], or None
    context_mask: torch.Tensor | None  # [B, L] bool, only when the config applies the VL mask
    slices: dict                       # per-embodiment weights (W, b) of the action encoder/decoder
    steps: list                        # per Euler step: (timestep [B], DiT modulations, code term [B|1, 1, w])


def step_buckets(num_steps: int, num_buckets: int = 1000) -> list[int]:
    """Integer timesteps of the K Euler steps: floor(k/K * buckets), k = 0..K-1."""
    return [int(k / num_steps * num_buckets) for k in range(num_steps)]


def _capturing() -> bool:
    """Inside torch.jit tracing, ONNX export or torch.compile/torch.export: no data-dependent
    Python branches and no Python-side caches."""
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling()


def _shared_embodiment(embodiment_id: torch.Tensor) -> bool:
    """True when every sample uses the same slot (then one matmul serves the whole batch)."""
    if embodiment_id is None or embodiment_id.is_meta or _capturing():
        return False  # None: slots baked in (export); capturing: keep graphs general in the input
    return bool((embodiment_id == embodiment_id[0]).all())


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
        self.exact_reference = False  # True: recompute everything in every Euler step (NVIDIA's way)
        self._mod_cache: dict = {}    # (bucket, dtype, device) -> DiT modulations; see _modulations
        self._mod_signature = None

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
                 vl_mask: torch.Tensor | None = None, *, plan: ChunkPlan | None = None, step: int = 0,
                 action_tokens_only: bool = False) -> torch.Tensor:
        """Predicted velocity. x_t [B, H, Dmax_a], timestep [B] bucket -> [B, H, Dmax_a].

        With `plan` (from `plan_chunk`), Euler step `step` reuses it and the other inputs are unused.
        action_tokens_only: run the last DiT block's queries/FF and the output layers for the H
        action tokens only (same result; the other tokens' outputs are never decoded).
        """
        if plan is not None:
            return self._planned_velocity(x_t, plan, step)
        B, H, _ = x_t.shape
        action_tokens = self.action_encoder(x_t, timestep, embodiment_id)
        action_tokens = action_tokens + self.position_embedding.weight[:H].unsqueeze(0)
        parts = [state_tokens]
        if self.cfg.num_future_tokens > 0:
            parts.append(self.future_tokens.weight.unsqueeze(0).expand(B, -1, -1))
        parts.append(action_tokens)
        h = torch.cat(parts, dim=1)
        mask = vl_mask if self.cfg.use_vl_mask_in_cross_attention else None
        if not action_tokens_only:
            out = self.model(h, vl_tokens, timestep, mask)
            return self.action_decoder(out, embodiment_id)[:, -H:]
        return self.action_decoder(self.model(h, vl_tokens, timestep, mask, keep_last=H), embodiment_id)

    # -- reuse across the K Euler steps -----------------------------------------------------------
    def plan_chunk(self, vl_tokens: torch.Tensor | VLContext, state: torch.Tensor, embodiment_id: torch.Tensor,
                   num_steps: int, vl_mask: torch.Tensor | None = None) -> ChunkPlan:
        """Everything the K Euler steps of one chunk share. vl_tokens [B, L, c] (System 2 output)
        or a VLContext from `prepare_vl` (then vl_mask is not used)."""
        B, w = state.shape[0], self.cfg.input_embedding_dim
        uniform = _shared_embodiment(embodiment_id)
        enc, dec = self.action_encoder, self.action_decoder
        slices = {name: layer.slice(embodiment_id, uniform) for name, layer in
                  (("W1", enc.W1), ("W2", enc.W2), ("W3", enc.W3), ("dec1", dec.layer1), ("dec2", dec.layer2))}
        W2, b2 = slices.pop("W2")
        # W2(concat[W1(a), code]) = W1(a) @ W2[:w] + (code @ W2[w:] + b2): the second term is per step
        slices["W2a"] = (W2[..., :w, :], None)
        prefix = [self.encode_state(state, embodiment_id)]
        if self.cfg.num_future_tokens > 0:
            prefix.append(self.future_tokens.weight.unsqueeze(0).expand(B, -1, -1))
        vl = vl_tokens if isinstance(vl_tokens, VLContext) else self.prepare_vl(vl_tokens, vl_mask)
        steps = []
        for bucket in step_buckets(num_steps, self.cfg.num_timestep_buckets):
            timestep = torch.full((B,), bucket, dtype=torch.long, device=state.device)
            code = sinusoidal_code(timestep[:1].view(1, 1), w).to(W2.dtype)           # [1, 1, w]
            code_term = apply_slice(code.expand(B if W2.dim() == 3 else 1, 1, w), W2[..., w:, :], b2)
            steps.append((timestep, self._modulations(bucket, W2.dtype, state.device), code_term))
        return ChunkPlan(torch.cat(prefix, 1), vl.kv, vl.context_mask, slices, steps)

    def prepare_vl(self, vl_tokens: torch.Tensor, vl_mask: torch.Tensor | None = None) -> VLContext:
        """vl_tokens [B, L, c] -> VLContext (pass it to `sample`/`plan_chunk` instead of the tokens)."""
        mask = vl_mask.bool() if (vl_mask is not None and self.cfg.use_vl_mask_in_cross_attention) else None
        return VLContext(self.model.context_kv(self.process_vl(vl_tokens)), mask)

    def _planned_velocity(self, x_t: torch.Tensor, plan: ChunkPlan, step: int) -> torch.Tensor:
        """One Euler step's velocity from a plan: only the H action tokens are new. -> [B, H, Dmax_a]"""
        H, s = x_t.shape[1], plan.slices
        _, mods, code_term = plan.steps[step]
        a = F.silu(apply_slice(apply_slice(x_t, *s["W1"]), *s["W2a"]) + code_term)
        a = apply_slice(a, *s["W3"]) + self.position_embedding.weight[:H].unsqueeze(0)
        h = torch.cat([plan.prefix, a], dim=1)
        out = self.model(h, None, None, plan.context_mask, kv=plan.kv, mods=mods, keep_last=H)
        return apply_slice(F.relu(apply_slice(out, *s["dec1"])), *s["dec2"])

    def _modulations(self, bucket: int, dtype: torch.dtype, device: torch.device) -> list:
        """DiT modulations of one timestep bucket ([1, w] pairs), cached across chunks: they depend
        only on the bucket and the weights. The cache is dropped when any weight they read changes
        (in place, e.g. an optimizer step or load_state_dict, or moved); not used under autograd,
        autocast or tracing."""
        dit = self.model
        def compute():
            return dit.modulations(torch.full((1,), bucket, dtype=torch.long, device=device))
        if torch.is_grad_enabled() or torch.is_autocast_enabled() or _capturing():
            return compute()
        mods = [dit.timestep_encoder, dit.proj_out_1] + [b.norm1 for b in dit.transformer_blocks]
        signature = tuple((p.data_ptr(), p._version) for m in mods for p in m.parameters())
        if signature != self._mod_signature:
            self._mod_cache, self._mod_signature = {}, signature
        key = (bucket, dtype, str(device))
        if key not in self._mod_cache:
            self._mod_cache[key] = compute()
        return self._mod_cache[key]

    # -- training ---------------------------------------------------------------------------
    def forward(self, vl_tokens: torch.Tensor, state: torch.Tensor, embodiment_id: torch.Tensor,
                action: torch.Tensor, action_mask: torch.Tensor, vl_mask: torch.Tensor | None = None,
                noise: torch.Tensor | None = None, t: torch.Tensor | None = None,
                generator: torch.Generator | None = None,
                exact_reference: bool | None = None) -> tuple[torch.Tensor, dict]:
        """Masked flow-matching loss. `noise` [B, H, Dmax_a] and `t` [B] may be fixed by the caller."""
        B = action.shape[0]
        if noise is None:  # on the action's device unless a (CPU) generator fixes the stream
            dev = generator.device if generator is not None else action.device
            noise = torch.randn(action.shape, generator=generator, dtype=action.dtype, device=dev).to(action.device)
        if t is None:
            t = sample_flow_time(B, self.cfg, action.device)
        t = t.to(action.dtype)
        t3 = t[:, None, None]
        x_t = (1 - t3) * noise + t3 * action
        target = action - noise
        timestep = (t * self.cfg.num_timestep_buckets).long()
        vl = self.process_vl(vl_tokens)
        exact = self.exact_reference if exact_reference is None else exact_reference
        pred = self.velocity(x_t, timestep, self.encode_state(state, embodiment_id), vl, embodiment_id, vl_mask,
                             action_tokens_only=not exact)
        loss = masked_flow_loss(pred, target, action_mask)
        return loss, {"flow_loss": loss.detach(), "t_mean": t.mean().detach()}

    # -- inference --------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, vl_tokens: torch.Tensor, state: torch.Tensor, embodiment_id: torch.Tensor,
               num_steps: int | None = None, noise: torch.Tensor | None = None,
               vl_mask: torch.Tensor | None = None, generator: torch.Generator | None = None,
               return_trajectory: bool = False, exact_reference: bool | None = None):
        """K-step Euler integration from noise to an action chunk [B, H, Dmax_a].

        vl_tokens: [B, L, c], or a VLContext from `prepare_vl` (planned path only).
        """
        K = num_steps or self.cfg.num_inference_timesteps
        B = state.shape[0]
        shape = (B, self.cfg.action_horizon, self.cfg.max_action_dim)
        x = noise if noise is not None else torch.randn(shape, generator=generator, dtype=vl_tokens.dtype).to(state.device)
        velocity = self.step_velocity(vl_tokens, state, embodiment_id, K, vl_mask, exact_reference)
        trajectory = [x]
        for k in range(K):
            x = x + velocity(x, k) / K
            trajectory.append(x)
        return (x, torch.stack(trajectory, 1)) if return_trajectory else x

    def step_velocity(self, vl_tokens: torch.Tensor, state: torch.Tensor, embodiment_id: torch.Tensor,
                      num_steps: int, vl_mask: torch.Tensor | None = None, exact_reference: bool | None = None):
        """-> v(x [B, H, Dmax_a], k) for Euler step k of a K-step chunk (reference or planned path)."""
        exact = self.exact_reference if exact_reference is None else exact_reference
        if exact and isinstance(vl_tokens, VLContext):
            raise ValueError("exact_reference=True recomputes from the VL tokens; pass the tokens, not a VLContext")
        if not exact:
            plan = self.plan_chunk(vl_tokens, state, embodiment_id, num_steps, vl_mask)
            return lambda x, k: self.velocity(x, plan.steps[k][0], plan.prefix, vl_tokens, embodiment_id,
                                              vl_mask, plan=plan, step=k)
        vl = self.process_vl(vl_tokens)
        state_tokens = self.encode_state(state, embodiment_id)
        buckets = step_buckets(num_steps, self.cfg.num_timestep_buckets)

        def reference(x, k):
            timestep = torch.full((x.shape[0],), buckets[k], dtype=torch.long, device=x.device)
            return self.velocity(x, timestep, state_tokens, vl, embodiment_id, vl_mask)
        return reference
