"""Read and write checkpoints in NVIDIA's GR00T N1 / N1.5 folder layout.

Layout (as on the Hugging Face Hub for nvidia/GR00T-N1-2B and nvidia/GR00T-N1.5-3B):
    config.json                          {"model_type": "gr00t_n1"|"gr00t_n1_5", "backbone_cfg": {...},
                                          "action_head_cfg": {...}, "action_horizon", "action_dim", ...}
    model-00001-of-0000N.safetensors     shards
    model.safetensors.index.json         {"metadata": {"total_size"}, "weight_map": {tensor: shard}}
    experiment_cfg/metadata.json         per-embodiment statistics (optional)

Tensor names are identical to ours (`backbone.*`, `action_head.*`), so loading is a strict
state-dict load. NVIDIA's config.json does not describe the VLM's sizes (they live in the Eagle
model folder of their repo), so the VLM sizes come from the matching preset (`n1_2b` / `n1_5_3b`),
optionally overridden by a `groot_kit_vlm` entry in backbone_cfg (what our writer puts there).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch

from groot_kit.config import ActionHeadConfig, GrootConfig, VLMConfig, get_preset
from groot_kit.model.policy import (CheckpointError, GrootPolicy, load_safetensors_checked,
                                    load_state_dict_checked)

INDEX_NAME = "model.safetensors.index.json"


def to_nvidia_config(config: GrootConfig) -> dict:
    """Our config -> NVIDIA's config.json dict (field names as in Isaac-GR00T)."""
    ah = config.action_head
    n15 = config.variant == "n1_5"
    action_head_cfg = {
        "action_dim": ah.max_action_dim, "action_horizon": ah.action_horizon,
        "max_action_dim": ah.max_action_dim, "max_state_dim": ah.max_state_dim,
        "hidden_size": ah.hidden_size, "input_embedding_dim": ah.input_embedding_dim,
        "backbone_embedding_dim": ah.cross_attention_dim, "max_num_embodiments": ah.max_num_embodiments,
        "num_timestep_buckets": ah.num_timestep_buckets, "num_inference_timesteps": ah.num_inference_timesteps,
        "noise_beta_alpha": ah.noise_beta_alpha, "noise_beta_beta": ah.noise_beta_beta, "noise_s": ah.noise_s,
        "add_pos_embed": True, "max_seq_len": ah.max_seq_len,
        "diffusion_model_cfg": {
            "num_layers": ah.num_layers, "num_attention_heads": ah.num_attention_heads,
            "attention_head_dim": ah.attention_head_dim, "cross_attention_dim": ah.cross_attention_dim,
            "output_dim": ah.hidden_size, "interleave_self_attention": True, "norm_type": "ada_norm",
            "positional_embeddings": None, "dropout": 0.2, "final_dropout": True,
        },
        "model_dtype": "float32",
    }
    if n15:
        action_head_cfg.update({
            "use_vlln": True, "num_target_vision_tokens": ah.num_future_tokens,
            "vl_self_attention_cfg": {"num_layers": ah.vl_self_attention_layers,
                                      "num_attention_heads": ah.vl_self_attention_heads,
                                      "attention_head_dim": ah.cross_attention_dim // ah.vl_self_attention_heads,
                                      "dropout": 0.2, "final_dropout": True, "positional_embeddings": None},
        })
    backbone_cfg = {"select_layer": config.vlm.select_layer, "project_to_dim": config.vlm.project_to_dim,
                    "tune_llm": False, "tune_visual": False,
                    "groot_kit_vlm": dataclasses.asdict(config.vlm)}
    if n15:
        backbone_cfg["eagle_path"] = "NVEagle/eagle_er-qwen3_1_7B-Siglip2_400M_stage1_5_128gpu_er_v7_1mlp_nops"
    else:
        backbone_cfg["model_name"] = "$GR00T_BACKBONE_PATH/eagle2_hg_model"
    return {
        "architectures": ["GR00T_N1_5" if n15 else "GR00T_N1"],
        "model_type": "gr00t_n1_5" if n15 else "gr00t_n1",
        "action_dim": ah.max_action_dim, "action_horizon": ah.action_horizon,
        "backbone_cfg": backbone_cfg, "action_head_cfg": action_head_cfg, "compute_dtype": "bfloat16",
    }


def from_nvidia_config(meta: dict, source: str = "config.json") -> GrootConfig:
    """NVIDIA's config.json dict -> our GrootConfig (VLM sizes from the preset or `groot_kit_vlm`)."""
    try:
        bb, ahc = meta["backbone_cfg"], meta["action_head_cfg"]
        dm = ahc["diffusion_model_cfg"]
        n15 = meta.get("model_type") == "gr00t_n1_5" or bool(ahc.get("use_vlln")) or "eagle_path" in bb
        base = get_preset("n1_5_3b" if n15 else "n1_2b")
        vlm = VLMConfig(**bb["groot_kit_vlm"]) if "groot_kit_vlm" in bb else dataclasses.replace(
            base.vlm, select_layer=bb.get("select_layer", base.vlm.select_layer),
            project_to_dim=bb.get("project_to_dim", base.vlm.project_to_dim))
        cross = dm.get("cross_attention_dim") or ahc.get("backbone_embedding_dim") or vlm.output_dim
        vsa = ahc.get("vl_self_attention_cfg") or {}
        ah = ActionHeadConfig(
            action_horizon=ahc["action_horizon"], max_action_dim=ahc["max_action_dim"],
            max_state_dim=ahc["max_state_dim"], max_num_embodiments=ahc.get("max_num_embodiments", 32),
            hidden_size=ahc["hidden_size"], input_embedding_dim=ahc["input_embedding_dim"],
            num_layers=dm["num_layers"], num_attention_heads=dm["num_attention_heads"],
            attention_head_dim=dm["attention_head_dim"], cross_attention_dim=cross,
            max_seq_len=ahc.get("max_seq_len", 1024), num_timestep_buckets=ahc.get("num_timestep_buckets", 1000),
            num_inference_timesteps=ahc.get("num_inference_timesteps", 4),
            noise_beta_alpha=ahc.get("noise_beta_alpha", 1.5), noise_beta_beta=ahc.get("noise_beta_beta", 1.0),
            noise_s=ahc.get("noise_s", 0.999),
            num_future_tokens=ahc.get("num_target_vision_tokens", 32) if n15 else 0,
            use_vl_self_attention=n15,
            vl_self_attention_layers=vsa.get("num_layers", 4), vl_self_attention_heads=vsa.get("num_attention_heads", 32))
        return GrootConfig(variant="n1_5" if n15 else "n1", preset=f"imported_{meta.get('model_type', 'gr00t')}",
                           vlm=vlm, action_head=ah)
    except KeyError as e:
        raise CheckpointError(f"{source} lacks field {e} that a GR00T config needs (backbone_cfg, action_head_cfg, "
                              "action_head_cfg.diffusion_model_cfg, ...); is this an NVIDIA GR00T checkpoint?") from e
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{source} has an invalid value: {e}") from e


def save_gr00t_checkpoint(policy: GrootPolicy, path: str | os.PathLike, max_shard_bytes: int = 2 * 1024 ** 3) -> Path:
    """Write `policy` in NVIDIA's sharded layout (atomic: temp folder, then rename)."""
    from safetensors.torch import save_file
    from groot_kit.fileio import atomic_directory
    path = Path(path)
    with atomic_directory(path) as tmp:
        # the goal head is a kit training aid GR00T does not know: left out of NVIDIA's layout
        state = {k: v.detach().contiguous().cpu() for k, v in policy.state_dict().items()
                 if not k.startswith("goal_head.")}
        shards: list[dict[str, torch.Tensor]] = [{}]
        size = 0
        for k, v in state.items():
            nbytes = v.numel() * v.element_size()
            if shards[-1] and size + nbytes > max_shard_bytes:
                shards.append({})
                size = 0
            shards[-1][k] = v
            size += nbytes
        weight_map = {}
        for i, shard in enumerate(shards):
            name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
            save_file(shard, str(tmp / name), metadata={"format": "pt"})
            weight_map.update({k: name for k in shard})
        total = sum(v.numel() * v.element_size() for v in state.values())
        (tmp / INDEX_NAME).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
        (tmp / "config.json").write_text(json.dumps(to_nvidia_config(policy.config), indent=2))
        if policy.normalization:
            (tmp / "experiment_cfg").mkdir()
            (tmp / "experiment_cfg" / "metadata.json").write_text(json.dumps(policy.normalization, indent=2))
        policy.tokenizer.save_pretrained(str(tmp / "tokenizer"))
    return path


def load_gr00t_checkpoint(path: str | os.PathLike, map_location: str = "cpu", tokenizer=None) -> GrootPolicy:
    """NVIDIA-layout folder -> GrootPolicy (strict load; clear errors for missing/corrupt shards)."""
    from transformers import PreTrainedTokenizerFast
    path = Path(path)
    meta = json.loads((path / "config.json").read_text())
    config = from_nvidia_config(meta, str(path / "config.json"))
    index_file = path / INDEX_NAME
    if index_file.exists():
        try:
            weight_map = json.loads(index_file.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError) as e:
            raise CheckpointError(f"{index_file} is not a valid safetensors index ({e}); re-download it") from e
        state: dict[str, torch.Tensor] = {}
        for shard in sorted(set(weight_map.values())):
            state.update(load_safetensors_checked(path / shard, map_location))
        missing_in_shards = sorted(set(weight_map) - set(state))
        if missing_in_shards:
            raise CheckpointError(f"{index_file} lists {len(missing_in_shards)} tensors not found in the shards "
                                  f"(e.g. {missing_in_shards[0]}); the download is incomplete")
    elif (path / "model.safetensors").exists():
        state = load_safetensors_checked(path / "model.safetensors", map_location)
    else:
        raise CheckpointError(f"{path} has neither {INDEX_NAME} nor model.safetensors; is the download complete?")
    if tokenizer is None and (path / "tokenizer").is_dir():
        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(path / "tokenizer"))
    normalization = {}
    meta_file = path / "experiment_cfg" / "metadata.json"
    if meta_file.exists():
        normalization = json.loads(meta_file.read_text())
    policy = GrootPolicy(config, tokenizer=tokenizer, normalization=normalization)
    load_state_dict_checked(policy, state, source=str(path))
    return policy.eval()
