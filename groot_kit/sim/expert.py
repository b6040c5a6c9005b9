"""Scripted experts: Cartesian waypoints + damped least-squares IK, with sub-task labels.

``make_expert(env)`` returns an object with ``.act(obs) -> action`` and ``.subtask`` (one of
reach, grasp, lift, move, place, release). The expert reads privileged state (object poses)
from the env; it commands the end effector along straight lines at a bounded speed, solves IK
each control step (warm-started), and emits absolute joint targets + gripper commands.
"""

from __future__ import annotations

import numpy as np

from groot_kit.sim.env import GrootSimEnv
from groot_kit.sim.ik import ArmIK, down_frame, frame_from_axes


def _yaw_of(R: np.ndarray) -> float:
    return float(np.arctan2(R[1, 0], R[0, 0]))


def _wrap(a: float) -> float:
    return float((a + np.pi) % (2 * np.pi) - np.pi)


class _ArmCtl:
    """Commanded Cartesian pose + IK -> joint targets for one arm."""

    def __init__(self, env: GrootSimEnv, arm: str):
        self.env, self.arm = env, arm
        info = env.spec_e.arms[arm]
        self.ik = ArmIK(env.model, info.joints, info.ee_site, rest=info.home)
        self.q = env.data.qpos[env.arms[arm].qadr].copy()
        self.pos, R = env.ee_pose(arm)
        self.rot = R
        self.grip = 0.0
        self._heading_locked_to_base()

    def _heading_locked_to_base(self) -> None:
        """An arm without a wrist roll (e.g. yaw + three pitch joints) cannot turn its tool about the
        vertical except by turning its base: only the base joint's Jacobian has a world-z rotation
        component. Such an arm gets a heading it can reach (see `reachable_yaw`), not the cube's."""
        import mujoco
        m, d, ik = self.env.model, self.ik.data, self.ik
        d.qpos[ik.qadr] = self.q
        mujoco.mj_kinematics(m, d)
        mujoco.mj_comPos(m, d)
        jp, jr = np.zeros((3, m.nv)), np.zeros((3, m.nv))
        mujoco.mj_jacSite(m, d, jp, jr, ik.site)
        self.locked = bool(np.all(np.abs(jr[2, ik.dadr[1:]]) < 1e-6))
        jid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, self.env.spec_e.arms[self.arm].joints[0])
        self.base_xy = d.xanchor[jid][:2].copy()
        self.heading_offset = _wrap(_yaw_of(self.rot) - self._bearing(self.pos))

    def _bearing(self, p) -> float:
        return float(np.arctan2(p[1] - self.base_xy[1], p[0] - self.base_xy[0]))

    def reachable_yaw(self, p, wanted: float) -> float:
        """`wanted` for an arm that can roll its tool; otherwise the heading its base gives at p
        (the expert then commands that heading along the whole path)."""
        return self._bearing(p) + self.heading_offset if self.locked else wanted

    def move_towards(self, target, speed: float, dt: float) -> bool:
        d = np.asarray(target, float) - self.pos
        n = np.linalg.norm(d)
        stepn = speed * dt
        if n <= stepn:
            self.pos = np.asarray(target, float).copy()
            return True
        self.pos = self.pos + d / n * stepn
        return False

    def solve(self) -> np.ndarray:
        self.q, _ = self.ik.solve(self.q, self.pos, self.rot, iters=8, null_gain=0.02)
        return self.q

    def error(self) -> float:
        return float(np.linalg.norm(self.env.ee_pose(self.arm)[0] - self.pos))


class ScriptedExpert:
    """Expert for ``pick_place``, ``reach`` and ``lift_box`` on any embodiment."""

    def __init__(self, env: GrootSimEnv, speed_scale: float = 1.0):
        self.env = env.unwrapped if hasattr(env, "unwrapped") else env
        self.speed_scale = speed_scale
        self._episode_key = None
        self.subtask = "reach"

    # -------------------------------------------------------------- episode setup
    def reset(self) -> None:
        env = self.env
        self.ctl = {a: _ArmCtl(env, a) for a in env.arms}
        self.stage, self.stage_t, self.retries, self.done = 0, 0, 0, False
        self.subtask = "reach"
        lay = env.layout
        self.speed = float(lay.get("speed", 0.3)) * self.speed_scale
        self.hover = float(lay["hover_height"])
        self._episode_key = (id(env.target), env.instruction)
        self._plan()

    def _plan(self) -> None:
        """Build the list of (label, {arm: (pos, rot)}, grip per arm, speed factor, hold seconds)."""
        env, T = self.env, self.env.target
        if env.task in ("pick_place", "reach"):
            arm = T["arm"]
            c = T["cube_half"]
            cp = env.body_pos(T["cube"])
            cyaw = _yaw_of(env.body_mat(T["cube"]))
            cur_yaw = _yaw_of(self.ctl[arm].rot)
            cands = [cyaw + k * np.pi / 2 for k in range(-4, 5)]
            yaw = min(cands, key=lambda a: abs(_wrap(a - cur_yaw)) + 0.01 * abs(a - cur_yaw))
            yaw = cur_yaw + _wrap(yaw - cur_yaw)
            R = down_frame(yaw)
            h = self.hover
            above = np.array([cp[0], cp[1], h])
            if env.task == "reach":
                self.plan = [("reach", {arm: (cp + [0, 0, env.reach_height()], R)}, {arm: 0.0}, 1.0, 0.0)]
                self.arm = arm
                return
            grasp_z = c + 0.002
            bp = T["bin_pos"]
            place_z = 0.004 + c + 0.012
            self.plan = [
                ("reach", {arm: (above, R)}, {arm: 0.0}, 1.0, 0.0),
                ("reach", {arm: (np.array([cp[0], cp[1], grasp_z]), R)}, {arm: 0.0}, 0.5, 0.1),
                ("grasp", {arm: (np.array([cp[0], cp[1], grasp_z]), R)}, {arm: 1.0}, 0.5, 0.5),
                ("lift", {arm: (above, R)}, {arm: 1.0}, 0.6, 0.0),
                ("move", {arm: (np.array([bp[0], bp[1], h]), R)}, {arm: 1.0}, 1.0, 0.0),
                ("place", {arm: (np.array([bp[0], bp[1], place_z]), R)}, {arm: 1.0}, 0.5, 0.1),
                ("release", {arm: (np.array([bp[0], bp[1], place_z]), R)}, {arm: 0.0}, 0.5, 0.4),
                ("release", {arm: (np.array([bp[0], bp[1], h]), R)}, {arm: 0.0}, 1.0, 10.0),
            ]
            self.arm = arm
        else:  # lift_box with both arms
            bp = env.body_pos("box")
            Rb = env.body_mat("box")
            hy = T["box_half"][1]
            z = bp[2]
            plan_reach_hi, plan_reach, plan_grasp, plan_lift = {}, {}, {}, {}
            for arm, sgn in (("left", 1.0), ("right", -1.0)):
                side = Rb[:, 1] * sgn  # outward normal of this hand's face
                R = frame_from_axes(-side, Rb[:, 0])
                out = bp + side * (hy + 0.05)
                plan_reach_hi[arm] = (out + [0, 0, 0.08], R)
                plan_reach[arm] = (out, R)
                squeeze = bp + side * (hy - 0.02)
                plan_grasp[arm] = (squeeze, R)
                plan_lift[arm] = (squeeze + [0, 0, 0.12], R)
            g = {"left": 1.0, "right": 1.0}
            self.plan = [
                ("reach", plan_reach_hi, g, 1.0, 0.0),
                ("reach", plan_reach, g, 0.6, 0.1),
                ("grasp", plan_grasp, g, 0.3, 0.3),
                ("lift", plan_lift, g, 0.3, 10.0),
            ]
            self.arm = "left"

    # -------------------------------------------------------------- control
    def act(self, obs=None) -> np.ndarray:
        env = self.env
        if self._episode_key != (id(env.target), env.instruction) or env.t == 0 and getattr(self, "_last_t", -1) != 0:
            self.reset()
        self._last_t = env.t
        dt = env.spec_e.control_dt
        label, targets, grips, sf, hold = self.plan[min(self.stage, len(self.plan) - 1)]
        self.subtask = label
        arrived = True
        for arm, (pos, R) in targets.items():
            c = self.ctl[arm]
            arrived &= c.move_towards(pos, self.speed * sf, dt)
            c.rot = down_frame(c.reachable_yaw(c.pos, 0.0)) if c.locked and env.task != "lift_box" else R
        for arm, g in grips.items():
            self.ctl[arm].grip = g
        for c in self.ctl.values():
            c.solve()
        if arrived:
            self.stage_t += 1
            tol = 0.012 if label in ("reach", "place") else 0.03
            settled = all(self.ctl[a].error() < tol for a in targets) or self.stage_t * dt > 1.5 + hold
            if settled and self.stage_t * dt >= hold:
                self._advance()
        return self._action()

    def _advance(self) -> None:
        env = self.env
        label = self.plan[self.stage][0]
        if label == "lift" and env.task == "pick_place":
            # grasp check: did the cube come up? otherwise re-plan from the current state
            cz = env.body_pos(env.target["cube"])[2]
            if cz < env.target["cube_half"] + 0.3 * self.hover and self.retries < 3:
                self.retries += 1
                self.stage, self.stage_t = 0, 0
                self._plan()
                return
        self.stage = min(self.stage + 1, len(self.plan) - 1)
        self.stage_t = 0

    def _action(self) -> np.ndarray:
        env, sp = self.env, self.env.spec_e
        a = np.zeros(sp.action_dim, np.float32)
        for k in sp.action.values():
            if k.source == "joints":
                for i, j in enumerate(k.joints):
                    for c in self.ctl.values():
                        if j in c.ik_joint_names:
                            a[k.start + i] = c.q[c.ik_joint_names.index(j)]
            else:
                a[k.start] = self.ctl[k.arm].grip
        return a


def _names(ctl: _ArmCtl) -> list[str]:
    return ctl.env.spec_e.arms[ctl.arm].joints


_ArmCtl.ik_joint_names = property(_names)


def make_expert(env, **kwargs) -> ScriptedExpert:
    """Scripted expert for ``env``'s embodiment and task (``.act(obs)``, ``.subtask``)."""
    return ScriptedExpert(env, **kwargs)
