"""MJCF generation for the kit's robots (primitive geoms only, written by us).

Every robot is a set of serial chains ("arms"). A chain is a list of revolute joints, each living
in its own body at an offset from its parent; links are capsules between consecutive joint
origins. Each chain ends in a ``hand`` body whose local +z axis is the approach direction (the
way the fingers point). Fingers slide along the hand's local +/-y axis; the end-effector site
``<prefix>ee`` sits between the finger pads. The wrist camera looks along the approach axis.

Conventions shared with :mod:`groot_kit.sim.env` and :mod:`groot_kit.sim.expert`:

* finger joint q in [0, open]: 0 = pads touch (closed), ``open`` = fully open;
* collision bits: robot geoms contype=2 conaffinity=0 (no self-collision), world/objects
  contype=1 conaffinity=3 (collide with everything).

The built-in robots (so100, panda7, gr1_upper, custom_arm) are described by :func:`so100_def`,
:func:`panda7_def`, :func:`gr1_upper_def` and :func:`custom_arm_def`;
:mod:`groot_kit.sim.arm_generator` turns them into the ``groot_kit/embodiments/<name>/`` folders
(``python -m groot_kit.sim.arm_generator --regenerate``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROBOT_GEOM = 'contype="2" conaffinity="0"'
WORLD_GEOM = 'contype="1" conaffinity="3"'


@dataclass
class JointDef:
    name: str
    axis: tuple[float, float, float]
    pos: tuple[float, float, float]  # body offset relative to the parent body
    range: tuple[float, float]


@dataclass
class ChainDef:
    """One serial arm with an optional parallel gripper."""

    prefix: str  # e.g. "so100_" or "right_"
    arm_name: str  # e.g. "main", "right"
    base_pos: tuple[float, float, float]
    joints: list[JointDef]
    hand_offset: tuple[float, float, float]
    hand_zaxis: tuple[float, float, float]
    home: list[float]
    gripper: bool = True
    link_radius: float = 0.03
    finger_open: float = 0.035
    pad: tuple[float, float, float] = (0.008, 0.012, 0.022)  # half sizes (thick x, thick y, len)
    palm: tuple[float, float, float] = (0.02, 0.05, 0.015)  # half sizes
    kp: float = 300.0
    finger_kp: float = 600.0
    grip_force: float = 15.0
    armature: float = 0.05
    color: str = "0.85 0.85 0.88 1"
    accent: str = "0.2 0.2 0.22 1"

    @property
    def joint_names(self) -> list[str]:
        return [self.prefix + j.name for j in self.joints]

    @property
    def ee_site(self) -> str:
        return self.prefix + "ee"

    @property
    def finger_joints(self) -> list[str]:
        return [self.prefix + "finger_l", self.prefix + "finger_r"] if self.gripper else []

    @property
    def wrist_camera(self) -> str:
        return self.prefix + "wrist_cam"

    def reach(self) -> float:
        pts = [np.asarray(j.pos) for j in self.joints[1:]] + [np.asarray(self.hand_offset)]
        return float(sum(np.linalg.norm(p) for p in pts) + self.ee_depth)

    @property
    def ee_depth(self) -> float:
        """Distance from the hand origin to the ee site along the approach axis."""
        if self.gripper:
            return self.palm[2] * 2 + self.pad[2]
        return self.palm[2] * 2


@dataclass
class RobotDef:
    name: str
    chains: list[ChainDef]
    extra_bodies: str = ""  # torso, head, pedestal ...
    extra_cameras: dict[str, str] = field(default_factory=dict)  # logical name -> xml
    base_xml: str = ""


def _f(v) -> str:
    return " ".join(f"{x:.5g}" for x in v)


def lookat_xyaxes(pos, target, up=(0.0, 0.0, 1.0)) -> str:
    """xyaxes for a MuJoCo camera at ``pos`` looking at ``target`` (camera looks along -z)."""
    pos, target, up = (np.asarray(v, float) for v in (pos, target, up))
    fwd = target - pos
    fwd /= np.linalg.norm(fwd)
    x = np.cross(fwd, up)
    if np.linalg.norm(x) < 1e-6:
        x = np.array([0.0, -1.0, 0.0])
    x /= np.linalg.norm(x)
    y = np.cross(x, fwd)
    return _f(np.concatenate([x, y]))


def _orient(zaxis) -> str:
    z = np.asarray(zaxis, float)
    z = z / np.linalg.norm(z)
    if np.allclose(z, (0, 0, -1)):
        return 'quat="0 1 0 0"'  # 180 deg about x: unambiguous flip
    return f'zaxis="{_f(z)}"'


def chain_xml(c: ChainDef, indent: int = 2) -> tuple[str, str]:
    """Return (bodies xml, actuators xml) for one chain."""
    lines: list[str] = []
    pad = "  " * indent
    depth = 0
    for i, j in enumerate(c.joints):
        pos = c.base_pos if i == 0 else j.pos
        p = pad + "  " * depth
        lines.append(f'{p}<body name="{c.prefix}{j.name}_link" pos="{_f(pos)}" gravcomp="1">')
        lines.append(
            f'{p}  <joint name="{c.prefix}{j.name}" axis="{_f(j.axis)}" range="{_f(j.range)}" '
            f'damping="{0.5 * c.kp / 100:.4g}" armature="{c.armature}"/>'
        )
        nxt = c.joints[i + 1].pos if i + 1 < len(c.joints) else c.hand_offset
        if np.linalg.norm(nxt) > 1e-9:
            lines.append(
                f'{p}  <geom type="capsule" fromto="0 0 0 {_f(nxt)}" size="{c.link_radius:.4g}" '
                f'rgba="{c.color if i % 2 == 0 else c.accent}" {ROBOT_GEOM} density="500"/>'
            )
        else:
            lines.append(
                f'{p}  <geom type="sphere" size="{c.link_radius * 1.15:.4g}" rgba="{c.accent}" '
                f'{ROBOT_GEOM} density="500"/>'
            )
        depth += 1
    p = pad + "  " * depth
    px, py, pz = c.palm
    lines.append(
        f'{p}<body name="{c.prefix}hand" pos="{_f(c.hand_offset)}" {_orient(c.hand_zaxis)} gravcomp="1">'
    )
    lines.append(
        f'{p}  <geom name="{c.prefix}palm" type="box" pos="0 0 {pz:.4g}" size="{_f(c.palm)}" '
        f'rgba="{c.accent}" {ROBOT_GEOM} density="500"/>'
    )
    # wrist camera: beside the palm, looking along the approach axis (camera looks along -z)
    cam_pos = (px + 0.012 + 0.03 * c.reach(), 0.0, -0.01)
    cam_tgt = (0.0, 0.0, c.ee_depth + 0.5 * c.pad[2] + 0.04)
    lines.append(
        f'{p}  <camera name="{c.wrist_camera}" pos="{_f(cam_pos)}" '
        f'xyaxes="{lookat_xyaxes(cam_pos, cam_tgt, up=(1.0, 0.0, 0.0))}" fovy="80"/>'
    )
    ee_z = c.ee_depth
    lines.append(f'{p}  <site name="{c.ee_site}" pos="0 0 {ee_z:.4g}" size="{c.pad[0]:.3g}" rgba="1 0.3 0.3 0.4" group="3"/>')
    acts: list[str] = []
    for jn, (lo, hi) in zip(c.joint_names, [j.range for j in c.joints]):
        acts.append(
            f'    <position name="{jn}_act" joint="{jn}" kp="{c.kp:.4g}" dampratio="1" ctrlrange="{lo:.4g} {hi:.4g}"/>'
        )
    if c.gripper:
        tx, ty, tl = c.pad
        for side, sgn in (("l", 1), ("r", -1)):
            lines.append(f'{p}  <body name="{c.prefix}finger_{side}" pos="0 0 {2 * pz:.4g}" gravcomp="1">')
            lines.append(
                f'{p}    <joint name="{c.prefix}finger_{side}" type="slide" axis="0 {sgn} 0" '
                f'range="0 {c.finger_open:.4g}" damping="{0.02 * c.finger_kp / 100:.3g}" armature="0.01"/>'
            )
            lines.append(
                f'{p}    <geom name="{c.prefix}pad_{side}" type="box" pos="0 {sgn * ty:.4g} {tl:.4g}" '
                f'size="{tx:.4g} {ty:.4g} {tl:.4g}" rgba="{c.accent}" {ROBOT_GEOM} '
                f'friction="2 0.02 0.002" condim="4" density="800"/>'
            )
            lines.append(f"{p}  </body>")
            acts.append(
                f'    <position name="{c.prefix}finger_{side}_act" joint="{c.prefix}finger_{side}" '
                f'kp="{c.finger_kp:.4g}" dampratio="1" ctrlrange="0 {c.finger_open:.4g}" '
                f'forcerange="{-c.grip_force:.4g} {c.grip_force:.4g}"/>'
            )
    lines.append(f"{p}</body>")
    for d in range(depth - 1, -1, -1):
        lines.append(pad + "  " * d + "</body>")
    return "\n".join(lines), "\n".join(acts)


def robot_xml(r: RobotDef) -> str:
    bodies, acts = [], []
    for c in r.chains:
        b, a = chain_xml(c)
        bodies.append(b)
        acts.append(a)
    return f"""<!-- {r.name}: generated by groot_kit.sim.mjcf (primitive geoms only). Edit the generator, not this file. -->
<mujoco model="{r.name}">
  <compiler angle="radian" autolimits="true"/>
  <worldbody>
{r.extra_bodies}
{chr(10).join(bodies)}
  </worldbody>
  <actuator>
{chr(10).join(acts)}
  </actuator>
</mujoco>
"""


@dataclass
class SceneDef:
    robot_file: str
    front_pos: tuple[float, float, float]
    front_target: tuple[float, float, float]
    front_name: str = "front"
    table_center: tuple[float, float] = (0.3, 0.0)
    table_half: tuple[float, float] = (0.4, 0.5)
    table_height: float = 0.75  # world z of the table top is 0; floor at -table_height
    timestep: float = 0.002


def scene_xml(s: SceneDef, robot_name: str) -> str:
    tx, ty = s.table_center
    hx, hy = s.table_half
    h = s.table_height
    return f"""<!-- {robot_name} scene: robot + table + lights + cameras. Task objects are added by groot_kit.sim.env. -->
<mujoco model="{robot_name}_scene">
  <include file="{s.robot_file}"/>
  <option timestep="{s.timestep}" integrator="implicitfast" cone="elliptic" impratio="10"/>
  <visual>
    <quality shadowsize="0" offsamples="0"/>
    <global offwidth="640" offheight="480"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.4 0.4 0.4" specular="0 0 0"/>
  </visual>
  <worldbody>
    <light name="key" pos="{tx:.3g} -0.6 1.6" dir="0 0.35 -1" diffuse="0.6 0.6 0.6" specular="0.1 0.1 0.1"/>
    <light name="fill" pos="{tx:.3g} 0.8 1.2" dir="0 -0.5 -1" diffuse="0.25 0.25 0.25" specular="0 0 0"/>
    <geom name="floor" type="plane" pos="0 0 {-h:.4g}" size="3 3 0.1" rgba="0.55 0.57 0.6 1" {WORLD_GEOM}/>
    <geom name="table" type="box" pos="{tx:.4g} {ty:.4g} -0.02" size="{hx:.4g} {hy:.4g} 0.02" rgba="0.62 0.5 0.38 1" {WORLD_GEOM} friction="1 0.01 0.001"/>
    <geom name="table_leg" type="box" pos="{tx:.4g} {ty:.4g} {-(h + 0.04) / 2:.4g}" size="{hx * 0.8:.4g} {hy * 0.8:.4g} {(h - 0.04) / 2:.4g}" rgba="0.45 0.36 0.28 1" contype="0" conaffinity="0"/>
    <camera name="{s.front_name}" pos="{_f(s.front_pos)}" xyaxes="{lookat_xyaxes(s.front_pos, s.front_target)}" fovy="50"/>
  </worldbody>
</mujoco>
"""


# ---------------------------------------------------------------------------------------------
# Built-in robots
# ---------------------------------------------------------------------------------------------

Z, Y, X = (0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0)


def base_geoms(prefix: str, radius: float, height: float, color: str) -> str:
    return (
        f'    <geom name="{prefix}base" type="cylinder" pos="0 0 {height / 2:.4g}" size="{radius:.4g} {height / 2:.4g}" '
        f'rgba="{color}" {ROBOT_GEOM}/>'
    )


def so100_def() -> tuple[RobotDef, SceneDef]:
    c = ChainDef(
        prefix="so100_",
        arm_name="main",
        base_pos=(0, 0, 0.03),
        joints=[
            JointDef("shoulder_pan", Z, (0, 0, 0.03), (-2.0, 2.0)),
            JointDef("shoulder_lift", Y, (0, 0, 0.035), (-1.8, 1.8)),
            JointDef("elbow_flex", Y, (0, 0, 0.14), (-0.2, 3.0)),
            JointDef("wrist_flex", Y, (0, 0, 0.15), (-1.0, 2.6)),
            JointDef("wrist_roll", Z, (0, 0, 0.045), (-3.1, 3.1)),
        ],
        hand_offset=(0, 0, 0.02),
        hand_zaxis=Z,
        home=[0.0, -0.3, 2.1, 1.3, 0.0],
        link_radius=0.016,
        finger_open=0.022,
        pad=(0.006, 0.006, 0.017),
        palm=(0.015, 0.035, 0.01),
        kp=40.0,
        finger_kp=300.0,
        grip_force=6.0,
        armature=0.01,
        color="0.95 0.75 0.15 1",
        accent="0.15 0.15 0.15 1",
    )
    r = RobotDef("so100", [c], extra_bodies=base_geoms("so100_", 0.04, 0.03, "0.15 0.15 0.15 1"))
    s = SceneDef("so100.xml", front_pos=(0.62, 0.0, 0.38), front_target=(0.14, 0.0, 0.02), table_center=(0.15, 0.0), table_half=(0.35, 0.45))
    return r, s


def panda7_def() -> tuple[RobotDef, SceneDef]:
    c = ChainDef(
        prefix="panda_",
        arm_name="main",
        base_pos=(0, 0, 0.1),
        joints=[
            JointDef("joint1", Z, (0, 0, 0.1), (-2.8, 2.8)),
            JointDef("joint2", Y, (0, 0, 0.233), (-1.76, 1.76)),
            JointDef("joint3", Z, (0, 0, 0.0), (-2.8, 2.8)),
            JointDef("joint4", Y, (0, 0, 0.316), (-0.1, 3.0)),
            JointDef("joint5", Z, (0, 0, 0.0), (-2.8, 2.8)),
            JointDef("joint6", Y, (0, 0, 0.30), (-1.0, 3.6)),
            JointDef("joint7", Z, (0, 0, 0.07), (-2.9, 2.9)),
        ],
        hand_offset=(0, 0, 0.03),
        hand_zaxis=Z,
        home=[0.0, 0.2, 0.0, 2.0, 0.0, 0.95, 0.0],
        link_radius=0.045,
        finger_open=0.04,
        pad=(0.008, 0.008, 0.022),
        palm=(0.02, 0.055, 0.015),
        kp=600.0,
        finger_kp=800.0,
        grip_force=20.0,
        armature=0.1,
        color="0.92 0.92 0.94 1",
        accent="0.22 0.22 0.25 1",
    )
    r = RobotDef("panda7", [c], extra_bodies=base_geoms("panda_", 0.07, 0.1, "0.92 0.92 0.94 1"))
    s = SceneDef("panda7.xml", front_pos=(1.35, 0.0, 0.75), front_target=(0.45, 0.0, 0.05), table_center=(0.4, 0.0), table_half=(0.55, 0.6))
    return r, s


def gr1_upper_def() -> tuple[RobotDef, SceneDef]:
    chains = []
    for side, sgn in (("left", 1), ("right", -1)):
        chains.append(
            ChainDef(
                prefix=f"{side}_",
                arm_name=side,
                base_pos=(0.04, sgn * 0.2, 0.36),
                joints=[
                    JointDef("shoulder_pitch", Y, (0, 0, 0), (-3.0, 1.2)),
                    JointDef("shoulder_roll", X, (0, 0, 0), (-1.6, 1.6) if True else None),
                    JointDef("shoulder_yaw", Z, (0, 0, 0), (-2.6, 2.6)),
                    JointDef("elbow_pitch", Y, (0, 0, -0.31), (-2.7, 0.2)),
                    JointDef("wrist_yaw", Z, (0, 0, 0), (-2.8, 2.8)),
                    JointDef("wrist_roll", X, (0, 0, -0.29), (-1.8, 1.8)),
                    JointDef("wrist_pitch", Y, (0, 0, 0), (-1.8, 1.8)),
                ],
                hand_offset=(0, 0, -0.03),
                hand_zaxis=(0.0, 0.0, -1.0),
                # IK seed for the home pose: elbows out to the sides. Seeded near the arms' zero pose, the
                # IK crossed the upper arms in front of the chest and hid the table from the head camera.
                home=[-0.3, sgn * 0.9, 0.0, -1.8, 0.0, 0.0, 0.0],
                link_radius=0.035,
                finger_open=0.04,
                pad=(0.008, 0.008, 0.022),
                palm=(0.02, 0.05, 0.015),
                kp=500.0,
                finger_kp=800.0,
                grip_force=20.0,
                armature=0.08,
                color="0.85 0.86 0.9 1",
                accent="0.18 0.2 0.25 1",
            )
        )
    extra = f"""    <body name="torso" pos="-0.12 0 0">
      <geom name="torso_geom" type="box" pos="0 0 0.22" size="0.08 0.17 0.2" rgba="0.85 0.86 0.9 1" {ROBOT_GEOM}/>
      <geom name="pelvis" type="cylinder" pos="0 0 -0.1" size="0.11 0.12" rgba="0.18 0.2 0.25 1" contype="0" conaffinity="0"/>
      <geom name="legs" type="box" pos="0 0 -0.5" size="0.07 0.12 0.28" rgba="0.3 0.32 0.38 1" contype="0" conaffinity="0"/>
      <body name="head" pos="0 0 0.5">
        <geom name="neck" type="cylinder" pos="0 0 -0.05" size="0.035 0.04" rgba="0.18 0.2 0.25 1" contype="0" conaffinity="0"/>
        <geom name="head_geom" type="sphere" size="0.09" rgba="0.85 0.86 0.9 1" contype="0" conaffinity="0"/>
        <geom name="visor" type="box" pos="0.07 0 0.01" size="0.03 0.07 0.03" rgba="0.05 0.05 0.08 1" contype="0" conaffinity="0"/>
        <camera name="ego_cam" pos="0.11 0 0.0" xyaxes="{lookat_xyaxes((0.11 - 0.12, 0, 0.5), (0.38, 0.0, 0.0))}" fovy="70"/>
      </body>
    </body>
    <body name="left_shoulder_mount" pos="0.04 0.2 0.36"><geom type="sphere" size="0.05" rgba="0.18 0.2 0.25 1" contype="0" conaffinity="0"/></body>
    <body name="right_shoulder_mount" pos="0.04 -0.2 0.36"><geom type="sphere" size="0.05" rgba="0.18 0.2 0.25 1" contype="0" conaffinity="0"/></body>"""
    r = RobotDef("gr1_upper", chains, extra_bodies=extra)
    s = SceneDef("gr1_upper.xml", front_pos=(1.3, 0.0, 0.8), front_target=(0.3, 0.0, 0.15), table_center=(0.45, 0.0), table_half=(0.3, 0.6))
    return r, s


def custom_arm_def(
    name: str,
    num_joints: int,
    link_lengths: list[float],
    joint_limits: list[tuple[float, float]],
    gripper: bool,
    axes: str = "ZYYZYZ",
) -> tuple[RobotDef, SceneDef]:
    """A serial arm along +z; ``axes`` is a string of "Z"/"Y" per joint (yaw/roll or pitch)."""
    axes = [Z if a == "Z" else Y for a in axes]
    base_h = 0.05
    pos = [(0.0, 0.0, base_h)] + [(0.0, 0.0, float(link_lengths[i - 1])) for i in range(1, num_joints)]
    joints = [JointDef(f"joint{i + 1}", axes[i], pos[i], tuple(joint_limits[i])) for i in range(num_joints)]
    total = float(sum(link_lengths))
    scale = total / 0.6
    home = []
    pitch_ids = [i for i in range(num_joints) if axes[i] == Y]
    # a bent "ready" pose that points the tool forward/down; refined by IK at run time
    share = [0.3, 1.6, 1.2, 0.0]
    for i in range(num_joints):
        if axes[i] == Y:
            k = pitch_ids.index(i)
            v = share[min(k, 3)] if k < 3 else 0.0
        else:
            v = 0.0
        lo, hi = joint_limits[i]
        home.append(float(np.clip(v, lo, hi)))
    c = ChainDef(
        prefix=f"{name}_",
        arm_name="main",
        base_pos=(0, 0, base_h),
        joints=joints,
        hand_offset=(0, 0, float(link_lengths[-1])),
        hand_zaxis=Z,
        home=home,
        gripper=gripper,
        link_radius=max(0.012, 0.04 * scale),
        finger_open=max(0.02, 0.04 * min(scale, 1.0)),
        pad=(0.007, 0.007, 0.02),
        palm=(0.018, 0.05, 0.013),
        kp=float(np.clip(500 * scale**3, 30, 1500)),
        finger_kp=600.0,
        grip_force=15.0,
        armature=0.05,
        color="0.3 0.55 0.85 1",
        accent="0.15 0.18 0.22 1",
    )
    r = RobotDef(name, [c], extra_bodies=base_geoms(f"{name}_", 0.06 * max(scale, 0.5), base_h, "0.15 0.18 0.22 1"))
    reach = c.reach() + base_h
    s = SceneDef(
        f"{name}.xml",
        front_pos=(1.3 * reach + 0.2, 0.0, 0.8 * reach + 0.1),
        front_target=(0.55 * reach, 0.0, 0.02),
        table_center=(0.5 * reach, 0.0),
        table_half=(0.9 * reach, 1.0 * reach),
    )
    return r, s


def write_robot_files(r: RobotDef, s: SceneDef, out_dir: Path) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{r.name}.xml").write_text(robot_xml(r))
    (out_dir / "scene.xml").write_text(scene_xml(s, r.name))
