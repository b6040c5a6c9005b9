"""The tiny pretraining recipe: config, time budget, and data generation + training end to end."""
import json
from pathlib import Path

import numpy as np
import pytest

from groot_kit.train.pretrain import PretrainConfig, _TimeBudget, pretrain_tiny, tiny_pretrain_policy_config

REPO = Path(__file__).resolve().parents[1]


def test_policy_config_two_views_and_cotraining():
    cfg = tiny_pretrain_policy_config(num_views=2, subtask_loss_weight=0.1)
    assert cfg.vlm.num_views == 2 and cfg.subtask_loss_weight == 0.1 and cfg.preset == "tiny"


def test_time_budget_caps_steps():
    class C:
        max_steps = 10_000
    c = C()
    tb = _TimeBudget(c, minutes=2.0, log=lambda s: None)
    tb(10, {})
    assert c.max_steps == 10_000  # too early to measure
    tb.t0 -= 60.0                  # pretend 60 steps took 60 s: 1 s/step -> 120 steps fit in 2 minutes
    tb(60, {})
    assert 115 <= c.max_steps <= 121


@pytest.mark.slow
def test_recipe_end_to_end_tiny_budget(tmp_path):
    res = pretrain_tiny(PretrainConfig.fast(output_dir=str(tmp_path / "pt"), embodiments=("so100",), expert_episodes=3,
                                            teleop_episodes=1, video_episodes=2, max_steps=4, batch_size=4,
                                            eval_episodes=1, results_file=str(tmp_path / "r.json"),
                                            checkpoint_dir=str(tmp_path / "ck")), log=lambda s: None)
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


@pytest.mark.skipif(not (REPO / "benchmarks/results/pretrain_tiny.json").exists(), reason="recipe not run yet")
def test_committed_results_are_consistent():
    r = json.loads((REPO / "benchmarks/results/pretrain_tiny.json").read_text())
    for emb, c in r["closed_loop"].items():
        assert c["successes"] == sum(e["success"] for e in c["episodes"])
        assert abs(c["success_rate"] - c["successes"] / c["n_episodes"]) < 1e-9
