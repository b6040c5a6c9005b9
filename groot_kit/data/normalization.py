"""Per-key normalization (GR00T modes) with stats computed from data and serializable to JSON.

Modes: ``min_max`` -> [-1, 1] (constant dims -> 0); ``q99`` -> q01/q99 mapped to [-1, 1] and
clamped; ``mean_std`` -> zero mean unit std (constant dims -> 0); ``binary`` -> {0, 1} (threshold at
the midpoint of min/max, unnormalize maps back to min/max).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import DataError

MODES = ("min_max", "q99", "mean_std", "binary")
_EPS = 1e-8


@dataclass
class KeyStats:
    mode: str
    min: np.ndarray
    max: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    q01: np.ndarray
    q99: np.ndarray

    @classmethod
    def compute(cls, x: np.ndarray, mode: str) -> "KeyStats":
        if mode not in MODES:
            raise DataError("normalization mode", f"unknown mode '{mode}'", f"use one of {MODES}")
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        return cls(mode, x.min(0), x.max(0), x.mean(0), x.std(0),
                   np.quantile(x, 0.01, axis=0), np.quantile(x, 0.99, axis=0))

    def to_dict(self) -> dict:
        return {"mode": self.mode, **{k: getattr(self, k).astype(float).tolist()
                                      for k in ("min", "max", "mean", "std", "q01", "q99")}}

    @classmethod
    def from_dict(cls, d: dict) -> "KeyStats":
        return cls(d["mode"], *(np.asarray(d[k], dtype=np.float64) for k in ("min", "max", "mean", "std", "q01", "q99")))

    def _lohi(self):
        return (self.q01, self.q99) if self.mode == "q99" else (self.min, self.max)

    def normalize(self, x):
        t = torch.is_tensor(x)
        xx = x if t else torch.as_tensor(np.asarray(x, dtype=np.float32))
        f = lambda a: torch.as_tensor(a, dtype=xx.dtype, device=xx.device)
        if self.mode in ("min_max", "q99"):
            lo, hi = self._lohi()
            rng = f(hi - lo)
            const = rng.abs() < _EPS
            y = 2 * (xx - f(lo)) / torch.where(const, torch.ones_like(rng), rng) - 1
            y = torch.where(const, torch.zeros_like(y), y)
            if self.mode == "q99":
                y = y.clamp(-1, 1)
        elif self.mode == "mean_std":
            sd = f(self.std)
            const = sd < _EPS
            y = (xx - f(self.mean)) / torch.where(const, torch.ones_like(sd), sd)
            y = torch.where(const, torch.zeros_like(y), y)
        else:  # binary
            y = (xx > f((self.min + self.max) / 2)).to(xx.dtype)
        return y if t else y.numpy()

    def unnormalize(self, y):
        t = torch.is_tensor(y)
        yy = y if t else torch.as_tensor(np.asarray(y, dtype=np.float32))
        f = lambda a: torch.as_tensor(a, dtype=yy.dtype, device=yy.device)
        if self.mode in ("min_max", "q99"):
            lo, hi = self._lohi()
            x = (yy.clamp(-1, 1) + 1) / 2 * f(hi - lo) + f(lo)
        elif self.mode == "mean_std":
            x = yy * f(self.std) + f(self.mean)
        else:
            x = torch.where(yy > 0.5, f(self.max), f(self.min)).to(yy.dtype)
        return x if t else x.numpy()


@dataclass
class NormalizationStats:
    """Stats for every state/action key: ``groups['state'|'action'][key] -> KeyStats``."""

    groups: dict[str, dict[str, KeyStats]] = field(default_factory=dict)

    # ---------------------------------------------------------------- compute
    @classmethod
    def from_arrays(cls, state: np.ndarray | None, action: np.ndarray | None, modality,
                    modes: dict[str, str] | None = None, default_mode: str = "min_max") -> "NormalizationStats":
        """``modes`` maps ``"state.<key>"``/``"action.<key>"`` (or bare ``<key>``) to a mode."""
        modes = modes or {}
        out: dict[str, dict[str, KeyStats]] = {}
        for group, arr in (("state", state), ("action", action)):
            slices = getattr(modality, group)
            if arr is None or not slices:
                continue
            arr = np.asarray(arr)
            if not np.isfinite(arr).all():
                raise DataError(f"{group} data", "contains NaN/inf", "clean the data before computing stats")
            out[group] = {}
            for k, s in slices.items():
                m = modes.get(f"{group}.{k}", modes.get(k, default_mode))
                out[group][k] = KeyStats.compute(arr[:, s.start:s.end], m)
        return cls(out)

    @classmethod
    def from_dataset(cls, info, modes: dict[str, str] | None = None, default_mode: str = "min_max"):
        """Stats from a dataset's parquet columns (no video decoding)."""
        st, ac = load_numeric(info)
        return cls.from_arrays(st, ac, info.modality, modes, default_mode)

    # ----------------------------------------------------------- serialise
    def to_dict(self) -> dict[str, Any]:
        return {g: {k: s.to_dict() for k, s in d.items()} for g, d in self.groups.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "NormalizationStats":
        try:
            return cls({g: {k: KeyStats.from_dict(s) for k, s in kd.items()} for g, kd in d.items()})
        except (KeyError, TypeError) as e:
            raise DataError("normalization stats", f"malformed entry ({e})",
                            "save stats with NormalizationStats.to_dict()") from None

    # ----------------------------------------------------------- apply
    def normalize(self, group: str, key: str, x):
        return self.groups[group][key].normalize(x)

    def unnormalize(self, group: str, key: str, x):
        return self.groups[group][key].unnormalize(x)

    def normalize_flat(self, group: str, x, modality):
        """Normalize a flat [..., D] array key by key using the modality's slices."""
        t = torch.is_tensor(x)
        xx = x.clone() if t else np.array(x, dtype=np.float32, copy=True)
        for k, s in getattr(modality, group).items():
            xx[..., s.start:s.end] = self.normalize(group, k, x[..., s.start:s.end])
        return xx

    def unnormalize_flat(self, group: str, x, modality):
        t = torch.is_tensor(x)
        xx = x.clone() if t else np.array(x, dtype=np.float32, copy=True)
        for k, s in getattr(modality, group).items():
            xx[..., s.start:s.end] = self.unnormalize(group, k, x[..., s.start:s.end])
        return xx


def load_numeric(info) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The policy's flat state and action vectors of every frame of a dataset, as float arrays.

    With a key selection (``info.modality.is_selection``) only the selected dims, in their order.
    """
    import pyarrow.parquet as pq

    mod = info.modality
    need = {g: sorted({s.original_key for s in getattr(mod, g).values()} & set(info.features))
            for g in ("state", "action")}
    cols = sorted(set(need["state"]) | set(need["action"]))
    parts: dict[str, list] = {c: [] for c in cols}
    for f in sorted((Path(info.root) / "data").glob("**/*.parquet")):
        tab = pq.read_table(f, columns=cols)
        for c in cols:
            parts[c].append(np.asarray(tab.column(c).to_pylist(), dtype=np.float32))
    full = {c: np.concatenate(v) for c, v in parts.items() if v}
    get = lambda g: mod.gather(g, full) if getattr(mod, g) and need[g] and all(c in full for c in need[g]) else None
    return get("state"), get("action")
