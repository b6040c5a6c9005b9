"""Building blocks for fine-tuning on a NEW robot arm: the arm from a spec, its expert demos, the demo
dataset, the result record. The pipeline itself is the recipe groot_kit.recipes.finetune
(`FinetuneConfig` + `run`, `groot-kit finetune`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from groot_kit.fileio import files_digest

DEFAULT_TASK = "reach"   # the tiny base is pretrained on reach with one cube (see groot_kit.train.pretrain)


def default_arm_spec():
    """The notebook's default new robot: a 5-DOF arm with its own link lengths (not a built-in)."""
    from groot_kit.sim.arm_generator import ArmSpec
    return ArmSpec(num_joints=5, link_lengths=[0.12, 0.25, 0.23, 0.09, 0.05], gripper=True, name="my_arm")


def default_link_lengths(num_joints: int) -> list[float]:
    """Link lengths (m) for an n-joint arm: the default 5-DOF arm's, cut or padded with 6 cm wrist links."""
    base = list(default_arm_spec().link_lengths)
    if num_joints <= 3:
        return base[:max(num_joints, 0)] or [0.1]
    return base[:num_joints] if num_joints <= 5 else base[:3] + [0.06] * (num_joints - 3)


def as_arm_spec(spec) -> Any:
    """ArmSpec | dict | path to a JSON/YAML file -> ArmSpec (validated by ArmSpec itself)."""
    from groot_kit.embodiment import EmbodimentError
    from groot_kit.sim.arm_generator import ArmSpec
    if spec is None:
        return default_arm_spec()
    if isinstance(spec, ArmSpec):
        return spec
    if isinstance(spec, (str, os.PathLike)):
        p = Path(spec)
        if not p.is_file():
            raise EmbodimentError(f"arm spec file {p} does not exist. Fix: pass a JSON/YAML file with ArmSpec fields "
                                  "(num_joints, link_lengths, joint_limits, gripper, name)")
        import yaml
        try:
            spec = yaml.safe_load(p.read_text())
        except yaml.YAMLError as e:
            raise EmbodimentError(f"arm spec file {p} is not valid JSON/YAML ({e}). Fix: correct the syntax") from None
    if not isinstance(spec, dict):
        raise EmbodimentError(f"arm spec must be an ArmSpec, a dict or a file, got {type(spec).__name__}")
    known = {f.name for f in dataclasses.fields(ArmSpec)}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise EmbodimentError(f"arm spec: unknown field(s) {unknown}. Fix: use only {sorted(known)}")
    return ArmSpec(**spec)


# --------------------------------------------------------------------------- robot + demos
def build_arm(spec, out_dir: str | os.PathLike, slot_id: int):
    """Write the robot folder for `spec` (not registered globally: always addressed by path)."""
    from groot_kit.sim.arm_generator import write_custom_arm
    return write_custom_arm(as_arm_spec(spec), Path(out_dir), slot_id=slot_id, register=False)


def expert_episodes(embodiment_dir, task: str, n: int, image_size: int = 64, seed: int = 0, num_cubes: int = 1,
                    hold_seconds: float = 0.0, stats: dict | None = None, start_noise: float = 0.3):
    """Yield `n` successful, domain-randomised scripted-expert episodes (EpisodeData, tier synthetic).
    The expert holds the goal pose `hold_seconds` after success (the tiny pretraining recipe uses 0:
    a hold taught its policy to stop short). `start_noise` (rad) varies the arm's
    start pose (see GrootSimEnv); episodes shorter than 4 steps (start already at the goal) are skipped."""
    from groot_kit.data.sim_data import sim_episodes
    st = {} if stats is None else stats
    yield from sim_episodes(str(embodiment_dir), task, n, image_size, seed, only_success=True, num_cubes=num_cubes,
                            start_noise=start_noise, hold_seconds=hold_seconds, min_steps=4, stats=st)
    if st["kept"] < n:
        raise RuntimeError(f"the scripted expert succeeded on only {st['kept']} of {st['tried']} scenes for this arm; "
                           "the arm may not reach the table workspace. Fix: change link_lengths / joint_limits")


def record_demos(embodiment_dir: str | os.PathLike, task: str, num_demos: int, out_dir: str | os.PathLike,
                 image_size: int = 64, seed: int = 0, num_cubes: int = 1, hold_seconds: float = 0.0,
                 reuse: bool = True, start_noise: float = 0.3) -> dict:
    """Record `num_demos` successful scripted-expert demos as a LeRobot v3.0 dataset (reused if the
    folder already holds the same request). Returns {"path", "episodes", "frames", "seconds", "reused"}."""
    from groot_kit.data import write_dataset
    from groot_kit.data.sim_data import modality_for
    from groot_kit.embodiment import load_embodiment
    out_dir = Path(out_dir)
    want = {"embodiment": str(Path(embodiment_dir).resolve()), "task": task, "num_demos": int(num_demos),
            "image_size": int(image_size), "seed": int(seed), "num_cubes": int(num_cubes),
            "hold_seconds": float(hold_seconds), "start_noise": float(start_noise), "robot": folder_hash(embodiment_dir)}
    stamp = out_dir.parent / f".{out_dir.name}.request.json"
    if reuse and out_dir.exists() and stamp.exists() and json.loads(stamp.read_text()) == want:
        return {"path": str(out_dir), "episodes": num_demos, "frames": None, "seconds": 0.0, "reused": True}
    if not isinstance(num_demos, int) or num_demos < 1:
        raise ValueError(f"num_demos={num_demos!r}: record at least one demonstration")
    spec = load_embodiment(str(embodiment_dir))
    t0 = time.perf_counter()
    st: dict = {}
    eps = expert_episodes(embodiment_dir, task, num_demos, image_size, seed, num_cubes, hold_seconds, st,
                          start_noise=start_noise)
    write_dataset(eps, out_dir, modality_for(spec), fps=int(spec.control_hz), robot_type=spec.name,
                  embodiment=spec.name, embodiment_id=spec.slot_id, overwrite=True)
    stamp.write_text(json.dumps(want))
    return {"path": str(out_dir), "episodes": num_demos, "tried": st.get("tried"), "reused": False,
            "seconds": time.perf_counter() - t0}


def folder_hash(folder) -> str:
    """Content hash of an embodiment folder's yaml + MJCF (a changed arm invalidates its demos)."""
    return files_digest(f for f in Path(folder).glob("*") if f.suffix in (".yaml", ".xml", ".json") and f.is_file())


def load_demo_dataset(demos_dir, embodiment_dir, policy, episodes: list[int] | None = None):
    from groot_kit.data import GrootDataset
    cfg = policy.config
    return GrootDataset.for_embodiment(demos_dir, str(embodiment_dir), image_size=cfg.vlm.vision.image_size,
                                       max_views=cfg.vlm.num_views, horizon=cfg.action_head.action_horizon,
                                       max_state_dim=cfg.action_head.max_state_dim,
                                       max_action_dim=cfg.action_head.max_action_dim, episodes=episodes)


# --------------------------------------------------------------------------- the pipeline
@dataclass
class FinetuneResult:
    policy: Any                      # the fine-tuned GrootPolicy (LoRA still injected, unmerged)
    embodiment_dir: str
    slot_id: int
    demos_dir: str
    adapter_dir: str | None
    merged_dir: str | None
    history: list[dict]
    eval: dict | None
    metrics: dict = field(default_factory=dict)

    @property
    def success_rate(self) -> float | None:
        return None if self.eval is None else self.eval["success_rate"]
