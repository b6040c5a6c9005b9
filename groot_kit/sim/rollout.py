"""Episodes and rollouts: the record every data producer (expert, teleop, policy) returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np


@dataclass
class Episode:
    """One recorded episode. Arrays are aligned per control step t: ``frames[cam][t]`` and
    ``states[t]`` are what the policy saw, ``actions[t]`` what it did, ``subtasks[t]`` the label."""

    embodiment: str
    task: str
    instruction: str
    fps: float
    states: np.ndarray  # (T, state_dim) float32
    actions: np.ndarray  # (T, action_dim) float32
    subtasks: list[str]
    frames: dict[str, np.ndarray] = field(default_factory=dict)  # cam -> (T, H, W, 3) uint8
    success: bool = False
    tier: str = "synthetic"  # "synthetic" (expert), "teleop", "policy"
    seed: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def duration_s(self) -> float:
        return len(self) / self.fps


class EpisodeRecorder:
    """Accumulates steps; ``finish()`` returns an :class:`Episode`."""

    def __init__(self, env, tier: str = "synthetic", seed: int | None = None, record_frames: bool = True):
        self.env, self.tier, self.seed, self.record_frames = env, tier, seed, record_frames
        self.states, self.actions, self.subtasks = [], [], []
        self.frames: dict[str, list] = {}
        self.success = False

    def add(self, obs: dict, action, subtask: str) -> None:
        self.states.append(np.asarray(obs["state"], np.float32))
        self.actions.append(np.asarray(action, np.float32))
        self.subtasks.append(str(subtask))
        if self.record_frames:
            for k in self.env.spec_e.cameras:
                if k in obs:
                    self.frames.setdefault(k, []).append(obs[k])

    def finish(self, success: bool | None = None) -> Episode:
        env = self.env
        sp = env.spec_e
        return Episode(
            embodiment=sp.name, task=env.task, instruction=env.instruction, fps=sp.control_hz,
            states=np.asarray(self.states, np.float32).reshape(-1, sp.state_dim),
            actions=np.asarray(self.actions, np.float32).reshape(-1, sp.action_dim),
            subtasks=list(self.subtasks), frames={k: np.asarray(v, np.uint8) for k, v in self.frames.items()},
            success=bool(self.success if success is None else success), tier=self.tier, seed=self.seed,
        )


def rollout(env, policy_fn: Callable | Any, max_steps: int | None = None, seed: int | None = None,
            record_frames: bool = True, tier: str = "synthetic", extra_steps_after_success: int = 0,
            start_obs: dict | None = None) -> Episode:
    """Run one episode. ``policy_fn`` is ``obs -> action`` or an object with ``.act(obs)``; if it has
    a ``.subtask`` attribute that label is recorded, else the env's oracle ``info["subtask"]``.
    ``start_obs``: continue from the env's current state (the observation it last returned) instead
    of resetting it, e.g. to hand a robot over mid-episode; recording starts there."""
    env_u = env.unwrapped if hasattr(env, "unwrapped") else env
    act = policy_fn.act if hasattr(policy_fn, "act") else policy_fn
    owner = policy_fn if hasattr(policy_fn, "act") else getattr(policy_fn, "__self__", None)
    obs, info = (start_obs, {}) if start_obs is not None else env.reset(seed=seed)
    rec = EpisodeRecorder(env_u, tier=tier, seed=seed, record_frames=record_frames)
    max_steps = max_steps or env_u.max_steps
    after = None
    for _ in range(max_steps):
        a = act(obs)
        sub = getattr(owner, "subtask", None) or info.get("subtask", "")
        rec.add(obs, a, sub)
        obs, r, term, trunc, info = env.step(a)
        if info.get("success"):
            rec.success = True
            after = extra_steps_after_success if after is None else after - 1
        if (term and after is not None and after <= 0) or trunc or (term and after is None):
            break
    return rec.finish()
