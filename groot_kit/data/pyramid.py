"""Data pyramid tiers 2 and 3: MimicGen-style demo multiplication and action-free video export.

MimicGen (Mandlekar et al. 2023) in brief: split each human demo into object-centric segments
(one per sub-task), express the end-effector path of a segment in the frame of the object that
segment acts on, and under a new scene (new object poses) replay it as
``T_eef_new = T_obj_new @ inv(T_obj_src) @ T_eef_src``, bridged from the current pose by a short
interpolation; the arm follows the poses through IK. Only successful replays are kept.

The environment side is a small protocol (``MimicEnv``) so the same code drives the toy 2-D world
here and the MuJoCo arms of ``groot_kit.sim``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

from .episode import EpisodeData


# ----------------------------------------------------------------------------- poses
def pose_mat(pos, rot: np.ndarray | None = None) -> np.ndarray:
    """4x4 homogeneous pose from a position (2 or 3 values) and optional 3x3 rotation."""
    T = np.eye(4)
    p = np.asarray(pos, dtype=np.float64).reshape(-1)
    T[: len(p), 3] = p
    if rot is not None:
        T[:3, :3] = rot
    return T


def transform_segment(eef_src: np.ndarray, obj_src: np.ndarray, obj_new: np.ndarray) -> np.ndarray:
    """[T,4,4] eef poses recorded relative to ``obj_src`` -> the same relative path around ``obj_new``."""
    return obj_new @ np.linalg.inv(obj_src) @ eef_src


def interpolate_poses(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """n poses from a (excluded) to b (included): linear position, rotation via SVD-projected lerp."""
    out = []
    for k in range(1, n + 1):
        s = k / n
        T = np.eye(4)
        T[:3, 3] = (1 - s) * a[:3, 3] + s * b[:3, 3]
        u, _, vt = np.linalg.svd((1 - s) * a[:3, :3] + s * b[:3, :3])
        T[:3, :3] = u @ vt
        out.append(T)
    return np.stack(out) if out else np.zeros((0, 4, 4))


def split_segments(subtasks: list[str]) -> list[tuple[str, int, int]]:
    """Consecutive runs of equal sub-task labels -> [(label, start, end)] (end exclusive)."""
    segs, start = [], 0
    for t in range(1, len(subtasks) + 1):
        if t == len(subtasks) or subtasks[t] != subtasks[start]:
            segs.append((subtasks[start], start, t))
            start = t
    return segs


@dataclass
class SourceDemo:
    """What multiplication needs from one human demo."""

    eef_poses: np.ndarray  # [T, 4, 4]
    gripper: np.ndarray  # [T] gripper command
    subtasks: list[str]  # [T]
    segment_objects: dict[str, str]  # sub-task label -> object name the segment is relative to
    object_poses: list[dict[str, np.ndarray]]  # per frame {object: 4x4} (pose at segment start is used)
    instruction: str = ""
    source_id: str = ""


class MimicEnv(Protocol):
    def reset_scene(self, rng: np.random.Generator) -> None: ...
    def object_pose(self, name: str) -> np.ndarray: ...
    def eef_pose(self) -> np.ndarray: ...
    def servo(self, target: np.ndarray, gripper: float) -> None: ...  # one control step toward target (IK)
    def success(self) -> bool: ...
    def episode(self, instruction: str, subtasks: list[str]) -> EpisodeData: ...


@dataclass
class MultiplyReport:
    attempted: int = 0
    succeeded: int = 0
    per_source: dict[str, list[int]] = field(default_factory=dict)  # source -> [attempts, successes]

    @property
    def success_rate(self) -> float:
        return self.succeeded / max(1, self.attempted)

    def to_dict(self) -> dict[str, Any]:
        return {"attempted": self.attempted, "succeeded": self.succeeded,
                "success_rate": round(self.success_rate, 4), "per_source": self.per_source}


def multiply_demos(sources: list[SourceDemo], env: MimicEnv, n_attempts: int, seed: int = 0,
                   bridge_steps: int = 5, keep_failures: bool = False,
                   progress: Callable[[int, int], None] | None = None) -> tuple[list[EpisodeData], MultiplyReport]:
    """Generate ``n_attempts`` new demos; returns the successful ones (tier 'synthetic') and a report."""
    rng = np.random.default_rng(seed)
    rep = MultiplyReport()
    kept: list[EpisodeData] = []
    for a in range(n_attempts):
        src = sources[int(rng.integers(len(sources)))]
        env.reset_scene(rng)
        labels: list[str] = []
        for label, s, e in split_segments(src.subtasks):
            obj = src.segment_objects.get(label)
            path = src.eef_poses[s:e]
            if obj is not None:
                path = transform_segment(path, src.object_poses[s][obj], env.object_pose(obj))
            cur = env.eef_pose()
            nb = env.bridge_steps(cur, path[0]) if hasattr(env, "bridge_steps") else bridge_steps
            bridge = interpolate_poses(cur, path[0], nb)
            for T in bridge:
                env.servo(T, float(src.gripper[s]))
                labels.append(label)
            for k, T in enumerate(path):
                env.servo(T, float(src.gripper[s + k]))
                labels.append(label)
        ok = bool(env.success())
        rep.attempted += 1
        rep.succeeded += ok
        st = rep.per_source.setdefault(src.source_id or str(id(src)), [0, 0])
        st[0] += 1
        st[1] += ok
        if ok or keep_failures:
            ep = env.episode(src.instruction, labels)
            ep.tier, ep.success = "synthetic", ok
            ep.provenance = {"method": "mimicgen", "source": src.source_id, "attempt": a, "seed": seed}
            kept.append(ep)
        if progress:
            progress(a + 1, n_attempts)
    return kept, rep


# ----------------------------------------------------------------------------- toy env
class ToyMimicEnv:
    """MimicEnv over the toy 2-D world (eef = agent, object 'target'); velocity-limited servoing."""

    def __init__(self, size: int = 64, max_step: float = 0.1, noise: float = 0.01):
        self.size, self.max_step, self.noise = size, max_step, noise

    def reset_scene(self, rng):
        self.rng = rng
        self.pos = rng.uniform(-0.8, 0.8, 2)
        self.target = rng.uniform(-0.8, 0.8, 2)
        self.grip = 0.0
        self.S, self.A, self.F = [], [], []

    def object_pose(self, name):
        return pose_mat(self.target)

    def eef_pose(self):
        return pose_mat(self.pos)

    def servo(self, target, gripper):
        from .toy import render_toy

        self.S.append([*self.pos, self.grip])
        self.F.append(render_toy(self.pos, self.target, self.size, self.grip))
        delta = np.clip(target[:2, 3] - self.pos, -self.max_step, self.max_step)
        delta = delta + self.noise * self.rng.normal(size=2)
        self.A.append([*delta, gripper])
        self.pos = np.clip(self.pos + delta, -1, 1)
        self.grip = gripper

    def success(self):
        return bool(np.linalg.norm(self.pos - self.target) < 0.08 and self.grip > 0.5)

    def episode(self, instruction, subtasks):
        return EpisodeData(states=np.asarray(self.S, np.float32), actions=np.asarray(self.A, np.float32),
                           frames={"front": np.stack(self.F)}, instruction=instruction, subtasks=list(subtasks))


def toy_source_demos(episodes: list[EpisodeData]) -> list[SourceDemo]:
    """SourceDemo from toy episodes (the target pose is read from provenance-free geometry: last grasp pos)."""
    out = []
    for i, ep in enumerate(episodes):
        pos = ep.states[:, :2]
        target = ep.extra.get("target", pos[-1])
        out.append(SourceDemo(eef_poses=np.stack([pose_mat(p) for p in pos]), gripper=ep.actions[:, 2],
                              subtasks=list(ep.subtasks), segment_objects={"reach": "target", "grasp": "target"},
                              object_poses=[{"target": pose_mat(target)}] * len(pos), instruction=ep.instruction,
                              source_id=f"demo{i}"))
    return out


# ----------------------------------------------------------------------------- video tier
def to_video_tier(episodes: list[EpisodeData], keep_state: bool = False) -> list[EpisodeData]:
    """Action-free copies (tier 'video'); true actions are held back in ``extra['held_back_actions']``
    (never written) so pseudo-labels can be scored."""
    out = []
    for ep in episodes:
        out.append(EpisodeData(states=ep.states if keep_state else None, actions=None, frames=ep.frames,
                               instruction=ep.instruction, subtasks=ep.subtasks, tier="video",
                               provenance={**ep.provenance, "derived": "video_only", "from_tier": ep.tier},
                               success=ep.success,
                               extra={**ep.extra, "held_back_actions": ep.actions, "held_back_states": ep.states}))
    return out


def video_modality(modality, keep_state: bool = False):
    """The modality of an action-free dataset: same cameras, no action (and by default no state)."""
    from .modality import ModalityConfig

    return ModalityConfig(state=dict(modality.state) if keep_state else {}, action={}, video=dict(modality.video),
                          annotation=dict(modality.annotation))


def pyramid_summary(infos: dict[str, Any]) -> dict[str, dict[str, float]]:
    """{tier: {episodes, frames, hours}} over DatasetInfo objects (by episode tier)."""
    out: dict[str, dict[str, float]] = {}
    for info in infos.values():
        lens = [e["length"] for e in info.groot.get("episodes", [])] or [info.num_frames / max(1, info.num_episodes)] * info.num_episodes
        for tier, n in zip(info.episode_tiers(), lens):
            d = out.setdefault(tier, {"episodes": 0, "frames": 0, "hours": 0.0})
            d["episodes"] += 1
            d["frames"] += int(n)
            d["hours"] += n / info.fps / 3600
    return out
