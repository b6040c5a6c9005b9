"""Fine-tune a pretrained GrootPolicy on a NEW robot arm: spec -> MJCF -> expert demos -> fresh
embodiment slot + peft LoRA -> adapters / merged checkpoint -> closed-loop success in MuJoCo.

    from groot_kit.sim.arm_generator import ArmSpec
    from groot_kit.train.finetune import finetune
    res = finetune(ArmSpec(num_joints=5, link_lengths=[0.1, 0.24, 0.22, 0.08, 0.05], name="my_arm"),
                   num_demos=20, rank=8, alpha=16, lr=1e-3, steps=1500, targets="dit",
                   base_checkpoint="data_samples/checkpoints/tiny_base", output_dir="outputs/ft")
    res.success_rate, res.adapter_dir, res.merged_dir

Command line: `groot-kit finetune --base-checkpoint ... --num-demos 20 --steps 1500 --output-dir ...`.

Output folder:
    embodiment/<name>/   the generated robot (MJCF, scene, embodiment.yaml, modality.json)
    demos/               expert demonstrations (LeRobot v3.0 + modality.json), reused when present
    train/               trainer metrics.jsonl + resumable checkpoints (a killed run resumes)
    adapter/             peft adapter_config.json + adapter_model.safetensors, embodiment_slot.safetensors,
                         finetune.json (slot, base checkpoint, processor)  -- a few hundred kB
    merged/              plain GrootPolicy checkpoint with the adapters merged (save_pretrained layout)
    base/                only when no base checkpoint was given: the random base the adapters sit on
    metrics.json         summary (losses, success rate, trainable counts, timings)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from groot_kit.fileio import files_digest
from groot_kit.train import lora as L

DEFAULT_TASK = "reach"   # the tiny base is pretrained on reach with one cube (see groot_kit.train.pretrain)
EVAL_SEED_OFFSET = 100_000  # evaluation scenes never coincide with demo scenes


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
            "hold_seconds": float(hold_seconds), "start_noise": float(start_noise), "robot": _folder_hash(embodiment_dir)}
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


def _folder_hash(folder) -> str:
    """Content hash of an embodiment folder's yaml + MJCF (a changed arm invalidates its demos)."""
    return files_digest(f for f in Path(folder).glob("*") if f.suffix in (".yaml", ".xml", ".json") and f.is_file())


def load_demo_dataset(demos_dir, embodiment_dir, policy, episodes: list[int] | None = None):
    from groot_kit.data import GrootDataset
    cfg = policy.config
    return GrootDataset.for_embodiment(demos_dir, str(embodiment_dir), image_size=cfg.vlm.vision.image_size,
                                       max_views=cfg.vlm.num_views, horizon=cfg.action_head.action_horizon,
                                       max_state_dim=cfg.action_head.max_state_dim,
                                       max_action_dim=cfg.action_head.max_action_dim, episodes=episodes)


# --------------------------------------------------------------------------- closed loop
class PolicyActor:
    """obs (GrootSimEnv dict) -> action: predicts a chunk of H and executes its first
    `n_action_steps` (receding horizon, 8 of 16 as in the pretraining evaluation)."""

    def __init__(self, policy, processor, env, n_action_steps: int | None = 8, num_steps: int | None = None,
                 seed: int = 0):
        self.policy, self.proc, self.env = policy.eval(), processor, env
        self.n = n_action_steps or policy.config.action_head.action_horizon
        self.num_steps, self.seed = num_steps, seed
        self.queue: list[np.ndarray] = []
        self.gen = torch.Generator(device=policy.device).manual_seed(seed)
        sp = env.spec_e
        self.state_keys = list(self.proc.modality.state)
        self.action_keys = list(self.proc.modality.action)
        self._env_state = {k: (v.start, v.end) for k, v in sp.state.items()}
        self._env_action = sp.action

    def reset(self):
        self.queue.clear()

    @torch.no_grad()
    def act(self, obs: dict) -> np.ndarray:
        if not self.queue:
            o = {f"video.{c}": obs[c] for c in self.proc.modality.video if c in obs}
            for k in self.state_keys:
                a, b = self._env_state[k]
                o[f"state.{k}"] = obs["state"][a:b]
            o["annotation.human.task_description"] = self.env.instruction
            batch = self.proc(o)
            chunk = self.policy.predict_action_chunk(batch, num_steps=self.num_steps, generator=self.gen)
            acts = self.proc.decode_action(chunk)
            H = chunk.shape[1]
            flat = np.zeros((H, self.env.spec_e.action_dim), np.float32)
            for k in self.action_keys:
                s = self._env_action[k]
                flat[:, s.start:s.end] = acts[f"action.{k}"][0]
            self.queue = list(flat[: self.n])
        return self.queue.pop(0)


def evaluate_closed_loop(policy, embodiment, task: str = DEFAULT_TASK, n_episodes: int = 10, seed: int = 0,
                         processor=None, video_episodes: int = 1, video_size: int = 160,
                         n_action_steps: int | None = 8, max_steps: int | None = None, num_cubes: int = 1,
                         progress: Callable[[int, bool], None] | None = None) -> dict:
    """Closed-loop success rate in MuJoCo on scenes never used for demos.

    Returns {"success_rate", "successes", "lengths", "seeds", "videos": [uint8 [T, S, S, 3]]}.
    """
    from groot_kit.sim import make_env
    from groot_kit.sim.rollout import rollout
    proc = processor or policy.get_processor(_embodiment_name(embodiment))
    env = make_env(str(embodiment), task, image_size=policy.config.vlm.vision.image_size, seed=seed,
                   num_cubes=num_cubes)
    successes, lengths, seeds, videos = [], [], [], []
    try:
        for i in range(n_episodes):
            s = EVAL_SEED_OFFSET + 1000 * seed + i
            actor = PolicyActor(policy, proc, env, n_action_steps=n_action_steps, seed=s)
            frames: list[np.ndarray] = []
            if i < video_episodes:
                cam = next(iter(env.spec_e.cameras))
                inner = actor.act

                def act(obs, inner=inner, cam=cam, frames=frames):
                    frames.append(env.render_camera(cam, video_size))
                    return inner(obs)
                ep = rollout(env, act, seed=s, max_steps=max_steps, record_frames=False, tier="teleop")
                frames.append(env.render_camera(cam, video_size))
                videos.append(np.stack(frames))
            else:
                ep = rollout(env, actor, seed=s, max_steps=max_steps, record_frames=False, tier="teleop")
            successes.append(bool(ep.success))
            lengths.append(len(ep))
            seeds.append(s)
            if progress is not None:
                progress(i + 1, bool(ep.success))
    finally:
        env.close()
    return {"success_rate": float(np.mean(successes)) if successes else 0.0, "successes": successes,
            "lengths": lengths, "seeds": seeds, "videos": videos}


def _embodiment_name(embodiment) -> str:
    from groot_kit.embodiment import load_embodiment
    return load_embodiment(str(embodiment)).name


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


def _stage(on_stage, stage: str, **info):
    if on_stage is not None:
        on_stage(stage, info)


def finetune(arm_spec=None, num_demos: int = 20, rank: int = 8, alpha: float = 16.0, lr: float = 1e-3,
             steps: int = 1500, targets: str | Sequence[str] = "dit", seed: int = 0,
             output_dir: str | os.PathLike = "outputs/finetune", base_checkpoint: str | os.PathLike | None = None,
             callbacks: list[Callable[[int, dict], None]] | None = None, *, task: str = DEFAULT_TASK,
             batch_size: int = 16, slot_id: int | None = None, init_from: int | str = "nearest",
             lora_dropout: float = 0.0, eval_episodes: int = 10, video_episodes: int = 1, preset: str = "tiny",
             num_cubes: int = 1, hold_seconds: float = 0.0, start_noise: float = 0.3, replan_every: int = 8,
             image_shift: int = 0, color_jitter: float = 0.0,
             demos_dir: str | os.PathLike | None = None, demo_episodes: list[int] | None = None,
             save_merged: bool = True, resume: bool = True, log_every: int = 10, progress: bool = False,
             on_stage: Callable[[str, dict], None] | None = None, policy=None) -> FinetuneResult:
    """The whole new-embodiment pipeline, headless. See the module docstring.

    base_checkpoint: folder of a pretrained GrootPolicy (None: a randomly initialised `preset`
    policy, i.e. LoRA on an untrained model; the notebook uses this only when no base exists).
    callbacks: fn(step, row) per logged training row (row has "loss", "lr", ...).
    on_stage: fn(stage, info) at "arm", "demos", "model", "train", "save", "eval", "done".
    policy: optionally an already-loaded base policy (used as is, modified in place).
    """
    from groot_kit.model.policy import GrootPolicy
    from groot_kit.data.processor import GrootProcessor
    from groot_kit.train.trainer import TrainConfig, Trainer

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = as_arm_spec(arm_spec)
    for name, v, lo in (("steps", steps, 1), ("num_demos", num_demos, 1), ("batch_size", batch_size, 1),
                        ("eval_episodes", eval_episodes, 0)):
        if not isinstance(v, int) or isinstance(v, bool) or v < lo:
            raise ValueError(f"finetune: {name}={v!r} must be an integer >= {lo}")
    if not float(lr) > 0:
        raise ValueError(f"finetune: lr={lr!r} must be > 0 (e.g. 1e-3)")
    lcfg = L.lora_config(rank, alpha, targets, lora_dropout)  # validate before any slow work

    # -- base model (decides the slot)
    torch.manual_seed(seed)
    if policy is None:
        if base_checkpoint:
            policy = GrootPolicy.from_pretrained(base_checkpoint)
        else:
            policy = GrootPolicy(preset)
    slot = L.choose_slot(policy, slot_id)

    # -- robot from the spec
    _stage(on_stage, "arm", name=spec.name, slot=slot)
    t = time.perf_counter()
    emb = build_arm(spec, out / "embodiment" / spec.name, slot)
    emb_dir = str(emb.root)
    timings["arm_s"] = time.perf_counter() - t

    # -- demonstrations
    _stage(on_stage, "demos", num_demos=num_demos, task=task)
    t = time.perf_counter()
    image_size = policy.config.vlm.vision.image_size
    if demos_dir is None:
        demo_info = record_demos(emb_dir, task, num_demos, out / "demos", image_size=image_size, seed=seed,
                                 num_cubes=num_cubes, hold_seconds=hold_seconds, start_noise=start_noise)
        demos_path = Path(demo_info["path"])
    else:
        demos_path, demo_info = Path(demos_dir), {"path": str(demos_dir), "reused": True}
    ds = load_demo_dataset(demos_path, emb_dir, policy, episodes=demo_episodes)
    if ds.embodiment_id != slot:
        raise L.LoraSetupError(f"{demos_path}: demos were recorded for slot {ds.embodiment_id} but the arm uses slot "
                               f"{slot}; delete {demos_path} (or pass slot_id={ds.embodiment_id})")
    policy.set_processor(GrootProcessor.from_dataset(ds))
    timings["demos_s"] = time.perf_counter() - t

    # -- fresh slot + LoRA
    _stage(on_stage, "model", slot=slot, rank=rank, alpha=alpha, targets=targets)
    base_dir = str(base_checkpoint) if base_checkpoint else None
    if base_dir is None:  # adapters need their base: keep the random base beside them
        base_dir = str(policy.save_pretrained(out / "base"))
    src = L.init_embodiment_slot(policy, slot, init_from, new_dims=(ds.modality.state_dim, ds.modality.action_dim))
    L.apply_lora(policy, config=lcfg)
    tune_llm = "language_model" in str(lcfg.target_modules)
    tcfg = TrainConfig(output_dir=str(out / "train"), max_steps=steps, batch_size=batch_size, learning_rate=lr,
                       weight_decay=0.0,  # keeps the other embodiments' slices bit-identical (see lora.py)
                       tune_llm=tune_llm, tune_visual=False, tune_projector=True, tune_diffusion_model=True,
                       warmup_ratio=0.05, save_every=max(steps, 1), keep_last=1, log_every=min(log_every, steps),
                       seed=seed, resume=resume, progress=progress, image_shift=image_shift,
                       color_jitter=color_jitter)
    # A killed run resumes from train/checkpoints; a run with different settings starts over.
    request = {"base": base_dir, "base_weights": files_digest(Path(base_dir).glob("*.safetensors")),
               "robot": _folder_hash(emb_dir), "demos": str(demos_path),
               "demos_data": files_digest(demos_path.glob("data/**/*.parquet")), "episodes": demo_episodes,
               "rank": rank, "alpha": alpha, "targets": str(lcfg.target_modules), "lr": lr, "steps": steps,
               "batch_size": batch_size, "seed": seed, "slot": slot, "init_from": init_from,
               "image_shift": image_shift, "color_jitter": color_jitter}
    stamp = out / "train" / "finetune_request.json"
    if stamp.exists() and json.loads(stamp.read_text()) != json.loads(json.dumps(request, default=str)):
        shutil.rmtree(out / "train", ignore_errors=True)
    (out / "train").mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps(request, default=str))
    trainer = Trainer(policy, ds, tcfg, callbacks=list(callbacks or []))
    # The trainer's optimizer holds the projector + DiT (+ LM) groups; now narrow what learns: params
    # with requires_grad=False never get a gradient, and AdamW skips them.
    mask, counts = L.mark_trainable(policy, slot)

    _stage(on_stage, "train", steps=steps, trainable=counts)
    t = time.perf_counter()
    try:
        history = trainer.train()
    finally:
        mask.remove()
    policy = trainer.policy.eval()
    timings["train_s"] = time.perf_counter() - t

    # -- save
    _stage(on_stage, "save")
    t = time.perf_counter()
    adapter_dir = L.save_adapters(policy, out / "adapter", slot, lcfg, base_checkpoint=base_dir,
                                  embodiment=spec.name, extra={"init_from": init_from, "init_sources": src,
                                                               "arm_spec": dataclasses.asdict(spec), "task": task})
    merged_dir = None
    if save_merged:
        import copy
        merged = L.merge_lora(copy.deepcopy(policy))
        merged_dir = merged.save_pretrained(out / "merged")
        del merged
    timings["save_s"] = time.perf_counter() - t

    # -- closed loop
    ev = None
    if eval_episodes > 0:
        _stage(on_stage, "eval", episodes=eval_episodes)
        t = time.perf_counter()
        ev = evaluate_closed_loop(policy, emb_dir, task, eval_episodes, seed=seed, video_episodes=video_episodes,
                                  n_action_steps=replan_every, num_cubes=num_cubes)
        timings["eval_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0
    losses = [r["loss"] for r in history if "loss" in r]
    metrics = {
        "arm": dataclasses.asdict(spec), "slot_id": slot, "init_from": init_from, "init_sources": src,
        "task": task, "num_cubes": num_cubes, "num_demos": num_demos, "demo_frames": len(ds), "rank": rank, "alpha": alpha, "lr": lr,
        "steps": steps, "targets": targets if isinstance(targets, str) else list(targets), "seed": seed,
        "base_checkpoint": str(base_checkpoint) if base_checkpoint else None, "trainable": counts,
        "first_loss": losses[0] if losses else None, "final_loss": losses[-1] if losses else None,
        "success_rate": None if ev is None else ev["success_rate"],
        "eval_episodes": eval_episodes, "successes": None if ev is None else ev["successes"],
        "adapter_dir": str(adapter_dir), "merged_dir": str(merged_dir) if merged_dir else None,
        "adapter_bytes": sum(f.stat().st_size for f in Path(adapter_dir).iterdir() if f.is_file()),
        "timings": {k: round(v, 2) for k, v in timings.items()},
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    _stage(on_stage, "done", **{k: metrics[k] for k in ("success_rate", "final_loss")})
    return FinetuneResult(policy=policy, embodiment_dir=emb_dir, slot_id=slot, demos_dir=str(demos_path),
                          adapter_dir=str(adapter_dir), merged_dir=str(merged_dir) if merged_dir else None,
                          history=history, eval=ev, metrics=metrics)


# --------------------------------------------------------------------------- CLI
def add_finetune_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of `groot-kit finetune` (see `finetune` for their meaning)."""
    g = p.add_argument_group("robot")
    g.add_argument("--arm-spec", help="JSON/YAML file with ArmSpec fields (num_joints, link_lengths, joint_limits, "
                                      "gripper, name); overrides the flags below")
    g.add_argument("--num-joints", type=int, default=5)
    g.add_argument("--link-lengths", type=lambda s: [float(x) for x in s.split(",")], default=None,
                   help="comma-separated metres, one per joint (default: 0.12,0.25,0.23,0.09,0.05 for 5 joints)")
    g.add_argument("--no-gripper", action="store_true", help="arm without gripper (reach task only)")
    g.add_argument("--arm-name", default="my_arm")
    g.add_argument("--task", default=DEFAULT_TASK, choices=["pick_place", "reach"])
    g.add_argument("--num-cubes", type=int, default=1, help="cubes on the table (the tiny base was pretrained with 1)")
    g = p.add_argument_group("data and model")
    g.add_argument("--num-demos", type=int, default=20)
    g.add_argument("--base-checkpoint", help="pretrained GrootPolicy folder (omit: random tiny base, for smoke tests)")
    g.add_argument("--preset", default="tiny", help="preset when no base checkpoint is given")
    g.add_argument("--slot-id", type=int, default=None, help="embodiment slot for the new arm (default: a free one)")
    g.add_argument("--init-from", default="nearest", help="where the new slot's weights start: 'mean' (of the trained "
                   "slots), 'nearest' (the trained robot with the closest state/action dims), 'random', an "
                   "embodiment name the base knows (e.g. so100) or a slot id")
    g.add_argument("--start-noise", type=float, default=0.3, help="joint noise (rad) on the demos' start pose")
    g.add_argument("--hold-seconds", type=float, default=0.0, help="demos keep the goal this long after success")
    g.add_argument("--image-shift", type=int, default=0, help="train-time random image shift (px), 0 = off")
    g.add_argument("--color-jitter", type=float, default=0.0, help="train-time brightness/contrast jitter, 0 = off")
    g = p.add_argument_group("LoRA and training")
    g.add_argument("--rank", type=int, default=8)
    g.add_argument("--alpha", type=float, default=16.0)
    g.add_argument("--lora-dropout", type=float, default=0.0)
    g.add_argument("--targets", default="dit", help="'dit', 'vlm' or 'dit+vlm' (or leaf names: to_q,to_v,...)")
    g.add_argument("--lr", type=float, default=1e-3)
    g.add_argument("--steps", type=int, default=1500)
    g.add_argument("--batch-size", type=int, default=16)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--eval-episodes", type=int, default=10)
    g.add_argument("--output-dir", default="outputs/finetune")
    g.add_argument("--no-merged", action="store_true", help="skip writing the merged checkpoint")
    g.add_argument("--no-resume", action="store_true", help="start training over even if a checkpoint exists")


def run_finetune(args: argparse.Namespace) -> dict:
    """CLI entry: runs `finetune` from parsed arguments, prints and returns the metrics summary."""
    from groot_kit.sim.arm_generator import ArmSpec
    if args.arm_spec:
        spec = as_arm_spec(args.arm_spec)
    else:
        ll = args.link_lengths or default_link_lengths(args.num_joints)
        spec = ArmSpec(num_joints=args.num_joints, link_lengths=ll, gripper=not args.no_gripper, name=args.arm_name)
    init_from = args.init_from
    if isinstance(init_from, str) and init_from.lstrip("-").isdigit():
        init_from = int(init_from)
    res = finetune(spec, num_demos=args.num_demos, rank=args.rank, alpha=args.alpha, lr=args.lr, steps=args.steps,
                   targets=args.targets, seed=args.seed, output_dir=args.output_dir,
                   base_checkpoint=args.base_checkpoint, task=args.task, batch_size=args.batch_size,
                   slot_id=args.slot_id, init_from=init_from, lora_dropout=args.lora_dropout,
                   eval_episodes=args.eval_episodes, num_cubes=args.num_cubes, preset=args.preset, save_merged=not args.no_merged,
                   start_noise=args.start_noise, hold_seconds=args.hold_seconds,
                   image_shift=args.image_shift, color_jitter=args.color_jitter,
                   resume=not args.no_resume, progress=True)
    summary = {k: v for k, v in res.metrics.items() if k not in ("successes",)}
    print(json.dumps(summary, indent=2, default=str))
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="groot-kit finetune", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_finetune_arguments(p)
    args = p.parse_args(argv)
    try:
        run_finetune(args)
    except (ValueError, RuntimeError) as e:  # EmbodimentError, LoraSetupError, DataError, CheckpointError ...
        print(f"groot-kit finetune: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
