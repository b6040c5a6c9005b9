"""Does System 2 matter? The language ablation on multi-cube scenes.

    res = language_ablation(policy, "so100", task="reach", n_episodes=50, seed=300_000, num_cubes=3)
    res["conditions"]["swapped"]["success_rate"] / res["conditions"]["as_given"]["success_rate"]
    res["confusion"]["as_given"]            # {named colour: {colour gone for: count}}

The same scenes run three times:
    as_given   the scene's own instruction; success against its target
    swapped    the target re-pointed to another cube (and the other bin) of the same scene before the
               first query, the instruction with it; success against the NEW target
    blank      an empty instruction; success against the scene's own target (a policy that ignores
               language still succeeds by chance: about 1/num_cubes when it goes for some cube)
For each episode the probe records which cube the robot went for (reach: the cube under the end
effector at the end; pick_place: the cube moved farthest), so a confusion table of named vs chosen
cube follows, and "named_cube_rate" is how often it went for the one the instruction names.
Each condition keeps its episodes (seed, success, named and chosen cube, where the named cube
started, the end phase), and "paired" compares as_given with swapped scene by scene (the same
scenes, so an exact McNemar test on the scenes where only one of them succeeded).
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import torch

from .closed_loop import evaluate_closed_loop
from .seeds import wilson_interval


def chosen_cube(env) -> int:
    """Index of the cube the robot went for: reach, the cube nearest (horizontally) to the target
    arm's end effector; pick_place, the cube displaced farthest from where the scene put it."""
    env = env.unwrapped if hasattr(env, "unwrapped") else env
    n = len(env.scene["cube_colors"])
    if env.task == "pick_place":
        moved = [np.linalg.norm(env.body_pos(f"cube{i}")[:2] - env.scene["cube_xy"][i]) for i in range(n)]
        return int(np.argmax(moved))
    ee = env.ee_pose(env.target["arm"])[0]
    return int(np.argmin([np.linalg.norm(env.body_pos(f"cube{i}")[:2] - ee[:2]) for i in range(n)]))


def _probe(env) -> dict:
    env = env.unwrapped if hasattr(env, "unwrapped") else env
    named = int(env.target["cube"].removeprefix("cube"))
    got = chosen_cube(env)
    cols = env.scene["cube_colors"]
    xy = env.scene["cube_xy"][named]
    return {"named": named, "chosen": got, "named_color": cols[named], "chosen_color": cols[got],
            "named_start_xy": [round(float(xy[0]), 4), round(float(xy[1]), 4)], "end_phase": env.oracle_subtask()}


def swap_target(env) -> None:
    """Re-point the scene at the next cube (and the other bin): a different valid instruction."""
    (env.unwrapped if hasattr(env, "unwrapped") else env).next_target(1)


def _summary(r: dict) -> dict[str, Any]:
    probes = [e["probe"] for e in r["episodes"]]
    episodes = [{"seed": e["seed"], "success": e["success"], "steps": e["steps"],
                 **{k: e["probe"][k] for k in ("named", "chosen", "named_start_xy", "end_phase")}} for e in r["episodes"]]
    named = sum(e["named"] == e["chosen"] for e in episodes)
    conf: dict[str, dict[str, int]] = {}
    for p in probes:
        row = conf.setdefault(p["named_color"], {})
        row[p["chosen_color"]] = row.get(p["chosen_color"], 0) + 1
    # where the failures stopped: the sub-task the world state shows at the episode's end
    failed_in = dict(Counter(e["end_phase"] for e in episodes if not e["success"]))
    n = r["n_episodes"]
    return {"successes": r["successes"], "n": n, "success_rate": r["success_rate"], "ci95": r["ci95"],
            "named_cube": named, "named_cube_rate": named / max(1, n), "named_cube_ci95": wilson_interval(named, n),
            "failures_by_end_phase": failed_in, "confusion": conf, "episodes": episodes}


def paired_comparison(a: list[dict], b: list[dict]) -> dict[str, Any]:
    """Two conditions on the same scenes (episode rows with "seed" and "success"): how many scenes
    both solved, only one, neither, and the exact two-sided McNemar p-value (binomial on the
    discordant scenes): a small p says the difference is not the luck of which scenes were drawn."""
    sb = {e["seed"]: e["success"] for e in b}
    if sorted(sb) != sorted(e["seed"] for e in a):
        raise ValueError("paired_comparison needs both conditions on the same scene seeds")
    both = sum(e["success"] and sb[e["seed"]] for e in a)
    only_a = sum(e["success"] and not sb[e["seed"]] for e in a)
    only_b = sum(sb[e["seed"]] and not e["success"] for e in a)
    k, m = min(only_a, only_b), only_a + only_b
    p = min(1.0, 2 * sum(math.comb(m, i) for i in range(k + 1)) / 2 ** m) if m else 1.0
    return {"both": both, "only_first": only_a, "only_second": only_b, "neither": len(a) - both - only_a - only_b,
            "mcnemar_p": p}


def language_ablation(policy, embodiment, task: str = "reach", n_episodes: int = 50, seed: int = 300_000,
                      num_cubes: int = 3, **kw) -> dict[str, Any]:
    """The three conditions on the same scenes (seed rule of groot_kit.eval.seeds). Extra keyword
    arguments go to evaluate_closed_loop (mode, replan_every, max_steps, ...)."""
    if num_cubes < 2:
        raise ValueError("language_ablation needs num_cubes >= 2: with one cube the instruction carries no information")
    runs = {"as_given": {}, "swapped": {"on_episode_start": swap_target}, "blank": {"instruction": ""}}
    out: dict[str, Any] = {"embodiment": embodiment, "task": task, "num_cubes": num_cubes, "seed": seed,
                           "n_episodes": n_episodes, "chance": 1.0 / num_cubes, "conditions": {}, "confusion": {}}
    for name, extra in runs.items():
        r = evaluate_closed_loop(policy, embodiment, task, n_episodes, seed=seed, num_cubes=num_cubes, probe=_probe,
                                 **extra, **kw)
        s = _summary(r)
        out["confusion"][name] = s.pop("confusion")
        out["conditions"][name] = s
    out["paired"] = {"as_given_vs_swapped": paired_comparison(out["conditions"]["as_given"]["episodes"],
                                                              out["conditions"]["swapped"]["episodes"])}
    base = out["conditions"]["as_given"]["success_rate"]
    out["swapped_vs_as_given"] = out["conditions"]["swapped"]["success_rate"] / base if base > 0 else None
    return out


def goal_probe(policy, embodiment: str, task: str = "reach", n_scenes: int = 20, seed: int = 300_000,
               num_cubes: int = 3, workdir=None) -> dict[str, Any]:
    """Does System 2 itself ground the words? (policies with a goal head, GrootPolicy.add_goal_head)

    Each of ``n_scenes`` unseen scenes is demonstrated once per cube (same first image, each cube
    named in turn). From the first frame, the goal head predicts the final state under each demo's
    instruction; ``goal_matched`` counts predictions nearest to that demo's own final state among
    the scene's ``num_cubes`` goals (grounded: near 1; ignoring the words: about 1/num_cubes). MSEs
    against the demo's goal: with its instruction, another cube's instruction, and a blank one."""
    import tempfile
    from pathlib import Path

    import torch

    from groot_kit.data import GrootDataset, collate, write_dataset
    from groot_kit.data.sim_data import modality_for, sim_episodes
    from groot_kit.embodiment import load_embodiment

    if not hasattr(policy, "goal_head"):
        raise ValueError("goal_probe needs a policy trained with a goal head (goal_loss_weight > 0)")
    spec = load_embodiment(embodiment)
    eps = list(sim_episodes(embodiment, task, n_scenes * num_cubes, policy.config.vlm.vision.image_size, seed,
                            only_success=True, num_cubes=num_cubes, start_noise=0.02, min_steps=2,
                            targets_per_scene=num_cubes))
    by_scene: dict[int, list[int]] = {}
    for i, e in enumerate(eps):
        by_scene.setdefault(e.provenance["seed"], []).append(i)
    keep = [i for idx in by_scene.values() if len(idx) == num_cubes for i in idx]   # scenes with every demo
    eps = [eps[i] for i in keep]
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        root = write_dataset(eps, Path(tmp) / "probe", modality_for(spec), fps=int(spec.control_hz),
                             robot_type=spec.name, embodiment=spec.name, embodiment_id=spec.slot_id)
        ds, _ = GrootDataset.for_policy(policy, root, policy.get_processor(embodiment), goal_state=True)
        ei = ds.frame_episode_index
        batch = collate([ds[int(np.argmax(ei == e))] for e in range(len(eps))])
    goal, gmask = batch["goal_state"], batch["goal_state_mask"].float()
    n = len(eps)
    other = [eps[(i // num_cubes) * num_cubes + (i % num_cubes + 1) % num_cubes].instruction for i in range(n)]
    out: dict[str, Any] = {"embodiment": embodiment, "task": task, "num_cubes": num_cubes, "seed": seed,
                           "n_scenes": n // num_cubes, "n_demos": n, "chance": 1.0 / num_cubes}
    with torch.no_grad():
        for name, texts in (("own", batch["instruction"]), ("other_cube", other), ("blank", [""] * n)):
            vl, m = policy.encode_vl({**batch, "instruction": texts})
            pred = policy.predict_goal(vl, m)
            out[f"mse_{name}"] = float((((pred - goal) ** 2) * gmask).sum() / gmask.sum())
            if name == "own":
                d = ((pred[:, None] - goal.view(-1, num_cubes, goal.shape[-1]).repeat_interleave(num_cubes, 0)) ** 2
                     * gmask[:, None]).sum(-1)                                   # [n, num_cubes]
                hits = int((d.argmin(1) == torch.arange(n) % num_cubes).sum())
                out.update(goal_matched=hits, goal_matched_rate=hits / n, goal_matched_ci95=wilson_interval(hits, n))
    return out


def scene_instructions(embodiment: str, task: str = "pick_place", seed: int = 300_000, num_cubes: int = 3) -> list[dict]:
    """Every valid instruction of scene `seed`: [{"instruction", "cube", "bin"}] (bin None for reach),
    the scene's own instruction first."""
    from groot_kit.sim.env import make_env
    env = make_env(embodiment, task, render=False, num_cubes=num_cubes)
    try:
        env.reset(seed=seed)
        own = (int(env.target["cube"].removeprefix("cube")),
               int(env.target["bin"].removeprefix("bin")) if task == "pick_place" else None)
        pairs = [(k, b) for k in range(num_cubes) for b in ((0, 1) if task == "pick_place" else (None,))]
        pairs.sort(key=lambda kb: kb != own)
        return [{"instruction": env.set_target(k, b), "cube": k, "bin": b} for k, b in pairs]
    finally:
        env.close()


def follow_instruction(policy, embodiment: str, task: str, seed: int, instruction: str, num_cubes: int = 3,
                       max_steps: int | None = None, video_size: int | None = None) -> dict[str, Any]:
    """One closed-loop episode of scene `seed` with a typed instruction (notebook 05's text box).

    When the text names a cube of the scene (and, for pick_place, a bin) by colour, the scene's target
    is re-pointed to them first, so "success" is measured against what was typed; otherwise the text
    is given as-is and success is None (nothing in the scene to check it against).
    -> {"instruction", "target": {"cube_color", "bin_color"} | None, "success", "went_for" (colour of the
    cube the robot went for), "steps", "subtasks", "frames" uint8 [T, h, w, 3]}"""
    text = " ".join(str(instruction).lower().split())
    words = text.replace(",", " ").replace(".", " ").split()
    # the word before "cube" / "bin" (yellow is both a cube and a bin colour)
    cube_word = next((words[i - 1] for i, w in enumerate(words) if i and w in ("cube", "block")), None)
    bin_word = next((words[i - 1] for i, w in enumerate(words) if i and w == "bin"), None)
    holder: dict[str, Any] = {}

    def repoint(env):
        env = env.unwrapped if hasattr(env, "unwrapped") else env
        sc = env.scene
        cube = next((k for k, c in enumerate(sc["cube_colors"]) if c == cube_word), None)
        bin_ = next((b for b, c in enumerate(sc.get("bin_colors", [])) if c == bin_word), None)
        ok = cube is not None and (task != "pick_place" or bin_ is not None)
        if ok:
            env.set_target(cube, bin_)
            holder["target"] = {"cube_color": sc["cube_colors"][cube],
                                "bin_color": sc["bin_colors"][bin_] if bin_ is not None else None}
        else:
            holder["target"] = None

    r = evaluate_closed_loop(policy, embodiment, task, 1, seed=seed, num_cubes=num_cubes, instruction=text,
                             on_episode_start=repoint, probe=_probe, keep_frames=True, max_steps=max_steps,
                             video_size=video_size)
    row = r["episodes"][0]
    target = holder.get("target")
    return {"instruction": text, "target": target, "success": bool(row["success"]) if target else None,
            "went_for": row["probe"]["chosen_color"], "steps": row["steps"], "subtasks": row["subtasks"],
            "frames": row.get("frames")}


@torch.no_grad()
def subtask_accuracy(policy, embodiment: str, task: str = "pick_place", n_episodes: int = 20, seed: int = 300_000,
                     num_cubes: int = 3, every: int = 4, processor=None) -> dict[str, Any]:
    """Does System 2 name the sub-task? The scripted expert runs `n_episodes` unseen scenes (seed rule of
    groot_kit.eval.seeds, the evaluation's start pose); every `every`-th frame, System 2 reads what the
    policy would see and names the sub-task, compared with the label the expert gives that frame.
    -> {"correct", "n_frames", "accuracy", "ci95", "per_label": {label: [correct, n]},
        "confusion": {expert label: {predicted: count}}}"""
    from groot_kit.data.processor import processor_for
    from groot_kit.sim.env import make_env
    from groot_kit.sim.expert import make_expert
    from groot_kit.sim.policy_io import sim_observation
    from .seeds import scene_seeds

    if every < 1:
        raise ValueError(f"subtask_accuracy: every={every}; give 1 or more (frames between queries)")
    proc = processor or processor_for(policy, embodiment)
    env = make_env(embodiment, task, image_size=policy.config.vlm.vision.image_size, num_cubes=num_cubes)
    expert = make_expert(env)
    labels, preds = [], []
    was = policy.training
    policy.eval()
    try:
        for s in scene_seeds(seed, n_episodes):
            obs, _ = env.reset(seed=s)
            expert.reset()
            batches, ep_labels = [], []
            for t in range(env.max_steps):
                action = expert.act(obs)
                if t % every == 0:
                    batches.append(proc(sim_observation(env, obs, proc.modality)))
                    ep_labels.append(expert.subtask)
                obs, _, term, trunc, _ = env.step(action)
                if term or trunc:
                    break
            for lo in range(0, len(batches), 32):
                chunk = batches[lo:lo + 32]
                batch = {k: (torch.cat([b[k] for b in chunk]) if hasattr(chunk[0][k], "shape")
                             else [x for b in chunk for x in b[k]]) for k in chunk[0]}
                preds += policy.predict_subtask(batch)
            labels += ep_labels
    finally:
        env.close()
        policy.train(was)
    conf: dict[str, dict[str, int]] = {}
    for y, p in zip(labels, preds):
        conf.setdefault(y, {})[p] = conf.setdefault(y, {}).get(p, 0) + 1
    per_label = {y: [row.get(y, 0), sum(row.values())] for y, row in conf.items()}
    k, n = sum(c for c, _ in per_label.values()), len(labels)
    return {"embodiment": embodiment, "task": task, "seed": seed, "n_episodes": n_episodes, "every": every,
            "correct": k, "n_frames": n, "accuracy": k / max(1, n), "ci95": wilson_interval(k, n),
            "per_label": per_label, "confusion": conf}


def confusion_figure(confusion: dict[str, dict[str, int]], title: str = "Named cube vs cube the robot went for"):
    """Plotly heat map of a confusion table ({named colour: {chosen colour: count}})."""
    import plotly.graph_objects as go
    cols = sorted(set(confusion) | {c for row in confusion.values() for c in row})
    z = [[confusion.get(a, {}).get(b, 0) for b in cols] for a in cols]
    fig = go.Figure(go.Heatmap(z=z, x=cols, y=cols, colorscale="Blues", text=z, texttemplate="%{text}"))
    fig.update_layout(title=title, xaxis_title="cube the robot went for", yaxis_title="cube the instruction named",
                      height=380)
    return fig
