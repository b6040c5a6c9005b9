"""Training pipeline: LeRobot dataset -> model-level samples, plus a tier/dataset mixture sampler.

Model-level batch (what the policy consumes)::

    pixel_values float32 [B, V, 3, S, S] in [0, 1]    view_mask bool [B, V]
    instruction  list[str]                            subtask list[str]
    state        float32 [B, 64] normalized + padded  state_mask bool [B, 64]
    action       float32 [B, 16, 32] normalized+pad   action_mask bool [B, 16, 32]
    embodiment_id long [B]                            tier list[str]
    goal_state   float32 [B, 64] (goal_state=True)    goal_state_mask bool [B, 64]: the normalised
                 state of the episode's last frame (GrootPolicy's goal head learns it)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from .errors import DataError
from .modality import ACTION_FEATURE, SUBTASK_FEATURE, ModalityConfig
from .normalization import NormalizationStats
from .processor import ACTION_HORIZON, MAX_ACTION_DIM, MAX_STATE_DIM, GrootProcessor  # noqa: F401
from .reader import DatasetInfo, open_dataset


class GrootDataset(torch.utils.data.Dataset):
    """One LeRobot v3.0 dataset as model-level samples (state at t, actions t..t+H-1)."""

    def __init__(
        self,
        root: str | Path | DatasetInfo,
        embodiment_id: int = 0,
        stats: NormalizationStats | None = None,
        image_size: int = 224,
        horizon: int = ACTION_HORIZON,
        max_state_dim: int = MAX_STATE_DIM,
        max_action_dim: int = MAX_ACTION_DIM,
        max_views: int | None = None,
        norm_modes: dict[str, str] | None = None,
        episodes: list[int] | None = None,
        video_backend: str | None = None,
        expected_dims: tuple[dict[str, int], dict[str, int], str] | None = None,
        select=None,
        goal_state: bool = False,
    ):
        """``root``: a folder (any version ``open_dataset`` reads) or a DatasetInfo; ``select``: a
        ``DataConfig`` choosing the keys (applied when ``root`` is a folder); ``goal_state``: also
        return each episode's final state (for GrootPolicy's goal head)."""
        from lerobot.datasets.lerobot_dataset import LeRobotDataset

        self.info = root if isinstance(root, DatasetInfo) else open_dataset(root, select=select)
        self.modality: ModalityConfig = self.info.modality
        if expected_dims is not None:
            self.modality.check_embodiment_dims(*expected_dims)
        self.embodiment_id = int(embodiment_id)
        self.image_size, self.horizon = int(image_size), int(horizon)
        self.max_state_dim, self.max_action_dim = max_state_dim, max_action_dim
        if self.modality.state_dim > max_state_dim:
            raise DataError(f"{self.modality.source} -> state", f"{self.modality.state_dim} dims > model max {max_state_dim}",
                            "select the keys the policy uses (--state-keys / a data config: "
                            f"{', '.join(f'{k}={v.dim}' for k, v in self.modality.state.items())}) "
                            "or raise max_state_dim in the model config")
        if self.modality.action_dim > max_action_dim:
            raise DataError(f"{self.modality.source} -> action", f"{self.modality.action_dim} dims > model max {max_action_dim}",
                            "select the keys the policy uses (--action-keys / a data config: "
                            f"{', '.join(f'{k}={v.dim}' for k, v in self.modality.action.items())}) "
                            "or raise max_action_dim in the model config")
        self.stats = stats or NormalizationStats.from_dataset(self.info, modes=norm_modes)
        self.cams = list(self.modality.video.items())
        self.max_views = max_views or max(1, len(self.cams))
        # the one observation -> batch transform, shared with the server, the runtime and evaluation
        self.processor = GrootProcessor(self.modality, self.stats, self.embodiment_id, self.image_size, self.horizon,
                                        max_state_dim, max_action_dim, self.max_views,
                                        self.info.groot.get("embodiment") or self.info.embodiment or "unknown")
        fps = self.info.fps
        act_feats = sorted({s.original_key for s in self.modality.action.values()}) or [ACTION_FEATURE]
        dt = {k: [i / fps for i in range(self.horizon)] for k in act_feats} if self.info.has_actions else None
        try:
            self.ds = LeRobotDataset(f"local/{self.info.root.name}", root=self.info.root, delta_timestamps=dt,
                                     episodes=episodes, video_backend=video_backend)
        except (ValueError, KeyError, FileNotFoundError, IndexError) as e:  # lerobot's own, often deep, errors
            raise DataError(str(self.info.source or self.info.root), f"lerobot cannot load it: {type(e).__name__}: {e}",
                            f"run `groot-kit dataset validate {self.info.source or self.info.root}` and repair "
                            "what it reports") from None
        self._tiers = self.info.episode_tiers()
        self._ep_index = None
        self._tasks = None
        self.with_goal_state = bool(goal_state)
        self._goals: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = None

    @classmethod
    def for_embodiment(cls, root, embodiment, **kw) -> "GrootDataset":
        """Dataset checked against an embodiment (name or EmbodimentSpec): its slot id, per-key
        normalization modes from embodiment.yaml, and a dimension check of every state/action key."""
        from groot_kit.embodiment import load_embodiment

        spec = load_embodiment(embodiment)
        modes = {f"state.{k}": v.normalization for k, v in spec.state.items()}
        modes.update({f"action.{k}": v.normalization for k, v in spec.action.items()})
        kw.setdefault("norm_modes", modes)
        kw.setdefault("embodiment_id", spec.slot_id)
        dims = ({k: v.dim for k, v in spec.state.items()}, {k: v.dim for k, v in spec.action.items()}, spec.name)
        return cls(root, expected_dims=dims, **kw)

    @classmethod
    def for_policy(cls, policy, root, processor=None, **kw) -> tuple["GrootDataset", Any]:
        """The dataset as ``policy`` saw it in training: the processor saved for this dataset's robot
        (its key selection, stats and slot) and the policy's sizes. Returns (dataset, processor or None)."""
        import dataclasses

        info = root if isinstance(root, DatasetInfo) else open_dataset(root)
        if processor is None and info.embodiment in policy.normalization.get("processors", {}):
            processor = policy.get_processor(info.embodiment)
        if processor is not None:
            processor.modality.check_features(info.features, source=str(info.root / "meta/info.json"))
            info = dataclasses.replace(info, modality=processor.modality)
        cfg = policy.config
        eid = processor.embodiment_id if processor is not None else int(info.groot.get("embodiment_id") or 0)
        kw = {"embodiment_id": eid, "stats": processor.stats if processor is not None else None,
              "image_size": cfg.vlm.vision.image_size, "max_views": cfg.vlm.num_views,
              "horizon": cfg.action_head.action_horizon, "max_state_dim": cfg.action_head.max_state_dim,
              "max_action_dim": cfg.action_head.max_action_dim, **kw}
        return cls(info, **kw), processor

    def __len__(self) -> int:
        return len(self.ds)

    @property
    def frame_episode_index(self) -> np.ndarray:
        if self._ep_index is None:
            self._ep_index = np.asarray(self.ds.hf_dataset.with_format(None)["episode_index"], dtype=np.int64)
        return self._ep_index

    def frame_tiers(self) -> list[str]:
        return [self._tiers[int(e)] if int(e) < len(self._tiers) else "teleop" for e in self.frame_episode_index]

    def raw_actions(self, frames: np.ndarray | None = None) -> np.ndarray:
        """Unnormalised actions of the selected keys at ``frames`` (all frames if None): float32 [T, d]."""
        hf = self.ds.hf_dataset.with_format(None)
        feats = sorted({s.original_key for s in self.modality.action.values()})
        rows = hf if frames is None else hf.select(np.asarray(frames, dtype=np.int64).tolist())
        return np.asarray(self.modality.gather("action", {k: np.asarray(rows[k], np.float32) for k in feats}),
                          np.float32)

    def goal_states(self) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        """{episode: (normalised padded state [Dmax_s], mask [Dmax_s]) at the episode's last frame}"""
        if self._goals is None:
            last = {int(e): i for i, e in enumerate(self.frame_episode_index)}   # later frames overwrite
            feats = sorted({s.original_key for s in self.modality.state.values()})
            self._goals = {}
            if feats:
                rows = self.ds.hf_dataset.with_format(None).select(list(last.values()))
                state = self.modality.gather("state", {k: torch.as_tensor(np.asarray(rows[k], np.float32)) for k in feats})
                goals, masks = self.processor.encode_flat("state", state.float())     # [E, Dmax_s] each
                self._goals = {ep: (goals[j], masks[j]) for j, ep in enumerate(last)}
        return self._goals

    def instruction(self, item: dict) -> str:
        """The language instruction: the data config's annotation column (task indices) or lerobot's task."""
        col = self.modality.language_key
        if not col or col not in item:
            return str(item.get("task", ""))
        return self._task_text(item[col], str(item.get("task", "")))

    def subtask(self, item: dict) -> str:
        """The sub-task label: a string (the kit's recordings) or a task index (GR00T's v2 layout)."""
        v = item.get(SUBTASK_FEATURE, "")
        return str(v or "") if isinstance(v, str) or v is None else self._task_text(v, "")

    def _task_text(self, index, default: str) -> str:
        if self._tasks is None:  # v3 tasks table: index = task string, column task_index
            t = self.ds.meta.tasks
            self._tasks = {int(ti): str(name) for name, ti in zip(t.index, t["task_index"])}
        return self._tasks.get(int(np.asarray(index).reshape(-1)[0]), default)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = self.ds[int(i)]
        ep = int(item["episode_index"])
        out: dict[str, Any] = {"embodiment_id": torch.tensor(self.embodiment_id, dtype=torch.long),
                               "instruction": self.instruction(item),
                               "subtask": self.subtask(item),
                               "tier": self._tiers[ep] if ep < len(self._tiers) else "teleop",
                               "episode_index": ep}
        proc = self.processor
        if self.modality.state and all(sl.original_key in item for sl in self.modality.state.values()):
            out["state"], out["state_mask"] = proc.encode_flat("state", self.modality.gather("state", item).float())
        else:
            out["state"] = torch.zeros(self.max_state_dim)
            out["state_mask"] = torch.zeros(self.max_state_dim, dtype=torch.bool)
        if self.modality.action and all(sl.original_key in item for sl in self.modality.action.values()):
            out["action"], out["action_mask"] = proc.encode_flat("action", self.modality.gather("action", item).float())
            out["action_is_pad"] = item.get("action_is_pad", torch.zeros(self.horizon, dtype=torch.bool))
        else:
            out["action"] = torch.zeros(self.horizon, self.max_action_dim)
            out["action_mask"] = torch.zeros(self.horizon, self.max_action_dim, dtype=torch.bool)
            out["action_is_pad"] = torch.ones(self.horizon, dtype=torch.bool)
        if self.with_goal_state:
            goal = self.goal_states().get(ep)
            out["goal_state"], out["goal_state_mask"] = goal if goal is not None else (
                torch.zeros(self.max_state_dim), torch.zeros(self.max_state_dim, dtype=torch.bool))
        pix, vmask = proc.pack_views([item[key][None] for _, key in self.cams], 1)
        out["pixel_values"], out["view_mask"] = pix[0], vmask[0]
        return out


def collate(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors; keep strings as lists. Pads views across datasets with different V."""
    out: dict[str, Any] = {}
    V = max(s["pixel_values"].shape[0] for s in samples)
    for k in samples[0]:
        vals = [s[k] for s in samples]
        if k in ("pixel_values", "view_mask") and any(v.shape[0] != V for v in vals):
            vals = [torch.cat([v, torch.zeros(V - v.shape[0], *v.shape[1:], dtype=v.dtype)]) for v in vals]
        out[k] = torch.stack(vals) if torch.is_tensor(vals[0]) else list(vals)
    return out


class MixtureDataset(torch.utils.data.Dataset):
    """Concatenation of GrootDatasets with per-dataset and per-tier sampling weights.

    Each sample's probability is ``w_dataset * w_tier / (#frames of that (dataset, tier))``
    so dataset and tier weights are shares of the batch, whatever their sizes.
    """

    def __init__(self, datasets: Sequence[GrootDataset], weights: Sequence[float] | None = None,
                 tier_weights: dict[str, float] | None = None):
        if not datasets:
            raise DataError("MixtureDataset", "no datasets", "pass at least one GrootDataset")
        self.datasets = list(datasets)
        self.weights = list(weights) if weights is not None else [1.0] * len(datasets)
        if len(self.weights) != len(self.datasets):
            raise DataError("MixtureDataset.weights", f"{len(self.weights)} weights for {len(self.datasets)} datasets",
                            "give one weight per dataset")
        self.tier_weights = dict(tier_weights or {})
        self.offsets = np.cumsum([0] + [len(d) for d in self.datasets])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, i: int):
        d = int(np.searchsorted(self.offsets, i, side="right") - 1)
        return self.datasets[d][int(i - self.offsets[d])]

    def sample_weights(self) -> np.ndarray:
        w = np.zeros(len(self), dtype=np.float64)
        for d, (ds, wd) in enumerate(zip(self.datasets, self.weights)):
            tiers = np.asarray(ds.frame_tiers())
            for t in np.unique(tiers):
                sel = tiers == t
                w[self.offsets[d]:self.offsets[d + 1]][sel] = wd * self.tier_weights.get(str(t), 1.0) / sel.sum()
        if w.sum() <= 0:
            raise DataError("MixtureDataset weights", "all weights are zero", "give some dataset/tier a positive weight")
        return w / w.sum()

    def sampler(self, num_samples: int | None = None, seed: int = 0) -> "MixtureSampler":
        return MixtureSampler(self.sample_weights(), num_samples or len(self), seed)


class MixtureSampler(torch.utils.data.Sampler[int]):
    """Weighted sampling with replacement; deterministic given seed and epoch (resumable)."""

    def __init__(self, weights: np.ndarray, num_samples: int, seed: int = 0):
        self.weights = torch.as_tensor(weights, dtype=torch.double)
        self.num_samples, self.seed, self.epoch = int(num_samples), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed + 1_000_003 * self.epoch)
        yield from torch.multinomial(self.weights, self.num_samples, replacement=True, generator=g).tolist()

    def __len__(self) -> int:
        return self.num_samples

