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


def test_pick_place_scenes_name_cube_and_bin_and_regress_both(policy):
    sc = render_grounding_scenes(policy, "so100", "pick_place", n_scenes=3, seed=1_200_100, num_cubes=3)
    assert all("bin" in t and "cube" in t for row in sc.instructions for t in row)
    assert sc.has_bins and sc.bin_xy.shape == (3, 2, 2) and sc.bin_choice.shape == (3, 3)
    assert float((sc.bin_xy[:, 0] - sc.bin_xy[:, 1]).norm(dim=-1).min()) > 0.05     # two distinct bins
    for i in range(3):
        for k in range(3):
            pair = sc.pair_instructions[i][k]
            assert pair[0] != pair[1] and sc.instructions[i][k] == pair[int(sc.bin_choice[i, k])]
    idx, cube, bin_ = torch.tensor([0, 2]), torch.tensor([1, 0]), torch.tensor([1, 0])
    assert sc.batch(idx, cube, bin=bin_)["instruction"] == [sc.pair_instructions[0][1][1], sc.pair_instructions[2][0][0]]
    t = sc.targets(idx, cube, bin_)
    assert t.shape == (2, 4) and torch.equal(t[:, :2], sc.cube_xy[idx, cube]) and torch.equal(t[:, 2:], sc.bin_xy[idx, bin_])
    head, info = train_grounding(policy, [sc], [sc], GroundingConfig(minutes=0, max_steps=2, batch_size=4, eval_every=2),
                                 log=lambda s: None)
    assert head.proj.out_features == 4
    probe = info["final_probe"]["so100"]
    assert probe["n_queries"] == 9 and 0 <= probe["bin_nearest"] <= 9 and probe["bin_chance"] == 0.5
    assert "bin_nearest_rate" in info["curve"][-1]
    reach = render_grounding_scenes(policy, "so100", "reach", n_scenes=2, seed=1_200_100, num_cubes=3)
    assert not reach.has_bins
    with pytest.raises(ValueError, match="one task"):
        train_grounding(policy, [sc], [reach], GroundingConfig(minutes=0, max_steps=1), log=lambda s: None)


@pytest.fixture(scope="module")
def pick_place_demos(policy, tmp_path_factory):
    """Two real so100 pick_place expert demos on disk, read through the policy's processor."""
    from groot_kit.data import GrootDataset, write_dataset
    from groot_kit.data.processor import GrootProcessor
    from groot_kit.data.sim_data import modality_for, sim_episodes
    from groot_kit.embodiment import load_embodiment

    spec = load_embodiment("so100")
    eps = list(sim_episodes("so100", "pick_place", 2, policy.config.vlm.vision.image_size, 1_300_000,
                            only_success=True, num_cubes=3))
    root = write_dataset(eps, tmp_path_factory.mktemp("pp") / "demos", modality_for(spec), fps=int(spec.control_hz),
                         robot_type="so100", embodiment="so100", embodiment_id=spec.slot_id)
    if "so100" not in getattr(policy, "processors", {}):
        policy.set_processor(GrootProcessor.from_dataset(GrootDataset(root, image_size=policy.config.vlm.vision.image_size)))
    ds, _ = GrootDataset.for_policy(policy, root, policy.get_processor("so100"))
    return ds


def test_subtask_text_loss_is_the_forward_pass_text_term(policy, pick_place_demos):
    from groot_kit.data import collate
    batch = collate([pick_place_demos[i] for i in (0, 40, 80)])
    assert len(set(batch["subtask"])) > 1
    old = policy.config.subtask_loss_weight
    policy.config.subtask_loss_weight = 0.1
    try:
        with torch.no_grad():
            _, info = policy.eval()(batch)
            alone = policy.subtask_text_loss(batch)
    finally:
        policy.config.subtask_loss_weight = old
    assert float(alone) == pytest.approx(info["subtask_loss"], rel=1e-5)


def test_pretext_cotrains_the_subtask_text(policy, pick_place_demos):
    sc = render_grounding_scenes(policy, "so100", "pick_place", n_scenes=4, seed=1_200_300, num_cubes=3)
    cfg = GroundingConfig(minutes=0, max_steps=60, batch_size=4, learning_rate=1e-3, eval_every=20,
                          subtask_weight=1.0, subtask_batch_size=8)
    _, info = train_grounding(policy, [sc], [sc], cfg, log=lambda s: None, subtask_data=pick_place_demos)
    text = [r["subtask_loss"] for r in info["curve"][1:]]
    assert info["subtask_weight"] == 1.0 and len(text) == 3 and text[-1] < text[0]
    _, off = train_grounding(policy, [sc], [sc], GroundingConfig(minutes=0, max_steps=2, batch_size=4, eval_every=2),
                             log=lambda s: None)
    assert off["subtask_weight"] == 0.0 and "subtask_loss" not in off["curve"][-1]
    with pytest.raises(ValueError, match="subtask_data"):
        train_grounding(policy, [sc], [sc], GroundingConfig(minutes=0, max_steps=1, subtask_weight=0.5), log=lambda s: None)


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
    assert PretrainConfig(num_cubes=3, grounding_scenes=100, grounding_minutes=0, grounding_max_steps=50)  # steps decide
    with pytest.raises(ValueError, match="grounding_max_steps=-1"):
        PretrainConfig(num_cubes=3, grounding_scenes=100, grounding_max_steps=-1)
    with pytest.raises(ValueError, match="GroundingConfig"):
        GroundingConfig(minutes=0, max_steps=0)
    with pytest.raises(ValueError, match="subtask_weight"):
        GroundingConfig(subtask_weight=-1)
    with pytest.raises(ValueError, match="grounding_subtask_weight"):
        PretrainConfig(num_cubes=3, grounding_subtask_weight=0.5)            # a pretext loss without a pretext


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


@pytest.mark.parametrize("checkpoint,ablation,pretrain", [
    (None, "pick_place", "pretrain_pick_place_so100.json"),          # earlier stages: rebuilt by the chain
    (None, "pick_place_dagger", "pretrain_pick_place_so100_dagger.json"),
    ("TINY_PICK_SO100_DAGGER2", "pick_place_dagger2", "pretrain_pick_place_so100_dagger2.json")])
def test_committed_pick_place_checkpoint_and_its_measurements_agree(checkpoint, ablation, pretrain):
    import json

    from groot_kit import paths
    if checkpoint:
        p = GrootPolicy.from_pretrained(paths.REPO_ROOT / getattr(paths, checkpoint))
        assert p.get_processor("so100").embodiment_id == 1 and p.config.subtask_loss_weight > 0   # names sub-tasks
    res = paths.REPO_ROOT / "benchmarks/results"
    for name in (f"language_ablation_{ablation}.json", f"language_ablation_tuning_{ablation}.json"):
        r = json.loads((res / name).read_text())["results"]["so100"]
        assert r["task"] == "pick_place" and r["n_episodes"] == 50
        assert (r["seed"] >= 300_000) == ("tuning" not in name)              # reported vs tuning range
        for cond_name, cond in r["conditions"].items():
            conf = r["confusion"][cond_name]
            assert sum(sum(row.values()) for row in conf.values()) == cond["n"]
            assert sum(row.get(named, 0) for named, row in conf.items()) == cond["named_cube"]
            assert cond["successes"] <= cond["n"]
        s = r["subtask_accuracy"]
        assert s["correct"] == sum(c for c, _ in s["per_label"].values()) and s["n_frames"] == sum(
            n for _, n in s["per_label"].values())
    g = json.loads((res / pretrain).read_text())
    assert g["config"]["task"] == "pick_place" and g["train"]["trainable"]["tune_llm"] == 0
    if g["config"]["grounding_scenes"]:                  # the first stage: System 2's pretext
        probe = g["train"]["grounding"]["final_probe"]["so100"]
        assert g["config"]["grounding_subtask_weight"] > 0 and probe["bin_nearest"] <= probe["n_queries"]
    else:                                                # a DAgger round: hand-over demos from the stage before
        rec = [d for d in g["data"]["datasets"] if d.get("source") == "policy_handover"]
        assert rec and rec[0]["episodes"] == g["config"]["recovery_episodes"]
        assert rec[0]["handover"]["kept"] == rec[0]["episodes"] <= rec[0]["handover"]["tried"]
