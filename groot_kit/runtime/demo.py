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
import sys

# MuJoCo picks its GL backend when `mujoco` is first imported; groot_kit.sim sets MUJOCO_GL only
# after its own `import mujoco`, i.e. too late. So set it here, before anything imports mujoco.
_GL_WAS_SET = "MUJOCO_GL" in os.environ
os.environ.setdefault("MUJOCO_GL", "egl")
if "mujoco" in sys.modules and not _GL_WAS_SET:   # someone imported mujoco first: egl may not be in effect
    import warnings
    warnings.warn("mujoco was imported before groot_kit.runtime.demo set MUJOCO_GL=egl; headless rendering may "
                  "fail. Set MUJOCO_GL=egl in the environment (or import this module first).", RuntimeWarning)

import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from .dual_rate import DualRateRuntime, GrootSystems  # noqa: E402
from .server import TASK_KEY  # noqa: E402


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
    import mujoco

    from groot_kit.data.processor import processor_for
    from groot_kit.eval.controller import flat_env_action, sim_observation
    from groot_kit.model.policy import GrootPolicy
    from groot_kit.sim import make_env
    from groot_kit.sim.env import render_view
    if render_in not in ("system2", "control"):
        raise ValueError("render_in must be 'system2' or 'control'")
    if policy is None:
        torch.manual_seed(seed)
        policy = GrootPolicy.from_pretrained(checkpoint) if checkpoint else GrootPolicy("tiny")
    policy.eval()
    S = policy.config.vlm.vision.image_size
    env = make_env(embodiment, task, image_size=S, seed=seed, render=False)
    s2_render: dict = {}          # System 2 thread's own renderer + MjData (GL context of that thread)
    try:
        spec = env.spec_e
        proc = processor_for(policy, spec)     # the checkpoint's own stats; joint limits for a random policy
        systems = GrootSystems(policy, proc, num_steps=num_steps)
        cams = list(proc.modality.video)
        hz = float(spec.control_hz)
        render_every = max(1, int(round(hz / system2_hz)))
        raw, info = env.reset(seed=seed)
        frame_ms: list[float] = []
        cur = {"frames": {}, "instruction": info["instruction"], "tick": 0, "episodes": 1, "success": 0}

        def make_obs(flat_state: np.ndarray) -> dict:
            obs = sim_observation(env, {"state": flat_state[None]}, proc.modality, cur["instruction"], video=False)
            obs[TASK_KEY] = [obs[TASK_KEY]]
            if render_in == "control":
                if cur["tick"] % render_every == 0 or not cur["frames"]:
                    t0 = time.perf_counter()
                    cur["frames"] = {c: env.render_camera(c, S) for c in cams}
                    frame_ms.append((time.perf_counter() - t0) * 1e3)
                obs.update({f"video.{c}": f[None] for c, f in cur["frames"].items()})
            else:
                d = env.data
                obs["_sim"] = (d.qpos.copy(), d.mocap_pos.copy(), d.mocap_quat.copy())
            return obs

        def system2(obs: dict):
            if "_sim" in obs:          # render here, in the System 2 thread, from the control tick's snapshot
                if not s2_render:
                    s2_render["data"], s2_render["renderers"] = mujoco.MjData(env.model), {}
                d = s2_render["data"]
                t0 = time.perf_counter()
                d.qpos[:], d.mocap_pos[:], d.mocap_quat[:] = obs["_sim"]
                mujoco.mj_forward(env.model, d)
                frames = {}
                for c in cams:
                    frames[f"video.{c}"] = render_view(s2_render["renderers"], env.model, d, env.cam_ids[c], S)[None]
                frame_ms.append((time.perf_counter() - t0) * 1e3)
                obs = {**{k: v for k, v in obs.items() if k != "_sim"}, **frames}
            return systems.system2(obs)

        def system2_teardown():      # runs in the System 2 thread: its GL context is current there
            for r in s2_render.pop("renderers", {}).values():
                r.close()

        def env_step(a_norm: np.ndarray) -> dict:
            a = flat_env_action(proc.decode_action(torch.as_tensor(a_norm)[None, None]), spec, proc.modality)[0, 0]
            raw, _, term, trunc, info = env.step(a)
            cur["tick"] += 1
            if term or trunc:
                cur["success"] += int(info["success"])
                raw, info = env.reset()
                cur["instruction"], cur["episodes"] = info["instruction"], cur["episodes"] + 1
            return make_obs(raw["state"])

        rt = DualRateRuntime(system2, systems.system1, control_hz=hz, system2_hz=system2_hz, mode=mode,
                             horizon=policy.config.action_head.action_horizon, replan_every=replan_every,
                             ensemble_decay=ensemble_decay, lookahead=lookahead, torch_threads=torch_threads,
                             system2_teardown=system2_teardown)
        first = make_obs(raw["state"])
        n = int(round(seconds * hz))
        t0 = time.perf_counter()
        stats = rt.run(env_step, first, num_steps=n, realtime=realtime, publish_every=render_every)
        wall = time.perf_counter() - t0
        stats.update(embodiment=spec.name, task=task, control_hz=hz, system2_hz_target=system2_hz, ticks=n,
                     wall_s=wall, sim_s=n / hz, realtime=realtime, episodes=cur["episodes"],
                     successes=cur["success"], render_p50_ms=float(np.median(frame_ms)) if frame_ms else None,
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
