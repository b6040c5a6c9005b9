"""groot_kit: learn, fine-tune and deploy a GR00T-N1-style vision-language-action model."""

import os as _os
import sys as _sys

# Headless MuJoCo rendering must be chosen before mujoco is first imported (anywhere).
if _sys.platform.startswith("linux"):
    _os.environ.setdefault("MUJOCO_GL", "egl")
    _os.environ.setdefault("PYOPENGL_PLATFORM", _os.environ["MUJOCO_GL"])

__version__ = "0.1.0"

# One place for third-party log noise (FFmpeg encoder summaries, datasets progress bars).
from groot_kit.logs import quiet_third_party_logs as _quiet

_quiet()
