"""check_* helpers tell a right answer from a wrong one, recomputing the truth with the kit."""
from groot_kit.config import get_preset
from groot_kit.exercises import (check_baked_input, check_chunk_queries, check_home_pose_subtask,
                                 check_least_moving_joint, check_lora_parameters, check_mask_ones,
                                 check_rl_beats_scratch, check_system2_loss, check_tier_shares)


def test_check_mask_ones(capsys):
    assert check_mask_ones(32, action_dims=2) is True          # 16 horizon steps x 2 real dims
    assert check_mask_ones(64, action_dims=2) is False
    assert check_mask_ones(16 * 6, action_dims=6) is True
    assert check_mask_ones(None) is False
    assert "Right." in capsys.readouterr().out


def test_check_tier_shares():
    weights = {"teleop": 1, "synthetic": 0, "video": 0}
    assert check_tier_shares({"teleop": 1.0, "synthetic": 0.0, "video": 0.0}, weights) is True
    assert check_tier_shares({"teleop": 0.5, "synthetic": 0.3, "video": 0.2}, weights) is False


def test_check_system2_loss(capsys):
    lm = get_preset("n1_2b").vlm.lm   # Llama layer: q/k/v/o + gate/up/down + 2 RMSNorms (no biases)
    per_layer = 4 * lm.hidden_size ** 2 + 3 * lm.hidden_size * lm.intermediate_size + 2 * lm.hidden_size
    truth = (12 - 6) * per_layer
    assert check_system2_loss(truth) is True
    assert check_system2_loss(0.4e9) is True                    # rounded answers count
    assert check_system2_loss(truth / 2) is False
    assert check_system2_loss("a lot") is False
    assert check_system2_loss(None) is False
    out = capsys.readouterr().out
    assert out.count("Right.") == 2 and out.count("Not yet.") == 3


def test_check_chunk_queries():
    # so100 reach: 5 s at 30 Hz = 150 steps; a new chunk every 2 (or 16) of them
    assert check_chunk_queries(75, replan_every=2) is True
    assert check_chunk_queries(10, replan_every=16) is True
    assert check_chunk_queries(150, replan_every=2) is False
    assert check_chunk_queries(None) is False


def test_check_lora_parameters():
    # tiny: every adapted Linear is 64 -> 64, so r * (64 + 64) each; 4 DiT blocks x to_q/k/v/out.0
    # and 2 LM layers x q/k/v/o_proj
    r = 4
    assert check_lora_parameters((4 * 4 + 2 * 4) * r * 128, rank=r) is True
    assert check_lora_parameters(4 * 4 * r * 128, rank=r) is False           # the "dit" count
    assert check_lora_parameters(4 * 4 * r * 128, rank=r, targets="dit") is True
    assert check_lora_parameters(None, rank=r) is False


def test_check_home_pose_subtask():
    assert check_home_pose_subtask("reach") is True
    assert check_home_pose_subtask(["reach", "reach"]) is True
    assert check_home_pose_subtask("grasp") is False
    assert check_home_pose_subtask({"reach", "grasp"}) is False
    assert check_home_pose_subtask(None) is False


def _res(ft_curve, scratch_curve):
    arm = lambda curve: {"label": "", "demo_env_steps": 0, "rl_env_steps": 0, "final_success": 0.0,
                         "wall_s": 0.0, "curve": [{"total_samples": n, "eval_success": s} for n, s in curve]}
    return {"arms": {"rl_scratch": arm(scratch_curve), "imitation_rl": arm(ft_curve)}}


def test_check_rl_beats_scratch():
    ft_first = _res([(400, 0.3), (3000, 0.6)], [(2000, 0.1), (8000, 0.5)])
    assert check_rl_beats_scratch("yes", ft_first) is True
    assert check_rl_beats_scratch(False, ft_first) is False
    scratch_first = _res([(400, 0.3), (9000, 0.6)], [(2000, 0.1), (8000, 0.5)])
    assert check_rl_beats_scratch("no", scratch_first) is True
    assert check_rl_beats_scratch(True, scratch_first) is False
    neither = _res([(400, 0.3)], [(2000, 0.1)])
    assert check_rl_beats_scratch("no", neither) is True
    assert check_rl_beats_scratch(None, ft_first) is False
    assert check_rl_beats_scratch("yes", {"arms": {}}) is False        # sections 3-4 not run yet


def test_check_baked_input():
    assert check_baked_input("embodiment_id") is True
    assert check_baked_input("noise") is False
    assert check_baked_input(None) is False


def test_check_least_moving_joint():
    # data_samples/custom_arm_expert episode 1: the fourth arm joint barely moves (span 0.03 rad,
    # the others 0.15 or more)
    assert check_least_moving_joint(3) is True
    assert check_least_moving_joint("state.arm[3]") is True
    assert check_least_moving_joint(4) is False
    assert check_least_moving_joint("joint") is False
    assert check_least_moving_joint(None) is False


def test_checks_answer_a_non_number_with_a_verdict():
    assert check_chunk_queries("many") is False
    assert check_lora_parameters("lots", rank=4) is False
