"""GrootProcessor: one raw GR00T-style observation dict -> model batch, and action chunk -> robot actions."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from groot_kit.constants import TASK_KEY

from .dataset import ACTION_HORIZON, MAX_ACTION_DIM, MAX_STATE_DIM, pad_last, resize_images
from .errors import DataError
from .modality import ModalityConfig
from .normalization import NormalizationStats


class GrootProcessor:
    """Observation ``{"video.<cam>": uint8 [H,W,3]|[B,H,W,3], "state.<key>": [d]|[B,d],
    "annotation.human.task_description": str|list[str]}`` -> model batch (see dataset.py)."""

    def __init__(self, modality: ModalityConfig, stats: NormalizationStats, embodiment_id: int,
                 image_size: int = 224, horizon: int = ACTION_HORIZON, max_state_dim: int = MAX_STATE_DIM,
                 max_action_dim: int = MAX_ACTION_DIM, max_views: int | None = None,
                 embodiment: str = "unknown"):
        self.modality, self.stats = modality, stats
        self.embodiment_id, self.embodiment = int(embodiment_id), embodiment
        self.image_size, self.horizon = int(image_size), int(horizon)
        self.max_state_dim, self.max_action_dim = max_state_dim, max_action_dim
        self.max_views = max_views or max(1, len(modality.video))

    # ------------------------------------------------------------ obs -> batch
    def __call__(self, obs: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(obs, dict):
            raise DataError("observation", f"expected a dict, got {type(obs).__name__}",
                            'pass {"video.<cam>": ..., "state.<key>": ..., "' + TASK_KEY + '": "..."}')
        B = None
        views = []
        for cam in self.modality.video:
            k = f"video.{cam}"
            if k not in obs:
                raise DataError(f"observation['{k}']", "missing", f"add camera '{cam}' as uint8 [H,W,3] or [B,H,W,3]")
            img = np.asarray(obs[k])
            if img.ndim == 5 and img.shape[1] == 1:
                img = img[:, 0]
            if img.ndim == 3:
                img = img[None]
            if img.ndim != 4 or img.shape[-1] != 3:
                raise DataError(f"observation['{k}']", f"shape {img.shape}", "pass uint8 [H,W,3] or [B,H,W,3]")
            B = self._batch(B, img.shape[0], k)
            t = torch.from_numpy(np.ascontiguousarray(img)).permute(0, 3, 1, 2)
            t = t.float() / 255.0 if img.dtype == np.uint8 else t.float()
            views.append(resize_images(t, self.image_size))
        parts = []
        for key, s in self.modality.state.items():
            k = f"state.{key}"
            if k not in obs:
                raise DataError(f"observation['{k}']", "missing", f"add '{k}' as float [{s.dim}] or [B,{s.dim}]")
            x = np.asarray(obs[k], dtype=np.float32)
            if x.ndim == 3 and x.shape[1] == 1:
                x = x[:, 0]
            if x.ndim == 1:
                x = x[None]
            if x.ndim != 2 or x.shape[-1] != s.dim:
                raise DataError(f"observation['{k}']", f"shape {x.shape}, expected [B, {s.dim}]",
                                f"send the {s.dim} values of '{key}' for embodiment '{self.embodiment}'")
            if not np.isfinite(x).all():
                raise DataError(f"observation['{k}']", "contains NaN/inf", "send finite joint values")
            B = self._batch(B, x.shape[0], k)
            parts.append(self.stats.normalize("state", key, torch.from_numpy(x)))
        B = B or 1
        batch: dict[str, Any] = {}
        V, S = self.max_views, self.image_size
        pix = torch.zeros(B, V, 3, S, S)
        vmask = torch.zeros(B, V, dtype=torch.bool)
        for v, im in enumerate(views[:V]):
            pix[:, v] = im
            vmask[:, v] = True
        batch["pixel_values"], batch["view_mask"] = pix, vmask
        if parts:
            batch["state"], batch["state_mask"] = pad_last(torch.cat(parts, -1), self.max_state_dim, "state")
        else:
            batch["state"] = torch.zeros(B, self.max_state_dim)
            batch["state_mask"] = torch.zeros(B, self.max_state_dim, dtype=torch.bool)
        text = obs.get(TASK_KEY, "")
        text = [text] * B if isinstance(text, str) else [str(t) for t in np.asarray(text).reshape(-1)]
        if len(text) != B:
            raise DataError(f"observation['{TASK_KEY}']", f"{len(text)} instructions for batch {B}",
                            "give one string, or one per batch element")
        batch["instruction"] = text
        batch["embodiment_id"] = torch.full((B,), self.embodiment_id, dtype=torch.long)
        am = torch.zeros(B, self.horizon, self.max_action_dim, dtype=torch.bool)
        am[..., : self.modality.action_dim] = True
        batch["action_mask"] = am
        return batch

    @staticmethod
    def _batch(B, n, key):
        if B is not None and n != B:
            raise DataError(f"observation['{key}']", f"batch size {n} differs from {B}",
                            "give every key the same leading batch size")
        return n

    # ------------------------------------------------------------ chunk -> actions
    def decode_action(self, chunk) -> dict[str, np.ndarray]:
        """Normalized [B, H, 32] (or [H, 32]) -> ``{"action.<key>": [B, H, d]}`` unnormalized."""
        x = chunk.detach().float().cpu() if torch.is_tensor(chunk) else torch.as_tensor(np.asarray(chunk, np.float32))
        if x.ndim == 2:
            x = x[None]
        if x.ndim != 3 or x.shape[-1] < self.modality.action_dim:
            raise DataError("action chunk", f"shape {tuple(x.shape)}",
                            f"pass [B, H, >= {self.modality.action_dim}] normalized actions")
        return {f"action.{k}": self.stats.unnormalize("action", k, x[..., s.start:s.end]).numpy()
                for k, s in self.modality.action.items()}

    def encode_action(self, actions: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Inverse of decode_action: ``{"action.<key>": [B,H,d]}`` -> normalized padded [B,H,32] + mask."""
        parts = []
        for k, s in self.modality.action.items():
            if f"action.{k}" not in actions:
                raise DataError(f"actions['action.{k}']", "missing", f"give all action keys {list(self.modality.action)}")
            parts.append(self.stats.normalize("action", k, torch.as_tensor(np.asarray(actions[f"action.{k}"], np.float32))))
        return pad_last(torch.cat(parts, -1), self.max_action_dim, "action")

    # ------------------------------------------------------------ save/load
    def to_dict(self) -> dict[str, Any]:
        return {"modality": self.modality.to_dict(), "stats": self.stats.to_dict(),
                "embodiment_id": self.embodiment_id, "embodiment": self.embodiment,
                "image_size": self.image_size, "horizon": self.horizon, "max_state_dim": self.max_state_dim,
                "max_action_dim": self.max_action_dim, "max_views": self.max_views}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GrootProcessor":
        return cls(ModalityConfig.from_dict(d["modality"], source="processor.modality"),
                   NormalizationStats.from_dict(d["stats"]), d["embodiment_id"], d.get("image_size", 224),
                   d.get("horizon", ACTION_HORIZON), d.get("max_state_dim", MAX_STATE_DIM),
                   d.get("max_action_dim", MAX_ACTION_DIM), d.get("max_views"), d.get("embodiment", "unknown"))

    @classmethod
    def from_dataset(cls, ds, image_size: int | None = None) -> "GrootProcessor":
        """Processor matching a GrootDataset (same modality, stats, embodiment id, sizes)."""
        return cls(ds.modality, ds.stats, ds.embodiment_id, image_size or ds.image_size, ds.horizon,
                   ds.max_state_dim, ds.max_action_dim, ds.max_views,
                   ds.info.groot.get("embodiment", "unknown"))
