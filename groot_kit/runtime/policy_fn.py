"""Adapters between a GrootPolicy (+ GrootProcessor) and the raw-observation world of the server.

    fn = GrootPolicyFn(policy, processor)     # observation dict -> {"action.<key>": [B, H, d]}
    fn.modality_config()                      # GR00T-style {"video"|"state"|"action"|"language": {...}}
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from groot_kit.constants import TASK_KEY

from .server import ObservationSpec

log = logging.getLogger("groot_kit.runtime")


def modality_config_from_processor(processor) -> dict[str, dict]:
    """GR00T's ModalityConfig shape ({delta_indices, modality_keys} per group) from a GrootProcessor."""
    m = processor.modality
    return {
        "video": {"delta_indices": [0], "modality_keys": [f"video.{c}" for c in m.video]},
        "state": {"delta_indices": [0], "modality_keys": [f"state.{k}" for k in m.state]},
        "action": {"delta_indices": list(range(processor.horizon)), "modality_keys": [f"action.{k}" for k in m.action]},
        "language": {"delta_indices": [0], "modality_keys": [TASK_KEY]},
    }


class GrootPolicyFn:
    """Callable policy_fn for PolicyServer: raw observation -> unnormalised action chunk dict."""

    def __init__(self, policy, processor, num_steps: int | None = None):
        cfg = policy.config
        if processor.image_size != cfg.vlm.vision.image_size:
            raise ValueError(f"processor.image_size ({processor.image_size}) != policy image size "
                             f"({cfg.vlm.vision.image_size}); build the processor with image_size={cfg.vlm.vision.image_size}")
        self.policy, self.processor, self.num_steps = policy, processor, num_steps

    @torch.no_grad()
    def __call__(self, observation: dict[str, Any]) -> dict[str, np.ndarray]:
        batch = self.processor(observation)
        chunk = self.policy.predict_action_chunk(batch, num_steps=self.num_steps)
        return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in self.processor.decode_action(chunk).items()}

    def modality_config(self) -> dict[str, dict]:
        return modality_config_from_processor(self.processor)

    def observation_spec(self) -> ObservationSpec:
        m = self.processor.modality
        return ObservationSpec([f"video.{c}" for c in m.video], {f"state.{k}": s.dim for k, s in m.state.items()},
                               [TASK_KEY])


def demo_processor(policy, state_dims: dict[str, int] | None = None, cameras: tuple[str, ...] = ("front",),
                   embodiment_id: int = 0, seed: int = 0):
    """A processor for smoke tests: an arm with `state_dims` (default 7 joints + gripper), min-max
    stats over [-1, 1] (so normalisation is the identity), one camera at the policy's image size."""
    from groot_kit.data import GrootProcessor, ModalityConfig, NormalizationStats
    dims = state_dims or {"arm": 7, "gripper": 1}
    mod = ModalityConfig.from_dims(dims, dims, list(cameras)[: policy.config.vlm.num_views])
    d = sum(dims.values())
    edges = np.stack([-np.ones(d), np.ones(d)]).astype(np.float32)
    stats = NormalizationStats.from_arrays(edges, edges, mod)
    return GrootProcessor.for_policy(policy.config, mod, stats, embodiment_id, "demo_arm")


def demo_observation(processor, batch_size: int = 1, seed: int = 0, image_hw: tuple[int, int] = (64, 64)) -> dict:
    """A valid raw observation for `processor` (random pixels and states)."""
    rng = np.random.default_rng(seed)
    obs: dict[str, Any] = {}
    for c in processor.modality.video:
        obs[f"video.{c}"] = rng.integers(0, 256, (batch_size, *image_hw, 3), dtype=np.uint8)
    for k, s in processor.modality.state.items():
        obs[f"state.{k}"] = rng.uniform(-1, 1, (batch_size, s.dim)).astype(np.float32)
    obs[TASK_KEY] = ["pick up the red cube"] * batch_size
    return obs


def load_processor(policy, processor: str | None = None, checkpoint: str | None = None,
                   embodiment: str | None = None):
    """Processor from a JSON file, <checkpoint>/processor.json, the processors saved in the checkpoint
    (policy.get_processor(embodiment)); falls back to demo_processor (with a warning)."""
    from groot_kit.data import GrootProcessor
    candidates = [Path(processor)] if processor else []
    if checkpoint:
        candidates.append(Path(checkpoint) / "processor.json")
    for p in candidates:
        if p.exists():
            return GrootProcessor.from_dict(json.loads(p.read_text()))
        if processor and p == Path(processor):
            raise FileNotFoundError(f"processor file {p} does not exist; write one with "
                                    "json.dumps(GrootProcessor.to_dict())")
    norm = getattr(policy, "normalization", None) or {}
    if isinstance(norm, dict) and isinstance(norm.get("processor"), dict):
        return GrootProcessor.from_dict(norm["processor"])
    if isinstance(norm, dict) and norm.get("processors"):
        from groot_kit.data.processor import processor_for
        return processor_for(policy, embodiment)     # by robot name or folder, then by slot
    log.warning("no processor found (pass processor=<file.json>): using the demo 8-D arm processor")
    return demo_processor(policy)
