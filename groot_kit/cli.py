"""`groot-kit` command line: the same functions the notebooks call.

    groot-kit info [--preset tiny]              parameter counts per part for the presets
    groot-kit predict --checkpoint DIR          one action chunk from a checkpoint on a dummy observation
    groot-kit convert SRC DST [--to nvidia]     groot_kit <-> NVIDIA GR00T checkpoint layout
    groot-kit train --dataset DIR ...           train (or continue training) on LeRobot datasets
    groot-kit export CKPT OUT                   every module + the full policy to ONNX, parity via onnxruntime
    groot-kit bundle CKPT OUT                   Jetson AGX bundle: ONNX, build_engines.sh, numpy-only runtime
    groot-kit finetune --num-joints 5 ...       LoRA + a fresh embodiment slot on a custom arm
    groot-kit eval --checkpoint DIR ...         open-loop MSE (every 16 steps) / closed-loop success with videos
    groot-kit serve [--checkpoint DIR]          ZeroMQ policy server on 127.0.0.1 (GR00T protocol)
    groot-kit runtime-demo                      dual-rate runtime in MuJoCo, paced in real time
    groot-kit dataset inspect|validate|convert|plot PATH   look at a GR00T / LeRobot dataset before training
    groot-kit tour                              run every notebook headless (fast mode)
"""

from __future__ import annotations

import argparse
import json
import sys


def _cmd_info(args) -> int:
    import torch
    from groot_kit.config import PRESETS
    from groot_kit.model.policy import GrootPolicy
    names = [args.preset] if args.preset else list(PRESETS)
    rows = {}
    for name in names:
        with torch.device("meta"):
            rows[name] = GrootPolicy(name).num_parameters()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'preset':<10} {'System 2 (VLM)':>15} {'System 1 (head)':>16} {'total':>14}")
    for name, n in rows.items():
        print(f"{name:<10} {n['system2_vlm'] / 1e6:>13.1f}M {n['system1_action_head'] / 1e6:>14.1f}M {n['total'] / 1e6:>12.1f}M")
    return 0


def _cmd_predict(args) -> int:
    import torch
    from groot_kit.model.policy import GrootPolicy, dummy_batch
    policy = GrootPolicy.from_pretrained(args.checkpoint) if args.checkpoint else GrootPolicy(args.preset or "tiny")
    batch = dummy_batch(policy, 1, embodiment_id=args.embodiment_id)
    if args.instruction:
        batch["instruction"] = [args.instruction]
    torch.manual_seed(args.seed)
    chunk = policy.predict_action_chunk(batch)
    print(json.dumps({"shape": list(chunk.shape), "first_action": [round(x, 4) for x in chunk[0, 0].tolist()]}))
    return 0


def _cmd_convert(args) -> int:
    from groot_kit.model.gr00t_checkpoint import save_gr00t_checkpoint
    from groot_kit.model.policy import GrootPolicy
    policy = GrootPolicy.from_pretrained(args.src)
    if args.to == "nvidia":
        save_gr00t_checkpoint(policy, args.dst)
    else:
        policy.save_pretrained(args.dst)
    print(f"wrote {args.dst} ({args.to} layout)")
    return 0


def _cmd_tour(args) -> int:
    from groot_kit.notebooks import tour
    return 1 if tour(fast=not args.full) else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="groot-kit", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("info", help="parameter counts of the presets")
    s.add_argument("--preset")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=_cmd_info)
    s = sub.add_parser("predict", help="predict one action chunk (dummy observation)")
    s.add_argument("--checkpoint")
    s.add_argument("--preset")
    s.add_argument("--instruction")
    s.add_argument("--embodiment-id", type=int, default=0)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(fn=_cmd_predict)
    s = sub.add_parser("convert", help="convert a checkpoint between groot_kit and NVIDIA layouts")
    s.add_argument("src")
    s.add_argument("dst")
    s.add_argument("--to", choices=["nvidia", "groot_kit"], default="nvidia")
    s.set_defaults(fn=_cmd_convert)
    from groot_kit.train.run import add_train_arguments, train_from_args
    s = sub.add_parser("train", help="train a policy on LeRobot datasets (resumable)")
    add_train_arguments(s)
    s.set_defaults(fn=lambda a: (train_from_args(a), 0)[1])
    from groot_kit.recipes.finetune import add_arguments as add_finetune_arguments, run_from_args as run_finetune
    s = sub.add_parser("finetune", help="new arm: spec -> MJCF -> demos -> fresh slot + peft LoRA -> adapters/merged")
    add_finetune_arguments(s)
    s.set_defaults(fn=lambda a: (run_finetune(a), 0)[1])
    from groot_kit.eval.cli import add_eval_arguments, run_eval
    s = sub.add_parser("eval", help="open-loop action MSE on datasets / closed-loop success in MuJoCo")
    add_eval_arguments(s)
    s.set_defaults(fn=lambda a: (run_eval(a), 0)[1])
    from groot_kit.runtime.cli_hooks import (add_runtime_demo_arguments, add_serve_arguments, run_runtime_demo,
                                             run_serve)
    s = sub.add_parser("serve", help="serve a policy over ZeroMQ (GR00T inference-service protocol)")
    add_serve_arguments(s)
    s.set_defaults(fn=run_serve)
    s = sub.add_parser("runtime-demo", help="dual-rate System 2 / System 1 runtime in MuJoCo")
    add_runtime_demo_arguments(s)
    s.set_defaults(fn=run_runtime_demo)
    from groot_kit.export.cli import add_export_commands
    add_export_commands(sub)  # `export` (ONNX + parity) and `bundle` (Jetson AGX)
    from groot_kit.data.inspect import add_dataset_commands
    add_dataset_commands(sub)  # `dataset inspect|validate|convert|plot`
    s = sub.add_parser("tour", help="run every notebook headless")
    s.add_argument("--full", action="store_true", help="full mode instead of fast mode")
    s.set_defaults(fn=_cmd_tour)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (ValueError, FileNotFoundError) as e:  # our errors carry the fix in their message
        print(f"groot-kit {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
