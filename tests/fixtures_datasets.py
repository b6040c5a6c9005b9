"""Small datasets shaped like the ones people publish, quirks included (test fixture generators).

* ``gr1_v20``: GR00T's GR1 layout, LeRobot v2.0: 44-dim float64 state/action split into 8 keys by
  modality.json, one ego-view h264 video plus a declared ``side_view`` with no files, no
  ``frame_index`` column, ``annotation.human.*`` task-index columns, ``next.reward``/``next.done``,
  fps 20.0, no episodes_stats.jsonl (a meta/stats.json instead).
* ``so100_v21_av1``: LeRobot v2.1 SO-100 arm (6 dims) with an AV1 webcam video (libsvtav1).
* ``v30_extra``: LeRobot v3.0 written by lerobot itself, extra columns, no modality.json.
* ``bimanual_v21``: two 5-joint arms + grippers (12 dims), three cameras.

Each is a few hundred kB. Signals are smooth and learnable: the action is the next state.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

GR1_KEYS = {"left_arm": 7, "left_hand": 6, "left_leg": 6, "neck": 3, "right_arm": 7, "right_hand": 6,
            "right_leg": 6, "waist": 3}
GR1_TASK = "pick the pear from the counter and place it in the basket"


def trajectories(n_eps: int, T: int, dim: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(state [T, dim], action [T, dim]) per episode: sines with per-episode phase; action = next state."""
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.1, 0.3, dim)
    out = []
    for e in range(n_eps):
        ph = rng.uniform(0, 2 * np.pi, dim)
        x = np.sin(w * np.arange(T + 1)[:, None] + ph) * np.linspace(0.5, 1.5, dim)
        out.append((x[:-1], x[1:]))
    return out


def frames(state: np.ndarray, h: int, w: int, tint: int = 0) -> np.ndarray:
    """uint8 [T, h, w, 3]: a bright square whose position follows the first two state dims."""
    T = len(state)
    img = np.full((T, h, w, 3), 40, np.uint8)
    img[..., tint % 3] = 90
    for t in range(T):
        cy = int((state[t, 0] + 1.5) / 3 * (h - 8))
        cx = int((state[t, 1 % state.shape[1]] + 1.5) / 3 * (w - 8))
        img[t, max(cy, 0):max(cy, 0) + 8, max(cx, 0):max(cx, 0) + 8] = 230
    return img


def encode(imgs: np.ndarray, path: Path, fps: float, vcodec: str = "h264") -> None:
    from lerobot.configs.video import RGBEncoderConfig
    from lerobot.datasets.video_utils import encode_video_frames

    tmp = path.parent / f".{path.stem}_png"
    tmp.mkdir(parents=True, exist_ok=True)
    for t, fr in enumerate(imgs):
        Image.fromarray(fr).save(tmp / f"frame-{t:06d}.png")
    preset = "ultrafast" if vcodec == "h264" else None
    encode_video_frames(tmp, path, int(round(fps)), video_encoder=RGBEncoderConfig(vcodec=vcodec, preset=preset, g=2))
    shutil.rmtree(tmp)


def _video_feature(h: int, w: int, fps: float, codec: str) -> dict:
    return {"dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channel"],
            "info": {"video.fps": fps, "video.height": h, "video.width": w, "video.channels": 3,
                     "video.codec": codec, "video.pix_fmt": "yuv420p", "video.is_depth_map": False,
                     "has_audio": False}}


def write_v2(root: Path, *, version: str, fps: float, dim: int, modality: dict, tasks: list[str],
             cams: dict[str, tuple[int, int]], n_eps: int = 3, T: int = 24, float64: bool = False,
             phantom_cams: tuple[str, ...] = (), drop_cols: tuple[str, ...] = (), extra: dict | None = None,
             vcodec: str = "h264", seed: int = 0) -> Path:
    """A GR00T/LeRobot v2.x folder: per-episode parquet + mp4, meta/info.json, episodes/tasks.jsonl,
    modality.json. ``extra``: column name -> fn(T, episode) -> values (annotation, reward...)."""
    root = Path(root)
    (root / "meta").mkdir(parents=True)
    ftype = "float64" if float64 else "float32"
    codec = "av1" if "av1" in vcodec else "h264"
    feats = {"observation.state": {"dtype": ftype, "shape": [dim], "names": None},
             "action": {"dtype": ftype, "shape": [dim], "names": None}}
    for c, (h, w) in cams.items():
        feats[f"observation.images.{c}"] = _video_feature(h, w, fps, codec)
    for c in phantom_cams:
        feats[f"observation.images.{c}"] = _video_feature(64, 64, fps, codec)
    for k in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        if k not in drop_cols:
            feats[k] = {"dtype": "float32" if k == "timestamp" else "int64", "shape": [1], "names": None}
    extra = extra or {}
    for k, fn in extra.items():
        v = np.asarray(fn(2, 0))
        feats[k] = {"dtype": "bool" if v.dtype == bool else str(v.dtype), "shape": [1], "names": None}
    info = {"codebase_version": version, "robot_type": root.name, "total_episodes": n_eps,
            "total_frames": n_eps * T, "total_tasks": len(tasks), "total_videos": n_eps * (len(cams) + len(phantom_cams)),
            "total_chunks": 1, "chunks_size": 1000, "fps": fps, "splits": {"train": f"0:{n_eps}"},
            "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
            "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
            "features": feats}
    (root / "meta/info.json").write_text(json.dumps(info, indent=4))
    (root / "meta/tasks.jsonl").write_text("".join(json.dumps({"task_index": i, "task": t}) + "\n"
                                                   for i, t in enumerate(tasks)))
    (root / "meta/episodes.jsonl").write_text("".join(
        json.dumps({"episode_index": i, "tasks": tasks, "length": T}) + "\n" for i in range(n_eps)))
    (root / "meta/modality.json").write_text(json.dumps(modality, indent=4))
    trajs = trajectories(n_eps, T, dim, seed)
    stats_lines = []
    for i, (st, ac) in enumerate(trajs):
        cols = {"observation.state": list(st.astype(ftype)), "action": list(ac.astype(ftype)),
                "timestamp": (np.arange(T) / fps).astype(np.float32), "frame_index": np.arange(T),
                "episode_index": np.full(T, i), "index": np.arange(T) + i * T, "task_index": np.zeros(T, np.int64)}
        cols.update({k: fn(T, i) for k, fn in extra.items()})
        df = pd.DataFrame({k: v for k, v in cols.items() if k not in drop_cols})
        p = root / f"data/chunk-000/episode_{i:06d}.parquet"
        p.parent.mkdir(parents=True, exist_ok=True)
        df.to_parquet(p)
        for j, (c, (h, w)) in enumerate(cams.items()):
            encode(frames(st, h, w, tint=j), root / f"videos/chunk-000/observation.images.{c}/episode_{i:06d}.mp4",
                   fps, vcodec)
        s = {}
        for k in df.columns:
            v = np.stack(df[k].to_numpy()).astype(np.float64).reshape(T, -1)
            s[k] = {"min": v.min(0).tolist(), "max": v.max(0).tolist(), "mean": v.mean(0).tolist(),
                    "std": v.std(0).tolist(), "count": [T]}
        for c in cams:
            s[f"observation.images.{c}"] = {**{q: [[[0.5]]] * 3 for q in ("min", "max", "mean", "std")}, "count": [T]}
        stats_lines.append(json.dumps({"episode_index": i, "stats": s}))
    if version == "v2.1":
        (root / "meta/episodes_stats.jsonl").write_text("\n".join(stats_lines) + "\n")
    else:  # v2.0 / GR00T: one meta/stats.json over the whole set
        allv = {k: np.concatenate([t[j] for t in trajs]) for j, k in enumerate(("observation.state", "action"))}
        (root / "meta/stats.json").write_text(json.dumps({k: {"mean": v.mean(0).tolist(), "std": v.std(0).tolist(),
                                                              "min": v.min(0).tolist(), "max": v.max(0).tolist()}
                                                          for k, v in allv.items()}))
    return root


def slices(keys: dict[str, int]) -> dict:
    out, i = {}, 0
    for k, d in keys.items():
        out[k] = {"start": i, "end": i + d}
        i += d
    return out


def gr1_v20(root: Path, n_eps: int = 3, T: int = 24) -> Path:
    """GR1 humanoid, GR00T's published v2.0 layout with all its quirks (see module docstring)."""
    mod = {"state": slices(GR1_KEYS), "action": slices(GR1_KEYS),
           "video": {"ego_view": {"original_key": "observation.images.ego_view"}},
           "annotation": {"human.action.task_description": {}, "human.validity": {}}}
    extra = {"annotation.human.action.task_description": lambda T, e: np.zeros(T, np.int64),
             "annotation.human.validity": lambda T, e: np.ones(T, np.int64),
             "next.reward": lambda T, e: (np.arange(T) == T - 1).astype(np.float64),
             "next.done": lambda T, e: np.arange(T) == T - 1}
    return write_v2(root, version="v2.0", fps=20.0, dim=44, modality=mod, tasks=[GR1_TASK, "valid"],
                    cams={"ego_view": (48, 64)}, phantom_cams=("side_view",), n_eps=n_eps, T=T, float64=True,
                    drop_cols=("frame_index",), extra=extra, seed=1)


def so100_v21_av1(root: Path, n_eps: int = 3, T: int = 24) -> Path:
    mod = {"state": slices({"single_arm": 5, "gripper": 1}), "action": slices({"single_arm": 5, "gripper": 1}),
           "video": {"webcam": {"original_key": "observation.images.webcam"}},
           "annotation": {"human.task_description": {"original_key": "task_index"}}}
    return write_v2(root, version="v2.1", fps=30, dim=6, modality=mod, tasks=["pick up the red cube"],
                    cams={"webcam": (40, 56)}, n_eps=n_eps, T=T, vcodec="libsvtav1", seed=2)


def bimanual_v21(root: Path, n_eps: int = 3, T: int = 24) -> Path:
    keys = {"left_arm": 5, "left_gripper": 1, "right_arm": 5, "right_gripper": 1}
    mod = {"state": slices(keys), "action": slices(keys),
           "video": {c: {"original_key": f"observation.images.{c}"} for c in ("top", "left_wrist", "right_wrist")}}
    return write_v2(root, version="v2.1", fps=30, dim=12, modality=mod, tasks=["fold the towel"],
                    cams={"top": (32, 48), "left_wrist": (32, 32), "right_wrist": (32, 32)}, n_eps=n_eps, T=T,
                    seed=3)


def v30_extra(root: Path, n_eps: int = 3, T: int = 24) -> Path:
    """LeRobot v3.0 written by lerobot's own writer, with columns the kit does not use, no modality.json."""
    from lerobot.configs.video import RGBEncoderConfig
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    feats = {"observation.state": {"dtype": "float32", "shape": (6,), "names": None},
             "action": {"dtype": "float32", "shape": (6,), "names": None},
             "observation.effort": {"dtype": "float32", "shape": (6,), "names": None},
             "next.reward": {"dtype": "float32", "shape": (1,), "names": None},
             "complementary_info.discount": {"dtype": "float32", "shape": (1,), "names": None},
             "observation.images.front": {"dtype": "video", "shape": (40, 56, 3),
                                          "names": ["height", "width", "channels"]}}
    ds = LeRobotDataset.create("local/v30_extra", fps=15, features=feats, root=root, robot_type="koch",
                               rgb_encoder=RGBEncoderConfig(vcodec="h264", preset="ultrafast", g=2))
    for e, (st, ac) in enumerate(trajectories(n_eps, T, 6, seed=4)):
        imgs = frames(st, 40, 56)
        for t in range(T):
            ds.add_frame({"observation.state": st[t].astype(np.float32), "action": ac[t].astype(np.float32),
                          "observation.effort": (ac[t] - st[t]).astype(np.float32),
                          "next.reward": np.array([float(t == T - 1)], np.float32),
                          "complementary_info.discount": np.array([0.99], np.float32),
                          "observation.images.front": imgs[t], "task": "push the block to the goal"})
        ds.save_episode()
    ds.finalize()
    return Path(root)


def tree_digest(root: Path) -> dict[str, tuple[int, int]]:
    """relative path -> (size, mtime_ns) of every file: to show a source folder was left untouched."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(Path(root).rglob("*"))
            if p.is_file()}
