"""Evaluation: open-loop MSE against a direct computation, closed-loop MuJoCo episodes, eval CLI."""
import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from groot_kit.data import GrootDataset, GrootProcessor, collate, write_dataset
from groot_kit.data.toy import toy_episodes, toy_modality
from groot_kit.eval import evaluate_closed_loop, evaluate_open_loop, open_loop_figure, per_dim_mse_figure
from groot_kit.eval.cli import add_eval_arguments, run_eval

REPO = Path(__file__).resolve().parents[1]
BASE = REPO / "data_samples" / "checkpoints" / "tiny_base"


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("ev") / "toy"
    eps = toy_episodes(2, T=21, size=32, seed=3)  # 21 = 16 + 5: the second chunk is cut at the episode end
    write_dataset(eps, root, toy_modality(), fps=10, robot_type="toy", embodiment="toy", embodiment_id=3)
    return root, eps


def test_open_loop_mse_matches_direct_computation(toy_root, tiny_policy):
    root, eps = toy_root
    ds = GrootDataset(root, embodiment_id=3, image_size=64, max_views=1)
    proc = GrootProcessor.from_dataset(ds)
    res = evaluate_open_loop(tiny_policy, ds, seed=7, processor=proc)
    # direct: query at t = 0 and 16 of each episode with the documented noise seeds, unnormalise, compare
    ep_index = ds.frame_episode_index
    se = []
    for e, ep in enumerate(eps):
        idx = np.flatnonzero(ep_index == e)
        chunks = []
        for q, t in enumerate((0, 16)):
            g = torch.Generator().manual_seed(7 + 1000 * e + q)
            chunk = tiny_policy.predict_action_chunk(collate([ds[int(idx[t])]]), generator=g)[0, :, :3]
            chunks.append(proc.stats.unnormalize_flat("action", chunk, proc.modality).numpy())
        pred = np.concatenate(chunks)[:21]
        se.append((pred - ep.actions) ** 2)
    se = np.concatenate(se)
    assert res["frames"] == 42 and res["dim_names"] == ["delta_0", "delta_1", "gripper"]
    assert [e["queries"] for e in res["episodes"]] == [2, 2]
    np.testing.assert_allclose(res["mse"], se.mean(), rtol=1e-5)
    np.testing.assert_allclose(res["mse_per_dim"], se.mean(0), rtol=1e-5)
    assert len(open_loop_figure(res).data) == 6 and len(per_dim_mse_figure(res).data) == 1


def test_open_loop_rejects_video_only_dataset(tmp_path, tiny_policy):
    from groot_kit.data.pyramid import to_video_tier, video_modality
    root = tmp_path / "vid"
    write_dataset(to_video_tier(toy_episodes(1, T=8, size=32)), root, video_modality(toy_modality()), fps=10,
                  embodiment_id=3)
    with pytest.raises(ValueError, match="no actions"):
        evaluate_open_loop(tiny_policy, GrootDataset(root, embodiment_id=3, image_size=64, max_views=1))


def _so100_policy():
    import dataclasses
    from groot_kit.config import get_preset
    from groot_kit.model.policy import GrootPolicy
    cfg = get_preset("tiny")
    cfg = dataclasses.replace(cfg, vlm=dataclasses.replace(cfg.vlm, num_views=2), subtask_loss_weight=0.1)
    torch.manual_seed(0)
    policy = GrootPolicy(cfg).eval()
    ds = GrootDataset(REPO / "data_samples" / "so100_teleop", embodiment_id=1, image_size=64, max_views=2)
    policy.set_processor(GrootProcessor.from_dataset(ds))
    return policy


def test_closed_loop_returns_success_flags_frames_and_videos(tmp_path):
    policy = _so100_policy()
    res = evaluate_closed_loop(policy, "so100", task="reach", n_episodes=2, seed=5, max_steps=12, replan_every=4,
                               env_kwargs={"num_cubes": 1}, keep_frames=True, video_dir=tmp_path / "v")
    assert res["n_episodes"] == 2 and 0.0 <= res["success_rate"] <= 1.0
    for ep in res["episodes"]:
        assert isinstance(ep["success"], bool) and 1 <= ep["steps"] <= 12
        assert ep["frames"].dtype == np.uint8 and ep["frames"].shape[1:] == (256, 512, 3)  # front | wrist, x4
        assert Path(ep["video"]).stat().st_size > 0
        assert ep["queries"] == int(np.ceil(ep["steps"] / 4)) and len(ep["subtasks"]) == ep["queries"]
    # same seeds -> same outcome (seeded noise and scenes)
    again = evaluate_closed_loop(policy, "so100", task="reach", n_episodes=2, seed=5, max_steps=12, replan_every=4,
                                 env_kwargs={"num_cubes": 1})
    assert [e["steps"] for e in again["episodes"]] == [e["steps"] for e in res["episodes"]]


def test_closed_loop_rejects_wrong_embodiment():
    policy = _so100_policy()
    proc = policy.get_processor("so100")
    with pytest.raises(ValueError, match="action dims"):
        evaluate_closed_loop(policy, "panda7", task="reach", n_episodes=1, max_steps=2, processor=proc)


@pytest.mark.skipif(not (BASE / "model.safetensors").exists(), reason="base checkpoint not generated")
def test_eval_cli_on_base_checkpoint(tmp_path):
    p = argparse.ArgumentParser()
    add_eval_arguments(p)
    args = p.parse_args(["--checkpoint", str(BASE), "--embodiment", "so100", "--episodes", "1", "--num-cubes", "1",
                         "--dataset", str(REPO / "data_samples" / "panda7_expert"), "--max-open-loop-episodes", "1",
                         "--output-dir", str(tmp_path)])
    res = run_eval(args)
    saved = json.loads((tmp_path / "eval.json").read_text())
    assert saved["closed_loop"]["so100"]["n_episodes"] == 1
    assert np.isfinite(res["open_loop"][str(REPO / "data_samples" / "panda7_expert")]["mse"])
