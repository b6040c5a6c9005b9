"""Teleoperation: drive the end effector through IK and record episodes (tier "teleop").

* :class:`TeleopSession` is the headless core: ``step(dx, dy, dz, dyaw, gripper)`` moves the
  commanded end-effector pose by a Cartesian delta (metres / radians), solves IK, steps the env
  and records the step. ``finish()`` returns an :class:`~groot_kit.sim.rollout.Episode`.
* :func:`teleop_panel` wraps a session in an ipywidgets panel (camera views, sliders for the
  x/y/z/yaw velocity and gripper, jog buttons, a Play ticker for continuous motion, and keyboard
  control through a tiny anywidget: W/S = +x/-x, A/D = +y/-y, R/F = up/down, Q/E = yaw, Space =
  toggle gripper).
* :class:`SimulatedOperator` is a human-like operator for CI: the scripted expert plus
  hesitations (pauses), slow noise on the commanded pose, and occasional overshoot-and-correct
  moves. Its episodes are tagged ``tier="teleop"`` and ``meta["operator"]="simulated"``.
"""

from __future__ import annotations

import io

import numpy as np

from groot_kit.sim.expert import ScriptedExpert, _ArmCtl
from groot_kit.sim.rollout import Episode, EpisodeRecorder


class TeleopSession:
    """Headless teleop: Cartesian deltas -> IK -> env.step, recorded as an Episode."""

    def __init__(self, env, arm: str | None = None, seed: int | None = None, record_frames: bool = True,
                 max_delta: float = 0.05):
        self.env = env.unwrapped if hasattr(env, "unwrapped") else env
        self.arm_name = arm
        self.record_frames = record_frames
        self.max_delta = max_delta
        self.episodes: list[Episode] = []
        self.reset(seed)

    def reset(self, seed: int | None = None):
        env = self.env
        self.obs, self.info = env.reset(seed=seed)
        arm = self.arm_name or env.target.get("arm", next(iter(env.arms)))
        if arm == "both" or arm not in env.arms:
            arm = next(iter(env.arms)) if self.arm_name is None else self.arm_name
        if arm not in env.arms:
            raise ValueError(f"TeleopSession: arm {arm!r} not in {list(env.arms)}. Fix: pass arm=one of those")
        self.arm = arm
        self.ctl = {a: _ArmCtl(env, a) for a in env.arms}
        for c in self.ctl.values():
            c.q = env.data.ctrl[env.arms[c.arm].act_ids].copy()
        self.grip = 0.0
        self.recorder = EpisodeRecorder(env, tier="teleop", seed=seed, record_frames=self.record_frames)
        self.subtask = "reach"
        return self.obs

    @property
    def success(self) -> bool:
        return bool(self.recorder.success)

    def step(self, dx: float = 0.0, dy: float = 0.0, dz: float = 0.0, dyaw: float = 0.0,
             gripper: float | None = None, subtask: str | None = None):
        """Move the commanded end effector by (dx, dy, dz) m and dyaw rad; gripper in [0, 1]."""
        vals = np.array([dx, dy, dz, dyaw], float)
        if not np.all(np.isfinite(vals)):
            raise ValueError("TeleopSession.step: deltas must be finite numbers. Fix: check the input device")
        c = self.ctl[self.arm]
        d = np.clip(vals[:3], -self.max_delta, self.max_delta)
        c.pos = c.pos + d
        if dyaw:
            cz, sz = np.cos(dyaw), np.sin(dyaw)
            c.rot = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]]) @ c.rot
        if gripper is not None:
            if not 0.0 <= float(gripper) <= 1.0:
                raise ValueError(f"TeleopSession.step: gripper={gripper} must be in [0, 1] (0 open, 1 closed)")
            self.grip = float(gripper)
        c.grip = self.grip
        c.solve()
        action = _compose_action(self.env, self.ctl)
        self.subtask = subtask or self.info.get("subtask", "")
        self.recorder.add(self.obs, action, self.subtask)
        self.obs, r, term, trunc, self.info = self.env.step(action)
        if self.info.get("success"):
            self.recorder.success = True
        return self.obs, self.info

    def finish(self) -> Episode:
        """Close the current recording and return it (also kept in ``self.episodes``)."""
        ep = self.recorder.finish()
        ep.meta["operator"] = "human"
        self.episodes.append(ep)
        return ep


def _compose_action(env, ctl: dict[str, _ArmCtl], q_override: dict | None = None) -> np.ndarray:
    sp = env.spec_e
    a = np.zeros(sp.action_dim, np.float32)
    for k in sp.action.values():
        if k.source == "joints":
            for c in ctl.values():
                q = (q_override or {}).get(c.arm, c.q)
                names = sp.arms[c.arm].joints
                for i, j in enumerate(k.joints):
                    if j in names:
                        a[k.start + i] = q[names.index(j)]
        else:
            a[k.start] = ctl[k.arm].grip
    return a


class SimulatedOperator:
    """A human-like operator: the scripted expert with hesitations, noise and corrections."""

    def __init__(self, env, seed: int | None = None, noise: float = 0.004, hesitation_rate: float = 0.45,
                 correction_rate: float = 0.18, correction_size: float = 0.02):
        """Rates are per second (hesitations last 0.15-0.6 s); ``noise`` is the drift scale in metres."""
        self.env = env.unwrapped if hasattr(env, "unwrapped") else env
        self.expert = ScriptedExpert(self.env, speed_scale=0.8)
        self.rng = np.random.default_rng(seed)
        hz = self.env.spec_e.control_hz
        self.noise, self.hesitation_prob = noise, hesitation_rate / hz
        self.correction_prob, self.correction_size = correction_rate / hz, correction_size
        self.offset: dict[str, np.ndarray] = {}
        self.pause = 0
        self.last_action = None
        self.subtask = "reach"
        self.stats = {"hesitations": 0, "corrections": 0}

    def act(self, obs=None) -> np.ndarray:
        env, rng = self.env, self.rng
        if env.t == 0:
            self.offset, self.pause, self.last_action = {}, 0, None
        if self.pause > 0 and self.last_action is not None:
            self.pause -= 1
            return self.last_action.copy()
        if self.last_action is not None and rng.random() < self.hesitation_prob:
            self.pause = int(rng.uniform(0.15, 0.6) * env.spec_e.control_hz)
            self.stats["hesitations"] += 1
            return self.last_action.copy()
        self.expert.act(obs)
        self.subtask = self.expert.subtask
        fine = self.subtask in ("grasp", "place", "release") or (self.subtask == "reach" and self.expert.stage % 2 == 1)
        if env.task == "lift_box":  # both hands hold one object: move them together, gently
            fine = self.subtask != "reach" or self.expert.stage > 0
        scale = 0.25 if fine else 1.0
        dt = env.spec_e.control_dt
        q_over = {}
        shared = env.task == "lift_box"
        for arm, c in self.expert.ctl.items():
            if shared and q_over:
                q, _ = c.ik.solve(c.q, c.pos + scale * o, c.rot, iters=6, null_gain=0.02)
                q_over[arm] = q
                continue
            o = self.offset.get(arm, np.zeros(3))
            # Ornstein-Uhlenbeck drift (time constant ~0.5 s) + occasional overshoot to be corrected
            o = o + (-o / 0.5) * dt + self.noise * np.sqrt(dt / 0.5) * 2.0 * rng.standard_normal(3)
            if not fine and rng.random() < self.correction_prob:
                v = rng.standard_normal(3)
                v[2] = abs(v[2])
                o = o + self.correction_size * v / np.linalg.norm(v)
                self.stats["corrections"] += 1
            self.offset[arm] = o
            q, _ = c.ik.solve(c.q, c.pos + scale * o, c.rot, iters=6, null_gain=0.02)
            q_over[arm] = q
        self.last_action = _compose_action(env, self.expert.ctl, q_over)
        return self.last_action.copy()


def record_simulated_teleop(env, n_episodes: int, seed: int = 0, record_frames: bool = True, **operator_kw) -> list[Episode]:
    """Record ``n_episodes`` with a :class:`SimulatedOperator` (tier "teleop", operator "simulated")."""
    from groot_kit.sim.rollout import rollout

    eps = []
    for i in range(n_episodes):
        op = SimulatedOperator(env, seed=seed + i, **operator_kw)
        ep = rollout(env, op, seed=seed + i, record_frames=record_frames, tier="teleop")
        ep.meta.update(operator="simulated", **op.stats)
        eps.append(ep)
    return eps


# ------------------------------------------------------------------------------------------------
# Widgets
# ------------------------------------------------------------------------------------------------

_KEY_ESM = """
function render({ model, el }) {
  const box = document.createElement("div");
  box.tabIndex = 0;
  box.textContent = "click here, then use keys: W/S x, A/D y, R/F z, Q/E yaw, Space gripper";
  box.style.cssText = "padding:6px;border:1px dashed #888;border-radius:4px;font:12px sans-serif;outline:none";
  box.addEventListener("focus", () => box.style.borderColor = "#2a7");
  box.addEventListener("blur", () => box.style.borderColor = "#888");
  box.addEventListener("keydown", (e) => {
    e.preventDefault();
    model.set("key", e.key.toLowerCase());
    model.set("count", model.get("count") + 1);
    model.save_changes();
  });
  el.appendChild(box);
}
export default { render };
"""


def _png(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def key_widget():
    """An anywidget that reports key presses (``key``, ``count`` traits); None if anywidget is missing."""
    try:
        import anywidget
        import traitlets
    except ImportError:
        return None

    class KeyCapture(anywidget.AnyWidget):
        _esm = _KEY_ESM
        key = traitlets.Unicode("").tag(sync=True)
        count = traitlets.Int(0).tag(sync=True)

    return KeyCapture()


KEYMAP = {"w": (1, 0, 0, 0), "s": (-1, 0, 0, 0), "a": (0, 1, 0, 0), "d": (0, -1, 0, 0),
          "r": (0, 0, 1, 0), "f": (0, 0, -1, 0), "q": (0, 0, 0, 1), "e": (0, 0, 0, -1)}


def teleop_panel(env, arm: str | None = None, seed: int | None = 0, view_size: int = 192):
    """An ipywidgets panel around a :class:`TeleopSession`. Returns (panel, session)."""
    import ipywidgets as W

    session = TeleopSession(env, arm=arm, seed=seed)
    cams = list(session.env.spec_e.cameras)
    imgs = {c: W.Image(format="png", width=view_size, height=view_size) for c in cams}
    step = W.FloatSlider(value=0.01, min=0.002, max=0.03, step=0.002, description="jog (m)", readout_format=".3f")
    vel = {k: W.FloatSlider(value=0.0, min=-0.1, max=0.1, step=0.005, description=f"v{k} (m/s)") for k in "xyz"}
    grip = W.ToggleButton(value=False, description="gripper closed", icon="hand-rock-o")
    status = W.HTML()
    out_eps = W.HTML()
    play = W.Play(interval=int(1000 / min(30, session.env.spec_e.control_hz)), max=10**9, description="run")

    def refresh():
        for c in cams:
            imgs[c].value = _png(session.env.render_camera(c, view_size))
        ok = "yes" if session.success else "no"
        status.value = (f"<b>{session.env.instruction}</b><br>step {session.env.t} | sub-task "
                        f"<code>{session.info.get('subtask', '')}</code> | success: {ok}")

    def do(dx=0.0, dy=0.0, dz=0.0, dyaw=0.0):
        session.step(dx, dy, dz, dyaw, gripper=1.0 if grip.value else 0.0)
        refresh()

    buttons = []
    for label, v in (("+x", (1, 0, 0, 0)), ("-x", (-1, 0, 0, 0)), ("+y", (0, 1, 0, 0)), ("-y", (0, -1, 0, 0)),
                     ("up", (0, 0, 1, 0)), ("down", (0, 0, -1, 0)), ("yaw+", (0, 0, 0, 1)), ("yaw-", (0, 0, 0, -1))):
        b = W.Button(description=label, layout=W.Layout(width="60px"))
        b.on_click(lambda _b, v=v: do(*(np.array(v[:3]) * step.value), v[3] * 0.1))
        buttons.append(b)
    reset_b, save_b = W.Button(description="reset", icon="refresh"), W.Button(description="save episode", icon="save")

    def on_reset(_):
        session.reset(None)
        refresh()

    def on_save(_):
        ep = session.finish()
        out_eps.value = f"saved {len(session.episodes)} episode(s); last: {len(ep)} steps, success={ep.success}"
        session.reset(None)
        refresh()

    reset_b.on_click(on_reset)
    save_b.on_click(on_save)
    grip.observe(lambda ch: do(), names="value")
    dt = session.env.spec_e.control_dt
    play.observe(lambda ch: do(vel["x"].value * dt, vel["y"].value * dt, vel["z"].value * dt), names="value")
    keys = key_widget()
    if keys is not None:
        def on_key(_ch):
            k = keys.key
            if k == " ":
                grip.value = not grip.value
            elif k in KEYMAP:
                v = KEYMAP[k]
                do(*(np.array(v[:3]) * step.value), v[3] * 0.1)
        keys.observe(on_key, names="count")
    refresh()
    panel = W.VBox([
        W.HBox([W.VBox([W.Label(c), imgs[c]]) for c in cams]), status,
        W.HBox(buttons), W.HBox([step, grip]), W.HBox([play] + list(vel.values())),
        *([keys] if keys is not None else []), W.HBox([reset_b, save_b]), out_eps,
    ])
    panel.session = session
    return panel, session
