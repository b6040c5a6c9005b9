"""ONNX export of every GR00T module and of the whole policy, with onnxruntime parity checks.

Graphs (all with a dynamic batch axis; every other axis is fixed by the config):

    name            inputs                                                  -> output
    vision          pixel_values [N, 3, S, S] in [0, 1] (N = B * views)     -> patch_features [N, P, Cv]
    connector       patch_features [N, P, Cv]                               -> image_tokens [N, n_img, D_lm]
    lm              inputs_embeds [B, T, D_lm], attention_mask [B, T]       -> hidden [B, T, D_lm]
    state_encoder   state [B, Dmax_s], embodiment_id [B]                    -> state_tokens [B, 1, w]
    action_encoder  actions [B, H, Dmax_a], timestep [B], embodiment_id [B] -> action_tokens [B, H, w]
    dit             tokens [B, N_tok, w], vl_tokens [B, T, c], timestep [B] -> dit_out [B, N_tok, hidden]
    action_decoder  dit_out [B, N_tok, hidden], embodiment_id [B]          -> decoded [B, N_tok, Dmax_a]
    vl_adapter      vl_tokens [B, T, c]                                     -> vl_tokens_out [B, T, c]   (N1.5 only)
    system2         pixel_values [B, V, 3, S, S], input_ids, attention_mask -> vl_tokens [B, T, c]
    system1         vl_tokens, state, embodiment_id, noise [B, H, Dmax_a]   -> actions [B, H, Dmax_a]
    policy          pixel_values, input_ids, attention_mask, state,
                    embodiment_id, noise                                    -> actions [B, H, Dmax_a]

`system1` and `policy` contain the K-step Euler loop unrolled (K = num_inference_timesteps unless
`num_steps` says otherwise). With `embodiment_slot=<int>` the per-embodiment weight slice is baked
into System-1 graphs: the gather + batched matmul becomes a plain MatMul and `embodiment_id` is no
longer an input (one graph per robot, a bit faster; the default keeps all slots).

The image-token merge uses gather + where instead of `masked_scatter` (not exportable): it is equal
to the reference whenever every row holds exactly V * n_img `<image>` placeholders, which
`GrootPolicy.tokenize` guarantees (fixed prompt layout `<bos> <image>*n text <eos> <pad>*`).

Exporter: the `torch.export`-based ("dynamo") exporter of `torch.onnx.export`, opset 18 by default;
`exporter="torchscript"` selects the legacy one.
"""

from __future__ import annotations

import copy
import json
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn

from groot_kit.export.graphs import (ActionDecoderGraph, ActionEncoderGraph, ConnectorGraph, DiTGraph,  # noqa: F401
                                     ExportError, LMGraph, PolicyBakedGraph, PolicyGraph, StateEncoderGraph,
                                     System1BakedGraph, System1Graph, System2Graph, VisionGraph, VLAdapterGraph,
                                     bake_embodiment)

DEFAULT_OPSET = 18
PARITY_ATOL = 1e-4
MODULES_N1 = ("vision", "connector", "lm", "state_encoder", "action_encoder", "dit", "action_decoder",
              "system2", "system1", "policy")
MODULES_N1_5 = MODULES_N1[:7] + ("vl_adapter",) + MODULES_N1[7:]


# ----------------------------------------------------------------------------------------------
# Module specs: wrapper, named example inputs per batch size, batch axes
# ----------------------------------------------------------------------------------------------

@dataclass
class GraphSpec:
    name: str
    module: nn.Module
    make_inputs: Callable[[int, int], dict[str, torch.Tensor]]   # (batch, seed) -> named inputs
    output_name: str
    batch_axes: dict[str, str] = field(default_factory=dict)      # input name -> dim name of axis 0
    description: str = ""


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _embodiment_ids(B: int, E: int, slot: int | None) -> torch.Tensor:
    if slot is not None:
        return torch.full((B,), int(slot), dtype=torch.long)
    return torch.arange(B, dtype=torch.long) % min(E, 3)


def prompt_inputs(policy, B: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """input_ids / attention_mask for B prompts of different lengths (padding exercised)."""
    texts = ["pick up the red cube and place it in the yellow bin", "grasp the ball",
             "move the arm to the home pose", "lift the box with both hands"]
    return policy.tokenize([texts[(i + seed) % len(texts)] for i in range(B)])


def _composite_specs(policy, head, K: int, baked: bool, eid, dims: dict) -> dict[str, GraphSpec]:
    """System 2, System 1 (the K Euler steps unrolled) and the whole policy as graphs."""
    S, V, T, c, Ds, H, Da = (dims[k] for k in ("S", "V", "T", "c", "Ds", "H", "Da"))
    ah = policy.config.action_head

    def s2_inputs(B, s):
        ids, mask = prompt_inputs(policy, B, s)
        return {"pixel_values": torch.rand(B, V, 3, S, S, generator=_gen(s)), "input_ids": ids, "attention_mask": mask}

    def s1_inputs(B, s):
        d = {"vl_tokens": torch.randn(B, T, c, generator=_gen(s)), "state": torch.randn(B, Ds, generator=_gen(s + 1)),
             **eid(B), "noise": torch.randn(B, H, Da, generator=_gen(s + 2))}
        if ah.use_vl_mask_in_cross_attention:
            d["vl_mask"] = prompt_inputs(policy, B, s)[1]
        return d

    def policy_inputs(B, s):
        return {**s2_inputs(B, s), "state": torch.randn(B, Ds, generator=_gen(s + 1)), **eid(B),
                "noise": torch.randn(B, H, Da, generator=_gen(s + 2))}

    all_batch = {k: "batch" for k in ("pixel_values", "input_ids", "attention_mask", "state", "embodiment_id",
                                      "noise", "vl_tokens", "vl_mask")}
    specs = {}
    specs["system2"] = GraphSpec("system2", System2Graph(policy), s2_inputs, "vl_tokens", all_batch,
                                 "vision + connector + image-token merge + LM + projection")
    specs["system1"] = GraphSpec("system1", (System1BakedGraph if baked else System1Graph)(head, K, baked), s1_inputs, "actions", all_batch,
                                 f"state encoder + {K} unrolled Euler steps (action encoder, DiT, decoder)")
    specs["policy"] = GraphSpec("policy", (PolicyBakedGraph if baked else PolicyGraph)(policy, head, K, baked), policy_inputs, "actions", all_batch,
                                f"System 2 once + {K} unrolled Euler steps")
    return specs


def graph_specs(policy, num_steps: int | None = None, embodiment_slot: int | None = None) -> dict[str, GraphSpec]:
    """Every exportable graph of `policy` (N1.5-only ones only for N1.5-style configs)."""
    cfg = policy.config
    ah, vcfg = cfg.action_head, cfg.vlm
    K = int(num_steps or ah.num_inference_timesteps)
    baked = embodiment_slot is not None
    head = bake_embodiment(policy.action_head, embodiment_slot).eval() if baked else policy.action_head
    S, V = vcfg.vision.image_size, vcfg.num_views
    P, Cv, D = vcfg.vision.patches_per_side ** 2, vcfg.vision.hidden_size, vcfg.lm.hidden_size
    T = 2 + V * vcfg.image_tokens_per_view + vcfg.max_text_tokens
    c, w = cfg.vlm.output_dim, ah.input_embedding_dim
    H, Da, Ds, E = ah.action_horizon, ah.max_action_dim, ah.max_state_dim, ah.max_num_embodiments
    n_tok = 1 + ah.num_future_tokens + H

    def eid(B):
        return {} if baked else {"embodiment_id": _embodiment_ids(B, E, None)}

    def ts(B, seed):
        return torch.randint(0, ah.num_timestep_buckets, (B,), generator=_gen(seed + 7))

    specs = {
        "vision": GraphSpec("vision", VisionGraph(policy),
                            lambda B, s: {"pixel_values": torch.rand(B * V, 3, S, S, generator=_gen(s))},
                            "patch_features", {"pixel_values": "images"}, "SigLIP vision tower (normalisation included)"),
        "connector": GraphSpec("connector", ConnectorGraph(policy),
                               lambda B, s: {"patch_features": torch.randn(B * V, P, Cv, generator=_gen(s))},
                               "image_tokens", {"patch_features": "images"},
                               "pixel shuffle + mlp1" if vcfg.pixel_shuffle else "mlp1"),
        "lm": GraphSpec("lm", LMGraph(policy),
                        lambda B, s: {"inputs_embeds": torch.randn(B, T, D, generator=_gen(s)),
                                      "attention_mask": prompt_inputs(policy, B, s)[1]},
                        "hidden", {"inputs_embeds": "batch", "attention_mask": "batch"},
                        f"{vcfg.lm.arch} LM, first {vcfg.select_layer} layers + final norm"),
        "state_encoder": GraphSpec("state_encoder", StateEncoderGraph(head),
                                   lambda B, s: {"state": torch.randn(B, Ds, generator=_gen(s)), **eid(B)},
                                   "state_tokens", {"state": "batch", "embodiment_id": "batch"},
                                   "category-specific MLP"),
        "action_encoder": GraphSpec("action_encoder", ActionEncoderGraph(head),
                                    lambda B, s: {"actions": torch.randn(B, H, Da, generator=_gen(s)),
                                                  "timestep": ts(B, s), **eid(B)},
                                    "action_tokens", {"actions": "batch", "timestep": "batch", "embodiment_id": "batch"},
                                    "W1, sinusoidal code, W2+swish, W3"),
        "dit": GraphSpec("dit", DiTGraph(head),
                         lambda B, s: {"tokens": torch.randn(B, n_tok, w, generator=_gen(s)),
                                       "vl_tokens": torch.randn(B, T, c, generator=_gen(s + 1)),
                                       "timestep": ts(B, s)},
                         "dit_out", {"tokens": "batch", "vl_tokens": "batch", "timestep": "batch"},
                         f"{ah.num_layers} AdaLN blocks, cross/self alternating"),
        "action_decoder": GraphSpec("action_decoder", ActionDecoderGraph(head),
                                    lambda B, s: {"dit_out": torch.randn(B, n_tok, ah.hidden_size, generator=_gen(s)), **eid(B)},
                                    "decoded", {"dit_out": "batch", "embodiment_id": "batch"}, "category-specific MLP"),
    }
    if ah.use_vl_self_attention:
        specs["vl_adapter"] = GraphSpec("vl_adapter", VLAdapterGraph(head),
                                        lambda B, s: {"vl_tokens": torch.randn(B, T, c, generator=_gen(s))},
                                        "vl_tokens_out", {"vl_tokens": "batch"}, "N1.5 vlln + VL self-attention")

    specs.update(_composite_specs(policy, head, K, baked, eid, dict(S=S, V=V, T=T, c=c, Ds=Ds, H=H, Da=Da)))
    for sp in specs.values():
        sp.module.eval()
    return specs


# ----------------------------------------------------------------------------------------------
# Export and parity
# ----------------------------------------------------------------------------------------------

def _np(d: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy() for k, v in d.items()}


def export_graph(spec: GraphSpec, path: str | os.PathLike, opset: int = DEFAULT_OPSET,
                 exporter: str = "dynamo", example_batch: int = 2) -> Path:
    """Export one graph with a dynamic batch axis to `path` (weights inline below 1.8 GB)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    inputs = spec.make_inputs(example_batch, 0)
    names = list(inputs)
    nbytes = sum(p.numel() * p.element_size() for p in spec.module.parameters())
    big = nbytes > 1.8e9
    tmp = path.with_name(path.stem + ".tmp.onnx")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            dims: dict[str, Any] = {}
            shapes = []
            for n in names:
                dn = spec.batch_axes.get(n, "batch")
                dims.setdefault(dn, torch.export.Dim(dn, min=1, max=4096))
                shapes.append({0: dims[dn]})
            torch.onnx.export(spec.module, tuple(inputs[n] for n in names), str(tmp), input_names=names,
                              output_names=[spec.output_name], dynamic_shapes=tuple(shapes),
                              opset_version=opset, dynamo=True, external_data=big, verbose=False)
        elif exporter == "torchscript":
            axes = {n: {0: spec.batch_axes.get(n, "batch")} for n in names}
            axes[spec.output_name] = {0: "batch"}
            torch.onnx.export(spec.module, tuple(inputs[n] for n in names), str(tmp), input_names=names,
                              output_names=[spec.output_name], dynamic_axes=axes, opset_version=opset,
                              dynamo=False, do_constant_folding=True)
        else:
            raise ExportError(f"exporter must be 'dynamo' or 'torchscript', got {exporter!r}")
    data = tmp.with_name(tmp.name + ".data")
    if data.exists():   # keep weights beside the final name (ONNX stores the relative location)
        import onnx
        m = onnx.load(str(tmp))
        tmp.unlink()
        data.unlink()
        onnx.save_model(m, str(path), save_as_external_data=True, location=path.name + ".data")
    else:
        os.replace(tmp, path)
    return path


def ort_session(path: str | os.PathLike, threads: int | None = None, opt_level: str = "all",
                providers: Iterable[str] | None = None):
    """An onnxruntime session; opt_level in {"disable", "basic", "extended", "all"}."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[opt_level]
    if threads:
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=list(providers or ["CPUExecutionProvider"]))


def check_parity(spec: GraphSpec, onnx_path: str | os.PathLike, batches: Iterable[int] = (1, 3),
                 atol: float = PARITY_ATOL, session=None, seed: int = 123) -> dict[str, Any]:
    """Run PyTorch and onnxruntime on the same random inputs; -> {"max_abs_diff": {B: d}, "ok": bool}"""
    sess = session or ort_session(onnx_path)
    want = {i.name for i in sess.get_inputs()}
    diffs = {}
    for B in batches:
        inputs = spec.make_inputs(int(B), seed + int(B))
        with torch.no_grad():
            ref = spec.module(*inputs.values()).float().numpy()
        out = sess.run(None, {k: v for k, v in _np(inputs).items() if k in want})[0]
        if out.shape != ref.shape:
            raise ExportError(f"{spec.name}: onnxruntime output shape {out.shape} != PyTorch {ref.shape} at batch {B}")
        diffs[str(B)] = float(np.abs(out.astype(np.float64) - ref.astype(np.float64)).max())
    return {"max_abs_diff": diffs, "atol": atol, "ok": all(d <= atol for d in diffs.values())}


def _load_policy(policy_or_dir):
    """A CPU float32 policy (export and parity run on CPU; the caller's model is not modified)."""
    if isinstance(policy_or_dir, (str, os.PathLike)):
        from groot_kit.model.policy import GrootPolicy
        return GrootPolicy.from_pretrained(policy_or_dir)
    p = next(policy_or_dir.parameters())
    if p.device.type != "cpu" or p.dtype != torch.float32:
        policy_or_dir = copy.deepcopy(policy_or_dir).to("cpu", torch.float32)
    return policy_or_dir


def export_policy(policy_or_checkpoint_dir, out_dir: str | os.PathLike, modules: Iterable[str] | None = None,
                  opset: int = DEFAULT_OPSET, num_steps: int | None = None, embodiment_slot: int | None = None,
                  parity_batches: Iterable[int] = (1, 3), atol: float = PARITY_ATOL, exporter: str = "dynamo",
                  strict: bool = False, progress: bool = False) -> dict[str, Any]:
    """Export `modules` (default: all) of a GrootPolicy or checkpoint folder to `out_dir/<name>.onnx`.

    Each graph is checked against PyTorch with onnxruntime at every batch size in `parity_batches`.
    Writes `out_dir/parity.json` and returns the same report:
        {"opset", "num_steps", "embodiment_slot", "modules": {name: {"path", "inputs", "output",
         "export_s", "size_mb", "parity": {"max_abs_diff": {B: d}, "ok"}}}, "all_ok"}
    strict=True raises ExportError when a graph misses the tolerance.
    """
    policy = _load_policy(policy_or_checkpoint_dir).eval()
    if opset < 17:
        raise ExportError(f"opset={opset} is too old; use opset >= 17 (LayerNormalization)")
    specs = graph_specs(policy, num_steps=num_steps, embodiment_slot=embodiment_slot)
    names = list(specs) if modules is None else list(modules)
    unknown = [n for n in names if n not in specs]
    if unknown:
        extra = " (vl_adapter exists only for N1.5-style configs with use_vl_self_attention)" if "vl_adapter" in unknown else ""
        raise ExportError(f"unknown module(s) {unknown}; choose from {list(specs)}{extra}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"opset": opset, "exporter": exporter, "variant": policy.config.variant,
                              "preset": policy.config.preset,
                              "num_steps": int(num_steps or policy.config.action_head.num_inference_timesteps),
                              "embodiment_slot": embodiment_slot, "modules": {}}
    for n in names:
        sp = specs[n]
        t0 = time.perf_counter()
        path = export_graph(sp, out_dir / f"{n}.onnx", opset=opset, exporter=exporter)
        t1 = time.perf_counter()
        par = check_parity(sp, path, parity_batches, atol)
        inputs = sp.make_inputs(1, 0)
        size = path.stat().st_size + (path.with_name(path.name + ".data").stat().st_size
                                      if path.with_name(path.name + ".data").exists() else 0)
        report["modules"][n] = {"path": path.name, "description": sp.description,
                                "inputs": {k: [("batch" if i == 0 else s) for i, s in enumerate(v.shape)] + [str(v.dtype).replace("torch.", "")]
                                           for k, v in inputs.items()},
                                "output": sp.output_name, "export_s": round(t1 - t0, 2),
                                "size_mb": round(size / 2**20, 3), "parity": par}
        if progress:
            print(f"[export] {n:15s} {t1 - t0:6.1f}s  max|diff| {max(par['max_abs_diff'].values()):.2e}  "
                  f"{'ok' if par['ok'] else 'FAIL'}", flush=True)
        if strict and not par["ok"]:
            raise ExportError(f"{n}: onnxruntime differs from PyTorch by {par['max_abs_diff']} > {atol}")
    report["all_ok"] = all(m["parity"]["ok"] for m in report["modules"].values())
    (out_dir / "parity.json").write_text(json.dumps(report, indent=2))
    return report
