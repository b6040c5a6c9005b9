"""Episodes -> LeRobotDataset v3.0 (through lerobot's own writer) + meta/modality.json.

Atomic: everything is written into a hidden temp folder beside ``root`` and renamed into place
only after ``finalize()``; an interrupted write leaves no half dataset behind.
"""
from __future__ import annotations

import contextlib
import json
import math
import shutil
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from groot_kit.fileio import atomic_directory

from .episode import EpisodeData, from_sim_episode
from .errors import DataError
from .modality import ACTION_FEATURE, STATE_FEATURE, SUBTASK_FEATURE, ModalityConfig

GROOT_META = "meta/groot_kit.json"
MODALITY_FILE = "meta/modality.json"


@dataclass
class EncoderOptions:
    """Video encoder knobs passed to ``LeRobotDataset.create``, plus how image statistics are sampled.

    Measured on the 2-core dev machine at 96 px (noise-like frames, 400 frames):
    lerobot default (AV1, PNG then encode) ~270 frames/s, AV1 streaming ~520 frames/s,
    H.264 ultrafast streaming ~600 frames/s (default here).

    ``stats_max_side``: lerobot computes per-camera image statistics (meta/stats.json) from every
    pixel of every frame below 300 px. We give it a sample instead: as many pixels as a grid of at
    most ``stats_max_side`` per side (stride ``ceil(max(h, w) / stats_max_side)``), at random
    positions drawn afresh for every frame. About 25% less CPU per frame at 96 px; the per-channel
    mean and std stay within ~0.001 (pixel values in [0, 1]) over a 100-frame episode, quantiles
    and min/max within sampling noise. ``None`` keeps lerobot's behaviour.

    ``queue_frames``: lerobot's streaming encoder is built for live recording: when its per-camera
    queue stays full for 0.1 s it *drops* the frame and logs a warning, leaving a video one frame
    shorter than the episode's data. On a busy 2-core machine this happened to 1 in ~200 humanoid
    episodes. Offline writing must wait instead, so the default queue is unbounded (at most one
    episode of frames is buffered: ``save_episode`` drains it), and :func:`write_dataset` checks every
    video's length after writing.
    """

    codec: str = "h264"  # "h264" | "libsvtav1" | "hevc"
    preset: str | int | None = "ultrafast"
    crf: int | None = 23
    gop: int = 2
    streaming: bool = True
    threads: int | None = 1
    batch_encoding_size: int = 1
    queue_frames: int = 0  # encoder buffer per camera; 0 = unbounded (lerobot drops frames when it is full)
    stats_max_side: int | None = 24  # image stats from <= this many px per side, sampled; None: lerobot's

    def lerobot_kwargs(self) -> dict[str, Any]:
        from lerobot.configs.video import RGBEncoderConfig

        preset = self.preset
        if self.codec in ("libsvtav1", "av1") and isinstance(preset, str):
            preset = None
        enc = RGBEncoderConfig(vcodec=self.codec, preset=preset, crf=self.crf, g=self.gop)
        return dict(rgb_encoder=enc, streaming_encoding=self.streaming, encoder_threads=self.threads,
                    batch_encoding_size=self.batch_encoding_size, encoder_queue_maxsize=self.queue_frames)


class _SampledImageStats:
    """Swaps ``lerobot.datasets.compute_stats.auto_downsample_height_width`` for a sampling version
    while at least one ``write_dataset`` runs (lock + per-size refcount; the original is restored when
    the last writer finishes). lerobot's encoder threads look the function up when they start, so a
    module-level swap is the only hook. Everything in the process that uses lerobot's image stats
    meanwhile shares the swap: if any active writer asked for ``stats_max_side=None`` lerobot's own
    function is used, else the largest requested size.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._sides: Counter = Counter()  # requested stats_max_side -> number of active writers
        self._original = None
        self._local = threading.local()  # per-thread random generator

    @contextlib.contextmanager
    def use(self, max_side: int | None) -> Iterator[None]:
        from lerobot.datasets import compute_stats

        with self._lock:
            if not self._sides:
                self._original = compute_stats.auto_downsample_height_width
                compute_stats.auto_downsample_height_width = self._downsample
            self._sides[max_side] += 1
        try:
            yield
        finally:
            with self._lock:
                self._sides[max_side] -= 1
                if self._sides[max_side] == 0:
                    del self._sides[max_side]
                if not self._sides:
                    compute_stats.auto_downsample_height_width = self._original

    def _downsample(self, img: np.ndarray, *args, **kwargs) -> np.ndarray:
        with self._lock:
            side = None if not self._sides or None in self._sides else max(self._sides)
        if side is None:
            return self._original(img, *args, **kwargs)
        H, W = img.shape[-2:]  # img is (C, H, W)
        step = math.ceil(max(H, W) / side)
        if step == 1:
            return img
        # As many pixels as a stride-`step` grid holds, but at random positions (a fresh draw per frame,
        # seeded per encoder thread, i.e. per camera and episode): a fixed grid misses the same rows,
        # columns and thin structures in every frame, which measurably biased the stats (mean off by
        # up to 0.02 on a wrist camera); uniform positions do not.
        rng = getattr(self._local, "rng", None)
        if rng is None:
            rng = self._local.rng = np.random.default_rng(0)
        ny, nx = -(-H // step), -(-W // step)
        ys, xs = rng.integers(0, H, ny * nx), rng.integers(0, W, ny * nx)
        return img[..., ys, xs].reshape(*img.shape[:-2], ny, nx)


_SAMPLED_STATS = _SampledImageStats()


def _features(modality: ModalityConfig, ep: EpisodeData, with_actions: bool, with_subtasks: bool) -> dict:
    f: dict[str, dict] = {}
    if modality.state:
        f[STATE_FEATURE] = {"dtype": "float32", "shape": (modality.state_dim,),
                            "names": _names(modality.state)}
    if with_actions:
        f[ACTION_FEATURE] = {"dtype": "float32", "shape": (modality.action_dim,),
                             "names": _names(modality.action)}
    for cam, key in modality.video.items():
        if cam not in ep.frames:
            raise DataError("episode.frames", f"camera '{cam}' named in modality.video is missing",
                            f"render camera '{cam}' or remove it from the modality")
        h, w = ep.frames[cam].shape[1:3]
        f[key] = {"dtype": "video", "shape": (int(h), int(w), 3), "names": ["height", "width", "channels"]}
    if with_subtasks:
        f[SUBTASK_FEATURE] = {"dtype": "string", "shape": (1,), "names": None}
    return f


def _names(slices) -> list[str]:
    names = []
    for k, s in slices.items():
        names += [f"{k}_{i}" for i in range(s.dim)] if s.dim > 1 else [k]
    return names


def _frame(ep, t: int, modality: ModalityConfig, with_actions: bool, with_sub: bool) -> dict[str, Any]:
    """Step t of an episode as one LeRobot frame (state, action, camera images, sub-task, task)."""
    fr: dict[str, Any] = {"task": ep.instruction or "do the task"}
    if modality.state:
        fr[STATE_FEATURE] = np.ascontiguousarray(ep.states[t], dtype=np.float32)
    if with_actions:
        fr[ACTION_FEATURE] = np.ascontiguousarray(ep.actions[t], dtype=np.float32)
    for cam, key in modality.video.items():
        fr[key] = ep.frames[cam][t]
    if with_sub:
        fr[SUBTASK_FEATURE] = str(ep.subtasks[t])
    return fr


def write_dataset(
    episodes: Iterable[Any],
    root: str | Path,
    modality: ModalityConfig,
    fps: int,
    robot_type: str = "unknown",
    embodiment: str | None = None,
    embodiment_id: int | None = None,
    tier: str | None = None,
    overwrite: bool = False,
    encoder: EncoderOptions | None = None,
    repo_id: str | None = None,
) -> Path:
    """Write episodes to a LeRobot v3.0 dataset at ``root`` (atomically) and return the path.

    ``episodes`` are ``EpisodeData`` (or sim Episodes, adapted with ``tier``). Episodes without
    actions (tier ``video``) are allowed only if no episode has actions.
    Writes ``meta/modality.json`` and ``meta/groot_kit.json`` (tier, provenance, instruction,
    success per episode; embodiment).
    """
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = Path(root)
    if root.exists() and not overwrite:
        raise DataError(str(root), "already exists", "pass overwrite=True or choose another path")
    encoder = encoder or EncoderOptions()
    side = encoder.stats_max_side
    if side is not None and (isinstance(side, bool) or not isinstance(side, int) or side < 1):
        raise DataError("encoder.stats_max_side", f"must be a positive int or None, got {side!r}",
                        "use e.g. 24, or None for lerobot's own image statistics")
    repo_id = repo_id or f"local/{root.name}"

    ds = None
    meta_eps: list[dict] = []
    n_frames = 0
    t0 = time.perf_counter()
    with atomic_directory(root) as tmp:
        tmp.rmdir()  # lerobot creates the dataset root itself and refuses an existing one
        # lerobot's encoder threads compute image stats from every pixel of every frame; a sample is
        # enough (see EncoderOptions.stats_max_side) and saves ~25% CPU per frame. The swap lasts
        # until finalize() has joined every encoder thread.
        with _SAMPLED_STATS.use(side):
            for i, raw in enumerate(episodes):
                ep = from_sim_episode(raw, tier=tier or "synthetic") if not isinstance(raw, EpisodeData) else raw
                if tier is not None:
                    ep.tier = tier
                ep.validate(f"episode {i}")
                if ds is None:
                    with_actions = ep.actions is not None
                    with_sub = ep.subtasks is not None
                    feats = _features(modality, ep, with_actions, with_sub)
                    ds = LeRobotDataset.create(repo_id, fps=int(fps), features=feats, root=tmp,
                                               robot_type=robot_type, use_videos=True, **encoder.lerobot_kwargs())
                _check_episode(ep, modality, with_actions, with_sub, i)
                T = len(ep)
                for t in range(T):
                    ds.add_frame(_frame(ep, t, modality, with_actions, with_sub))
                ds.save_episode()
                n_frames += T
                meta_eps.append({"episode_index": i, "length": T, "tier": ep.tier, "provenance": ep.provenance,
                                 "instruction": ep.instruction, "success": ep.success})
            if ds is None:
                raise DataError("episodes", "no episodes given", "pass at least one episode")
            ds.finalize()
        check_video_lengths(tmp, where=str(root))
        modality.save(tmp / MODALITY_FILE)
        meta = {"format": "groot_kit/1", "embodiment": embodiment or robot_type, "embodiment_id": embodiment_id,
                "fps": int(fps), "episodes": meta_eps,
                "encoder": asdict(encoder), "write_seconds": round(time.perf_counter() - t0, 3),
                "frames": n_frames}
        (tmp / GROOT_META).write_text(json.dumps(meta, indent=1) + "\n")
    return root


def check_video_lengths(root: str | Path, where: str | None = None) -> int:
    """Check that every episode's video segment holds exactly as many frames as the episode has
    steps (from ``meta/episodes``: (to_timestamp - from_timestamp) * fps == length). Returns the number
    of episodes checked; raises DataError naming the dataset, camera and episode otherwise."""
    import pandas as pd

    root = Path(root)
    files = sorted((root / "meta" / "episodes").glob("*/*.parquet"))
    if not files:
        return 0
    fps = float(json.loads((root / "meta" / "info.json").read_text())["fps"])
    eps = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    cams = sorted({c.split("/")[1] for c in eps.columns if c.startswith("videos/") and c.endswith("/to_timestamp")})
    for cam in cams:
        frames = (eps[f"videos/{cam}/to_timestamp"] - eps[f"videos/{cam}/from_timestamp"]).to_numpy() * fps
        bad = np.flatnonzero(np.abs(frames - eps["length"].to_numpy()) > 0.5)
        if bad.size:
            i = int(bad[0])
            raise DataError(f"{where or root}: {cam}, episode {int(eps['episode_index'].iloc[i])}",
                            f"the video has {frames[i]:.0f} frames for {int(eps['length'].iloc[i])} steps "
                            f"({bad.size} episode(s) affected; the video encoder dropped frames)",
                            "keep EncoderOptions.queue_frames=0 (unbounded) and write the dataset again")
    return len(eps)


def merge_datasets(parts: list[str | Path], root: str | Path, overwrite: bool = False,
                   extra_meta: dict | None = None) -> Path:
    """Concatenate datasets written by ``write_dataset`` (same features, fps, robot type, modality)
    into one at ``root``, atomically: lerobot's ``aggregate_datasets`` merges data, videos, episode
    metadata and stats; ``meta/modality.json`` must be identical in every part and is copied;
    ``meta/groot_kit.json`` lists the parts' episodes in order, renumbered 0..N-1, with summed frames.
    Its ``write_seconds`` is the slowest part's plus the merge's (parts are meant to be written in
    parallel); ``extra_meta`` is added on top."""
    from lerobot.datasets.aggregate import aggregate_datasets

    parts, root = [Path(x) for x in parts], Path(root)
    if not parts:
        raise DataError("parts", "no datasets to merge", "pass at least one dataset folder")
    if root.exists() and not overwrite:
        raise DataError(str(root), "already exists", "pass overwrite=True or choose another path")
    metas, modality = [], None
    for part in parts:
        for f in (GROOT_META, MODALITY_FILE):
            if not (part / f).exists():
                raise DataError(str(part / f), "missing", "merge only folders written by groot_kit's write_dataset")
        m = json.loads((part / MODALITY_FILE).read_text())
        if modality is None:
            modality = m
        elif m != modality:
            raise DataError(str(part / MODALITY_FILE), f"differs from {parts[0] / MODALITY_FILE}",
                            "merge only datasets of one embodiment and modality")
        metas.append(json.loads((part / GROOT_META).read_text()))

    t0 = time.perf_counter()
    with atomic_directory(root) as tmp:
        tmp.rmdir()  # aggregate_datasets creates its output root itself
        aggregate_datasets([f"local/{p.name}" for p in parts], f"local/{root.name}", roots=parts, aggr_root=tmp)
        check_video_lengths(tmp, where=str(root))
        shutil.copyfile(parts[0] / MODALITY_FILE, tmp / MODALITY_FILE)
        episodes = [dict(e, episode_index=i) for i, e in enumerate(e for m in metas for e in m["episodes"])]
        merge_s = time.perf_counter() - t0
        meta = {**metas[0], "episodes": episodes, "frames": sum(m["frames"] for m in metas),
                "write_seconds": round(max(m["write_seconds"] for m in metas) + merge_s, 3),
                "merge_seconds": round(merge_s, 3),
                "parts": [{"episodes": len(m["episodes"]), "frames": m["frames"],
                           "write_seconds": m["write_seconds"]} for m in metas],
                **(extra_meta or {})}
        (tmp / GROOT_META).write_text(json.dumps(meta, indent=1) + "\n")
    return root


def _check_episode(ep: EpisodeData, modality: ModalityConfig, with_actions: bool, with_sub: bool, i: int):
    where = f"episode {i}"
    if (ep.actions is not None) != with_actions:
        raise DataError(f"{where}.actions", "some episodes have actions and some do not",
                        "write action-free (tier 'video') episodes into their own dataset")
    if (ep.subtasks is not None) != with_sub:
        raise DataError(f"{where}.subtasks", "some episodes have sub-task labels and some do not",
                        "label every episode or none")
    if modality.state and (ep.states is None or ep.states.shape[1] != modality.state_dim):
        got = None if ep.states is None else ep.states.shape[1]
        raise DataError(f"{where}.states", f"dim {got} != modality state dim {modality.state_dim}",
                        "record states with the embodiment the modality describes")
    if with_actions and ep.actions.shape[1] != modality.action_dim:
        raise DataError(f"{where}.actions", f"dim {ep.actions.shape[1]} != modality action dim {modality.action_dim}",
                        "record actions with the embodiment the modality describes")
