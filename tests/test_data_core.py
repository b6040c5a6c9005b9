"""Writer/reader round trip, normalization modes, processor, mixture sampler (toy data, offline)."""
import json

import numpy as np
import pytest
import torch

from groot_kit.data import (DataError, GrootDataset, GrootProcessor, KeyStats, MixtureDataset, ModalityConfig,
                            NormalizationStats, collate, open_dataset, write_dataset)
from groot_kit.data.toy import toy_episodes, toy_modality


@pytest.fixture(scope="module")
def toy_ds(tmp_path_factory):
    root = tmp_path_factory.mktemp("d") / "toy"
    eps = toy_episodes(2, T=30, size=48, seed=0) + toy_episodes(1, T=30, size=48, seed=1, tier="synthetic")
    write_dataset(eps, root, toy_modality(), fps=10, robot_type="toy", embodiment="toy", embodiment_id=3)
    return root


def test_roundtrip_layout(toy_ds):
    info = open_dataset(toy_ds)
    assert info.num_episodes == 3 and info.num_frames == 90
    assert info.info["codebase_version"].startswith("v3")
    mod = json.loads((toy_ds / "meta/modality.json").read_text())
    assert mod["state"]["gripper"] == {"start": 2, "end": 3}
    assert mod["video"]["front"]["original_key"] == "observation.images.front"
    assert info.episode_tiers() == ["teleop", "teleop", "synthetic"]
    assert info.groot["episodes"][2]["provenance"]["seed"] == 1
    assert not list(toy_ds.parent.glob(".toy.tmp-*"))  # atomic write left nothing behind


def test_sample_shapes_and_values(toy_ds):
    ds = GrootDataset(toy_ds, embodiment_id=3, image_size=32)
    s = ds[5]
    assert s["pixel_values"].shape == (1, 3, 32, 32) and 0 <= s["pixel_values"].min() <= s["pixel_values"].max() <= 1
    assert s["state"].shape == (64,) and s["state_mask"][:3].all() and not s["state_mask"][3:].any()
    assert s["action"].shape == (16, 32) and s["action_mask"][:, :3].all() and not s["action_mask"][:, 3:].any()
    assert s["action"].abs().max() <= 1.0 + 1e-5 and s["state"][3:].abs().sum() == 0
    assert s["embodiment_id"].item() == 3 and s["instruction"].startswith("move")
    assert s["subtask"] in ("reach", "grasp")
    # actions t..t+15 equal the raw actions, normalized
    eps = toy_episodes(2, T=30, size=48, seed=0)
    raw = torch.from_numpy(eps[0].actions[5:21])
    back = ds.stats.unnormalize_flat("action", s["action"][:, :3], ds.modality)
    assert torch.allclose(back, raw, atol=1e-4)
    b = collate([ds[0], ds[40]])
    assert b["pixel_values"].shape == (2, 1, 3, 32, 32) and b["action"].dtype == torch.float32
    assert isinstance(b["instruction"], list) and b["embodiment_id"].dtype == torch.long


@pytest.mark.parametrize("mode", ["min_max", "q99", "mean_std", "binary"])
def test_normalization_modes(mode):
    rng = np.random.default_rng(0)
    x = np.c_[rng.uniform(-3, 5, 1000), np.full(1000, 2.0), (rng.uniform(size=1000) > 0.5) * 0.04]
    ks = KeyStats.compute(x, mode)
    y = ks.normalize(x)
    if mode == "min_max":
        assert y[:, 0].min() == pytest.approx(-1) and y[:, 0].max() == pytest.approx(1)
        assert np.all(y[:, 1] == 0)  # constant dim -> 0
        assert np.allclose(ks.unnormalize(y), x, atol=1e-4)
    if mode == "q99":
        assert y.min() >= -1 and y.max() <= 1 and np.all(y[:, 1] == 0)
    if mode == "mean_std":
        assert abs(y[:, 0].mean()) < 1e-4 and y[:, 0].std() == pytest.approx(1, abs=1e-3) and np.all(y[:, 1] == 0)
        assert np.allclose(ks.unnormalize(y)[:, [0, 2]], x[:, [0, 2]], atol=1e-4)
    if mode == "binary":
        assert set(np.unique(y[:, 2])) <= {0.0, 1.0}
        assert np.allclose(ks.unnormalize(y)[:, 2], x[:, 2])
    # torch and numpy agree; JSON round trip
    assert np.allclose(ks.normalize(torch.tensor(x, dtype=torch.float32)).numpy(), y, atol=1e-5)
    ks2 = KeyStats.from_dict(json.loads(json.dumps(ks.to_dict())))
    assert np.allclose(ks2.normalize(x), y, atol=1e-6)


def test_stats_serialization_and_modes(toy_ds):
    info = open_dataset(toy_ds)
    st = NormalizationStats.from_dataset(info, modes={"action.gripper": "binary", "state.pos": "q99"})
    d = json.loads(json.dumps(st.to_dict()))
    st2 = NormalizationStats.from_dict(d)
    assert st2.groups["action"]["gripper"].mode == "binary" and st2.groups["state"]["pos"].mode == "q99"
    assert st2.groups["action"]["delta"].mode == "min_max"


def test_processor_roundtrip(toy_ds):
    ds = GrootDataset(toy_ds, embodiment_id=3, image_size=32)
    proc = GrootProcessor.from_dict(json.loads(json.dumps(GrootProcessor.from_dataset(ds).to_dict())))
    eps = toy_episodes(1, T=30, size=48, seed=0)
    obs = {"video.front": eps[0].frames["front"][:2], "state.pos": eps[0].states[:2, :2],
           "state.gripper": eps[0].states[:2, 2:], "annotation.human.task_description": "go"}
    b = proc(obs)
    assert b["pixel_values"].shape == (2, 1, 3, 32, 32) and b["state"].shape == (2, 64)
    assert b["embodiment_id"].tolist() == [3, 3] and b["instruction"] == ["go", "go"]
    assert torch.allclose(b["state"][0], ds[0]["state"], atol=1e-5)
    assert (b["pixel_values"][0] - ds[0]["pixel_values"]).abs().mean() < 0.03  # video codec loss only
    act = ds[0]["action"][None]
    out = proc.decode_action(act)
    assert out["action.delta"].shape == (1, 16, 2) and out["action.gripper"].shape == (1, 16, 1)
    assert np.allclose(out["action.delta"][0], eps[0].actions[:16, :2], atol=1e-4)
    enc, mask = proc.encode_action(out)
    assert torch.allclose(enc, act, atol=1e-5) and mask[..., :3].all()
    # single unbatched observation
    b1 = proc({"video.front": eps[0].frames["front"][0], "state.pos": eps[0].states[0, :2],
               "state.gripper": eps[0].states[0, 2:]})
    assert b1["state"].shape == (1, 64)


def test_mixture_weights(toy_ds):
    ds = GrootDataset(toy_ds, embodiment_id=3, image_size=16)
    mix = MixtureDataset([ds], tier_weights={"teleop": 3.0, "synthetic": 1.0})
    w = mix.sample_weights()
    tiers = np.asarray(ds.frame_tiers())
    assert w[tiers == "teleop"].sum() == pytest.approx(0.75) and w[tiers == "synthetic"].sum() == pytest.approx(0.25)
    idx = list(mix.sampler(num_samples=2000, seed=1))
    frac = np.mean(tiers[idx] == "synthetic")
    assert 0.2 < frac < 0.3
    assert idx[:20] == list(mix.sampler(num_samples=2000, seed=1))[:20]  # deterministic
    mix0 = MixtureDataset([ds], tier_weights={"synthetic": 0.0})
    assert mix0.sample_weights()[tiers == "synthetic"].sum() == 0


def test_modality_from_dims_roundtrip():
    m = ModalityConfig.from_dims({"a": 3, "b": 2}, {"c": 4}, ["wrist", "front"])
    m2 = ModalityConfig.from_dict(m.to_dict())
    assert m2.state_dim == 5 and m2.action_dim == 4 and m2.video_keys == ["wrist", "front"]
