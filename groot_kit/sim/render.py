"""Offscreen camera rendering shared by the envs and the dual-rate demo's System 2 thread."""
from __future__ import annotations

import os

import mujoco
import numpy as np


def render_view(renderers: dict, model, data, cam_ids: list[int], size: int) -> np.ndarray:
    """Render cameras ``cam_ids`` into one (size, size, 3) uint8 image, tiled left to right (each a
    size-high, ~size/n-wide strip with its own narrower field of view). ``renderers`` caches one
    mujoco.Renderer per strip shape; the caller closes them."""
    n = len(cam_ids)
    widths = [size // n + (1 if i < size % n else 0) for i in range(n)]
    strips = []
    for cid, w in zip(cam_ids, widths):
        if (size, w) not in renderers:
            try:
                renderers[(size, w)] = mujoco.Renderer(model, size, w)
            except Exception as e:
                raise RuntimeError(
                    f"MuJoCo could not create an offscreen renderer with MUJOCO_GL={os.environ.get('MUJOCO_GL')!r} "
                    f"({e}). Fix: install Mesa EGL (see scripts/install_system_deps.sh) or set MUJOCO_GL=osmesa "
                    f"before importing mujoco; or pass render=False for state-only runs") from None
        r = renderers[(size, w)]
        r.update_scene(data, camera=cid)
        strips.append(r.render())
    return strips[0] if n == 1 else np.concatenate(strips, axis=1)
