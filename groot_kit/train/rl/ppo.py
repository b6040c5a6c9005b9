"""PPO from scratch (no external RL library): Gaussian actor-critic, GAE, clipped update."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


# =============================================================================================
# PPO (from scratch)
# =============================================================================================
def _mlp(i: int, h: int, o: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(i, h), nn.Tanh(), nn.Linear(h, h), nn.Tanh(), nn.Linear(h, o))


class ActorCritic(nn.Module):
    """Diagonal-Gaussian actor (state-independent log std) and a value critic, both small MLPs."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 64, init_log_std: float = -0.5):
        super().__init__()
        self.obs_dim, self.act_dim, self.hidden = obs_dim, act_dim, hidden
        self.pi = _mlp(obs_dim, hidden, act_dim)
        self.v = _mlp(obs_dim, hidden, 1)
        nn.init.zeros_(self.pi[-1].weight)  # start as the base policy (zero mean correction)
        nn.init.zeros_(self.pi[-1].bias)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(init_log_std)))

    def dist(self, obs: torch.Tensor) -> torch.distributions.Normal:
        return torch.distributions.Normal(self.pi(obs), self.log_std.exp().expand(obs.shape[0], -1))

    def log_prob(self, obs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """sum_i log N(u_i; mu_i, sigma_i) -> [B]"""
        return self.dist(obs).log_prob(u).sum(-1)

    def entropy(self, obs: torch.Tensor) -> torch.Tensor:
        """sum_i (0.5 + 0.5 log(2 pi) + log sigma_i) -> [B]"""
        return self.dist(obs).entropy().sum(-1)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.v(obs).squeeze(-1)


def compute_gae(rewards, values, dones, last_values, gamma: float = 0.99, lam: float = 0.95):
    """Generalised advantage estimation over a [T, N] rollout.

    ``dones[t]`` = 1 when the episode ended at step t (the next row starts a new episode; time-limit
    truncations should fold ``gamma * V(s_final)`` into ``rewards[t]`` first). Returns
    (advantages, returns = advantages + values), same shape as rewards.
    """
    r = torch.as_tensor(rewards, dtype=torch.float32)
    v = torch.as_tensor(values, dtype=torch.float32)
    d = torch.as_tensor(dones, dtype=torch.float32)
    last = torch.as_tensor(last_values, dtype=torch.float32)
    T = r.shape[0]
    adv = torch.zeros_like(r)
    gae = torch.zeros_like(last)
    for t in reversed(range(T)):
        next_v = last if t == T - 1 else v[t + 1]
        nonterm = 1.0 - d[t]
        delta = r[t] + gamma * next_v * nonterm - v[t]
        gae = delta + gamma * lam * nonterm * gae
        adv[t] = gae
    return adv, adv + v


@dataclass
class PPOConfig:
    total_env_steps: int = 30_000    # RL environment samples
    num_envs: int = 8                # envs stepped in lockstep (base chunks batched across them)
    rollout_steps: int = 64          # steps per env per iteration (batch = num_envs * rollout_steps)
    epochs: int = 6
    minibatch_size: int = 256
    learning_rate: float = 1e-3
    gamma: float = 0.97
    gae_lambda: float = 0.95
    clip: float = 0.2
    value_coef: float = 0.5
    entropy_coef: float = 0.0
    max_grad_norm: float = 0.5
    init_log_std: float = -0.5       # sigma of u at the start (action noise = scale * sigma)
    residual_scale: float = 0.05     # correction change per step per unit of u (rad; gripper: command units)
    max_offset: float = 1.0          # |correction| limit
    hidden: int = 64
    eval_every: int = 4              # iterations between deterministic evaluations (0 = only at the end)
    eval_episodes: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        if self.total_env_steps < 1 or self.num_envs < 1 or self.rollout_steps < 1:
            raise ValueError("PPOConfig: total_env_steps, num_envs and rollout_steps must be >= 1")


def ppo_update(ac: ActorCritic, optimizer: torch.optim.Optimizer, data: dict, cfg: PPOConfig,
               generator: torch.Generator | None = None) -> dict:
    """Clipped-surrogate PPO epochs over one rollout. ``data``: obs, u, logp, adv, ret (flat [M, ...])."""
    M = data["obs"].shape[0]
    adv = data["adv"]
    adv = (adv - adv.mean()) / (adv.std() + 1e-8) if M > 1 else adv
    stats = {"policy_loss": [], "value_loss": [], "entropy": [], "approx_kl": [], "clip_frac": []}
    mb = min(cfg.minibatch_size, M)
    for _ in range(cfg.epochs):
        perm = torch.randperm(M, generator=generator)
        for s in range(0, M, mb):
            i = perm[s:s + mb]
            obs, u = data["obs"][i], data["u"][i]
            dist = ac.dist(obs)
            logp = dist.log_prob(u).sum(-1)
            ratio = (logp - data["logp"][i]).exp()
            a = adv[i]
            pl = -torch.min(ratio * a, ratio.clamp(1 - cfg.clip, 1 + cfg.clip) * a).mean()
            vl = 0.5 * (ac.value(obs) - data["ret"][i]).pow(2).mean()
            ent = dist.entropy().sum(-1).mean()
            loss = pl + cfg.value_coef * vl - cfg.entropy_coef * ent
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(ac.parameters(), cfg.max_grad_norm)
            optimizer.step()
            with torch.no_grad():
                stats["policy_loss"].append(float(pl))
                stats["value_loss"].append(float(vl))
                stats["entropy"].append(float(ent))
                stats["approx_kl"].append(float((data["logp"][i] - logp).mean()))
                stats["clip_frac"].append(float(((ratio - 1).abs() > cfg.clip).float().mean()))
    return {k: float(np.mean(v)) for k, v in stats.items()}
