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
"""
from __future__ import annotations

from typing import Any

import numpy as np

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
    return {"named": named, "chosen": got, "named_color": cols[named], "chosen_color": cols[got]}


def swap_target(env) -> None:
    """Re-point the scene at the next cube (and the other bin): a different valid instruction."""
    env = env.unwrapped if hasattr(env, "unwrapped") else env
    cube = (int(env.target["cube"].removeprefix("cube")) + 1) % len(env.scene["cube_colors"])
    bin_ = None if env.task != "pick_place" else 1 - int(env.target["bin"].removeprefix("bin"))
    env.set_target(cube, bin_)


def _summary(r: dict) -> dict[str, Any]:
    probes = [e["probe"] for e in r["episodes"]]
    named = sum(p["named"] == p["chosen"] for p in probes)
    conf: dict[str, dict[str, int]] = {}
    for p in probes:
        row = conf.setdefault(p["named_color"], {})
        row[p["chosen_color"]] = row.get(p["chosen_color"], 0) + 1
    n = r["n_episodes"]
    return {"successes": r["successes"], "n": n, "success_rate": r["success_rate"], "ci95": r["ci95"],
            "named_cube": named, "named_cube_rate": named / max(1, n), "named_cube_ci95": wilson_interval(named, n),
            "confusion": conf}


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
    base = out["conditions"]["as_given"]["success_rate"]
    out["swapped_vs_as_given"] = out["conditions"]["swapped"]["success_rate"] / base if base > 0 else None
    return out


def confusion_figure(confusion: dict[str, dict[str, int]], title: str = "Named cube vs cube the robot went for"):
    """Plotly heat map of a confusion table ({named colour: {chosen colour: count}})."""
    import plotly.graph_objects as go
    cols = sorted(set(confusion) | {c for row in confusion.values() for c in row})
    z = [[confusion.get(a, {}).get(b, 0) for b in cols] for a in cols]
    fig = go.Figure(go.Heatmap(z=z, x=cols, y=cols, colorscale="Blues", text=z, texttemplate="%{text}"))
    fig.update_layout(title=title, xaxis_title="cube the robot went for", yaxis_title="cube the instruction named",
                      height=380)
    return fig
