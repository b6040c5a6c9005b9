"""Recovery demos (DAgger-style): the policy drives, the scripted expert takes over, keep the expert's part.

Behaviour cloning only sees states the expert visits. A trained policy drifts a little off those
states, and because nothing in its data shows how to get back, small misses compound: the tiny
base hovered 3-7 cm from the cube on panda7, and on the humanoid it came within 3-5 cm, missed,
and then wandered 0.2-1 m away. DAgger (Ross et al., 2011) fixes this by labelling the
*policy's* states with expert actions. Our expert is a closed-loop planner that re-plans from the
current joints, so the labelling is a hand-over:

1. reset a scene and let the policy act for a random number of steps ``k``;
2. hand the robot, as it is, to a fresh scripted expert, which plans from the current pose;
3. record from the hand-over to success (plus ``settle_steps``); keep it if the expert succeeded.

Scenes where the policy succeeds before step ``k`` give nothing and are skipped, so the kept
demos concentrate on the states where the policy goes wrong. The result is ordinary expert data
(tier ``synthetic``, provenance ``policy_handover``) and goes into any dataset writer.

``trigger="nudge"`` targets one failure instead of a random moment. On so100 pick_place most failed
episodes end with the gripper open, still reaching for the named cube after a first contact pushed it
off its spot. So the policy drives until it has moved the target object (cube or box) by
``nudge_distance`` without holding it, goes on for a random ``0 .. nudge_delay_seconds`` (the
flailing that follows is part of the state to recover from), and the expert takes over there.
Scenes where no nudge happens give nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from groot_kit.data import from_sim_episode  # noqa: E402
from groot_kit.sim import make_env, make_expert  # noqa: E402
from groot_kit.sim.rollout import rollout  # noqa: E402
from groot_kit.data.processor import processor_for  # noqa: E402
from groot_kit.eval import PolicyController  # noqa: E402


def recovery_episodes(policy, embodiment: str, task: str, n: int, *, image_size: int | None = None,
                      seed: int = 0, num_cubes: int = 1, start_noise: float = 0.02, replan_every: int = 8,
                      handover_fraction: float = 0.5, settle_steps: int = 4, min_steps: int = 4,
                      max_tries: int | None = None, processor=None, stats: dict | None = None,
                      trigger: str = "random", nudge_distance: float = 0.01,
                      nudge_delay_seconds: float = 0.8) -> list:
    """``n`` recovery demos (``EpisodeData``) of ``embodiment`` on ``task``, from policy hand-overs.

    ``policy`` acts first for ``k ~ U{0 .. handover_fraction * max_steps}`` control steps (scene
    seeds ``seed, seed+1, ...``); the scripted expert then finishes the episode. Only the expert's
    steps are kept, plus ``settle_steps`` after success (so near-miss hand-overs, which the expert
    fixes in 1-3 steps, still give a usable clip of at least ``min_steps``). ``stats`` (if given)
    receives ``tried``, ``kept``, ``policy_succeeded`` (skipped: nothing to recover),
    ``expert_failed`` and, with ``trigger="nudge"``, ``no_nudge`` (the policy never disturbed the target).
    With ``trigger="nudge"`` the hand-over step is the nudge's step plus ``U{0 .. nudge_delay_seconds}``
    in control steps (``handover_fraction`` is not used).
    """
    if n < 0 or not 0.0 < handover_fraction <= 1.0:
        raise ValueError(f"recovery_episodes: n={n}, handover_fraction={handover_fraction}; "
                         "give n >= 0 and 0 < handover_fraction <= 1")
    if trigger not in ("random", "nudge") or nudge_distance <= 0 or nudge_delay_seconds < 0:
        raise ValueError(f"recovery_episodes: trigger={trigger!r}, nudge_distance={nudge_distance}, "
                         f"nudge_delay_seconds={nudge_delay_seconds}; give trigger 'random' or 'nudge', "
                         "nudge_distance > 0 (m) and nudge_delay_seconds >= 0")
    processor = processor or processor_for(policy, embodiment)
    size = image_size or policy.config.vlm.vision.image_size
    env = make_env(embodiment, task, image_size=size, seed=seed, num_cubes=num_cubes, start_noise=start_noise)
    rng = np.random.default_rng(seed)
    was_training = policy.training
    policy.eval()
    out: list = []
    counts = {"tried": 0, "kept": 0, "policy_succeeded": 0, "expert_failed": 0}
    if trigger == "nudge":
        counts["no_nudge"] = 0
    try:
        k_max = max(1, int(handover_fraction * env.max_steps))
        delay_max = int(round(nudge_delay_seconds * env.spec_e.control_hz))  # 24 steps on a 30 Hz arm
        for i in range(max_tries or 8 * n + 5):
            if len(out) >= n:
                break
            s = seed + i
            counts["tried"] += 1
            if trigger == "nudge":
                ep, handover = _nudge_handover_episode(env, policy, processor, s, replan_every, settle_steps,
                                                       nudge_distance, int(rng.integers(0, delay_max + 1)))
                if ep in ("policy_succeeded", "no_nudge"):
                    counts[ep] += 1
                    continue
            else:
                handover = int(rng.integers(0, k_max + 1))
                ep = _handover_episode(env, policy, processor, s, handover, replan_every, settle_steps)
                if ep is None:
                    counts["policy_succeeded"] += 1
                    continue
            if not ep.success or len(ep) < min_steps:
                counts["expert_failed"] += 1
                continue
            out.append(from_sim_episode(ep, tier="synthetic", provenance={
                "source": "policy_handover", "embodiment": embodiment, "task": task, "seed": s,
                "handover_step": handover, "trigger": trigger, "num_cubes": num_cubes,
                "domain_randomization": True}))
    finally:
        env.close()
        if was_training:
            policy.train()
    counts["kept"] = len(out)
    if stats is not None:
        stats.update(counts)
    return out


def _handover_episode(env, policy, processor, seed: int, handover: int, replan_every: int,
                      settle_steps: int) -> Any:
    """One scene: policy for ``handover`` steps, then the recorded expert. None if the policy succeeded first."""
    obs, info = env.reset(seed=seed)
    ctl = PolicyController(policy, processor, env, replan_every=replan_every, seed=seed)
    for _ in range(handover):
        obs, _, term, trunc, info = env.step(ctl.act(obs))
        if info.get("success") or term:
            return None
        if trunc:
            break
    # a fresh expert plans from the current joints on its first act(); record from here on
    return rollout(env, make_expert(env), max_steps=env.max_steps - env.t, seed=seed, tier="synthetic",
                   extra_steps_after_success=settle_steps, start_obs=obs)


def target_body(env) -> str:
    """The body the task is about: the named cube, or the humanoid's box."""
    return "box" if env.task == "lift_box" else env.target["cube"]


def _nudge_handover_episode(env, policy, processor, seed: int, replan_every: int, settle_steps: int,
                            distance: float, delay: int) -> tuple[Any, int]:
    """One scene: the policy drives until it has pushed the target ``distance`` (m, in the table's
    plane) from where the scene put it while not holding it, then ``delay`` steps more; then the
    recorded expert. -> (episode, hand-over step), or ("policy_succeeded" | "no_nudge", -1)."""
    obs, info = env.reset(seed=seed)
    body = target_body(env)
    start_xy = env.body_pos(body)[:2].copy()
    ctl = PolicyController(policy, processor, env, replan_every=replan_every, seed=seed)
    handover = None
    while handover is None or env.t < handover:
        obs, _, term, trunc, info = env.step(ctl.act(obs))
        if info.get("success") or term:
            return "policy_succeeded", -1
        if trunc:
            return "no_nudge", -1
        if (handover is None and env.oracle_subtask() in ("reach", "grasp")
                and np.linalg.norm(env.body_pos(body)[:2] - start_xy) > distance):
            handover = env.t + delay
    return rollout(env, make_expert(env), max_steps=env.max_steps - env.t, seed=seed, tier="synthetic",
                   extra_steps_after_success=settle_steps, start_obs=obs), handover
