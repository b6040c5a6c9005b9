"""`groot-kit export` / `groot-kit bundle` subcommands.

groot_kit/cli.py wires them with `add_export_commands(sub)` (sets both `func` and `fn` defaults); also
runnable alone as
`python -m groot_kit.export {export,bundle} ...`.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_export_commands(sub) -> None:
    p = sub.add_parser("export", help="export a checkpoint to ONNX and check parity with onnxruntime")
    p.add_argument("checkpoint", help="checkpoint folder (save_pretrained) or a preset name (random weights)")
    p.add_argument("out_dir")
    p.add_argument("--modules", nargs="*", default=None, help="graphs to export (default: all)")
    p.add_argument("--opset", type=int, default=18)
    p.add_argument("--num-steps", type=int, default=None, help="Euler steps unrolled in system1/policy")
    p.add_argument("--embodiment-slot", type=int, default=None, help="bake one embodiment slot into System 1")
    p.add_argument("--exporter", choices=["dynamo", "torchscript"], default="dynamo")
    p.set_defaults(func=_cmd_export, fn=_cmd_export)
    b = sub.add_parser("bundle", help="write a Jetson AGX deployment bundle (ONNX + build_engines.sh + runtime.py)")
    b.add_argument("checkpoint")
    b.add_argument("out_dir")
    b.add_argument("--all-modules", action="store_true", help="also export every per-module graph")
    b.add_argument("--max-batch", type=int, default=8)
    b.add_argument("--fp32", action="store_true", help="build_engines.sh without --fp16")
    b.add_argument("--embodiment-slot", type=int, default=None)
    b.add_argument("--instruction", action="append", default=None, help="pre-tokenize this instruction (repeatable)")
    b.add_argument("--build-engines", action="store_true", help="also build TensorRT engines here (needs tensorrt)")
    b.set_defaults(func=_cmd_bundle, fn=_cmd_bundle)


def _policy(arg: str):
    from pathlib import Path
    from groot_kit.config import PRESETS
    if not Path(arg).exists() and arg in PRESETS:
        from groot_kit.model.policy import GrootPolicy
        return GrootPolicy(arg).eval()
    return arg


def _cmd_export(a) -> int:
    from groot_kit.export.onnx_export import export_policy
    rep = export_policy(_policy(a.checkpoint), a.out_dir, modules=a.modules, opset=a.opset, num_steps=a.num_steps,
                        embodiment_slot=a.embodiment_slot, exporter=a.exporter, progress=True)
    print(json.dumps({n: m["parity"]["max_abs_diff"] for n, m in rep["modules"].items()}, indent=1))
    print(f"wrote {a.out_dir}/parity.json; all within tolerance: {rep['all_ok']}")
    return 0 if rep["all_ok"] else 1


def _cmd_bundle(a) -> int:
    from groot_kit.export.jetson import DEFAULT_INSTRUCTIONS, RUNTIME_GRAPHS, export_jetson_bundle
    if a.build_engines:
        from groot_kit.export.tensorrt import tensorrt_available
        ok, why = tensorrt_available()
        if not ok:
            print(f"bundle --build-engines: {why}. Drop --build-engines and run build_engines.sh on the Jetson.",
                  file=sys.stderr)
            return 2
    rep = export_jetson_bundle(_policy(a.checkpoint), a.out_dir, modules="all" if a.all_modules else RUNTIME_GRAPHS,
                               max_batch=a.max_batch, fp16=not a.fp32, embodiment_slot=a.embodiment_slot,
                               instructions=a.instruction or DEFAULT_INSTRUCTIONS, build_engines=a.build_engines)
    print(json.dumps({k: rep[k] for k in ("path", "files", "all_ok", "tokenizer", "engines")}, indent=1))
    return 0 if rep["all_ok"] else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m groot_kit.export")
    add_export_commands(ap.add_subparsers(dest="command", required=True))
    a = ap.parse_args(argv)
    return a.func(a)


if __name__ == "__main__":
    sys.exit(main())
