"""DAgger-style recovery demos: the policy drives, the expert takes over from the policy's own state."""
import json
from pathlib import Path

import numpy as np
import pytest

from groot_kit.recipes.pretrain import PretrainConfig
from groot_kit.recipes.pretrain import run as pretrain_tiny

REPO = Path(__file__).resolve().parents[1]
BASE = REPO / "data_samples/checkpoints/tiny_base"


@pytest.fixture(scope="module")
def base_policy():
    from groot_kit.model.policy import GrootPolicy
    return GrootPolicy.from_pretrained(BASE).eval()


def test_handover_starts_from_the_policys_state(base_policy):
    from groot_kit.sim import make_env
    from groot_kit.eval import PolicyController
    from groot_kit.train.recovery import recovery_episodes

    stats: dict = {}
    eps = recovery_episodes(base_policy, "panda7", "reach", 3, seed=4242, start_noise=0.3, stats=stats)
    assert stats["kept"] == len(eps) == 3
    assert stats["tried"] == stats["kept"] + stats["policy_succeeded"] + stats["expert_failed"]
    late = [e for e in eps if e.provenance["handover_step"] > 0]
    assert late, "every hand-over drawn at step 0: the test needs one where the policy acted"
    for e in eps:
        assert e.provenance["source"] == "policy_handover" and e.tier == "synthetic"
        assert len(e) >= 4 and e.actions.shape == (len(e), 8) and e.frames["front"].shape[0] == len(e)
    # replay the policy for the same number of steps: the clip's first state is where it left the robot
    e = late[0]
    s, k = e.provenance["seed"], e.provenance["handover_step"]
    env = make_env("panda7", "reach", image_size=64, seed=s, num_cubes=1, start_noise=0.3)
    try:
        obs, _ = env.reset(seed=s)
        start = obs["state"].copy()
        ctl = PolicyController(base_policy, base_policy.get_processor("panda7"), env, seed=s)
        for _ in range(k):
            obs, *_ = env.step(ctl.act(obs))
    finally:
        env.close()
    np.testing.assert_allclose(e.states[0], obs["state"], atol=1e-5)
    assert not np.allclose(e.states[0], start, atol=1e-3)  # the policy moved the arm before the hand-over


def test_nudge_handover_starts_after_the_policy_pushed_the_cube():
    """trigger="nudge": the expert takes over only once the policy has moved the named cube off its
    spot without holding it; replaying the policy to the hand-over step shows the cube moved."""
    from groot_kit.model.policy import GrootPolicy
    from groot_kit.sim import make_env
    from groot_kit.eval import PolicyController
    from groot_kit.train.recovery import recovery_episodes, target_body

    ck = REPO / "data_samples/checkpoints/tiny_pick_so100_dagger2"
    policy = GrootPolicy.from_pretrained(ck).eval()
    stats: dict = {}
    eps = recovery_episodes(policy, "so100", "pick_place", 2, seed=1_400_000, num_cubes=3, start_noise=0.3,
                            trigger="nudge", stats=stats)
    assert stats["kept"] == len(eps) == 2
    assert stats["tried"] == stats["kept"] + stats["policy_succeeded"] + stats["expert_failed"] + stats["no_nudge"]
    e = eps[0]
    assert e.provenance["trigger"] == "nudge" and e.provenance["handover_step"] > 0 and e.success
    s, k = e.provenance["seed"], e.provenance["handover_step"]
    env = make_env("so100", "pick_place", image_size=64, seed=s, num_cubes=3, start_noise=0.3)
    try:
        obs, _ = env.reset(seed=s)
        body = target_body(env)
        start = env.body_pos(body)[:2].copy()
        ctl = PolicyController(policy, policy.get_processor("so100"), env, seed=s)
        for _ in range(k):
            obs, *_ = env.step(ctl.act(obs))
        moved = float(np.linalg.norm(env.body_pos(body)[:2] - start))
    finally:
        env.close()
    np.testing.assert_allclose(e.states[0], obs["state"], atol=1e-5)
    assert moved > 0.01, f"the named cube moved {moved:.4f} m before the hand-over"


def test_bad_recovery_settings_are_refused():
    with pytest.raises(ValueError, match="init_from"):
        PretrainConfig(recovery_episodes=10)
    with pytest.raises(ValueError, match="recovery_episodes"):
        PretrainConfig(recovery_episodes=-1, init_from=str(BASE))
    from groot_kit.train.recovery import recovery_episodes
    with pytest.raises(ValueError, match="handover_fraction"):
        recovery_episodes(None, "so100", "reach", 2, handover_fraction=0.0)
    with pytest.raises(ValueError, match="trigger 'random' or 'nudge'"):
        recovery_episodes(None, "so100", "reach", 2, trigger="late")
    with pytest.raises(ValueError, match="nudge_recovery_episodes needs a policy"):
        PretrainConfig(nudge_recovery_episodes=5)


@pytest.mark.slow
def test_recipe_adds_recovery_datasets_and_reuses_them(tmp_path):
    cfg = PretrainConfig.fast(output_dir=str(tmp_path / "pt"), embodiments=("so100",), expert_episodes=3,
                              teleop_episodes=1, video_episodes=0, max_steps=2, batch_size=4,
                              init_from=str(BASE), recovery_episodes=2)
    logs: list[str] = []
    res = pretrain_tiny(cfg, log=logs.append)
    rec = [d for d in res["data"]["datasets"] if d.get("source") == "policy_handover"]
    assert [d["name"] for d in rec] == ["so100_recovery"] and rec[0]["episodes"] == 2
    assert rec[0]["handover"]["kept"] == 2
    from groot_kit.data.reader import open_dataset
    assert open_dataset(rec[0]["path"]).num_episodes == 2
    # the base demos' stats stay the processor's (the recovery clips are short and near the goal)
    from groot_kit.data import NormalizationStats
    from groot_kit.data.sim_data import norm_modes_for
    from groot_kit.embodiment import load_embodiment
    expert = next(d for d in res["data"]["datasets"] if d["name"] == "so100_expert")
    want = NormalizationStats.from_dataset(open_dataset(expert["path"]), modes=norm_modes_for(load_embodiment("so100")))
    got = res["policy"].get_processor("so100").stats
    assert json.dumps(got.to_dict(), sort_keys=True) == json.dumps(want.to_dict(), sort_keys=True)
    logs.clear()
    pretrain_tiny(cfg, log=logs.append)
    assert any("reusing the recovery datasets" in s for s in logs)

    # DAgger aggregation: a later round (no new hand-overs here) trains on this round's recovery demos
    later = PretrainConfig.fast(output_dir=cfg.output_dir, embodiments=("so100",), expert_episodes=3,
                                teleop_episodes=1, video_episodes=0, max_steps=2, batch_size=4,
                                init_from=str(BASE), aggregate_recovery_from=(cfg.output_dir,))
    res2 = pretrain_tiny(later, log=lambda s: None)
    agg = [d for d in res2["data"]["datasets"] if d.get("aggregated_from")]
    assert [(d["name"], d["path"], d["aggregated_from"]) for d in agg] == [
        ("so100_recovery", rec[0]["path"], cfg.output_dir)]
    assert res2["train"]["frames"] == res["train"]["frames"]  # the same demos are in the mixture

    # a later round in the same output_dir: its own datasets, manifest and scenes; round 0's stay as written
    manifest0 = Path(cfg.output_dir) / "data" / "recovery_manifest.json"
    before = manifest0.read_text()
    r2 = PretrainConfig.fast(output_dir=cfg.output_dir, embodiments=("so100",), expert_episodes=3,
                             teleop_episodes=1, video_episodes=0, max_steps=2, batch_size=4, init_from=str(BASE),
                             recovery_episodes=2, recovery_round=2, checkpoint_dir=str(tmp_path / "round2"),
                             aggregate_recovery_from=(str(manifest0), str(manifest0)))
    res3 = pretrain_tiny(r2, log=lambda s: None)
    names = [(d["name"], bool(d.get("aggregated_from"))) for d in res3["data"]["datasets"]
             if d.get("source") == "policy_handover"]
    assert names == [("so100_recovery_r2", False), ("so100_recovery", True)]  # a manifest named twice counts once
    assert manifest0.read_text() == before and open_dataset(rec[0]["path"]).num_episodes == 2
    key2 = json.loads((Path(cfg.output_dir) / "data" / "recovery_manifest_r2.json").read_text())["key"]
    assert key2["round"] == 2 and "round" not in json.loads(before)["key"]


def test_aggregation_skips_a_robot_whose_definition_changed_and_names_a_missing_run(tmp_path):
    import groot_kit.train.pretrain as pt
    run = tmp_path / "round1"
    (run / "data" / "so100_recovery").mkdir(parents=True)
    from groot_kit.embodiment import load_embodiment
    key = {"embodiments": ["so100", "panda7"],
           "definitions": [pt._embodiment_digest(load_embodiment("so100")), "an-older-panda7"]}
    rows = [{"name": "so100_recovery", "path": str(run / "data" / "so100_recovery"), "embodiment": "so100",
             "episodes": 5},
            {"name": "panda7_recovery", "path": str(run / "data" / "panda7_recovery"), "embodiment": "panda7",
             "episodes": 5}]
    (run / "data" / "recovery_manifest.json").write_text(json.dumps({"key": key, "datasets": rows}))
    logs: list[str] = []
    cfg = PretrainConfig.fast(output_dir=str(tmp_path / "round2"), aggregate_recovery_from=(str(run),))
    got = pt.earlier_recovery_data(cfg, log=logs.append)
    assert [r["name"] for r in got] == ["so100_recovery"]
    assert any("panda7_recovery" in s and "definition changed" in s for s in logs)
    # the robot is left out of this run: its demos are not taken either
    assert pt.earlier_recovery_data(PretrainConfig.fast(embodiments=("panda7",), aggregate_recovery_from=(str(run),)),
                                    log=lambda s: None) == []
    with pytest.raises(FileNotFoundError, match=r"recovery_manifest.json does not exist. Fix"):
        pt.earlier_recovery_data(PretrainConfig.fast(aggregate_recovery_from=(str(tmp_path / "nope"),)))


def test_recovery_can_be_limited_to_some_robots(tmp_path):
    import groot_kit.train.pretrain as pt
    with pytest.raises(ValueError, match="recovery_embodiments names.*gr1_upper"):
        PretrainConfig.fast(recovery_embodiments=("gr1_upper",))
    cfg = PretrainConfig.fast(output_dir=str(tmp_path / "pt"), init_from=str(BASE), recovery_episodes=1,
                              recovery_embodiments=("panda7",))
    rows = pt.generate_recovery_data(cfg, log=lambda s: None)
    assert [r["name"] for r in rows] == ["panda7_recovery"] and rows[0]["episodes"] == 1
    key = json.loads((tmp_path / "pt" / "data" / "recovery_manifest.json").read_text())["key"]
    assert key["embodiments"] == ["panda7"] and len(key["definitions"]) == 1
    assert "trigger" not in key  # keys of runs recorded before the nudge kind existed still match


def test_nudge_recovery_is_its_own_dataset_beside_the_random_one(tmp_path):
    import groot_kit.train.pretrain as pt
    cfg = PretrainConfig.fast(output_dir=str(tmp_path / "pt"), embodiments=("so100",), task="pick_place",
                              num_cubes=3, init_from=str(REPO / "data_samples/checkpoints/tiny_pick_so100_dagger2"),
                              recovery_episodes=1, nudge_recovery_episodes=1)
    rows = pt.generate_recovery_data(cfg, log=lambda s: None)
    assert [(r["name"], r["trigger"], r["episodes"]) for r in rows] == [
        ("so100_recovery", "random", 1), ("so100_recovery_nudge", "nudge", 1)]
    data = tmp_path / "pt" / "data"
    assert json.loads((data / "recovery_nudge_manifest.json").read_text())["key"]["trigger"] == "nudge"
    logs: list[str] = []
    assert pt.generate_recovery_data(cfg, log=logs.append) == rows
    assert any("reusing the recovery_nudge datasets" in s for s in logs)
