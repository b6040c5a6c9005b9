"""System 2 grounding pretext (groot_kit.train.grounding): scenes, training, probe, recipe stage."""
import numpy as np
import pytest
import torch

from groot_kit.model.policy import GrootPolicy, last_prompt_token
from groot_kit.recipes.pretrain import PretrainConfig
from groot_kit.sim.env import CUBE_COLORS
from groot_kit.train.grounding import (GroundingConfig, GroundingHead, grounding_probe, render_grounding_scenes,
                                       train_grounding)
from groot_kit.train.pretrain import tiny_pretrain_policy_config


@pytest.fixture(scope="module")
def policy():
    torch.manual_seed(0)
    return GrootPolicy(tiny_pretrain_policy_config(num_views=2, subtask_loss_weight=0.0))


def test_scenes_name_each_cube_of_the_scene(policy):
    sc = render_grounding_scenes(policy, "so100", "reach", n_scenes=4, seed=1_200_000, num_cubes=3)
    S = policy.config.vlm.vision.image_size
    assert sc.pixel_values.shape == (4, 2, 3, S, S) and sc.pixel_values.dtype == torch.uint8
    assert sc.cube_xy.shape == (4, 3, 2) and sc.num_cubes == 3 and len(sc) == 4
    assert sc.pixel_values.float().std() > 5          # real renders, not blank frames
    for row in sc.instructions:
        named = [next(c for c in CUBE_COLORS if f" {c} cube" in text) for text in row]
        assert len(set(named)) == 3                    # each cube named once, by its own colour
    again = render_grounding_scenes(policy, "so100", "reach", n_scenes=2, seed=1_200_000, num_cubes=3)
    assert torch.equal(again.pixel_values, sc.pixel_values[:2]) and again.instructions == sc.instructions[:2]
    b = sc.batch(torch.tensor([1, 2]), torch.tensor([0, 2]))
    assert b["instruction"] == [sc.instructions[1][0], sc.instructions[2][2]]
    assert b["pixel_values"].shape == (2, 2, 3, S, S) and float(b["pixel_values"].max()) <= 1.0


def test_pick_place_instructions_name_cube_and_bin(policy):
    sc = render_grounding_scenes(policy, "so100", "pick_place", n_scenes=2, seed=1_200_100, num_cubes=3)
    assert all("bin" in t and "cube" in t for row in sc.instructions for t in row)


def test_one_cube_is_refused(policy):
    with pytest.raises(ValueError, match="num_cubes >= 2"):
        render_grounding_scenes(policy, "so100", "reach", n_scenes=2, seed=1_200_000, num_cubes=1)


def test_training_fits_the_pretext_and_moves_system2(policy):
    sc = render_grounding_scenes(policy, "so100", "reach", n_scenes=6, seed=1_200_200, num_cubes=3)
    before = {k: v.clone() for k, v in policy.backbone.state_dict().items()}
    head, info = train_grounding(policy, [sc], [sc], GroundingConfig(minutes=0, max_steps=40, batch_size=18,
                                                                     learning_rate=1e-3, eval_every=20),
                                 log=lambda s: None)
    assert info["steps"] == 40 and [r["step"] for r in info["curve"]] == [0, 20, 40]
    assert info["curve"][-1]["loss"] < info["curve"][1]["loss"]          # it learns the (tiny) training set
    assert any(not torch.equal(before[k], v) for k, v in policy.backbone.state_dict().items())
    probe = info["final_probe"]["so100"]
    assert probe["n_queries"] == 18 and 0 <= probe["own_nearest"] <= 18
    assert probe["own_nearest_rate"] == probe["own_nearest"] / 18 and probe["chance"] == pytest.approx(1 / 3)
    assert probe == grounding_probe(policy, head, sc)                     # the probe is deterministic
    assert np.isfinite(probe["error_cm"]) and np.isfinite(probe["error_blank_cm"])


def test_head_reads_the_last_real_prompt_token(policy):
    head = GroundingHead(policy.config.vlm.output_dim, torch.zeros(2), torch.ones(2))
    vl = torch.arange(2 * 5 * 3, dtype=torch.float).view(2, 5, 3)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 0, 1, 1, 0]], dtype=torch.bool)     # padding mid-prompt too
    assert torch.equal(last_prompt_token(vl, mask), torch.stack([vl[0, 2], vl[1, 3]]))
    assert torch.allclose(head.to_metres(head.normalise(torch.tensor([[0.3, -0.1]]))), torch.tensor([[0.3, -0.1]]))


def test_settings_are_checked():
    with pytest.raises(ValueError, match="num_cubes >= 2"):
        PretrainConfig(num_cubes=1, grounding_scenes=100)
    with pytest.raises(ValueError, match="grounding_minutes"):
        PretrainConfig(num_cubes=3, grounding_scenes=100, grounding_minutes=0)
    with pytest.raises(ValueError, match="GroundingConfig"):
        GroundingConfig(minutes=0, max_steps=0)


def test_committed_language_checkpoint_and_its_ablation_agree():
    import json
    from groot_kit.paths import REPO_ROOT, TINY_LANG_SO100
    p = GrootPolicy.from_pretrained(REPO_ROOT / TINY_LANG_SO100)
    assert p.get_processor("so100").embodiment_id == 1 and p.config.vlm.prompt_order == "image_first"
    r = json.loads((REPO_ROOT / "benchmarks/results/language_ablation_grounding.json").read_text())["results"]["so100"]
    assert r["seed"] >= 300_000 and r["n_episodes"] == 50                  # reported range
    for name, cond in r["conditions"].items():
        conf = r["confusion"][name]
        assert sum(sum(row.values()) for row in conf.values()) == cond["n"]
        assert sum(row.get(named, 0) for named, row in conf.items()) == cond["named_cube"]
    g = json.loads((REPO_ROOT / "benchmarks/results/pretrain_lang_grounding.json").read_text())
    assert g["config"]["grounding_scenes"] > 0 and g["train"]["trainable"]["tune_llm"] == 0
