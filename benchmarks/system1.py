"""System 1 alone: the reference path (everything recomputed in each Euler step, as NVIDIA's code
does) against the planned path (what the K steps share computed once per chunk), in one run.

    python benchmarks/system1.py                                   # tiny small n1_5_3b, L 64/300/600, 1 and 2 threads
    python benchmarks/system1.py --presets tiny --vl-lens 64 --threads 1 --repeats 5
    python benchmarks/system1.py --flops-only --presets tiny small n1_2b n1_5_3b  # add FLOP counts to --out

On a shared CPU set OMP_WAIT_POLICY=PASSIVE, or 2-thread rows measure OpenMP spin-waiting.

For each preset's action head (random weights, fp32, batch 1), VL length L and thread count it
times the paths call by call in turn (`bench.time_interleaved`) so that load from other processes
hits them alike (the chunk paths come from `bench.measure_chunk_paths`, which notebook 02 also uses):
    chunk_ms   `head.sample(...)`, K Euler steps -> one chunk (VL tokens already from System 2;
               N1.5's vlln + VL self-attention run once per chunk in both paths)
    chunk_vl_reused_ms  the planned path given a `head.prepare_vl(...)` context made earlier, as a
               runtime whose System 2 runs slower than System 1 can do (ratio vs the reference chunk)
    train_ms   one training step of the head (`bench.measure_train_paths`): forward, backward and the
               AdamW step; the reference pairs the reference path with torch's default AdamW (what
               NVIDIA's `optim="adamw_torch"` builds), the optimised side the planned path with the
               kit's fused AdamW (`train.optim`). fwd_bwd_* and adamw_* split each step's time.
and reports medians and the ratio reference / planned (> 1: the planned path is faster), by wall
clock and by process CPU time (`*_cpu_ratio`, robust to other processes on the same cores). The
paths' outputs are checked to agree (max abs difference stored). Writes --out (JSON) with the
command line and the machine's load average, because a shared CPU moves absolute times.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from groot_kit import bench  # noqa: E402
from groot_kit.config import get_preset  # noqa: E402
from groot_kit.model.action_head import FlowMatchingActionHead  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", default=["tiny", "small", "n1_5_3b"])
    p.add_argument("--vl-lens", nargs="+", type=int, default=[64, 300, 600], help="VL token counts L")
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="torch.set_num_threads values")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per path (median reported)")
    p.add_argument("--repeats-large", type=int, default=3,
                   help="timed calls per path for heads over 200M parameters (seconds per call on a CPU)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls per path")
    p.add_argument("--steps", type=int, default=4, help="Euler steps K per chunk")
    p.add_argument("--no-train", action="store_true", help="time sampling only")
    p.add_argument("--out", default="benchmarks/results/system1.json")
    p.add_argument("--flops-only", action="store_true",
                   help="only (re)write the 'flops' section of --out (meta device, seconds), keep its rows")
    return p.parse_args(argv)


def measure_row(head: FlowMatchingActionHead, L: int, args, repeats: int) -> dict:
    """bench.measure_chunk_paths (chunk: reference, planned, VL context reused) + bench.measure_train_paths."""
    row = bench.measure_chunk_paths(head, L, num_steps=args.steps, repeats=repeats, warmup=args.warmup)
    if not args.no_train:
        row.update(bench.measure_train_paths(head, L, repeats=repeats, warmup=args.warmup))
    row["load_average_1min"] = bench.environment_info()["load_average_1min"]
    return row


def chunk_flops(presets, vl_lens, steps: int) -> list[dict]:
    """FLOPs of one chunk by path, counted on the meta device (no weights, no timing)."""
    from torch.utils.flop_counter import FlopCounterMode
    rows = []
    for preset in presets:
        with torch.device("meta"):
            head = FlowMatchingActionHead(get_preset(preset).action_head).eval()
            for L in vl_lens:
                x = inputs_meta(head, L)
                n = {}
                for name, fn in (("ref", lambda: head.sample(*x[:3], num_steps=steps, noise=x[3], exact_reference=True)),
                                 ("opt", lambda: head.sample(*x[:3], num_steps=steps, noise=x[3])),
                                 ("vl_self_attention", lambda: head.process_vl(x[0]))):
                    with torch.no_grad(), FlopCounterMode(display=False) as fc:
                        fn()
                    n[name] = fc.get_total_flops()
                rows.append({"preset": preset, "L": L, "chunk_ref_gflop": n["ref"] / 1e9,
                             "chunk_opt_gflop": n["opt"] / 1e9, "flop_ratio": n["ref"] / n["opt"],
                             "vl_self_attention_gflop": n["vl_self_attention"] / 1e9})
    return rows


def inputs_meta(head, L: int):
    cfg = head.cfg
    return (torch.empty(1, L, cfg.cross_attention_dim), torch.empty(1, cfg.max_state_dim),
            torch.zeros(1, dtype=torch.long), torch.empty(1, cfg.action_horizon, cfg.max_action_dim))


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.flops_only:
        import json
        out = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else {"rows": []}
        out["flops"] = chunk_flops(args.presets, args.vl_lens, args.steps)
        for r in out["flops"]:
            print(f"{r['preset']:<8} L={r['L']:>4} ref {r['chunk_ref_gflop']:7.1f} GFLOP  planned "
                  f"{r['chunk_opt_gflop']:7.1f}  ratio {r['flop_ratio']:.2f}  (VL self-attention {r['vl_self_attention_gflop']:.1f})")
        bench.write_json(out, args.out)
        return 0
    out = {"command": " ".join(["python", "benchmarks/system1.py"] + (argv if argv is not None else sys.argv[1:])),
           "environment": {**bench.environment_info(), "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY")},
           "num_steps": args.steps, "batch_size": 1,
           "dtype": "float32", "rows": []}
    print(f"{'preset':<8} {'thr':>3} {'L':>4} {'chunk ref':>10} {'chunk opt':>10} {'ratio':>6} {'cpu':>5} {'vl reused':>10} "
          f"{'train ref':>10} {'train opt':>10} {'ratio':>6} {'cpu':>5} {'fwd+bwd':>7} {'adamw ms':>15}"
          "  (wall ms, medians; cpu: CPU-time ratio; fwd+bwd: its ratio alone; adamw: ref/opt)")
    for preset in args.presets:
        torch.manual_seed(0)
        head = FlowMatchingActionHead(get_preset(preset).action_head).eval()
        n_params = sum(p.numel() for p in head.parameters())
        repeats = args.repeats_large if n_params > 200e6 else args.repeats
        for threads in args.threads:
            torch.set_num_threads(threads)
            for L in args.vl_lens:
                row = {"preset": preset, "threads": threads, "head_parameters": n_params, "repeats": repeats,
                       **measure_row(head, L, args, repeats)}
                out["rows"].append(row)
                tr = (f"{row['train_ref_ms']:>10.1f} {row['train_opt_ms']:>10.1f} {row['train_ratio']:>6.2f} "
                      f"{row['train_cpu_ratio']:>5.2f} {row['fwd_bwd_ratio']:>7.2f} "
                      f"{row['adamw_ref_ms']:>7.1f}/{row['adamw_opt_ms']:<7.1f}" if "train_ratio" in row else "")
                print(f"{preset:<8} {threads:>3} {L:>4} {row['chunk_ref_ms']:>10.1f} {row['chunk_opt_ms']:>10.1f} "
                      f"{row['chunk_ratio']:>6.2f} {row['chunk_cpu_ratio']:>5.2f} {row['chunk_vl_reused_ms']:>10.1f} {tr}", flush=True)
                bench.write_json(out, args.out)  # partial results survive an interrupted run
        del head
        gc.collect()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
