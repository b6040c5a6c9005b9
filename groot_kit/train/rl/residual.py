"""Residual policies: base controllers (held pose, the flow policy) + a PPO actor, their evaluation and training."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from groot_kit.chunking import ChunkExecutor
from groot_kit.fileio import atomic_directory, read_json_checked

from .ppo import ActorCritic, PPOConfig, compute_gae, ppo_update
from .task import (
    ACTOR_WEIGHTS_NAME,
    BASE_DIR,
    EVAL_SEED_OFFSET,
    RL_CONFIG_NAME,
    RLTask,
    RLTaskConfig,
    env_kwargs,
    stack_observations,
)


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
    """The GrootPolicy as base: one chunk per ``n_action_steps`` control steps per env (a chunk
    executor each, groot_kit.chunking), the chunks of all envs that need one sampled in one batch."""

    kind = "flow"

    def __init__(self, policy, processor=None, n_action_steps: int = 8, num_steps: int | None = None, seed: int = 0):
        self.policy = policy.eval()
        self.processor = processor or policy.get_processor()
        self.n_action_steps, self.num_steps = int(n_action_steps), num_steps
        self.gen = torch.Generator().manual_seed(seed)
        self.executors: dict[int, ChunkExecutor] = {}
        self.calls = 0

    def reset(self, i: int) -> None:
        self.executors.pop(i, None)

    def _executor(self, i: int) -> ChunkExecutor:
        if i not in self.executors:
            H = self.policy.config.action_head.action_horizon
            self.executors[i] = ChunkExecutor("replan", H, self.n_action_steps)
        return self.executors[i]

    @torch.no_grad()
    def actions(self, tasks: list[RLTask], idx: list[int] | None = None, pop: bool = True) -> np.ndarray:
        """Next action per env in ``idx`` (``pop=False`` peeks without consuming it)."""
        idx = list(range(len(tasks)) if idx is None else idx)
        need = [i for i in idx if self._executor(i).needs_chunk()]
        if need:
            obs = stack_observations([tasks[i].raw_observation(image=True) for i in need])
            batch = self.processor(obs)
            cfg = self.policy.config.action_head
            noise = torch.randn(len(need), cfg.action_horizon, cfg.max_action_dim, generator=self.gen)
            chunk = self.policy.predict_action_chunk(batch, num_steps=self.num_steps, noise=noise)
            dec = self.processor.decode_action(chunk)
            flat = np.concatenate([dec[f"action.{k}"] for k in self.processor.modality.action], -1)  # [n, H, d]
            for j, i in enumerate(need):
                self.executors[i].add_chunk(flat[j])
            self.calls += 1
        step = (lambda ex: ex.next_action()) if pop else (lambda ex: ex.peek_action())
        return np.stack([step(self.executors[i]) for i in idx]).astype(np.float64)




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
class ResidualController:
    """A ResidualPolicy acting in one evaluation scene: the controller `evaluate_closed_loop` builds
    per episode. Adds up the task's shaped reward (the reward of each step is read when the next
    observation arrives; the last one by ``episode_return``)."""

    def __init__(self, policy: ResidualPolicy, task: RLTask):
        self.policy, self.task = policy, task
        self.ret, self.started = 0.0, False
        policy.reset(0)

    def act(self, obs: dict) -> np.ndarray:
        if self.started:   # the previous step did not end the episode, so it did not succeed
            self.ret += self.task.reward(False)
        self.started = True
        self.task._obs = obs
        acts, *_ = self.policy.step_actions([self.task], [0], deterministic=True)
        return acts[0]

    def episode_return(self) -> float:
        return self.ret + self.task.reward(self.task.env.is_success())


def evaluate(policy: ResidualPolicy, task_cfg: RLTaskConfig | None = None, n_episodes: int = 16,
             seed: int = 0) -> dict:
    """Deterministic closed-loop success on the scenes ``EVAL_SEED_OFFSET + seed + i``, through the
    kit's one evaluator (groot_kit.eval.evaluate_closed_loop). The flow base's noise generator is
    put back afterwards, so evaluating during training does not change the training draws.
    Returns evaluate_closed_loop's result plus ``mean_return`` and ``mean_length``."""
    from groot_kit.eval import evaluate_closed_loop
    cfg = task_cfg or policy.task_cfg
    gen = getattr(policy.base, "gen", None)
    gen_state = None if gen is None else gen.get_state()
    current: dict[str, ResidualController] = {}

    def controller(env, scene_seed: int) -> ResidualController:
        if gen is not None:
            gen.manual_seed(scene_seed)   # the seed rule: flow noise from the scene seed
        current["ctl"] = ResidualController(policy, RLTask(cfg, env=env))
        return current["ctl"]

    try:
        res = evaluate_closed_loop(None, cfg.embodiment, cfg.task, n_episodes, seed=EVAL_SEED_OFFSET + seed,
                                   env_kwargs=env_kwargs(cfg), image_size=cfg.image_size,
                                   controller=controller, probe=lambda env: {"return": current["ctl"].episode_return()})
    finally:
        if gen is not None:
            gen.set_state(gen_state)
    rows = res["episodes"]
    res["mean_return"] = float(np.mean([r["probe"]["return"] for r in rows])) if rows else 0.0
    res["mean_length"] = float(np.mean([r["steps"] for r in rows])) if rows else 0.0
    return res


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
