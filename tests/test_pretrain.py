"""The tiny pretraining recipe: config, time budget, and data generation + training end to end."""
import json
from pathlib import Path

import numpy as np
import pytest

from groot_kit.recipes.pretrain import PretrainConfig
from groot_kit.recipes.pretrain import run as pretrain_tiny
from groot_kit.train.pretrain import tiny_pretrain_policy_config
from groot_kit.train.time_budget import TimeBudget

REPO = Path(__file__).resolve().parents[1]


def test_policy_config_two_views_and_cotraining():
    cfg = tiny_pretrain_policy_config(num_views=2, subtask_loss_weight=0.1)
    assert cfg.vlm.num_views == 2 and cfg.subtask_loss_weight == 0.1 and cfg.preset == "tiny"


def test_time_budget_caps_steps():
    class C:
        max_steps = 10_000
    c = C()
    tb = TimeBudget(c, minutes=2.0, log=lambda s: None)
    tb(10, {})
    assert c.max_steps == 10_000  # too early to measure
    tb.t0 -= 60.0                  # pretend 60 steps took 60 s: 1 s/step -> 120 steps fit in 2 minutes
    tb(60, {})
    assert 115 <= c.max_steps <= 121


def test_time_budget_waits_for_the_sample_cache_before_fixing_max_steps():
    class C:
        max_steps = 10_000
    c, lines = C(), []
    tb = TimeBudget(c, minutes=10.0, log=lines.append)
    tb.t0 -= 0.7 * 600                   # 70% of the budget gone, but a third of the reads still decode
    tb(420, {"steps_per_s": 1.0, "cache_miss": 0.33})
    assert not tb.done and 420 + 178 <= c.max_steps <= 420 + 180
    tb(430, {"steps_per_s": 2.0, "cache_miss": 0.02})   # cached now: the fast rate fixes the count
    assert tb.done and 430 + 356 <= c.max_steps <= 430 + 360 and "70% of it gone" in lines[-1]
    c2 = C()
    late = TimeBudget(c2, minutes=10.0, log=lines.append)
    late.t0 -= 0.95 * 600                # still missing at 95%: freeze anyway (freeze_by=0.9)
    late(500, {"steps_per_s": 1.0, "cache_miss": 0.5})
    assert late.done and "cache still filling" in lines[-1]


@pytest.mark.slow
def test_recipe_end_to_end_tiny_budget(tmp_path):
    res = pretrain_tiny(PretrainConfig.fast(output_dir=str(tmp_path / "pt"), embodiments=("so100",), expert_episodes=3,
                                            teleop_episodes=1, video_episodes=2, max_steps=4, batch_size=4,
                                            eval_episodes=1, results_file=str(tmp_path / "r.json"),
                                            checkpoint_dir=str(tmp_path / "ck"), prompt_order="text_first",
                                            goal_loss_weight=0.5, num_cubes=3, grounding_scenes=6, grounding_subtask_weight=0.5,
                                            grounding_minutes=0.02, grounding_max_steps=2, freeze_system2=True),
                        log=lambda s: None)
    tiers = {d["tier"] for d in res["data"]["datasets"]}
    assert tiers == {"synthetic", "teleop", "video"}
    assert res["train"]["steps"] == 4 and np.isfinite(res["train"]["final_loss"])
    assert res["closed_loop"]["so100"]["n_episodes"] == 1
    assert np.isfinite(res["open_loop"]["so100"]["mse"])
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["train"]["steps"] == 4
    from groot_kit.model.policy import GrootPolicy
    p = GrootPolicy.from_pretrained(tmp_path / "ck")
    assert p.get_processor("so100").embodiment_id == 1 and p.config.vlm.num_views == 2
    assert p.config.vlm.prompt_order == "text_first" and p.config.goal_loss_weight == 0.5
    assert np.isfinite(res["train"]["final_goal_loss"]) and p.goal_head.weight.shape[0] == p.config.action_head.max_state_dim
    g = res["train"]["grounding"]                       # the pretext ran first, then System 2 stayed frozen
    assert g["train_scenes"] == {"so100": 6} and g["final_probe"]["so100"]["n_queries"] == 300 * 3
    assert res["train"]["trainable"]["tune_llm"] == 0 and res["train"]["trainable"]["tune_visual"] == 0
    assert res["train"]["trainable"]["tune_diffusion_model"] > 0 and saved["train"]["grounding"]["steps"] == 2

    # a chained stage in the same output_dir reuses the datasets and trains in its own folder
    # (the first stage's final trainer checkpoint there would otherwise be refused as another run's).
    # The warm start also carries panda7 (tiny_base's processor): a stage training so100 only keeps it
    norm_file = tmp_path / "ck" / "normalization.json"
    norm = json.loads(norm_file.read_text())
    base_procs = json.loads((REPO / "data_samples/checkpoints/tiny_base/normalization.json").read_text())["processors"]
    norm["processors"]["panda7"] = base_procs["panda7"]
    norm_file.write_text(json.dumps(norm))
    logs: list[str] = []
    res2 = pretrain_tiny(PretrainConfig.fast(output_dir=str(tmp_path / "pt"), embodiments=("so100",), expert_episodes=3,
                                             teleop_episodes=1, video_episodes=2, max_steps=3, batch_size=4,
                                             learning_rate=5e-5, eval_episodes=0, num_cubes=3, freeze_system2=True,
                                             init_from=str(tmp_path / "ck"), checkpoint_dir=str(tmp_path / "ck2")),
                         log=logs.append)
    assert any("reusing its datasets" in s for s in logs) and res2["train"]["steps"] == 3
    assert sorted(p.name for p in (tmp_path / "pt" / "train").iterdir()) == ["ck", "ck2"]
    ck2 = GrootPolicy.from_pretrained(tmp_path / "ck2")
    assert ck2.config.vlm.prompt_order == "text_first"
    procs2 = ck2.normalization["processors"]
    assert procs2["panda7"] == base_procs["panda7"] and procs2["so100"] != base_procs["so100"]


@pytest.mark.skipif(not (REPO / "benchmarks/results/pretrain_tiny.json").exists(), reason="recipe not run yet")
def test_committed_results_are_consistent():
    r = json.loads((REPO / "benchmarks/results/pretrain_tiny.json").read_text())
    for emb, c in r["closed_loop"].items():
        assert c["successes"] == sum(e["success"] for e in c["episodes"])
        assert abs(c["success_rate"] - c["successes"] / c["n_episodes"]) < 1e-9


def test_embodiment_weights_set_each_robots_batch_share():
    """A lagging robot can be given a larger share of every batch; the tier weights still apply."""
    from groot_kit.model.policy import GrootPolicy
    from groot_kit.train.pretrain import build_mixture
    samples = REPO / "data_samples"
    rows = [{"path": str(samples / name), "embodiment": emb, "slot": slot, "tier": tier, "role": "train"}
            for name, emb, slot, tier in (("panda7_expert", "panda7", 2, "synthetic"),
                                          ("gr1_upper_expert", "gr1_upper", 24, "synthetic"),
                                          ("so100_teleop", "so100", 1, "teleop"))]

    def shares(weights):
        cfg = PretrainConfig.fast(embodiments=("so100", "panda7", "gr1_upper"), embodiment_weights=weights)
        mix, _ = build_mixture(GrootPolicy(tiny_pretrain_policy_config()), {"datasets": rows}, cfg)
        w = mix.sample_weights()
        return {ds.embodiment_id: float(w[mix.offsets[i]:mix.offsets[i + 1]].sum())
                for i, ds in enumerate(mix.datasets)}

    # tier weights: synthetic 1.0, teleop 0.5 -> so100 0.5, panda7 1.0, gr1_upper 1.0 (x2 when weighted)
    even, heavy = shares({}), shares({"gr1_upper": 2.0})
    assert even[24] == pytest.approx(1.0 / 2.5) and even[1] == pytest.approx(0.5 / 2.5)
    assert heavy[24] == pytest.approx(2.0 / 3.5) and heavy[1] == pytest.approx(0.5 / 3.5)


def test_bad_embodiment_weights_are_refused():
    with pytest.raises(ValueError, match="not one of the embodiments"):
        PretrainConfig(embodiment_weights={"gr1": 2.0})
    with pytest.raises(ValueError, match="positive number"):
        PretrainConfig(embodiment_weights={"gr1_upper": 0})


def test_language_stage_settings_are_checked():
    with pytest.raises(ValueError, match="targets_per_scene"):
        PretrainConfig(num_cubes=1, targets_per_scene=3)
    with pytest.raises(ValueError, match="prompt_order"):
        PretrainConfig(prompt_order="images_last")
    with pytest.raises(ValueError, match="goal_loss_weight"):
        PretrainConfig(goal_loss_weight=-0.1)
    assert PretrainConfig(num_cubes=3, targets_per_scene=3).targets_per_scene == 3


def test_data_is_reused_per_embodiment_until_its_definition_changes(tmp_path, monkeypatch):
    """A second run reuses every embodiment's datasets; after one robot's files change, only that
    robot's datasets are regenerated."""
    import groot_kit.train.pretrain as pt
    from groot_kit.embodiment import load_embodiment
    cfg = PretrainConfig.fast(output_dir=str(tmp_path / "pt"), expert_episodes=1, teleop_episodes=1,
                              video_episodes=0, heldout_episodes=0)
    first = pt.generate_pretrain_data(cfg, log=lambda s: None)
    assert first["reused"] == [] and {d["embodiment"] for d in first["datasets"]} == {"so100", "panda7"}
    assert pt.generate_pretrain_data(cfg, log=lambda s: None)["reused"] == ["so100", "panda7"]

    # the digest follows the files: an edited copy of so100 hashes differently
    import shutil
    copy = tmp_path / "so100_copy"
    shutil.copytree(load_embodiment("so100").root, copy)
    before = pt._embodiment_digest(load_embodiment(copy))
    (copy / "scene.xml").write_text((copy / "scene.xml").read_text().replace('fovy="', 'fovy="1'))
    assert pt._embodiment_digest(load_embodiment(copy)) != before

    real = pt._embodiment_digest
    monkeypatch.setattr(pt, "_embodiment_digest", lambda spec: real(spec) + ("-edited" if spec.name == "panda7" else ""))
    third = pt.generate_pretrain_data(cfg, log=lambda s: None)
    assert third["reused"] == ["so100"] and [d["name"] for d in third["datasets"]] == [
        "so100_expert", "so100_teleop", "panda7_expert", "panda7_teleop"]
