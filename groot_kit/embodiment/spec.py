"""What an embodiment *is*: the loaded, validated description of one robot body.

:class:`EmbodimentSpec` is what :func:`groot_kit.embodiment.load_embodiment` returns; it is built
only by :mod:`groot_kit.embodiment.loader` from a folder's ``embodiment.yaml`` + ``modality.json``.

The *slot id* picks this body's weight slice in the model's category-specific layers
(``E = NUM_SLOTS = 32`` slots). Actions are **absolute joint position targets** (radians) per arm
key plus, per gripper key, a command in [0, 1] (0 = open, 1 = closed); the gripper state is the
measured closure in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

NUM_SLOTS = 32
NORMALIZATION_MODES = ("min_max", "q99", "mean_std", "binary")


class EmbodimentError(ValueError):
    """A bad embodiment folder, spec or name. The message names the file/field and the fix."""


@dataclass
class KeySpec:
    """One state or action key: a slice [start, end) of the flat vector."""

    name: str
    dim: int
    start: int
    end: int
    normalization: str
    source: str  # "joints" or "gripper"
    joints: list[str] = field(default_factory=list)
    arm: str | None = None


@dataclass
class ArmInfo:
    """One serial arm, as the scripted experts and IK need it (names are MJCF names)."""

    name: str
    joints: list[str]
    ee_site: str
    home: list[float]
    gripper_joints: list[str]
    gripper_open: float
    camera: str | None


@dataclass
class EmbodimentSpec:
    """One robot body: files, joints and limits, arms, cameras, state/action layout, tasks.

    ``root`` is the folder it was read from; ``modality`` is the parsed ``modality.json``.
    """

    name: str
    tag: str
    slot_id: int
    root: Path
    robot_xml: Path
    scene_xml: Path
    control_hz: float
    joint_limits: dict[str, tuple[float, float]]
    arms: dict[str, ArmInfo]
    cameras: dict[str, str | list[str]]  # video key -> MJCF camera, or a list tiled left to right in one image
    state: dict[str, KeySpec]
    action: dict[str, KeySpec]
    tasks: list[str]
    task_layout: dict[str, Any]
    modality: dict[str, Any]
    description: str = ""

    @property
    def state_dim(self) -> int:
        return sum(k.dim for k in self.state.values())

    @property
    def action_dim(self) -> int:
        return sum(k.dim for k in self.action.values())

    @property
    def video_keys(self) -> list[str]:
        return list(self.cameras)

    def camera_names(self, key: str) -> list[str]:
        """The MJCF camera(s) behind video key ``key`` (several = tiled side by side in one image)."""
        return camera_list(self.cameras[key])

    @property
    def control_dt(self) -> float:
        return 1.0 / self.control_hz

    def action_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = np.zeros(self.action_dim, np.float32), np.zeros(self.action_dim, np.float32)
        for k in self.action.values():
            if k.source == "joints":
                lo[k.start:k.end] = [self.joint_limits[j][0] for j in k.joints]
                hi[k.start:k.end] = [self.joint_limits[j][1] for j in k.joints]
            else:
                lo[k.start:k.end], hi[k.start:k.end] = 0.0, 1.0
        return lo, hi

    def home_action(self) -> np.ndarray:
        a = np.zeros(self.action_dim, np.float32)
        for k in self.action.values():
            if k.source == "joints":
                for i, j in enumerate(k.joints):
                    for arm in self.arms.values():
                        if j in arm.joints:
                            a[k.start + i] = arm.home[arm.joints.index(j)]
        return a

    def __repr__(self) -> str:
        return (f"EmbodimentSpec(name={self.name!r}, slot_id={self.slot_id}, state_dim={self.state_dim}, "
                f"action_dim={self.action_dim}, control_hz={self.control_hz}, cameras={self.video_keys}, "
                f"tasks={self.tasks})")


def camera_list(value) -> list:
    """A ``cameras`` entry as a list: one MJCF camera name, or several tiled side by side."""
    return [value] if isinstance(value, str) else list(value) if isinstance(value, list) else []


def modality_dict(state: dict[str, int], action: dict[str, int], cameras: list[str]) -> dict:
    """GR00T-schema modality.json content from ordered {key: dim} maps."""
    def ranges(d):
        out, s = {}, 0
        for k, n in d.items():
            out[k] = {"start": s, "end": s + n}
            s += n
        return out
    return {
        "state": ranges(state),
        "action": ranges(action),
        "video": {c: {"original_key": f"observation.images.{c}"} for c in cameras},
        "annotation": {"human.task_description": {"original_key": "task_index"},
                       "human.subtask": {"original_key": "subtask_index"}},
    }

