"""ONNX export: parity with PyTorch through onnxruntime (batch 1 and 3), full-policy graph, Jetson
bundle runtime without torch, benchmark smoke test, bad input."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from groot_kit.config import get_preset
from groot_kit.export import (ExportError, export_jetson_bundle, export_policy, graph_specs, ort_session)
from groot_kit.model.policy import GrootPolicy, dummy_batch

ATOL = 1e-4
N1_MODULES = ["vision", "connector", "lm", "state_encoder", "action_encoder", "dit", "action_decoder",
              "system2", "system1", "policy"]


def tiny_n1_5_config():
    """The tiny preset rewired as N1.5: no pixel shuffle, Linear connector, Qwen3 LM, LM-wide VL
    tokens, vlln + VL self-attention, 4 future tokens."""
    cfg = get_preset("tiny")
    vlm = dataclasses.replace(cfg.vlm, pixel_shuffle=False, connector="linear", project_to_dim=None,
                              lm=dataclasses.replace(cfg.vlm.lm, arch="qwen3", head_dim=16, rms_norm_eps=1e-6))
    ah = dataclasses.replace(cfg.action_head, use_vl_self_attention=True, num_future_tokens=4,
                             vl_self_attention_heads=4, vl_self_attention_layers=2,
                             cross_attention_dim=vlm.lm.hidden_size, num_inference_timesteps=2)
    return dataclasses.replace(cfg, variant="n1_5", preset="tiny_n1_5", vlm=vlm, action_head=ah)


def _perturb(policy, seed=0):
    """Random (not init-default) weights so zero biases / identity norms don't hide bugs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=g))
    return policy.eval()


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return _perturb(GrootPolicy(get_preset("tiny")))


@pytest.fixture(scope="module")
def tiny_export(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx_tiny")
    return out, export_policy(tiny, out)


@pytest.mark.parametrize("name", N1_MODULES)
def test_module_parity_batch_1_and_3(tiny_export, name):
    out, rep = tiny_export
    m = rep["modules"][name]
    assert (out / m["path"]).exists()
    assert set(m["parity"]["max_abs_diff"]) == {"1", "3"}
    assert m["parity"]["ok"], f"{name}: {m['parity']}"
    assert max(m["parity"]["max_abs_diff"].values()) <= ATOL


def test_parity_json_written(tiny_export):
    out, rep = tiny_export
    saved = json.loads((out / "parity.json").read_text())
    assert saved["all_ok"] and saved["opset"] >= 17 and set(saved["modules"]) == set(N1_MODULES)


@pytest.mark.parametrize("B", [1, 3])
def test_policy_graph_matches_predict_action_chunk(tiny, tiny_export, B):
    """The full graph against GrootPolicy's own inference path (masked_scatter merge, sample loop)."""
    out, _ = tiny_export
    batch = dummy_batch(tiny, B, seed=5)
    batch["instruction"] = ["pick up the red cube", "grasp the ball", "do nothing"][:B]
    batch["embodiment_id"] = torch.arange(B) % 3
    ids, mask = tiny.tokenize(batch["instruction"])
    noise = torch.randn(B, 16, 32, generator=torch.Generator().manual_seed(1))
    ref = tiny.predict_action_chunk(batch, noise=noise).numpy()
    sess = ort_session(out / "policy.onnx")
    got = sess.run(None, {"pixel_values": batch["pixel_values"].numpy(), "input_ids": ids.numpy(),
                          "attention_mask": mask.numpy(), "state": batch["state"].numpy(),
                          "embodiment_id": batch["embodiment_id"].numpy(), "noise": noise.numpy()})[0]
    assert got.shape == (B, 16, 32)
    assert np.abs(got - ref).max() <= ATOL


def test_system2_wrapper_equals_backbone(tiny):
    spec = graph_specs(tiny)["system2"]
    x = spec.make_inputs(3, 4)
    with torch.no_grad():
        a = spec.module(*x.values())
        b, _ = tiny.backbone(x["pixel_values"], x["input_ids"], x["attention_mask"])
    assert torch.allclose(a, b, atol=1e-6)


def test_n1_5_vl_adapter_and_full_graph(tmp_path):
    torch.manual_seed(1)
    pol = _perturb(GrootPolicy(tiny_n1_5_config()), seed=1)
    rep = export_policy(pol, tmp_path, modules=["vl_adapter", "connector", "lm", "policy"])
    for n, m in rep["modules"].items():
        assert m["parity"]["ok"], (n, m["parity"])
    # full graph vs predict_action_chunk (future tokens + vlln + VL self-attention in the loop)
    batch = dummy_batch(pol, 3, seed=2)
    ids, mask = pol.tokenize(batch["instruction"])
    noise = torch.randn(3, 16, 32)
    ref = pol.predict_action_chunk(batch, noise=noise).numpy()
    got = ort_session(tmp_path / "policy.onnx").run(None, {
        "pixel_values": batch["pixel_values"].numpy(), "input_ids": ids.numpy(), "attention_mask": mask.numpy(),
        "state": batch["state"].numpy(), "embodiment_id": batch["embodiment_id"].numpy(), "noise": noise.numpy()})[0]
    assert np.abs(got - ref).max() <= ATOL


def test_baked_embodiment_slot(tiny, tmp_path):
    rep = export_policy(tiny, tmp_path, modules=["system1"], embodiment_slot=2, num_steps=2)
    assert rep["modules"]["system1"]["parity"]["ok"]
    sess = ort_session(tmp_path / "system1.onnx")
    assert "embodiment_id" not in {i.name for i in sess.get_inputs()}
    x = graph_specs(tiny, num_steps=2)["system1"].make_inputs(3, 9)
    x["embodiment_id"] = torch.full((3,), 2)
    with torch.no_grad():
        ref = tiny.action_head.sample(x["vl_tokens"], x["state"], x["embodiment_id"], num_steps=2, noise=x["noise"]).numpy()
    got = sess.run(None, {k: x[k].numpy() for k in ("vl_tokens", "state", "noise")})[0]
    assert np.abs(got - ref).max() <= ATOL


def test_torchscript_exporter_option(tiny, tmp_path):
    rep = export_policy(tiny, tmp_path, modules=["connector", "policy"], exporter="torchscript")
    assert rep["exporter"] == "torchscript"
    for n, m in rep["modules"].items():
        assert m["parity"]["ok"], (n, m["parity"])


def test_export_from_checkpoint_dir(tiny, tmp_path):
    ckpt = tiny.save_pretrained(tmp_path / "ckpt")
    rep = export_policy(ckpt, tmp_path / "onnx", modules=["state_encoder"])
    assert rep["modules"]["state_encoder"]["parity"]["ok"]


def test_bad_requests(tiny, tmp_path):
    with pytest.raises(ExportError, match="unknown module.*vl_adapter exists only"):
        export_policy(tiny, tmp_path, modules=["vl_adapter"])
    with pytest.raises(ExportError, match="opset"):
        export_policy(tiny, tmp_path, modules=["dit"], opset=13)
    with pytest.raises(ExportError, match="exporter must be"):
        export_policy(tiny, tmp_path, modules=["dit"], exporter="jit")
    with pytest.raises(ExportError, match="embodiment_slot=99"):
        export_policy(tiny, tmp_path, modules=["system1"], embodiment_slot=99)


# ------------------------------------------------------------------------------------ Jetson bundle

@pytest.fixture(scope="module")
def bundle(tiny, tiny_export, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle") / "agx"
    rep = export_jetson_bundle(tiny, out, onnx_dir=tiny_export[0], instructions=["pick up the red cube"])
    return out, rep


def _blocker(tmp: Path, names=("torch", "transformers", "groot_kit")) -> dict:
    """PYTHONPATH shim that makes `import torch` (etc.) fail in a subprocess."""
    for n in names:
        (tmp / n).mkdir(parents=True, exist_ok=True)
        (tmp / n / "__init__.py").write_text(f"raise ImportError('{n} is blocked in this test')\n")
    return {**os.environ, "PYTHONPATH": str(tmp)}


def test_bundle_layout(bundle):
    out, rep = bundle
    for f in ("runtime.py", "build_engines.sh", "config.json", "normalization.json", "prompts.json",
              "tokenizer/tokenizer.json", "onnx/policy.onnx", "onnx/system1.onnx", "onnx/system2.onnx", "parity.json"):
        assert (out / f).exists(), f
    assert rep["all_ok"]
    script = (out / "build_engines.sh").read_text()
    assert "trtexec" in script and "--fp16" in script
    assert "--minShapes=pixel_values:1x1x3x64x64" in script and "--maxShapes=pixel_values:8x1x3x64x64" in script
    assert subprocess.run(["bash", "-n", str(out / "build_engines.sh")]).returncode == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["prompt"]["seq_len"] == 42 and set(cfg["graphs"]) == {"policy", "system1", "system2"}


def test_bundle_runtime_reproduces_pytorch_without_torch(tiny, bundle, tmp_path):
    out, _ = bundle
    B = 3
    batch = dummy_batch(tiny, B, seed=11)
    batch["instruction"] = ["pick up the red cube", "grasp the ball", "move the arm to the home pose"]
    batch["embodiment_id"] = torch.tensor([0, 1, 2])
    noise = torch.randn(B, 16, 32, generator=torch.Generator().manual_seed(3))
    ref = tiny.predict_action_chunk(batch, noise=noise).numpy()
    np.savez(tmp_path / "in.npz", pixel_values=batch["pixel_values"].numpy(), state=batch["state"].numpy(),
             embodiment_id=batch["embodiment_id"].numpy(), noise=noise.numpy())
    cmd = [sys.executable, str(out / "runtime.py"), "--backend", "onnxruntime", "--inputs", str(tmp_path / "in.npz"),
           "--out", str(tmp_path / "out.npz")] + sum((["--instruction", s] for s in batch["instruction"]), [])
    res = subprocess.run(cmd, capture_output=True, text=True, env=_blocker(tmp_path / "shim"), timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    info = json.loads(res.stdout.strip().splitlines()[-1])
    assert info["torch_loaded"] is False and info["tokenizer"] == "tokenizers"
    got = np.load(tmp_path / "out.npz")["actions"]
    assert np.abs(got - ref).max() <= ATOL


def test_bundle_runtime_prompts_fallback_and_split_graphs(tiny, bundle, tmp_path):
    """Without `tokenizers`, known instructions come from prompts.json; unknown ones fail clearly.
    The split System 2 / System 1 graphs give the same chunk as the whole-policy graph."""
    out, _ = bundle
    code = f"""
import sys, json, numpy as np
sys.path.insert(0, {str(out)!r})
from runtime import GrootRuntime, BundleError
rt = GrootRuntime({str(out)!r}, backend="onnxruntime")
assert rt.prompt.tokenizer is None
rng = np.random.default_rng(0)
pv = rng.random((1, 1, 3, 64, 64), dtype=np.float32); st = rng.standard_normal((1, 64)).astype(np.float32)
nz = rng.standard_normal((1, 16, 32)).astype(np.float32)
a = rt.predict_action_chunk(pv, st, 1, ["pick up the red cube"], noise=nz)
vl, m = rt.encode_vl(pv, ["pick up the red cube"])
b = rt.sample(vl, st, 1, noise=nz)
try:
    rt.predict_action_chunk(pv, st, 1, ["an unknown instruction"])
    err = ""
except BundleError as e:
    err = str(e)
try:
    rt.predict_action_chunk(pv[:, :, :, :32], st, 1, ["pick up the red cube"])
    err2 = ""
except BundleError as e:
    err2 = str(e)
print(json.dumps({{"diff": float(np.abs(a - b).max()), "err": err, "err2": err2}}))
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=_blocker(tmp_path / "shim", ("torch", "transformers", "groot_kit", "tokenizers")))
    assert res.returncode == 0, res.stderr[-3000:]
    r = json.loads(res.stdout.strip().splitlines()[-1])
    assert r["diff"] <= 1e-5
    assert "prompts.json" in r["err"] and "pip install tokenizers" in r["err"]
    assert "pixel_values must have shape" in r["err2"]


def test_benchmark_smoke(tiny, tiny_export):
    from groot_kit.export.benchmark import benchmark_deploy, format_table
    res = benchmark_deploy(tiny, tiny_export[0], threads=(1,), modules=["state_encoder", "system1", "policy"],
                           repeats=3, warmup=1)
    mods = {r["module"] for r in res["rows"]}
    assert {"state_encoder", "system1", "system1_chunk (action_head.sample)"} <= mods
    assert all(r["ort_ms"] > 0 and r["eager_ms"] > 0 for r in res["rows"])
    assert "1" in res["system1_chunk_speedup"]
    assert "System 1 chunk" in format_table(res)


def test_cli_export_and_bundle_errors(tmp_path, capsys):
    from groot_kit.export.cli import main
    assert main(["export", "tiny", str(tmp_path / "o"), "--modules", "state_encoder", "action_decoder"]) == 0
    rep = json.loads((tmp_path / "o" / "parity.json").read_text())
    assert rep["all_ok"] and set(rep["modules"]) == {"state_encoder", "action_decoder"}
    from groot_kit.export import tensorrt_available
    if not tensorrt_available()[0]:
        assert main(["bundle", "tiny", str(tmp_path / "b"), "--build-engines"]) == 2
        assert "build_engines.sh" in capsys.readouterr().err
        assert not (tmp_path / "b").exists()
