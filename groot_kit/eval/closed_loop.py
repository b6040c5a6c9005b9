"""Closed-loop evaluation in MuJoCo: the one evaluator every recipe, notebook and script calls.

    res = evaluate_closed_loop(policy, "so100", task="reach", n_episodes=50, seed=300_000)
    res["successes"], res["n_episodes"], res["ci95"]          # e.g. 48, 50, (0.87, 0.99)

Episode i runs scene seed ``seed + i`` (see groot_kit.eval.seeds for the rule and the ranges kept
apart for tuning, reporting and re-checks). The policy runs through its processor
(`groot_kit.data.processor.processor_for`) and `PolicyController`.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .controller import PolicyController
from .seeds import scene_seeds, wilson_interval
from .video import annotate_frames, write_video


@torch.no_grad()
def evaluate_closed_loop(policy, embodiment, task: str = "reach", n_episodes: int = 10, seed: int = 100_000, *,
                         mode: str = "replan", replan_every: int = 8, num_cubes: int | None = None,
                         env_kwargs: dict | None = None, instruction: str | Callable[[Any], str] | None = None,
                         on_episode_start: Callable[[Any], None] | None = None,
                         probe: Callable[[Any], dict] | None = None,
                         processor=None, num_steps: int | None = None, max_steps: int | None = None,
                         image_size: int | None = None, video_dir: str | Path | None = None,
                         keep_frames: bool = False, video_episodes: int | None = None,
                         video_size: int | None = None, video_fps: float | None = None,
                         progress: bool | Callable[[int, bool], None] = False,
                         allow_reserved_seeds: bool = False, delay_ticks: int = 0,
                         controller: Callable[[Any, int], Any] | None = None) -> dict[str, Any]:
    """Closed-loop success of `policy` on `embodiment` (name, folder or EmbodimentSpec) over
    `n_episodes` scenes from `seed`.

    mode / replan_every: chunk execution (see groot_kit.chunking). instruction: a fixed
    string or ``fn(env) -> str`` replacing the scene's instruction (language ablations; success is
    still the scene's own target unless `on_episode_start` re-points it with ``env.set_target``).
    probe: ``fn(env) -> dict`` at the end of each episode, stored in the row as "probe" (e.g. which
    cube the robot went for). Videos: `video_dir` writes an
    annotated mp4 per recorded episode, `keep_frames` keeps the annotated frames (uint8 [T,h,w,3])
    in each episode row; `video_episodes` limits recording to the first k episodes (default: all
    when recording); `video_size` renders the first camera at that size instead of the policy's
    view. `progress`: True for a tqdm bar, or ``fn(done, success)`` after each episode.
    delay_ticks: simulated inference delay in control steps (each chunk arrives that late; mode
    "rtc" needs >= 1), see groot_kit.eval.controller.
    controller: ``fn(env, scene_seed) -> obj`` with ``obj.act(obs) -> action``, built per episode in
    place of the `PolicyController`: a policy that is not a GrootPolicy (the RL experiment's
    residual policy) runs on the same scenes, rollout and statistics. `policy` may then be None,
    and `image_size` sets the rendered size.

    Returns ``{"embodiment", "task", "seed", "seeds", "success_rate", "successes", "n_episodes",
    "ci95", "mode", "replan_every", "env_kwargs", "seconds", "episodes": [{"seed", "success",
    "steps", "instruction", "subtasks", "queries", "video"?, "frames"?}], "videos": [frames]}``.
    """
    from groot_kit.sim import make_env

    seeds = scene_seeds(seed, n_episodes, allow_reserved=allow_reserved_seeds)
    if controller is None:
        controller = _policy_controllers(policy, processor, embodiment, mode=mode, replan_every=replan_every,
                                         num_steps=num_steps, instruction=instruction,
                                         on_episode_start=on_episode_start, delay_ticks=delay_ticks)
    kw = dict(env_kwargs or {}, **({} if num_cubes is None else {"num_cubes": int(num_cubes)}))
    env = make_env(str(embodiment) if isinstance(embodiment, Path) else embodiment, task,
                   image_size=image_size or policy.config.vlm.vision.image_size, seed=seeds[0] if seeds else seed, **kw)
    name = env.spec_e.name
    record = video_dir is not None or keep_frames or video_episodes
    n_rec = (n_episodes if video_episodes is None else int(video_episodes)) if record else 0
    was_training = policy is not None and policy.training
    if policy is not None:
        policy.eval()
    it = seeds
    if progress is True:
        from tqdm.auto import tqdm
        it = tqdm(seeds, desc=f"eval {name}/{task}")
    rows, videos, t0 = [], [], time.perf_counter()
    try:
        for i, s in enumerate(it):
            ctl = controller(env, s)
            ep, frames = _run_episode(env, ctl, s, max_steps, i < n_rec, video_size)
            row = _episode_row(env, ctl, ep, s, given=instruction is not None, probe=probe)
            if frames is not None:
                videos.append(frames)
                _attach_video(row, frames, video_dir and Path(video_dir) / f"{name}_{task}_seed{s}.mp4",
                              video_fps or env.spec_e.control_hz, keep_frames)
            rows.append(row)
            if callable(progress):
                progress(i + 1, bool(ep.success))
    finally:
        env.close()
        if was_training:
            policy.train()
    k = sum(r["success"] for r in rows)
    return {"embodiment": name, "task": task, "seed": seed, "seeds": seeds, "success_rate": k / max(1, len(rows)),
            "successes": k, "n_episodes": len(rows), "ci95": wilson_interval(k, len(rows)), "mode": mode,
            "delay_ticks": delay_ticks,
            "replan_every": getattr(ctl, "replan_every", replan_every) if rows else replan_every, "env_kwargs": kw,
            "seconds": round(time.perf_counter() - t0, 2), "episodes": rows, "videos": videos}


def _policy_controllers(policy, processor, embodiment, **controller_kwargs) -> Callable[[Any, int], PolicyController]:
    """The default controller factory: ``fn(env, scene_seed)`` -> a PolicyController of `policy`
    through its processor (the given one, else the checkpoint's for `embodiment`)."""
    from groot_kit.data.processor import processor_for
    if policy is None:
        raise ValueError("evaluate_closed_loop: give a policy, or a controller factory fn(env, seed)")
    processor = processor or processor_for(policy, embodiment)
    return lambda env, s: PolicyController(policy, processor, env, seed=s, **controller_kwargs)


def _attach_video(row: dict, frames: np.ndarray, path: Path | None, fps: float, keep_frames: bool) -> None:
    """Write the episode's frames (uint8 [T,h,w,3]) to `path` (row["video"]) and/or keep them (row["frames"])."""
    if path:
        row["video"] = str(write_video(frames, path, fps))
    if keep_frames:
        row["frames"] = frames


def _episode_row(env, ctl, ep, seed: int, given: bool, probe: Callable[[Any], dict] | None) -> dict:
    """One episode's result row (without video): success, length, instruction, System 2's sub-tasks
    and queries when the controller has them, the instruction given instead, the probe's dict."""
    row = {"seed": seed, "success": bool(ep.success), "steps": len(ep), "instruction": ep.instruction,
           "subtasks": [sub for _, sub in getattr(ctl, "query_subtasks", [])], "queries": getattr(ctl, "queries", None)}
    if given:
        row["given_instruction"] = ctl.given_instruction
    if probe is not None:
        row["probe"] = probe(env)
    return row



class _CameraRecorder:
    """The controller, plus a render of one camera at `size` before every step (for a larger video)."""

    def __init__(self, env, ctl, size: int):
        self.env, self.ctl, self.size = env, ctl, size
        self.cam = next(iter(env.spec_e.cameras))
        self.frames: list[np.ndarray] = []

    @property
    def subtask(self) -> str:
        return getattr(self.ctl, "subtask", "")

    def act(self, obs: dict) -> np.ndarray:
        self.frames.append(self.env.render_camera(self.cam, self.size))
        return self.ctl.act(obs)


def _run_episode(env, ctl, seed: int, max_steps: int | None, record: bool,
                 video_size: int | None):
    """One scene; frames (uint8 [T,h,w,3]) when `record`: the annotated policy views (instruction,
    step, System 2's sub-task), or the first camera rendered at `video_size`."""
    from groot_kit.sim.rollout import rollout
    if record and video_size is not None:
        rec = _CameraRecorder(env, ctl, video_size)
        ep = rollout(env, rec, seed=seed, max_steps=max_steps, record_frames=False, tier="policy")
        rec.frames.append(env.render_camera(rec.cam, video_size))
        return ep, np.stack(rec.frames)
    ep = rollout(env, ctl, seed=seed, max_steps=max_steps, record_frames=record, tier="policy")
    return ep, (annotate_frames(ep) if record else None)


def success_table(results: dict[str, dict]) -> list[dict]:
    """Rows {embodiment, task, successes, n, rate, ci95_low, ci95_high, seeds} for a results dict."""
    out = []
    for key, r in results.items():
        lo, hi = r.get("ci95") or wilson_interval(r["successes"], r["n_episodes"])
        out.append({"embodiment": r.get("embodiment", key), "task": r.get("task"), "successes": r["successes"],
                    "n": r["n_episodes"], "rate": r["success_rate"], "ci95_low": round(lo, 3),
                    "ci95_high": round(hi, 3), "seeds": f"{r.get('seed')}..{r.get('seed', 0) + r['n_episodes'] - 1}"})
    return out
