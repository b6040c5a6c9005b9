"""Data configs (GR00T style): which modality keys the policy uses, in which order, normalised how.

modality.json says what a dataset holds; a data config chooses what the policy sees. A YAML file::

    # GR00T's GR1 arms-only setup: 26 of the 44 state/action dims, the ego camera only
    state_keys: [left_arm, right_arm, left_hand, right_hand]
    action_keys: [left_arm, right_arm, left_hand, right_hand]
    video_keys: [ego_view]
    language_key: annotation.human.action.task_description
    normalization: {state.left_hand: min_max, action.left_hand: min_max}   # default min_max

Ready configs ship in ``groot_kit/data/configs/`` (``DataConfig.load("gr1_arms_only")``); CLI flags
(``--state-keys a,b --action-keys ... --video-keys ... --language-key ...``) override file fields.
The selection lands in the processor saved with the checkpoint (``ModalityConfig.select``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import DataError
from .normalization import MODES

CONFIG_DIR = Path(__file__).parent / "configs"
_FIELDS = ("state_keys", "action_keys", "video_keys", "language_key", "normalization", "embodiment")


@dataclass
class DataConfig:
    state_keys: list[str] | None = None    # ordered modality state keys; None = all, in modality.json order
    action_keys: list[str] | None = None   # ordered action keys; None = all
    video_keys: list[str] | None = None    # cameras; None = all, [] = none
    language_key: str | None = None        # annotation column with task indices; None = the episode task
    normalization: dict[str, str] = field(default_factory=dict)  # "state.<key>"/"action.<key>" -> mode
    embodiment: str | None = None          # name the processor is saved under (default: the dataset's robot)
    source: str = "<data config>"

    @property
    def is_empty(self) -> bool:
        return not any(getattr(self, f) for f in _FIELDS)

    def apply(self, modality, where: str | None = None):
        """The modality restricted to this config's keys (see ``ModalityConfig.select``)."""
        return modality.select(self.state_keys, self.action_keys, self.video_keys, self.language_key,
                               where=where or self.source)

    def norm_modes(self) -> dict[str, str]:
        return dict(self.normalization)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "source" and v not in (None, {}, [])}

    # ------------------------------------------------------------------ load
    @classmethod
    def from_dict(cls, d: Any, source: str = "data config") -> "DataConfig":
        if d is None:
            d = {}
        if not isinstance(d, dict):
            raise DataError(source, f"top level must be a mapping, got {type(d).__name__}",
                            "write 'state_keys: [...]', 'action_keys: [...]', ...")
        unknown = sorted(set(d) - set(_FIELDS))
        if unknown:
            raise DataError(f"{source} -> {unknown[0]}", "unknown field", f"use only: {', '.join(_FIELDS)}")
        kw: dict[str, Any] = {}
        for k in ("state_keys", "action_keys", "video_keys"):
            if d.get(k) is not None:
                v = d[k]
                if isinstance(v, str):
                    v = split_keys(v)
                if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                    raise DataError(f"{source} -> {k}", f"must be a list of key names, got {v!r}",
                                    f"write {k}: [left_arm, right_arm]")
                kw[k] = v
        for k in ("language_key", "embodiment"):
            if d.get(k) is not None:
                if not isinstance(d[k], str):
                    raise DataError(f"{source} -> {k}", f"must be a string, got {d[k]!r}", f"write {k}: <name>")
                kw[k] = d[k]
        norm = d.get("normalization") or {}
        if not isinstance(norm, dict):
            raise DataError(f"{source} -> normalization", "must be a mapping", "write normalization: {state.arm: q99}")
        for k, m in norm.items():
            if m not in MODES:
                raise DataError(f"{source} -> normalization.{k}", f"unknown mode {m!r}", f"use one of {', '.join(MODES)}")
        return cls(**kw, normalization=dict(norm), source=source)

    @classmethod
    def load(cls, name_or_path: str | Path) -> "DataConfig":
        """A YAML file, or the name of a shipped config (``available()``)."""
        import yaml

        p = Path(name_or_path)
        if not p.exists():
            p = CONFIG_DIR / f"{name_or_path}.yaml"
        if not p.exists():
            raise DataError(str(name_or_path), "no such data config file or shipped config",
                            f"give a YAML path or one of: {', '.join(available())}")
        try:
            d = yaml.safe_load(p.read_text())
        except yaml.YAMLError as e:
            raise DataError(str(p), f"is not valid YAML ({e})", "correct the YAML syntax") from None
        return cls.from_dict(d, source=str(p))

    def with_overrides(self, **kw) -> "DataConfig":
        """CLI flags win over the file: ``state_keys="a,b"`` etc.; None leaves a field alone."""
        kw = {k: (split_keys(v) if k.endswith("_keys") and isinstance(v, str) else v)
              for k, v in kw.items() if v is not None}
        return replace(self, **kw)


def split_keys(s: str) -> list[str]:
    """'left_arm, right_arm' -> ['left_arm', 'right_arm']; '' -> [] (e.g. no cameras)."""
    return [k.strip() for k in s.split(",") if k.strip()]


def available() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
