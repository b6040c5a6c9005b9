"""Imitation only vs RL from scratch vs imitation + RL on MuJoCo reach (so100), one CPU core.

    python scripts/imitation_vs_rl.py                 # full budget (about 2-3 min on one CPU core)
    python scripts/imitation_vs_rl.py --fast          # smoke run (about a minute), also GROOT_KIT_FAST=1

Writes benchmarks/results/imitation_vs_rl.json (or imitation_vs_rl_fast.json) and prints a markdown
summary table. The experiment itself lives in groot_kit.train.rl.compare_imitation_vs_rl.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fast", action="store_true", help="smoke-sized budgets (also GROOT_KIT_FAST=1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-demos", type=int)
    p.add_argument("--bc-steps", type=int)
    p.add_argument("--rl-steps", type=int, help="RL environment samples per RL arm")
    p.add_argument("--goal-in-state", type=int, choices=(0, 1), help="1: BC also sees the goal position as state")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the shared CI machine has 2 cores)")
    p.add_argument("--output-dir", default=str(REPO / "outputs" / "imitation_vs_rl"))
    p.add_argument("--json", help="result file (default benchmarks/results/imitation_vs_rl[_fast].json)")
    a = p.parse_args(argv)
    import torch
    torch.set_num_threads(a.threads)
    from groot_kit.train.rl import ComparisonConfig, compare_imitation_vs_rl, format_table
    fast = a.fast or os.environ.get("GROOT_KIT_FAST") == "1"
    cfg = ComparisonConfig.fast() if fast else ComparisonConfig()
    over = {k: v for k, v in {"n_demos": a.n_demos, "bc_steps": a.bc_steps, "rl_steps": a.rl_steps}.items() if v is not None}
    cfg = dataclasses.replace(cfg, seed=a.seed, output_dir=a.output_dir, **over)
    if a.goal_in_state is not None:
        cfg = dataclasses.replace(cfg, task=dataclasses.replace(cfg.task, goal_in_state=bool(a.goal_in_state)))
    t0 = time.perf_counter()
    res = compare_imitation_vs_rl(cfg)
    res["wall_s_total"] = time.perf_counter() - t0
    res["machine"] = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
                      "python": sys.version.split()[0], "fast_mode": fast}
    out = Path(a.json) if a.json else REPO / "benchmarks" / "results" / ("imitation_vs_rl_fast.json" if fast else "imitation_vs_rl.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, default=float))
    print(format_table(res["table"]))
    print(f"\ntotal wall time {res['wall_s_total']:.0f} s; results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
