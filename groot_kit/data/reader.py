"""Reading: any LeRobot v3.0 folder (+ modality.json), and GR00T's v2.0/v2.1 layout (converted once into
a cache by ``convert.cached_v3``, never edited in place); a data config selects the keys the policy uses."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .convert import codebase_version as _codebase_version
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

    source: Path | None = None  # the v2 folder this cached v3 copy was converted from (None: read in place)

    @property
    def fps(self) -> int:
        return int(round(float(self.info["fps"])))

    @property
    def embodiment(self) -> str:
        """The robot's name: the kit's own metadata, else info.json's robot_type, else the folder name."""
        name = self.groot.get("embodiment") or self.info.get("robot_type")
        return str(name) if name and name != "unknown" else (self.source or self.root).name

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


def open_dataset(root: str | Path, modality: ModalityConfig | str | Path | None = None,
                 check_nans: bool = True, select=None) -> DatasetInfo:
    """Validate a dataset folder (LeRobot v3.0, or GR00T/LeRobot v2.x: converted once into the cache,
    see ``convert.cached_v3``) and return its DatasetInfo.

    ``modality`` overrides ``meta/modality.json`` (needed for foreign LeRobot data that lacks one;
    if neither exists, one is derived: a single ``state``/``action`` key covering all dims).
    ``select`` (a ``DataConfig``) restricts ``info.modality`` to the chosen keys, in their order.
    """
    root = Path(root)
    if not root.exists():
        raise DataError(str(root), "path does not exist",
                        "check the path, or create the dataset with groot_kit.data.write_dataset")
    ver = _codebase_version(root)
    source = None
    if ver.startswith("v2"):
        from .convert import cached_v3
        source, root = root, cached_v3(root)
        ver = _codebase_version(root)
    if not ver.startswith("v3"):
        raise DataError(str(root / "meta/info.json"), f"unsupported codebase_version '{ver}'",
                        "use a LeRobot v3.0 or GR00T/LeRobot v2.0/v2.1 dataset")
    info = json.loads((root / "meta/info.json").read_text())
    if source is None:
        from .convert import cached_view, phantom_videos
        drop = phantom_videos(root, info)
        if drop:  # declared cameras with no files: read through a view without them
            source, root = root, cached_view(root, drop)
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
    if select is not None and not select.is_empty:
        modality = select.apply(modality)
    if modality.language_key and modality.language_key not in feats:
        raise DataError(f"{root / 'meta/info.json'} -> features", f"language column '{modality.language_key}' is missing",
                        "pick a language_key the dataset has (annotation.* columns), or 'task'")
    groot = {}
    gp = root / GROOT_META
    if gp.exists():
        groot = json.loads(gp.read_text())
    di = DatasetInfo(root=root, info=info, modality=modality, groot=groot, source=source)
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
