"""Reading: any LeRobot v3.0 folder (+ modality.json), and GR00T's v2.0/v2.1 layout via lerobot's converter."""
from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DataError
from .modality import ACTION_FEATURE, STATE_FEATURE, ModalityConfig
from .writer import GROOT_META, MODALITY_FILE


@dataclass
class DatasetInfo:
    """What the kit knows about one dataset folder."""

    root: Path
    info: dict
    modality: ModalityConfig
    groot: dict = field(default_factory=dict)  # meta/groot_kit.json (tiers, provenance) if present

    @property
    def fps(self) -> int:
        return int(self.info["fps"])

    @property
    def features(self) -> dict:
        return self.info["features"]

    @property
    def num_episodes(self) -> int:
        return int(self.info["total_episodes"])

    @property
    def num_frames(self) -> int:
        return int(self.info["total_frames"])

    @property
    def has_actions(self) -> bool:
        return ACTION_FEATURE in self.features

    def episode_tiers(self) -> list[str]:
        eps = self.groot.get("episodes")
        if eps:
            return [e.get("tier", "teleop") for e in eps]
        return ["teleop"] * self.num_episodes  # foreign LeRobot data: treat as real/teleop


def _codebase_version(root: Path) -> str:
    p = root / "meta" / "info.json"
    if not p.exists():
        raise DataError(str(p), "missing: this is not a LeRobot/GR00T dataset folder",
                        "point at the dataset root (the folder that holds meta/ and data/)")
    try:
        info = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise DataError(str(p), f"is not valid JSON ({e.msg})", "restore meta/info.json") from None
    return str(info.get("codebase_version", "unknown"))


def open_dataset(root: str | Path, modality: ModalityConfig | str | Path | None = None,
                 check_nans: bool = True) -> DatasetInfo:
    """Validate a LeRobot v3.0 dataset folder and return its DatasetInfo.

    ``modality`` overrides ``meta/modality.json`` (needed for foreign LeRobot data that lacks one;
    if neither exists, one is derived: a single ``state``/``action`` key covering all dims).
    """
    root = Path(root)
    if not root.exists():
        raise DataError(str(root), "path does not exist",
                        "check the path, or create the dataset with groot_kit.data.write_dataset")
    ver = _codebase_version(root)
    if ver.startswith("v2"):
        raise DataError(str(root / "meta/info.json"), f"codebase_version is {ver} (GR00T/LeRobot v2 layout)",
                        f"convert it first: groot_kit.data.convert_v2_to_v3('{root}', '<new folder>')")
    if not ver.startswith("v3"):
        raise DataError(str(root / "meta/info.json"), f"unsupported codebase_version '{ver}'",
                        "use a LeRobot v3.0 dataset (or convert v2.x with convert_v2_to_v3)")
    info = json.loads((root / "meta/info.json").read_text())
    feats = info.get("features", {})
    if isinstance(modality, (str, Path)):
        modality = ModalityConfig.load(modality)
    if modality is None:
        mpath = root / MODALITY_FILE
        if mpath.exists():
            modality = ModalityConfig.load(mpath)
        else:
            modality = _derive_modality(feats, root)
    modality.check_features(feats, source=str(root / "meta/info.json"))
    groot = {}
    gp = root / GROOT_META
    if gp.exists():
        groot = json.loads(gp.read_text())
    di = DatasetInfo(root=root, info=info, modality=modality, groot=groot)
    if check_nans:
        check_numeric_columns(root, [k for k in (STATE_FEATURE, ACTION_FEATURE) if k in feats])
    return di


def _derive_modality(feats: dict, root: Path) -> ModalityConfig:
    if STATE_FEATURE not in feats and ACTION_FEATURE not in feats:
        raise DataError(str(root / "meta/info.json"), f"features lack both '{STATE_FEATURE}' and '{ACTION_FEATURE}'",
                        "write meta/modality.json naming the state/action features, or pass modality=")
    st = {"state": int(feats[STATE_FEATURE]["shape"][0])} if STATE_FEATURE in feats else {}
    ac = {"action": int(feats[ACTION_FEATURE]["shape"][0])} if ACTION_FEATURE in feats else {}
    cams = [k for k, f in feats.items() if f.get("dtype") in ("video", "image")]
    m = ModalityConfig.from_dims(st or {"state": 1}, ac or {"action": 1}, [], subtasks=False)
    if not st:
        m.state = {}
    if not ac:
        m.action = {}
    m.video = {k.split(".")[-1]: k for k in cams}
    m.source = str(root / MODALITY_FILE) + " (derived)"
    return m


def check_numeric_columns(root: Path, columns: list[str]) -> None:
    """Fail with the parquet file, column, row and episode if a state/action value is NaN/inf."""
    import pyarrow.parquet as pq

    files = sorted((Path(root) / "data").glob("**/*.parquet"))
    if not files:
        raise DataError(str(Path(root) / "data"), "no parquet files", "the dataset is empty or was not finalized")
    for f in files:
        cols = [c for c in columns + ["episode_index", "frame_index"]]
        try:
            table = pq.read_table(f, columns=cols)
        except Exception as e:  # missing column etc
            raise DataError(str(f), f"cannot read columns {cols}: {e}", "re-write the dataset") from None
        for c in columns:
            arr = np.asarray(table.column(c).to_pylist(), dtype=np.float64)
            bad = ~np.isfinite(arr)
            if bad.any():
                row = int(np.argwhere(bad.reshape(len(arr), -1).any(1))[0][0])
                ep = table.column("episode_index")[row].as_py()
                fi = table.column("frame_index")[row].as_py()
                raise DataError(f"{f} -> column '{c}'", f"NaN/inf at row {row} (episode {ep}, frame {fi})",
                                "repair or drop that episode (e.g. lerobot-edit-dataset delete_episodes) and rewrite")


def convert_v2_to_v3(src: str | Path, dst: str | Path, overwrite: bool = False) -> Path:
    """Convert a GR00T/LeRobot v2.0 or v2.1 dataset at ``src`` into a v3.0 dataset at ``dst``.

    Uses lerobot's own converter (``lerobot.scripts.convert_dataset_v21_to_v30``) on a copy, so
    ``src`` is never modified, and keeps ``meta/modality.json``. A v2.0 dataset (no
    ``meta/episodes_stats.jsonl``) is first lifted to v2.1 by computing per-episode stats with
    lerobot's ``compute_episode_stats``.
    """
    from lerobot.scripts.convert_dataset_v21_to_v30 import convert_dataset

    src, dst = Path(src), Path(dst)
    if not src.exists():
        raise DataError(str(src), "path does not exist", "pass the root of the GR00T v2 dataset")
    ver = _codebase_version(src)
    if not ver.startswith("v2"):
        raise DataError(str(src / "meta/info.json"), f"codebase_version is '{ver}', not v2.0/v2.1",
                        "v3.0 datasets need no conversion: use open_dataset")
    if dst.exists() and not overwrite:
        raise DataError(str(dst), "already exists", "pass overwrite=True or choose another destination")
    for need in ("meta/episodes.jsonl", "meta/tasks.jsonl"):
        if not (src / need).exists():
            raise DataError(str(src / need), "missing", "a v2 dataset needs meta/episodes.jsonl and meta/tasks.jsonl")
    if (src / MODALITY_FILE).exists():
        ModalityConfig.load(src / MODALITY_FILE)  # fail early on a malformed modality file
    dst.parent.mkdir(parents=True, exist_ok=True)
    work = dst.parent / f".{dst.name}.conv-{uuid.uuid4().hex[:8]}"
    try:
        shutil.copytree(src, work)
        if ver == "v2.0" or not (work / "meta/episodes_stats.jsonl").exists():
            _lift_v20_to_v21(work)
        convert_dataset(repo_id=f"local/{dst.name}", root=work, push_to_hub=False, force_conversion=True)
        shutil.rmtree(work.parent / f"{work.name}_old", ignore_errors=True)
        if (src / MODALITY_FILE).exists():
            shutil.copy2(src / MODALITY_FILE, work / MODALITY_FILE)
        if dst.exists():
            shutil.rmtree(dst)
        os.replace(work, dst)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(work.parent / f"{work.name}_old", ignore_errors=True)
        shutil.rmtree(work.parent / f"{work.name}_v30", ignore_errors=True)
        raise
    return dst


def _lift_v20_to_v21(root: Path) -> None:
    """Write meta/episodes_stats.jsonl (per-episode stats of numeric features) and mark v2.1."""
    import pandas as pd
    from lerobot.datasets.compute_stats import compute_episode_stats

    info = json.loads((root / "meta/info.json").read_text())
    feats = info["features"]
    num = {k: f for k, f in feats.items() if f["dtype"] not in ("video", "image", "string")}
    lines = []
    eps = [json.loads(l) for l in (root / "meta/episodes.jsonl").read_text().splitlines() if l.strip()]
    chunks = int(info.get("chunks_size", 1000))
    for e in eps:
        i = e["episode_index"]
        p = root / info["data_path"].format(episode_chunk=i // chunks, episode_index=i)
        df = pd.read_parquet(p)
        data = {k: np.stack(df[k].to_numpy()).astype(np.float64) if k in df else None for k in num}
        data = {k: (v.reshape(len(v), -1) if v is not None else None) for k, v in data.items() if v is not None}
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
