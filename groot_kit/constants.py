"""Names and environment defaults the whole kit shares, each defined once.

``configure_rendering()`` runs when ``groot_kit`` is imported (``groot_kit/__init__.py``), so any
``import groot_kit...`` before ``import mujoco`` gets headless rendering; nothing else in the kit
sets ``MUJOCO_GL``.
"""

from __future__ import annotations

import os
import sys
import warnings

# GR00T's language key: the instruction in an observation dict, a dataset's annotation column and
# the processor's text input are all addressed by it.
TASK_KEY = "annotation.human.task_description"


def configure_rendering() -> None:
    """Default to headless MuJoCo rendering on Linux: ``MUJOCO_GL=egl`` and a matching
    ``PYOPENGL_PLATFORM``, unless already set (e.g. ``MUJOCO_GL=osmesa`` without EGL, or ``glfw`` on
    a desktop). MuJoCo picks its GL backend when ``mujoco`` is first imported, so a late default has
    no effect: warn about that case instead of failing later at the first render."""
    if not sys.platform.startswith("linux"):
        return  # macOS/Windows: MuJoCo's own default (a windowed context) is the right one
    was_set = "MUJOCO_GL" in os.environ
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
    if "mujoco" in sys.modules and not was_set:
        warnings.warn("mujoco was imported before groot_kit set MUJOCO_GL=egl; headless rendering may fail. "
                      "Set MUJOCO_GL=egl in the environment (or import groot_kit first).", RuntimeWarning,
                      stacklevel=2)
