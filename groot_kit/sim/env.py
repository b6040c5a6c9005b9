"""Gymnasium environments: language-conditioned tabletop tasks for every embodiment.

Tasks
-----
``pick_place``  three coloured cubes and two coloured bins; the instruction names one cube and one
                bin: "pick up the red cube and place it in the yellow bin". Success: that cube rests
                inside that bin and no gripper touches it.
``reach``       "move the gripper above the green cube". Success: end effector within 2.5 cm of the
                point above the cube.
``lift_box``    (two arms) "lift the blue box with both hands". Success: the box is held 6 cm above
                its start for 0.25 s.

Observation (a flat dict): ``state`` (float32, layout of ``embodiment.yaml``'s state keys) and one
uint8 HxWx3 image per camera key (``front``/``ego`` and ``wrist``) unless ``render=False``.
Action: float32 vector in the layout of the action keys: absolute joint position targets (rad)
and gripper commands in [0, 1] (0 open, 1 closed), applied at the embodiment's control rate.
``info``: ``instruction``, ``subtask`` (an oracle label computed from the world state; scripted
experts report their own), ``success``, ``task``, ``embodiment``.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import mujoco
import numpy as np

from groot_kit.embodiment import EmbodimentError, EmbodimentSpec, load_embodiment
from groot_kit.sim.render import render_view

TASKS = ("pick_place", "reach", "lift_box")
SUBTASKS = ("reach", "grasp", "lift", "move", "place", "release")
CUBE_COLORS = {
    "red": (0.85, 0.12, 0.1), "green": (0.15, 0.7, 0.2), "blue": (0.15, 0.3, 0.9),
    "yellow": (0.95, 0.85, 0.1), "orange": (0.95, 0.5, 0.05), "purple": (0.55, 0.2, 0.75),
    "white": (0.95, 0.95, 0.95), "black": (0.08, 0.08, 0.08),
}
BIN_COLORS = {"yellow": (0.9, 0.8, 0.15), "cyan": (0.1, 0.75, 0.8), "magenta": (0.8, 0.15, 0.6),
              "gray": (0.45, 0.45, 0.45), "brown": (0.5, 0.3, 0.15), "pink": (0.95, 0.6, 0.7)}
EPISODE_SECONDS = {"pick_place": 14.0, "reach": 5.0, "lift_box": 8.0}


@dataclass
class _Arm:
    name: str
    act_ids: np.ndarray
    qadr: np.ndarray
    finger_qadr: np.ndarray
    finger_act: np.ndarray
    open: float
    ee_site: int
    pad_geoms: set


class GrootSimEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, embodiment, task: str = "pick_place", image_size: int = 96, seed: int | None = None,
                 randomize: bool = True, render: bool = True, terminate_on_success: bool = True,
                 max_episode_steps: int | None = None, num_cubes: int = 3, start_noise: float = 0.02,
                 blank_cameras: tuple[str, ...] = ()):
        self.spec_e: EmbodimentSpec = load_embodiment(embodiment)
        sp = self.spec_e
        if task not in TASKS:
            raise EmbodimentError(f"make_env: unknown task {task!r}. Fix: use one of {sp.tasks} for {sp.name}")
        if task not in sp.tasks:
            raise EmbodimentError(f"make_env: task {task!r} is not available for {sp.name} "
                                  f"(embodiment.yaml 'tasks': {sp.tasks}). Fix: use one of those")
        if not isinstance(image_size, (int, np.integer)) or not 32 <= image_size <= 480:
            raise ValueError(f"make_env: image_size={image_size!r} must be an int in [32, 480] (64-224 recommended)")
        self.task, self.image_size, self.randomize = task, int(image_size), randomize
        self.render_images, self.terminate_on_success = render, terminate_on_success
        self.render_mode = "rgb_array"
        self.num_cubes = num_cubes
        unknown = [c for c in blank_cameras if c not in sp.cameras]
        if unknown:
            raise ValueError(f"make_env: blank_cameras {unknown} are not cameras of {sp.name} ({list(sp.cameras)})")
        self.blank_cameras = tuple(blank_cameras)   # rendered as zeros: camera ablations
        if not 0.0 <= float(start_noise) <= 1.0:
            raise ValueError(f"make_env: start_noise={start_noise!r} must be in [0, 1] rad (0.02 nominal; "
                             "0.2-0.4 gives varied start poses for demonstrations)")
        # std (rad) of the noise on the home joints at reset. Demos recorded from varied start poses
        # show the policy how to come back to the target from anywhere, not only from home.
        self.start_noise = float(start_noise)
        self.layout = sp.task_layout
        self.model = self._build_model()
        self.data = mujoco.MjData(self.model)
        m = self.model
        self.n_substeps = max(1, int(round(sp.control_dt / m.opt.timestep)))
        m.opt.timestep = sp.control_dt / self.n_substeps
        self.max_steps = max_episode_steps or int(EPISODE_SECONDS[task] * sp.control_hz)
        self.arms: dict[str, _Arm] = {}
        for an, a in sp.arms.items():
            jid = [self._id("joint", j) for j in a.joints]
            fj = [self._id("joint", j) for j in a.gripper_joints]
            pads = set()
            for j in fj:
                b = m.jnt_bodyid[j]
                pads |= {g for g in range(m.ngeom) if m.geom_bodyid[g] in (b, m.body_parentid[b])}
            self.arms[an] = _Arm(an, np.array([self._id("actuator", j + "_act") for j in a.joints]),
                                 m.jnt_qposadr[jid], np.array(m.jnt_qposadr[fj], int) if fj else np.zeros(0, int),
                                 np.array([self._id("actuator", j + "_act") for j in a.gripper_joints], int),
                                 a.gripper_open, self._id("site", a.ee_site), pads)
        self._act_lo, self._act_hi = sp.action_bounds()
        self.action_space = gym.spaces.Box(self._act_lo, self._act_hi, dtype=np.float32)
        spaces = {"state": gym.spaces.Box(-np.inf, np.inf, (sp.state_dim,), np.float32)}
        self.cam_ids = {k: [self._id("camera", c) for c in sp.camera_names(k)] for k in sp.cameras}
        if render:
            for k in sp.cameras:
                spaces[k] = gym.spaces.Box(0, 255, (image_size, image_size, 3), np.uint8)
        self.observation_space = gym.spaces.Dict(spaces)
        self._renderers: dict[str, mujoco.Renderer] = {}
        self._nominal = dict(cam_pos=m.cam_pos.copy(), light_pos=m.light_pos.copy(),
                             light_diffuse=m.light_diffuse.copy(), geom_rgba=m.geom_rgba.copy())
        self._rng = np.random.default_rng(seed)
        self._seed = seed
        self.instruction, self.t, self._success_count, self._last_action = "", 0, 0, sp.home_action()
        self.target: dict = {}

    # ----------------------------------------------------------------------------- model build
    def _id(self, kind: str, name: str) -> int:
        obj = {"joint": mujoco.mjtObj.mjOBJ_JOINT, "actuator": mujoco.mjtObj.mjOBJ_ACTUATOR, "site": mujoco.mjtObj.mjOBJ_SITE,
               "camera": mujoco.mjtObj.mjOBJ_CAMERA, "body": mujoco.mjtObj.mjOBJ_BODY, "geom": mujoco.mjtObj.mjOBJ_GEOM}[kind]
        i = mujoco.mj_name2id(self.model, obj, name)
        if i < 0:
            raise EmbodimentError(f"{self.spec_e.root / 'embodiment.yaml'}: {kind} {name!r} is not in the MJCF. "
                                  f"Fix: make embodiment.yaml and {self.spec_e.robot_xml.name} agree")
        return i

    def _build_model(self) -> mujoco.MjModel:
        sp = self.spec_e
        try:
            s = mujoco.MjSpec.from_file(str(sp.scene_xml))
        except Exception as e:
            msg = " ".join(str(e).split())
            raise EmbodimentError(f"{sp.scene_xml}: MuJoCo could not parse it ({msg}). Fix: repair the MJCF "
                                  f"(or regenerate it with groot_kit.sim.arm_generator)") from None
        G = mujoco.mjtGeom
        lay = self.layout
        if self.task in ("pick_place", "reach"):
            c = float(lay["cube_size"]) / 2
            for i in range(self.num_cubes):
                b = s.worldbody.add_body(name=f"cube{i}", pos=[0.3, 0.1 * i, c + 0.5])
                b.add_freejoint(name=f"cube{i}_free")
                b.add_geom(name=f"cube{i}_geom", type=G.mjGEOM_BOX, size=[c, c, c], rgba=[1, 0, 0, 1],
                           mass=0.05 if c > 0.016 else 0.025, friction=[1.5, 0.01, 0.001], condim=4,
                           contype=1, conaffinity=3)
            if self.task == "pick_place":
                inner, wall, h = 1.8 * c * 2 / 2 + c * 0.6, 0.004, 0.8 * c * 2
                for i in range(2):
                    b = s.worldbody.add_body(name=f"bin{i}", pos=[0.2, 0.3 - 0.6 * i, 0])
                    kw = dict(type=G.mjGEOM_BOX, rgba=[1, 1, 0, 1], contype=1, conaffinity=3)
                    b.add_geom(name=f"bin{i}_floor", size=[inner + wall, inner + wall, 0.002], pos=[0, 0, 0.002], **kw)
                    for k, (dx, dy) in enumerate([(1, 0), (-1, 0), (0, 1), (0, -1)]):
                        sz = [wall, inner + wall, h / 2] if dx else [inner + wall, wall, h / 2]
                        b.add_geom(name=f"bin{i}_wall{k}", size=sz, pos=[dx * (inner + wall), dy * (inner + wall), h / 2], **kw)
                self.bin_inner, self.bin_height = inner, h
        elif self.task == "lift_box":
            bs = [float(v) for v in lay["box_size"]]
            b = s.worldbody.add_body(name="box", pos=[0.35, 0, bs[2] + 0.5])
            b.add_freejoint(name="box_free")
            b.add_geom(name="box_geom", type=G.mjGEOM_BOX, size=bs, rgba=[0.2, 0.3, 0.9, 1], mass=0.25,
                       friction=[1.5, 0.01, 0.001], condim=4, contype=1, conaffinity=3)
        return s.compile()

    # ----------------------------------------------------------------------------- helpers
    def ee_pose(self, arm: str) -> tuple[np.ndarray, np.ndarray]:
        a = self.arms[arm]
        return self.data.site_xpos[a.ee_site].copy(), self.data.site_xmat[a.ee_site].reshape(3, 3).copy()

    def body_pos(self, name: str) -> np.ndarray:
        return self.data.xpos[self._id("body", name)].copy()

    def body_mat(self, name: str) -> np.ndarray:
        return self.data.xmat[self._id("body", name)].reshape(3, 3).copy()

    def gripper_closure(self, arm: str) -> float:
        a = self.arms[arm]
        if len(a.finger_qadr) == 0:
            return 0.0
        return float(np.clip(1 - np.mean(self.data.qpos[a.finger_qadr]) / a.open, 0, 1))

    def _set_free(self, body: str, pos, yaw: float = 0.0) -> None:
        j = self.model.body_jntadr[self._id("body", body)]
        adr = self.model.jnt_qposadr[j]
        self.data.qpos[adr:adr + 3] = pos
        self.data.qpos[adr + 3:adr + 7] = [np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)]
        dadr = self.model.jnt_dofadr[j]
        self.data.qvel[dadr:dadr + 6] = 0

    def touching(self, geom_set: set, body: str) -> bool:
        bid = self._id("body", body)
        for i in range(self.data.ncon):
            c = self.data.contact[i]
            g1, g2 = c.geom1, c.geom2
            if (g1 in geom_set and self.model.geom_bodyid[g2] == bid) or (g2 in geom_set and self.model.geom_bodyid[g1] == bid):
                return True
        return False

    # ----------------------------------------------------------------------------- gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        rng, m, d = self._rng, self.model, self.data
        mujoco.mj_resetData(m, d)
        for k, v in self._nominal.items():
            getattr(m, k)[:] = v
        self._reset_arms(rng)
        R = self.randomize
        if R:  # lighting, camera jitter, table colour
            m.light_pos[:] += rng.uniform(-0.25, 0.25, m.light_pos.shape)
            m.light_diffuse[:] *= rng.uniform(0.7, 1.25, (m.nlight, 1))
            m.cam_pos[:] += rng.normal(0, 0.008, m.cam_pos.shape) * (m.cam_bodyid == 0)[:, None]
            t = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "table")
            m.geom_rgba[t, :3] = np.clip(m.geom_rgba[t, :3] + rng.uniform(-0.12, 0.12, 3), 0, 1)
        self.target = {}
        if self.task in ("pick_place", "reach"):
            self._reset_cubes(rng)
        else:
            self._reset_box(rng)
        mujoco.mj_forward(m, d)
        self.t, self._success_count = 0, 0
        self._last_action = self.get_action_from_ctrl()
        self._start_warnings = self.warning_count()
        obs = self._obs()
        return obs, self._info(False)

    def _reset_arms(self, rng) -> None:
        """Home pose plus N(0, start_noise) per joint, clipped to the joint range. Large noise is
        re-drawn (up to 50 times) until every end effector is at least 6 cm above the table."""
        m, d, sp = self.model, self.data, self.spec_e
        for _attempt in range(50):
            for an, arm in self.arms.items():
                home = np.asarray(sp.arms[an].home, float)
                if self.randomize:
                    jids = [self._id("joint", j) for j in sp.arms[an].joints]
                    lo, hi = m.jnt_range[jids, 0], m.jnt_range[jids, 1]
                    home = np.clip(home + rng.normal(0, self.start_noise, home.shape), lo, hi)
                d.qpos[arm.qadr] = home
                d.ctrl[arm.act_ids] = home
                d.qpos[arm.finger_qadr] = arm.open
                d.ctrl[arm.finger_act] = arm.open
            if not self.randomize or self.start_noise <= 0.05:
                return
            mujoco.mj_kinematics(m, d)
            if all(d.site_xpos[a.ee_site][2] > 0.06 for a in self.arms.values()):
                return

    def _jitter(self, rgb, rng):
        rgb = np.asarray(rgb, float)
        return np.clip(rgb + (rng.uniform(-0.07, 0.07, 3) if self.randomize else 0), 0, 1)

    def _reset_cubes(self, rng) -> None:
        lay, m = self.layout, self.model
        c = float(lay["cube_size"]) / 2
        names = list(CUBE_COLORS)
        cols = list(rng.choice(names, self.num_cubes, replace=False)) if self.randomize else names[:self.num_cubes]
        (x0, x1), (y0, y1) = lay["cube_region"]["x"], lay["cube_region"]["y"]
        # minimum spacing: an open gripper around one cube must not touch its neighbours
        opening = max(a.open for a in self.arms.values())
        sep = max(4.5 * c, c + 1.7 * opening + 0.01)
        pts = []
        for _attempt in range(500):
            pts = []
            for i in range(self.num_cubes):
                if self.randomize:
                    pts.append(np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)]))
                else:
                    pts.append(np.array([(x0 + x1) / 2 + (0.25 * (x1 - x0) if i % 2 else 0.0),
                                         y0 + (y1 - y0) * (i + 0.5) / self.num_cubes]))
            if all(np.linalg.norm(p - q) > sep for i, p in enumerate(pts) for q in pts[:i]):
                break
        for i, p in enumerate(pts):
            yaw = rng.uniform(-0.6, 0.6) if self.randomize else 0.0
            self._set_free(f"cube{i}", [p[0], p[1], c + 0.0005], yaw)
            m.geom_rgba[self._id("geom", f"cube{i}_geom"), :3] = self._jitter(CUBE_COLORS[cols[i]], rng)
        ti = int(rng.integers(self.num_cubes))
        self.scene = {"cube_colors": [str(x) for x in cols], "cube_xy": [p.copy() for p in pts], "cube_half": c}
        bi = None
        if self.task == "pick_place":
            slots = np.array(lay["bin_slots"], float)
            if self.randomize:
                slots = slots[rng.permutation(len(slots))] + rng.uniform(-0.01, 0.01, slots.shape)
            bnames = list(BIN_COLORS)
            bcols = list(rng.choice(bnames, 2, replace=False)) if self.randomize else bnames[:2]
            for i in range(2):
                bid = self._id("body", f"bin{i}")
                m.body_pos[bid] = [slots[i][0], slots[i][1], 0.0]
                rgb = self._jitter(BIN_COLORS[bcols[i]], rng)
                for g in range(m.ngeom):
                    if m.geom_bodyid[g] == bid:
                        m.geom_rgba[g, :3] = rgb
            self.scene.update(bin_colors=[str(x) for x in bcols], bin_slots=slots.copy())
            bi = int(rng.integers(2))
        self.set_target(ti, bi)

    def set_target(self, cube: int, bin: int | None = None) -> str:
        """Make cube `cube` (and, for pick_place, bin `bin`) of the current scene the target: the
        instruction, the success check and the sub-task labels follow. Returns the instruction. Reset
        picks them at random; a language ablation re-points them mid-scene."""
        sc = self.scene
        if not 0 <= cube < len(sc["cube_colors"]):
            raise ValueError(f"cube index {cube} out of range: this scene has {len(sc['cube_colors'])} cubes")
        col = sc["cube_colors"][cube]
        self.target = {"cube": f"cube{cube}", "cube_color": col, "cube_half": sc["cube_half"]}
        if self.task == "pick_place":
            if bin not in (0, 1):
                raise ValueError(f"bin index {bin!r}: pick_place needs 0 or 1")
            xy = sc["bin_slots"][bin]
            self.target.update(bin=f"bin{bin}", bin_color=sc["bin_colors"][bin], bin_pos=np.array([xy[0], xy[1], 0.0]))
            self.instruction = f"pick up the {col} cube and place it in the {sc['bin_colors'][bin]} bin"
            by = xy[1]
        else:
            self.instruction = f"move the gripper above the {col} cube"
            by = sc["cube_xy"][cube][1]
        arms = list(self.arms)  # bimanual: the arm on the side of the bin (or the cube)
        self.target["arm"] = ("left" if by > 0 else "right") if len(arms) > 1 else arms[0]
        return self.instruction

    def next_target(self, steps: int = 1) -> str:
        """Re-point the scene `steps` cubes further along (pick_place: the other bin on odd steps): a
        different valid instruction for the same scene. Returns the instruction."""
        cube = (int(self.target["cube"].removeprefix("cube")) + steps) % len(self.scene["cube_colors"])
        bin_ = None if self.task != "pick_place" else (int(self.target["bin"].removeprefix("bin")) + steps) % 2
        return self.set_target(cube, bin_)

    def _reset_box(self, rng) -> None:
        lay = self.layout
        bs = np.array(lay["box_size"], float)
        (x0, x1), (y0, y1) = lay["box_region"]["x"], lay["box_region"]["y"]
        p = [rng.uniform(x0, x1), rng.uniform(y0, y1)] if self.randomize else [(x0 + x1) / 2, (y0 + y1) / 2]
        yaw = rng.uniform(-0.15, 0.15) if self.randomize else 0.0
        self._set_free("box", [p[0], p[1], bs[2] + 0.0005], yaw)
        cols = list(CUBE_COLORS)
        col = str(rng.choice(cols)) if self.randomize else "blue"
        self.model.geom_rgba[self._id("geom", "box_geom"), :3] = self._jitter(CUBE_COLORS[col], rng)
        self.target = {"box": "box", "box_color": col, "box_z0": bs[2], "box_half": bs, "arm": "both"}
        self.instruction = f"lift the {col} box with both hands"

    def get_action_from_ctrl(self) -> np.ndarray:
        """The action vector that reproduces the current actuator targets."""
        a = np.zeros(self.spec_e.action_dim, np.float32)
        d = self.data
        for k in self.spec_e.action.values():
            if k.source == "joints":
                a[k.start:k.end] = [d.ctrl[self._id("actuator", j + "_act")] for j in k.joints]
            else:
                arm = self.arms[k.arm]
                a[k.start] = 1 - np.mean(d.ctrl[arm.finger_act]) / arm.open
        return a

    def apply_action(self, action) -> np.ndarray:
        sp = self.spec_e
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (sp.action_dim,):
            raise ValueError(f"step: action has shape {a.shape}, expected ({sp.action_dim},) for {sp.name} "
                             f"(keys {[(k.name, k.dim) for k in sp.action.values()]}). Fix: build it with the action layout")
        if not np.all(np.isfinite(a)):
            bad = [k.name for k in sp.action.values() if not np.all(np.isfinite(a[k.start:k.end]))]
            raise ValueError(f"step: action contains NaN/inf in keys {bad}. Fix: check the policy output / normalization")
        a = np.clip(a, self._act_lo, self._act_hi)
        d = self.data
        for k in sp.action.values():
            if k.source == "joints":
                for i, j in enumerate(k.joints):
                    d.ctrl[self._id("actuator", j + "_act")] = a[k.start + i]
            else:
                arm = self.arms[k.arm]
                d.ctrl[arm.finger_act] = arm.open * (1 - a[k.start])
        return a.astype(np.float32)

    def step(self, action):
        self._last_action = self.apply_action(action)
        mujoco.mj_step(self.model, self.data, nstep=self.n_substeps)
        self.t += 1
        success = self._check_success()
        terminated = bool(success and self.terminate_on_success)
        truncated = self.t >= self.max_steps
        return self._obs(), float(success), terminated, truncated, self._info(success)

    def warning_count(self) -> int:
        return int(sum(self.data.warning[i].number for i in range(len(self.data.warning))))

    # ----------------------------------------------------------------------------- task logic
    def is_success(self) -> bool:
        """Whether the task is solved in the current state (what ``step`` reports as success)."""
        return self._check_success()

    def _check_success(self) -> bool:
        if self.task == "pick_place":
            cp = self.body_pos(self.target["cube"])
            bp = self.target["bin_pos"]
            c = self.target["cube_half"]
            inside = np.all(np.abs(cp[:2] - bp[:2]) < self.bin_inner) and cp[2] < 0.004 + 1.6 * c
            free = not any(self.touching(a.pad_geoms, self.target["cube"]) for a in self.arms.values())
            ok = bool(inside and free)
        elif self.task == "reach":
            tgt = self.body_pos(self.target["cube"]) + [0, 0, self.reach_height()]
            ok = bool(np.linalg.norm(self.ee_pose(self.target["arm"])[0] - tgt) < 0.025)
        else:
            z = self.body_pos("box")[2]
            self._success_count = self._success_count + 1 if z > self.target["box_z0"] + 0.06 else 0
            ok = self._success_count >= int(0.25 * self.spec_e.control_hz)
        return ok

    def reach_height(self) -> float:
        return float(self.layout["cube_size"]) * 1.5

    def oracle_subtask(self) -> str:
        """A sub-task label computed from the world state (for any policy)."""
        if self.task == "reach":
            return "reach"
        if self.task == "lift_box":
            z = self.body_pos("box")[2]
            if z > self.target["box_z0"] + 0.01:
                return "lift"
            touching = all(self.touching(a.pad_geoms, "box") for a in self.arms.values())
            return "grasp" if touching else "reach"
        arm = self.arms[self.target["arm"]]
        cube = self.target["cube"]
        cp = self.body_pos(cube)
        held = self.touching(arm.pad_geoms, cube) and self.gripper_closure(arm.name) > 0.3
        c = self.target["cube_half"]
        if not held:
            near_bin = np.all(np.abs(cp[:2] - self.target["bin_pos"][:2]) < self.bin_inner)
            if near_bin:
                return "release"
            ee = self.ee_pose(arm.name)[0]
            return "grasp" if np.linalg.norm(ee - cp) < 1.5 * c else "reach"
        dxy = np.linalg.norm(cp[:2] - self.target["bin_pos"][:2])
        if dxy < self.bin_inner:
            return "place"
        return "lift" if cp[2] < c + 0.5 * self.layout["hover_height"] and dxy > 3 * self.bin_inner else "move"

    # ----------------------------------------------------------------------------- observations
    def get_state(self) -> np.ndarray:
        s = np.zeros(self.spec_e.state_dim, np.float32)
        d = self.data
        for k in self.spec_e.state.values():
            if k.source == "joints":
                s[k.start:k.end] = [d.qpos[self.model.jnt_qposadr[self._id("joint", j)]] for j in k.joints]
            else:
                s[k.start] = self.gripper_closure(k.arm)
        return s

    def render_camera(self, key: str, size: int | None = None) -> np.ndarray:
        """(size, size, 3) uint8 image of video key ``key`` (a tiled key: its cameras side by side)."""
        img = render_view(self._renderers, self.model, self.data, self.cam_ids[key], size or self.image_size)
        return img * 0 if key in self.blank_cameras else img

    def _obs(self) -> dict:
        obs = {"state": self.get_state()}
        if self.render_images:
            for k in self.spec_e.cameras:
                obs[k] = self.render_camera(k)
        return obs

    def _info(self, success: bool) -> dict:
        return {"instruction": self.instruction, "subtask": self.oracle_subtask(), "success": bool(success),
                "task": self.task, "embodiment": self.spec_e.name, "step": self.t}

    def render(self):
        return self.render_camera(next(iter(self.spec_e.cameras)))

    def close(self):
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()


def make_env(embodiment, task: str = "pick_place", image_size: int = 96, seed: int | None = None,
             randomize: bool = True, render: bool = True, **kwargs) -> GrootSimEnv:
    """Build a tabletop env for ``embodiment`` (name, folder or spec) and ``task``. See module doc."""
    return GrootSimEnv(embodiment, task, image_size=image_size, seed=seed, randomize=randomize, render=render, **kwargs)
