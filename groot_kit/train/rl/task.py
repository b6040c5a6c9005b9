"""The RL task (env + dense reward + observation builders) and imitation: expert demos -> flow-matching BC."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from groot_kit.constants import TASK_KEY
from groot_kit.eval.seeds import TUNING_SEEDS

EVAL_SEED_OFFSET = TUNING_SEEDS.start  # evaluation scenes never overlap demo / training seeds
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


def env_kwargs(cfg: RLTaskConfig) -> dict:
    """make_env keywords of the RL task's env (besides embodiment, task, image size and seed)."""
    return dict(randomize=cfg.randomize, render=False, max_episode_steps=cfg.max_episode_steps,
                num_cubes=cfg.num_cubes)


class RLTask:
    """One env of the RL task. ``step`` returns the shaped reward; ``info['success']`` is the env's."""

    def __init__(self, cfg: RLTaskConfig, seed: int = 0, env=None):
        """`env`: an env made with `env_kwargs(cfg)` to wrap (evaluation); None makes one."""
        from groot_kit.sim import make_env
        self.cfg = cfg
        self.env = env if env is not None else make_env(cfg.embodiment, cfg.task, image_size=cfg.image_size, seed=seed,
                                                        **env_kwargs(cfg))
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
    from groot_kit.data.sim_data import norm_modes_for
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
    modes = norm_modes_for(sp)   # embodiment.yaml's modes, as for every dataset of this robot
    stats = NormalizationStats.from_arrays(states, actions, mod, modes=modes)
    return GrootProcessor.for_policy(pc, mod, stats, sp.slot_id, f"{cfg.embodiment}_{cfg.task}_rl")


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
