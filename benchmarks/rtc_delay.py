"""Closed-loop success under inference delay: does real-time chunking keep it?

    python benchmarks/rtc_delay.py                       # tiny_base, so100 + panda7, reach, 1 cube, 50 scenes
    python benchmarks/rtc_delay.py --delays-ms 0,100,200 --episodes 50 --task pick_place

Every chunk arrives `delay` after the observation it was sampled from (simulated time: the
prefetch schedule of the dual-rate runtime, see groot_kit.eval.controller), so the figures do not
depend on this machine's speed. Rows: "replan" (the new chunk simply takes over; its first d
actions are for steps already past) and "rtc" (the actions executed during the delay are inpainted
into the new chunk). Same scenes for every row (scene seeds from --seed, reported range 300000+).
Writes benchmarks/results/rtc_delay.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from groot_kit.eval import evaluate_closed_loop
from groot_kit.paths import REPO_ROOT, TINY_BASE, resolve_repo_path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=TINY_BASE)
    p.add_argument("--embodiments", default="so100,panda7", help="comma-separated")
    p.add_argument("--task", default="reach")
    p.add_argument("--num-cubes", type=int, default=1)
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--seed", type=int, default=310_000)
    p.add_argument("--replan-every", type=int, default=8)
    p.add_argument("--delays-ms", default="0,100,200", help="comma-separated inference delays")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(REPO_ROOT / "benchmarks" / "results" / "rtc_delay.json"))
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    from groot_kit.model.policy import GrootPolicy
    policy = GrootPolicy.from_pretrained(resolve_repo_path(a.checkpoint))
    out = {"command": "python benchmarks/rtc_delay.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "checkpoint": a.checkpoint, "task": a.task, "num_cubes": a.num_cubes, "seed": a.seed,
           "replan_every": a.replan_every,
           "machine": {"platform": platform.platform(), "torch_threads": a.threads}, "rows": []}
    t0 = time.perf_counter()
    for name in a.embodiments.split(","):
        from groot_kit.embodiment import load_embodiment
        hz = load_embodiment(name).control_hz
        for ms in (float(x) for x in a.delays_ms.split(",")):
            d = int(round(ms / 1000 * hz))
            for mode in (("replan",) if d == 0 else ("replan", "rtc")):
                r = evaluate_closed_loop(policy, name, a.task, a.episodes, seed=a.seed, mode=mode,
                                         replan_every=a.replan_every, num_cubes=a.num_cubes, delay_ticks=d)
                row = {"embodiment": name, "delay_ms": ms, "delay_ticks": d, "control_hz": hz, "mode": mode,
                       "successes": r["successes"], "n": r["n_episodes"], "success_rate": r["success_rate"],
                       "ci95": [round(x, 3) for x in r["ci95"]], "seconds": r["seconds"]}
                out["rows"].append(row)
                print(json.dumps(row), flush=True)
    out["total_seconds"] = round(time.perf_counter() - t0, 1)
    base = {(r["embodiment"]): r["success_rate"] for r in out["rows"] if r["delay_ticks"] == 0}
    out["markdown"] = "\n".join(["| robot | delay | mode | success (n) | 95% CI | vs no delay |", "|---|---|---|---|---|---|"]
                                + [f"| {r['embodiment']} | {r['delay_ms']:.0f} ms ({r['delay_ticks']} steps) | {r['mode']} | "
                                   f"{r['successes']}/{r['n']} | {r['ci95'][0]:.2f}-{r['ci95'][1]:.2f} | "
                                   f"{100 * (r['success_rate'] - base[r['embodiment']]):+.0f} pts |" for r in out["rows"]])
    print(out["markdown"])
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
