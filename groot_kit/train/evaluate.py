"""Evaluation: open-loop action MSE on datasets and closed-loop success in MuJoCo (with videos).

Open loop (GR00T's ``eval_policy`` protocol): walk each episode of a dataset, query the policy every
H (=16) steps with the observation at that step, concatenate the predicted chunks over the whole
episode, unnormalise them and compare with the recorded actions:

    res = evaluate_open_loop(policy, "data_samples/panda7_expert", max_episodes=2)
    res["mse"], res["mse_per_dim"]; open_loop_figure(res).show()

Closed loop: run the policy through its ``GrootProcessor`` in ``make_env`` for N seeded episodes
(System 2 names the sub-task at each replanning step when the policy was co-trained for it):

    res = evaluate_closed_loop(policy, "so100", task="reach", n_episodes=10, video_dir="outputs/videos")
    res["success_rate"], res["episodes"][0]["video"]

CLI (``groot-kit eval``): ``add_eval_arguments(parser)`` + ``run_eval(args)``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

os.environ.setdefault("MUJOCO_GL", "egl")


# ----------------------------------------------------------------------------------- helpers
def _processor_for(policy, embodiment: str | None = None, dataset=None):
    """The policy's stored processor for `embodiment` (or the dataset's own stats as a fallback)."""
    from groot_kit.data.processor import GrootProcessor
    procs = policy.normalization.get("processors", {})
    if embodiment is not None and embodiment in procs:
        return policy.get_processor(embodiment)
    if dataset is not None:
        name = dataset.info.groot.get("embodiment")
        if name in procs:
            return policy.get_processor(name)
        for d in procs.values():  # same slot id -> same stats
            if int(d["embodiment_id"]) == int(dataset.embodiment_id):
                return GrootProcessor.from_dict(d)
        return GrootProcessor.from_dataset(dataset, image_size=policy.config.vlm.vision.image_size)
    return policy.get_processor(embodiment)


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
@torch.no_grad()
def evaluate_open_loop(policy, dataset, episodes: list[int] | None = None, max_episodes: int | None = 5,
                       action_horizon: int | None = None, seed: int = 0, processor=None) -> dict[str, Any]:
    """Open-loop unnormalised action MSE over whole episodes (query every H steps, concatenate chunks).

    dataset: a dataset folder or a GrootDataset. Returns ``{"mse", "mse_per_dim", "dim_names",
    "episodes": [{"episode_index", "length", "mse", "mse_per_dim", "pred" [T,d], "gt" [T,d]}]}``.
    The noise of query q of episode e comes from ``torch.Generator().manual_seed(seed + 1000*e + q)``.
    """
    from groot_kit.data import GrootDataset, collate

    cfg = policy.config
    H = action_horizon or cfg.action_head.action_horizon
    if not isinstance(dataset, GrootDataset):  # the checkpoint's processor: its keys, stats and slot
        dataset, processor = GrootDataset.for_policy(policy, dataset, processor)
    if not dataset.info.has_actions:
        raise ValueError(f"{dataset.info.root}: dataset has no actions (video tier); open-loop MSE needs "
                         "recorded actions")
    processor = processor or _processor_for(policy, dataset=dataset)
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
    from plotly.subplots import make_subplots
    import plotly.graph_objects as go
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


# ----------------------------------------------------------------------------------- closed loop
class PolicyController:
    """Wraps a GrootPolicy + GrootProcessor as a sim policy (``.act(obs)``, ``.subtask``).

    A chunk of H actions is predicted from the current observation and the first ``replan_every``
    of them are executed before the next query (receding horizon). When the policy was co-trained
    for sub-tasks, System 2 names the sub-task at each query (``.subtask``, recorded per step)."""

    def __init__(self, policy, processor, env, replan_every: int = 8, seed: int = 0,
                 predict_subtasks: bool | None = None, num_steps: int | None = None):
        self.policy, self.processor, self.env = policy, processor, env.unwrapped if hasattr(env, "unwrapped") else env
        H = policy.config.action_head.action_horizon
        if not 1 <= replan_every <= H:
            raise ValueError(f"replan_every={replan_every} must be in 1..{H} (the action horizon)")
        self.replan_every, self.num_steps = int(replan_every), num_steps
        self.predict_subtasks = (policy.config.subtask_loss_weight > 0) if predict_subtasks is None else predict_subtasks
        sp = self.env.spec_e
        if sp.action_dim != processor.modality.action_dim:
            raise ValueError(f"policy processor '{processor.embodiment}' has {processor.modality.action_dim} action "
                             f"dims but the env's {sp.name} has {sp.action_dim}; use the matching embodiment")
        self.gen = torch.Generator(device=policy.device).manual_seed(seed)
        self.queries = 0
        self.reset()

    def reset(self) -> None:
        self.queue: list[np.ndarray] = []
        self.subtask = ""
        self.query_subtasks: list[tuple[int, str]] = []
        self.queue_owner_t: int | None = None

    def raw_obs(self, obs: dict) -> dict:
        from groot_kit.data.processor import TASK_KEY
        mod = self.processor.modality
        raw = {f"video.{cam}": obs[cam] for cam in mod.video}
        st = np.asarray(obs["state"], np.float32)
        for k, s in mod.state.items():
            raw[f"state.{k}"] = st[s.start:s.end]
        raw[TASK_KEY] = self.env.instruction
        return raw

    @torch.no_grad()
    def act(self, obs: dict) -> np.ndarray:
        if self.env.t == 0 and self.queue_owner_t is not None and self.queue_owner_t > 0:
            self.reset()  # a new episode started: drop the previous episode's actions
        if not self.queue:
            batch = self.processor(self.raw_obs(obs))
            chunk = self.policy.predict_action_chunk(batch, num_steps=self.num_steps, generator=self.gen)
            dec = self.processor.decode_action(chunk)
            acts = _flat_actions(dec, self.processor.modality, 1, chunk.shape[1])[0]
            self.queue = list(acts[: self.replan_every])
            self.queries += 1
            if self.predict_subtasks:
                self.subtask = self.policy.predict_subtask(batch)[0] or "(none)"
                self.query_subtasks.append((int(self.env.t), self.subtask))
        self.queue_owner_t = int(self.env.t)
        return self.queue.pop(0)


def _overlay(frame: np.ndarray, lines: list[str], scale: int = 4) -> np.ndarray:
    from PIL import Image, ImageDraw
    img = Image.fromarray(frame).resize((frame.shape[1] * scale, frame.shape[0] * scale), Image.NEAREST)
    d = ImageDraw.Draw(img)
    y = 2
    for ln in lines:
        d.rectangle([0, y, img.width, y + 11], fill=(0, 0, 0))
        d.text((3, y), ln, fill=(255, 255, 255))
        y += 12
    return np.asarray(img)


def annotate_frames(ep, cams: list[str] | None = None, scale: int = 4) -> np.ndarray:
    """Frames of a sim Episode side by side per camera, with instruction, step and System 2 sub-task."""
    cams = cams or list(ep.frames)
    out = []
    T = len(ep)
    for t in range(T):
        row = np.concatenate([ep.frames[c][t] for c in cams], axis=1)
        sub = ep.subtasks[t] if t < len(ep.subtasks) else ""
        status = "SUCCESS" if (ep.success and t == T - 1) else ""
        out.append(_overlay(row, [ep.instruction[:60], f"t={t:3d}  sub-task: {sub}  {status}"], scale))
    return np.stack(out)


def write_video(frames: np.ndarray, path: str | Path, fps: float = 30.0) -> Path:
    """uint8 [T,H,W,3] -> H.264 mp4 through PyAV (already a lerobot dependency)."""
    import av
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    T, h, w, _ = frames.shape
    h2, w2 = h - h % 2, w - w % 2
    with av.open(str(path), mode="w") as c:
        s = c.add_stream("libx264", rate=int(round(fps)))
        s.width, s.height, s.pix_fmt = w2, h2, "yuv420p"
        s.options = {"preset": "ultrafast", "crf": "23"}
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f[:h2, :w2]), format="rgb24")))
        c.mux(s.encode())
    return path


@torch.no_grad()
def evaluate_closed_loop(policy, embodiment: str, task: str = "pick_place", n_episodes: int = 10,
                         seed: int = 1000, replan_every: int = 8, image_size: int | None = None,
                         env_kwargs: dict | None = None, video_dir: str | Path | None = None,
                         keep_frames: bool = False, max_steps: int | None = None, processor=None,
                         video_fps: float | None = None, progress: bool = False,
                         num_steps: int | None = None) -> dict[str, Any]:
    """Closed-loop success rate in MuJoCo over seeds ``seed .. seed+n_episodes-1``.

    Returns ``{"success_rate", "successes", "n_episodes", "episodes": [{"seed", "success", "steps",
    "instruction", "subtasks" (System 2's text at each query), "video"?, "frames"?}], "seconds"}``.
    ``keep_frames`` keeps the annotated frames (uint8 [T,h,w,3]) per episode for notebooks.
    """
    from groot_kit.sim import make_env
    from groot_kit.sim.rollout import rollout

    processor = processor or _processor_for(policy, embodiment)
    size = image_size or policy.config.vlm.vision.image_size
    env = make_env(embodiment, task, image_size=size, seed=seed, **(env_kwargs or {}))
    was_training = policy.training
    policy.eval()
    record = video_dir is not None or keep_frames
    eps, t0 = [], time.perf_counter()
    it = range(n_episodes)
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(it, desc=f"eval {embodiment}/{task}")
    try:
        for i in it:
            s = seed + i
            ctl = PolicyController(policy, processor, env, replan_every=replan_every, seed=s, num_steps=num_steps)
            ep = rollout(env, ctl, seed=s, max_steps=max_steps, record_frames=record, tier="synthetic")
            row = {"seed": s, "success": bool(ep.success), "steps": len(ep), "instruction": ep.instruction,
                   "subtasks": [sub for _, sub in ctl.query_subtasks], "queries": ctl.queries}
            if record:
                frames = annotate_frames(ep)
                if video_dir is not None:
                    row["video"] = str(write_video(frames, Path(video_dir) / f"{embodiment}_{task}_seed{s}.mp4",
                                                   video_fps or env.spec_e.control_hz))
                if keep_frames:
                    row["frames"] = frames
            eps.append(row)
    finally:
        env.close()
        if was_training:
            policy.train()
    n_ok = sum(e["success"] for e in eps)
    return {"embodiment": embodiment, "task": task, "success_rate": n_ok / max(1, len(eps)), "successes": n_ok,
            "n_episodes": len(eps), "replan_every": replan_every, "env_kwargs": dict(env_kwargs or {}),
            "seconds": round(time.perf_counter() - t0, 2), "episodes": eps}


def strip_arrays(result: dict) -> dict:
    """A JSON-safe copy of an eval result (drops frames, pred/gt arrays)."""
    def clean(x):
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items() if k not in ("frames", "pred", "gt")}
        if isinstance(x, list):
            return [clean(v) for v in x]
        if isinstance(x, np.ndarray):
            return x.tolist()
        if isinstance(x, (np.floating, np.integer)):
            return x.item()
        return x
    return clean(result)


# ----------------------------------------------------------------------------------- CLI
def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="policy folder (save_pretrained / NVIDIA layout)")
    p.add_argument("--dataset", action="append", default=[], help="open-loop MSE on this dataset (repeatable)")
    p.add_argument("--embodiment", action="append", default=[], help="closed-loop success in MuJoCo (repeatable)")
    p.add_argument("--task", default="reach", help="sim task for closed loop (pick_place, reach, lift_box)")
    p.add_argument("--num-cubes", type=int, default=None, help="cubes on the table (default: env default 3)")
    p.add_argument("--episodes", type=int, default=10, help="closed-loop episodes per embodiment")
    p.add_argument("--max-open-loop-episodes", type=int, default=5)
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--replan-every", type=int, default=8, help="actions executed per predicted chunk (1..16)")
    p.add_argument("--output-dir", default="outputs/eval", help="eval.json, plots and videos go here")
    p.add_argument("--video", action="store_true", help="write an mp4 per closed-loop episode")


def run_eval(args: argparse.Namespace) -> dict:
    from groot_kit.model.policy import GrootPolicy
    if not args.dataset and not args.embodiment:
        raise SystemExit("groot-kit eval: give --dataset PATH (open loop) and/or --embodiment NAME (closed loop)")
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    policy = GrootPolicy.from_pretrained(args.checkpoint)
    res: dict[str, Any] = {"checkpoint": str(args.checkpoint), "open_loop": {}, "closed_loop": {}}
    for ds in args.dataset:
        r = evaluate_open_loop(policy, ds, max_episodes=args.max_open_loop_episodes, seed=args.seed)
        open_loop_figure(r).write_html(str(out / f"open_loop_{Path(ds).name}.html"))
        res["open_loop"][ds] = strip_arrays(r)
        print(f"open loop {ds}: MSE {r['mse']:.4g} over {r['frames']} frames")
    kw = {"num_cubes": args.num_cubes} if args.num_cubes else {}
    for emb in args.embodiment:
        r = evaluate_closed_loop(policy, emb, args.task, args.episodes, seed=args.seed, replan_every=args.replan_every,
                                 env_kwargs=kw, video_dir=out / "videos" if args.video else None)
        res["closed_loop"][emb] = strip_arrays(r)
        print(f"closed loop {emb}/{args.task}: success {r['successes']}/{r['n_episodes']} ({r['seconds']} s)")
    (out / "eval.json").write_text(json.dumps(res, indent=1))
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="groot-kit eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_eval_arguments(p)
    run_eval(p.parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
