"""Open-loop evaluation (GR00T's ``eval_policy`` protocol) on a recorded dataset.

Walk each episode, query the policy every H (=16) steps with the observation at that step,
concatenate the predicted chunks over the whole episode, unnormalise them and compare with the
recorded actions:

    res = evaluate_open_loop(policy, "data_samples/panda7_expert", max_episodes=2)
    res["mse"], res["mse_per_dim"]; open_loop_figure(res).show()
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch


def dim_names(modality) -> list[str]:
    """'single_arm_0', ..., 'gripper' in flat action order."""
    out = []
    for k, s in modality.action.items():
        out += [f"{k}_{i}" for i in range(s.dim)] if s.dim > 1 else [k]
    return out


def _flat_actions(decoded: dict[str, np.ndarray], modality, B: int, H: int) -> np.ndarray:
    """{"action.<key>": [B,H,d]} -> [B, H, action_dim] in modality order."""
    out = np.zeros((B, H, modality.action_dim), np.float32)
    for k, s in modality.action.items():
        out[..., s.start:s.end] = decoded[f"action.{k}"]
    return out


# ----------------------------------------------------------------------------------- open loop
def policy_dataset(policy, dataset, processor=None):
    """(GrootDataset shaped for `policy`, its processor) from a dataset folder or a GrootDataset.
    The processor is the checkpoint's own for the dataset's embodiment when it has one."""
    from groot_kit.data import GrootDataset
    from groot_kit.data.processor import processor_for

    if not isinstance(dataset, GrootDataset):  # the checkpoint's processor: its keys, stats and slot
        dataset, processor = GrootDataset.for_policy(policy, dataset, processor)
    return dataset, processor or processor_for(policy, dataset=dataset)


def recorded_chunk_fn(policy, dataset, episode: int = 0, seed: int = 0):
    """A chunk source for ``groot_kit.chunking.compare_modes`` from a recorded episode.

    Returns ``(chunk_fn, length)``: ``chunk_fn(step, prefix=None, prefix_len=0)`` -> the policy's
    normalised chunk [H, action_dim] for the episode's observation at `step` (clamped to the last
    frame), noise seeded by the step; with `prefix` (the executing chunk's remaining actions) it is
    sampled by real-time chunking (groot_kit.model.rtc.inpaint_sample), so "rtc" joins the comparison.
    """
    from groot_kit.data import collate
    from groot_kit.model.rtc import inpaint_sample

    dataset, processor = policy_dataset(policy, dataset)
    idx = np.flatnonzero(dataset.frame_episode_index == episode)
    if len(idx) == 0:
        raise ValueError(f"episode {episode} is not in {dataset.info.root}")
    d, D = processor.modality.action_dim, policy.config.action_head.max_action_dim

    @torch.no_grad()
    def chunk_fn(step: int, prefix: np.ndarray | None = None, prefix_len: int = 0) -> np.ndarray:
        batch = collate([dataset[int(idx[min(step, len(idx) - 1)])]])
        g = torch.Generator(device=policy.device).manual_seed(seed * 100_003 + step)
        policy.eval()
        if prefix is None:
            return policy.predict_action_chunk(batch, generator=g)[0, :, :d].cpu().numpy()
        vl, mask = policy.encode_vl(batch)
        pre = torch.zeros(1, len(prefix), D)
        pre[0, :, :d] = torch.as_tensor(np.asarray(prefix, np.float32))
        dev = policy.device
        chunk = inpaint_sample(policy.action_head, vl, batch["state"].to(dev), batch["embodiment_id"].to(dev),
                               pre.to(dev), prefix_len, vl_mask=mask, generator=g, action_dims=d)
        return chunk[0, :, :d].cpu().numpy()

    return chunk_fn, len(idx)


@torch.no_grad()
def evaluate_open_loop(policy, dataset, episodes: list[int] | None = None, max_episodes: int | None = 5,
                       action_horizon: int | None = None, seed: int = 0, processor=None) -> dict[str, Any]:
    """Open-loop unnormalised action MSE over whole episodes (query every H steps, concatenate chunks).

    dataset: a dataset folder or a GrootDataset. Returns ``{"mse", "mse_per_dim", "dim_names",
    "episodes": [{"episode_index", "length", "mse", "mse_per_dim", "pred" [T,d], "gt" [T,d]}]}``.
    The noise of query q of episode e comes from ``torch.Generator().manual_seed(seed + 1000*e + q)``.
    """
    from groot_kit.data import collate

    H = action_horizon or policy.config.action_head.action_horizon
    dataset, processor = policy_dataset(policy, dataset, processor)
    if not dataset.info.has_actions:
        raise ValueError(f"{dataset.info.root}: dataset has no actions (video tier); open-loop MSE needs "
                         "recorded actions")
    mod = processor.modality
    ep_index = dataset.frame_episode_index
    raw = dataset.raw_actions()  # [N, d] of the selected action keys, unnormalised
    all_eps = sorted(set(int(e) for e in ep_index))
    chosen = list(episodes) if episodes is not None else all_eps
    if max_episodes is not None:
        chosen = chosen[:max_episodes]
    was_training = policy.training
    policy.eval()
    out_eps = []
    for e in chosen:
        idx = np.flatnonzero(ep_index == e)
        if len(idx) == 0:
            raise ValueError(f"episode {e} is not in {dataset.info.root} (episodes {all_eps[:10]}...)")
        T = len(idx)
        preds = []
        for q, t in enumerate(range(0, T, H)):
            batch = collate([dataset[int(idx[t])]])
            g = torch.Generator(device=policy.device).manual_seed(seed + 1000 * e + q)
            chunk = policy.predict_action_chunk(batch, generator=g)
            dec = processor.decode_action(chunk[:, :H])
            preds.append(_flat_actions(dec, mod, 1, H)[0])
        pred = np.concatenate(preds)[:T]
        gt = raw[idx]
        se = (pred - gt) ** 2
        out_eps.append({"episode_index": e, "length": T, "mse": float(se.mean()),
                        "mse_per_dim": se.mean(0).tolist(), "pred": pred, "gt": gt,
                        "queries": int(np.ceil(T / H))})
    if was_training:
        policy.train()
    se_all = np.concatenate([(ep["pred"] - ep["gt"]) ** 2 for ep in out_eps])
    return {"mse": float(se_all.mean()), "mse_per_dim": se_all.mean(0).tolist(), "dim_names": dim_names(mod),
            "mse_per_key": {k: float(se_all[:, sl.start:sl.end].mean()) for k, sl in mod.action.items()},
            "action_horizon": H, "frames": int(len(se_all)), "embodiment": processor.embodiment,
            "dataset": str(dataset.info.root), "episodes": out_eps}


def open_loop_figure(result: dict, episode: int = 0, title: str | None = None):
    """Plotly: one row per action dimension, predicted vs ground truth, chunk boundaries dashed."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots
    ep = result["episodes"][episode]
    names, H = result["dim_names"], result["action_horizon"]
    n = len(names)
    fig = make_subplots(rows=n, cols=1, shared_xaxes=True, vertical_spacing=0.02 if n > 8 else 0.04,
                        subplot_titles=[f"{nm}  (MSE {m:.2e})" for nm, m in zip(names, ep["mse_per_dim"])])
    t = np.arange(ep["length"])
    for i in range(n):
        fig.add_trace(go.Scatter(x=t, y=ep["gt"][:, i], name="ground truth", line=dict(color="#1f77b4"),
                                 legendgroup="gt", showlegend=i == 0), row=i + 1, col=1)
        fig.add_trace(go.Scatter(x=t, y=ep["pred"][:, i], name="predicted", line=dict(color="#d62728", dash="dot"),
                                 legendgroup="pred", showlegend=i == 0), row=i + 1, col=1)
        for b in range(H, ep["length"], H):
            fig.add_vline(x=b, line=dict(color="gray", width=0.5, dash="dash"), row=i + 1, col=1)
    fig.update_layout(height=140 * n + 80, title=title or f"Open loop, episode {ep['episode_index']} "
                      f"(query every {H} steps) - MSE {ep['mse']:.2e}", margin=dict(t=70, l=50, r=20, b=30))
    fig.update_annotations(font_size=11)
    return fig


def per_dim_mse_figure(result: dict, title: str = "Open-loop MSE per action dimension"):
    import plotly.graph_objects as go
    fig = go.Figure(go.Bar(x=result["dim_names"], y=result["mse_per_dim"]))
    fig.update_layout(title=title, yaxis_title="MSE (unnormalised units)", height=320)
    return fig


def strip_arrays(result: dict) -> dict:
    """A JSON-safe copy of an eval result (drops frames, pred/gt arrays)."""
    def clean(x):
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items() if k not in ("frames", "pred", "gt", "videos")}
        if isinstance(x, list):
            return [clean(v) for v in x]
        if isinstance(x, np.ndarray):
            return x.tolist()
        if isinstance(x, (np.floating, np.integer)):
            return x.item()
        return x
    return clean(result)
