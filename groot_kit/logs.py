"""Quiet third-party logs: the one place that decides what the kit's libraries may print.

Called once from ``groot_kit/__init__.py``, so every entry point (notebooks, the CLI, scripts,
tests) gets it by importing the package. What it silences and why:

* FFmpeg (inside PyAV, which lerobot uses to write and probe videos). lerobot's encoder calls
  ``av.logging.restore_default_callback()`` after every video, which hands FFmpeg's log back to its
  C default: every libx264 encoder summary (~20 lines per video) and mp4 muxer note goes straight
  to file descriptor 2 and shows as a red stderr block in a notebook. The default callback honours
  FFmpeg's global level, so setting that level to ERROR keeps real errors and drops the chatter,
  whatever callback lerobot installs afterwards.
* Hugging Face ``datasets``: lerobot loads each episode's parquet through ``datasets``, which shows
  a "Map: 100%" tqdm bar per dataset (a widget in notebooks). ``disable_progress_bars()`` alone does
  not last: lerobot's ``SuppressProgressBars`` re-enables the bars on exit. The environment switch
  has priority over both; the warning ``enable_progress_bars`` then gives is expected and filtered.

Set ``GROOT_KIT_VERBOSE_LOGS=1`` to keep every library's default output (for debugging an encoder).
"""

from __future__ import annotations

import os
import sys
import warnings

FFMPEG_LEVEL = 16  # AV_LOG_ERROR: errors still print; INFO/VERBOSE encoder summaries do not


def quiet_third_party_logs(force: bool = False) -> bool:
    """Silence encoder logs and progress bars; returns False when left verbose on request.

    Cheap and idempotent: environment switches are read by libraries imported later, and
    libraries already imported are switched directly.
    """
    if os.environ.get("GROOT_KIT_VERBOSE_LOGS") == "1" and not force:
        return False
    # Read by datasets / huggingface_hub when they are first imported.
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore", message="Cannot enable progress bars", category=UserWarning)
    if "datasets.utils.tqdm" in sys.modules:  # imported before us: give the live module the same priority
        bars = sys.modules["datasets.utils.tqdm"]
        bars.HF_DATASETS_DISABLE_PROGRESS_BARS = True
        bars.disable_progress_bars()
    try:
        import av.logging  # PyAV's bundled FFmpeg; lerobot encodes and probes videos through it
    except ImportError:  # lerobot[dataset] brings PyAV; without it there is no encoder to quiet
        return True
    av.logging.set_libav_level(FFMPEG_LEVEL)
    return True
