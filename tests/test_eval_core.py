"""groot_kit.eval: the seed rule, the Wilson interval, the one controller's chunk modes, instruction
override, processor resolution and the eval CLI's failure behaviour."""
import argparse
import math

import numpy as np
import pytest

from groot_kit.data.processor import processor_for
from groot_kit.eval import PolicyController, evaluate_closed_loop, scene_seeds, sim_observation, wilson_interval
from groot_kit.eval.seeds import RESERVED_SEED_START, finetune_eval_seed
from groot_kit.sim import make_env

from test_evaluate import REPO, _so100_policy


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(183, 220)                       # the humanoid's pooled reach figure
    assert abs(lo - 0.7768) < 5e-4 and abs(hi - 0.8755) < 5e-4     # worked by hand from the formula
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    lo, hi = wilson_interval(5, 10)
    assert math.isclose(lo + hi, 1.0, abs_tol=1e-12)         # symmetric around 1/2
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(11, 10)


def test_seed_rule_and_reserved_range():
    assert scene_seeds(300_000, 3) == [300_000, 300_001, 300_002]
    assert finetune_eval_seed(1) == 101_000
    with pytest.raises(ValueError, match="reserved"):
        scene_seeds(RESERVED_SEED_START - 2, 5)
    assert scene_seeds(RESERVED_SEED_START, 2, allow_reserved=True) == [RESERVED_SEED_START, RESERVED_SEED_START + 1]


@pytest.fixture(scope="module")
def so100_policy():
    return _so100_policy()


def _drive(so100_policy, mode, n, queries):
    env = make_env("so100", "reach", image_size=64, seed=3, num_cubes=1)
    try:
        obs, _ = env.reset(seed=3)
        ctl = PolicyController(so100_policy, so100_policy.get_processor("so100"), env, mode=mode, replan_every=n,
                               seed=3)
        acts = []
        for _ in range(17):
            a = ctl.act(obs)
            assert a.shape == (env.spec_e.action_dim,) and np.isfinite(a).all()
            acts.append(a)
            obs, *_ = env.step(a)
        assert ctl.queries == queries            # 17 steps: whole chunks of 16 -> 2; every 4 -> 5
        assert len(ctl.executor.boundaries) == queries
    finally:
        env.close()
    return acts


@pytest.mark.parametrize("mode,n,queries", [("whole", None, 2), ("replan", 4, 5), ("ensemble", 4, 5)])
def test_controller_modes_query_on_schedule(so100_policy, mode, n, queries):
    _drive(so100_policy, mode, n, queries)


def test_ensemble_blends_where_replan_switches(so100_policy):
    replan = _drive(so100_policy, "replan", 4, 5)
    ens = _drive(so100_policy, "ensemble", 4, 5)
    np.testing.assert_array_equal(np.stack(replan[:4]), np.stack(ens[:4]))   # one chunk: same actions
    assert not np.allclose(replan[4], ens[4])                               # two live chunks: a blend


def test_sim_observation_cuts_state_by_key_and_overrides_instruction(so100_policy):
    proc = so100_policy.get_processor("so100")
    env = make_env("so100", "reach", image_size=64, seed=4, num_cubes=1)
    try:
        obs, info = env.reset(seed=4)
        raw = sim_observation(env, obs, proc.modality)
        assert raw["annotation.human.task_description"] == info["instruction"]
        for k, ks in env.spec_e.state.items():
            np.testing.assert_array_equal(raw[f"state.{k}"], obs["state"][ks.start:ks.end])
        assert sim_observation(env, obs, proc.modality, "wave")["annotation.human.task_description"] == "wave"
        assert "video.front" not in sim_observation(env, obs, proc.modality, video=False)
    finally:
        env.close()


def test_instruction_override_changes_the_actions(so100_policy):
    kw = dict(task="reach", n_episodes=1, seed=100_000, max_steps=8, num_cubes=1)
    a = evaluate_closed_loop(so100_policy, "so100", **kw)
    b = evaluate_closed_loop(so100_policy, "so100", instruction="move the gripper above the blue cube", **kw)
    assert b["episodes"][0]["given_instruction"] == "move the gripper above the blue cube"
    assert "given_instruction" not in a["episodes"][0]
    assert a["ci95"][0] <= a["success_rate"] <= a["ci95"][1] and a["seeds"] == [100_000]


def test_processor_for_resolves_folders_slots_and_refuses_unknown(so100_policy):
    from groot_kit.embodiment import load_embodiment
    spec = load_embodiment("so100")
    by_folder = processor_for(so100_policy, str(spec.root))
    assert by_folder.embodiment == "so100"
    with pytest.raises(ValueError, match="processors for"):
        processor_for(so100_policy, "panda7")
    # a policy with no processor at all (random init) gets joint-limit stats for the robot
    from groot_kit.model.policy import GrootPolicy
    fresh = processor_for(GrootPolicy("tiny"), "panda7")
    assert fresh.embodiment == "panda7" and fresh.embodiment_id == load_embodiment("panda7").slot_id
    assert fresh.modality.action_dim == load_embodiment("panda7").action_dim


def test_failed_eval_leaves_no_empty_output_folder(tmp_path):
    from groot_kit.eval.cli import add_eval_arguments, run_eval
    base = REPO / "data_samples" / "checkpoints" / "tiny_base"
    p = argparse.ArgumentParser()
    add_eval_arguments(p)
    out = tmp_path / "ev"
    args = p.parse_args(["--checkpoint", str(base), "--embodiment", "no_such_robot", "--output-dir", str(out)])
    with pytest.raises(ValueError):
        run_eval(args)
    assert not out.exists()
    assert p.parse_args(["--checkpoint", "x"]).num_cubes == 1      # the base and finetune use one cube


@pytest.mark.parametrize("task", ["reach", "pick_place"])
def test_set_target_repoints_success_and_the_expert_follows(task):
    from groot_kit.eval.language import _probe, swap_target
    from groot_kit.sim import make_expert
    from groot_kit.sim.rollout import rollout
    env = make_env("so100", task, image_size=32, seed=11, num_cubes=3, render=False)
    try:
        _, info = env.reset(seed=11)
        first = (env.target["cube"], env.instruction)
        swap_target(env)
        assert env.target["cube"] != first[0] and env.instruction != first[1]
        assert env.scene["cube_colors"][int(env.target["cube"][4:])] in env.instruction
        ep = rollout(env, make_expert(env), start_obs=env._obs(), seed=11)
        p = _probe(env)
        assert ep.success and p["chosen"] == p["named"] == int(env.target["cube"][4:])
        assert p["end_phase"] == ("release" if task == "pick_place" else "reach")
        with pytest.raises(ValueError, match="out of range"):
            env.set_target(7)
    finally:
        env.close()


def test_language_ablation_reports_three_conditions_and_confusion(so100_policy):
    from groot_kit.eval import language_ablation
    res = language_ablation(so100_policy, "so100", "reach", n_episodes=2, seed=100_000, num_cubes=3, max_steps=6)
    assert set(res["conditions"]) == {"as_given", "swapped", "blank"} and res["chance"] == pytest.approx(1 / 3)
    for name, c in res["conditions"].items():
        assert c["n"] == 2 and 0 <= c["named_cube"] <= 2
        assert sum(c["failures_by_end_phase"].values()) == 2 - c["successes"]    # 6 steps: nothing finishes
        assert set(c["failures_by_end_phase"]) <= {"reach", "grasp"}
        assert sum(sum(r.values()) for r in res["confusion"][name].values()) == 2
        assert [e["seed"] for e in c["episodes"]] == [100_000, 100_001]          # the same scenes in each condition
        assert sum(e["success"] for e in c["episodes"]) == c["successes"]
        assert sum(e["named"] == e["chosen"] for e in c["episodes"]) == c["named_cube"]
    pc = res["paired"]["as_given_vs_swapped"]
    assert pc["both"] + pc["only_first"] + pc["only_second"] + pc["neither"] == 2
    with pytest.raises(ValueError, match="num_cubes >= 2"):
        language_ablation(so100_policy, "so100", num_cubes=1)


def test_paired_comparison_counts_discordant_scenes_and_gives_the_exact_mcnemar_p():
    from groot_kit.eval.language import paired_comparison
    rows = lambda wins: [{"seed": i, "success": w} for i, w in enumerate(wins)]
    a = rows([True] * 3 + [False] * 10 + [True] * 5 + [False] * 2)
    b = rows([True] * 3 + [True] * 10 + [False] * 5 + [False] * 2)
    pc = paired_comparison(a, b)
    assert (pc["both"], pc["only_first"], pc["only_second"], pc["neither"]) == (3, 5, 10, 2)
    assert pc["mcnemar_p"] == pytest.approx(2 * sum(math.comb(15, i) for i in range(6)) / 2 ** 15)   # 0.302
    assert paired_comparison(a, a)["mcnemar_p"] == 1.0
    assert paired_comparison(rows([True] * 12), rows([False] * 12))["mcnemar_p"] == pytest.approx(2 / 2 ** 12)
    with pytest.raises(ValueError, match="same scene seeds"):
        paired_comparison(a, b[:-1])


def test_subtask_accuracy_scores_system2_against_the_expert_labels(so100_policy):
    from groot_kit.eval import subtask_accuracy
    from groot_kit.sim.env import SUBTASKS
    r = subtask_accuracy(so100_policy, "so100", "pick_place", n_episodes=1, seed=100_000, every=16)
    assert r["n_frames"] >= 6 and set(r["per_label"]) <= set(SUBTASKS) and len(r["per_label"]) >= 4   # the phases
    assert r["correct"] == sum(c for c, _ in r["per_label"].values()) and r["accuracy"] == r["correct"] / r["n_frames"]
    assert sum(n for _, n in r["per_label"].values()) == r["n_frames"]
    for label, row in r["confusion"].items():
        assert sum(row.values()) == r["per_label"][label][1] and row.get(label, 0) == r["per_label"][label][0]
    assert r == subtask_accuracy(so100_policy, "so100", "pick_place", n_episodes=1, seed=100_000, every=16)
    with pytest.raises(ValueError, match="every"):
        subtask_accuracy(so100_policy, "so100", every=0)


def test_typed_instruction_repoints_the_scene_and_the_panel_runs_it(so100_policy):
    from groot_kit.eval import follow_instruction, scene_instructions
    from groot_kit.viz.rollout_plots import instruction_outcome_text, instruction_panel
    opts = scene_instructions("so100", "pick_place", seed=100_010, num_cubes=3)
    env = make_env("so100", "pick_place", render=False, num_cubes=3)
    _, info = env.reset(seed=100_010)
    cols, bins = env.scene["cube_colors"], env.scene["bin_colors"]
    env.close()
    assert len(opts) == 6 and len({o["instruction"] for o in opts}) == 6 and opts[0]["instruction"] == info["instruction"]
    other = opts[-1]
    typed = f"  Pick up the {cols[other['cube']]} cube and place it in the {bins[other['bin']]} bin. "
    r = follow_instruction(so100_policy, "so100", "pick_place", 100_010, typed, max_steps=6)
    assert r["target"] == {"cube_color": cols[other["cube"]], "bin_color": bins[other["bin"]]}
    assert r["instruction"] == typed.strip().lower() and r["success"] in (True, False) and r["went_for"] in cols
    assert r["frames"].shape[0] == r["steps"] and r["frames"].dtype == np.uint8
    vague = follow_instruction(so100_policy, "so100", "pick_place", 100_010, "tidy up the table", max_steps=4)
    assert vague["target"] is None and vague["success"] is None and "names no cube" in instruction_outcome_text(vague)
    panel = instruction_panel(so100_policy, "so100", "pick_place", seed=100_010)
    seed_box, choices, row, _ = panel.children
    assert list(choices.options) == [o["instruction"] for o in opts] and row.children[0].value == opts[0]["instruction"]
    seed_box.value = 100_011                                   # a new scene reloads its instructions
    assert choices.options[0] == scene_instructions("so100", "pick_place", seed=100_011)[0]["instruction"]


@pytest.mark.parametrize("mode", ["replan", "rtc"])
def test_delayed_chunks_arrive_late_and_rtc_keeps_the_executed_prefix(so100_policy, mode):
    """delay_ticks=3: each chunk after the first is first used >= 3 steps after its observation; with
    RTC its actions for the delay steps reproduce the ones the robot executed meanwhile."""
    d, proc = 3, so100_policy.get_processor("so100")
    env = make_env("so100", "reach", image_size=64, seed=5, num_cubes=1)
    try:
        obs, _ = env.reset(seed=5)
        ctl = PolicyController(so100_policy, proc, env, mode=mode, replan_every=4, seed=5, delay_ticks=d)
        inpainted, seen = [], None
        for _ in range(24):
            a = ctl.act(obs)
            assert a.shape == (env.spec_e.action_dim,) and np.isfinite(a).all()
            fl = ctl._in_flight
            if fl is not None and fl[0] is not seen and fl[0].prefix is not None:
                seen, n = fl[0], fl[0].prefix_len
                inpainted.append((fl[0].prefix[:n, :proc.modality.action_dim], fl[1][:n, :proc.modality.action_dim]))
            obs, *_ = env.step(a)
        firsts = {}
        for k, (r, i) in enumerate(ctl.executor.trace):
            firsts.setdefault(r, i)
        assert len(firsts) >= 4 and all(i >= d for r, i in firsts.items() if r > 0), firsts
        assert ctl.prefetch.summary()["delay_ticks_p50"] == d
        if mode == "rtc":
            assert inpainted and all(p.shape[0] >= 1 and np.allclose(p, c, atol=1e-4) for p, c in inpainted)
        else:
            assert not inpainted
    finally:
        env.close()
    with pytest.raises(ValueError, match="delay_ticks >= 1"):
        PolicyController(so100_policy, proc, env, mode="rtc", delay_ticks=0)
