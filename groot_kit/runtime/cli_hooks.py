"""Hooks for `groot-kit serve` and `groot-kit runtime-demo` (groot_kit/cli.py wires them in).

    from groot_kit.runtime.cli_hooks import add_serve_arguments, run_serve
    p = sub.add_parser("serve", help="serve a policy over ZeroMQ (GR00T inference-service protocol)")
    add_serve_arguments(p); p.set_defaults(func=run_serve)

Also runnable alone: `python -m groot_kit.runtime.cli_hooks --port 5555 [--checkpoint DIR]`.
"""
from __future__ import annotations

import argparse
import json


def add_serve_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--checkpoint", default=None, help="folder from GrootPolicy.save_pretrained (default: random tiny policy)")
    p.add_argument("--processor", default=None, help="processor JSON (GrootProcessor.to_dict()); default <checkpoint>/processor.json")
    p.add_argument("--embodiment", default=None, help="which of the checkpoint's embodiments to serve")
    p.add_argument("--preset", default="tiny", help="preset when no checkpoint is given")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default loopback only)")
    p.add_argument("--port", type=int, default=5555)
    p.add_argument("--api-token", default=None, help="shared token required on every request (default $GROOT_KIT_API_TOKEN)")
    p.add_argument("--max-message-mb", type=float, default=64.0, help="request size limit in MiB")
    p.add_argument("--num-steps", type=int, default=None, help="Euler steps K (default: config)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--allow-kill", action="store_true", help="enable the 'kill' endpoint (off by default)")
    return p


def run_serve(args: argparse.Namespace) -> int:
    if getattr(args, "threads", None):
        import torch
        torch.set_num_threads(args.threads)
    from .server import serve
    serve(args.checkpoint, processor=args.processor, embodiment=args.embodiment, preset=args.preset, host=args.host, port=args.port,
          api_token=args.api_token, max_message_mb=args.max_message_mb, num_steps=args.num_steps,
          device=args.device, allow_kill=args.allow_kill, block=True)
    return 0


def add_runtime_demo_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--embodiment", default="gr1_upper")
    p.add_argument("--task", default="pick_place")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--mode", default="ensemble", choices=["whole", "replan", "ensemble", "rtc"],
                   help="chunk execution: whole, replan, ensemble (temporal ensembling) or rtc (real-time chunking)")
    p.add_argument("--replan-every", type=int, default=4)
    p.add_argument("--system2-hz", type=float, default=10.0)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--out", default=None, help="write the stats JSON here")
    return p


def run_runtime_demo(args: argparse.Namespace) -> int:
    from .demo import run_mujoco_demo
    stats = run_mujoco_demo(embodiment=args.embodiment, task=args.task, seconds=args.seconds, mode=args.mode,
                            replan_every=args.replan_every, system2_hz=args.system2_hz, checkpoint=args.checkpoint)
    text = json.dumps(stats, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


def main(argv=None) -> int:
    p = add_serve_arguments(argparse.ArgumentParser(prog="groot-kit serve"))
    return run_serve(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
