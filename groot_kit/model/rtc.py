"""Real-time chunking (RTC): sample the next chunk so that it continues the one being executed.

Following Black, Galliker & Levine 2025 ("Real-Time Execution of Action Chunking Flow Policies"),
written for this kit's flow convention (t = 0 noise, t = 1 data, K Euler steps). While chunk n
executes, chunk n+1 is computed from a newer observation; by the time it is ready, `d` more actions
of chunk n (the inference delay in control ticks) have been executed. Chunk n+1 is therefore
sampled as an *inpainting* problem: its first actions must equal the ones chunk n still has
planned for the same ticks. In each Euler step (tau = k/K):

    A1_hat  = x + (1 - tau) * v(x, tau)                  one-step estimate of the final chunk
    e       = (Y - A1_hat) * W                           Y: chunk n's actions on the same ticks
    g       = e^T dA1_hat/dx                             a vector-Jacobian product (one backward)
    x      += (v + c(tau) * g) / K ,  c(tau) = min(beta, (1 - tau) / (tau * r2)),  r2 = (1-tau)^2 / (tau^2 + (1-tau)^2)

W is a soft mask over the chunk's H steps: 1 for the d actions that will surely execute,
exponentially decaying weights over the rest of the overlap with chunk n (steps d..P-1, P = number
of chunk n's actions still planned), 0 beyond it, where the new chunk is free to follow the policy.
beta (default 5) clips the guidance weight, which diverges as tau -> 0.

The runtime's chunk prefetcher (groot_kit.chunking, mode "rtc") supplies the prefix and d; the
runtime's System 1 (groot_kit.runtime.systems) samples with `inpaint_sample` or `rtc_sample`.

Cost: one backward pass through the DiT (for the action tokens) per Euler step on top of the
forward; the VL context and everything else `plan_chunk` reuses stay constants.
"""

from __future__ import annotations

import math

import torch


def rtc_soft_mask(horizon: int, prefix_len: int, overlap_len: int, device=None) -> torch.Tensor:
    """Weights W [horizon]: 1 on steps < prefix_len (d), c * (e^c - 1)/(e - 1) with
    c = (P - i)/(P - d + 1) on d <= i < P (P = overlap_len), 0 from P on."""
    if not 0 <= prefix_len <= overlap_len <= horizon:
        raise ValueError(f"need 0 <= prefix_len ({prefix_len}) <= overlap_len ({overlap_len}) <= horizon "
                         f"({horizon}); prefix_len is the inference delay in control ticks, overlap_len the "
                         "number of the previous chunk's actions still planned")
    i = torch.arange(horizon, dtype=torch.float32, device=device)
    c = (overlap_len - i) / (overlap_len - prefix_len + 1)
    w = c * torch.expm1(c) / (math.e - 1)
    w = torch.where(i < prefix_len, torch.ones_like(w), w)
    return torch.where(i >= overlap_len, torch.zeros_like(w), w)


def guidance_weight(tau: float, max_guidance: float) -> float:
    """c(tau) = min(beta, (1 - tau) / (tau * r2)), r2 = (1 - tau)^2 / (tau^2 + (1 - tau)^2); beta at tau = 0."""
    if tau <= 0.0:
        return max_guidance
    r2 = (1 - tau) ** 2 / (tau ** 2 + (1 - tau) ** 2)
    return min(max_guidance, (1 - tau) / (tau * r2))


def _setup(head, state, prefix_actions, prefix_len, num_steps, noise, generator, action_dims):
    """Shared by both samplers -> (K, soft mask W [1|B, H, 1|D], target Y [B, H, D], initial noise [B, H, D])."""
    H, D = head.cfg.action_horizon, head.cfg.max_action_dim
    K = num_steps or head.cfg.num_inference_timesteps
    B, P = state.shape[0], prefix_actions.shape[1]
    if prefix_actions.dim() != 3 or prefix_actions.shape[0] != B or prefix_actions.shape[2] != D or P > H:
        raise ValueError(f"prefix_actions must be [B={B}, P<={H}, {D}] (the previous chunk's remaining actions), "
                         f"got {list(prefix_actions.shape)}")
    W = rtc_soft_mask(H, prefix_len, P, device=state.device).to(prefix_actions.dtype)[None, :, None]
    if action_dims is not None:   # guidance only on the robot's real dims
        W = W * (torch.arange(D, device=state.device) < action_dims).to(W.dtype)
    Y = torch.zeros(B, H, D, dtype=prefix_actions.dtype, device=state.device)
    Y[:, :P] = prefix_actions
    eps = noise if noise is not None else torch.randn((B, H, D), generator=generator,
                                                      dtype=prefix_actions.dtype).to(state.device)
    return K, W, Y, eps


def rtc_sample(head, vl_tokens, state: torch.Tensor, embodiment_id: torch.Tensor,
               prefix_actions: torch.Tensor, prefix_len: int, *, num_steps: int | None = None,
               noise: torch.Tensor | None = None, vl_mask: torch.Tensor | None = None,
               max_guidance: float = 5.0, generator: torch.Generator | None = None,
               exact_reference: bool | None = None, velocity=None,
               action_dims: int | None = None) -> torch.Tensor:
    """A chunk [B, H, Dmax_a] whose start continues `prefix_actions`.

    head: a FlowMatchingActionHead. vl_tokens [B, L, c] or a VLContext (`head.prepare_vl`).
    prefix_actions: [B, P, Dmax_a], P <= H, normalised like the head's outputs: the previous chunk's
        actions for the new chunk's ticks 0..P-1 (i.e. previous_chunk[:, s:] when s actions of it were
        executed before this observation was taken).
    prefix_len: d, how many of them will have been executed when this chunk is ready (the inference
        delay in control ticks); the runtime should start executing the new chunk at index d.
    velocity: v(x, k) override (tests); default `head.step_velocity(...)`.
    action_dims: the robot's real action dims (the rest is padding no one executes): guidance only
        there, so the padded dims' values do not pull on the real ones.
    """
    K, W, Y, x = _setup(head, state, prefix_actions, prefix_len, num_steps, noise, generator, action_dims)
    with torch.no_grad():
        v_fn = velocity or head.step_velocity(vl_tokens, state, embodiment_id, K, vl_mask, exact_reference)
    for k in range(K):
        tau = k / K
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            v = v_fn(xg, k)
            a1 = xg + (1 - tau) * v
            (g,) = torch.autograd.grad(a1, xg, grad_outputs=(Y - a1.detach()) * W)
        x = x + (v.detach() + guidance_weight(tau, max_guidance) * g) / K
    return x.detach()


def inpaint_sample(head, vl_tokens, state: torch.Tensor, embodiment_id: torch.Tensor,
                   prefix_actions: torch.Tensor, prefix_len: int, *, num_steps: int | None = None,
                   noise: torch.Tensor | None = None, vl_mask: torch.Tensor | None = None,
                   generator: torch.Generator | None = None, action_dims: int | None = None) -> torch.Tensor:
    """RTC by soft replacement: after each Euler step the overlap is pulled onto the flow path of the
    previous chunk's actions, x <- (1 - W) x + W ((1 - tau') eps + tau' Y), with the same soft mask W as
    `rtc_sample` (1 on the d steps that surely execute, decaying over the rest of the overlap, 0 after).

    No backward pass, and the d executed steps are reproduced exactly. Why it is the runtime's default:
    guidance through dA1_hat/dx is weak when the policy is nearly deterministic given its observation
    (A1_hat hardly depends on x); measured on the tiny base (so100, K = 4, prefix_len 4), the first
    4 actions missed the previous chunk's by 0.12 (mean |diff|, normalised) with guidance vs 0.135
    sampling freely, and by 0.000 with replacement; the step from the last executed action into the
    new chunk was 0.033 (in-chunk steps 0.014). Shapes as in `rtc_sample`."""
    K, W, Y, eps = _setup(head, state, prefix_actions, prefix_len, num_steps, noise, generator, action_dims)
    x = eps
    with torch.no_grad():
        v_fn = head.step_velocity(vl_tokens, state, embodiment_id, K, vl_mask)
        for k in range(K):
            x = x + v_fn(x, k) / K
            t_next = (k + 1) / K
            x = (1 - W) * x + W * ((1 - t_next) * eps + t_next * Y)
    return x
