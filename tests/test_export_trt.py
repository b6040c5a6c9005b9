"""TensorRT: engines and parity where tensorrt imports; clean, explained skips elsewhere."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from groot_kit.export import (TensorRTUnavailable, build_engine, default_shape_profiles, export_policy,
                              graph_specs, tensorrt_available, trt_parity, trtexec_shapes)
from groot_kit.model.policy import GrootPolicy

TRT_OK, TRT_WHY = tensorrt_available()


@pytest.fixture(scope="module")
def small_graphs(tmp_path_factory):
    torch.manual_seed(0)
    pol = GrootPolicy("tiny").eval()
    out = tmp_path_factory.mktemp("trt")
    mods = ["state_encoder", "action_decoder"] + (["policy"] if TRT_OK else [])
    export_policy(pol, out, modules=mods, parity_batches=(1,))
    return pol, out


def test_shape_profiles_and_trtexec_flags(small_graphs):
    _, out = small_graphs
    prof = default_shape_profiles(out / "state_encoder.onnx", 1, 2, 8)
    assert prof == {"state": ((1, 64), (2, 64), (8, 64)), "embodiment_id": ((1,), (2,), (8,))}
    flags = trtexec_shapes(prof)
    assert "--minShapes=state:1x64,embodiment_id:1" in flags and "--maxShapes=state:8x64,embodiment_id:8" in flags


@pytest.mark.skipif(TRT_OK, reason="tensorrt is installed here")
def test_clear_error_without_tensorrt(small_graphs):
    _, out = small_graphs
    with pytest.raises(TensorRTUnavailable, match="tensorrt does not import"):
        build_engine(out / "state_encoder.onnx")


@pytest.mark.skipif(not TRT_OK, reason=f"TensorRT unavailable: {TRT_WHY}")
@pytest.mark.parametrize("fp16,atol", [(False, 1e-3), (True, 5e-2)])
def test_engine_parity_with_onnxruntime(small_graphs, fp16, atol):
    pol, out = small_graphs
    specs = graph_specs(pol)
    for name in ("state_encoder", "policy"):
        eng = build_engine(out / f"{name}.onnx", out / f"{name}_{int(fp16)}.plan", fp16=fp16, max_batch=4)
        feeds = [{k: v.numpy() for k, v in specs[name].make_inputs(B, 0).items()} for B in (1, 3)]
        rep = trt_parity(out / f"{name}.onnx", eng, feeds, atol=atol)
        assert rep["ok"], (name, fp16, rep)
