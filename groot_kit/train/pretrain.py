"""Pretraining pieces (each takes the recipe's groot_kit.recipes.pretrain.PretrainConfig as `cfg`): the data pyramid per robot (expert, simulated-operator, IDM-labelled video and
DAgger-style recovery demos, cached per robot), the weighted mixture, and training the tiny base.
The recipe that chains them (config, evaluation, results) is groot_kit.recipes.pretrain.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Callable


from groot_kit.fileio import files_digest

def tiny_pretrain_policy_config(num_views: int = 2, subtask_loss_weight: float = 0.1,
                                prompt_order: str = "image_first"):
    """The tiny preset with `num_views` camera views, sub-task co-training and the given prompt layout."""
    from groot_kit.config import get_preset
    cfg = get_preset("tiny")
    return dataclasses.replace(cfg, vlm=dataclasses.replace(cfg.vlm, num_views=num_views, prompt_order=prompt_order),
                               subtask_loss_weight=subtask_loss_weight)


# ----------------------------------------------------------------------------------- data
def _episodes(embodiment: str, task: str, n: int, image_size: int, seed: int, num_cubes: int,
              teleop: bool = False, hold_seconds: float = 0.3, stats: dict | None = None,
              start_noise: float = 0.02, targets_per_scene: int = 1):
    """Successful demos (at least 4 steps) from the scripted expert or the simulated operator (EpisodeData list)."""
    from groot_kit.data.sim_data import sim_episodes
    return list(sim_episodes(embodiment, task, n, image_size, seed, teleop, only_success=True, num_cubes=num_cubes,
                             start_noise=start_noise, hold_seconds=hold_seconds, min_steps=4, stats=stats,
                             targets_per_scene=targets_per_scene))


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


# Scene seeds of one DAgger round's hand-overs (PretrainConfig.recovery_round) inside a kind's block of
# 100,000: rounds 0..MAX_RECOVERY_ROUND fit before the next tier's block.
ROUND_SEED_BLOCK = 20_000
MAX_RECOVERY_ROUND = 4


def _scene_seed(cfg, embodiment_index: int) -> int:
    """First scene seed of an embodiment; tiers add fixed offsets, so no two datasets share a scene."""
    return cfg.seed + 1_000_000 * (embodiment_index + 1)


def _writer_kwargs(spec, encoder) -> dict:
    return dict(fps=int(spec.control_hz), robot_type=spec.name, embodiment=spec.name,
                embodiment_id=spec.slot_id, encoder=encoder, overwrite=True)


def _embodiment_digest(spec) -> str:
    """Content hash of an embodiment's definition (MJCF, scene, embodiment.yaml, modality.json): data
    recorded before a robot changed (a camera moved, a joint limit) is not reused after."""
    return files_digest([spec.robot_xml, spec.scene_xml, spec.root / "embodiment.yaml", spec.root / "modality.json"])


def generate_pretrain_data(cfg, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Write every tier's datasets under ``output_dir/data``, one manifest per embodiment; an
    embodiment whose recipe settings and definition are unchanged reuses its datasets.
    -> {"datasets": [...], "seconds", "key", "reused": [embodiments reused]}"""
    from groot_kit.data import EncoderOptions, write_dataset
    from groot_kit.data.sim_data import modality_for
    from groot_kit.embodiment import load_embodiment

    root = Path(cfg.output_dir) / "data"
    key = {k: v for k, v in dataclasses.asdict(cfg).items()
           if k in ("task", "num_cubes", "targets_per_scene", "image_size", "expert_episodes", "teleop_episodes",
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
                            start_noise=noise, targets_per_scene=1 if name == "heldout" else cfg.targets_per_scene)
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


def stage_train_dir(cfg) -> Path:
    """Where a recipe stage keeps its training checkpoints: ``output_dir/train/<checkpoint name>``.

    Chained stages share an ``output_dir`` (a later stage reuses the earlier one's datasets), so
    each stage trains in its own folder: re-running a command resumes its own run, and the next
    stage does not find the previous stage's checkpoints (which the Trainer would refuse to resume)."""
    name = Path(cfg.checkpoint_dir).name if cfg.checkpoint_dir else "base"
    return Path(cfg.output_dir) / "train" / name


def generate_recovery_data(cfg, log: Callable[[str], None] = print) -> list[dict]:
    """DAgger-style hand-over demos (``groot_kit.train.recovery``) from the ``init_from`` policy, one
    dataset per embodiment and kind under ``output_dir/data``: ``<robot>_recovery`` (hand-over at a
    random step, ``cfg.recovery_episodes``) and ``<robot>_recovery_nudge`` (hand-over after the policy
    pushed the target without holding it, ``cfg.nudge_recovery_episodes``), with ``_r<k>`` appended
    for ``cfg.recovery_round`` k >= 1. Each is reused when the policy's weights and its settings are
    unchanged. -> dataset rows like :func:`generate_pretrain_data`'s."""
    rows = []
    k = cfg.recovery_round
    tag = f"_r{k}" if k else ""  # round 0 keeps the names the first rounds were recorded under
    # (kind, demos per arm, dataset suffix, manifest, seed offset in the robot's block: a round's own scenes)
    for trigger, n, suffix, manifest_name, offset in (
            ("random", cfg.recovery_episodes, f"recovery{tag}", f"recovery_manifest{tag}.json", 300_000 + ROUND_SEED_BLOCK * k),
            ("nudge", cfg.nudge_recovery_episodes, f"recovery_nudge{tag}", f"recovery_nudge_manifest{tag}.json",
             400_000 + ROUND_SEED_BLOCK * k)):
        if n > 0:
            rows += _recovery_kind(cfg, trigger, n, suffix, manifest_name, offset, log)
    return rows


def _recovery_kind(cfg, trigger: str, n_per_arm: int, suffix: str, manifest_name: str, seed_offset: int,
                   log: Callable[[str], None]) -> list[dict]:
    """One kind of hand-over demos for every robot that gets them (see :func:`generate_recovery_data`)."""
    from groot_kit.data import EncoderOptions, write_dataset
    from groot_kit.data.sim_data import modality_for
    from groot_kit.embodiment import load_embodiment
    from groot_kit.model.policy import GrootPolicy
    from groot_kit.train.recovery import recovery_episodes

    root = Path(cfg.output_dir) / "data"
    root.mkdir(parents=True, exist_ok=True)
    robots = [e for e in cfg.embodiments if cfg.recovery_embodiments is None or e in cfg.recovery_embodiments]
    key = {"policy_weights": files_digest(Path(cfg.init_from).glob("*.safetensors")), "embodiments": robots,
           "definitions": [_embodiment_digest(load_embodiment(e)) for e in robots], "task": cfg.task,
           "num_cubes": cfg.num_cubes, "image_size": cfg.image_size, "recovery_episodes": n_per_arm,
           "start_noise": cfg.start_noise, "replan_every": cfg.replan_every, "seed": cfg.seed,
           "encoder_crf": cfg.encoder_crf}
    if trigger != "random":  # keys written before the nudge kind existed stay valid
        key["trigger"] = trigger
    if cfg.recovery_round:
        key["round"] = cfg.recovery_round
    manifest = root / manifest_name
    m = _reusable(manifest, key)
    if m is not None:
        log(f"  reusing the {suffix} datasets in {root}")
        return m["datasets"]
    policy = GrootPolicy.from_pretrained(cfg.init_from)
    enc = EncoderOptions(crf=cfg.encoder_crf)
    rows = []
    for ei, emb in enumerate(cfg.embodiments):
        if emb not in robots:
            continue
        spec = load_embodiment(emb)
        n = max(1, n_per_arm // _episode_scale(spec))
        t1 = time.perf_counter()
        st: dict = {}
        eps = recovery_episodes(policy, emb, cfg.task, n, image_size=cfg.image_size,
                                seed=_scene_seed(cfg, ei) + seed_offset, num_cubes=cfg.num_cubes,
                                start_noise=cfg.start_noise, replan_every=cfg.replan_every, stats=st,
                                trigger=trigger)
        if not eps:
            log(f"  {emb}_{suffix}: no usable hand-over ({st}); skipped")
            continue
        path = write_dataset(eps, root / f"{emb}_{suffix}", modality_for(spec), **_writer_kwargs(spec, enc))
        rows.append({"name": f"{emb}_{suffix}", "path": str(path), "embodiment": emb, "slot": spec.slot_id,
                     "tier": "synthetic", "role": "train", "source": "policy_handover", "trigger": trigger,
                     "episodes": len(eps), "frames": int(sum(len(e) for e in eps)), "handover": st,
                     "seconds": round(time.perf_counter() - t1, 1)})
        log(f"  {rows[-1]['name']}: {len(eps)} episodes, {rows[-1]['frames']} frames from {st['tried']} hand-overs "
            f"({st['policy_succeeded']} scenes already solved by the policy) ({rows[-1]['seconds']} s)")
    manifest.write_text(json.dumps({"key": key, "datasets": rows}, indent=1) + "\n")
    return rows


def earlier_recovery_data(cfg, log: Callable[[str], None] = print, exclude: tuple[str, ...] = ()) -> list[dict]:
    """DAgger's aggregation step: the recovery datasets of earlier recipe runs join this run's mixture.
    Each entry of ``cfg.aggregate_recovery_from`` is an earlier run's ``output_dir`` (its random
    hand-overs, ``data/recovery_manifest.json``) or one manifest file of it (e.g. a nudge round's
    ``data/recovery_nudge_manifest.json``). A dataset is taken once, and not at all if its path
    is in ``exclude`` (this run's own). A robot's datasets are taken only if its definition (MJCF,
    scene, yaml, modality) is unchanged since they were recorded: demos of another home pose or
    camera would teach the wrong thing.
    -> dataset rows like :func:`generate_recovery_data`'s, each with ``aggregated_from``."""
    from groot_kit.embodiment import load_embodiment

    rows, taken = [], set(exclude)
    for run in cfg.aggregate_recovery_from:
        manifest = Path(run) if run.endswith(".json") else Path(run) / "data" / "recovery_manifest.json"
        if not manifest.is_file():
            raise FileNotFoundError(f"PretrainConfig.aggregate_recovery_from: {manifest} does not exist. Fix: give "
                                    "the output_dir of an earlier run that recorded recovery demos "
                                    "(recovery_episodes > 0) or one of its data/recovery*_manifest*.json files, "
                                    "or drop it from the list")
        m = json.loads(manifest.read_text())
        then = dict(zip(m["key"]["embodiments"], m["key"]["definitions"]))
        for r in m["datasets"]:
            emb = r["embodiment"]
            if emb not in cfg.embodiments or r["path"] in taken:
                continue
            if then.get(emb) != _embodiment_digest(load_embodiment(emb)):
                log(f"  {r['name']} from {run}: skipped ({emb}'s definition changed since it was recorded)")
                continue
            if not Path(r["path"]).exists():
                raise FileNotFoundError(f"{manifest} lists {r['path']}, which is gone. Fix: re-run that stage's "
                                        "recipe command to rebuild it, or drop the run from aggregate_recovery_from")
            taken.add(r["path"])
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


def build_mixture(policy, data: dict, cfg):
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
                   max_action_dim=pc.action_head.max_action_dim, goal_state=pc.goal_loss_weight > 0)
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


def train_base(cfg, data: dict, callbacks: list | None = None, log=print):
    """Train the tiny policy on the mixture. -> (policy, history, info)"""
    import torch
    from groot_kit.model.policy import GrootPolicy
    from groot_kit.train.trainer import TrainConfig, Trainer

    torch.manual_seed(cfg.seed)
    if cfg.init_from:
        policy = GrootPolicy.from_pretrained(cfg.init_from)
        # the robots this run trains get processors (stats) rebuilt from its data below; the others keep
        # the warm start's, since their encoders and decoders are still in the weights and can be evaluated
        trained = {r["embodiment"] for r in data["datasets"] if r["role"] == "train"}
        kept = {k: v for k, v in policy.normalization.get("processors", {}).items() if k not in trained}
        policy.normalization = {"processors": kept} if kept else {}
        if cfg.prompt_order and cfg.prompt_order != policy.config.vlm.prompt_order:
            # same weights, new layout: the LM learns to use the instruction from image tokens from here
            log(f"  prompt layout {policy.config.vlm.prompt_order} -> {cfg.prompt_order}")
            policy.config.vlm.prompt_order = cfg.prompt_order
    else:
        policy = GrootPolicy(tiny_pretrain_policy_config(cfg.num_views, cfg.subtask_loss_weight,
                                                         cfg.prompt_order or "image_first"))
    if getattr(cfg, "goal_loss_weight", 0) > 0:
        policy.add_goal_head(cfg.goal_loss_weight)
    mixture, _ = build_mixture(policy, data, cfg)
    if getattr(cfg, "grounding_subtask_weight", 0) > 0:
        from groot_kit.train.trainer import CachedDataset
        mixture = CachedDataset(mixture)  # decoded once: the pretext's text batches, then the action stage
    grounding = ground_system2(policy, cfg, log, mixture) if getattr(cfg, "grounding_scenes", 0) > 0 else None
    tune_s2 = not getattr(cfg, "freeze_system2", False)
    subtask_w = policy.config.subtask_loss_weight
    if not tune_s2:  # a frozen LM learns nothing from the sub-task loss: skip its tokens in this stage
        policy.config.subtask_loss_weight = 0.0
    tc = TrainConfig(output_dir=str(stage_train_dir(cfg)), max_steps=cfg.max_steps,
                     batch_size=cfg.batch_size, learning_rate=cfg.learning_rate, warmup_ratio=0.03,
                     tune_llm=tune_s2, tune_visual=tune_s2, tune_projector=True, tune_diffusion_model=True,
                     save_every=max(50, cfg.max_steps // 4), log_every=max(1, min(20, cfg.max_steps // 5)),
                     seed=cfg.seed, resume=True, image_shift=cfg.image_shift, color_jitter=cfg.color_jitter,
                     time_budget_minutes=cfg.train_minutes)
    trainer = Trainer(policy, mixture, tc, callbacks=list(callbacks or []))
    if trainer.budget is not None:
        trainer.budget.log = log
    t0 = time.perf_counter()
    try:
        history = trainer.train()
    finally:
        trainer.policy.config.subtask_loss_weight = subtask_w
    secs = time.perf_counter() - t0
    info = {"steps": trainer.step, "seconds": round(secs, 1), "batch_size": cfg.batch_size,
            "learning_rate": cfg.learning_rate, "final_loss": history[-1]["loss"] if history else None,
            "final_subtask_loss": history[-1].get("subtask_loss") if history else None,
            "final_goal_loss": history[-1].get("goal_loss") if history else None,
            "frames": len(mixture), "parameters": policy.num_parameters()["total"],
            "trainable": trainer.trainable_counts}
    if grounding is not None:
        info["grounding"] = grounding
    return trainer.policy.eval(), history, info


def ground_system2(policy, cfg, log=print, mixture=None) -> dict:
    """The grounding pretext (groot_kit.train.grounding) on every embodiment of the recipe: scenes
    from the embodiment's own seed block (+200_000 train, +950_000 validation, apart from its demos).
    With cfg.grounding_subtask_weight > 0 it also co-trains the sub-task text on `mixture`'s frames."""
    from groot_kit.train.grounding import GroundingConfig, render_grounding_scenes, train_grounding

    t0 = time.perf_counter()
    train, val = [], []
    for ei, emb in enumerate(cfg.embodiments):
        base = _scene_seed(cfg, ei)
        train.append(render_grounding_scenes(policy, emb, cfg.task, cfg.grounding_scenes, base + 200_000, cfg.num_cubes))
        val.append(render_grounding_scenes(policy, emb, cfg.task, 300, base + 950_000, cfg.num_cubes))
    render_s = round(time.perf_counter() - t0, 1)
    log(f"  grounding scenes rendered in {render_s} s")
    sub_w = getattr(cfg, "grounding_subtask_weight", 0.0)
    fixed = cfg.grounding_max_steps
    budget = dict(minutes=0.0, max_steps=fixed) if fixed > 0 else dict(minutes=cfg.grounding_minutes)
    gcfg = GroundingConfig(**budget, seed=cfg.seed, subtask_weight=sub_w)
    _, info = train_grounding(policy, train, val, gcfg, log, subtask_data=mixture if sub_w > 0 else None)
    return {**info, "render_seconds": render_s}


