"""Env API: spaces, shapes, instructions, determinism, action validation, renderer cleanup."""

import numpy as np
import pytest

from groot_kit.sim import make_env
from groot_kit.sim.env import SUBTASKS


@pytest.mark.parametrize("name, task", [("so100", "pick_place"), ("panda7", "pick_place"),
                                        ("gr1_upper", "lift_box"), ("custom_arm", "reach")])
def test_obs_shapes_and_info(name, task):
    env = make_env(name, task, image_size=64, seed=0)
    obs, info = env.reset(seed=3)
    sp = env.spec_e
    assert obs["state"].dtype == np.float32 and obs["state"].shape == (sp.state_dim,)
    for cam in sp.cameras:
        assert obs[cam].shape == (64, 64, 3) and obs[cam].dtype == np.uint8
        assert obs[cam].std() > 3  # not blank
    assert env.observation_space.contains(obs)
    assert env.action_space.shape == (sp.action_dim,)
    assert info["instruction"] and info["subtask"] in SUBTASKS and info["success"] is False
    obs2, r, term, trunc, info2 = env.step(sp.home_action())
    assert obs2["state"].shape == (sp.state_dim,) and isinstance(r, float)
    env.close()
    assert not env._renderers


def test_a_view_can_tile_several_cameras(tmp_path):
    """A video key may list several MJCF cameras: they share one image, side by side (here the
    humanoid's two wrist cameras in its second view slot)."""
    import shutil

    import mujoco
    import yaml

    from groot_kit.embodiment import load_embodiment
    root = tmp_path / "gr1_tiled"
    shutil.copytree(load_embodiment("gr1_upper").root, root)
    y = yaml.safe_load((root / "embodiment.yaml").read_text())
    y["cameras"]["wrist"] = ["left_wrist_cam", "right_wrist_cam"]
    (root / "embodiment.yaml").write_text(yaml.safe_dump(y, sort_keys=False))
    env = make_env(str(root), "reach", image_size=64, seed=0, num_cubes=1)
    obs, _ = env.reset(seed=5)
    assert env.spec_e.camera_names("wrist") == ["left_wrist_cam", "right_wrist_cam"]
    halves = []
    for cam in ("left_wrist_cam", "right_wrist_cam"):
        with mujoco.Renderer(env.model, 64, 32) as r:
            r.update_scene(env.data, camera=cam)
            halves.append(r.render())
    assert obs["wrist"].shape == (64, 64, 3)
    np.testing.assert_array_equal(obs["wrist"], np.concatenate(halves, axis=1))
    assert not np.array_equal(halves[0], halves[1])
    env.close()


@pytest.mark.parametrize("name", ["so100", "panda7", "gr1_upper"])
def test_first_view_sees_the_cube_at_reset(name):
    """The scene camera (front / head) must show the reach target at the start pose: the policy has
    to localise it from pixels. The humanoid's first home pose crossed its upper arms in front of the
    head camera, which hid the cube in 10 of these 12 scenes."""
    import mujoco
    env = make_env(name, "reach", image_size=64, seed=0, num_cubes=1)
    key = next(iter(env.spec_e.cameras))
    visible = []
    with mujoco.Renderer(env.model, 64, 64) as r:
        r.enable_segmentation_rendering()
        for seed in range(12):
            env.reset(seed=seed)
            cube = mujoco.mj_name2id(env.model, mujoco.mjtObj.mjOBJ_BODY, env.target["cube"])
            r.update_scene(env.data, camera=env.cam_ids[key][0])
            seg = r.render()
            on_cube = (seg[..., 1] == mujoco.mjtObj.mjOBJ_GEOM) & (env.model.geom_bodyid[seg[..., 0]] == cube)
            visible.append(int(on_cube.sum()))
    env.close()
    assert min(visible) >= 5, f"{name}'s {key!r} camera shows the cube with {visible} pixels in 12 scenes"


def test_instruction_names_objects():
    env = make_env("so100", "pick_place", render=False)
    seen = set()
    for s in range(8):
        _, info = env.reset(seed=s)
        ins = info["instruction"]
        assert ins.startswith("pick up the ") and " cube and place it in the " in ins and ins.endswith(" bin")
        assert env.target["cube_color"] in ins and env.target["bin_color"] in ins
        seen.add(ins)
    assert len(seen) > 3  # randomised


def test_seeded_reset_is_deterministic_and_randomised():
    env = make_env("panda7", "pick_place", image_size=64)
    o1, i1 = env.reset(seed=5)
    o2, i2 = env.reset(seed=5)
    o3, i3 = env.reset(seed=6)
    assert i1["instruction"] == i2["instruction"]
    np.testing.assert_array_equal(o1["front"], o2["front"])
    assert not np.array_equal(o1["front"], o3["front"])
    env_fixed = make_env("panda7", "pick_place", render=False, randomize=False)
    env_fixed.reset(seed=1)
    p1 = env_fixed.body_pos("cube0")
    env_fixed.reset(seed=2)
    np.testing.assert_allclose(p1, env_fixed.body_pos("cube0"))


def test_bad_actions_and_args():
    env = make_env("so100", "pick_place", render=False, seed=0)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(3,\), expected \(6,\).*Fix"):
        env.step(np.zeros(3))
    a = env.spec_e.home_action()
    a[5] = np.nan
    with pytest.raises(ValueError, match="NaN.*gripper"):
        env.step(a)
    with pytest.raises(ValueError, match="image_size"):
        make_env("so100", "pick_place", image_size=8)


def test_control_rate():
    arm = make_env("so100", "reach", render=False)
    hum = make_env("gr1_upper", "reach", render=False)
    assert abs(arm.n_substeps * arm.model.opt.timestep - 1 / 30) < 1e-9
    assert abs(hum.n_substeps * hum.model.opt.timestep - 1 / 120) < 1e-9


def test_gymnasium_ids():
    import gymnasium

    env = gymnasium.make("groot_kit/so100-reach-v0", render=False)
    obs, info = env.reset(seed=0)
    assert obs["state"].shape == (6,) and "gripper above" in info["instruction"]
    env.close()


def test_blank_cameras_zero_only_the_named_view():
    from groot_kit.sim import make_env
    env = make_env("so100", "reach", image_size=32, seed=0, num_cubes=1, blank_cameras=("wrist",))
    try:
        obs, _ = env.reset(seed=0)
        assert not obs["wrist"].any() and obs["front"].any()
    finally:
        env.close()
    with pytest.raises(ValueError, match="not cameras of so100"):
        make_env("so100", "reach", blank_cameras=("head",))
