"""Teleop: headless session, simulated operator, widget panel construction."""

import numpy as np
import pytest

from groot_kit.sim import make_env
from groot_kit.sim.teleop import SimulatedOperator, TeleopSession, record_simulated_teleop, teleop_panel


def test_session_moves_end_effector_and_records():
    env = make_env("panda7", "pick_place", image_size=64)
    s = TeleopSession(env, seed=0)
    p0 = env.ee_pose("main")[0]
    for _ in range(30):
        s.step(dz=0.004)
    p1 = env.ee_pose("main")[0]
    assert p1[2] - p0[2] > 0.06  # went up ~12 cm (tracking lag allowed)
    s.step(gripper=1.0)
    ep = s.finish()
    assert ep.tier == "teleop" and len(ep) == 31 and ep.frames["front"].shape == (31, 64, 64, 3)
    assert ep.actions[-1, -1] == 1.0
    with pytest.raises(ValueError, match="gripper"):
        s.step(gripper=2.0)
    with pytest.raises(ValueError, match="finite"):
        s.step(dx=float("nan"))


def test_simulated_operator_is_noisy_but_succeeds():
    env = make_env("so100", "pick_place", render=False)
    eps = record_simulated_teleop(env, 6, seed=7, record_frames=False)
    assert np.mean([e.success for e in eps]) >= 5 / 6
    assert all(e.tier == "teleop" and e.meta["operator"] == "simulated" for e in eps)
    assert sum(e.meta["hesitations"] for e in eps) > 0
    # differs from the clean expert
    from groot_kit.sim import make_expert, rollout
    clean = rollout(env, make_expert(env), seed=7, record_frames=False)
    noisy = eps[0]
    n = min(len(clean), len(noisy))
    assert not np.allclose(clean.actions[:n], noisy.actions[:n])


def test_panel_builds_and_buttons_step():
    env = make_env("so100", "pick_place", image_size=64)
    panel, sess = teleop_panel(env, view_size=64)
    buttons = [w for box in panel.children if hasattr(box, "children") for w in box.children
               if getattr(w, "description", "") == "up"]
    buttons[0].click()
    assert len(sess.recorder.actions) == 1
    env.close()
