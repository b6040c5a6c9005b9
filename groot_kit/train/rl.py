"""Reinforcement learning on top of the flow-matching policy: residual PPO in MuJoCo.

Why residual PPO. GR00T's System 1 samples a 16-step action chunk by integrating a learned
velocity field; its log-likelihood is not available in closed form, so plain policy-gradient on
the flow policy itself is awkward and slow on a CPU. Instead a small Gaussian MLP (the *residual
actor*) adds a per-step correction to whatever a *base* controller commands (Silver et al. 2018,
"Residual Policy Learning"; Ankile et al. 2024 for chunked imitation policies):

    a_t = base_t + delta_t,   delta_t = clip(delta_{t-1} + scale * u_t),   u_t ~ N(mu(o_t), diag(sigma^2))

The correction ``delta`` integrates the actor's outputs (it is reset at each episode start and is
part of the actor's input), so the actor acts as a velocity command on top of the base and can
hold a persistent offset where the base policy aims slightly wrong.

* imitation + RL: ``base_t`` = the BC-trained GrootPolicy's chunk (System 2 once per chunk,
  System 1 Euler sampler, ``n_action_steps`` executed per chunk); ``mu``'s last layer starts at
  zero, so the initial policy *is* the imitation policy plus a little exploration noise.
* RL from scratch: the same algorithm with ``base_t`` = the arm's joint positions at the start of
  the episode (``HoldBase``), i.e. joint-velocity control with no prior.

The actor and critic see privileged low-dimensional features (joint positions, end-effector and
goal positions, the base's commanded offset): the RL part stays tiny and sample-efficient, while
the base policy keeps seeing camera image + instruction + state through System 2.

Pieces (all used by ``scripts/imitation_vs_rl.py`` and ``notebooks/06_imitation_vs_rl.ipynb``)::

    RLTaskConfig / RLTask        env wrapper with a dense reward (reach / pick_place)
    collect_demos, train_bc      expert demos -> flow-matching BC through groot_kit.train.Trainer
    FlowBase, HoldBase           base controllers
    ActorCritic, compute_gae, ppo_update, train_ppo      PPO from scratch (no external RL library)
    ResidualPolicy               base + actor; save_pretrained / from_pretrained
    evaluate                     closed-loop success on fixed evaluation seeds
    compare_imitation_vs_rl      the three-arm experiment (imitation / RL scratch / imitation + RL)
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from groot_kit.constants import TASK_KEY
from groot_kit.fileio import atomic_directory, read_json_checked

EVAL_SEED_OFFSET = 100_000  # evaluation scenes never overlap demo / training seeds
RL_CONFIG_NAME = "rl_config.json"
ACTOR_WEIGHTS_NAME = "actor.safetensors"
BASE_DIR = "base_policy"


# =============================================================================================
# Task: env + reward + observation builders
# =============================================================================================
@dataclass
class RLTaskConfig:
    """Which MuJoCo task RL runs on and how reward is computed from the env's state."""

    embodiment: str = "so100"        # embodiment folder name
    task: str = "reach"              # "reach" (fast, default) or "pick_place"
    num_cubes: int = 1               # cubes on the table (1 = no colour ambiguity)
    max_episode_steps: int = 60      # control steps per episode (reach: expert needs ~10-25)
    randomize: bool = True           # domain randomisation (cube pose, colours, lights, home jitter)
    goal_in_state: bool = False      # True: the base GrootPolicy also gets the goal as state key "goal"
    camera: str = "front"            # camera the base GrootPolicy sees
    image_size: int = 64             # rendered size (= the tiny preset's vision input)
    distance_weight: float = 2.0     # reward -= w * distance (m) each step
    success_bonus: float = 1.0       # reward += bonus on the success step (episode terminates)
    grasp_bonus: float = 0.05        # pick_place: per step while the target cube is held

    def __post_init__(self) -> None:
        if self.task not in ("reach", "pick_place"):
            raise ValueError(f"RLTaskConfig.task={self.task!r}: RL rewards exist for 'reach' and 'pick_place'")
        if self.max_episode_steps < 2:
            raise ValueError("RLTaskConfig.max_episode_steps must be >= 2")


class RLTask:
    """One env of the RL task. ``step`` returns the shaped reward; ``info['success']`` is the env's."""

    def __init__(self, cfg: RLTaskConfig, seed: int = 0):
        from groot_kit.sim import make_env
        self.cfg = cfg
        self.env = make_env(cfg.embodiment, cfg.task, image_size=cfg.image_size, seed=seed, randomize=cfg.randomize,
                            render=False, max_episode_steps=cfg.max_episode_steps, num_cubes=cfg.num_cubes)
        sp = self.env.spec_e
        self.spec = sp
        self.act_lo, self.act_hi = (np.asarray(x, np.float64) for x in sp.action_bounds())
        self.act_dim = sp.action_dim
        self.arm = None
        self._obs = None

    # -- geometry ------------------------------------------------------------------------------
    def ee(self) -> np.ndarray:
        return self.env.ee_pose(self.env.target["arm"])[0]

    def goal_points(self) -> np.ndarray:
        """Task points the actor is told about: reach -> [target]; pick_place -> [cube, bin]."""
        env, T = self.env, self.env.target
        cp = env.body_pos(T["cube"])
        if self.cfg.task == "reach":
            return (cp + [0, 0, env.reach_height()])[None]
        return np.stack([cp, np.asarray(T["bin_pos"], float) + [0, 0, 0.03]])

    def goal(self) -> np.ndarray:
        """The 'goal' state key (flattened goal points)."""
        return self.goal_points().reshape(-1).astype(np.float32)

    def current_action(self) -> np.ndarray:
        """The action that holds the arm where it is now (measured joints, measured gripper closure)."""
        env, m, d = self.env, self.env.model, self.env.data
        a = np.zeros(self.act_dim, np.float64)
        for k in self.spec.action.values():
            if k.source == "joints":
                a[k.start:k.end] = [d.qpos[m.jnt_qposadr[env._id("joint", j)]] for j in k.joints]
            else:
                a[k.start] = env.gripper_closure(k.arm)
        return a

    def held(self) -> bool:
        env, T = self.env, self.env.target
        arm = env.arms[T["arm"]]
        return env.touching(arm.pad_geoms, T["cube"]) and env.gripper_closure(arm.name) > 0.3

    def reward(self, success: bool) -> float:
        """Dense reward from the env's state (see RLTaskConfig)."""
        c = self.cfg
        if c.task == "reach":
            dist = float(np.linalg.norm(self.ee() - self.goal_points()[0]))
            r = -c.distance_weight * dist
        else:
            cube, binp = self.goal_points()
            held = self.held()
            d_ee = float(np.linalg.norm(self.ee() - cube))
            d_bin = float(np.linalg.norm(cube[:2] - binp[:2]))
            r = -c.distance_weight * (d_ee + d_bin) + (c.grasp_bonus if held else 0.0)
        return r + (c.success_bonus if success else 0.0)

    # -- gym-like API --------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> dict:
        self._obs, _ = self.env.reset(seed=seed)
        return self._obs

    def step(self, action: np.ndarray):
        obs, _, term, trunc, info = self.env.step(np.asarray(action, np.float32))
        self._obs = obs
        success = bool(info.get("success"))
        return obs, self.reward(success), bool(term), bool(trunc), info

    # -- observations --------------------------------------------------------------------------
    def features(self, base_action: np.ndarray, offset: np.ndarray | None = None) -> np.ndarray:
        """Low-dimensional actor/critic input (float32): joints, end effector, goal - end effector,
        base command - joints, the integrated correction, episode time."""
        offset = np.zeros(self.act_dim) if offset is None else offset
        cur = self.current_action()
        mid, half = (self.act_hi + self.act_lo) / 2, np.maximum((self.act_hi - self.act_lo) / 2, 1e-6)
        ee = self.ee()
        rel = (self.goal_points() - ee).reshape(-1)
        t = self.env.t / max(1, self.env.max_steps)
        return np.concatenate([(cur - mid) / half, ee * 5.0, rel * 10.0, np.clip((base_action - cur) * 2.0, -5, 5),
                               offset * 2.0, [t]]).astype(np.float32)

    @property
    def feature_dim(self) -> int:
        n_goal = 3 if self.cfg.task == "reach" else 6
        return 3 * self.act_dim + 3 + n_goal + 1

    def raw_observation(self, image: bool = True) -> dict:
        """GR00T-style observation dict for a GrootProcessor (``video.<cam>``, ``state.<key>``, task)."""
        s = self._obs["state"]
        obs = {f"state.{k}": s[v.start:v.end].astype(np.float32) for k, v in self.spec.state.items()}
        if self.cfg.goal_in_state:
            obs["state.goal"] = self.goal()
        if image:
            obs[f"video.{self.cfg.camera}"] = self.env.render_camera(self.cfg.camera, self.cfg.image_size)
        obs[TASK_KEY] = self.env.instruction
        return obs

    def close(self) -> None:
        self.env.close()


def stack_observations(obs_list: list[dict]) -> dict:
    """Per-env raw observations -> one batched observation dict."""
    out = {}
    for k in obs_list[0]:
        if k == TASK_KEY:
            out[k] = [o[k] for o in obs_list]
        else:
            out[k] = np.stack([o[k] for o in obs_list])
    return out


# =============================================================================================
# Imitation: expert demos -> flow-matching BC (groot_kit.train.Trainer)
# =============================================================================================
@dataclass
class Demo:
    observations: list[dict]   # raw observations (GR00T-style dicts) per step
    actions: np.ndarray        # (T, action_dim)
    success: bool
    seed: int


def collect_demos(cfg: RLTaskConfig, n_episodes: int, seed: int = 0, hold_steps: int = 12) -> tuple[list[Demo], int]:
    """Scripted-expert demos; each continues ``hold_steps`` after success so the policy learns to
    stay at the goal. Returns (demos, env steps used)."""
    from groot_kit.sim import make_expert
    task = RLTask(cfg, seed)
    task.env.terminate_on_success = False
    demos, steps = [], 0
    try:
        for i in range(n_episodes):
            s = seed + i
            task.reset(seed=s)
            expert = make_expert(task.env)
            obs_l, act_l, ok, after = [], [], False, None
            for _ in range(cfg.max_episode_steps):
                a = expert.act(task._obs)
                obs_l.append(task.raw_observation(image=True))
                act_l.append(np.asarray(a, np.float32))
                _, _, _, trunc, info = task.step(a)
                steps += 1
                if info.get("success") and after is None:
                    ok, after = True, hold_steps
                if after is not None:
                    after -= 1
                    if after <= 0:
                        break
                if trunc:
                    break
            demos.append(Demo(obs_l, np.stack(act_l), ok, s))
    finally:
        task.close()
    return demos, steps


def make_processor(cfg: RLTaskConfig, demos: list[Demo], policy_config=None):
    """A GrootProcessor whose state keys are the embodiment's (+ ``goal``) and whose min-max stats
    come from the demos (what a dataset's stats would give)."""
    from groot_kit.config import get_preset
    from groot_kit.data import GrootProcessor, ModalityConfig, NormalizationStats
    from groot_kit.embodiment import load_embodiment
    pc = policy_config or get_preset("tiny")
    sp = load_embodiment(cfg.embodiment)
    sdims = {k: v.dim for k, v in sp.state.items()}
    if cfg.goal_in_state:
        sdims["goal"] = len(demos[0].observations[0]["state.goal"])
    adims = {k: v.dim for k, v in sp.action.items()}
    mod = ModalityConfig.from_dims(sdims, adims, [cfg.camera], subtasks=False)
    states = np.concatenate([np.stack([np.concatenate([o[f"state.{k}"] for k in sdims]) for o in d.observations])
                             for d in demos])
    actions = np.concatenate([d.actions for d in demos])
    modes = {f"action.{k}": ("binary" if v.normalization == "binary" else "min_max") for k, v in sp.action.items()}
    stats = NormalizationStats.from_arrays(states, actions, mod, modes=modes)
    return GrootProcessor(mod, stats, sp.slot_id, image_size=pc.vlm.vision.image_size,
                          horizon=pc.action_head.action_horizon, max_state_dim=pc.action_head.max_state_dim,
                          max_action_dim=pc.action_head.max_action_dim, max_views=pc.vlm.num_views,
                          embodiment=f"{cfg.embodiment}_{cfg.task}_rl")


class DemoChunkDataset(torch.utils.data.Dataset):
    """Model-level samples from demos: observation at t, normalised actions t..t+H-1 (padded past the end)."""

    def __init__(self, demos: list[Demo], processor):
        self.samples = []
        H = processor.horizon
        for d in demos:
            T = len(d.actions)
            batch = processor(stack_observations(d.observations))
            acts = {f"action.{k}": d.actions[None, :, s.start:s.end] for k, s in processor.modality.action.items()}
            norm, mask = processor.encode_action(acts)  # [1, T, 32]
            norm = norm[0]
            for t in range(T):
                idx = np.minimum(np.arange(t, t + H), T - 1)
                self.samples.append({
                    "pixel_values": batch["pixel_values"][t], "instruction": batch["instruction"][t],
                    "state": batch["state"][t], "embodiment_id": batch["embodiment_id"][t],
                    "action": norm[idx].clone(), "action_mask": mask[0, :1].expand(H, -1).clone(),
                    "action_is_pad": torch.as_tensor(np.arange(t, t + H) >= T),
                })

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict:
        return self.samples[i]


def train_bc(demos: list[Demo], cfg: RLTaskConfig, steps: int = 600, batch_size: int = 32,
             output_dir: str | Path = "outputs/rl/bc", seed: int = 0, learning_rate: float = 1e-3,
             preset: str = "tiny", init_from: str | Path | None = None, callbacks=None):
    """Behaviour cloning with the flow-matching loss through :class:`groot_kit.train.trainer.Trainer`.
    Returns the trained GrootPolicy (its processor is saved inside it)."""
    from groot_kit.model.policy import GrootPolicy
    from groot_kit.train.trainer import TrainConfig, Trainer
    torch.manual_seed(seed)
    policy = GrootPolicy.from_pretrained(init_from) if init_from else GrootPolicy(preset)
    processor = make_processor(cfg, demos, policy.config)
    policy.set_processor(processor)
    ds = DemoChunkDataset(demos, processor)
    tc = TrainConfig(output_dir=str(output_dir), max_steps=steps, batch_size=batch_size, learning_rate=learning_rate,
                     warmup_ratio=0.05, save_every=steps, keep_last=1, log_every=max(1, steps // 20), seed=seed,
                     resume=False, progress=False, cache_samples=False)
    trainer = Trainer(policy, ds, tc, callbacks=callbacks)
    trainer.train()
    return trainer.policy.eval()


# =============================================================================================
# Base controllers
# =============================================================================================
class HoldBase:
    """No prior: the base action holds the pose the arm had at the episode start (RL from scratch)."""

    kind = "hold"

    def __init__(self):
        self.start: dict[int, np.ndarray] = {}

    def reset(self, i: int) -> None:
        self.start.pop(i, None)

    def actions(self, tasks: list[RLTask], idx: list[int] | None = None, pop: bool = True) -> np.ndarray:
        idx = range(len(tasks)) if idx is None else idx
        for i in idx:
            if i not in self.start:
                self.start[i] = tasks[i].current_action()
        return np.stack([self.start[i] for i in idx])


class FlowBase:
    """The GrootPolicy as base: one chunk per ``n_action_steps`` control steps, batched across envs."""

    kind = "flow"

    def __init__(self, policy, processor=None, n_action_steps: int = 8, num_steps: int | None = None, seed: int = 0):
        self.policy = policy.eval()
        self.processor = processor or policy.get_processor()
        self.n_action_steps, self.num_steps = int(n_action_steps), num_steps
        self.gen = torch.Generator().manual_seed(seed)
        self.queues: dict[int, list[np.ndarray]] = {}
        self.calls = 0

    def reset(self, i: int) -> None:
        self.queues.pop(i, None)

    @torch.no_grad()
    def actions(self, tasks: list[RLTask], idx: list[int] | None = None, pop: bool = True) -> np.ndarray:
        """Next action per env in ``idx`` (``pop=False`` peeks without consuming it)."""
        idx = list(range(len(tasks)) if idx is None else idx)
        need = [i for i in idx if not self.queues.get(i)]
        if need:
            obs = stack_observations([tasks[i].raw_observation(image=True) for i in need])
            batch = self.processor(obs)
            cfg = self.policy.config.action_head
            noise = torch.randn(len(need), cfg.action_horizon, cfg.max_action_dim, generator=self.gen)
            chunk = self.policy.predict_action_chunk(batch, num_steps=self.num_steps, noise=noise)
            dec = self.processor.decode_action(chunk)
            flat = np.concatenate([dec[f"action.{k}"] for k in self.processor.modality.action], -1)  # [n, H, d]
            for j, i in enumerate(need):
                self.queues[i] = list(flat[j, :self.n_action_steps].astype(np.float64))
            self.calls += 1
        return np.stack([self.queues[i].pop(0) if pop else self.queues[i][0] for i in idx])


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


# =============================================================================================
# Residual policy (base + actor)
# =============================================================================================
class ResidualPolicy:
    """``a = base + delta``, ``delta += scale * u`` (clipped to +-max_offset) with ``u`` = the actor's
    mean (deterministic) or a sample. ``actor=None`` runs the base alone (imitation only).
    Call ``reset(i)`` at the start of each episode of env ``i``."""

    def __init__(self, base, actor: ActorCritic | None, scale: float, task_cfg: RLTaskConfig, max_offset: float = 1.0):
        self.base, self.actor, self.scale, self.task_cfg = base, actor, float(scale), task_cfg
        self.max_offset = float(max_offset)
        self.offset: dict[int, np.ndarray] = {}

    def reset(self, i: int) -> None:
        self.base.reset(i)
        self.offset.pop(i, None)

    def _offset(self, i: int, d: int) -> np.ndarray:
        return self.offset.get(i, np.zeros(d))

    @torch.no_grad()
    def features(self, tasks: list[RLTask], idx: list[int]) -> np.ndarray:
        """Actor/critic inputs for the current states, without advancing anything."""
        base = self.base.actions(tasks, idx, pop=False)
        return np.stack([tasks[i].features(base[j], self._offset(i, len(base[j]))) for j, i in enumerate(idx)])

    @torch.no_grad()
    def step_actions(self, tasks: list[RLTask], idx: list[int], deterministic: bool = True,
                     generator: torch.Generator | None = None):
        """-> (env actions [n, d], features [n, F], u [n, d], log-prob [n], value [n])"""
        base = self.base.actions(tasks, idx)
        if self.actor is None:
            z = np.zeros(len(idx), np.float32)
            return base, None, None, z, z
        feats = np.stack([tasks[i].features(base[j], self._offset(i, len(base[j]))) for j, i in enumerate(idx)])
        obs = torch.from_numpy(feats)
        dist = self.actor.dist(obs)
        u = dist.mean if deterministic else dist.mean + dist.stddev * torch.randn(dist.mean.shape, generator=generator)
        logp = dist.log_prob(u).sum(-1)
        val = self.actor.value(obs)
        step = self.scale * np.clip(u.numpy().astype(np.float64), -5, 5)
        act = np.zeros_like(base)
        for j, i in enumerate(idx):
            off = np.clip(self._offset(i, len(base[j])) + step[j], -self.max_offset, self.max_offset)
            self.offset[i] = off
            act[j] = base[j] + off
        return act, feats, u.numpy(), logp.numpy(), val.numpy()

    # -- checkpoints ---------------------------------------------------------------------------
    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Folder: rl_config.json, actor.safetensors and (flow base) base_policy/ (GrootPolicy
        save_pretrained, processor inside). Written to a temp folder and renamed (atomic)."""
        from safetensors.torch import save_file
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_directory(path) as tmp:
            meta = {"format": "groot_kit/residual_rl/1", "base": self.base.kind, "scale": self.scale,
                    "max_offset": self.max_offset,
                    "task": dataclasses.asdict(self.task_cfg), "actor": None}
            if isinstance(self.base, FlowBase):
                meta["n_action_steps"], meta["num_steps"] = self.base.n_action_steps, self.base.num_steps
                self.base.policy.save_pretrained(tmp / BASE_DIR)
                (tmp / BASE_DIR / "processor.json").write_text(json.dumps(self.base.processor.to_dict()))
            if self.actor is not None:
                meta["actor"] = {"obs_dim": self.actor.obs_dim, "act_dim": self.actor.act_dim, "hidden": self.actor.hidden}
                save_file({k: v.detach().contiguous().cpu() for k, v in self.actor.state_dict().items()},
                          str(tmp / ACTOR_WEIGHTS_NAME))
            (tmp / RL_CONFIG_NAME).write_text(json.dumps(meta, indent=2))
        return path

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> "ResidualPolicy":
        from safetensors.torch import load_file
        from groot_kit.data import GrootProcessor
        from groot_kit.model.policy import CheckpointError, GrootPolicy
        path = Path(path)
        cfg_file = path / RL_CONFIG_NAME
        meta = read_json_checked(cfg_file, "pass a folder written by ResidualPolicy.save_pretrained",
                                 "re-save the RL checkpoint", CheckpointError)
        if meta.get("format") != "groot_kit/residual_rl/1":
            raise CheckpointError(f"{cfg_file} is not a groot_kit residual-RL checkpoint")
        task_cfg = RLTaskConfig(**meta["task"])
        if meta["base"] == "flow":
            pol = GrootPolicy.from_pretrained(path / BASE_DIR)
            proc = GrootProcessor.from_dict(json.loads((path / BASE_DIR / "processor.json").read_text()))
            base = FlowBase(pol, proc, meta.get("n_action_steps", 8), meta.get("num_steps"))
        else:
            base = HoldBase()
        actor = None
        if meta.get("actor"):
            a = meta["actor"]
            actor = ActorCritic(a["obs_dim"], a["act_dim"], a["hidden"])
            wfile = path / ACTOR_WEIGHTS_NAME
            if not wfile.exists():
                raise CheckpointError(f"{wfile} is missing; re-save the RL checkpoint")
            actor.load_state_dict(load_file(str(wfile)), strict=True)
        return cls(base, actor, meta["scale"], task_cfg, meta.get("max_offset", 1.0))


# =============================================================================================
# Rollouts, evaluation, training
# =============================================================================================
def evaluate(policy: ResidualPolicy, task_cfg: RLTaskConfig | None = None, n_episodes: int = 16,
             seed: int = 0, num_envs: int = 8) -> dict:
    """Deterministic closed-loop success rate on the scenes ``EVAL_SEED_OFFSET + seed + i``."""
    cfg = task_cfg or policy.task_cfg
    n_envs = max(1, min(num_envs, n_episodes))
    tasks = [RLTask(cfg, seed) for _ in range(n_envs)]
    seeds = [EVAL_SEED_OFFSET + seed + i for i in range(n_episodes)]
    results, returns, lengths = [], [], []
    try:
        nxt = 0
        active, ret, ln = {}, {}, {}
        for i in range(n_envs):
            if nxt < n_episodes:
                tasks[i].reset(seed=seeds[nxt])
                policy.reset(i)
                active[i], ret[i], ln[i] = nxt, 0.0, 0
                nxt += 1
        while active:
            idx = sorted(active)
            acts, *_ = policy.step_actions(tasks, idx, deterministic=True)
            for j, i in enumerate(idx):
                _, r, term, trunc, info = tasks[i].step(acts[j])
                ret[i] += r
                ln[i] += 1
                if term or trunc:
                    results.append(bool(info.get("success")))
                    returns.append(ret[i])
                    lengths.append(ln[i])
                    del active[i]
                    policy.reset(i)
                    if nxt < n_episodes:
                        tasks[i].reset(seed=seeds[nxt])
                        active[i], ret[i], ln[i] = nxt, 0.0, 0
                        nxt += 1
    finally:
        for t in tasks:
            t.close()
    return {"success_rate": float(np.mean(results)), "mean_return": float(np.mean(returns)),
            "mean_length": float(np.mean(lengths)), "episodes": n_episodes}


def train_ppo(base, task_cfg: RLTaskConfig, cfg: PPOConfig, callback: Callable[[dict], None] | None = None,
              sample_offset: int = 0, actor: ActorCritic | None = None) -> tuple[ResidualPolicy, list[dict]]:
    """Residual PPO around ``base`` (FlowBase / HoldBase). Returns (policy, history); each history row
    has env_steps (RL samples), total_samples (+ ``sample_offset``, e.g. the demos), training-episode
    success / return, PPO stats and, every ``eval_every`` iterations, ``eval_success``."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    N, T = cfg.num_envs, cfg.rollout_steps
    tasks = [RLTask(task_cfg, cfg.seed + i) for i in range(N)]
    ac = actor or ActorCritic(tasks[0].feature_dim, tasks[0].act_dim, cfg.hidden, cfg.init_log_std)
    policy = ResidualPolicy(base, ac, cfg.residual_scale, task_cfg, cfg.max_offset)
    opt = torch.optim.Adam(ac.parameters(), lr=cfg.learning_rate)
    ep_seed = [cfg.seed * 1_000_003 + i * 10_007 for i in range(N)]  # training scenes, disjoint per env
    for i, t in enumerate(tasks):
        t.reset(seed=ep_seed[i])
        policy.reset(i)
    history, steps, it, t0 = [], 0, 0, time.perf_counter()
    ep_ret, ep_succ, finished = np.zeros(N), [], []
    n_iters = max(1, math.ceil(cfg.total_env_steps / (N * T)))

    def do_eval(row):
        ev = evaluate(policy, task_cfg, cfg.eval_episodes, seed=cfg.seed)
        row.update(eval_success=ev["success_rate"], eval_return=ev["mean_return"], eval_length=ev["mean_length"])

    row0 = {"iteration": 0, "env_steps": 0, "total_samples": sample_offset, "wall_s": 0.0}
    do_eval(row0)
    history.append(row0)
    if callback:
        callback(row0)
    try:
        while it < n_iters:
            F = tasks[0].feature_dim
            buf_obs = np.zeros((T, N, F), np.float32)
            buf_u = np.zeros((T, N, tasks[0].act_dim), np.float32)
            buf_logp, buf_v = np.zeros((T, N), np.float32), np.zeros((T, N), np.float32)
            buf_r, buf_d = np.zeros((T, N), np.float32), np.zeros((T, N), np.float32)
            for t in range(T):
                acts, feats, u, logp, val = policy.step_actions(tasks, list(range(N)), deterministic=False, generator=gen)
                buf_obs[t], buf_u[t], buf_logp[t], buf_v[t] = feats, u, logp, val
                for i in range(N):
                    _, r, term, trunc, info = tasks[i].step(acts[i])
                    if trunc and not term:  # time limit: bootstrap from the value of the last state
                        with torch.no_grad():
                            f_last = policy.features(tasks, [i])
                            r += cfg.gamma * float(ac.value(torch.from_numpy(f_last))[0])
                    buf_r[t, i] = r
                    ep_ret[i] += r
                    if term or trunc:
                        buf_d[t, i] = 1.0
                        finished.append(ep_ret[i])
                        ep_succ.append(bool(info.get("success")))
                        ep_ret[i] = 0.0
                        ep_seed[i] += 1
                        tasks[i].reset(seed=ep_seed[i])
                        policy.reset(i)
                steps += N
            with torch.no_grad():
                last_v = ac.value(torch.from_numpy(policy.features(tasks, list(range(N))))).numpy()
            adv, ret = compute_gae(buf_r, buf_v, buf_d, last_v, cfg.gamma, cfg.gae_lambda)
            data = {"obs": torch.from_numpy(buf_obs.reshape(T * N, -1)), "u": torch.from_numpy(buf_u.reshape(T * N, -1)),
                    "logp": torch.from_numpy(buf_logp.reshape(-1)), "adv": adv.reshape(-1), "ret": ret.reshape(-1)}
            stats = ppo_update(ac, opt, data, cfg, gen)
            it += 1
            row = {"iteration": it, "env_steps": steps, "total_samples": steps + sample_offset,
                   "wall_s": time.perf_counter() - t0, "mean_step_reward": float(buf_r.mean()),
                   "train_success": float(np.mean(ep_succ)) if ep_succ else None,
                   "train_return": float(np.mean(finished)) if finished else None,
                   "episodes": len(ep_succ), "std": float(ac.log_std.detach().exp().mean()), **stats}
            ep_succ, finished = [], []
            if (cfg.eval_every and it % cfg.eval_every == 0) or it == n_iters:
                do_eval(row)
            history.append(row)
            if callback:
                callback(row)
    finally:
        for t in tasks:
            t.close()
    return policy, history


# =============================================================================================
# The experiment: imitation only vs RL from scratch vs imitation + RL
# =============================================================================================
@dataclass
class ComparisonConfig:
    task: RLTaskConfig = field(default_factory=RLTaskConfig)
    n_demos: int = 20                 # expert episodes for BC
    bc_steps: int = 600               # flow-matching training steps
    bc_batch_size: int = 32
    bc_learning_rate: float = 1e-3
    rl_steps: int = 20_480            # RL env samples per RL arm
    ppo: PPOConfig = field(default_factory=PPOConfig)
    n_action_steps: int = 8           # base chunk steps executed before re-planning
    eval_episodes: int = 24
    seed: int = 0
    output_dir: str = "outputs/imitation_vs_rl"

    @classmethod
    def fast(cls, **kw) -> "ComparisonConfig":
        """A smoke-sized run (about a minute on one CPU core)."""
        c = cls(n_demos=6, bc_steps=60, rl_steps=1024, eval_episodes=6,
                ppo=PPOConfig(num_envs=4, rollout_steps=64, epochs=3, eval_every=2, eval_episodes=6))
        return dataclasses.replace(c, **kw)


def compare_imitation_vs_rl(cfg: ComparisonConfig, callback: Callable[[str, dict], None] | None = None,
                            log: Callable[[str], None] = print) -> dict:
    """Run the three arms and return a JSON-ready dict (curves of success vs environment samples)."""
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    res: dict[str, Any] = {"config": dataclasses.asdict(cfg), "arms": {}, "torch_threads": torch.get_num_threads()}
    ppo = dataclasses.replace(cfg.ppo, total_env_steps=cfg.rl_steps, eval_episodes=cfg.eval_episodes, seed=cfg.seed)

    # 1. imitation only
    t0 = time.perf_counter()
    demos, demo_steps = collect_demos(cfg.task, cfg.n_demos, seed=cfg.seed)
    t_demo = time.perf_counter() - t0
    log(f"[imitation] {len(demos)} expert demos, {demo_steps} env steps, expert success "
        f"{np.mean([d.success for d in demos]):.2f} ({t_demo:.1f} s)")
    bc_curve = []

    def bc_cb(step, row):
        bc_curve.append({"step": step, "loss": row.get("loss")})
        if callback:
            callback("bc", {"step": step, **row})
    t1 = time.perf_counter()
    bc = train_bc(demos, cfg.task, cfg.bc_steps, cfg.bc_batch_size, out / "bc", cfg.seed, cfg.bc_learning_rate,
                  callbacks=[bc_cb])
    t_bc = time.perf_counter() - t1
    bc_policy = ResidualPolicy(FlowBase(bc, n_action_steps=cfg.n_action_steps, seed=cfg.seed), None, 0.0, cfg.task)
    ev = evaluate(bc_policy, cfg.task, cfg.eval_episodes, seed=cfg.seed)
    bc_policy.save_pretrained(out / "imitation_policy")
    log(f"[imitation] BC {cfg.bc_steps} steps in {t_bc:.1f} s -> success {ev['success_rate']:.2f}")
    res["arms"]["imitation"] = {
        "label": "imitation only (BC, flow matching)", "demo_env_steps": demo_steps, "rl_env_steps": 0,
        "final_success": ev["success_rate"], "final_return": ev["mean_return"], "bc_loss": bc_curve,
        "curve": [{"total_samples": 0, "eval_success": 0.0}, {"total_samples": demo_steps, "eval_success": ev["success_rate"]}],
        "wall_s": t_demo + t_bc, "expert_success": float(np.mean([d.success for d in demos]))}
    if callback:
        callback("imitation", res["arms"]["imitation"])

    # 2. RL from scratch, 3. imitation + RL
    for name, label, base, offset in (
            ("rl_scratch", "RL from scratch (residual PPO, no prior)", HoldBase(), 0),
            ("imitation_rl", "imitation + RL (residual PPO on the BC policy)",
             FlowBase(bc, n_action_steps=cfg.n_action_steps, seed=cfg.seed + 1), demo_steps)):
        t2 = time.perf_counter()
        cb = (lambda row, n=name: callback(n, row)) if callback else None
        pol, hist = train_ppo(base, cfg.task, ppo, callback=cb, sample_offset=offset)
        wall = time.perf_counter() - t2
        pol.save_pretrained(out / f"{name}_policy")
        final = [h for h in hist if "eval_success" in h][-1]
        log(f"[{name}] {hist[-1]['env_steps']} RL env steps in {wall:.1f} s -> success {final['eval_success']:.2f}")
        res["arms"][name] = {"label": label, "demo_env_steps": offset, "rl_env_steps": hist[-1]["env_steps"],
                             "final_success": final["eval_success"], "final_return": final["eval_return"],
                             "curve": [h for h in hist if "eval_success" in h], "history": hist, "wall_s": wall}
    res["table"] = summary_table(res)
    return res


def summary_table(res: dict) -> list[dict]:
    rows = []
    for name, a in res["arms"].items():
        first = next((c["total_samples"] for c in a["curve"] if c.get("eval_success", 0) >= 0.5), None)
        rows.append({"arm": name, "label": a["label"], "demo_env_steps": a["demo_env_steps"],
                     "rl_env_steps": a["rl_env_steps"], "total_env_steps": a["demo_env_steps"] + a["rl_env_steps"],
                     "final_success": a["final_success"], "samples_to_50pct": first, "wall_s": round(a["wall_s"], 1)})
    return rows


def format_table(rows: list[dict]) -> str:
    """Markdown table for the README."""
    head = "| arm | demo env steps | RL env steps | success | env steps to 50% | wall s |\n|---|---|---|---|---|---|"
    lines = [head]
    for r in rows:
        s50 = "-" if r["samples_to_50pct"] is None else f"{r['samples_to_50pct']:,}"
        lines.append(f"| {r['label']} | {r['demo_env_steps']:,} | {r['rl_env_steps']:,} | "
                     f"{r['final_success']:.2f} | {s50} | {r['wall_s']} |")
    return "\n".join(lines)


def success_figure(res: dict):
    """plotly: evaluation success vs environment samples (demos + RL) for each arm."""
    import plotly.graph_objects as go
    fig = go.Figure()
    colors = {"imitation": "#1f77b4", "rl_scratch": "#d62728", "imitation_rl": "#2ca02c"}
    for name, a in res["arms"].items():
        xs = [c["total_samples"] for c in a["curve"]]
        ys = [c["eval_success"] for c in a["curve"]]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=a["label"],
                                 line=dict(color=colors.get(name), dash="dot" if name == "imitation" else None)))
    fig.update_layout(title="Success vs environment samples (demos + RL)", xaxis_title="environment samples",
                      yaxis_title="evaluation success rate", yaxis_range=[-0.03, 1.03], template="plotly_white",
                      legend=dict(orientation="h", y=-0.25))
    return fig
