"""A plain-numpy episode: the unit every pyramid tier produces and the writer consumes."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import DataError

TIERS = ("teleop", "synthetic", "video")


@dataclass
class EpisodeData:
    """One episode.

    states:  float [T, Ds] (flat, keys concatenated in modality order) or None
    actions: float [T, Da] or None (video tier: no actions)
    frames:  {camera: uint8 [T, H, W, 3]}
    instruction: task text; subtasks: per-frame sub-task text (len T) or None
    tier: "teleop" | "synthetic" | "video"; provenance: free-form JSON-able dict
    """

    states: np.ndarray | None
    actions: np.ndarray | None
    frames: dict[str, np.ndarray]
    instruction: str
    subtasks: list[str] | None = None
    tier: str = "teleop"
    provenance: dict[str, Any] = field(default_factory=dict)
    success: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # not written (e.g. object poses, env state)

    def __len__(self) -> int:
        for a in (self.states, self.actions, *self.frames.values()):
            if a is not None:
                return int(len(a))
        return 0

    def validate(self, where: str = "episode") -> None:
        if self.tier not in TIERS:
            raise DataError(f"{where}.tier", f"unknown tier '{self.tier}'", f"use one of {TIERS}")
        T = len(self)
        if T == 0:
            raise DataError(where, "episode has no frames", "record at least one step")
        for name, a in (("states", self.states), ("actions", self.actions)):
            if a is None:
                continue
            if a.ndim != 2 or len(a) != T:
                raise DataError(f"{where}.{name}", f"shape {a.shape} is not [T={T}, dim]",
                                "pass one row per frame")
            if not np.isfinite(a).all():
                bad = np.argwhere(~np.isfinite(a))[0]
                raise DataError(f"{where}.{name}", f"NaN/inf at frame {bad[0]}, dim {bad[1]}",
                                "drop or repair the episode before writing")
        for cam, f in self.frames.items():
            if f.ndim != 4 or f.shape[-1] != 3 or len(f) != T or f.dtype != np.uint8:
                raise DataError(f"{where}.frames['{cam}']", f"got {f.dtype} {f.shape}",
                                f"pass uint8 [T={T}, H, W, 3]")
        if self.subtasks is not None and len(self.subtasks) != T:
            raise DataError(f"{where}.subtasks", f"{len(self.subtasks)} labels for {T} frames",
                            "give one sub-task string per frame")


def from_sim_episode(ep: Any, tier: str = "synthetic", provenance: dict | None = None,
                     instruction: str | None = None) -> EpisodeData:
    """Adapt a ``groot_kit.sim`` Episode (frames/states/actions/subtasks/success) to EpisodeData."""
    if isinstance(ep, EpisodeData):
        return ep
    frames = getattr(ep, "frames")
    if not isinstance(frames, dict):  # single camera array
        frames = {"front": np.asarray(frames)}
    frames = {k: np.asarray(v, dtype=np.uint8) for k, v in frames.items()}

    def flat(x):
        if x is None:
            return None
        if isinstance(x, dict):
            return np.concatenate([np.asarray(v, np.float32).reshape(len(v), -1) for v in x.values()], axis=1)
        return np.asarray(x, dtype=np.float32)

    subtasks = getattr(ep, "subtasks", None)
    return EpisodeData(
        states=flat(getattr(ep, "states", None)),
        actions=flat(getattr(ep, "actions", None)),
        frames=frames,
        instruction=instruction or getattr(ep, "instruction", None) or getattr(ep, "task", None) or "",
        subtasks=list(subtasks) if subtasks is not None else None,
        tier=tier,
        provenance=dict(provenance or {}),
        success=getattr(ep, "success", None),
        extra=dict(getattr(ep, "info", None) or {}),
    )
