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
    """Dims [start, end) of the policy's flat vector; read from ``original_key[source]``.

    ``source`` is None for a plain modality.json (the flat vector IS the feature). A key selection
    (``ModalityConfig.select``) packs the chosen keys into a compact vector and keeps here where each
    key sits in the dataset's feature, so datasets gather those dims and the processor sees only them.
    """

    start: int
    end: int
    original_key: str
    source: tuple[int, int] | None = None

    @property
    def dim(self) -> int:
        return self.end - self.start

    @property
    def src(self) -> tuple[int, int]:
        return self.source if self.source is not None else (self.start, self.end)


@dataclass
class ModalityConfig:
    """Parsed and validated modality.json."""

    state: dict[str, Slice]
    action: dict[str, Slice]
    video: dict[str, str]  # camera key -> original (LeRobot) feature key
    annotation: dict[str, str] = field(default_factory=dict)
    source: str = "<modality>"
    language_key: str | None = None  # column whose task indices give the instruction (None: lerobot's 'task')

    @property
    def is_selection(self) -> bool:
        return any(s.source is not None for g in (self.state, self.action) for s in g.values())

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
                if s.source is not None:
                    d["source"] = list(s.source)
                out[k] = d
            return out

        d = {
            "state": group(self.state, STATE_FEATURE),
            "action": group(self.action, ACTION_FEATURE),
            "video": {k: {"original_key": v} for k, v in self.video.items()},
            "annotation": {k: {"original_key": v} for k, v in self.annotation.items()},
        }
        if self.language_key:
            d["language_key"] = self.language_key
        return d

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
        lang = d.get("language_key")
        if lang is not None and not isinstance(lang, str):
            raise DataError(f"{source} -> language_key", f"must be a column name, got {lang!r}",
                            'write "language_key": "annotation.human.action.task_description"')
        return cls(state=state, action=action, video=video, annotation=ann, source=source, language_key=lang)

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

    # ---------------------------------------------------------- key selection
    def select(self, state_keys=None, action_keys=None, video_keys=None, language_key=None,
               where: str = "data config") -> "ModalityConfig":
        """An ordered subset of keys (GR00T data configs), packed into compact flat vectors.

        Keys may carry their group prefix (``state.left_arm``) or not. None keeps every key. Each
        returned Slice remembers its range in the dataset feature (``source``), so datasets gather
        exactly those dims and ``GrootProcessor`` sees a plain modality of the selected keys.
        """

        def pick(group: str, keys) -> dict[str, Slice]:
            have: dict[str, Slice] = getattr(self, group)
            if keys is None:
                keys = list(have)
            out, i = {}, 0
            for k in keys:
                k = _strip(k, group)
                if k not in have:
                    raise DataError(f"{where} -> {group}_keys", f"'{k}' is not a {group} key of {self.source}",
                                    f"use keys that exist: {', '.join(have) or '(none)'}")
                s = have[k]
                out[k] = Slice(i, i + s.dim, s.original_key, s.src)
                i += s.dim
            return out

        video = dict(self.video)
        if video_keys is not None:
            video = {}
            for k in video_keys:
                k = _strip(k, "video")
                if k not in self.video:
                    raise DataError(f"{where} -> video_keys", f"'{k}' is not a camera of {self.source}",
                                    f"use cameras that exist: {', '.join(self.video) or '(none)'}")
                video[k] = self.video[k]
        lang = self.language_key
        if language_key is not None:
            lang = self.language_column(language_key, where)
        return ModalityConfig(pick("state", state_keys), pick("action", action_keys), video, dict(self.annotation),
                              source=self.source, language_key=lang)

    def language_column(self, key: str, where: str = "data config") -> str | None:
        """'annotation.human.action.task_description' (or without 'annotation.') -> its column; 'task' -> None."""
        if key in ("task", "task_index"):
            return None
        k = _strip(key, "annotation")
        if k not in self.annotation:
            raise DataError(f"{where} -> language_key", f"'{key}' is not an annotation of {self.source}",
                            "use one of: task, " + ", ".join(f"annotation.{a}" for a in self.annotation))
        return self.annotation[k]

    def gather(self, group: str, columns: dict[str, Any]):
        """Flat [..., dim] of ``group`` from feature columns ``{original_key: [..., D]}`` (numpy or torch)."""
        slices: dict[str, Slice] = getattr(self, group)
        parts = [columns[s.original_key][..., s.src[0]:s.src[1]] for s in slices.values()]
        if not self.is_selection and len({s.original_key for s in slices.values()}) == 1:
            return columns[next(iter(slices.values())).original_key]  # plain modality: the feature itself
        if parts and hasattr(parts[0], "detach"):
            import torch
            return torch.cat(parts, -1)
        import numpy as np
        return np.concatenate(parts, -1)

    # ---------------------------------------------------------- consistency
    def check_features(self, features: dict[str, dict], source: str = "meta/info.json") -> None:
        """Check that the dataset's features hold what this modality names."""
        for group, feat_default in (("state", STATE_FEATURE), ("action", ACTION_FEATURE)):
            slices: dict[str, Slice] = getattr(self, group)
            by_key: dict[str, int] = {}
            for k, s in slices.items():
                by_key[s.original_key] = max(by_key.get(s.original_key, 0), s.src[1])
            for fkey, need in by_key.items():
                if fkey not in features:
                    raise DataError(f"{source} -> features", f"feature '{fkey}' named by modality {group} is missing",
                                    f"record '{fkey}' in the dataset or fix the original_key in {self.source}")
                have = int(features[fkey]["shape"][0])
                if self.is_selection and need <= have:
                    continue  # a key selection reads a subset of the feature's dims
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
        src = v.get("source")
        if src is not None and not (isinstance(src, list) and len(src) == 2 and all(isinstance(i, int) for i in src)
                                    and src[1] - src[0] == e - s):
            raise DataError(where, f"'source' must be [start, end] of the same width, got {src!r}",
                            "re-save the processor with ModalityConfig.select")
        out[k] = Slice(s, e, v.get("original_key", default_key), tuple(src) if src is not None else None)
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


def _strip(key: str, group: str) -> str:
    key = str(key).strip()
    return key[len(group) + 1:] if key.startswith(group + ".") else key
