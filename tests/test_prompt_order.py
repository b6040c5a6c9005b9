"""System 2's prompt layout: GR00T's image_first, and text_first (image tokens can read the instruction)."""
from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from groot_kit.config import ConfigError, get_preset
from groot_kit.model.policy import GrootPolicy, dummy_batch

SHORT, LONG = "reach the red cube", "pick up the green cube and place it in the yellow bin"


def _policy(order: str) -> GrootPolicy:
    torch.manual_seed(0)
    cfg = get_preset("tiny")
    cfg = dataclasses.replace(cfg, vlm=dataclasses.replace(cfg.vlm, prompt_order=order))
    return GrootPolicy(cfg).eval()


@pytest.mark.parametrize("order", ["image_first", "text_first"])
def test_layout_has_fixed_length_and_masks_only_padding(order):
    p = _policy(order)
    ids, mask = p.tokenize([SHORT, LONG])
    v = p.config.vlm
    n_img = v.num_views * v.image_tokens_per_view
    assert ids.shape == mask.shape == (2, 2 + n_img + v.max_text_tokens)
    tok = p.tokenizer
    for row, m, text in zip(ids.tolist(), mask.tolist(), (SHORT, LONG)):
        text_ids = tok(text, add_special_tokens=False).input_ids
        assert row[0] == tok.bos_token_id
        assert sum(m) == 2 + n_img + len(text_ids)
        assert all(t == tok.pad_token_id for t, k in zip(row, m) if k == 0)
        img_pos = [i for i, t in enumerate(row) if t == p.image_token_id]
        assert len(img_pos) == n_img and img_pos == list(range(img_pos[0], img_pos[0] + n_img))
        if order == "text_first":
            assert row[1:1 + len(text_ids)] == text_ids
            assert img_pos[0] == 1 + v.max_text_tokens       # the same slot whatever the instruction
            assert row[-1] == tok.eos_token_id
        else:
            assert img_pos[0] == 1
            assert row[1 + n_img:1 + n_img + len(text_ids)] == text_ids


@pytest.mark.parametrize("order", ["image_first", "text_first"])
def test_image_tokens_read_the_instruction_only_when_text_comes_first(order):
    """The LM is causal: only in text_first do the image tokens' features depend on the words."""
    p = _policy(order)
    batch = dummy_batch(p, 1, seed=3)
    n_img = p.config.vlm.num_views * p.config.vlm.image_tokens_per_view
    feats = []
    for text in ("move the gripper above the red cube", "move the gripper above the blue cube"):
        ids, mask = p.tokenize([text])
        with torch.no_grad():
            hidden = p.backbone.lm_hidden(batch["pixel_values"], ids, mask)
        feats.append(hidden[0, (ids[0] == p.image_token_id)])
    assert feats[0].shape[0] == n_img
    diff = (feats[0] - feats[1]).abs().max().item()
    if order == "text_first":
        assert diff > 1e-3
    else:
        assert diff == 0.0


def test_layout_survives_save_and_load(tmp_path):
    p = _policy("text_first")
    p.save_pretrained(tmp_path / "ckpt")
    q = GrootPolicy.from_pretrained(tmp_path / "ckpt")
    assert q.config.vlm.prompt_order == "text_first"
    batch = dummy_batch(p, 2, seed=1)
    noise = torch.randn(2, p.config.action_head.action_horizon, p.config.action_head.max_action_dim)
    torch.testing.assert_close(p.predict_action_chunk(batch, noise=noise), q.predict_action_chunk(batch, noise=noise))


def test_bad_order_is_refused_with_the_choices():
    cfg = get_preset("tiny")
    with pytest.raises(ConfigError, match="prompt_order.*image_first"):
        dataclasses.replace(cfg.vlm, prompt_order="images_last")


@pytest.mark.parametrize("order", ["image_first", "text_first"])
def test_bundle_runtime_builds_the_same_prompt(order, tmp_path):
    """The Jetson bundle's standalone runtime (no groot_kit import) lays the prompt out like the policy."""
    p = _policy(order)
    p.tokenizer.save_pretrained(str(tmp_path / "tokenizer"))
    spec = importlib.util.spec_from_file_location(
        "bundle_runtime", Path(__file__).parents[1] / "groot_kit" / "export" / "bundle_runtime.py")
    rt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rt)
    v, tok = p.config.vlm, p.tokenizer
    n_img = v.num_views * v.image_tokens_per_view
    builder = rt.PromptBuilder(tmp_path, {"bos_id": tok.bos_token_id, "eos_id": tok.eos_token_id,
                                          "pad_id": tok.pad_token_id, "image_token_id": int(p.image_token_id),
                                          "num_image_tokens": n_img, "max_text_tokens": v.max_text_tokens,
                                          "seq_len": 2 + n_img + v.max_text_tokens, "order": order})
    ids, mask = builder([SHORT, LONG])
    ref_ids, ref_mask = p.tokenize([SHORT, LONG])
    np.testing.assert_array_equal(ids, ref_ids.numpy())
    np.testing.assert_array_equal(mask, ref_mask.numpy())
