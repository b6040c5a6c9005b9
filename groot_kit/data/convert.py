"""GR00T / LeRobot v2.0-v2.1 folders -> LeRobot v3.0, tolerating what published datasets contain.

``open_dataset`` calls ``cached_v3(src)``: the first open converts into
``$GROOT_KIT_DATA_CACHE`` (default ``outputs/dataset_cache``) under ``<name>-<hash>``, where the hash
covers the source's meta/ and data/ files; later opens reuse it. The source folder is never written.

Before lerobot's own converter (``lerobot.scripts.convert_dataset_v21_to_v30``) runs, a private copy
(meta/ copied, the listed episodes' parquet tidied into it, their mp4 files linked) is made, because
published sets carry, and lerobot's converter refuses with a raw traceback:

* video features declared in info.json with no mp4 files (skipped, with one warning);
* parquet files without ``frame_index`` / ``index`` / ``timestamp`` / ``episode_index`` (derived);
* float64 state/action and other columns (cast to float32), columns info.json does not declare
  (declared: ``next.reward``, ``next.done``, ``annotation.*`` task-index columns...);
* no ``episodes_stats.jsonl`` (v2.0: computed), float fps (20.0), no ``splits``;
* gaps in the episode numbering, files of episodes not listed in episodes.jsonl (renumbered / left out).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
import warnings
from pathlib import Path

import numpy as np

from .errors import DataError
from .writer import MODALITY_FILE

CACHE_ENV = "GROOT_KIT_DATA_CACHE"
SOURCE_META = "meta/groot_kit_source.json"  # in the converted copy: source path, hash, what was skipped


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV, "outputs/dataset_cache"))


def source_hash(src: Path) -> str:
    """sha256 over the relative paths and bytes of meta/** and data/** (+ names and sizes of videos)."""
    h = hashlib.sha256()
    for sub in ("meta", "data"):
        for p in sorted((src / sub).rglob("*")):
            if p.is_file():
                h.update(str(p.relative_to(src)).encode() + b"\0" + p.read_bytes())
    for p in sorted((src / "videos").rglob("*.mp4")):
        h.update(f"{p.relative_to(src)}:{p.stat().st_size}".encode())
    return h.hexdigest()


def cached_v3(src: str | Path, cache: str | Path | None = None) -> Path:
    """The v3.0 conversion of the v2 folder ``src`` (converted on first use, then reused)."""
    src = Path(src)
    dst = Path(cache or cache_dir()) / f"{src.name}-{source_hash(src)[:16]}"
    if (dst / "meta/info.json").exists():
        meta = dst / SOURCE_META
        skipped = json.loads(meta.read_text()).get("skipped_features", []) if meta.exists() else []
        if skipped:
            _warn_skipped(src, skipped)
        return dst
    return convert_v2_to_v3(src, dst, overwrite=True)


def phantom_videos(root: Path, info: dict) -> list[str]:
    """Video features of a v3.0 folder with no mp4 files under videos/<key>/."""
    return [k for k, f in info.get("features", {}).items()
            if f.get("dtype") == "video" and not any((root / "videos" / k).rglob("*.mp4"))]


def cached_view(src: str | Path, drop: list[str], cache: str | Path | None = None) -> Path:
    """A v3.0 folder minus features that have no files: meta/ copied without them, data/ and videos/
    linked (nothing is re-encoded or copied). Cached like ``cached_v3``; ``src`` is never written."""
    src = Path(src)
    dst = Path(cache or cache_dir()) / f"{src.name}-{source_hash(src)[:16]}-view"
    _warn_skipped(src, drop)
    if (dst / "meta/info.json").exists():
        return dst
    work = dst.parent / f".{dst.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        shutil.copytree(src / "meta", work / "meta")
        for sub in ("data", "videos"):
            if (src / sub).exists():
                os.symlink((src / sub).resolve(), work / sub, target_is_directory=True)
        info = json.loads((work / "meta/info.json").read_text())
        for k in drop:
            info["features"].pop(k, None)
        (work / "meta/info.json").write_text(json.dumps(info, indent=2))
        if (src / MODALITY_FILE).exists():
            _write_modality(src / MODALITY_FILE, work / MODALITY_FILE, drop)
        (work / SOURCE_META).write_text(json.dumps({"source": str(src.resolve()), "skipped_features": drop}))
        if dst.exists():
            shutil.rmtree(dst)
        os.replace(work, dst)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return dst


def convert_v2_to_v3(src: str | Path, dst: str | Path, overwrite: bool = False) -> Path:
    """Convert a GR00T/LeRobot v2.0 or v2.1 dataset at ``src`` into a v3.0 dataset at ``dst``.

    ``src`` is never modified; ``dst`` appears complete or not at all (built beside it, then renamed).
    ``meta/modality.json`` is kept (minus cameras that have no files).
    """
    from lerobot.scripts.convert_dataset_v21_to_v30 import convert_dataset


    src, dst = Path(src), Path(dst)
    if not src.exists():
        raise DataError(str(src), "path does not exist", "pass the root of the GR00T v2 dataset")
    ver = codebase_version(src)
    if not ver.startswith("v2"):
        raise DataError(str(src / "meta/info.json"), f"codebase_version is '{ver}', not v2.0/v2.1",
                        "v3.0 datasets need no conversion: use open_dataset")
    if dst.exists() and not overwrite:
        raise DataError(str(dst), "already exists", "pass overwrite=True or choose another destination")
    for need in ("meta/episodes.jsonl", "meta/tasks.jsonl"):
        if not (src / need).exists():
            raise DataError(str(src / need), "missing", "a v2 dataset needs meta/episodes.jsonl and meta/tasks.jsonl")
    if (src / MODALITY_FILE).exists():
        from .modality import ModalityConfig
        ModalityConfig.load(src / MODALITY_FILE)  # fail early on a malformed modality file
    dst.parent.mkdir(parents=True, exist_ok=True)
    work = dst.parent / f".{dst.name}.conv-{uuid.uuid4().hex[:8]}"
    try:
        shutil.copytree(src / "meta", work / "meta")
        skipped = tidy_v2(work, src)
        _lift_v20_to_v21(work)  # (re)computed: the tidied columns need stats of their own
        try:
            convert_dataset(repo_id=f"local/{dst.name}", root=work, push_to_hub=False, force_conversion=True)
        except (ValueError, KeyError, FileNotFoundError) as e:
            raise DataError(str(src), f"lerobot's v2.1->v3.0 converter failed: {type(e).__name__}: {e}",
                            "run `groot-kit dataset validate` on it and repair what it reports") from None
        shutil.rmtree(work.parent / f"{work.name}_old", ignore_errors=True)
        if (src / MODALITY_FILE).exists():
            _write_modality(src / MODALITY_FILE, work / MODALITY_FILE, skipped)
        (work / SOURCE_META).write_text(json.dumps({"source": str(src.resolve()), "codebase_version": ver,
                                                    "source_hash": source_hash(src), "skipped_features": skipped},
                                                   indent=1))
        if dst.exists():
            shutil.rmtree(dst)
        os.replace(work, dst)
    except BaseException:
        for w in (work, work.parent / f"{work.name}_old", work.parent / f"{work.name}_v30"):
            shutil.rmtree(w, ignore_errors=True)
        raise
    return dst


def _read_jsonl(p: Path) -> list[dict]:
    out = []
    for n, line in enumerate(p.read_text().splitlines(), 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise DataError(f"{p} line {n}", f"is not valid JSON ({e.msg})", "repair that line") from None
    return out


def _warn_skipped(src: Path, skipped: list[str]) -> None:
    warnings.warn(f"{src / 'meta/info.json'}: declared feature(s) {', '.join(skipped)} have no files; "
                  "skipped (the source folder is left as it is)", stacklevel=3)


def tidy_v2(work: Path, src: Path) -> list[str]:
    """Make the private v2 copy at ``work`` acceptable to lerobot's converter. Returns skipped features."""
    info_p = work / "meta/info.json"
    info = json.loads(info_p.read_text())
    feats: dict = info.setdefault("features", {})
    fps = float(info.get("fps") or 0)
    if fps <= 0:
        raise DataError(f"{src / 'meta/info.json'} -> fps", f"missing or not positive ({info.get('fps')!r})",
                        "set fps to the recording rate (e.g. 20)")
    info["fps"] = int(round(fps)) if abs(fps - round(fps)) < 1e-6 else fps
    eps = _read_jsonl(work / "meta/episodes.jsonl")
    if not eps:
        raise DataError(str(src / "meta/episodes.jsonl"), "lists no episodes", "record or restore episodes")
    chunks = int(info.get("chunks_size", 1000))
    ep_file = lambda i: info["data_path"].format(episode_chunk=i // chunks, episode_index=i)
    skipped = _drop_phantom_videos(info, eps, chunks, src)
    import pandas as pd

    tasks = {t["task"]: int(t["task_index"]) for t in _read_jsonl(work / "meta/tasks.jsonl")}
    vkeys = [k for k, f in feats.items() if f["dtype"] == "video"]
    vid_file = lambda i, k: info["video_path"].format(episode_chunk=i // chunks, video_key=k, episode_index=i)
    offset = 0
    for n, e in enumerate(sorted(eps, key=lambda e: e["episode_index"])):
        # episodes are renumbered 0..N-1 in the copy (published sets have gaps where episodes were
        # deleted), and only listed episodes are copied (lerobot's converter globs every file)
        i = int(e["episode_index"])
        if not (src / ep_file(i)).exists():
            raise DataError(str(src / ep_file(i)), f"missing (episode {i} is listed in meta/episodes.jsonl)",
                            "restore the file or remove the episode from meta/episodes.jsonl")
        df = pd.read_parquet(src / ep_file(i))
        T = len(df)
        fill = {"episode_index": lambda: np.full(T, n, np.int64), "frame_index": lambda: np.arange(T, dtype=np.int64),
                "index": lambda: offset + np.arange(T, dtype=np.int64),
                "timestamp": lambda: (np.arange(T) / fps).astype(np.float32),
                "task_index": lambda: np.full(T, tasks.get((e.get("tasks") or [""])[0], 0), np.int64)}
        for col, make in fill.items():
            if col not in df.columns or col in ("episode_index", "index"):
                df[col] = make()
        for col in list(df.columns):
            _tidy_column(df, col, feats, str(src / ep_file(i)))
        (work / ep_file(n)).parent.mkdir(parents=True, exist_ok=True)
        df.to_parquet(work / ep_file(n), index=False)
        for k in vkeys:  # videos are linked, never copied or re-encoded
            (work / vid_file(n, k)).parent.mkdir(parents=True, exist_ok=True)
            os.symlink((src / vid_file(i, k)).resolve(), work / vid_file(n, k))
        e["episode_index"], e["length"] = n, T
        offset += T
    for k in [k for k, f in feats.items() if f["dtype"] not in ("video", "image") and k not in df.columns]:
        skipped.append(k)  # declared but no column: nothing to read
        del feats[k]
    info.update(total_episodes=len(eps), total_frames=offset, splits=info.get("splits") or {"train": f"0:{len(eps)}"},
                total_videos=len(eps) * sum(f["dtype"] == "video" for f in feats.values()))
    info_p.write_text(json.dumps(info, indent=2))
    (work / "meta/episodes.jsonl").write_text("".join(json.dumps(e) + "\n" for e in eps))
    (work / "meta/episodes_stats.jsonl").unlink(missing_ok=True)
    if skipped:
        _warn_skipped(src, skipped)
    return skipped


def _drop_phantom_videos(info: dict, eps: list[dict], chunks: int, src: Path) -> list[str]:
    from lerobot.datasets.video_utils import get_video_info

    skipped = []
    for k in [k for k, f in info["features"].items() if f["dtype"] == "video"]:
        paths = [info["video_path"].format(episode_chunk=int(e["episode_index"]) // chunks, video_key=k,
                                           episode_index=int(e["episode_index"])) for e in eps]
        have = [(src / p).exists() for p in paths]
        if not any(have):
            skipped.append(k)
            del info["features"][k]
        elif not all(have):
            missing = paths[have.index(False)]
            raise DataError(str(src / missing), f"missing, while {sum(have)} of {len(paths)} episodes have '{k}' video",
                            "restore the file, or drop the episode from meta/episodes.jsonl")
        elif "info" not in info["features"][k]:  # old v2.0 sets: probe codec/size from the first file
            info["features"][k]["info"] = get_video_info(src / paths[0])
    return skipped


def _tidy_column(df, col: str, feats: dict, where: str) -> None:
    """float64 -> float32 (lists too); declare undeclared columns (in ``feats``)."""
    v = df[col]
    first = v.iloc[0] if len(v) else None
    is_list = isinstance(first, (list, np.ndarray))
    if is_list:
        arr = np.stack(v.to_numpy())
        if arr.dtype == np.float64:
            arr = arr.astype(np.float32)
            df[col] = list(arr)
        dtype, shape = str(arr.dtype), [int(arr.shape[1])] if arr.ndim == 2 else list(arr.shape[1:])
    else:
        if v.dtype == np.float64:
            df[col] = v.astype(np.float32)
        dtype, shape = str(df[col].dtype), [1]
    dtype = {"object": "string"}.get(dtype, dtype)
    f = feats.get(col)
    if f is None:
        feats[col] = {"dtype": dtype, "shape": shape, "names": None}
    elif f["dtype"] not in ("video", "image", "string") and f["dtype"] != dtype:
        if tuple(f.get("shape", shape)) != tuple(shape):
            raise DataError(f"{where} -> column '{col}'", f"{shape} values but info.json declares {f.get('shape')}",
                            "make meta/info.json features match the parquet data")
        f["dtype"] = dtype


def _write_modality(src_mod: Path, dst_mod: Path, skipped: list[str]) -> None:
    d = json.loads(src_mod.read_text())
    vid = d.get("video") or {}
    for cam in list(vid):
        if (vid[cam] or {}).get("original_key", f"observation.images.{cam}") in skipped:
            del vid[cam]
    dst_mod.write_text(json.dumps(d, indent=2) + "\n")


def _lift_v20_to_v21(root: Path) -> None:
    """Write meta/episodes_stats.jsonl (per-episode stats of numeric features) and mark v2.1."""
    import pandas as pd
    from lerobot.datasets.compute_stats import compute_episode_stats

    info = json.loads((root / "meta/info.json").read_text())
    feats = info["features"]
    num = {k: f for k, f in feats.items() if f["dtype"] not in ("video", "image", "string")}
    lines = []
    eps = _read_jsonl(root / "meta/episodes.jsonl")
    chunks = int(info.get("chunks_size", 1000))
    for e in eps:
        i = e["episode_index"]
        p = root / info["data_path"].format(episode_chunk=i // chunks, episode_index=i)
        df = pd.read_parquet(p)
        data = {k: np.stack(df[k].to_numpy()).astype(np.float64) for k in num if k in df}
        data = {k: v.reshape(len(v), -1) for k, v in data.items()}
        stats = compute_episode_stats(data, {k: num[k] for k in data})
        for vk, f in feats.items():  # videos: neutral placeholder stats (C,1,1) so aggregation works
            if f["dtype"] == "video":
                z = np.zeros((3, 1, 1))
                stats[vk] = {"min": z, "max": z + 1, "mean": z + 0.5, "std": z + 0.25, "count": np.array([len(df)])}
        lines.append(json.dumps({"episode_index": i, "stats": {k: {s: np.asarray(v).tolist() for s, v in d.items()}
                                                                for k, d in stats.items()}}))
    (root / "meta/episodes_stats.jsonl").write_text("\n".join(lines) + "\n")
    info["codebase_version"] = "v2.1"
    (root / "meta/info.json").write_text(json.dumps(info, indent=2))


def codebase_version(root: Path) -> str:
    """meta/info.json's codebase_version ("v2.0", "v2.1", "v3.0", ...), with the kit's error if unreadable."""
    p = root / "meta" / "info.json"
    if not p.exists():
        raise DataError(str(p), "missing: this is not a LeRobot/GR00T dataset folder",
                        "point at the dataset root (the folder that holds meta/ and data/)")
    try:
        info = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise DataError(str(p), f"is not valid JSON ({e.msg})", "restore meta/info.json") from None
    return str(info.get("codebase_version", "unknown"))
