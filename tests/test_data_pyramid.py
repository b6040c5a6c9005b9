"""Pyramid tiers on the toy world: MimicGen multiplication, action-free video tier, LAPA latent actions, IDM."""
import numpy as np
import pytest

from groot_kit.data import GrootDataset, MixtureDataset, open_dataset, write_dataset
from groot_kit.data.latent import (evaluate_idm, label_with_latent_actions, pseudo_label,
                                   train_idm, train_latent_action_model)
from groot_kit.data.pyramid import (ToyMimicEnv, interpolate_poses, multiply_demos, pose_mat, pyramid_summary,
                                    split_segments, to_video_tier, toy_source_demos, transform_segment, video_modality)
from groot_kit.data.toy import toy_episodes, toy_modality


def test_pose_math():
    a, b = pose_mat([0, 0, 0]), pose_mat([1, 2, 3])
    path = np.stack([pose_mat([0.5, 0, 0]), pose_mat([0.2, 0, 0])])
    new = transform_segment(path, a, b)
    assert np.allclose(new[:, :3, 3], [[1.5, 2, 3], [1.2, 2, 3]])
    mid = interpolate_poses(a, b, 4)
    assert mid.shape == (4, 4, 4) and np.allclose(mid[-1], b) and np.allclose(mid[1][:3, 3], [0.5, 1, 1.5])
    assert split_segments(["a", "a", "b", "b", "b", "a"]) == [("a", 0, 2), ("b", 2, 5), ("a", 5, 6)]


def test_mimicgen_multiplication(tmp_path):
    src = toy_episodes(2, T=30, size=32, seed=0)
    eps, rep = multiply_demos(toy_source_demos(src), ToyMimicEnv(size=32), n_attempts=6, seed=1)
    assert rep.attempted == 6 and rep.succeeded == len(eps) and rep.succeeded >= 3
    assert all(e.tier == "synthetic" and e.provenance["method"] == "mimicgen" for e in eps)
    assert set(eps[0].subtasks) <= {"reach", "grasp"}
    root = write_dataset(src + eps, tmp_path / "mix", toy_modality(), fps=10)
    tiers = open_dataset(root).episode_tiers()
    assert tiers.count("synthetic") == len(eps) and tiers.count("teleop") == 2


def test_video_tier_lapa_idm(tmp_path):
    lab = toy_episodes(40, T=30, size=32, seed=0)
    vid = to_video_tier(toy_episodes(3, T=30, size=32, seed=9))
    assert all(e.actions is None and e.tier == "video" for e in vid)
    root = write_dataset(vid, tmp_path / "vid", video_modality(toy_modality()), fps=10)
    info = open_dataset(root)
    assert not info.has_actions and info.episode_tiers() == ["video"] * 3
    ds = GrootDataset(root, image_size=16)
    s = ds[0]
    assert not s["action_mask"].any() and not s["state_mask"].any() and s["pixel_values"].shape == (1, 3, 16, 16)

    lam, li = train_latent_action_model(lab + vid, steps=150, num_codes=8)
    assert li["usage"]["used"] >= 2 and sum(li["usage"]["counts"]) == li["pairs"]
    lat = label_with_latent_actions(lam, vid[:1])
    assert lat[0].actions.shape == (30, lam.latent_dim)

    idm, _ = train_idm(lab, steps=300)
    ev = evaluate_idm(idm, vid)
    assert ev["mse"] < ev["baseline_mse"]  # better than predicting the mean
    pl = pseudo_label(idm, vid, score=ev)
    assert pl[0].actions.shape == (30, 3) and pl[0].provenance["labels"] == "idm"
    root2 = write_dataset(pl, tmp_path / "vid_idm", toy_modality(), fps=10)
    teleop = write_dataset(lab[:2], tmp_path / "tel", toy_modality(), fps=10)
    summ = pyramid_summary({"t": open_dataset(teleop), "v": open_dataset(root2)})
    assert summ["teleop"]["episodes"] == 2 and summ["video"]["frames"] == 90
    mix = MixtureDataset([GrootDataset(teleop, image_size=16), GrootDataset(root2, image_size=16)],
                         tier_weights={"teleop": 1.0, "video": 0.5})
    w = mix.sample_weights()
    assert w[:60].sum() == pytest.approx(2 / 3)
