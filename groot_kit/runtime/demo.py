"""Real-time MuJoCo demo of the dual-rate runtime (default: the GR-1-like humanoid at 120 Hz).

    stats = run_mujoco_demo("gr1_upper", seconds=5, mode="ensemble")

The control loop (pop/blend one action + env.step + a qpos/mocap snapshot) sleeps to each
1/control_hz deadline and counts ticks that ended late (missed deadlines). System 2 runs on its own
thread at `system2_hz`: it renders the cameras from the latest snapshot with its own MjData and GL
context (created, and closed via `system2_teardown`, in that thread; `render_in="control"` renders
in the tick instead, as before) and encodes them. System 1 runs on a prefetch thread that samples
the next chunk ahead of time (late chunks are counted separately from missed deadlines, see
dual_rate).
Without a checkpoint the policy is the randomly initialised tiny preset: the robot jitters
around, the point is the timing, not the task.
"""
from __future__ import annotations

import os
import time

import numpy as np
import torch

from groot_kit.constants import TASK_KEY

from .dual_rate import DualRateRuntime
from .systems import GrootSystems


class _SimBridge:
    """The simulator side of the demo. The control tick turns the env state into an observation (a
    qpos/mocap snapshot for System 2 to render in its own thread, or the images rendered in the tick
    when render_in="control") and a normalised action into an env step; System 2 renders the snapshot
    with its own MjData and GL context (closed by `teardown` in that thread)."""

    def __init__(self, env, processor, systems, image_size: int, render_in: str, render_every: int):
        self.env, self.proc, self.systems, self.S = env, processor, systems, image_size
        self.render_in, self.render_every = render_in, render_every
        self.cams = list(processor.modality.video)
        self.frames: dict = {}
        self.frame_ms: list[float] = []
        self.tick, self.episodes, self.successes = 0, 1, 0
        self.instruction = ""
        self._s2: dict = {}         # System 2 thread's own MjData + renderers

    def observation(self, flat_state: np.ndarray) -> dict:
        from groot_kit.sim.policy_io import sim_observation
        obs = sim_observation(self.env, {"state": flat_state[None]}, self.proc.modality, self.instruction, video=False)
        obs[TASK_KEY] = [obs[TASK_KEY]]
        if self.render_in == "control":
            if self.tick % self.render_every == 0 or not self.frames:
                t0 = time.perf_counter()
                self.frames = {c: self.env.render_camera(c, self.S) for c in self.cams}
                self.frame_ms.append((time.perf_counter() - t0) * 1e3)
            obs.update({f"video.{c}": f[None] for c, f in self.frames.items()})
        else:
            d = self.env.data
            obs["_sim"] = (d.qpos.copy(), d.mocap_pos.copy(), d.mocap_quat.copy())
        return obs

    def system2(self, obs: dict):
        """Runs in the System 2 thread: render the control tick's snapshot there, then encode."""
        if "_sim" in obs:
            import mujoco

            from groot_kit.sim.render import render_view
            env = self.env
            if not self._s2:
                self._s2["data"], self._s2["renderers"] = mujoco.MjData(env.model), {}
            d = self._s2["data"]
            t0 = time.perf_counter()
            d.qpos[:], d.mocap_pos[:], d.mocap_quat[:] = obs["_sim"]
            mujoco.mj_forward(env.model, d)
            frames = {f"video.{c}": render_view(self._s2["renderers"], env.model, d, env.cam_ids[c], self.S)[None]
                      for c in self.cams}
            self.frame_ms.append((time.perf_counter() - t0) * 1e3)
            obs = {**{k: v for k, v in obs.items() if k != "_sim"}, **frames}
        return self.systems.system2(obs)

    def teardown(self) -> None:
        """Runs in the System 2 thread as it exits: its GL context is current there."""
        for r in self._s2.pop("renderers", {}).values():
            r.close()

    def step(self, a_norm: np.ndarray) -> dict:
        from groot_kit.sim.policy_io import flat_env_action
        a = flat_env_action(self.proc.decode_action(torch.as_tensor(a_norm)[None, None]), self.env.spec_e,
                            self.proc.modality)[0, 0]
        raw, _, term, trunc, info = self.env.step(a)
        self.tick += 1
        if term or trunc:
            self.successes += int(info["success"])
            raw, info = self.env.reset()
            self.instruction, self.episodes = info["instruction"], self.episodes + 1
        return self.observation(raw["state"])


def run_mujoco_demo(embodiment: str = "gr1_upper", task: str = "pick_place", seconds: float = 5.0,
                    mode: str = "ensemble", replan_every: int | None = 4, system2_hz: float = 10.0,
                    checkpoint: str | None = None, policy=None, seed: int = 0, realtime: bool = True,
                    ensemble_decay: float = 0.1, num_steps: int | None = None, lookahead: int | None = None,
                    torch_threads: int | None = 1, render_in: str = "system2", timeline: bool = False) -> dict:
    """Run the runtime in MuJoCo for `seconds` of wall-clock time; returns timing + smoothness stats.

    render_in="system2" (default): the control tick only snapshots qpos/mocap (about a microsecond);
    the System 2 thread renders the cameras from that snapshot with its own MjData and GL context,
    then encodes. render_in="control": the control tick renders at the System 2 rate (the old
    behaviour; a few ms every `control_hz / system2_hz` ticks).
    timeline=True adds ``stats["timeline"]`` (see :func:`runtime_timeline`) for plotting.
    """
    from groot_kit.data.processor import processor_for
    from groot_kit.model.policy import GrootPolicy
    from groot_kit.sim import make_env
    if render_in not in ("system2", "control"):
        raise ValueError("render_in must be 'system2' or 'control'")
    if policy is None:
        torch.manual_seed(seed)
        policy = GrootPolicy.from_pretrained(checkpoint) if checkpoint else GrootPolicy("tiny")
    policy.eval()
    S = policy.config.vlm.vision.image_size
    env = make_env(embodiment, task, image_size=S, seed=seed, render=False)
    try:
        spec = env.spec_e
        proc = processor_for(policy, spec)     # the checkpoint's own stats; joint limits for a random policy
        systems = GrootSystems(policy, proc, num_steps=num_steps)
        hz = float(spec.control_hz)
        render_every = max(1, int(round(hz / system2_hz)))
        sim = _SimBridge(env, proc, systems, S, render_in, render_every)
        raw, info = env.reset(seed=seed)
        sim.instruction = info["instruction"]
        rt = DualRateRuntime(sim.system2, systems.system1, control_hz=hz, system2_hz=system2_hz, mode=mode,
                             horizon=policy.config.action_head.action_horizon, replan_every=replan_every,
                             ensemble_decay=ensemble_decay, lookahead=lookahead, torch_threads=torch_threads,
                             system2_teardown=sim.teardown)
        n = int(round(seconds * hz))
        t0 = time.perf_counter()
        stats = rt.run(sim.step, sim.observation(raw["state"]), num_steps=n, realtime=realtime,
                       publish_every=render_every)
        stats.update(embodiment=spec.name, task=task, control_hz=hz, system2_hz_target=system2_hz, ticks=n,
                     wall_s=time.perf_counter() - t0, sim_s=n / hz, realtime=realtime, episodes=sim.episodes,
                     successes=sim.successes,
                     render_p50_ms=float(np.median(sim.frame_ms)) if sim.frame_ms else None,
                     render_in=render_in, policy=checkpoint or "tiny (random init)", threads_alive_after=rt.alive,
                     mujoco_gl=os.environ.get("MUJOCO_GL"))
        if timeline:
            stats["timeline"] = runtime_timeline(rt)
        return stats
    finally:
        env.close()


def runtime_timeline(rt: DualRateRuntime) -> dict:
    """Every event of a finished run, in ms from the first control tick (for a timeline plot).

    ``system2`` / ``system1`` / ``control``: {"start_ms", "dur_ms"} per System 2 update, System 1
    chunk and control tick; ``feature_age_ms``: per chunk, how old its System 2 features' camera
    input was when System 1 started; ``boundaries``: control steps that started a new chunk;
    ``control_missed``: ticks that ended after their 1/control_hz deadline.
    """
    ticks = np.asarray(rt.tick_stats.starts)
    t_ref = float(ticks[0]) if len(ticks) else 0.0

    def events(st) -> dict:
        return {"start_ms": [(t - t_ref) * 1e3 for t in st.starts], "dur_ms": [d * 1e3 for d in st.durations]}

    ctl = events(rt.tick_stats)
    period_ms = 1e3 / rt.control_hz
    missed = [k for k, (s, d) in enumerate(zip(ctl["start_ms"], ctl["dur_ms"])) if s + d > (k + 1) * period_ms]
    return {"system2": events(rt.s2_stats), "system1": events(rt.s1_stats), "control": ctl,
            "feature_age_ms": list(rt.feature_ages_ms), "boundaries": list(rt.executor.boundaries),
            "control_missed": missed, "control_hz": rt.control_hz, "system2_hz": rt.system2_hz}
