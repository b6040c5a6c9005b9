"""Bring your own data: conversion time, and open-loop MSE before vs after fine-tuning on a GR1-like set.

    python benchmarks/byod.py                      # 500 steps, full fine-tune and LoRA, ~5 min on 2 CPUs
    python benchmarks/byod.py --steps 50 --variants lora

The dataset is the test corpus's GR1-like GR00T v2.0 folder (tests/fixtures_datasets.py: 44-dim
float64 state/action, a phantom camera, no frame_index, fps 20.0), larger than in the tests. Timed:
the first `open_dataset` (tidy + lerobot's v2.1->v3.0 converter + cache) and a cached re-open, then
the way back: `groot-kit dataset convert --to gr00t-v2.1` of the converted copy (what Isaac-GR00T's
trainer reads) and a first open of that export (`--variants ""` stops after these timings).
Then, from data_samples/checkpoints/tiny_base with GR00T's arms-only keys (26 of 44 dims), the
open-loop protocol (`evaluate_open_loop`: a chunk every 16 steps, unnormalised MSE) on the training
episodes, before (the new slot freshly initialised, `--slot-init nearest`) and after `--steps`
steps of `groot-kit train`. Writes benchmarks/results/byod.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]  # this checkout; the fixture generators the tests use

BASE = REPO / "data_samples/checkpoints/tiny_base"
ARMS = "left_arm,right_arm,left_hand,right_hand"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--episodes", type=int, default=8)
    p.add_argument("--frames", type=int, default=64, help="frames per episode")
    p.add_argument("--variants", default="full,lora", help="comma list of full, lora")
    p.add_argument("--eval-episodes", type=int, default=4)
    p.add_argument("--out", default=str(REPO / "benchmarks/results/byod.json"))
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    import fixtures_datasets as F
    from groot_kit.data import open_dataset
    from groot_kit.data.convert import CACHE_ENV
    from groot_kit.data.data_config import DataConfig
    from groot_kit.model.policy import GrootPolicy
    from groot_kit.eval import evaluate_open_loop
    from groot_kit.train.run import NewRobot, build_datasets, main as train_main

    work = Path(tempfile.mkdtemp(prefix="byod_"))
    os.environ[CACHE_ENV] = str(work / "cache")
    warnings.simplefilter("ignore")
    try:
        src = F.gr1_v20(work / "gr1_pick_place", n_eps=args.episodes, T=args.frames)
        size = sum(f.stat().st_size for f in src.rglob("*") if f.is_file())
        t = time.perf_counter()
        info = open_dataset(src)
        convert_s = time.perf_counter() - t
        t = time.perf_counter()
        open_dataset(src)
        reopen_s = time.perf_counter() - t
        from groot_kit.data.export_v21 import export_gr00t_v21
        t = time.perf_counter()
        v21 = export_gr00t_v21(info.root, work / "gr1_pick_place_v21")
        export_s = time.perf_counter() - t
        t = time.perf_counter()
        back = open_dataset(v21)
        export_open_s = time.perf_counter() - t
        assert back.num_frames == info.num_frames
        dc = DataConfig.load("gr1_arms_only")
        eps = list(range(min(args.eval_episodes, args.episodes)))

        def mse(policy):
            r = evaluate_open_loop(policy, src, episodes=eps, max_episodes=None, seed=0)
            return {"mse": r["mse"], "mse_per_key": r["mse_per_key"], "frames": r["frames"]}

        base = GrootPolicy.from_pretrained(BASE)
        new = NewRobot(base, None, "nearest")
        build_datasets([str(src)], base, data_config=dc, new_robot=new)  # slot + processor, as train does
        before = mse(base)
        print(f"before: open-loop MSE {before['mse']:.4g} (slot {new.added['slot']})")
        runs = {}
        for v in [x for x in args.variants.split(",") if x]:
            out = work / f"run_{v}"
            t = time.perf_counter()
            train_main(["--dataset", str(src), "--init-from", str(BASE), "--state-keys", ARMS, "--action-keys", ARMS,
                        "--video-keys", "ego_view", "--language-key", "annotation.human.action.task_description",
                        "--max-steps", str(args.steps), "--batch-size", "16", "--learning-rate",
                        "1e-3" if v == "lora" else "3e-4", "--output-dir", str(out), "--progress", "false",
                        "--save-every", str(args.steps), "--log-every", str(max(1, args.steps // 10))]
                       + (["--lora"] if v == "lora" else []))
            train_s = time.perf_counter() - t
            after = mse(GrootPolicy.from_pretrained(out / "final"))
            losses = [json.loads(l)["loss"] for l in (out / "metrics.jsonl").read_text().splitlines() if '"loss"' in l]
            runs[v] = {"train_s": round(train_s, 1), "first_loss": losses[0] if losses else None,
                       "final_loss": losses[-1] if losses else None, "after": after,
                       "mse_ratio_after_before": after["mse"] / before["mse"]}
            print(f"{v}: open-loop MSE {before['mse']:.4g} -> {after['mse']:.4g} after {args.steps} steps "
                  f"({train_s:.0f} s)")
        res = {"dataset": {"layout": "GR00T LeRobot v2.0 (GR1-like fixture)", "episodes": args.episodes,
                           "frames": args.episodes * args.frames, "state_action_dims": 44, "selected_dims": 26,
                           "bytes": size},
               "conversion_s": round(convert_s, 2), "cached_reopen_s": round(reopen_s, 3),
               "export_gr00t_v21_s": round(export_s, 2), "export_first_open_s": round(export_open_s, 2),
               "converted_to": info.info["codebase_version"], "base": str(BASE.relative_to(REPO)),
               "slot": new.added["slot"], "steps": args.steps, "eval_episodes": eps, "before": before, "runs": runs,
               "threads": args.threads, "torch": torch.__version__}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
        print(f"conversion {convert_s:.2f} s (cached re-open {reopen_s:.3f} s), export to GR00T v2.1 "
              f"{export_s:.2f} s (first open {export_open_s:.2f} s); wrote {args.out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
