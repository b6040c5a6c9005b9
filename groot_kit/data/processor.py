"""GrootProcessor: one raw GR00T-style observation dict -> model batch, and action chunk -> robot actions."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from groot_kit.constants import TASK_KEY

from .errors import DataError
from .modality import ModalityConfig
from .normalization import NormalizationStats

MAX_STATE_DIM = 64
MAX_ACTION_DIM = 32
ACTION_HORIZON = 16


def resize_images(imgs: torch.Tensor, size: int) -> torch.Tensor:
    """[..., 3, h, w] float in [0,1] -> [..., 3, size, size] (bilinear, antialiased)."""
    lead = imgs.shape[:-3]
    x = imgs.reshape(-1, *imgs.shape[-3:]).float()
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(0, 1).reshape(*lead, 3, size, size)


def pad_last(x: torch.Tensor, n: int, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    d = x.shape[-1]
    if d > n:
        raise DataError(what, f"{d} dims exceed the model maximum {n}",
                        f"use a model config with a larger max dim or fewer {what} keys")
    out = torch.zeros(*x.shape[:-1], n, dtype=torch.float32)
    out[..., :d] = x
    mask = torch.zeros(*x.shape[:-1], n, dtype=torch.bool)
    mask[..., :d] = True
    return out, mask


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
            views.append(t.float() / 255.0 if img.dtype == np.uint8 else t.float())
        state, state_mask, B = self.encode_state(obs, B)
        B = B or 1
        batch: dict[str, Any] = {}
        batch["pixel_values"], batch["view_mask"] = self.pack_views(views, B)
        if state is None:
            state = torch.zeros(B, self.max_state_dim)
            state_mask = torch.zeros(B, self.max_state_dim, dtype=torch.bool)
        batch["state"], batch["state_mask"] = state, state_mask
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

    def encode_state(self, obs: dict[str, Any], B: int | None = None):
        """``{"state.<key>": [d]|[B,d]}`` -> normalised padded state [B, Dmax_s], its mask, and B.

        Returns ``(None, None, B)`` when the modality has no state keys. The one state transform:
        the batch builder above and the dual-rate runtime's System 1 both call it."""
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
            parts.append(torch.from_numpy(x))
        if not parts:
            return None, None, B
        state, mask = self.encode_flat("state", torch.cat(parts, -1))
        return state, mask, B

    def encode_flat(self, group: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Unnormalised [..., d] in modality order ("state" or "action") -> normalised, zero-padded
        [..., Dmax] and its mask. The dataset's samples and live observations both go through it."""
        n = self.max_state_dim if group == "state" else self.max_action_dim
        return pad_last(self.stats.normalize_flat(group, x.float(), self.modality), n, group)

    def pack_views(self, views: list[torch.Tensor], B: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Camera images, each float [B, 3, h, w] in [0, 1] in modality order -> pixel_values
        [B, V, 3, S, S] (resized; missing views zero) and view_mask [B, V]."""
        V, S = self.max_views, self.image_size
        pix = torch.zeros(B, V, 3, S, S)
        vmask = torch.zeros(B, V, dtype=torch.bool)
        for v, im in enumerate(views[:V]):
            pix[:, v] = resize_images(im, S)
            vmask[:, v] = True
        return pix, vmask

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
        """The processor a GrootDataset builds its samples with (a copy; `image_size` may differ)."""
        p = ds.processor
        return cls(p.modality, p.stats, p.embodiment_id, image_size or p.image_size, p.horizon, p.max_state_dim,
                   p.max_action_dim, p.max_views, p.embodiment)

    @classmethod
    def for_policy(cls, policy_config, modality: ModalityConfig, stats: NormalizationStats, embodiment_id: int,
                   embodiment: str = "unknown") -> "GrootProcessor":
        """The one constructor that threads the model's sizes (image size, horizon, padded dims,
        views) from a policy config (or a GrootPolicy) into a processor."""
        cfg = getattr(policy_config, "config", policy_config)
        ah = cfg.action_head
        return cls(modality, stats, embodiment_id, image_size=cfg.vlm.vision.image_size, horizon=ah.action_horizon,
                   max_state_dim=ah.max_state_dim, max_action_dim=ah.max_action_dim, max_views=cfg.vlm.num_views,
                   embodiment=embodiment)

    @classmethod
    def from_embodiment(cls, spec, policy_config) -> "GrootProcessor":
        """A processor for a sim embodiment with no recorded data (e.g. a randomly initialised policy in
        the runtime demo): its state/action keys, min-max stats over the joint limits (gripper [0, 1]),
        the first `num_views` cameras, the slot id from embodiment.yaml."""
        cfg = getattr(policy_config, "config", policy_config)

        def ordered(keys):
            return {k.name: k.dim for k in sorted(keys.values(), key=lambda k: k.start)}

        def bounds(keys):
            d = sum(k.dim for k in keys.values())
            lo, hi = np.zeros(d, np.float32), np.ones(d, np.float32)
            for k in keys.values():
                if k.source == "joints":
                    lo[k.start:k.end] = [spec.joint_limits[j][0] for j in k.joints]
                    hi[k.start:k.end] = [spec.joint_limits[j][1] for j in k.joints]
            return np.stack([lo, hi])

        mod = ModalityConfig.from_dims(ordered(spec.state), ordered(spec.action), list(spec.cameras)[: cfg.vlm.num_views])
        stats = NormalizationStats.from_arrays(bounds(spec.state), bounds(spec.action), mod)
        return cls.for_policy(cfg, mod, stats, spec.slot_id, spec.name)


def processor_for(policy, embodiment=None, dataset=None) -> GrootProcessor:
    """The processor a policy uses for a robot (name, folder or EmbodimentSpec) or a dataset.

    In order: the processor stored in the checkpoint under the robot's name; one stored for the same
    slot id (same slot, same stats); then, for a dataset, the dataset's own stats; for a robot, only
    when the policy carries no processor at all (random init), min-max stats over its joint limits.
    A trained policy with no processor for the robot is refused: guessed stats would give silently
    wrong actions.
    """
    procs = policy.normalization.get("processors", {})

    def by_slot(slot: int):
        for d in procs.values():
            if int(d["embodiment_id"]) == int(slot):
                return GrootProcessor.from_dict(d)
        return None

    if dataset is not None:
        name = dataset.info.groot.get("embodiment")
        if name in procs:
            return GrootProcessor.from_dict(procs[name])
        return by_slot(dataset.embodiment_id) or GrootProcessor.from_dataset(
            dataset, image_size=policy.config.vlm.vision.image_size)
    if embodiment is None:
        return policy.get_processor()
    if isinstance(embodiment, str) and embodiment in procs:
        return GrootProcessor.from_dict(procs[embodiment])
    from groot_kit.embodiment import load_embodiment
    spec = load_embodiment(embodiment)
    if spec.name in procs:
        return GrootProcessor.from_dict(procs[spec.name])
    found = by_slot(spec.slot_id)
    if found is not None:
        return found
    if not procs:
        return GrootProcessor.from_embodiment(spec, policy.config)
    raise DataError(f"policy processors for embodiment '{spec.name}'",
                    f"this policy carries processors for {sorted(procs)} only (slot {spec.slot_id} has none)",
                    "evaluate one of those robots, or fine-tune the policy on this one first "
                    "(groot-kit finetune / groot-kit train --init-from)")
