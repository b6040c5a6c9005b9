"""Recipe: imitation only vs RL from scratch vs imitation + RL on MuJoCo reach (so100), one CPU core.

    python -m groot_kit.recipes.imitation_vs_rl            # full budget (about 2-3 min on one core)
    python -m groot_kit.recipes.imitation_vs_rl --fast     # smoke run (also GROOT_KIT_FAST=1)

`run(cfg)` writes benchmarks/results/imitation_vs_rl[_fast].json and returns the results; notebook 06
calls the pieces one by one. Flags are generated from ComparisonConfig (groot_kit.recipes.config_cli).
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


import numpy as np
import torch

from groot_kit.train.rl import (FlowBase, HoldBase, PPOConfig, ResidualPolicy, RLTaskConfig, collect_demos, evaluate,
                                 train_bc, train_ppo)

@dataclass
class ComparisonConfig:
    task: RLTaskConfig = field(default_factory=RLTaskConfig)
    n_demos: int = 20                 # expert episodes for BC
    bc_steps: int = 600               # flow-matching training steps
    bc_batch_size: int = 32           # BC batch size
    bc_learning_rate: float = 1e-3    # BC AdamW learning rate
    rl_steps: int = 20_480            # RL env samples per RL arm
    ppo: PPOConfig = field(default_factory=PPOConfig)
    n_action_steps: int = 8           # base chunk steps executed before re-planning
    eval_episodes: int = 24           # closed-loop episodes per evaluation
    seed: int = 0                     # demos, training and evaluation scenes
    output_dir: str = "outputs/imitation_vs_rl"   # BC checkpoints and RL runs

    @classmethod
    def fast(cls, **kw) -> "ComparisonConfig":
        """A smoke-sized run (about a minute on one CPU core)."""
        c = cls(n_demos=6, bc_steps=60, rl_steps=1024, eval_episodes=6,
                ppo=PPOConfig(num_envs=4, rollout_steps=64, epochs=3, eval_every=2, eval_episodes=6))
        return dataclasses.replace(c, **kw)


def compare_imitation_vs_rl(cfg: ComparisonConfig, callback: Callable[[str, dict], None] | None = None,
                            log: Callable[[str], None] = print) -> dict:
    """Run the three arms and return a JSON-ready dict (curves of success vs environment samples)."""
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    res: dict[str, Any] = {"config": dataclasses.asdict(cfg), "arms": {}, "torch_threads": torch.get_num_threads()}
    ppo = dataclasses.replace(cfg.ppo, total_env_steps=cfg.rl_steps, eval_episodes=cfg.eval_episodes, seed=cfg.seed)

    # 1. imitation only
    t0 = time.perf_counter()
    demos, demo_steps = collect_demos(cfg.task, cfg.n_demos, seed=cfg.seed)
    t_demo = time.perf_counter() - t0
    log(f"[imitation] {len(demos)} expert demos, {demo_steps} env steps, expert success "
        f"{np.mean([d.success for d in demos]):.2f} ({t_demo:.1f} s)")
    bc_curve = []

    def bc_cb(step, row):
        bc_curve.append({"step": step, "loss": row.get("loss")})
        if callback:
            callback("bc", {"step": step, **row})
    t1 = time.perf_counter()
    bc = train_bc(demos, cfg.task, cfg.bc_steps, cfg.bc_batch_size, out / "bc", cfg.seed, cfg.bc_learning_rate,
                  callbacks=[bc_cb])
    t_bc = time.perf_counter() - t1
    bc_policy = ResidualPolicy(FlowBase(bc, n_action_steps=cfg.n_action_steps, seed=cfg.seed), None, 0.0, cfg.task)
    ev = evaluate(bc_policy, cfg.task, cfg.eval_episodes, seed=cfg.seed)
    bc_policy.save_pretrained(out / "imitation_policy")
    log(f"[imitation] BC {cfg.bc_steps} steps in {t_bc:.1f} s -> success {ev['success_rate']:.2f}")
    res["arms"]["imitation"] = {
        "label": "imitation only (BC, flow matching)", "demo_env_steps": demo_steps, "rl_env_steps": 0,
        "final_success": ev["success_rate"], "final_return": ev["mean_return"], "bc_loss": bc_curve,
        "curve": [{"total_samples": 0, "eval_success": 0.0}, {"total_samples": demo_steps, "eval_success": ev["success_rate"]}],
        "wall_s": t_demo + t_bc, "expert_success": float(np.mean([d.success for d in demos]))}
    if callback:
        callback("imitation", res["arms"]["imitation"])

    # 2. RL from scratch, 3. imitation + RL
    for name, label, base, offset in (
            ("rl_scratch", "RL from scratch (residual PPO, no prior)", HoldBase(), 0),
            ("imitation_rl", "imitation + RL (residual PPO on the BC policy)",
             FlowBase(bc, n_action_steps=cfg.n_action_steps, seed=cfg.seed + 1), demo_steps)):
        t2 = time.perf_counter()
        cb = (lambda row, n=name: callback(n, row)) if callback else None
        pol, hist = train_ppo(base, cfg.task, ppo, callback=cb, sample_offset=offset)
        wall = time.perf_counter() - t2
        pol.save_pretrained(out / f"{name}_policy")
        final = [h for h in hist if "eval_success" in h][-1]
        log(f"[{name}] {hist[-1]['env_steps']} RL env steps in {wall:.1f} s -> success {final['eval_success']:.2f}")
        res["arms"][name] = {"label": label, "demo_env_steps": offset, "rl_env_steps": hist[-1]["env_steps"],
                             "final_success": final["eval_success"], "final_return": final["eval_return"],
                             "curve": [h for h in hist if "eval_success" in h], "history": hist, "wall_s": wall}
    res["table"] = summary_table(res)
    return res


def summary_table(res: dict) -> list[dict]:
    rows = []
    for name, a in res["arms"].items():
        first = next((c["total_samples"] for c in a["curve"] if c.get("eval_success", 0) >= 0.5), None)
        rows.append({"arm": name, "label": a["label"], "demo_env_steps": a["demo_env_steps"],
                     "rl_env_steps": a["rl_env_steps"], "total_env_steps": a["demo_env_steps"] + a["rl_env_steps"],
                     "final_success": a["final_success"], "samples_to_50pct": first, "wall_s": round(a["wall_s"], 1)})
    return rows


def format_table(rows: list[dict]) -> str:
    """Markdown table for the README."""
    head = "| arm | demo env steps | RL env steps | success | env steps to 50% | wall s |\n|---|---|---|---|---|---|"
    lines = [head]
    for r in rows:
        s50 = "-" if r["samples_to_50pct"] is None else f"{r['samples_to_50pct']:,}"
        lines.append(f"| {r['label']} | {r['demo_env_steps']:,} | {r['rl_env_steps']:,} | "
                     f"{r['final_success']:.2f} | {s50} | {r['wall_s']} |")
    return "\n".join(lines)


def success_figure(res: dict):
    """plotly: evaluation success vs environment samples (demos + RL) for each arm."""
    import plotly.graph_objects as go
    fig = go.Figure()
    colors = {"imitation": "#1f77b4", "rl_scratch": "#d62728", "imitation_rl": "#2ca02c"}
    for name, a in res["arms"].items():
        xs = [c["total_samples"] for c in a["curve"]]
        ys = [c["eval_success"] for c in a["curve"]]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=a["label"],
                                 line=dict(color=colors.get(name), dash="dot" if name == "imitation" else None)))
    fig.update_layout(title="Success vs environment samples (demos + RL)", xaxis_title="environment samples",
                      yaxis_title="evaluation success rate", yaxis_range=[-0.03, 1.03], template="plotly_white",
                      legend=dict(orientation="h", y=-0.25))
    return fig


def run(cfg: ComparisonConfig, result_json: str | Path | None = None, log: Callable[[str], None] = print,
        command: str | None = None) -> dict:
    """The experiment plus provenance (machine, wall time, the `command` that ran it), written to `result_json`."""
    import json
    import platform
    t0 = time.perf_counter()
    res = compare_imitation_vs_rl(cfg, log=log)
    res["wall_s_total"] = time.perf_counter() - t0
    if command:
        res["command"] = command
    res["machine"] = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
                      "python": sys.version.split()[0]}
    if result_json is not None:
        out = Path(result_json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=1, default=float))
    log(format_table(res["table"]))
    log(f"\ntotal wall time {res['wall_s_total']:.0f} s" + (f"; results in {result_json}" if result_json else ""))
    return res


def main(argv: list[str] | None = None) -> int:
    import argparse

    from groot_kit.recipes.config_cli import add_config_arguments, command_line, config_from_args
    p = argparse.ArgumentParser(prog="imitation_vs_rl", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fast", action="store_true", help="smoke-sized budgets (also GROOT_KIT_FAST=1)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    p.add_argument("--json", help="result file (default: benchmarks/results/imitation_vs_rl[_fast].json)")
    add_config_arguments(p, ComparisonConfig, group_title="experiment (ComparisonConfig)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    fast = a.fast or os.environ.get("GROOT_KIT_FAST") == "1"
    base = ComparisonConfig.fast() if fast else ComparisonConfig()
    given = {k: v for k, v in vars(a).items() if p.get_default(k) != v}   # only flags the user set
    cfg = config_from_args(ComparisonConfig, argparse.Namespace(**given), base=base)
    name = "imitation_vs_rl_fast.json" if fast else "imitation_vs_rl.json"
    run(cfg, a.json or Path(__file__).resolve().parents[2] / "benchmarks" / "results" / name,
        command=command_line("scripts/imitation_vs_rl.py", argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
