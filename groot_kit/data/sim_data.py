"""Hooks from ``groot_kit.sim`` (MuJoCo) to datasets: record expert / simulated-teleop datasets and
multiply teleop demos MimicGen-style in the real physics (IK through the sim's ArmIK)."""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .episode import EpisodeData, from_sim_episode
from .modality import SUBTASK_FEATURE, SUBTASK_ANNOTATION, ModalityConfig
from .pyramid import SourceDemo, multiply_demos, pose_mat
from .writer import EncoderOptions, write_dataset

#: which object each pick-and-place sub-task is relative to (MimicGen's object-centric segments)
PICK_PLACE_OBJECTS = {"reach": "cube", "grasp": "cube", "lift": "cube", "move": "bin", "place": "bin", "release": "bin"}


def modality_for(spec) -> ModalityConfig:
    """The embodiment's modality.json, with the sub-task annotation pointing at the feature we write."""
    m = ModalityConfig.from_dict(spec.modality, source=str(Path(spec.root) / "modality.json"))
    m.annotation[SUBTASK_ANNOTATION] = SUBTASK_FEATURE
    return m


def norm_modes_for(spec) -> dict[str, str]:
    """Per-key normalization modes declared in embodiment.yaml."""
    out = {f"state.{k}": v.normalization for k, v in spec.state.items()}
    out.update({f"action.{k}": v.normalization for k, v in spec.action.items()})
    return out


def sim_episodes(embodiment: str, task: str, n: int, image_size: int = 96, seed: int = 0, teleop: bool = False,
                 timings: dict | None = None, only_success: bool = False, max_tries: int | None = None
                 ) -> Iterator[EpisodeData]:
    """Yield ``n`` episodes from the scripted expert (tier 'synthetic', domain-randomised) or the
    simulated operator (tier 'teleop'). ``timings`` (if given) accumulates sim seconds and frames."""
    from groot_kit.sim import make_env, make_expert, rollout
    from groot_kit.sim.teleop import SimulatedOperator

    env = make_env(embodiment, task, image_size=image_size, seed=seed)
    tier = "teleop" if teleop else "synthetic"
    made, k = 0, 0
    try:
        while made < n and k < (max_tries or 3 * n):
            s = seed + k
            k += 1
            t0 = time.perf_counter()
            pol = SimulatedOperator(env, seed=s) if teleop else make_expert(env)
            ep = rollout(env, pol, seed=s, tier=tier)
            if timings is not None:
                timings["sim_s"] = timings.get("sim_s", 0.0) + time.perf_counter() - t0
                timings["frames"] = timings.get("frames", 0) + len(ep)
            if only_success and not ep.success:
                continue
            made += 1
            yield from_sim_episode(ep, tier=tier, provenance={
                "source": "simulated_operator" if teleop else "scripted_expert", "embodiment": embodiment,
                "task": task, "seed": s, "domain_randomization": True, **{k2: v for k2, v in ep.meta.items()
                                                                           if isinstance(v, (int, float, str))}})
    finally:
        env.close()


def prefetch(iterable, depth: int = 2) -> Iterator:
    """Run a generator in a background thread (MuJoCo stepping/rendering and video encoding release the
    GIL, so simulating episode k+1 overlaps with encoding episode k on a 2-core machine)."""
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def work():
        try:
            for x in iterable:
                if stop.is_set():
                    break
                q.put(x)
        except BaseException as e:  # re-raised in the consumer
            q.put(e)
        finally:
            q.put(done)

    th = threading.Thread(target=work, daemon=True)
    th.start()
    try:
        while True:
            x = q.get()
            if x is done:
                break
            if isinstance(x, BaseException):
                raise x
            yield x
    finally:
        stop.set()
        while th.is_alive():
            try:
                q.get_nowait()
            except Exception:
                pass
            th.join(timeout=0.05)


def record_sim_dataset(root: str | Path, embodiment: str, task: str, n_episodes: int, image_size: int = 96,
                       seed: int = 0, teleop: bool = False, encoder: EncoderOptions | None = None,
                       overwrite: bool = False, only_success: bool = False, parallel: bool = True) -> dict[str, Any]:
    """Record a dataset from MuJoCo and write it (LeRobot v3.0 + modality.json). Returns figures."""
    from groot_kit.embodiment import load_embodiment

    spec = load_embodiment(embodiment)
    tm: dict[str, Any] = {}
    t0 = time.perf_counter()
    gen = sim_episodes(embodiment, task, n_episodes, image_size, seed, teleop, tm, only_success)
    path = write_dataset(prefetch(gen) if parallel else gen,
                         root, modality_for(spec), fps=int(spec.control_hz), robot_type=spec.name,
                         embodiment=spec.name, embodiment_id=spec.slot_id, encoder=encoder, overwrite=overwrite)
    total = time.perf_counter() - t0
    return {"path": str(path), "frames": tm.get("frames", 0), "seconds": total, "sim_seconds": tm.get("sim_s", 0.0),
            "frames_per_s": tm.get("frames", 0) / max(total, 1e-9)}


# ------------------------------------------------------------------------------ MimicGen in MuJoCo
def _object_poses(env) -> dict[str, np.ndarray]:
    T = env.target
    return {"cube": pose_mat(env.body_pos(T["cube"]), env.body_mat(T["cube"])),
            "bin": pose_mat(np.asarray(T["bin_pos"], float))}


def source_demo_from_sim(env, ep, source_id: str = "") -> SourceDemo:
    """Replay a recorded single-arm pick_place episode (same seed) to recover the end-effector path and
    the object poses at each step (the Episode itself stores only joints)."""
    seed = ep.provenance.get("seed") if isinstance(ep, EpisodeData) else ep.seed
    env.reset(seed=seed)
    arm = env.target["arm"]
    eef, objs = [], []
    for a in ep.actions:
        p, R = env.ee_pose(arm)
        eef.append(pose_mat(p, R))
        objs.append(_object_poses(env))
        env.step(a)
    grip = np.asarray(ep.actions)[:, list(env.spec_e.action).index("gripper")] if "gripper" in env.spec_e.action \
        else np.zeros(len(ep.actions))
    gk = env.spec_e.action.get("gripper")
    if gk is not None:
        grip = np.asarray(ep.actions)[:, gk.start]
    return SourceDemo(eef_poses=np.stack(eef), gripper=grip, subtasks=list(ep.subtasks),
                      segment_objects=PICK_PLACE_OBJECTS, object_poses=objs, instruction=ep.instruction,
                      source_id=source_id)


class SimMimicEnv:
    """MimicEnv (see pyramid.py) over a single-arm ``pick_place`` GrootSimEnv."""

    def __init__(self, env, seed_offset: int = 10_000, speed: float | None = None):
        from groot_kit.sim.expert import ScriptedExpert

        self.env, self.seed_offset = env, seed_offset
        self._Expert = ScriptedExpert
        self.speed = speed or float(env.layout.get("speed", 0.3))

    def reset_scene(self, rng):
        from groot_kit.sim.rollout import EpisodeRecorder

        self.seed = int(self.seed_offset + rng.integers(1_000_000))
        self.obs, _ = self.env.reset(seed=self.seed)
        self.arm = self.env.target["arm"]
        ex = self._Expert(self.env)
        ex.reset()
        self.ctl, self.ex = ex.ctl, ex
        for c in self.ctl.values():
            c.q = self.env.data.qpos[self.env.arms[c.arm].qadr].copy()
        self.rec = EpisodeRecorder(self.env, tier="synthetic", seed=self.seed)
        self.ok = False

    def object_pose(self, name):
        return _object_poses(self.env)[name]

    def eef_pose(self):
        p, R = self.env.ee_pose(self.arm)
        return pose_mat(p, R)

    def bridge_steps(self, a, b) -> int:
        d = float(np.linalg.norm(a[:3, 3] - b[:3, 3]))
        return max(3, int(math.ceil(d / (self.speed * self.env.spec_e.control_dt))))

    def servo(self, target, gripper):
        c = self.ctl[self.arm]
        c.pos, c.rot, c.grip = target[:3, 3].copy(), target[:3, :3].copy(), float(gripper)
        c.solve()
        a = self.ex._action()
        self.rec.add(self.obs, a, "")
        self.obs, _, _, _, info = self.env.step(a)
        self.ok |= bool(info.get("success"))

    def success(self):
        return self.ok

    def episode(self, instruction, subtasks):
        ep = self.rec.finish(success=self.ok)
        ep.subtasks = list(subtasks)
        out = from_sim_episode(ep, tier="synthetic", instruction=self.env.instruction)
        out.provenance = {"seed": self.seed}
        return out


def multiply_sim_demos(embodiment: str, sources: list[EpisodeData], n_attempts: int, image_size: int = 96,
                       seed: int = 0, progress: Callable | None = None):
    """MimicGen-style multiplication of a few single-arm pick_place demos in MuJoCo.

    Returns (successful episodes, MultiplyReport)."""
    from groot_kit.sim import make_env

    env = make_env(embodiment, "pick_place", image_size=image_size, seed=seed)
    try:
        src = [source_demo_from_sim(env, ep, f"demo{i}") for i, ep in enumerate(sources)]
        return multiply_demos(src, SimMimicEnv(env), n_attempts, seed=seed, progress=progress)
    finally:
        env.close()
