"""Recipe: fine-tune a pretrained GrootPolicy on a NEW robot arm.

spec -> MJCF -> expert demos -> fresh embodiment slot + peft LoRA -> adapters / merged checkpoint ->
closed-loop success in MuJoCo (groot_kit.eval, tuning seeds 100000 + 1000 * seed).

    from groot_kit.recipes.finetune import FinetuneConfig, run
    res = run(FinetuneConfig(num_joints=5, num_demos=20, output_dir="outputs/ft"))
    res.success_rate, res.adapter_dir, res.merged_dir

    groot-kit finetune --num-joints 6 --num-demos 50            # flags generated from FinetuneConfig

Output folder:
    embodiment/<name>/   the generated robot (MJCF, scene, embodiment.yaml, modality.json)
    demos/               expert demonstrations (LeRobot v3.0 + modality.json), reused when present
    train/               trainer metrics.jsonl + resumable checkpoints (a killed run resumes)
    adapter/             peft adapter + embodiment_slot.safetensors + finetune.json (a few hundred kB)
    merged/              plain GrootPolicy checkpoint with the adapters merged
    base/                only when no base checkpoint was given: the random base the adapters sit on
    metrics.json         summary (losses, success, trainable counts, timings)
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from groot_kit.paths import TINY_BASE, resolve_repo_path
from groot_kit.train import finetune as F
from groot_kit.train import lora as L


@dataclass
class FinetuneConfig:
    """Defaults are the recipe measured in docs/results.md (rank 16, alpha 32, batch 32, 1200 steps)."""
    # robot
    arm_spec: str | None = None            # JSON/YAML file with ArmSpec fields (overrides num_joints..arm_name)
    num_joints: int = 5                    # joints of the new arm (4 to 7)
    link_lengths: list[float] | None = None  # metres, one per joint (none: the default arm's)
    gripper: bool = True                   # a parallel gripper at the tip (no gripper: reach only)
    arm_name: str = "my_arm"               # robot name: folder, processor and `groot-kit eval --embodiment`
    task: str = "reach"                    # reach or pick_place
    num_cubes: int = 1                     # cubes on the table (the tiny base was pretrained with 1)
    # demonstrations
    num_demos: int = 20                    # scripted-expert demonstrations
    start_noise: float = 0.3               # joint noise (rad) on the demos' start pose
    hold_seconds: float = 0.0              # demos keep the goal this long after success
    demos_dir: str | None = None           # reuse demos recorded earlier instead of recording
    demo_episodes: list[int] | None = None  # use only these episodes of the demos
    # base model and slot
    base_checkpoint: str | None = TINY_BASE  # pretrained GrootPolicy folder (none: random base, smoke tests only)
    preset: str = "tiny"                   # preset of the random base when base_checkpoint is none
    slot_id: int | None = None             # embodiment slot for the new arm (none: a free one)
    init_from: str = "nearest"             # new slot's start: nearest, mean, random, a robot name or a slot id
    # LoRA and training
    rank: int = 16                         # LoRA rank
    alpha: float = 32.0                    # LoRA alpha (scale alpha / rank)
    lora_dropout: float = 0.0              # LoRA dropout
    targets: str = "dit"                   # dit, vlm, dit+vlm, or leaf names (to_q,to_v,...)
    lr: float = 1e-3                       # AdamW learning rate
    steps: int = 1200                      # training steps
    batch_size: int = 32                   # batch size
    image_shift: int = 0                   # train-time random image shift (px), 0 = off
    color_jitter: float = 0.0              # train-time brightness/contrast jitter, 0 = off
    seed: int = 0                          # demos, training, and the evaluation's start seed
    log_every: int = 10                    # steps between logged rows
    resume: bool = True                    # continue a killed run with the same settings
    progress: bool = False                 # tqdm bar while training
    # evaluation and output
    eval_episodes: int = 20                # closed-loop episodes after training (0 = none)
    eval_seed: int | None = None           # first scene seed (none: tuning range 100000 + 1000*seed; reported 300000+)
    video_episodes: int = 1                # episodes recorded as video frames in the result
    replan_every: int = 8                  # actions executed per predicted chunk
    output_dir: str = "outputs/finetune"   # everything goes here (see the module doc)
    save_merged: bool = True               # also write the merged checkpoint

    def __post_init__(self) -> None:
        for name, lo in (("steps", 1), ("num_demos", 1), ("batch_size", 1), ("eval_episodes", 0), ("log_every", 1)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ValueError(f"finetune: {name}={v!r} must be an integer >= {lo}")
        if not float(self.lr) > 0:
            raise ValueError(f"finetune: lr={self.lr!r} must be > 0 (e.g. 1e-3)")
        if isinstance(self.init_from, str) and self.init_from.lstrip("-").isdigit():
            self.init_from = int(self.init_from)
        if isinstance(self.base_checkpoint, str) and self.base_checkpoint.lower() == "none":
            self.base_checkpoint = None
        self.lora = L.lora_config(self.rank, self.alpha, self.targets, self.lora_dropout)  # validate early
        self.arm()                                                                            # validate early

    def eval_start_seed(self) -> int:
        """First scene seed of the closed-loop evaluation (see groot_kit/eval/seeds.py for the ranges)."""
        from groot_kit.eval import finetune_eval_seed
        return finetune_eval_seed(self.seed) if self.eval_seed is None else int(self.eval_seed)

    def base_dir(self) -> str | None:
        """The base checkpoint folder, resolved against the repo when relative (None: random base)."""
        if self.base_checkpoint is None:
            return None
        base = resolve_repo_path(self.base_checkpoint)
        if not base.is_dir():
            raise ValueError(f"finetune: base_checkpoint {self.base_checkpoint!r} is not a folder. Fix: pass a "
                             f"GrootPolicy folder (e.g. {TINY_BASE}) or 'none' for a random base (smoke tests)")
        return str(base)

    def arm(self):
        """The ArmSpec these fields describe."""
        from groot_kit.sim.arm_generator import ArmSpec
        if self.arm_spec:
            return F.as_arm_spec(self.arm_spec)
        ll = self.link_lengths or F.default_link_lengths(self.num_joints)
        return ArmSpec(num_joints=self.num_joints, link_lengths=list(ll), gripper=self.gripper, name=self.arm_name)


def _stage(on_stage, stage: str, **info):
    if on_stage is not None:
        on_stage(stage, info)


def run(cfg: FinetuneConfig, *, arm=None, callbacks: list[Callable[[int, dict], None]] | None = None,
        on_stage: Callable[[str, dict], None] | None = None, policy=None) -> F.FinetuneResult:
    """The whole pipeline. arm: an ArmSpec/dict/file overriding cfg's robot fields. callbacks: fn(step, row)
    per logged training row. on_stage: fn(stage, info) at arm, demos, model, train, save, eval, done.
    policy: an already-loaded base policy (used as is, modified in place)."""
    from groot_kit.model.policy import GrootPolicy
    t0, timings = time.perf_counter(), {}
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = F.as_arm_spec(arm) if arm is not None else cfg.arm()
    base_ckpt = cfg.base_dir()
    torch.manual_seed(cfg.seed)
    if policy is None:
        policy = GrootPolicy.from_pretrained(base_ckpt) if base_ckpt else GrootPolicy(cfg.preset)
    slot = L.choose_slot(policy, cfg.slot_id)

    _stage(on_stage, "arm", name=spec.name, slot=slot)
    t = time.perf_counter()
    emb_dir = str(F.build_arm(spec, out / "embodiment" / spec.name, slot).root)
    from groot_kit.embodiment import register_embodiment
    register_embodiment(emb_dir, persist=True)   # `groot-kit eval --embodiment <name>` finds it later
    timings["arm_s"] = time.perf_counter() - t

    _stage(on_stage, "demos", num_demos=cfg.num_demos, task=cfg.task)
    t = time.perf_counter()
    ds, demos_path = _demos(cfg, policy, emb_dir, slot, out)
    timings["demos_s"] = time.perf_counter() - t

    _stage(on_stage, "model", slot=slot, rank=cfg.rank, alpha=cfg.alpha, targets=cfg.targets)
    base_dir = base_ckpt or str(policy.save_pretrained(out / "base"))  # adapters need their base
    src = L.init_embodiment_slot(policy, slot, cfg.init_from, new_modality=ds.modality)
    L.apply_lora(policy, config=cfg.lora)
    trainer = _trainer(cfg, policy, ds, out, base_dir, emb_dir, demos_path, slot, callbacks)
    mask, counts = L.mark_trainable(policy, slot)   # only the new slot, the LoRA and modules_to_save learn

    _stage(on_stage, "train", steps=cfg.steps, trainable=counts)
    t = time.perf_counter()
    try:
        history = trainer.train()
    finally:
        mask.remove()
    policy = trainer.policy.eval()
    timings["train_s"] = time.perf_counter() - t

    _stage(on_stage, "save")
    t = time.perf_counter()
    adapter_dir = L.save_adapters(policy, out / "adapter", slot, cfg.lora, base_checkpoint=base_dir,
                                  embodiment=spec.name, extra={"init_from": cfg.init_from, "init_sources": src,
                                                               "arm_spec": dataclasses.asdict(spec), "task": cfg.task})
    merged_dir = str(L.merge_lora(copy.deepcopy(policy)).save_pretrained(out / "merged")) if cfg.save_merged else None
    timings["save_s"] = time.perf_counter() - t

    ev = None
    if cfg.eval_episodes > 0:
        _stage(on_stage, "eval", episodes=cfg.eval_episodes)
        t = time.perf_counter()
        ev = _evaluate(cfg, policy, emb_dir)
        timings["eval_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0
    metrics = _metrics(cfg, spec, slot, src, len(ds), counts, history, ev, adapter_dir, merged_dir, timings)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    _stage(on_stage, "done", **{k: metrics[k] for k in ("success_rate", "final_loss")})
    return F.FinetuneResult(policy=policy, embodiment_dir=emb_dir, slot_id=slot, demos_dir=str(demos_path),
                            adapter_dir=str(adapter_dir), merged_dir=merged_dir, history=history, eval=ev,
                            metrics=metrics)


def _demos(cfg: FinetuneConfig, policy, emb_dir: str, slot: int, out: Path):
    """Record (or reuse) the demos and store their processor in the policy -> (GrootDataset, demos path)."""
    from groot_kit.data.processor import GrootProcessor
    if cfg.demos_dir is None:
        info = F.record_demos(emb_dir, cfg.task, cfg.num_demos, out / "demos",
                              image_size=policy.config.vlm.vision.image_size, seed=cfg.seed, num_cubes=cfg.num_cubes,
                              hold_seconds=cfg.hold_seconds, start_noise=cfg.start_noise)
        demos_path = Path(info["path"])
    else:
        demos_path = Path(cfg.demos_dir)
    ds = F.load_demo_dataset(demos_path, emb_dir, policy, episodes=cfg.demo_episodes)
    if ds.embodiment_id != slot:
        raise L.LoraSetupError(f"{demos_path}: demos were recorded for slot {ds.embodiment_id} but the arm uses slot "
                               f"{slot}; delete {demos_path} (or pass slot_id={ds.embodiment_id})")
    policy.set_processor(GrootProcessor.from_dataset(ds))
    return ds, demos_path


def _trainer(cfg: FinetuneConfig, policy, ds, out: Path, base_dir: str, emb_dir: str, demos_path: Path, slot: int,
             callbacks):
    """The Trainer; a killed run resumes from train/checkpoints, a run with other settings starts over."""
    from groot_kit.fileio import files_digest
    from groot_kit.train.trainer import TrainConfig, Trainer
    tcfg = TrainConfig(output_dir=str(out / "train"), max_steps=cfg.steps, batch_size=cfg.batch_size,
                       learning_rate=cfg.lr, weight_decay=0.0,  # keeps other embodiments' slices bit-identical
                       tune_llm="language_model" in str(cfg.lora.target_modules), tune_visual=False,
                       tune_projector=True, tune_diffusion_model=True, warmup_ratio=0.05, save_every=cfg.steps,
                       keep_last=1, log_every=min(cfg.log_every, cfg.steps), seed=cfg.seed, resume=cfg.resume,
                       progress=cfg.progress, image_shift=cfg.image_shift, color_jitter=cfg.color_jitter)
    request = {"base": base_dir, "base_weights": files_digest(Path(base_dir).glob("*.safetensors")),
               "robot": F.folder_hash(emb_dir), "demos": str(demos_path),
               "demos_data": files_digest(demos_path.glob("data/**/*.parquet")), "episodes": cfg.demo_episodes,
               "rank": cfg.rank, "alpha": cfg.alpha, "targets": str(cfg.lora.target_modules), "lr": cfg.lr,
               "steps": cfg.steps, "batch_size": cfg.batch_size, "seed": cfg.seed, "slot": slot,
               "init_from": cfg.init_from, "image_shift": cfg.image_shift, "color_jitter": cfg.color_jitter}
    stamp = out / "train" / "finetune_request.json"
    if stamp.exists() and json.loads(stamp.read_text()) != json.loads(json.dumps(request, default=str)):
        shutil.rmtree(out / "train", ignore_errors=True)
    (out / "train").mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps(request, default=str))
    return Trainer(policy, ds, tcfg, callbacks=list(callbacks or []))


def _evaluate(cfg: FinetuneConfig, policy, emb_dir: str) -> dict:
    from groot_kit.eval import evaluate_closed_loop
    return evaluate_closed_loop(policy, emb_dir, cfg.task, cfg.eval_episodes, seed=cfg.eval_start_seed(),
                                replan_every=cfg.replan_every, num_cubes=cfg.num_cubes,
                                video_episodes=cfg.video_episodes, video_size=160)


def _metrics(cfg, spec, slot, src, frames, counts, history, ev, adapter_dir, merged_dir, timings) -> dict[str, Any]:
    losses = [r["loss"] for r in history if "loss" in r]
    fields = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("arm_spec", "lora")}
    return {**fields, "arm": dataclasses.asdict(spec), "slot_id": slot, "init_sources": src, "demo_frames": frames,
            "trainable": counts, "first_loss": losses[0] if losses else None,
            "final_loss": losses[-1] if losses else None,
            "success_rate": None if ev is None else ev["success_rate"],
            "successes": None if ev is None else ev["successes"], "ci95": None if ev is None else ev["ci95"],
            "eval_seed": None if ev is None else ev["seed"], "adapter_dir": str(adapter_dir), "merged_dir": merged_dir,
            "adapter_bytes": sum(f.stat().st_size for f in Path(adapter_dir).iterdir() if f.is_file()),
            "timings": {k: round(v, 2) for k, v in timings.items()}}


def finetune(arm_spec=None, *, callbacks=None, on_stage=None, policy=None, **fields) -> F.FinetuneResult:
    """Keyword form: ``finetune(ArmSpec(...), num_demos=20, rank=16, ...)`` = ``run(FinetuneConfig(**fields))``."""
    return run(FinetuneConfig(**fields), arm=arm_spec, callbacks=callbacks, on_stage=on_stage, policy=policy)


# --------------------------------------------------------------------------- CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    """`groot-kit finetune` flags, generated from FinetuneConfig (every default shown in --help)."""
    from groot_kit.recipes.config_cli import add_config_arguments
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    add_config_arguments(p, FinetuneConfig, skip=("progress",))


def run_from_args(args: argparse.Namespace) -> dict:
    from groot_kit.recipes.config_cli import config_from_args
    cfg = config_from_args(FinetuneConfig, args, base=FinetuneConfig(progress=True))
    res = run(cfg)
    summary = {k: v for k, v in res.metrics.items()}
    print(json.dumps(summary, indent=2, default=str))
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="groot-kit finetune", description=__doc__)
    add_arguments(p)
    try:
        run_from_args(p.parse_args(argv))
    except (ValueError, RuntimeError) as e:  # EmbodimentError, LoraSetupError, DataError, CheckpointError ...
        print(f"groot-kit finetune: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
