"""`groot-kit eval`: open-loop MSE on datasets and closed-loop success in MuJoCo, written to eval.json.

    groot-kit eval --checkpoint data_samples/checkpoints/tiny_base --embodiment so100 --task reach \\
        --episodes 50 --seed 300000
    groot-kit eval --checkpoint DIR --dataset data_samples/panda7_expert

Closed loop: episode i runs scene seed SEED + i. Seed ranges: 100000-299999 tuning, 300000-699999
reported figures, >= 700000 reserved for independent re-checks (see groot_kit.eval.seeds).
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from .closed_loop import evaluate_closed_loop
from .open_loop import evaluate_open_loop, open_loop_figure, strip_arrays
from .seeds import TUNING_SEEDS


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    p.add_argument("--checkpoint", required=True, help="policy folder (save_pretrained / NVIDIA layout)")
    p.add_argument("--dataset", action="append", default=[], help="open-loop MSE on this dataset (repeatable)")
    p.add_argument("--embodiment", action="append", default=[],
                   help="closed-loop success in MuJoCo (repeatable): a robot name or an embodiment folder")
    p.add_argument("--task", default="reach", help="sim task for closed loop (reach, pick_place, lift_box)")
    p.add_argument("--num-cubes", type=int, default=1, help="cubes on the table (the base is pretrained with 1)")
    p.add_argument("--episodes", type=int, default=10, help="closed-loop episodes per embodiment")
    p.add_argument("--max-open-loop-episodes", type=int, default=5)
    p.add_argument("--seed", type=int, default=TUNING_SEEDS.start,
                   help="first scene seed (episode i runs SEED+i); report figures from 300000+")
    p.add_argument("--mode", default="replan", choices=["whole", "replan", "ensemble"], help="chunk execution")
    p.add_argument("--replan-every", type=int, default=8, help="actions executed per predicted chunk (1..16)")
    p.add_argument("--output-dir", default="outputs/eval", help="eval.json, plots and videos go here")
    p.add_argument("--video", action="store_true", help="write an mp4 per closed-loop episode")


def run_eval(args: argparse.Namespace) -> dict:
    from groot_kit.model.policy import GrootPolicy
    if not args.dataset and not args.embodiment:
        raise SystemExit("groot-kit eval: give --dataset PATH (open loop) and/or --embodiment NAME (closed loop)")
    policy = GrootPolicy.from_pretrained(args.checkpoint)
    out = Path(args.output_dir)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        res = _evaluate(policy, args, out)
    except BaseException:
        if created and not any(out.iterdir()):   # a failed eval leaves no empty folder behind
            shutil.rmtree(out, ignore_errors=True)
        raise
    (out / "eval.json").write_text(json.dumps(res, indent=1))
    return res


def _evaluate(policy, args, out: Path) -> dict[str, Any]:
    res: dict[str, Any] = {"checkpoint": str(args.checkpoint), "open_loop": {}, "closed_loop": {}}
    for ds in args.dataset:
        r = evaluate_open_loop(policy, ds, max_episodes=args.max_open_loop_episodes, seed=args.seed)
        open_loop_figure(r).write_html(str(out / f"open_loop_{Path(ds).name}.html"), include_plotlyjs=True)
        res["open_loop"][ds] = strip_arrays(r)
        print(f"open loop {ds}: MSE {r['mse']:.4g} over {r['frames']} frames")
    for emb in args.embodiment:
        r = evaluate_closed_loop(policy, emb, args.task, args.episodes, seed=args.seed, mode=args.mode,
                                 replan_every=args.replan_every, num_cubes=args.num_cubes,
                                 video_dir=out / "videos" if args.video else None)
        res["closed_loop"][emb] = strip_arrays(r)
        lo, hi = r["ci95"]
        print(f"closed loop {r['embodiment']}/{args.task}: success {r['successes']}/{r['n_episodes']} "
              f"({100 * r['success_rate']:.0f}%, 95% CI {100 * lo:.0f}-{100 * hi:.0f}%) on seeds "
              f"{args.seed}..{args.seed + args.episodes - 1} ({r['seconds']} s)")
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="groot-kit eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_eval_arguments(p)
    run_eval(p.parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
