"""The full-size presets reproduce NVIDIA's checkpoint layout and the paper's parameter counts."""
import json
from pathlib import Path

import pytest
import torch

from groot_kit.model.policy import GrootPolicy

REF = Path(__file__).resolve().parents[2] / "shared" / "reference"  # ../shared beside the repo


@pytest.fixture(scope="module")
def meta_models():
    with torch.device("meta"):
        return {name: GrootPolicy(name) for name in ("n1_2b", "n1_5_3b")}


@pytest.mark.parametrize("preset,ref_file,n_tensors,n_params", [
    ("n1_2b", "gr00t_n1_action_head_state_dict.json", 247, 854_736_896),
    ("n1_5_3b", "gr00t_n1_5_action_head_state_dict.json", 314, 1_068_806_144),
])
def test_action_head_state_dict_equals_nvidia_manifest(meta_models, preset, ref_file, n_tensors, n_params):
    ref = json.loads((REF / ref_file).read_text())
    assert len(ref) == n_tensors
    ours = {k[len("action_head."):]: list(v.shape) for k, v in meta_models[preset].state_dict().items()
            if k.startswith("action_head.")}
    assert set(ours) == set(ref), (sorted(set(ours) - set(ref))[:5], sorted(set(ref) - set(ours))[:5])
    bad = {k: (ours[k], ref[k]) for k in ref if ours[k] != ref[k]}
    assert not bad
    assert sum(torch.Size(s).numel() for s in ours.values()) == n_params


def test_n1_backbone_uses_transformers_names(meta_models):
    keys = set(meta_models["n1_2b"].state_dict())
    backbone = [k for k in keys if k.startswith("backbone.")]
    assert all(k.startswith(("backbone.model.", "backbone.linear.")) for k in backbone)
    for k in ["backbone.model.vision_model.vision_model.embeddings.patch_embedding.weight",
              "backbone.model.vision_model.vision_model.encoder.layers.26.mlp.fc2.weight",
              "backbone.model.vision_model.vision_model.post_layernorm.weight",
              "backbone.model.mlp1.0.weight", "backbone.model.mlp1.1.weight", "backbone.model.mlp1.3.weight",
              "backbone.model.language_model.model.embed_tokens.weight",
              "backbone.model.language_model.model.layers.11.mlp.gate_proj.weight",
              "backbone.model.language_model.model.norm.weight",
              "backbone.linear.weight", "backbone.linear.bias"]:
        assert k in keys, k
    # truncated at select_layer=12; no LM head; no vision pooling head
    assert not any(".layers.12." in k for k in backbone if "language_model" in k)
    assert not any("lm_head" in k or ".head." in k for k in backbone)
    assert set(k for k in keys if not k.startswith(("backbone.", "action_head."))) == set()


def test_n1_5_backbone_names(meta_models):
    keys = set(meta_models["n1_5_3b"].state_dict())
    backbone = [k for k in keys if k.startswith("backbone.")]
    assert all(k.startswith("backbone.eagle_model.") for k in backbone)
    assert "backbone.eagle_model.mlp1.0.weight" in keys and "backbone.eagle_model.mlp1.1.weight" not in keys
    assert "backbone.eagle_model.language_model.model.layers.11.self_attn.q_norm.weight" in keys  # Qwen3
    assert not any(".layers.12." in k for k in backbone if "language_model" in k)


def test_parameter_counts_match_paper(meta_models):
    n = meta_models["n1_2b"].num_parameters()
    assert abs(n["total"] - 2.19e9) / 2.19e9 <= 0.02, n["total"]
    assert abs(n["system2_vlm"] - 1.34e9) / 1.34e9 <= 0.03, n["system2_vlm"]
    assert n["system1_action_head"] == 854_736_896
    m = meta_models["n1_5_3b"].num_parameters()
    assert m["system1_action_head"] == 1_068_806_144
    assert m["total"] == m["backbone"] + m["system1_action_head"]


def test_presets_build_on_meta_quickly():
    import time
    for name in ("tiny", "small", "n1_2b", "n1_5_3b"):
        t = time.perf_counter()
        with torch.device("meta"):
            GrootPolicy(name)
        assert time.perf_counter() - t < 30, name
