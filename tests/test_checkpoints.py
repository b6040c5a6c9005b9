"""Checkpoints: our own format, NVIDIA's sharded layout, and every way a checkpoint can be bad."""
import dataclasses
import json

import pytest
import torch
from safetensors.torch import save_file

from groot_kit.config import ActionHeadConfig, GrootConfig, VLMConfig, get_preset
from groot_kit.model.gr00t_checkpoint import load_gr00t_checkpoint, save_gr00t_checkpoint
from groot_kit.model.policy import CheckpointError, GrootPolicy, dummy_batch


def small_n1_5_config() -> GrootConfig:
    tiny = get_preset("tiny")
    vlm = dataclasses.replace(tiny.vlm, pixel_shuffle=False, connector="linear", project_to_dim=None,
                              lm=dataclasses.replace(tiny.vlm.lm, arch="qwen3", num_key_value_heads=2, head_dim=16))
    ah = dataclasses.replace(tiny.action_head, cross_attention_dim=64, num_future_tokens=4,
                             use_vl_self_attention=True, vl_self_attention_heads=4, vl_self_attention_layers=2)
    return GrootConfig(variant="n1_5", preset="tiny_n1_5", vlm=vlm, action_head=ah)


def write_nvidia_layout_by_hand(policy: GrootPolicy, folder, n1_5: bool):
    """What an NVIDIA checkpoint folder looks like, written here without our writer."""
    folder.mkdir()
    ah = policy.config.action_head
    config = {
        "architectures": ["GR00T_N1_5" if n1_5 else "GR00T_N1"],
        "model_type": "gr00t_n1_5" if n1_5 else "gr00t_n1",
        "action_dim": 32, "action_horizon": 16, "compute_dtype": "bfloat16",
        "backbone_cfg": {"select_layer": policy.config.vlm.select_layer, "tune_llm": False, "tune_visual": True,
                         "project_to_dim": policy.config.vlm.project_to_dim,
                         "groot_kit_vlm": dataclasses.asdict(policy.config.vlm)},
        "action_head_cfg": {
            "action_dim": 32, "action_horizon": 16, "add_pos_embed": True,
            "backbone_embedding_dim": ah.cross_attention_dim, "hidden_size": ah.hidden_size,
            "input_embedding_dim": ah.input_embedding_dim, "max_action_dim": 32, "max_state_dim": 64,
            "max_num_embodiments": 32, "model_dtype": "float32", "noise_beta_alpha": 1.5,
            "noise_beta_beta": 1.0, "noise_s": 0.999, "num_inference_timesteps": 4,
            "num_target_vision_tokens": ah.num_future_tokens or 32, "num_timestep_buckets": 1000,
            "tune_diffusion_model": True, "tune_projector": True, "max_seq_len": ah.max_seq_len,
            "diffusion_model_cfg": {"attention_head_dim": ah.attention_head_dim, "cross_attention_dim": ah.cross_attention_dim,
                                    "dropout": 0.2, "final_dropout": True, "interleave_self_attention": True,
                                    "norm_type": "ada_norm", "num_attention_heads": ah.num_attention_heads,
                                    "num_layers": ah.num_layers, "output_dim": ah.hidden_size, "positional_embeddings": None},
            **({"use_vlln": True, "vl_self_attention_cfg": {"attention_head_dim": 16, "dropout": 0.2, "final_dropout": True,
                "num_attention_heads": ah.vl_self_attention_heads, "num_layers": ah.vl_self_attention_layers,
                "positional_embeddings": None}} if n1_5 else {}),
        },
    }
    (folder / "config.json").write_text(json.dumps(config))
    state = {k: v.contiguous() for k, v in policy.state_dict().items()}
    keys = sorted(state)
    shards = [keys[: len(keys) // 2], keys[len(keys) // 2:]]
    weight_map = {}
    for i, ks in enumerate(shards):
        name = f"model-{i + 1:05d}-of-00002.safetensors"
        save_file({k: state[k] for k in ks}, str(folder / name))
        weight_map.update({k: name for k in ks})
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}))
    policy.tokenizer.save_pretrained(str(folder / "tokenizer"))


@pytest.mark.parametrize("n1_5", [False, True])
def test_loads_nvidia_layout_written_by_hand(tmp_path, n1_5):
    torch.manual_seed(0)
    policy = GrootPolicy(small_n1_5_config() if n1_5 else get_preset("tiny")).eval()
    write_nvidia_layout_by_hand(policy, tmp_path / "gr00t", n1_5)
    loaded = GrootPolicy.from_pretrained(tmp_path / "gr00t")
    assert loaded.config.variant == ("n1_5" if n1_5 else "n1")
    assert loaded.config.action_head == policy.config.action_head
    batch = dummy_batch(policy, 2)
    noise = torch.randn(2, 16, 32)
    assert torch.equal(policy.predict_action_chunk(batch, noise=noise), loaded.predict_action_chunk(batch, noise=noise))


def test_our_nvidia_writer_round_trips(tmp_path):
    torch.manual_seed(0)
    policy = GrootPolicy("tiny").eval()
    save_gr00t_checkpoint(policy, tmp_path / "nv", max_shard_bytes=2_000_000)
    shards = sorted(tmp_path.glob("nv/model-*.safetensors"))
    assert len(shards) >= 2
    loaded = load_gr00t_checkpoint(tmp_path / "nv")
    batch = dummy_batch(policy, 1)
    noise = torch.randn(1, 16, 32)
    assert torch.equal(policy.predict_action_chunk(batch, noise=noise), loaded.predict_action_chunk(batch, noise=noise))


def test_truncated_safetensors_is_a_clear_error(tmp_path, tiny_policy):
    tiny_policy.save_pretrained(tmp_path / "ck")
    f = tmp_path / "ck" / "model.safetensors"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*truncated or corrupt"):
        GrootPolicy.from_pretrained(tmp_path / "ck")


def test_truncated_shard_in_nvidia_layout(tmp_path, tiny_policy):
    save_gr00t_checkpoint(tiny_policy, tmp_path / "nv", max_shard_bytes=2_000_000)
    shard = sorted((tmp_path / "nv").glob("model-*.safetensors"))[-1]
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=shard.name):
        GrootPolicy.from_pretrained(tmp_path / "nv")


def test_config_that_does_not_match_weights(tmp_path, tiny_policy):
    tiny_policy.save_pretrained(tmp_path / "ck")
    cfg = json.loads((tmp_path / "ck" / "config.json").read_text())
    cfg["action_head"]["num_layers"] = 2
    cfg["action_head"]["hidden_size"] = 32
    (tmp_path / "ck" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"config does not match the weights.*shape mismatch.*unexpected"):
        GrootPolicy.from_pretrained(tmp_path / "ck")


def test_missing_or_foreign_checkpoint_folders(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        GrootPolicy.from_pretrained(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="config.json is missing"):
        GrootPolicy.from_pretrained(tmp_path / "empty")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(CheckpointError, match="not a groot_kit checkpoint"):
        GrootPolicy.from_pretrained(tmp_path / "foreign")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        GrootPolicy.from_pretrained(tmp_path / "broken")
