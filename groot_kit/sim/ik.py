"""Damped least-squares inverse kinematics on MuJoCo Jacobians (our own code).

``solve_ik`` works on a scratch ``MjData`` so it never disturbs the simulation; the orientation
error uses the sum-of-cross-products form, and redundant arms get a null-space pull towards a
rest posture.
"""

from __future__ import annotations

import mujoco
import numpy as np


def down_frame(yaw: float) -> np.ndarray:
    """Rotation whose z axis points down (approach from above) and x axis has heading ``yaw``."""
    c, s = np.cos(yaw), np.sin(yaw)
    x = np.array([c, s, 0.0])
    z = np.array([0.0, 0.0, -1.0])
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=1)


def frame_from_axes(z, x) -> np.ndarray:
    z = np.asarray(z, float) / np.linalg.norm(z)
    x = np.asarray(x, float)
    x = x - z * (x @ z)
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z], axis=1)


def orientation_error(cur: np.ndarray, tgt: np.ndarray) -> np.ndarray:
    return 0.5 * (np.cross(cur[:, 0], tgt[:, 0]) + np.cross(cur[:, 1], tgt[:, 1]) + np.cross(cur[:, 2], tgt[:, 2]))


class ArmIK:
    """IK for one chain of a model (joint names -> qpos/dof addresses, one end-effector site)."""

    def __init__(self, model: mujoco.MjModel, joint_names, site_name: str, rest=None):
        self.model = model
        self.data = mujoco.MjData(model)
        ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, n) for n in joint_names]
        if min(ids) < 0:
            missing = [n for n, i in zip(joint_names, ids) if i < 0]
            raise ValueError(f"IK: joints {missing} not found in the model")
        self.qadr = np.array([model.jnt_qposadr[i] for i in ids])
        self.dadr = np.array([model.jnt_dofadr[i] for i in ids])
        self.lo = model.jnt_range[ids, 0].copy()
        self.hi = model.jnt_range[ids, 1].copy()
        self.site = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, site_name)
        if self.site < 0:
            raise ValueError(f"IK: site {site_name!r} not found in the model")
        self.rest = None if rest is None else np.asarray(rest, float)
        self._jp = np.zeros((3, model.nv))
        self._jr = np.zeros((3, model.nv))

    def fk(self, q) -> tuple[np.ndarray, np.ndarray]:
        d = self.data
        d.qpos[self.qadr] = q
        mujoco.mj_kinematics(self.model, d)
        return d.site_xpos[self.site].copy(), d.site_xmat[self.site].reshape(3, 3).copy()

    def solve(self, q0, pos, rot=None, iters: int = 20, damping: float = 0.03, rot_weight: float = 0.4,
              null_gain: float = 0.05, tol: float = 2e-4, max_step: float = 0.25):
        """Return (q, position error norm). ``rot=None`` solves position only."""
        m, d = self.model, self.data
        q = np.clip(np.asarray(q0, float).copy(), self.lo, self.hi)
        n = len(q)
        err_n = np.inf
        for _ in range(iters):
            d.qpos[self.qadr] = q
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)
            ep = pos - d.site_xpos[self.site]
            mujoco.mj_jacSite(m, d, self._jp, self._jr, self.site)
            if rot is not None:
                er = orientation_error(d.site_xmat[self.site].reshape(3, 3), rot) * rot_weight
                e = np.concatenate([ep, er])
                J = np.vstack([self._jp[:, self.dadr], rot_weight * self._jr[:, self.dadr]])
            else:
                e, J = ep, self._jp[:, self.dadr]
            err_n = float(np.linalg.norm(e))
            if err_n < tol:
                break
            JJt = J @ J.T + (damping**2) * np.eye(J.shape[0])
            Jpinv = J.T @ np.linalg.solve(JJt, np.eye(J.shape[0]))
            dq = Jpinv @ e
            if self.rest is not None and n > J.shape[0] - 0:
                dq += (np.eye(n) - Jpinv @ J) @ (null_gain * (self.rest - q))
            step = np.max(np.abs(dq))
            if step > max_step:
                dq *= max_step / step
            q = np.clip(q + dq, self.lo, self.hi)
        d.qpos[self.qadr] = q
        mujoco.mj_kinematics(m, d)
        return q, float(np.linalg.norm(pos - d.site_xpos[self.site]))
