"""LeRobot v3.0 (what the kit records) -> GR00T-LeRobot v2.1, the layout Isaac-GR00T's own trainer reads.

``export_gr00t_v21(src, dst)`` writes, next to nothing else:

    meta/info.json            codebase_version v2.1, per-episode data_path / video_path templates
    meta/episodes.jsonl       {"episode_index", "tasks", "length"} per episode
    meta/tasks.jsonl          {"task_index", "task"}: the instructions, then every string annotation
    meta/episodes_stats.jsonl per-episode stats (from the v3 episode table)
    meta/stats.json, meta/modality.json (annotations as GR00T writes them: ``{"<key>": {}}``)
    data/chunk-XXX/episode_XXXXXX.parquet          one file per episode
    videos/chunk-XXX/<camera>/episode_XXXXXX.mp4   one file per episode and camera (H.264)

GR00T's loader reads language from ``annotation.<source>.<type>`` columns holding indices into
tasks.jsonl, so the instruction column ``annotation.human.task_description`` (= ``task_index``) is
added, and string annotation columns (the kit's ``annotation.human.subtask``) become indices too.

Everything goes through library readers and writers: lerobot's episode/task tables and video
decoder/encoder, pandas/pyarrow for parquet. Each episode's frames are decoded from the v3 video
file at its timestamps and re-encoded on their own (v3 packs many episodes into one file), so an
export costs about one decode + encode of every frame. ``dst`` appears complete or not at all.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np

from .convert import codebase_version
from .errors import DataError
from .writer import GROOT_META, MODALITY_FILE

CHUNKS_SIZE = 1000
DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
TASK_COLUMN = "annotation.human.task_description"   # GR00T reads the instruction from an annotation column


def export_gr00t_v21(src: str | Path, dst: str | Path, overwrite: bool = False) -> Path:
    """Write the LeRobot v3.0 dataset at ``src`` as a GR00T-LeRobot v2.1 folder at ``dst``.

    ``src`` is only read. ``dst`` is built beside itself and renamed into place when complete.
    """
    from lerobot.datasets.io_utils import load_episodes, load_nested_dataset, load_tasks
    src, dst = Path(src), Path(dst)
    if not (src / "meta/info.json").exists():
        raise DataError(str(src / "meta/info.json"), "missing", "pass the root of a LeRobot v3.0 dataset")
    ver = codebase_version(src)
    if not ver.startswith("v3"):
        raise DataError(str(src / "meta/info.json"), f"codebase_version is '{ver}', not v3.0",
                        "a v2.x folder already is GR00T's layout; to re-export it, convert it to v3.0 first")
    if dst.exists() and not overwrite:
        raise DataError(str(dst), "already exists", "pass --overwrite (overwrite=True) or choose another destination")
    info = json.loads((src / "meta/info.json").read_text())
    fps = float(info["fps"])
    episodes = load_episodes(src).to_pandas().sort_values("episode_index").reset_index(drop=True)
    tasks = load_tasks(src)   # index: task string, column task_index
    frames = load_nested_dataset(src / "data").to_pandas()
    videos = [k for k, f in info["features"].items() if f.get("dtype") == "video"]
    task_names = {int(i): str(t) for t, i in zip(tasks.index, tasks["task_index"])}
    strings = [k for k, f in info["features"].items() if f.get("dtype") == "string" and k.startswith("annotation.")]
    table = _task_table(task_names, frames, strings)

    dst.parent.mkdir(parents=True, exist_ok=True)
    work = dst.parent / f".{dst.name}.v21-{uuid.uuid4().hex[:8]}"
    try:
        (work / "meta").mkdir(parents=True)
        lengths = []
        for _, ep in episodes.iterrows():
            i = int(ep["episode_index"])
            rows = frames[frames["episode_index"] == i].sort_values("frame_index")
            _write_episode_parquet(rows, work / DATA_PATH.format(episode_chunk=i // CHUNKS_SIZE, episode_index=i),
                                   table, strings)
            for key in videos:
                _write_episode_video(src, info, ep, key, len(rows), fps,
                                     work / VIDEO_PATH.format(episode_chunk=i // CHUNKS_SIZE, video_key=key,
                                                              episode_index=i))
            lengths.append((i, len(rows), [str(t) for t in ep["tasks"]]))
        _write_meta(src, work, info, lengths, table, strings, videos)
        if dst.exists():
            shutil.rmtree(dst)
        os.replace(work, dst)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return dst


def _task_table(task_names: dict[int, str], frames, strings: list[str]) -> dict[str, int]:
    """tasks.jsonl as {text: index}: the instructions keep their indices, annotation strings follow."""
    table = {t: i for i, t in sorted(task_names.items())}
    for col in strings:
        for s in sorted(set(map(str, frames[col]))):
            table.setdefault(s, len(table))
    return table


def _write_episode_parquet(rows, path: Path, table: dict[str, int], strings: list[str]) -> None:
    """One episode's rows: float32 vectors, int64 indices, annotation strings -> task indices."""
    df = rows.reset_index(drop=True).copy()
    for col in ("observation.state", "action"):
        if col in df:
            df[col] = [np.asarray(v, np.float32) for v in df[col]]
    for col in strings:
        df[col] = [table[str(s)] for s in df[col]]
    df[TASK_COLUMN] = df["task_index"].astype(np.int64)
    df["next.done"] = np.arange(len(df)) == len(df) - 1
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path, index=False)


def _write_episode_video(src: Path, info: dict, ep, key: str, n_frames: int, fps: float, out: Path) -> None:
    """Decode one episode's frames of camera ``key`` from the v3 file, encode them as their own mp4."""
    from lerobot.datasets.video_utils import decode_video_frames, encode_video_frames
    from PIL import Image

    from .writer import EncoderOptions
    chunk, file = int(ep[f"videos/{key}/chunk_index"]), int(ep[f"videos/{key}/file_index"])
    video = src / info["video_path"].format(video_key=key, chunk_index=chunk, file_index=file)
    if not video.exists():
        raise DataError(str(video), f"camera '{key}' of episode {int(ep['episode_index'])} has no video file",
                        "repair the source dataset (`groot-kit dataset validate` lists what is missing)")
    t0 = float(ep[f"videos/{key}/from_timestamp"])
    stamps = [t0 + k / fps for k in range(n_frames)]
    imgs = decode_video_frames(video, stamps, tolerance_s=0.4 / fps, backend="pyav", return_uint8=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        for k, img in enumerate(imgs.numpy()):
            Image.fromarray(np.ascontiguousarray(img.transpose(1, 2, 0))).save(Path(tmp) / f"frame-{k:06d}.png")
        enc = EncoderOptions(preset="medium", gop=10).lerobot_kwargs()["rgb_encoder"]
        encode_video_frames(tmp, out, int(round(fps)), video_encoder=enc, overwrite=True)


def _write_meta(src: Path, work: Path, info: dict, lengths, table: dict[str, int], strings: list[str],
                videos: list[str]) -> None:
    """info.json (v2.1), episodes/tasks/episodes_stats jsonl, stats.json, modality.json, groot_kit.json."""
    from lerobot.datasets.io_utils import load_nested_dataset
    n_eps = len(lengths)
    feats = dict(info["features"])
    for col in strings + [TASK_COLUMN]:
        feats[col] = {"dtype": "int64", "shape": [1], "names": None}
    feats["next.done"] = {"dtype": "bool", "shape": [1], "names": None}
    v21 = {"codebase_version": "v2.1", "robot_type": info.get("robot_type", "unknown"),
           "total_episodes": n_eps, "total_frames": int(sum(n for _, n, _ in lengths)), "total_tasks": len(table),
           "total_videos": n_eps * len(videos), "total_chunks": (max((i for i, _, _ in lengths), default=0)
                                                                 // CHUNKS_SIZE) + 1,
           "chunks_size": CHUNKS_SIZE, "fps": info["fps"], "splits": {"train": f"0:{n_eps}"},
           "data_path": DATA_PATH, "video_path": VIDEO_PATH if videos else None, "features": feats}
    (work / "meta/info.json").write_text(json.dumps(v21, indent=2))
    _write_jsonl(work / "meta/tasks.jsonl", [{"task_index": i, "task": t} for t, i in table.items()])
    _write_jsonl(work / "meta/episodes.jsonl",
                 [{"episode_index": i, "tasks": tasks, "length": n} for i, n, tasks in lengths])
    ep_table = load_nested_dataset(src / "meta/episodes").to_pandas()
    _write_jsonl(work / "meta/episodes_stats.jsonl", [{"episode_index": int(r["episode_index"]),
                                                       "stats": _episode_stats(r)} for _, r in ep_table.iterrows()])
    if (src / "meta/stats.json").exists():
        shutil.copy2(src / "meta/stats.json", work / "meta/stats.json")
    if (src / MODALITY_FILE).exists():
        mod = json.loads((src / MODALITY_FILE).read_text())
        ann = {k: {} for k in mod.get("annotation", {})}   # GR00T: the column annotation.<key> holds the indices
        mod["annotation"] = ann or {"human.task_description": {}}
        (work / MODALITY_FILE).write_text(json.dumps(mod, indent=2) + "\n")
    if (src / GROOT_META).exists():
        shutil.copy2(src / GROOT_META, work / GROOT_META)


def _episode_stats(row) -> dict:
    """The v3 episode table's ``stats/<feature>/<stat>`` columns as v2.1's nested dict."""
    out: dict[str, dict] = {}
    for col, v in row.items():
        if str(col).startswith("stats/"):
            feat, _, stat = str(col)[len("stats/"):].rpartition("/")
            out.setdefault(feat, {})[stat] = _plain(v)
    return out


def _plain(v):
    """pandas cells (numpy scalars, arrays, object arrays of arrays) -> JSON lists and numbers."""
    if isinstance(v, np.ndarray):
        return [_plain(x) for x in v] if v.dtype == object else v.tolist()
    return v.item() if isinstance(v, np.generic) else v


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
