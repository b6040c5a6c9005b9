"""Every embodiment folder loads, its scene compiles, and 1 s of random control raises no MuJoCo warning."""

import json
import shutil

import mujoco
import numpy as np
import pytest
import yaml

from groot_kit.embodiment import EmbodimentError, list_embodiments, load_embodiment, slot_registry
from groot_kit.sim import make_env
from groot_kit.sim.arm_generator import ArmSpec, write_custom_arm

BUILTIN = ["so100", "panda7", "gr1_upper", "custom_arm"]


def test_builtins_listed_and_slots_unique():
    names = list_embodiments()
    for n in BUILTIN:
        assert n in names
    reg = slot_registry()
    assert len(set(reg)) == len(reg)
    assert all(0 <= s < 32 for s in reg)


@pytest.mark.parametrize("name", BUILTIN)
def test_spec_consistent(name):
    sp = load_embodiment(name)
    mod = json.loads((sp.root / "modality.json").read_text())
    assert mod["state"][list(sp.state)[-1]]["end"] == sp.state_dim
    assert mod["action"][list(sp.action)[-1]]["end"] == sp.action_dim
    assert set(mod["video"]) == set(sp.cameras)
    assert "human.task_description" in mod["annotation"]
    assert (sp.root / "README.md").is_file()
    xml = sp.scene_xml.read_text()
    assert 'shadowsize="0"' in xml and 'offsamples="0"' in xml
    assert sp.control_hz == (120 if name == "gr1_upper" else 30)


def _random_control_no_warnings(env, seconds=1.0, seed=0):
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    lo, hi = env.action_space.low, env.action_space.high
    for _ in range(int(seconds * env.spec_e.control_hz)):
        env.step(rng.uniform(lo, hi).astype(np.float32))  # uniformly random targets within the limits
    assert env.warning_count() == 0, [(i, env.data.warning[i].number) for i in range(len(env.data.warning))]
    assert np.all(np.isfinite(env.data.qpos))


@pytest.mark.parametrize("name", BUILTIN)
def test_scene_steps_one_second_without_warnings(name):
    sp = load_embodiment(name)
    m = mujoco.MjModel.from_xml_path(str(sp.scene_xml))  # the bare scene compiles on its own
    assert m.nu >= len(sp.joint_limits)
    for task in sp.tasks:
        env = make_env(name, task, render=False, seed=0)
        _random_control_no_warnings(env)
        env.close()


def test_generated_custom_arm(tmp_path):
    spec = write_custom_arm(ArmSpec(num_joints=5, link_lengths=[0.1, 0.2, 0.2, 0.06, 0.04], name="arm5"),
                            tmp_path / "arm5")
    assert spec.slot_id not in (1, 2, 24, 31) and 0 <= spec.slot_id < 32
    assert spec.action_dim == 6 and spec.state_dim == 6
    for f in ("arm5.xml", "scene.xml", "embodiment.yaml", "modality.json", "README.md"):
        assert (tmp_path / "arm5" / f).is_file()
    assert load_embodiment("arm5").name == "arm5"  # registered
    env = make_env(tmp_path / "arm5", "pick_place", render=False, seed=0)
    _random_control_no_warnings(env)


def test_custom_arm_without_gripper(tmp_path):
    spec = write_custom_arm(ArmSpec(num_joints=4, link_lengths=[0.1, 0.25, 0.2, 0.08], gripper=False, name="g0"),
                            tmp_path / "g0")
    assert spec.tasks == ["reach"] and spec.action_dim == 4
    with pytest.raises(EmbodimentError, match="not available"):
        make_env(spec, "pick_place")


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("kw, field", [
    (dict(num_joints=0, link_lengths=[]), "num_joints"),
    (dict(num_joints=5, link_lengths=[0.1, -0.2, 0.2, 0.1, 0.05]), r"link_lengths\[1\]"),
    (dict(num_joints=5, link_lengths=[0.1, 0.2, 0.2]), "link_lengths"),
    (dict(num_joints=4, link_lengths=[0.1, 0.2, 0.2, 0.1], joint_limits=[(0, 1), (1, -1), (0, 1), (0, 1)]), r"joint_limits\[1\]"),
    (dict(num_joints=4, link_lengths=[0.1, 0.2, 0.2, 0.1], name="my arm"), "name"),
    (dict(num_joints=4, link_lengths=[100, 0.2, 0.2, 0.1]), r"link_lengths\[0\]"),
])
def test_bad_arm_spec(kw, field):
    with pytest.raises(EmbodimentError, match=field) as e:
        ArmSpec(**kw)
    assert "Fix:" in str(e.value)


def test_unknown_embodiment():
    with pytest.raises(EmbodimentError, match="unknown embodiment 'nope'.*so100.*Fix"):
        load_embodiment("nope")
    with pytest.raises(EmbodimentError, match="unknown task"):
        make_env("so100", "juggle")


@pytest.fixture
def so100_copy(tmp_path):
    dst = tmp_path / "so100"
    shutil.copytree(load_embodiment("so100").root, dst)
    return dst


def _edit_json(p, fn):
    d = json.loads(p.read_text())
    fn(d)
    p.write_text(json.dumps(d))


def _edit_yaml(p, fn):
    d = yaml.safe_load(p.read_text())
    fn(d)
    p.write_text(yaml.safe_dump(d, sort_keys=False))


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d["state"]["gripper"].update(end=9), r"modality.json: field 'state.gripper'.*slice size"),
    (lambda d: d["action"]["gripper"].update(start=4, end=5), r"'action.gripper.start'.*overlap"),
    (lambda d: d.pop("video"), r"'video'.*missing"),
    (lambda d: d["state"].pop("gripper"), r"'state'.*differ"),
    (lambda d: d["video"].update(top={"original_key": "observation.images.top"}), r"'video'.*cameras"),
    (lambda d: d["state"]["single_arm"].pop("end"), r"'state.single_arm'.*start.*end"),
])
def test_bad_modality_json(so100_copy, mutate, match):
    _edit_json(so100_copy / "modality.json", mutate)
    with pytest.raises(EmbodimentError, match=match) as e:
        load_embodiment(so100_copy)
    assert "Fix:" in str(e.value)


def test_malformed_modality_json(so100_copy):
    (so100_copy / "modality.json").write_text("{not json")
    with pytest.raises(EmbodimentError, match="modality.json.*not valid JSON"):
        load_embodiment(so100_copy)


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d.pop("slot_id"), r"embodiment.yaml: field 'slot_id': missing"),
    (lambda d: d.update(slot_id=40), r"'slot_id'.*\[0, 32\)"),
    (lambda d: d.pop("control_hz"), r"'control_hz': missing"),
    (lambda d: d["state"]["single_arm"].pop("normalization"), r"'state.single_arm.normalization': missing"),
    (lambda d: d["action"]["gripper"].update(normalization="zscore"), r"unknown mode 'zscore'"),
    (lambda d: d["state"]["single_arm"].update(dim=4), r"'state.single_arm.joints'.*dim is 4"),
    (lambda d: d["joints"][0].update(lower=3.0), r"'joints\[0\].*lower 3.0 >= upper"),
    (lambda d: d.pop("cameras"), r"'cameras': missing"),
    (lambda d: d["cameras"].update(wrist=[]), r"'cameras.wrist'.*tile side by side"),
    (lambda d: d.update(robot_xml="missing.xml"), r"'robot_xml'.*does not exist"),
])
def test_bad_embodiment_yaml(so100_copy, mutate, match):
    _edit_yaml(so100_copy / "embodiment.yaml", mutate)
    with pytest.raises(EmbodimentError, match=match) as e:
        load_embodiment(so100_copy)
    assert "Fix:" in str(e.value)


def test_broken_mjcf_is_reported(so100_copy):
    (so100_copy / "so100.xml").write_text("<mujoco><worldbody><body><geom type='box'/></worldbody></mujoco>")
    with pytest.raises(EmbodimentError, match=r"scene.xml: MuJoCo could not parse it.*Fix"):
        make_env(so100_copy, "pick_place", render=False)


def test_arm_joint_not_listed(so100_copy):
    _edit_yaml(so100_copy / "embodiment.yaml", lambda d: d["arms"]["main"]["joints"].__setitem__(0, "nope"))
    with pytest.raises(EmbodimentError, match=r"'arms.main.joints'.*'nope'"):
        load_embodiment(so100_copy)


# ------------------------------------------------------------------------------ registry
def test_registry_finds_user_robots_by_name(tmp_path, monkeypatch):
    from groot_kit.embodiment import EmbodimentRegistry

    monkeypatch.delenv("GROOT_KIT_EMBODIMENTS", raising=False)
    reg = EmbodimentRegistry()  # a private registry: the default one is left alone
    assert reg.names() == sorted(BUILTIN) == reg.builtin_names()
    src = load_embodiment("so100").root
    shutil.copytree(src, tmp_path / "a" / "arm_a")
    _edit_yaml(tmp_path / "a" / "arm_a" / "embodiment.yaml", lambda d: d.update(name="arm_a", slot_id=9))
    assert reg.register(tmp_path / "a" / "arm_a").slot_id == 9
    assert reg.load("arm_a").root == tmp_path / "a" / "arm_a" and "arm_a" in reg.names()
    assert reg.slots()[9] == "arm_a" and reg.free_slot() == 8
    # registering the name again points it at the new folder
    shutil.copytree(tmp_path / "a" / "arm_a", tmp_path / "b" / "arm_a")
    reg.register(tmp_path / "b" / "arm_a")
    assert reg.load("arm_a").root == tmp_path / "b" / "arm_a"
    # $GROOT_KIT_EMBODIMENTS lists parent folders, read at each lookup
    shutil.copytree(tmp_path / "a" / "arm_a", tmp_path / "env" / "arm_env")
    _edit_yaml(tmp_path / "env" / "arm_env" / "embodiment.yaml", lambda d: d.update(slot_id=10))
    with pytest.raises(EmbodimentError, match="unknown embodiment 'arm_env'.*arm_a.*Fix"):
        reg.load("arm_env")
    monkeypatch.setenv("GROOT_KIT_EMBODIMENTS", str(tmp_path / "env"))
    assert reg.load("arm_env").slot_id == 10 and reg.names()[-1] == "arm_env"
    # two robots on one slot is an error naming both
    _edit_yaml(tmp_path / "env" / "arm_env" / "embodiment.yaml", lambda d: d.update(slot_id=9))
    with pytest.raises(EmbodimentError, match=r"'slot_id': 'arm_env' and 'arm_a' both use slot 9.*Fix"):
        reg.slots()


def test_registry_rejects_bad_registrations(tmp_path):
    from groot_kit.embodiment import EmbodimentRegistry

    reg = EmbodimentRegistry()
    shutil.copytree(load_embodiment("so100").root, tmp_path / "so100")
    with pytest.raises(EmbodimentError, match="'so100' is a built-in robot's.*Fix: rename"):
        reg.register(tmp_path / "so100")
    with pytest.raises(EmbodimentError, match="not an embodiment folder.*Fix"):
        reg.register(tmp_path)
    with pytest.raises(EmbodimentError, match="does not exist.*Fix"):
        reg.load(tmp_path / "missing")
    # a registry without built-ins knows only what it is given
    bare = EmbodimentRegistry(builtin_dir=None, env_var=None)
    with pytest.raises(EmbodimentError, match=r"unknown embodiment 'so100'. Known: \(none\)"):
        bare.load("so100")
    # a path always works, registered or not
    assert bare.load(tmp_path / "so100").name == "so100"
    assert bare.load(tmp_path / "so100" / "embodiment.yaml").root == tmp_path / "so100"


def test_generator_reproduces_the_builtin_folders(tmp_path):
    """The shipped robot files are exactly what the generator writes (no hand edits drift in)."""
    from groot_kit.embodiment import BUILTIN_DIR
    from groot_kit.sim.arm_generator import regenerate_builtin_embodiments

    specs = regenerate_builtin_embodiments(tmp_path)
    assert sorted(s.name for s in specs) == sorted(BUILTIN)
    for name in BUILTIN:
        files = sorted(p.name for p in (BUILTIN_DIR / name).iterdir())
        assert files == sorted(p.name for p in (tmp_path / name).iterdir())
        for f in files:
            assert (tmp_path / name / f).read_bytes() == (BUILTIN_DIR / name / f).read_bytes(), (name, f)


def test_a_persisted_robot_is_found_by_name_in_a_later_process(tmp_path, monkeypatch):
    """finetune registers its arm with persist=True; a new process (a fresh registry) finds it by name."""
    from groot_kit.embodiment.registry import EmbodimentRegistry, user_index_path
    from groot_kit.sim.arm_generator import ArmSpec, write_custom_arm
    monkeypatch.setenv("GROOT_KIT_HOME", str(tmp_path / "home"))
    arm = write_custom_arm(ArmSpec(num_joints=5, link_lengths=[0.12, 0.25, 0.23, 0.09, 0.05], name="persisted_arm"),
                           tmp_path / "arms" / "persisted_arm", slot_id=27, register=False)
    EmbodimentRegistry().register(arm.root, persist=True)
    assert user_index_path().is_file()
    fresh = EmbodimentRegistry()
    assert fresh.resolve("persisted_arm") == arm.root.resolve()
    assert "persisted_arm" in fresh.names()
    import shutil
    shutil.rmtree(arm.root)                                   # a folder that is gone is skipped
    assert "persisted_arm" not in EmbodimentRegistry().names()
