"""New-embodiment LoRA fine-tuning: real peft adapters, frozen base, only the new slot learns,
adapters-only and merged round trips give the same actions."""
from __future__ import annotations

import json
import os

import pytest
import torch

from groot_kit.model.policy import GrootPolicy, dummy_batch
from groot_kit.train import lora as L


def _policy(seed=0):
    torch.manual_seed(seed)
    return GrootPolicy("tiny")


def _chunk(policy, slot, seed=0):
    b = dummy_batch(policy, 2, seed=seed, embodiment_id=slot)
    noise = torch.randn(2, policy.config.action_head.action_horizon, policy.config.action_head.max_action_dim,
                        generator=torch.Generator().manual_seed(seed))
    return policy.eval().predict_action_chunk(b, noise=noise)


def _train_steps(policy, slot, steps=5, lr=1e-2):
    mask, counts = L.mark_trainable(policy, slot)
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    policy.train()
    for i in range(steps):
        loss, _ = policy(dummy_batch(policy, 4, training=True, seed=i, embodiment_id=slot, action_dims=6))
        loss.backward()
        opt.step()
        opt.zero_grad()
    mask.remove()
    return counts


def test_peft_lora_is_real_and_targets_dit_attention():
    from peft.tuners.lora import LoraLayer
    p = _policy()
    cfg = L.apply_lora(p, rank=4, alpha=8, targets="dit")
    layers = L.lora_layers(p)
    blocks = p.config.action_head.num_layers
    assert len(layers) == 4 * blocks
    for name, m in layers.items():
        assert name.startswith("action_head.model.transformer_blocks.")
        assert name.rsplit(".", 2)[-2:] in (["attn1", "to_q"], ["attn1", "to_k"], ["attn1", "to_v"], ["to_out", "0"])
        assert isinstance(m, LoraLayer)
        assert m.lora_A["default"].weight.shape[0] == 4 and m.lora_B["default"].weight.shape[1] == 4
    assert cfg.r == 4 and cfg.lora_alpha == 8
    # the VLM option adds the language model's q/k/v/o
    p2 = _policy()
    L.apply_lora(p2, rank=2, alpha=4, targets="dit+vlm")
    vlm = [n for n in L.lora_layers(p2) if "language_model" in n]
    assert len(vlm) == 4 * p2.config.vlm.select_layer and all(n.endswith(("q_proj", "k_proj", "v_proj", "o_proj")) for n in vlm)
    with pytest.raises(L.LoraSetupError, match="targets"):
        L.lora_config(targets="mlp")
    with pytest.raises(L.LoraSetupError, match="rank"):
        L.lora_config(rank=0)


def test_base_frozen_and_only_new_slot_changes():
    p = _policy()
    slot = L.choose_slot(p)
    src = L.init_embodiment_slot(p, slot, "mean")
    assert slot not in src
    csl = L.category_specific_layers(p)
    for layer in csl.values():  # mean initialisation
        torch.testing.assert_close(layer.W[slot], layer.W[torch.tensor(src)].mean(0))
    L.apply_lora(p, rank=4, alpha=8)
    before = {k: v.detach().clone() for k, v in p.state_dict().items()}
    counts = _train_steps(p, slot)
    assert counts["lora"] > 0 and counts["embodiment_slot"] > 0
    after = p.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    # every changed tensor is a LoRA tensor or an embodiment layer's W/b
    csl_keys = {f"{n}.{k}" for n in csl for k in ("W", "b")}
    assert changed and changed <= {k for k in before if "lora_" in k} | csl_keys
    assert any("lora_B" in k for k in changed)
    assert not any("base_layer" in k for k in changed), "frozen base weights moved"
    for k in csl_keys:
        other = [s for s in range(before[k].shape[0]) if s != slot]
        assert torch.equal(before[k][other], after[k][other]), f"{k}: another embodiment's slice changed"
    assert any(not torch.equal(before[k][slot], after[k][slot]) for k in csl_keys)


def test_adapter_and_merged_round_trips(tmp_path):
    base = _policy(1)
    base.save_pretrained(tmp_path / "base")
    p = GrootPolicy.from_pretrained(tmp_path / "base")
    slot = L.choose_slot(p, 20)
    L.init_embodiment_slot(p, slot, 1)
    cfg = L.apply_lora(p, rank=4, alpha=16)
    _train_steps(p, slot, steps=3)
    want = _chunk(p, slot)
    ad = L.save_adapters(p, tmp_path / "adapter", slot, cfg, base_checkpoint=str(tmp_path / "base"))
    files = sorted(os.listdir(ad))
    assert files == sorted([L.ADAPTER_CONFIG, L.ADAPTER_WEIGHTS, L.SLOT_WEIGHTS, L.FINETUNE_META])
    assert json.loads((ad / L.ADAPTER_CONFIG).read_text())["peft_type"] == "LORA"
    from safetensors.torch import load_file
    keys = list(load_file(str(ad / L.ADAPTER_WEIGHTS)))
    assert keys and all(k.startswith("base_model.model.") and "lora_" in k for k in keys)
    # adapters only, onto a freshly loaded base: bit-identical actions
    back = L.load_finetuned(ad)
    assert L.has_lora(back)
    assert torch.equal(_chunk(back, slot), want)
    # peft's own loader reads the same folder
    from peft import PeftModel
    pm = PeftModel.from_pretrained(GrootPolicy.from_pretrained(tmp_path / "base"), str(ad))
    L.load_slot_state_dict(pm.base_model.model, load_file(str(ad / L.SLOT_WEIGHTS)), slot)
    torch.testing.assert_close(_chunk(pm.base_model.model, slot), want, atol=0, rtol=0)
    # merged into a plain checkpoint: no LoRA modules, same actions (up to float rounding of the merge)
    merged = L.merge_lora(p)
    assert not L.has_lora(merged)
    assert not any("lora_" in k or "base_layer" in k for k in merged.state_dict())
    merged.save_pretrained(tmp_path / "merged")
    m2 = GrootPolicy.from_pretrained(tmp_path / "merged")
    torch.testing.assert_close(_chunk(m2, slot), want, atol=1e-5, rtol=1e-5)
    # other embodiments' slices in the merged checkpoint equal the base's
    for name, layer in L.category_specific_layers(m2).items():
        bl = dict(base.named_modules())[name]
        assert torch.equal(torch.cat([layer.W[:slot], layer.W[slot + 1:]]), torch.cat([bl.W[:slot], bl.W[slot + 1:]]))


def test_slot_and_adapter_errors(tmp_path):
    p = _policy()
    p.normalization["processors"] = {"so100": {"embodiment_id": 1}}
    with pytest.raises(L.LoraSetupError, match="already used"):
        L.choose_slot(p, 1)
    with pytest.raises(L.LoraSetupError, match="outside"):
        L.choose_slot(p, 99)
    assert L.choose_slot(p) != 1
    assert L.init_embodiment_slot(p, 5, "mean") == [1]
    with pytest.raises(L.LoraSetupError, match="nearest"):
        L.init_embodiment_slot(p, 5, "ur5")
    with pytest.raises(L.LoraSetupError, match="lacks"):
        L.load_adapters(p, tmp_path)
    with pytest.raises(L.LoraSetupError, match="no LoRA"):
        L.save_adapters(p, tmp_path / "x", 5)


def test_new_slot_copies_the_nearest_robot():
    """'nearest' copies the trained slot whose robot has the closest state/action dims; a robot's
    name copies that robot's slot; the copy is exact for every category-specific layer."""
    import numpy as np
    from groot_kit.data.modality import ModalityConfig
    from groot_kit.data.normalization import NormalizationStats
    from groot_kit.data.processor import GrootProcessor
    from groot_kit.embodiment import load_embodiment
    p = _policy()
    for name in ("so100", "panda7"):
        spec = load_embodiment(name)
        m = ModalityConfig.from_dict(spec.modality)
        rng = np.random.default_rng(0)
        stats = NormalizationStats.from_arrays(rng.normal(size=(20, m.state_dim)), rng.normal(size=(20, m.action_dim)), m)
        p.set_processor(GrootProcessor(m, stats=stats, embodiment=name, embodiment_id=spec.slot_id))
    assert L.init_embodiment_slot(p, 30, "nearest", new_dims=(6, 6)) == [1]   # 5 joints + gripper
    assert L.init_embodiment_slot(p, 30, "nearest", new_dims=(8, 8)) == [2]   # 7 joints + gripper
    assert L.init_embodiment_slot(p, 30, "nearest", new_dims=None) == [1, 2]  # dims unknown: the mean
    assert L.init_embodiment_slot(p, 29, "panda7") == [2]
    for layer in L.category_specific_layers(p).values():
        assert torch.equal(layer.W[29], layer.W[2]) and torch.equal(layer.b[29], layer.b[2])


@pytest.mark.slow
def test_finetune_pipeline_headless(tmp_path):
    """spec -> MJCF -> demos -> slot + LoRA -> train -> save both ways -> closed loop (tiny budget)."""
    from groot_kit.recipes.finetune import finetune
    rows = []
    res = finetune(None, num_demos=2, steps=6, rank=4, alpha=8, output_dir=tmp_path / "ft", eval_episodes=1,
                   base_checkpoint=None,
                   callbacks=[lambda s, r: rows.append((s, r["loss"]))], log_every=2, batch_size=4)
    assert [s for s, _ in rows] == [2, 4, 6]
    m = json.loads((tmp_path / "ft" / "metrics.json").read_text())
    assert m["success_rate"] is not None and m["trainable"]["lora"] > 0
    slot = res.slot_id
    want = _chunk(res.policy, slot)
    torch.testing.assert_close(_chunk(L.load_finetuned(res.adapter_dir), slot), want, atol=0, rtol=0)
    torch.testing.assert_close(_chunk(GrootPolicy.from_pretrained(res.merged_dir), slot), want, atol=1e-5, rtol=1e-5)


def test_finetune_cli_arguments_and_errors(tmp_path, capsys):
    import argparse
    from groot_kit.recipes.finetune import add_arguments, main
    from groot_kit.train.finetune import as_arm_spec
    p = argparse.ArgumentParser()
    add_arguments(p)
    a = p.parse_args(["--num-demos", "10", "--rank", "4", "--link-lengths", "0.1,0.2,0.2,0.1", "--num-joints", "4",
                      "--targets", "dit+vlm", "--output-dir", str(tmp_path)])
    assert (a.num_demos, a.rank, a.link_lengths, a.targets) == (10, 4, [0.1, 0.2, 0.2, 0.1], "dit+vlm")
    assert main(["--rank", "0", "--output-dir", str(tmp_path)]) == 2
    assert "rank=0" in capsys.readouterr().err
    assert main(["--num-joints", "3", "--output-dir", str(tmp_path)]) == 2
    assert "num_joints" in capsys.readouterr().err
    (tmp_path / "arm.yaml").write_text("num_joints: 4\nlink_lengths: [0.1, 0.2, 0.2, 0.1]\nwheels: 2\n")
    with pytest.raises(ValueError, match="wheels"):
        as_arm_spec(tmp_path / "arm.yaml")


def test_new_slot_is_aligned_by_joint_role():
    """A 6-joint arm initialised from so100 (5 joints + gripper): the gripper dims start from so100's
    gripper, the joints map first-to-first and last-to-last, unmatched dims start at zero."""
    from groot_kit.data.modality import ModalityConfig
    from groot_kit.train.lora import aligned_dims, category_specific_layers, init_embodiment_slot
    from pathlib import Path
    base = GrootPolicy.from_pretrained(Path(__file__).resolve().parents[1] / "data_samples/checkpoints/tiny_base")
    so100 = base.get_processor("so100").modality
    new = ModalityConfig.from_dims({"arm": 6, "gripper": 1}, {"arm": 6, "gripper": 1}, ["front"])
    pairs = dict(aligned_dims(so100, new, "action"))
    assert pairs[6] == 5 and pairs[0] == 0 and pairs[5] == 4          # gripper->gripper, chain ends
    assert sorted(pairs) == list(range(7))
    src = base.get_processor("so100").embodiment_id
    init_embodiment_slot(base, 29, "so100", new_modality=new)
    layers = category_specific_layers(base)
    dec = next(v for k, v in layers.items() if k.endswith("action_decoder.layer2"))
    enc = next(v for k, v in layers.items() if k.endswith("state_encoder.layer1"))
    assert torch.equal(dec.W[29][:, 6], dec.W[src][:, 5]) and torch.equal(dec.b[29][6], dec.b[src][5])
    assert torch.equal(enc.W[29][6], enc.W[src][5]) and not enc.W[29][7:].any()
    hidden = next(v for k, v in layers.items() if k.endswith("action_decoder.layer1"))
    assert torch.equal(hidden.W[29], hidden.W[src])                   # hidden layers: a plain copy
