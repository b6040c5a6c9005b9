"""Episodes -> LeRobotDataset v3.0 (through lerobot's own writer) + meta/modality.json.

Atomic: everything is written into a hidden temp folder beside ``root`` and renamed into place
only after ``finalize()``; an interrupted write leaves no half dataset behind.
"""
from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .episode import EpisodeData, from_sim_episode
from .errors import DataError
from .modality import ACTION_FEATURE, STATE_FEATURE, SUBTASK_FEATURE, ModalityConfig

GROOT_META = "meta/groot_kit.json"
MODALITY_FILE = "meta/modality.json"


@dataclass
class EncoderOptions:
    """Video encoder knobs passed to ``LeRobotDataset.create``.

    Measured on the 2-core dev machine at 96 px (noise-like frames, 400 frames):
    lerobot default (AV1, PNG then encode) ~270 frames/s, AV1 streaming ~520 frames/s,
    H.264 ultrafast streaming ~600 frames/s (default here).
    """

    codec: str = "h264"  # "h264" | "libsvtav1" | "hevc"
    preset: str | int | None = "ultrafast"
    crf: int | None = 23
    gop: int = 2
    streaming: bool = True
    threads: int | None = 1
    batch_encoding_size: int = 1

    def lerobot_kwargs(self) -> dict[str, Any]:
        from lerobot.configs.video import RGBEncoderConfig

        preset = self.preset
        if self.codec in ("libsvtav1", "av1") and isinstance(preset, str):
            preset = None
        enc = RGBEncoderConfig(vcodec=self.codec, preset=preset, crf=self.crf, g=self.gop)
        return dict(rgb_encoder=enc, streaming_encoding=self.streaming, encoder_threads=self.threads,
                    batch_encoding_size=self.batch_encoding_size)


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
            raise DataError(f"episode.frames", f"camera '{cam}' named in modality.video is missing",
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
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.tmp-{uuid.uuid4().hex[:8]}"
    repo_id = repo_id or f"local/{root.name}"

    ds = None
    meta_eps: list[dict] = []
    n_frames = 0
    t0 = time.perf_counter()
    try:
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
                fr: dict[str, Any] = {"task": ep.instruction or "do the task"}
                if modality.state:
                    fr[STATE_FEATURE] = np.ascontiguousarray(ep.states[t], dtype=np.float32)
                if with_actions:
                    fr[ACTION_FEATURE] = np.ascontiguousarray(ep.actions[t], dtype=np.float32)
                for cam, key in modality.video.items():
                    fr[key] = ep.frames[cam][t]
                if with_sub:
                    fr[SUBTASK_FEATURE] = str(ep.subtasks[t])
                ds.add_frame(fr)
            ds.save_episode()
            n_frames += T
            meta_eps.append({"episode_index": i, "length": T, "tier": ep.tier, "provenance": ep.provenance,
                             "instruction": ep.instruction, "success": ep.success})
        if ds is None:
            raise DataError("episodes", "no episodes given", "pass at least one episode")
        ds.finalize()
        modality.save(tmp / MODALITY_FILE)
        meta = {"format": "groot_kit/1", "embodiment": embodiment or robot_type, "embodiment_id": embodiment_id,
                "fps": int(fps), "episodes": meta_eps,
                "encoder": asdict(encoder), "write_seconds": round(time.perf_counter() - t0, 3),
                "frames": n_frames}
        (tmp / GROOT_META).write_text(json.dumps(meta, indent=1) + "\n")
        if root.exists():
            old = root.parent / f".{root.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(root, old)
            os.replace(tmp, root)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
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
