"""Latency benchmark: System 2 vs System 1 time, per Euler step, parameters and FLOPs per preset.

    python benchmarks/latency.py                        # tiny + small on CPU, 1 thread
    python benchmarks/latency.py --presets tiny --repeats 50 --threads 1
    python benchmarks/latency.py --profile               # also print a torch.profiler table for tiny

On a machine with CUDA the full-size presets (n1_2b, n1_5_3b) are timed too, in bf16 on the GPU.
Writes every number to --out (JSON) and prints PASS/FAIL lines for the `tiny` real-time goal:
System 1 chunk <= 8.3 ms (one 120 Hz tick) and System 2 <= 50 ms on one CPU thread.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from groot_kit import bench


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", default=None,
                   help="presets to time (default: tiny small, plus n1_2b n1_5_3b when CUDA is available)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--repeats", type=int, default=30, help="timed repeats per measurement (default 30)")
    p.add_argument("--warmup", type=int, default=5, help="untimed warm-up calls (default 5)")
    p.add_argument("--steps", type=int, default=4, help="Euler steps K per chunk (default 4)")
    p.add_argument("--batch-size", type=int, default=1, help="batch size (default 1)")
    p.add_argument("--out", default="benchmarks/results/latency.json", help="JSON output file")
    p.add_argument("--no-flops", action="store_true", help="skip FLOP counting")
    p.add_argument("--profile", action="store_true", help="print a torch.profiler table for tiny")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    load0 = bench.environment_info()["load_average_1min"]
    cuda = torch.cuda.is_available()
    presets = args.presets or (list(bench.PRESETS_CPU) + (list(bench.PRESETS_GPU) if cuda else []))
    results = []
    for name in presets:
        big = name in bench.PRESETS_GPU
        if big and not cuda:
            print(f"[skip] {name}: needs a GPU (build it on the meta device to count parameters)")
            continue
        device, dtype = ("cuda", torch.bfloat16) if big else ("cpu", None)
        t0 = time.perf_counter()
        policy = bench.build_policy(name, device=device, dtype=dtype)
        build_s = time.perf_counter() - t0
        r = bench.measure_latency(policy, num_steps=args.steps, repeats=args.repeats, warmup=args.warmup,
                                  batch_size=args.batch_size, count_flops=not args.no_flops)
        r["build_s"] = build_s
        results.append(r)
        print(f"[done] {name}: S2 {r['system2']['median_ms']:.2f} ms, S1 chunk {r['system1_chunk']['median_ms']:.2f} ms",
              flush=True)
        del policy
        if cuda:
            torch.cuda.empty_cache()

    print()
    print(bench.format_table(results))
    print()
    goals = []
    for r in results:
        if r["preset"] == "tiny" and r["device"] == "cpu":
            goals = bench.check_goals(r)
            for g in goals:
                verdict = "PASS" if g["passed"] else "FAIL"
                key = "system1_chunk" if g["name"].startswith("System 1") else "system2"
                print(f"{verdict}: tiny {g['name']} median {g['value_ms']:.2f} ms <= {g['budget_ms']:.1f} ms "
                      f"({r['threads']} CPU thread{'s' if r['threads'] != 1 else ''}; min {r[key]['min_ms']:.2f} ms)")
            ncpu = bench.environment_info()["cpu_count"] or 1
            if load0 is not None and load0 > 0.75 * ncpu:
                print(f"warning: load average was {load0:.1f} on {ncpu} CPUs when the run started: other processes "
                      "compete for the cores, so medians/p90 are inflated by preemption (min shows the "
                      "uncontended cost); rerun on an idle machine for reference numbers")
            if r["threads"] != 1:
                print("note: the goal is defined for ONE CPU thread (--threads 1)")
    if args.profile:
        print("\ntorch.profiler, tiny, 10 x predict_action_chunk (System 2 + System 1):")
        print(bench.profile_chunk(bench.build_policy("tiny"), num_steps=args.steps))

    payload = {"environment": bench.environment_info(), "args": vars(args),
               "budgets_ms": {"system1_chunk": bench.SYSTEM1_BUDGET_MS, "system2": bench.SYSTEM2_BUDGET_MS},
               "goals_tiny": goals, "results": results}
    out = bench.write_json(payload, args.out)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
