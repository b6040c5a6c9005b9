"""Tiny pretraining recipe in one command: data pyramid -> base checkpoint -> closed-loop eval.

    python scripts/pretrain_tiny.py                 # full recipe (~35-45 min on a 2-core CPU)
    python scripts/pretrain_tiny.py --fast          # smoke run (~1-2 min), writes nothing shared
    python scripts/pretrain_tiny.py --train-minutes 40 --eval-episodes 50

Writes data_samples/checkpoints/tiny_base/ and benchmarks/results/pretrain_tiny.json.
"""
from __future__ import annotations

import argparse
import sys
import time



def main(argv=None) -> int:
    from groot_kit.train.pretrain import PretrainConfig, pretrain_tiny
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fast", action="store_true", help="tiny smoke run (no checkpoint/results written)")
    p.add_argument("--output-dir", default=None)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--train-minutes", type=float, default=None)
    p.add_argument("--eval-episodes", type=int, default=None)
    p.add_argument("--expert-episodes", type=int, default=None)
    p.add_argument("--task", default=None)
    p.add_argument("--num-cubes", type=int, default=None)
    p.add_argument("--embodiments", default=None, help="comma-separated, e.g. so100,panda7")
    p.add_argument("--init-from", default=None, help="warm start from this checkpoint")
    p.add_argument("--learning-rate", type=float, default=None)
    p.add_argument("--hold-seconds", type=float, default=None, help="expert holds the goal this long after success")
    p.add_argument("--teleop-episodes", type=int, default=None)
    p.add_argument("--start-noise", type=float, default=None, help="joint noise (rad) on the demos' start pose")
    p.add_argument("--image-shift", type=int, default=None, help="train-time random image shift (px), 0 = off")
    p.add_argument("--color-jitter", type=float, default=None, help="train-time brightness/contrast jitter, 0 = off")
    p.add_argument("--recovery-episodes", type=int, default=None,
                   help="DAgger-style hand-over demos per embodiment from the --init-from policy")
    p.add_argument("--recovery-embodiments", default=None,
                   help="comma-separated robots that get new hand-over demos (default: all)")
    p.add_argument("--aggregate-recovery", action="append", default=[], metavar="RUN_DIR",
                   help="an earlier run's --output-dir whose recovery demos join the mixture (repeatable)")
    p.add_argument("--embodiment-weight", action="append", default=[], metavar="NAME=W",
                   help="batch-share multiplier for one embodiment, e.g. gr1_upper=2 (repeatable)")
    p.add_argument("--checkpoint-dir", default=None, help="where the base checkpoint goes (default data_samples/...)")
    p.add_argument("--results-file", default=None, help="results JSON (default benchmarks/results/pretrain_tiny.json)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a busy 2-core machine)")
    a = p.parse_args(argv)
    import torch
    torch.set_num_threads(a.threads)
    cfg = PretrainConfig.fast() if a.fast else PretrainConfig()
    kw = {k: v for k, v in dict(output_dir=a.output_dir, max_steps=a.max_steps, train_minutes=a.train_minutes,
                                eval_episodes=a.eval_episodes, expert_episodes=a.expert_episodes, task=a.task,
                                num_cubes=a.num_cubes, init_from=a.init_from,
                                learning_rate=a.learning_rate, hold_seconds=a.hold_seconds,
                                teleop_episodes=a.teleop_episodes, start_noise=a.start_noise,
                                checkpoint_dir=a.checkpoint_dir, image_shift=a.image_shift,
                                color_jitter=a.color_jitter, results_file=a.results_file,
                                recovery_episodes=a.recovery_episodes).items() if v is not None}
    if a.embodiment_weight:
        try:
            kw["embodiment_weights"] = {n: float(w) for n, w in (x.split("=", 1) for x in a.embodiment_weight)}
        except ValueError:
            p.error(f"--embodiment-weight {a.embodiment_weight}: write NAME=W, e.g. gr1_upper=2")
    if a.recovery_embodiments:
        kw["recovery_embodiments"] = tuple(a.recovery_embodiments.split(","))
    if a.aggregate_recovery:
        kw["aggregate_recovery_from"] = tuple(a.aggregate_recovery)
    if a.embodiments:
        kw["embodiments"] = tuple(a.embodiments.split(","))
    if a.fast and "output_dir" not in kw:
        kw["output_dir"] = "outputs/pretrain_tiny_fast"
    t0 = time.perf_counter()
    kw["command"] = "python " + " ".join(sys.argv)
    res = pretrain_tiny(cfg, **kw)
    print(f"total time: {(time.perf_counter() - t0) / 60:.1f} min")
    for emb, r in res["closed_loop"].items():
        print(f"  {emb}: success {r['successes']}/{r['n_episodes']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
