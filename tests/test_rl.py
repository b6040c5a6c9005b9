"""Residual PPO (groot_kit.train.rl): GAE math, Gaussian log-prob/entropy, learning, checkpoints."""
import math

import numpy as np
import pytest
import torch

from groot_kit.train.rl import (ActorCritic, FlowBase, HoldBase, PPOConfig, ResidualPolicy, RLTask, RLTaskConfig,
                                DemoChunkDataset, collect_demos, compute_gae, make_processor, ppo_update, train_bc,
                                train_ppo)


def test_gae_matches_hand_computation():
    g, lam = 0.9, 0.8
    r = np.array([[1.0], [2.0], [3.0]])
    v = np.array([[0.5], [1.0], [1.5]])
    d = np.array([[0.0], [1.0], [0.0]])  # episode ends after step 1; step 2 starts a new one
    last = np.array([2.0])
    adv, ret = compute_gae(r, v, d, last, g, lam)
    # by hand
    d2 = 3.0 + g * 2.0 - 1.5            # t=2 bootstraps from last value
    a2 = d2
    d1 = 2.0 + 0.0 - 1.0                # terminal: no bootstrap, no carry-over
    a1 = d1
    d0 = 1.0 + g * 1.0 - 0.5
    a0 = d0 + g * lam * a1
    assert torch.allclose(adv[:, 0], torch.tensor([a0, a1, a2], dtype=torch.float32))
    assert torch.allclose(ret, adv + torch.as_tensor(v, dtype=torch.float32))


def test_gae_lambda_one_is_discounted_return_minus_value():
    rng = np.random.default_rng(0)
    r, v = rng.normal(size=(5, 2)), rng.normal(size=(5, 2))
    d = np.zeros((5, 2))
    adv, ret = compute_gae(r, v, d, np.zeros(2), gamma=0.95, lam=1.0)
    disc = np.array([sum(0.95 ** k * r[t + k] for k in range(5 - t)) for t in range(5)])
    np.testing.assert_allclose(ret.numpy(), disc, rtol=1e-5, atol=1e-5)


def test_log_prob_and_entropy_are_consistent():
    torch.manual_seed(0)
    ac = ActorCritic(7, 3, hidden=16, init_log_std=-0.3)
    with torch.no_grad():
        ac.pi[-1].weight.normal_()  # non-zero means
        ac.log_std.copy_(torch.tensor([-0.3, 0.2, -1.0]))
    obs, u = torch.randn(5, 7), torch.randn(5, 3)
    mu, sd = ac.pi(obs), ac.log_std.exp()
    manual = (-0.5 * ((u - mu) / sd) ** 2 - torch.log(sd) - 0.5 * math.log(2 * math.pi)).sum(-1)
    assert torch.allclose(ac.log_prob(obs, u), manual, atol=1e-5)
    ent = (0.5 + 0.5 * math.log(2 * math.pi) + ac.log_std).sum()
    assert torch.allclose(ac.entropy(obs), ent.expand(5), atol=1e-5)
    # Monte Carlo: entropy = -E[log p(u)] under the policy's own samples
    with torch.no_grad():
        o = obs[:1].expand(20000, -1)
        s = ac.dist(o).sample()
        assert abs(float(-ac.log_prob(o, s).mean()) - float(ent)) < 0.05


def test_ppo_update_learns_a_known_action_offset():
    """One-step bandit: reward prefers u = target; PPO updates move the mean there."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    target = torch.tensor([0.8, -0.5])
    ac = ActorCritic(3, 2, hidden=32, init_log_std=-0.5)
    opt = torch.optim.Adam(ac.parameters(), lr=3e-3)
    cfg = PPOConfig(epochs=4, minibatch_size=128)
    rewards = []
    for _ in range(25):
        obs = torch.randn(512, 3, generator=g)
        with torch.no_grad():
            dist = ac.dist(obs)
            u = dist.sample()
            logp = dist.log_prob(u).sum(-1)
            v = ac.value(obs)
        r = -((u - target) ** 2).sum(-1)
        rewards.append(float(r.mean()))
        adv, ret = compute_gae(r[None], v[None], torch.ones(1, 512), torch.zeros(512), 0.99, 0.95)
        ppo_update(ac, opt, {"obs": obs, "u": u, "logp": logp, "adv": adv[0], "ret": ret[0]}, cfg, g)
    assert np.mean(rewards[-3:]) > np.mean(rewards[:3]) + 0.5
    with torch.no_grad():
        assert torch.allclose(ac.pi(torch.zeros(1, 3))[0], target, atol=0.25)


def test_residual_ppo_improves_reward_on_mujoco_reach():
    torch.manual_seed(0)
    cfg = PPOConfig(total_env_steps=10240, num_envs=8, rollout_steps=64, learning_rate=1e-3, eval_every=0,
                    eval_episodes=4, seed=0)
    _, hist = train_ppo(HoldBase(), RLTaskConfig(), cfg)
    rows = [h for h in hist if "mean_step_reward" in h]
    first, last = np.mean([h["mean_step_reward"] for h in rows[:3]]), np.mean([h["mean_step_reward"] for h in rows[-3:]])
    assert last > first + 0.03, (first, last)


def test_task_reward_and_features():
    t = RLTask(RLTaskConfig(goal_in_state=True), seed=0)
    try:
        t.reset(seed=3)
        base = t.current_action()
        f = t.features(base)
        assert f.shape == (t.feature_dim,) and np.isfinite(f).all()
        _, r, term, trunc, info = t.step(base)
        d = np.linalg.norm(t.ee() - t.goal_points()[0])
        assert r == pytest.approx(-2.0 * d + (1.0 if info["success"] else 0.0))
        obs = t.raw_observation()
        assert obs["video.front"].shape == (64, 64, 3) and obs["state.goal"].shape == (3,)
    finally:
        t.close()


def test_rl_policy_checkpoint_roundtrip(tmp_path):
    from groot_kit.model.policy import CheckpointError
    cfg = RLTaskConfig()
    demos, steps = collect_demos(cfg, 2, seed=0)
    assert steps == sum(len(d.actions) for d in demos) and all(d.success for d in demos)
    ds = DemoChunkDataset(demos, make_processor(cfg, demos))
    s = ds[len(ds) - 1]
    assert s["action"].shape == (16, 32) and bool(s["action_is_pad"][1:].all())
    bc = train_bc(demos, cfg, steps=2, batch_size=4, output_dir=tmp_path / "bc")
    torch.manual_seed(1)
    actor = ActorCritic(RLTask(cfg).feature_dim, 6, hidden=16)
    with torch.no_grad():
        actor.pi[-1].bias.fill_(0.3)
    pol = ResidualPolicy(FlowBase(bc, n_action_steps=4, seed=0), actor, 0.1, cfg, max_offset=0.5)
    path = pol.save_pretrained(tmp_path / "rl")
    loaded = ResidualPolicy.from_pretrained(path)
    assert loaded.scale == 0.1 and loaded.max_offset == 0.5 and loaded.task_cfg == cfg and isinstance(loaded.base, FlowBase)
    for k, v in actor.state_dict().items():
        assert torch.equal(v, loaded.actor.state_dict()[k])
    acts = []
    for p in (pol, loaded):
        p.base.gen.manual_seed(0)
        p.reset(0)
        t = RLTask(cfg)
        t.reset(seed=5)
        acts.append(p.step_actions([t], [0])[0])
        t.close()
    np.testing.assert_allclose(acts[0], acts[1], atol=1e-5)
    (path / "rl_config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="rl_config.json"):
        ResidualPolicy.from_pretrained(path)


def test_rl_evaluation_runs_through_the_one_evaluator():
    """RL's evaluate is evaluate_closed_loop with the residual policy as controller: its scenes follow
    the seed rule, it reports an interval, and its return equals one stepped by hand on that scene."""
    from groot_kit.train.rl import EVAL_SEED_OFFSET, evaluate
    cfg = RLTaskConfig(max_episode_steps=12)
    torch.manual_seed(0)
    actor = ActorCritic(RLTask(cfg).feature_dim, 6, hidden=16)
    pol = ResidualPolicy(HoldBase(), actor, 0.05, cfg, max_offset=0.5)
    ev = evaluate(pol, cfg, n_episodes=2, seed=7)
    assert ev["seeds"] == [EVAL_SEED_OFFSET + 7, EVAL_SEED_OFFSET + 8] and len(ev["ci95"]) == 2
    assert ev == {**evaluate(pol, cfg, n_episodes=2, seed=7), "seconds": ev["seconds"]}   # deterministic
    t = RLTask(cfg)
    try:
        t.reset(seed=EVAL_SEED_OFFSET + 7)
        pol.reset(0)
        ret, steps = 0.0, 0
        while True:
            a = pol.step_actions([t], [0])[0][0]
            _, r, term, trunc, _ = t.step(a)
            ret, steps = ret + r, steps + 1
            if term or trunc:
                break
    finally:
        t.close()
    assert ev["episodes"][0]["steps"] == steps
    assert ev["episodes"][0]["probe"]["return"] == pytest.approx(ret, rel=1e-6)
