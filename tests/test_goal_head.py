"""The goal head: System 2's last prompt token predicts the state the episode ends in (a grounding
signal for multi-object scenes). Dataset target, masking, training signal, save/load."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from groot_kit.config import ConfigError, get_preset
from groot_kit.data import GrootDataset, collate, write_dataset
from groot_kit.data.toy import toy_episodes, toy_modality
from groot_kit.model.policy import GrootPolicy, InputError


@pytest.fixture(scope="module")
def toy_ds(tmp_path_factory):
    root = tmp_path_factory.mktemp("goal") / "toy"
    eps = toy_episodes(3, T=20, size=48, seed=0)
    write_dataset(eps, root, toy_modality(), fps=10, robot_type="toy", embodiment="toy", embodiment_id=0)
    return root


def _policy(order="text_first", weight=1.0) -> GrootPolicy:
    torch.manual_seed(0)
    cfg = get_preset("tiny")
    cfg = dataclasses.replace(cfg, vlm=dataclasses.replace(cfg.vlm, prompt_order=order), goal_loss_weight=weight)
    return GrootPolicy(cfg)


def test_goal_state_is_the_episode_last_state(toy_ds):
    ds = GrootDataset(toy_ds, image_size=64, goal_state=True)
    eps = ds.frame_episode_index
    for ep in range(3):
        frames = [i for i, e in enumerate(eps) if e == ep]
        last = ds[frames[-1]]
        for i in (frames[0], frames[len(frames) // 2]):
            s = ds[i]
            torch.testing.assert_close(s["goal_state"], last["state"])
            assert torch.equal(s["goal_state_mask"], s["state_mask"])
    assert "goal_state" not in GrootDataset(toy_ds, image_size=64)[0]      # opt-in


def test_goal_head_reads_the_last_real_prompt_token():
    """text_first pads between the words and the image tokens: the head must take the final <eos>."""
    p = _policy().eval()
    c = p.config.vlm.output_dim
    T = 10
    vl = torch.randn(2, T, c)
    mask = torch.ones(2, T, dtype=torch.bool)
    mask[0, 3:6] = False            # padding mid-prompt: last real token is still T-1
    mask[1, 7:] = False             # image_first-style tail padding: last real token is 6
    out = p.predict_goal(vl, mask)
    torch.testing.assert_close(out[0], p.goal_head(vl[0, T - 1]))
    torch.testing.assert_close(out[1], p.goal_head(vl[1, 6]))


def test_goal_loss_trains_and_round_trips(toy_ds, tmp_path):
    p = _policy()
    ds = GrootDataset(toy_ds, image_size=64, max_views=1, goal_state=True)
    batch = collate([ds[i] for i in range(0, len(ds), 4)])
    opt = torch.optim.AdamW(p.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss, info = p(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(info["goal_loss"])
    assert losses[-1] < 0.5 * losses[0]
    p.eval().save_pretrained(tmp_path / "ckpt")
    q = GrootPolicy.from_pretrained(tmp_path / "ckpt")
    assert q.config.goal_loss_weight == 1.0
    torch.testing.assert_close(q.goal_head.weight, p.goal_head.weight)


def test_goal_head_is_off_by_default_and_refuses_bad_weights():
    p = GrootPolicy(get_preset("tiny"))
    assert not hasattr(p, "goal_head")
    with pytest.raises(InputError, match="positive"):
        p.add_goal_head(0.0)
    with pytest.raises(ConfigError, match="goal_loss_weight"):
        dataclasses.replace(get_preset("tiny"), goal_loss_weight=-1.0)


def test_nvidia_layout_keeps_the_prompt_order_and_leaves_the_goal_head_out(tmp_path):
    from groot_kit.model.gr00t_checkpoint import load_gr00t_checkpoint, save_gr00t_checkpoint
    from groot_kit.model.policy import dummy_batch
    p = _policy().eval()
    save_gr00t_checkpoint(p, tmp_path / "nv")
    q = load_gr00t_checkpoint(tmp_path / "nv")
    assert q.config.vlm.prompt_order == "text_first" and not hasattr(q, "goal_head")
    batch = dummy_batch(p, 2, seed=4)
    noise = torch.randn(2, 16, 32)
    assert torch.equal(p.predict_action_chunk(batch, noise=noise), q.predict_action_chunk(batch, noise=noise))


def test_goal_probe_pairs_each_scene_with_every_cube(tmp_path):
    """The System 2 probe: every unseen scene demonstrated once per cube, scored against its own goal."""
    from groot_kit.data.processor import GrootProcessor
    from groot_kit.embodiment import load_embodiment
    from groot_kit.eval import goal_probe
    cfg = get_preset("tiny")
    cfg = dataclasses.replace(cfg, vlm=dataclasses.replace(cfg.vlm, num_views=2, prompt_order="text_first"),
                              goal_loss_weight=0.5)
    torch.manual_seed(0)
    p = GrootPolicy(cfg).eval()
    p.set_processor(GrootProcessor.from_embodiment(load_embodiment("so100"), cfg))
    r = goal_probe(p, "so100", n_scenes=2, seed=100_000, num_cubes=3, workdir=tmp_path)
    assert r["n_demos"] == 3 * r["n_scenes"] and r["n_scenes"] >= 1
    assert 0 <= r["goal_matched"] <= r["n_demos"] and r["chance"] == pytest.approx(1 / 3)
    assert all(np.isfinite(r[k]) for k in ("mse_own", "mse_other_cube", "mse_blank"))
    assert r["mse_own"] != r["mse_other_cube"]          # the words reach the goal head
    assert not list(tmp_path.iterdir())                 # the probe's scratch dataset is gone
    with pytest.raises(ValueError, match="goal head"):
        goal_probe(GrootPolicy(get_preset("tiny")), "so100", n_scenes=1)
