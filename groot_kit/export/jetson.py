"""Jetson AGX bundle: ONNX graphs + trtexec build script + config + stats + tokenizer + runtime.py.

    bundle/
      onnx/policy.onnx, onnx/system2.onnx, onnx/system1.onnx   (+ per-module graphs with modules="all")
      build_engines.sh        trtexec commands (fp16, min/opt/max batch profiles) -> engines/*.plan
      config.json             model config, prompt layout, graph inputs/outputs, shape profiles
      normalization.json      policy.normalization (per-embodiment stats; runtime.unnormalize uses them)
      tokenizer/              tokenizer files (tokenizer.json is read by the `tokenizers` package)
      prompts.json            instructions tokenized at bundle time (fallback when `tokenizers` is absent)
      runtime.py              standalone runner: numpy + onnxruntime, or numpy + tensorrt (+ cuda-python)
      parity.json             onnxruntime vs PyTorch max |diff| per graph (batch 1 and 3)
      README.md

Tokenization decision: the runtime tokenizes with the `tokenizers` package (Rust, ~3 MB wheel, on
JetPack via pip) reading `tokenizer/tokenizer.json`, which gives exactly the training ids. If that
package is missing, it looks the instruction up in `prompts.json` (precomputed input_ids for the
instructions given at export time) and fails with a clear message otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any, Iterable

from groot_kit.export.bundle_runtime import BUNDLE_FORMAT
from groot_kit.export.onnx_export import DEFAULT_OPSET, _load_policy, export_policy
from groot_kit.export.tensorrt import default_shape_profiles, trtexec_shapes
from groot_kit.fileio import atomic_directory

RUNTIME_GRAPHS = ("policy", "system2", "system1")
DEFAULT_INSTRUCTIONS = ("pick up the red cube and place it in the yellow bin", "do nothing")


def _build_script(profiles: dict[str, dict], fp16: bool) -> str:
    lines = [
        "#!/usr/bin/env bash",
        "# Build TensorRT engines for this bundle ON THE TARGET DEVICE (e.g. Jetson AGX Orin, JetPack 6,",
        "# TensorRT 10). Engines are tied to the GPU and TensorRT version that built them.",
        "#   ./build_engines.sh                 fp16 engines (default)",
        "#   PRECISION= ./build_engines.sh      fp32 engines",
        "#   ONLY=\"policy system1\" ./build_engines.sh",
        "set -euo pipefail",
        'cd "$(dirname "$0")"',
        'TRTEXEC="${TRTEXEC:-$(command -v trtexec || echo /usr/src/tensorrt/bin/trtexec)}"',
        f'PRECISION="${{PRECISION---fp16}}"' if fp16 else 'PRECISION="${PRECISION-}"',
        'WORKSPACE_MIB="${WORKSPACE_MIB:-4096}"',
        'ONLY="${ONLY:-' + " ".join(profiles) + '}"',
        "mkdir -p engines",
        "build() {  # name, then shape flags",
        '  local name="$1"; shift',
        '  case " $ONLY " in *" $name "*) ;; *) return 0;; esac',
        '  echo "[build_engines] $name"',
        '  "$TRTEXEC" --onnx="onnx/$name.onnx" --saveEngine="engines/$name.plan" $PRECISION \\',
        '    --memPoolSize=workspace:"$WORKSPACE_MIB" "$@" | tee "engines/$name.log" | grep -E "GPU Compute Time|PASSED|FAILED|Error" || true',
        "}",
    ]
    for name, prof in profiles.items():
        lines.append(f"build {name} {trtexec_shapes(prof)}")
    lines.append('echo "[build_engines] done: $(ls engines/*.plan 2>/dev/null | wc -l) engine(s) in engines/"')
    return "\n".join(lines) + "\n"


def _readme(cfg, profiles, max_batch) -> str:
    return f"""# GR00T policy bundle ({cfg.preset}, {cfg.variant})

1. On the Jetson: `./build_engines.sh` (needs `trtexec`, part of TensorRT 10 / JetPack 6). Batch
   profiles: min 1, opt 1, max {max_batch}.
2. Run: `python3 runtime.py --backend tensorrt` (numpy + tensorrt + cuda-python), or
   `python3 runtime.py --backend onnxruntime` (numpy + onnxruntime, no engines needed).
3. From Python: `from runtime import GrootRuntime; rt = GrootRuntime(".", backend="auto")`,
   `rt.predict_action_chunk(pixel_values, state, embodiment_id, ["pick up the cube"])`.

Graphs: {', '.join(profiles)}. `policy` = System 2 + {cfg.action_head.num_inference_timesteps} unrolled Euler
steps; `system2` / `system1` split it for dual-rate control. Outputs are normalised actions
[B, {cfg.action_head.action_horizon}, {cfg.action_head.max_action_dim}]; `normalization.json` holds the stats.
Tokenization uses the `tokenizers` package when installed, else `prompts.json`.
"""


def _reuse(onnx_dir, names, opset, slot, dest: Path) -> dict | None:
    """Copy already exported graphs (and a parity.json restricted to them) if they match; else None."""
    src = Path(onnx_dir)
    try:
        rep = json.loads((src / "parity.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if rep.get("opset") != opset or rep.get("embodiment_slot") != slot or any(n not in rep["modules"] for n in names):
        return None
    dest.mkdir(parents=True, exist_ok=True)
    for n in names:
        for f in src.glob(f"{n}.onnx*"):
            shutil.copyfile(f, dest / f.name)
    rep["modules"] = {n: rep["modules"][n] for n in names}
    rep["all_ok"] = all(m["parity"]["ok"] for m in rep["modules"].values())
    (dest / "parity.json").write_text(json.dumps(rep, indent=2))
    return rep


def export_jetson_bundle(policy_or_checkpoint_dir, out_dir: str | os.PathLike, modules: Iterable[str] | str = RUNTIME_GRAPHS,
                         max_batch: int = 8, opt_batch: int = 1, fp16: bool = True, opset: int = DEFAULT_OPSET,
                         embodiment_slot: int | None = None, instructions: Iterable[str] = DEFAULT_INSTRUCTIONS,
                         build_engines: bool = False, parity_batches: Iterable[int] = (1, 3),
                         onnx_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Write a self-contained deployment bundle to `out_dir` (atomically: temp folder, then rename).

    modules: graphs to export; the runtime needs "policy", "system2", "system1"; "all" adds every
    per-module graph (for per-module trtexec timings). build_engines=True also builds the engines
    here with the TensorRT Python API (only where tensorrt imports).
    -> {"path", "files", "parity", "tokenizer", "engines"}
    """
    policy = _load_policy(policy_or_checkpoint_dir).eval()
    cfg = policy.config
    if modules == "all":
        from groot_kit.export.onnx_export import graph_specs
        names = list(graph_specs(policy))
    else:
        names = list(dict.fromkeys(list(RUNTIME_GRAPHS) + list(modules)))
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with atomic_directory(out_dir) as tmp:
        report = _reuse(onnx_dir, names, opset, embodiment_slot, tmp / "onnx") if onnx_dir else None
        if report is None:
            report = export_policy(policy, tmp / "onnx", modules=names, opset=opset, embodiment_slot=embodiment_slot,
                                   parity_batches=parity_batches)
        shutil.move(str(tmp / "onnx" / "parity.json"), tmp / "parity.json")
        profiles = {n: default_shape_profiles(tmp / "onnx" / f"{n}.onnx", 1, opt_batch, max_batch) for n in names}
        script = tmp / "build_engines.sh"
        script.write_text(_build_script(profiles, fp16))
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        shutil.copyfile(Path(__file__).with_name("bundle_runtime.py"), tmp / "runtime.py")
        policy.tokenizer.save_pretrained(str(tmp / "tokenizer"))
        tok_json = (tmp / "tokenizer" / "tokenizer.json").exists()
        prompts = {t: policy.tokenizer(t, add_special_tokens=False).input_ids for t in instructions}
        (tmp / "prompts.json").write_text(json.dumps(prompts, indent=1))
        (tmp / "normalization.json").write_text(json.dumps(policy.normalization, indent=2))
        n_img = cfg.vlm.num_views * cfg.vlm.image_tokens_per_view
        tok = policy.tokenizer

        def graph_entry(n):
            m = report["modules"][n]
            return {"onnx": f"onnx/{n}.onnx", "engine": f"engines/{n}.plan", "inputs": m["inputs"],
                    "output": m["output"], "shape_profile": {k: [list(s) for s in v] for k, v in profiles[n].items()}}

        bundle_cfg = {
            "format": BUNDLE_FORMAT, "model": cfg.to_dict(), "num_steps": report["num_steps"], "opset": opset,
            "embodiment_slot": embodiment_slot, "max_batch": max_batch, "precision": "fp16" if fp16 else "fp32",
            "prompt": {"bos_id": tok.bos_token_id, "eos_id": tok.eos_token_id, "pad_id": tok.pad_token_id,
                       "image_token_id": int(policy.image_token_id), "num_image_tokens": n_img,
                       "max_text_tokens": cfg.vlm.max_text_tokens, "seq_len": 2 + n_img + cfg.vlm.max_text_tokens,
                       "order": cfg.vlm.prompt_order},
            "pixel_values": "float32 [B, V, 3, S, S] in [0, 1] (SigLIP normalisation is inside the graph)",
            "graphs": {n: graph_entry(n) for n in RUNTIME_GRAPHS},
            "module_graphs": {n: graph_entry(n) for n in names if n not in RUNTIME_GRAPHS},
            "tokenizer": "tokenizer/tokenizer.json via the `tokenizers` package; fallback prompts.json",
        }
        (tmp / "config.json").write_text(json.dumps(bundle_cfg, indent=2))
        (tmp / "README.md").write_text(_readme(cfg, profiles, max_batch))
        engines = {}
        if build_engines:
            from groot_kit.export.tensorrt import build_engine
            for n in RUNTIME_GRAPHS:
                engines[n] = str(build_engine(tmp / "onnx" / f"{n}.onnx", tmp / "engines" / f"{n}.plan", fp16=fp16,
                                              shape_profiles=profiles[n]).relative_to(tmp))
    return {"path": str(out_dir), "files": sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*") if p.is_file()),
            "parity": {n: m["parity"] for n, m in report["modules"].items()}, "all_ok": report["all_ok"],
            "tokenizer": "tokenizers (tokenizer.json)" if tok_json else "prompts.json only", "engines": engines}
