"""A groot_kit checkpoint as a LeRobot ``PreTrainedPolicy``, for LeRobot's record / eval loops.

    from groot_kit.lerobot_policy import GrootKitPolicy
    policy = GrootKitPolicy.from_groot_kit("outputs/so101/final", embodiment="so101_pick")
    pre, post = make_policy_processor_pipelines([], [])      # lerobot's own (identity) pipelines
    action = predict_action(robot_obs, policy, torch.device("cpu"), pre, post, False, task="pick the cube")

LeRobot hands over its usual batch (``observation.state`` [B, D], ``observation.images.<cam>``
[B, 3, H, W] in [0, 1], ``task``); the checkpoint's ``GrootProcessor`` (its key selection,
normalisation stats, slot) turns it into the model batch, and the chunk comes back as LeRobot's
flat ``action`` [B, A] in the robot's own dim order, one step per ``select_action`` call
(``n_action_steps`` per predicted chunk, like ACT). ``forward`` gives the flow-matching loss of a
LeRobot training batch (``action`` [B, H, A]).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from lerobot.configs.policies import PreTrainedConfig
from lerobot.configs.types import FeatureType, PolicyFeature
from lerobot.optim.optimizers import AdamWConfig
from lerobot.policies.pretrained import PreTrainedPolicy

from groot_kit.data.errors import DataError
from groot_kit.data.processor import TASK_KEY


@PreTrainedConfig.register_subclass("groot_kit")
@dataclass
class GrootKitConfig(PreTrainedConfig):
    checkpoint: str = ""              # groot_kit checkpoint folder (save_pretrained / groot-kit train)
    embodiment: str | None = None     # which saved processor (None: the only one)
    n_action_steps: int = 8           # actions executed per predicted chunk (1..16)
    num_steps: int | None = None      # flow-matching Euler steps (None: the checkpoint's)
    push_to_hub: bool = False

    @property
    def observation_delta_indices(self) -> None:
        return None

    @property
    def action_delta_indices(self) -> list[int]:
        return list(range(16))

    @property
    def reward_delta_indices(self) -> None:
        return None

    def get_optimizer_preset(self) -> AdamWConfig:
        return AdamWConfig(lr=1e-4, weight_decay=0.0)

    def get_scheduler_preset(self) -> None:
        return None

    def validate_features(self) -> None:
        if not 1 <= self.n_action_steps <= 16:
            raise ValueError(f"GrootKitConfig.n_action_steps={self.n_action_steps}: use 1..16")


class GrootKitPolicy(PreTrainedPolicy):
    config_class = GrootKitConfig
    name = "groot_kit"

    def __init__(self, config: GrootKitConfig, policy=None):
        super().__init__(config)
        from groot_kit.model.policy import GrootPolicy
        config.validate_features()
        self.config = config
        self.model = policy if policy is not None else GrootPolicy.from_pretrained(config.checkpoint)
        self.processor = self.model.get_processor(config.embodiment)
        m = self.processor.modality
        gaps, end = [], 0
        for a, b in sorted(s.src for s in m.action.values()):
            if a != end:
                gaps.append((end, a))
            end = b
        self.action_dim = end
        if gaps:  # a robot needs every dim of its action vector
            raise DataError(f"processor '{self.processor.embodiment}' -> action",
                            f"the selected keys leave action dims {gaps} unset",
                            "train with action keys that cover the robot's whole action vector")
        self._executor = None     # groot_kit.chunking.ChunkExecutor behind select_action

    @classmethod
    def from_groot_kit(cls, checkpoint, embodiment: str | None = None, policy=None, **kw) -> "GrootKitPolicy":
        """Config with LeRobot input/output features read from the checkpoint's processor."""
        from groot_kit.model.policy import GrootPolicy
        policy = policy if policy is not None else GrootPolicy.from_pretrained(checkpoint)
        proc = policy.get_processor(embodiment)
        m, S = proc.modality, proc.image_size
        inputs = {k: PolicyFeature(FeatureType.VISUAL, (3, S, S)) for k in m.video.values()}
        for feat in {s.original_key for s in m.state.values()}:
            inputs[feat] = PolicyFeature(FeatureType.STATE, (max(s.src[1] for s in m.state.values()
                                                                 if s.original_key == feat),))
        outputs = {"action": PolicyFeature(FeatureType.ACTION, (max(s.src[1] for s in m.action.values()),))}
        cfg = GrootKitConfig(checkpoint=str(checkpoint), embodiment=proc.embodiment, input_features=inputs,
                             output_features=outputs, **kw)
        return cls(cfg, policy=policy)

    # ------------------------------------------------------------------ LeRobot batch <-> kit
    def groot_observation(self, batch: dict) -> dict:
        """LeRobot batch -> the processor's raw observation (``video.<cam>`` uint8, ``state.<key>``)."""
        m, obs = self.processor.modality, {}
        for cam, key in m.video.items():
            if key not in batch:
                raise DataError(f"batch['{key}']", "missing", f"pass camera '{cam}' as [B, 3, H, W] in [0, 1]")
            x = batch[key].detach().float().cpu()
            obs[f"video.{cam}"] = (x.permute(0, 2, 3, 1) * 255).round().clamp(0, 255).to(torch.uint8).numpy()
        for k, s in m.state.items():
            if s.original_key not in batch:
                raise DataError(f"batch['{s.original_key}']", "missing", f"pass the robot state [B, >= {s.src[1]}]")
            obs[f"state.{k}"] = batch[s.original_key][..., s.src[0]:s.src[1]].detach().float().cpu().numpy()
        task = batch.get("task", "")
        obs[TASK_KEY] = task if isinstance(task, str) else [str(t) for t in task]
        return obs

    @torch.no_grad()
    def predict_action_chunk(self, batch: dict, **kwargs) -> torch.Tensor:
        """-> unnormalised actions [B, H, A] in the robot's action order."""
        mb = self.processor(self.groot_observation(batch))
        chunk = self.model.predict_action_chunk(mb, num_steps=self.config.num_steps, noise=kwargs.get("noise"))
        dec = self.processor.decode_action(chunk)
        out = np.zeros((*next(iter(dec.values())).shape[:2], self.action_dim), np.float32)
        for k, s in self.processor.modality.action.items():
            out[..., s.src[0]:s.src[1]] = dec[f"action.{k}"]
        return torch.from_numpy(out)

    @torch.no_grad()
    def select_action(self, batch: dict, **kwargs) -> torch.Tensor:
        """One action [B, A]; a new chunk every ``n_action_steps`` calls."""
        from groot_kit.chunking import ChunkExecutor
        if self._executor is None:
            H = self.model.config.action_head.action_horizon
            self._executor = ChunkExecutor("replan", H, min(self.config.n_action_steps, H))
        if self._executor.needs_chunk():
            chunk = self.predict_action_chunk(batch, **kwargs)                      # [B, H, A]
            self._executor.add_chunk(chunk.transpose(0, 1).float().cpu().numpy())  # [H, B, A]
        return torch.from_numpy(self._executor.next_action())

    def reset(self) -> None:
        self._executor = None

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """Flow-matching loss of a LeRobot batch whose ``action`` is [B, H, A] (delta_timestamps)."""
        mb = self.processor(self.groot_observation(batch))
        act = batch["action"]
        parts = {f"action.{k}": act[..., s.src[0]:s.src[1]].detach().float().cpu().numpy()
                 for k, s in self.processor.modality.action.items()}
        mb["action"], mb["action_mask"] = self.processor.encode_action(parts)
        if "action_is_pad" in batch:
            mb["action_is_pad"] = batch["action_is_pad"]
        return self.model(mb)

    def get_optim_params(self):
        return [p for p in self.model.parameters() if p.requires_grad]
