"""GR00T ``meta/modality.json``: which slices of the flat state/action vectors are which joints.

Schema (the one NVIDIA's GR00T loader reads)::

    {"state":  {"<key>": {"start": int, "end": int, ["original_key": "observation.state"]}},
     "action": {"<key>": {"start": int, "end": int, ["original_key": "action"]}},
     "video":  {"<cam>": {"original_key": "observation.images.<cam>"}},
     "annotation": {"human.task_description": {"original_key": "task_index"}, ...}}
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DataError

STATE_FEATURE = "observation.state"
ACTION_FEATURE = "action"
SUBTASK_FEATURE = "annotation.human.subtask"
TASK_ANNOTATION = "human.task_description"
SUBTASK_ANNOTATION = "human.subtask"


@dataclass
class Slice:
    start: int
    end: int
    original_key: str

    @property
    def dim(self) -> int:
        return self.end - self.start


@dataclass
class ModalityConfig:
    """Parsed and validated modality.json."""

    state: dict[str, Slice]
    action: dict[str, Slice]
    video: dict[str, str]  # camera key -> original (LeRobot) feature key
    annotation: dict[str, str] = field(default_factory=dict)
    source: str = "<modality>"

    # ------------------------------------------------------------------ dims
    @property
    def state_dim(self) -> int:
        return max((s.end for s in self.state.values()), default=0)

    @property
    def action_dim(self) -> int:
        return max((s.end for s in self.action.values()), default=0)

    @property
    def video_keys(self) -> list[str]:
        return list(self.video)

    # ------------------------------------------------------------ (de)serialise
    def to_dict(self) -> dict[str, Any]:
        def group(g: dict[str, Slice], default: str):
            out = {}
            for k, s in g.items():
                d = {"start": s.start, "end": s.end}
                if s.original_key != default:
                    d["original_key"] = s.original_key
                out[k] = d
            return out

        return {
            "state": group(self.state, STATE_FEATURE),
            "action": group(self.action, ACTION_FEATURE),
            "video": {k: {"original_key": v} for k, v in self.video.items()},
            "annotation": {k: {"original_key": v} for k, v in self.annotation.items()},
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_dims(
        cls,
        state: dict[str, int],
        action: dict[str, int],
        cameras: list[str],
        subtasks: bool = True,
    ) -> "ModalityConfig":
        """Build a modality from ordered ``{key: dim}`` maps (keys are concatenated in order)."""

        def slices(d: dict[str, int], ok: str) -> dict[str, Slice]:
            out, i = {}, 0
            for k, n in d.items():
                out[k] = Slice(i, i + int(n), ok)
                i += int(n)
            return out

        ann = {TASK_ANNOTATION: "task_index"}
        if subtasks:
            ann[SUBTASK_ANNOTATION] = SUBTASK_FEATURE
        return cls(
            state=slices(state, STATE_FEATURE),
            action=slices(action, ACTION_FEATURE),
            video={c: f"observation.images.{c}" for c in cameras},
            annotation=ann,
        )

    @classmethod
    def from_dict(cls, d: Any, source: str = "modality.json") -> "ModalityConfig":
        if not isinstance(d, dict):
            raise DataError(source, f"top level must be a JSON object, got {type(d).__name__}",
                            'write {"state": {...}, "action": {...}, "video": {...}}')
        for sec in ("state", "action"):
            if sec not in d:
                raise DataError(f"{source} -> '{sec}'", f"section '{sec}' is missing",
                                f'add "{sec}": {{"<key>": {{"start": 0, "end": <dim>}}}}')
        state = _parse_slices(d["state"], "state", STATE_FEATURE, source)
        action = _parse_slices(d["action"], "action", ACTION_FEATURE, source)
        video = {}
        for k, v in (d.get("video") or {}).items():
            if not isinstance(v, dict) or not isinstance(v.get("original_key", f"observation.images.{k}"), str):
                raise DataError(f"{source} -> video.{k}", "entry must be an object with a string 'original_key'",
                                f'write "{k}": {{"original_key": "observation.images.{k}"}}')
            video[k] = v.get("original_key", f"observation.images.{k}")
        ann = {}
        for k, v in (d.get("annotation") or {}).items():
            if not isinstance(v, dict):
                raise DataError(f"{source} -> annotation.{k}", "entry must be an object",
                                f'write "{k}": {{"original_key": "<feature>"}} or {{}}')
            ann[k] = v.get("original_key", f"annotation.{k}")
        return cls(state=state, action=action, video=video, annotation=ann, source=source)

    @classmethod
    def load(cls, path: str | Path) -> "ModalityConfig":
        path = Path(path)
        if not path.exists():
            raise DataError(str(path), "file not found",
                            "write meta/modality.json (groot_kit.data.write_dataset does this) or pass modality=")
        try:
            d = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise DataError(str(path), f"is not valid JSON ({e.msg} at line {e.lineno} column {e.colno})",
                            "correct the JSON syntax (trailing commas and comments are not allowed)") from None
        return cls.from_dict(d, source=str(path))

    # ---------------------------------------------------------- consistency
    def check_features(self, features: dict[str, dict], source: str = "meta/info.json") -> None:
        """Check that the dataset's features hold what this modality names."""
        for group, feat_default in (("state", STATE_FEATURE), ("action", ACTION_FEATURE)):
            slices: dict[str, Slice] = getattr(self, group)
            by_key: dict[str, int] = {}
            for k, s in slices.items():
                by_key[s.original_key] = max(by_key.get(s.original_key, 0), s.end)
            for fkey, need in by_key.items():
                if fkey not in features:
                    raise DataError(f"{source} -> features", f"feature '{fkey}' named by modality {group} is missing",
                                    f"record '{fkey}' in the dataset or fix the original_key in {self.source}")
                have = int(features[fkey]["shape"][0])
                if have != need:
                    raise DataError(f"{self.source} -> {group}",
                                    f"slices end at {need} but feature '{fkey}' has {have} dims",
                                    f"make the {group} slices cover exactly 0..{have} (or re-record the data)")
        for cam, fkey in self.video.items():
            if fkey not in features:
                raise DataError(f"{source} -> features", f"video feature '{fkey}' (camera '{cam}') is missing",
                                f"record '{fkey}' or remove video.{cam} from {self.source}")

    def check_embodiment_dims(self, state_dims: dict[str, int], action_dims: dict[str, int], name: str) -> None:
        """Compare per-key dims with an embodiment's declared dims."""
        for group, want in (("state", state_dims), ("action", action_dims)):
            have = getattr(self, group)
            for k, n in want.items():
                if k not in have:
                    raise DataError(f"{self.source} -> {group}.{k}",
                                    f"embodiment '{name}' declares {group} key '{k}' that the data lacks",
                                    f"add {group}.{k} to modality.json or use the right embodiment")
                if have[k].dim != int(n):
                    raise DataError(f"{self.source} -> {group}.{k}",
                                    f"data has {have[k].dim} dims, embodiment '{name}' expects {n}",
                                    "record the data with this embodiment or pick the matching embodiment")


def _parse_slices(sec: Any, name: str, default_key: str, source: str) -> dict[str, Slice]:
    if not isinstance(sec, dict):
        raise DataError(f"{source} -> '{name}'", "must be an object of {key: {start, end}} ({} for action-free video)",
                        f'write "{name}": {{"joints": {{"start": 0, "end": 6}}}}')
    out: dict[str, Slice] = {}
    for k, v in sec.items():
        where = f"{source} -> {name}.{k}"
        if not isinstance(v, dict) or "start" not in v or "end" not in v:
            raise DataError(where, "needs integer 'start' and 'end'", f'write "{k}": {{"start": 0, "end": 6}}')
        s, e = v["start"], v["end"]
        if not (isinstance(s, int) and isinstance(e, int)) or isinstance(s, bool) or isinstance(e, bool):
            raise DataError(where, f"start/end must be integers, got {s!r}/{e!r}", "use integer indices")
        if s < 0 or e <= s:
            raise DataError(where, f"empty or negative slice [{s}, {e})", "use 0 <= start < end")
        out[k] = Slice(s, e, v.get("original_key", default_key))
    # overlaps within the same original feature
    by_feat: dict[str, list[tuple[int, int, str]]] = {}
    for k, s in out.items():
        by_feat.setdefault(s.original_key, []).append((s.start, s.end, k))
    for spans in by_feat.values():
        spans.sort()
        for (s0, e0, k0), (s1, e1, k1) in zip(spans, spans[1:]):
            if s1 < e0:
                raise DataError(f"{source} -> {name}", f"slices '{k0}' [{s0},{e0}) and '{k1}' [{s1},{e1}) overlap",
                                "make each key's [start, end) disjoint")
    return out
