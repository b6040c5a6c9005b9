"""MuJoCo hooks: embodiment-checked datasets and MimicGen multiplication through the sim's IK."""
from pathlib import Path

import pytest

from groot_kit.data import DataError, GrootDataset
from groot_kit.data.sim_data import multiply_sim_demos, sim_episodes

SAMPLES = Path(__file__).resolve().parents[1] / "data_samples"


def test_for_embodiment_uses_yaml_modes_and_slot():
    ds = GrootDataset.for_embodiment(SAMPLES / "so100_teleop", "so100", image_size=16)
    assert ds.embodiment_id == 1
    assert ds.stats.groups["action"]["gripper"].mode == "binary"
    assert ds.stats.groups["state"]["single_arm"].mode == "min_max"
    with pytest.raises(DataError, match="embodiment 'panda7' declares state key 'arm' that the data lacks"):
        GrootDataset.for_embodiment(SAMPLES / "so100_teleop", "panda7")


def test_sim_episodes_filters_and_counts():
    stats: dict = {}
    eps = list(sim_episodes("so100", "reach", 3, image_size=32, seed=11, only_success=True, num_cubes=1,
                            start_noise=0.3, min_steps=4, stats=stats))
    assert len(eps) == 3 and stats["kept"] == 3 and stats["tried"] >= 3
    assert all(e.success and len(e) >= 4 and e.provenance["num_cubes"] == 1 for e in eps)
    assert [e.provenance["seed"] for e in eps] == sorted({e.provenance["seed"] for e in eps})
    # a hold keeps recording after success: the same first scene gets longer
    held = next(sim_episodes("so100", "reach", 1, image_size=32, seed=eps[0].provenance["seed"], num_cubes=1,
                             start_noise=0.3, hold_seconds=0.2))
    assert len(held) == len(eps[0]) + 6  # 0.2 s at 30 Hz


def test_mimicgen_in_mujoco():
    src = list(sim_episodes("so100", "pick_place", 1, image_size=32, seed=0, teleop=True, only_success=True))
    eps, rep = multiply_sim_demos("so100", src, n_attempts=2, image_size=32, seed=3)
    assert rep.attempted == 2 and rep.succeeded == len(eps) >= 1
    e = eps[0]
    assert e.tier == "synthetic" and e.provenance["method"] == "mimicgen" and e.success
    assert e.actions.shape[1] == 6 and len(e.subtasks) == len(e) and {"reach", "place"} <= set(e.subtasks)
    assert set(e.frames) == {"front", "wrist"} and e.frames["front"].shape[1:] == (32, 32, 3)


def test_targets_per_scene_records_counterfactual_demos():
    """One scene, three demos: the same first image, three instructions, three different goals."""
    import numpy as np
    eps = list(sim_episodes("so100", "reach", 3, 64, seed=12345, only_success=True, num_cubes=3,
                            start_noise=0.02, min_steps=4, targets_per_scene=3))
    assert [e.provenance["target_variant"] for e in eps] == [0, 1, 2]
    assert len({e.provenance["seed"] for e in eps}) == 1
    assert len({e.instruction for e in eps}) == 3
    first = [e.frames["front"][0] for e in eps]
    assert all(np.array_equal(first[0], f) for f in first[1:])
    ends = np.stack([e.states[-1] for e in eps])
    assert min(np.abs(ends[i] - ends[j]).max() for i in range(3) for j in range(i)) > 0.05
