"""Deployment latency: eager PyTorch vs onnxruntime, per module and per action chunk.

    .venv/bin/python benchmarks/deploy.py [--preset tiny] [--threads 1 2] [--batch 1] [--out FILE]

Exports every graph of a random-weight policy (and System 1 / policy with embodiment slot 0 baked
in), times them under onnxruntime and eager PyTorch with 1 and 2 intra-op threads, prints a table
and writes JSON (default benchmarks/results/deploy_<preset>.json).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from groot_kit.export import benchmark_deploy, export_policy, format_table
from groot_kit.export.benchmark import save_json
from groot_kit.model.policy import GrootPolicy


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--opt-level", default="all", choices=["disable", "basic", "extended", "all"])
    ap.add_argument("--onnx-dir", default=None, help="reuse graphs exported here (else a temp folder)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    torch.manual_seed(0)
    policy = GrootPolicy(a.preset).eval()
    with tempfile.TemporaryDirectory() as tmp:
        onnx_dir = Path(a.onnx_dir or Path(tmp) / "onnx")
        if not (onnx_dir / "parity.json").exists():
            export_policy(policy, onnx_dir, progress=True)
        baked = Path(tmp) / "baked"
        export_policy(policy, baked, modules=["system1", "policy"], embodiment_slot=0, progress=True)
        res = benchmark_deploy(policy, onnx_dir, threads=a.threads, batch_size=a.batch, repeats=a.repeats,
                               opt_level=a.opt_level, baked_dir=baked, embodiment_slot=0)
    print(format_table(res))
    out = Path(a.out or Path(__file__).parent / "results" / f"deploy_{a.preset}.json")
    save_json(res, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
