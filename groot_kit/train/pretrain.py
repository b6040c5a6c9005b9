"""The tiny pretraining recipe: multi-embodiment, multi-tier data -> base checkpoint -> closed-loop eval.

One command (``python scripts/pretrain_tiny.py``) runs everything:

1. **Data pyramid** per embodiment (so100, panda7, gr1_upper), all from MuJoCo with domain
   randomisation: scripted-expert demos (tier ``synthetic``), simulated-operator demos (tier
   ``teleop``: hesitations, drift, corrections), and for so100 action-free videos pseudo-labelled by
   an inverse-dynamics model trained on the expert demos (tier ``video``, the DreamGen labelling
   step). Every dataset is a LeRobot v3.0 folder with ``meta/modality.json``.
2. **Training** the ``tiny`` preset with two camera views (front/ego + wrist) and System 2 sub-task
   co-training, every part trainable (the tiny VLM starts from random weights), on the weighted
   mixture, time-budgeted (the step count follows the measured step rate so training fills
   ``train_minutes``; ``train_minutes=0`` runs exactly ``max_steps``).
3. **Evaluation**: closed-loop success in MuJoCo on every pretraining embodiment (seeds never
   seen in training) and open-loop MSE on held-out expert episodes; written to
   ``benchmarks/results/pretrain_tiny.json``. The base checkpoint goes to
   ``data_samples/checkpoints/tiny_base/``.

Why the task variant: at the tiny size (1.4M parameters, 64 px images) trained from scratch in
minutes on a CPU, the policy has to localise the target from pixels. The recipe uses the
``reach`` task with one cube on the table (``num_cubes=1``) so the required inference is "where is
the cube" rather than "which of three cubes, which of two bins, and the whole grasp sequence".
``PretrainConfig`` takes any task / cube count for longer runs.

Measured lessons (benchmarks/results/pretrain_tiny.json, ``lineage``):

* recording the expert holding the goal for 0.3 s after success taught the policy to *stop when
  near* the cube, and it froze 2-5 cm short (success 20-30 %); tripling the expert demos did not
  change that. Dropping the hold and adding simulated-operator demos (drift and corrections, i.e.
  recoveries from off-target states) raised success to 60 % (so100) and 40 % (humanoid);
* the policy memorises scenes: on panda7 it succeeded in 65 % of its training scenes but 15 % of
  unseen ones. What narrowed that gap: demos from varied start poses (``start_noise``), about 3x
  more scenes, and train-time image shifts and brightness/contrast jitter (``image_shift``,
  ``color_jitter``), then more training at a lower learning rate. so100 went 60 -> 95 %,
  panda7 20 -> 75 %, the humanoid 40 -> 55 %;
* the remaining failures were near misses that compounded (the humanoid came within 3-5 cm, then
  wandered off). Two rounds of DAgger-style recovery demos (``recovery_episodes``: the previous
  base drives, the expert takes over; ``groot_kit.train.recovery``) with 25 min of training each
  took so100 and panda7 to 100 % and the humanoid to 80 % (68 % on a 50-scene recheck);
* the humanoid's left hand failed most (7/19 vs 27/31 on the recheck): its home pose crossed the
  upper arms in front of the head camera and hid the cube. With the pose fixed, both wrists in the
  second view and its datasets regenerated, one 70-minute stage gave 14/20 and 41/50 (left 15/19);
  an 88-minute stage on top, with the humanoid's recovery demos from that stage aggregated, gave
  14/20, 45/50 and 124/150 (83 % over 220 scenes; left hand 86/89, right 97/131, now the weaker).

Why two views: the wrist camera sees the cube large and centred when the gripper is close, which
makes the final centimetres a visual-servoing problem that a tiny vision tower can solve.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from groot_kit.fileio import files_digest

DEFAULT_EMBODIMENTS = ("so100", "panda7", "gr1_upper")
CHECKPOINT_DIR = Path("data_samples/checkpoints/tiny_base")
RESULTS_FILE = Path("benchmarks/results/pretrain_tiny.json")


@dataclass
class PretrainConfig:
    output_dir: str = "outputs/pretrain_tiny"       # datasets, training run, videos
    checkpoint_dir: str | None = str(CHECKPOINT_DIR)  # where the base policy is saved (None: not saved)
    results_file: str | None = str(RESULTS_FILE)      # JSON summary (None: not written)
    embodiments: tuple[str, ...] = DEFAULT_EMBODIMENTS
    task: str = "reach"                 # pretraining task variant (see module doc)
    num_cubes: int = 1                  # cubes on the table
    image_size: int = 64                # rendered frames (= tiny preset input)
    num_views: int = 2                  # front/ego + wrist
    expert_episodes: int = 900          # tier synthetic, per embodiment (humanoid: a third, 4x longer episodes)
    teleop_episodes: int = 300          # tier teleop (simulated operator: drift + corrections), per embodiment
    video_episodes: int = 40            # tier video (IDM pseudo-labels), so100 only; 0 = off
    heldout_episodes: int = 4           # open-loop eval episodes per embodiment (unseen seeds)
    recovery_episodes: int = 0          # DAgger-style hand-over demos from the init_from policy, per
                                        # embodiment (humanoid: a third); needs init_from (train/recovery.py)
    recovery_embodiments: tuple[str, ...] | None = None  # robots that get new hand-over demos (None: all)
    aggregate_recovery_from: tuple[str, ...] = ()  # earlier runs' output_dirs: their recovery demos join
                                        # this mixture (DAgger's aggregation), per robot whose definition is unchanged
    hold_seconds: float = 0.0           # expert keeps recording this long after success (0.3 measured worse)
    start_noise: float = 0.3            # joint noise (rad) on the start pose of training demos (eval: 0.02)
    tier_weights: dict = field(default_factory=lambda: {"synthetic": 1.0, "teleop": 0.5, "video": 0.15})
    embodiment_weights: dict = field(default_factory=dict)  # batch-share multiplier per embodiment, e.g.
                                        # {"gr1_upper": 2.0} for a robot that lags (missing = 1.0)
    subtask_loss_weight: float = 0.1    # System 2 sub-task co-training
    image_shift: int = 4                # train-time random image shift, px (groot_kit.train.augment)
    color_jitter: float = 0.1           # train-time brightness/contrast jitter
    max_steps: int = 8000               # starting guess; when train_minutes > 0 the budget decides
    train_minutes: float = 20.0         # training time budget: steps = what fits (0 = exactly max_steps)
    batch_size: int = 32
    learning_rate: float = 1e-3
    eval_episodes: int = 20             # closed-loop episodes per embodiment
    replan_every: int = 8               # actions executed per predicted chunk
    eval_seed: int = 100_000
    seed: int = 0
    encoder_crf: int = 18               # H.264 quality of the stored videos
    video_dir: str | None = "videos"    # relative to output_dir; None = no mp4s
    init_from: str | None = None        # warm start from a checkpoint (e.g. a previous base) instead of scratch
    command: str = "python scripts/pretrain_tiny.py"  # recorded in the results file

    def __post_init__(self):
        self.embodiment_weights = dict(self.embodiment_weights)
        if isinstance(self.aggregate_recovery_from, (str, os.PathLike)):
            self.aggregate_recovery_from = (str(self.aggregate_recovery_from),)
        self.aggregate_recovery_from = tuple(str(p) for p in self.aggregate_recovery_from)
        for name, w in self.embodiment_weights.items():
            if name not in self.embodiments:
                raise ValueError(f"PretrainConfig.embodiment_weights names {name!r}, which is not one of the "
                                 f"embodiments {list(self.embodiments)}: fix the name or add it to embodiments")
            if not (isinstance(w, (int, float)) and w > 0):
                raise ValueError(f"PretrainConfig.embodiment_weights[{name!r}]={w!r}: give a positive number "
                                 "(1.0 = the default share; leave the robot out of embodiments to drop it)")
        if self.recovery_embodiments is not None:
            self.recovery_embodiments = tuple(self.recovery_embodiments)
            bad = [e for e in self.recovery_embodiments if e not in self.embodiments]
            if bad:
                raise ValueError(f"PretrainConfig.recovery_embodiments names {bad}, not among the embodiments "
                                 f"{list(self.embodiments)}: fix the names or add them to embodiments")
        if self.recovery_episodes < 0:
            raise ValueError(f"PretrainConfig.recovery_episodes={self.recovery_episodes}: give 0 (off) or more")
        if self.recovery_episodes > 0 and not self.init_from:
            raise ValueError("PretrainConfig.recovery_episodes needs a policy to hand over from: set init_from "
                             "to a trained checkpoint (e.g. data_samples/checkpoints/tiny_base), or set "
                             "recovery_episodes=0")

    @classmethod
    def fast(cls, **kw) -> "PretrainConfig":
        """A minutes-scale smoke configuration (tests, notebook fast mode)."""
        base = dict(embodiments=("so100", "panda7"), expert_episodes=6, teleop_episodes=2, video_episodes=3,
                    heldout_episodes=1, max_steps=30, train_minutes=0.0, batch_size=8, eval_episodes=0,
                    checkpoint_dir=None, results_file=None, video_dir=None)
        base.update(kw)
        return cls(**base)


def tiny_pretrain_policy_config(num_views: int = 2, subtask_loss_weight: float = 0.1):
    """The tiny preset with `num_views` camera views and sub-task co-training."""
    from groot_kit.config import get_preset
    cfg = get_preset("tiny")
    return dataclasses.replace(cfg, vlm=dataclasses.replace(cfg.vlm, num_views=num_views),
                               subtask_loss_weight=subtask_loss_weight)


# ----------------------------------------------------------------------------------- data
def _episodes(embodiment: str, task: str, n: int, image_size: int, seed: int, num_cubes: int,
              teleop: bool = False, hold_seconds: float = 0.3, stats: dict | None = None,
              start_noise: float = 0.02):
    """Successful demos (at least 4 steps) from the scripted expert or the simulated operator (EpisodeData list)."""
    from groot_kit.data.sim_data import sim_episodes
    return list(sim_episodes(embodiment, task, n, image_size, seed, teleop, only_success=True, num_cubes=num_cubes,
                             start_noise=start_noise, hold_seconds=hold_seconds, min_steps=4, stats=stats))


def _reusable(manifest: Path, key: dict) -> dict | None:
    """The manifest's contents if it was written for ``key`` and all its datasets still exist."""
    if not manifest.exists():
        return None
    m = json.loads(manifest.read_text())
    ok = m.get("key") == key and all(Path(r["path"]).exists() for r in m["datasets"])
    return m if ok else None


def _episode_scale(spec) -> int:
    """Episodes are divided by this for the 120 Hz humanoid (~4x more frames per episode)."""
    return 3 if spec.control_hz > 60 else 1


def _scene_seed(cfg: PretrainConfig, embodiment_index: int) -> int:
    """First scene seed of an embodiment; tiers add fixed offsets, so no two datasets share a scene."""
    return cfg.seed + 1_000_000 * (embodiment_index + 1)


def _writer_kwargs(spec, encoder) -> dict:
    return dict(fps=int(spec.control_hz), robot_type=spec.name, embodiment=spec.name,
                embodiment_id=spec.slot_id, encoder=encoder, overwrite=True)


def _embodiment_digest(spec) -> str:
    """Content hash of an embodiment's definition (MJCF, scene, embodiment.yaml, modality.json): data
    recorded before a robot changed (a camera moved, a joint limit) is not reused after."""
    return files_digest([spec.robot_xml, spec.scene_xml, spec.root / "embodiment.yaml", spec.root / "modality.json"])


def generate_pretrain_data(cfg: PretrainConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Write every tier's datasets under ``output_dir/data``, one manifest per embodiment; an
    embodiment whose recipe settings and definition are unchanged reuses its datasets.
    -> {"datasets": [...], "seconds", "key", "reused": [embodiments reused]}"""
    from groot_kit.data import EncoderOptions, write_dataset
    from groot_kit.data.sim_data import modality_for
    from groot_kit.embodiment import load_embodiment

    root = Path(cfg.output_dir) / "data"
    key = {k: v for k, v in dataclasses.asdict(cfg).items()
           if k in ("task", "num_cubes", "image_size", "expert_episodes", "teleop_episodes",
                    "heldout_episodes", "hold_seconds", "start_noise", "seed", "encoder_crf")}
    enc = EncoderOptions(crf=cfg.encoder_crf)
    t0 = time.perf_counter()
    rows, reused = [], []
    for ei, emb in enumerate(cfg.embodiments):
        spec = load_embodiment(emb)
        emb_key = {**key, "embodiment": emb, "embodiment_index": ei, "definition": _embodiment_digest(spec),
                   "video_episodes": cfg.video_episodes if ei == 0 else 0}
        manifest = root / f"manifest_{emb}.json"
        m = _reusable(manifest, emb_key)  # delete the manifest (or the folder) to regenerate
        if m is not None:
            log(f"  {emb}: reusing its datasets in {root}")
            rows += m["datasets"]
            reused.append(emb)
            continue
        emb_rows = []
        kw = _writer_kwargs(spec, enc)
        scale = _episode_scale(spec)
        base_seed = _scene_seed(cfg, ei)
        plan = [("expert", False, max(1, cfg.expert_episodes // scale), base_seed),
                ("teleop", True, max(1, cfg.teleop_episodes // scale), base_seed + 500_000),
                ("heldout", False, cfg.heldout_episodes, base_seed + 900_000)]
        expert_eps = None
        for name, teleop, n, seed in plan:
            if n <= 0:
                continue
            t1 = time.perf_counter()
            st: dict = {}
            noise = 0.02 if name == "heldout" else cfg.start_noise  # held-out demos start like the eval
            eps = _episodes(emb, cfg.task, n, cfg.image_size, seed, cfg.num_cubes, teleop, cfg.hold_seconds, st,
                            start_noise=noise)
            if name == "expert":
                expert_eps = eps
            path = write_dataset(eps, root / f"{emb}_{name}", modality_for(spec), **kw)
            emb_rows.append({"name": f"{emb}_{name}", "path": str(path), "embodiment": emb, "slot": spec.slot_id,
                             "tier": "teleop" if teleop else "synthetic",
                             "role": "eval" if name == "heldout" else "train",
                             "episodes": len(eps), "frames": int(sum(len(e) for e in eps)),
                             "demo_success": f"{st['kept']}/{st['tried']}",
                             "seconds": round(time.perf_counter() - t1, 1)})
            log(f"  {emb_rows[-1]['name']}: {emb_rows[-1]['episodes']} episodes, {emb_rows[-1]['frames']} frames "
                f"({emb_rows[-1]['seconds']} s)")
        if emb_key["video_episodes"] > 0 and expert_eps:
            emb_rows.append(_video_tier(cfg, emb, spec, expert_eps, root, kw, base_seed + 700_000, log))
        manifest.write_text(json.dumps({"key": emb_key, "datasets": emb_rows}, indent=1) + "\n")
        rows += emb_rows
    return {"datasets": rows, "seconds": round(time.perf_counter() - t0, 1), "key": key, "reused": reused}


def generate_recovery_data(cfg: PretrainConfig, log: Callable[[str], None] = print) -> list[dict]:
    """DAgger-style hand-over demos (``groot_kit.train.recovery``) from the ``init_from`` policy, one
    dataset per embodiment under ``output_dir/data``. Reused when the policy's weights and the
    settings are unchanged. -> dataset rows like :func:`generate_pretrain_data`'s."""
    from groot_kit.data import EncoderOptions, write_dataset
    from groot_kit.data.sim_data import modality_for
    from groot_kit.embodiment import load_embodiment
    from groot_kit.model.policy import GrootPolicy
    from groot_kit.train.recovery import recovery_episodes

    if cfg.recovery_episodes <= 0:
        return []
    root = Path(cfg.output_dir) / "data"
    root.mkdir(parents=True, exist_ok=True)
    robots = [e for e in cfg.embodiments if cfg.recovery_embodiments is None or e in cfg.recovery_embodiments]
    key = {"policy_weights": files_digest(Path(cfg.init_from).glob("*.safetensors")), "embodiments": robots,
           "definitions": [_embodiment_digest(load_embodiment(e)) for e in robots], "task": cfg.task,
           "num_cubes": cfg.num_cubes, "image_size": cfg.image_size, "recovery_episodes": cfg.recovery_episodes,
           "start_noise": cfg.start_noise, "replan_every": cfg.replan_every, "seed": cfg.seed,
           "encoder_crf": cfg.encoder_crf}
    manifest = root / "recovery_manifest.json"
    m = _reusable(manifest, key)
    if m is not None:
        log("  reusing the recovery datasets in " + str(root))
        return m["datasets"]
    policy = GrootPolicy.from_pretrained(cfg.init_from)
    enc = EncoderOptions(crf=cfg.encoder_crf)
    rows = []
    for ei, emb in enumerate(cfg.embodiments):
        if emb not in robots:
            continue
        spec = load_embodiment(emb)
        n = max(1, cfg.recovery_episodes // _episode_scale(spec))
        t1 = time.perf_counter()
        st: dict = {}
        eps = recovery_episodes(policy, emb, cfg.task, n, image_size=cfg.image_size,
                                seed=_scene_seed(cfg, ei) + 300_000, num_cubes=cfg.num_cubes,
                                start_noise=cfg.start_noise, replan_every=cfg.replan_every, stats=st)
        if not eps:
            log(f"  {emb}_recovery: no usable hand-over ({st}); skipped")
            continue
        path = write_dataset(eps, root / f"{emb}_recovery", modality_for(spec), **_writer_kwargs(spec, enc))
        rows.append({"name": f"{emb}_recovery", "path": str(path), "embodiment": emb, "slot": spec.slot_id,
                     "tier": "synthetic", "role": "train", "source": "policy_handover", "episodes": len(eps),
                     "frames": int(sum(len(e) for e in eps)), "handover": st,
                     "seconds": round(time.perf_counter() - t1, 1)})
        log(f"  {rows[-1]['name']}: {len(eps)} episodes, {rows[-1]['frames']} frames from {st['tried']} hand-overs "
            f"({st['policy_succeeded']} scenes already solved by the policy) ({rows[-1]['seconds']} s)")
    manifest.write_text(json.dumps({"key": key, "datasets": rows}, indent=1) + "\n")
    return rows


def earlier_recovery_data(cfg: PretrainConfig, log: Callable[[str], None] = print) -> list[dict]:
    """DAgger's aggregation step: the recovery datasets of earlier recipe runs
    (``cfg.aggregate_recovery_from``, their ``output_dir``s) join this run's mixture. A robot's
    datasets are taken only if its definition (MJCF, scene, yaml, modality) is unchanged since they
    were recorded: demos of another home pose or camera would teach the wrong thing.
    -> dataset rows like :func:`generate_recovery_data`'s, each with ``aggregated_from``."""
    from groot_kit.embodiment import load_embodiment

    rows = []
    for run in cfg.aggregate_recovery_from:
        manifest = Path(run) / "data" / "recovery_manifest.json"
        if not manifest.is_file():
            raise FileNotFoundError(f"PretrainConfig.aggregate_recovery_from: {manifest} does not exist. Fix: give "
                                    "the output_dir of an earlier run that recorded recovery demos "
                                    "(recovery_episodes > 0), or drop it from the list")
        m = json.loads(manifest.read_text())
        then = dict(zip(m["key"]["embodiments"], m["key"]["definitions"]))
        for r in m["datasets"]:
            emb = r["embodiment"]
            if emb not in cfg.embodiments:
                continue
            if then.get(emb) != _embodiment_digest(load_embodiment(emb)):
                log(f"  {r['name']} from {run}: skipped ({emb}'s definition changed since it was recorded)")
                continue
            if not Path(r["path"]).exists():
                raise FileNotFoundError(f"{manifest} lists {r['path']}, which is gone. Fix: re-run that stage's "
                                        "recipe command to rebuild it, or drop the run from aggregate_recovery_from")
            rows.append({**r, "aggregated_from": str(run)})
            log(f"  {r['name']} from {run}: {r['episodes']} episodes aggregated")
    return rows


def _video_tier(cfg, emb, spec, expert_eps, root, kw, seed, log) -> dict:
    """Action-free videos of new demos, pseudo-labelled by an IDM trained on the expert demos."""
    from groot_kit.data import write_dataset
    from groot_kit.data.latent import evaluate_idm, pseudo_label, train_idm
    from groot_kit.data.pyramid import to_video_tier
    from groot_kit.data.sim_data import modality_for

    t1 = time.perf_counter()
    idm, _ = train_idm(expert_eps, steps=300 if cfg.max_steps > 200 else 30, camera="front")
    vids = to_video_tier(_episodes(emb, cfg.task, cfg.video_episodes, cfg.image_size, seed, cfg.num_cubes,
                                   hold_seconds=cfg.hold_seconds, start_noise=cfg.start_noise), keep_state=True)
    score = evaluate_idm(idm, vids, camera="front")
    labelled = pseudo_label(idm, vids, camera="front", score={"r2": score["r2"]})
    path = write_dataset(labelled, root / f"{emb}_video_idm", modality_for(spec), tier="video", **kw)
    row = {"name": f"{emb}_video_idm", "path": str(path), "embodiment": emb, "slot": spec.slot_id, "tier": "video",
           "role": "train", "episodes": len(labelled), "frames": int(sum(len(e) for e in labelled)),
           "idm_r2": round(float(score["r2"]), 3), "seconds": round(time.perf_counter() - t1, 1)}
    log(f"  {row['name']}: {row['episodes']} episodes, IDM pseudo-labels R2 {row['idm_r2']} ({row['seconds']} s)")
    return row


def build_mixture(policy, data: dict, cfg: PretrainConfig):
    """GrootDatasets with ONE set of normalisation stats per embodiment (from its expert demos), the
    matching processor stored in the policy, and a tier-weighted MixtureDataset over them."""
    from groot_kit.data import GrootDataset, MixtureDataset, NormalizationStats
    from groot_kit.data.processor import GrootProcessor
    from groot_kit.data.reader import open_dataset
    from groot_kit.data.sim_data import norm_modes_for
    from groot_kit.embodiment import load_embodiment

    pc = policy.config
    size_kw = dict(image_size=pc.vlm.vision.image_size, max_views=pc.vlm.num_views,
                   horizon=pc.action_head.action_horizon, max_state_dim=pc.action_head.max_state_dim,
                   max_action_dim=pc.action_head.max_action_dim)
    stats, datasets, weights = {}, [], []
    train_rows = [r for r in data["datasets"] if r["role"] == "train"]
    # the expert demos first: their stats normalise every dataset of that embodiment
    for r in sorted(train_rows, key=lambda r: (r["tier"] != "synthetic", r.get("source") == "policy_handover")):
        emb = r["embodiment"]
        first = emb not in stats
        if first:
            stats[emb] = NormalizationStats.from_dataset(open_dataset(r["path"]), modes=norm_modes_for(load_embodiment(emb)))
        ds = GrootDataset(r["path"], embodiment_id=r["slot"], stats=stats[emb], **size_kw)
        datasets.append(ds)
        weights.append(float(cfg.embodiment_weights.get(emb, 1.0)))
        if first:
            policy.set_processor(GrootProcessor.from_dataset(ds))
    return MixtureDataset(datasets, weights, cfg.tier_weights), stats


class _TimeBudget:
    """Trainer callback that fits training into ``minutes``: at each log it sets
    max_steps = step + (time left) x (recent steps/s), until 60 % of the budget has passed, then
    freezes it (the trainer re-reads cfg.max_steps each step and the cosine schedule follows it).
    The first epoch decodes videos and is slower; later windows correct the estimate."""

    def __init__(self, trainer_cfg, minutes: float, log=print, freeze_after: float = 0.6):
        self.cfg, self.budget, self.log, self.freeze_after = trainer_cfg, minutes * 60, log, freeze_after
        self.t0, self.done = time.perf_counter(), False

    def __call__(self, step: int, row: dict) -> None:
        if self.done or step < 60:
            return
        elapsed = time.perf_counter() - self.t0
        rate = float(row.get("steps_per_s") or step / max(elapsed, 1e-9))
        cap = max(step + 1, int(step + max(0.0, self.budget - elapsed) * rate))
        if cap != self.cfg.max_steps:
            self.cfg.max_steps = cap
        if elapsed > self.freeze_after * self.budget:
            self.done = True
            self.log(f"  time budget {self.budget / 60:.0f} min at {1 / max(rate, 1e-9):.3f} s/step: "
                     f"max_steps fixed at {self.cfg.max_steps}")


def train_base(cfg: PretrainConfig, data: dict, callbacks: list | None = None, log=print):
    """Train the tiny policy on the mixture. -> (policy, history, info)"""
    import torch
    from groot_kit.model.policy import GrootPolicy
    from groot_kit.train.trainer import TrainConfig, Trainer

    torch.manual_seed(cfg.seed)
    if cfg.init_from:
        policy = GrootPolicy.from_pretrained(cfg.init_from)
        policy.normalization = {}  # processors (stats) are rebuilt from this run's data below
    else:
        policy = GrootPolicy(tiny_pretrain_policy_config(cfg.num_views, cfg.subtask_loss_weight))
    mixture, _ = build_mixture(policy, data, cfg)
    tc = TrainConfig(output_dir=str(Path(cfg.output_dir) / "train"), max_steps=cfg.max_steps,
                     batch_size=cfg.batch_size, learning_rate=cfg.learning_rate, warmup_ratio=0.03,
                     tune_llm=True, tune_visual=True, tune_projector=True, tune_diffusion_model=True,
                     save_every=max(50, cfg.max_steps // 4), log_every=max(1, min(20, cfg.max_steps // 5)),
                     seed=cfg.seed, resume=True, image_shift=cfg.image_shift, color_jitter=cfg.color_jitter)
    budget = [_TimeBudget(tc, cfg.train_minutes, log)] if cfg.train_minutes > 0 else []
    trainer = Trainer(policy, mixture, tc, callbacks=budget + list(callbacks or []))
    t0 = time.perf_counter()
    history = trainer.train()
    secs = time.perf_counter() - t0
    info = {"steps": trainer.step, "seconds": round(secs, 1), "batch_size": cfg.batch_size,
            "learning_rate": cfg.learning_rate, "final_loss": history[-1]["loss"] if history else None,
            "final_subtask_loss": history[-1].get("subtask_loss") if history else None,
            "frames": len(mixture), "parameters": policy.num_parameters()["total"],
            "trainable": trainer.trainable_counts}
    return trainer.policy.eval(), history, info


# ----------------------------------------------------------------------------------- recipe
def pretrain_tiny(cfg: PretrainConfig | None = None, callbacks: list | None = None, log=print, **overrides) -> dict:
    """Run the whole recipe (data -> train -> save -> evaluate). Returns the results dict."""
    from groot_kit.eval import evaluate_closed_loop, evaluate_open_loop, strip_arrays

    cfg = dataclasses.replace(cfg or PretrainConfig(), **overrides)
    t_all = time.perf_counter()
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    log(f"[1/3] data pyramid: {', '.join(cfg.embodiments)} / {cfg.task} ({cfg.num_cubes} cube)")
    data = generate_pretrain_data(cfg, log)
    log(f"      data done in {data['seconds']} s" + (f" (reused: {', '.join(data['reused'])})" if data["reused"] else ""))
    if cfg.recovery_episodes > 0:
        log(f"      recovery demos: hand-overs from {cfg.init_from}")
        t_rec = time.perf_counter()
        data = {**data, "datasets": data["datasets"] + generate_recovery_data(cfg, log),
                "recovery_seconds": round(time.perf_counter() - t_rec, 1)}
        log(f"      recovery demos in {data['recovery_seconds']} s")
    if cfg.aggregate_recovery_from:
        log("      recovery demos of earlier rounds (DAgger aggregation)")
        data = {**data, "datasets": data["datasets"] + earlier_recovery_data(cfg, log)}
    log(f"[2/3] training the tiny policy ({cfg.num_views} views, sub-task co-training {cfg.subtask_loss_weight})")
    policy, history, train_info = train_base(cfg, data, callbacks, log)
    log(f"      {train_info['steps']} steps in {train_info['seconds']} s, final loss {train_info['final_loss']:.4f}")
    if cfg.checkpoint_dir:
        policy.save_pretrained(cfg.checkpoint_dir)
        (Path(cfg.checkpoint_dir) / "README.md").write_text(_checkpoint_readme(cfg, train_info))
    log("[3/3] evaluation")
    closed, open_ = {}, {}
    for emb in cfg.embodiments:
        if cfg.eval_episodes > 0:
            r = evaluate_closed_loop(policy, emb, cfg.task, cfg.eval_episodes, seed=cfg.eval_seed,
                                     replan_every=cfg.replan_every, env_kwargs={"num_cubes": cfg.num_cubes},
                                     video_dir=(out / cfg.video_dir) if cfg.video_dir else None)
            closed[emb] = {k: v for k, v in strip_arrays(r).items() if k != "episodes"}
            closed[emb]["episodes"] = [{k: e[k] for k in ("seed", "success", "steps")} for e in r["episodes"]]
            closed[emb]["subtasks_seen"] = sorted({s for e in r["episodes"] for s in e["subtasks"]})
            log(f"  closed loop {emb}: {r['successes']}/{r['n_episodes']} ({100 * r['success_rate']:.0f}%)")
        held = [d for d in data["datasets"] if d["embodiment"] == emb and d["role"] == "eval"]
        if held:
            ol = evaluate_open_loop(policy, held[0]["path"], max_episodes=cfg.heldout_episodes,
                                    processor=policy.get_processor(emb))
            open_[emb] = {"mse": ol["mse"], "mse_per_dim": ol["mse_per_dim"], "dim_names": ol["dim_names"],
                          "frames": ol["frames"]}
            log(f"  open loop {emb}: MSE {ol['mse']:.4g} (held-out expert episodes)")
    total = time.perf_counter() - t_all
    rates = [c["success_rate"] for c in closed.values()]
    results = {
        "recipe": "groot_kit.train.pretrain.pretrain_tiny", "command": cfg.command,
        "config": dataclasses.asdict(cfg), "data": data, "train": train_info,
        "train_curve": [{k: h[k] for k in ("step", "loss", "lr") if k in h} for h in history],
        "closed_loop": closed, "open_loop": open_,
        "mean_success_rate": float(np.mean(rates)) if rates else None,
        "total_seconds": round(total, 1), "checkpoint": cfg.checkpoint_dir,
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "torch_threads": __import__("torch").get_num_threads()},
    }
    if cfg.results_file:
        Path(cfg.results_file).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.results_file).write_text(json.dumps(results, indent=1) + "\n")
    log(f"done in {total / 60:.1f} min")
    results["policy"] = policy
    return results


def _checkpoint_readme(cfg: PretrainConfig, info: dict) -> str:
    return (f"# tiny_base\n\nBase checkpoint of the tiny pretraining recipe (`python scripts/pretrain_tiny.py`, "
            f"`groot_kit.train.pretrain`).\n\n- embodiments: {', '.join(cfg.embodiments)} (one processor each, "
            f"`policy.get_processor(name)`)\n- task variant: `{cfg.task}` with {cfg.num_cubes} cube(s), "
            f"{cfg.num_views} camera views, {cfg.image_size} px\n- tiers: synthetic (scripted expert, domain randomised), "
            f"teleop (simulated operator), video (IDM pseudo-labels, so100)\n"
            + (f"- recovery demos: {cfg.recovery_episodes} DAgger-style hand-overs per arm (a third for the humanoid) "
               f"from the warm-start policy\n" if cfg.recovery_episodes else "")
            + (f"- recovery demos of earlier rounds aggregated from: {', '.join(cfg.aggregate_recovery_from)}\n"
               if cfg.aggregate_recovery_from else "")
            + f"- {info['steps']} steps, batch "
            f"{info['batch_size']}, {info['seconds']} s on a 2-core CPU; final loss {info['final_loss']:.4f}\n\n"
            f"Results: `benchmarks/results/pretrain_tiny.json`.\n")


def clean(cfg: PretrainConfig) -> None:
    """Remove the recipe's working folder (datasets and training run)."""
    shutil.rmtree(cfg.output_dir, ignore_errors=True)
