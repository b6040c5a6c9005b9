"""The exported System-1 graph computes the VL keys/values once, then the unrolled Euler steps,
and onnxruntime reproduces the reference (recompute-everything) PyTorch path."""
import collections

import numpy as np
import onnx
import torch

from groot_kit.config import get_preset
from groot_kit.export import graph_specs, ort_session
from groot_kit.export.onnx_export import export_graph
from groot_kit.model.policy import GrootPolicy


def test_system1_graph_projects_vl_keys_once_and_matches_reference(tmp_path):
    torch.manual_seed(0)
    policy = GrootPolicy(get_preset("tiny")).eval()
    with torch.no_grad():  # random biases so a dropped or doubled term would show
        for p in policy.action_head.parameters():
            p.add_(0.02 * torch.randn_like(p))
    K = 4
    spec = graph_specs(policy, num_steps=K)["system1"]
    path = export_graph(spec, tmp_path / "system1.onnx")
    graph = onnx.load(str(path)).graph
    uses = collections.Counter(i for n in graph.node for i in n.input if i.endswith("attn1.to_k.bias"))
    blocks = policy.action_head.model.transformer_blocks
    for i, block in enumerate(blocks):
        name = next(n for n in uses if f"transformer_blocks.{i}.attn1.to_k.bias" in n)
        # cross blocks: keys from the VL tokens once per chunk; self blocks: from the action tokens each step
        assert uses[name] == (1 if block.is_cross else K), (name, uses[name])
    sess = ort_session(path)
    for B in (1, 3):
        x = spec.make_inputs(B, 5)
        (out,) = sess.run(None, {k: v.numpy() for k, v in x.items()})
        ref = policy.action_head.sample(x["vl_tokens"], x["state"], x["embodiment_id"], num_steps=K,
                                        noise=x["noise"], exact_reference=True)
        np.testing.assert_allclose(out, ref.numpy(), atol=1e-4, rtol=0)
