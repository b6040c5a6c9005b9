"""Does the base model follow the instruction? The language ablation (groot_kit.eval.language).

    python benchmarks/language_ablation.py                            # tiny_base, so100 + panda7, reach, 3 cubes
    python benchmarks/language_ablation.py --embodiments gr1_upper --task pick_place --episodes 50
    python benchmarks/language_ablation.py --task pick_place --subtask-episodes 20   # + System 2's sub-task text

Same scenes three times (as given / target swapped with its instruction / instruction blanked),
scene seeds from --seed (reported range 300000+). Writes benchmarks/results/language_ablation.json.
A checkpoint trained with a goal head also gets the System 2 goal probe (groot_kit.eval.goal_probe):
does System 2 alone point at the named cube's goal, on --goal-probe-scenes unseen scenes?
--subtask-episodes N adds System 2's sub-task text accuracy against the scripted expert's labels on N
unseen expert episodes of the same seed range (groot_kit.eval.subtask_accuracy).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from groot_kit.eval import goal_probe, language_ablation, subtask_accuracy
from groot_kit.paths import REPO_ROOT, TINY_BASE, resolve_repo_path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=TINY_BASE)
    p.add_argument("--embodiments", default="so100,panda7", help="comma-separated")
    p.add_argument("--task", default="reach")
    p.add_argument("--num-cubes", type=int, default=3)
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--seed", type=int, default=300_000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--goal-probe-scenes", type=int, default=20, help="0: skip the goal probe")
    p.add_argument("--subtask-episodes", type=int, default=0, help="expert episodes for the sub-task text accuracy (0: skip)")
    p.add_argument("--skip-rollouts", action="store_true", help="no language ablation (only the probes asked for)")
    p.add_argument("--out", default=str(REPO_ROOT / "benchmarks" / "results" / "language_ablation.json"))
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    from groot_kit.model.policy import GrootPolicy
    policy = GrootPolicy.from_pretrained(resolve_repo_path(a.checkpoint))
    out = {"command": "python benchmarks/language_ablation.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "checkpoint": a.checkpoint, "machine": {"platform": platform.platform(), "torch_threads": a.threads},
           "results": {}}
    for emb in a.embodiments.split(","):
        t0 = time.perf_counter()
        r = {} if a.skip_rollouts else language_ablation(policy, emb, a.task, a.episodes, seed=a.seed, num_cubes=a.num_cubes)
        r["seconds"] = round(time.perf_counter() - t0, 1)
        out["results"][emb] = r
        if r.get("conditions"):
            print(f"{emb}/{a.task}, {a.num_cubes} cubes, n={a.episodes}: " + "; ".join(
                f"{k} success {v['successes']}/{v['n']} named cube {v['named_cube']}/{v['n']}"
                for k, v in r["conditions"].items()) + f" ({r['seconds']} s)", flush=True)
            ends = r["conditions"]["as_given"]["failures_by_end_phase"]
            print(f"  as given, failed episodes by the sub-task they ended in: {ends or 'none'}", flush=True)
            pc = r["paired"]["as_given_vs_swapped"]
            print(f"  same scenes, as given vs re-pointed: both {pc['both']}, only as given {pc['only_first']}, "
                  f"only re-pointed {pc['only_second']}, neither {pc['neither']} (McNemar p = {pc['mcnemar_p']:.3f})",
                  flush=True)
        if a.goal_probe_scenes > 0 and hasattr(policy, "goal_head"):
            g = r["goal_probe"] = goal_probe(policy, emb, a.task, a.goal_probe_scenes, seed=a.seed, num_cubes=a.num_cubes)
            print(f"{emb} goal probe ({g['n_scenes']} scenes x {a.num_cubes} demos): own goal nearest "
                  f"{g['goal_matched']}/{g['n_demos']}; MSE own {g['mse_own']:.4f} other cube "
                  f"{g['mse_other_cube']:.4f} blank {g['mse_blank']:.4f}", flush=True)
        if a.subtask_episodes > 0:
            s = r["subtask_accuracy"] = subtask_accuracy(policy, emb, a.task, a.subtask_episodes, seed=a.seed,
                                                         num_cubes=a.num_cubes)
            print(f"{emb} sub-task text ({s['n_episodes']} expert episodes, every {s['every']}th frame): "
                  f"{s['correct']}/{s['n_frames']} = {s['accuracy']:.2f} "
                  + ", ".join(f"{k} {c}/{n}" for k, (c, n) in s["per_label"].items()), flush=True)
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(out, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
