"""A tiny numpy 2-D world (a square agent reaching a target, then closing a gripper).

Used by tests and by notebooks as a stand-in where MuJoCo is not needed: frames show the agent
(green) and the target (red), so actions are visible in consecutive frames (for IDM / latent actions).
"""
from __future__ import annotations

import numpy as np

from .episode import EpisodeData
from .modality import ModalityConfig


def toy_modality() -> ModalityConfig:
    return ModalityConfig.from_dims({"pos": 2, "gripper": 1}, {"delta": 2, "gripper": 1}, ["front"])


def render_toy(pos: np.ndarray, target: np.ndarray, size: int = 64, grip: float = 0.0) -> np.ndarray:
    img = np.full((size, size, 3), 40, np.uint8)
    r = max(2, size // 16)

    def square(p, color):
        c = np.clip(((np.asarray(p) + 1) / 2 * (size - 1)).round().astype(int), 0, size - 1)
        img[max(0, c[1] - r):c[1] + r + 1, max(0, c[0] - r):c[0] + r + 1] = color

    square(target, (220, 40, 40))
    square(pos, (40, 220, 40 + int(180 * grip)))
    return img


def toy_episodes(n: int, T: int = 40, size: int = 64, seed: int = 0, tier: str = "teleop",
                 noise: float = 0.02, instruction: str = "move the green block onto the red mark") -> list[EpisodeData]:
    rng = np.random.default_rng(seed)
    eps = []
    for i in range(n):
        pos = rng.uniform(-0.8, 0.8, 2)
        target = rng.uniform(-0.8, 0.8, 2)
        S, A, F, sub = [], [], [], []
        grip = 0.0
        for t in range(T):
            S.append([*pos, grip])
            F.append(render_toy(pos, target, size, grip))
            d = target - pos
            near = np.linalg.norm(d) < 0.05
            delta = np.clip(0.25 * d, -0.1, 0.1) + noise * rng.normal(size=2)
            g = 1.0 if near or grip > 0.5 else 0.0
            A.append([*delta, g])
            sub.append("grasp" if near or grip > 0.5 else "reach")
            pos = np.clip(pos + delta, -1, 1)
            grip = g
        eps.append(EpisodeData(states=np.asarray(S, np.float32), actions=np.asarray(A, np.float32),
                               frames={"front": np.stack(F)}, instruction=instruction, subtasks=sub, tier=tier,
                               provenance={"source": "toy", "seed": seed, "index": i},
                               success=bool(np.linalg.norm(target - pos) < 0.08), extra={"target": target.copy()}))
    return eps
