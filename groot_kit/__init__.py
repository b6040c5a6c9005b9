"""groot_kit: learn, fine-tune and deploy a GR00T-N1-style vision-language-action model."""

from groot_kit.constants import configure_rendering as _configure_rendering

# Headless MuJoCo rendering must be chosen before mujoco is first imported (anywhere): every
# `import groot_kit.<anything>` runs this first.
_configure_rendering()

__version__ = "0.1.0"

# One place for third-party log noise (FFmpeg encoder summaries, datasets progress bars).
from groot_kit.logs import quiet_third_party_logs as _quiet

_quiet()
