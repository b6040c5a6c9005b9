"""Recipe: the tiny base model. Multi-embodiment, multi-tier data -> base checkpoint -> closed-loop eval.

One command (``python scripts/pretrain_tiny.py``, flags generated from PretrainConfig) runs everything:

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

import argparse
import dataclasses
import json
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from groot_kit.train.pretrain import (MAX_RECOVERY_ROUND, ROUND_SEED_BLOCK, earlier_recovery_data,
                                      generate_pretrain_data, generate_recovery_data, train_base)

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
    targets_per_scene: int = 1          # record each multi-cube scene once per target cube (up to this many):
                                        # counterfactual demos, same image, other instruction (train tiers)
    image_size: int = 64                # rendered frames (= tiny preset input)
    num_views: int = 2                  # front/ego + wrist
    expert_episodes: int = 900          # tier synthetic, per embodiment (humanoid: a third, 4x longer episodes)
    teleop_episodes: int = 300          # tier teleop (simulated operator: drift + corrections), per embodiment
    video_episodes: int = 40            # tier video (IDM pseudo-labels), so100 only; 0 = off
    heldout_episodes: int = 4           # open-loop eval episodes per embodiment (unseen seeds)
    recovery_episodes: int = 0          # DAgger-style hand-over demos from the init_from policy, per
                                        # embodiment (humanoid: a third); needs init_from (train/recovery.py)
    nudge_recovery_episodes: int = 0    # hand-overs at the policy's typical failure instead of a random step:
                                        # after it pushed the target without holding it (train/recovery.py)
    recovery_round: int = 0             # DAgger round of this run's hand-overs: k >= 1 gives them their own
                                        # datasets (<robot>_recovery[_nudge]_r<k>), manifest and scenes, so a
                                        # later round in the same output_dir keeps the earlier ones (0: as first)
    recovery_embodiments: tuple[str, ...] | None = None  # robots that get new hand-over demos (None: all)
    aggregate_recovery_from: tuple[str, ...] = ()  # earlier runs' output_dirs (their random hand-overs) or
                                        # manifest files (data/recovery*_manifest*.json): those demos join this
                                        # mixture (DAgger's aggregation), per robot whose definition is unchanged
    hold_seconds: float = 0.0           # expert keeps recording this long after success (0.3 measured worse)
    start_noise: float = 0.3            # joint noise (rad) on the start pose of training demos (eval: 0.02)
    tier_weights: dict = field(default_factory=lambda: {"synthetic": 1.0, "teleop": 0.5, "video": 0.15})
    embodiment_weights: dict = field(default_factory=dict)  # batch-share multiplier per embodiment, e.g.
                                        # {"gr1_upper": 2.0} for a robot that lags (missing = 1.0)
    subtask_loss_weight: float = 0.1    # System 2 sub-task co-training
    goal_loss_weight: float = 0.0       # System 2 goal head: predict the episode's final state from the
                                        # last prompt token (a grounding signal; 0 = off, as in GR00T)
    grounding_scenes: int = 0           # System 2 grounding pretext before the action stage: rendered
                                        # multi-cube first frames per embodiment, each cube named in turn,
                                        # "where is the named cube?" (groot_kit.train.grounding; 0 = off)
    grounding_minutes: float = 15.0     # time budget of the grounding pretext
    grounding_max_steps: int = 0        # > 0: the pretext runs exactly this many steps, not its time budget
                                        # (a chain's --replay-steps: the same pretext on any machine)
    grounding_subtask_weight: float = 0.0  # the pretext also co-trains System 2's sub-task text on demo
                                        # frames (weight of that loss; 0 = off). With freeze_system2 this
                                        # is where System 2 learns to name the sub-task
    freeze_system2: bool = False        # action stage trains System 1 and the projectors only (GR00T N1 keeps
                                        # the LM frozen); keeps what the grounding pretext taught System 2
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
    prompt_order: str | None = None     # System 2 prompt layout: None keeps init_from's (scratch: GR00T's
                                        # image_first); "text_first" lets image tokens attend to the instruction
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
        if self.targets_per_scene < 1 or (self.targets_per_scene > 1 and self.targets_per_scene > self.num_cubes):
            raise ValueError(f"PretrainConfig.targets_per_scene={self.targets_per_scene}: give 1..num_cubes "
                             f"({self.num_cubes}); each recording of a scene names another cube")
        if self.goal_loss_weight < 0:
            raise ValueError(f"PretrainConfig.goal_loss_weight={self.goal_loss_weight}: give 0 (off) or a positive weight")
        if self.grounding_scenes < 0 or (self.grounding_scenes > 0 and self.num_cubes < 2):
            raise ValueError(f"PretrainConfig.grounding_scenes={self.grounding_scenes} with num_cubes={self.num_cubes}: "
                             "the grounding pretext names one of several cubes; set num_cubes >= 2 or grounding_scenes=0")
        if self.grounding_subtask_weight < 0 or (self.grounding_subtask_weight > 0 and self.grounding_scenes == 0):
            raise ValueError(f"PretrainConfig.grounding_subtask_weight={self.grounding_subtask_weight}: it weighs a loss "
                             "of the grounding pretext; give a value >= 0 and grounding_scenes > 0")
        if self.grounding_max_steps < 0:
            raise ValueError(f"PretrainConfig.grounding_max_steps={self.grounding_max_steps}: give 0 (the time budget "
                             "decides) or a step count")
        if self.grounding_scenes > 0 and self.grounding_minutes <= 0 and self.grounding_max_steps == 0:
            raise ValueError(f"PretrainConfig.grounding_minutes={self.grounding_minutes}: give a positive time budget "
                             "for the grounding pretext, or grounding_max_steps > 0 (or grounding_scenes=0 to skip it)")
        if self.prompt_order not in (None, "image_first", "text_first"):
            raise ValueError(f"PretrainConfig.prompt_order={self.prompt_order!r}: give image_first, text_first "
                             "or leave it unset (None keeps the init_from checkpoint's layout)")
        if not 0 <= self.recovery_round <= MAX_RECOVERY_ROUND:
            raise ValueError(f"PretrainConfig.recovery_round={self.recovery_round}: give 0 (the first rounds' names) "
                             f"to {MAX_RECOVERY_ROUND}; each round has a block of {ROUND_SEED_BLOCK:,} scene seeds")
        if self.recovery_episodes < 0:
            raise ValueError(f"PretrainConfig.recovery_episodes={self.recovery_episodes}: give 0 (off) or more")
        if self.nudge_recovery_episodes < 0:
            raise ValueError(f"PretrainConfig.nudge_recovery_episodes={self.nudge_recovery_episodes}: give 0 (off) or more")
        if self.nudge_recovery_episodes > 0 and not self.init_from:
            raise ValueError("PretrainConfig.nudge_recovery_episodes needs a policy to hand over from: set init_from "
                             "to a checkpoint, or nudge_recovery_episodes=0")
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


def run(cfg: PretrainConfig | None = None, callbacks: list | None = None, log=print, **overrides) -> dict:
    """Run the whole recipe (data -> train -> save -> evaluate). Returns the results dict."""
    from groot_kit.eval import evaluate_closed_loop, evaluate_open_loop, strip_arrays

    cfg = dataclasses.replace(cfg or PretrainConfig(), **overrides)
    t_all = time.perf_counter()
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    log(f"[1/3] data pyramid: {', '.join(cfg.embodiments)} / {cfg.task} ({cfg.num_cubes} cube)")
    data = generate_pretrain_data(cfg, log)
    log(f"      data done in {data['seconds']} s" + (f" (reused: {', '.join(data['reused'])})" if data["reused"] else ""))
    if cfg.recovery_episodes > 0 or cfg.nudge_recovery_episodes > 0:
        log(f"      recovery demos: hand-overs from {cfg.init_from}")
        t_rec = time.perf_counter()
        data = {**data, "datasets": data["datasets"] + generate_recovery_data(cfg, log),
                "recovery_seconds": round(time.perf_counter() - t_rec, 1)}
        log(f"      recovery demos in {data['recovery_seconds']} s")
    if cfg.aggregate_recovery_from:
        log("      recovery demos of earlier rounds (DAgger aggregation)")
        own = tuple(d["path"] for d in data["datasets"])
        data = {**data, "datasets": data["datasets"] + earlier_recovery_data(cfg, log, exclude=own)}
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
        "recipe": "groot_kit.recipes.pretrain.run", "command": cfg.command,
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
    tiers = ["synthetic (scripted expert, domain randomised)", "teleop (simulated operator)"]
    if cfg.video_episodes > 0:
        tiers.append("video (IDM pseudo-labels, so100)")
    lines = [f"# {Path(cfg.checkpoint_dir).name}", "",
             f"Checkpoint of the tiny pretraining recipe (`groot_kit.recipes.pretrain`): `{cfg.command}`", "",
             f"- embodiments: {', '.join(cfg.embodiments)} (one processor each, `policy.get_processor(name)`)",
             f"- task variant: `{cfg.task}` with {cfg.num_cubes} cube(s), {cfg.num_views} camera views, {cfg.image_size} px"
             + (f", each scene recorded for up to {cfg.targets_per_scene} target cubes" if cfg.targets_per_scene > 1 else ""),
             f"- tiers: {', '.join(tiers)}"]
    if cfg.init_from:
        lines.append(f"- warm-started from `{cfg.init_from}`")
    if cfg.nudge_recovery_episodes:
        lines.append(f"- nudge recovery demos: {cfg.nudge_recovery_episodes} hand-overs per arm after the policy pushed "
                     "the target without holding it")
    if cfg.recovery_episodes:
        lines.append(f"- recovery demos: {cfg.recovery_episodes} DAgger-style hand-overs per arm (a third for the "
                     "humanoid) from the warm-start policy")
    if cfg.aggregate_recovery_from:
        lines.append(f"- recovery demos of earlier rounds aggregated from: {', '.join(cfg.aggregate_recovery_from)}")
    g = info.get("grounding")
    if g:
        probe = "; ".join(f"{e}: named cube nearest {r['own_nearest']}/{r['n_queries']}, {r['error_cm']:.1f} cm "
                          f"(blanked {r['error_blank_cm']:.1f} cm)"
                          + (f", named bin nearest {r['bin_nearest']}/{r['n_queries']}" if "bin_nearest" in r else "")
                          for e, r in g["final_probe"].items())
        lines.append(f"- System 2 grounding pretext first: {sum(g['train_scenes'].values())} rendered scenes, "
                     f"{g['steps']} steps in {g['seconds']:.0f} s; probe on unseen scenes {probe}"
                     + (f"; sub-task text co-trained (weight {cfg.grounding_subtask_weight})"
                        if cfg.grounding_subtask_weight > 0 else ""))
    if cfg.freeze_system2:
        lines.append("- action stage: System 2 frozen, System 1 and the projectors trained")
    lines.append(f"- {info['steps']} steps, batch {info['batch_size']}, {info['seconds']} s on a 2-core CPU; "
                 f"final loss {info['final_loss']:.4f}")
    if cfg.results_file:
        lines += ["", f"Results: `{cfg.results_file}`."]
    return "\n".join(lines) + "\n"


def clean(cfg: PretrainConfig) -> None:
    """Remove the recipe's working folder (datasets and training run)."""
    shutil.rmtree(cfg.output_dir, ignore_errors=True)


def parser() -> argparse.ArgumentParser:
    """The recipe's command line: one flag per PretrainConfig field, plus --fast and --threads."""
    from groot_kit.recipes.config_cli import add_config_arguments
    p = argparse.ArgumentParser(prog="pretrain_tiny", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fast", action="store_true", help="smoke run (minutes; no checkpoint or results written)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a busy 2-core machine)")
    add_config_arguments(p, PretrainConfig, skip=("command",))
    return p


def config_from_argv(argv: list[str]) -> PretrainConfig:
    """The PretrainConfig that ``scripts/pretrain_tiny.py ARGV`` would run (raises ValueError on bad values)."""
    p = parser()
    return _config(p, p.parse_args(argv))


def _config(p: argparse.ArgumentParser, a: argparse.Namespace) -> PretrainConfig:
    """The config parsed flags describe: the defaults (--fast: the smoke ones) with the flags given."""
    from groot_kit.recipes.config_cli import config_from_args
    base = PretrainConfig.fast(output_dir="outputs/pretrain_tiny_fast") if a.fast else PretrainConfig()
    given = argparse.Namespace(**{k: v for k, v in vars(a).items() if p.get_default(k) != v})
    return config_from_args(PretrainConfig, given, base=base)


def main(argv: list[str] | None = None) -> int:
    """One run of the recipe from its flags (`scripts/pretrain_tiny.py` adds --chain: groot_kit.recipes.chain)."""
    import torch

    argv = list(sys.argv[1:] if argv is None else argv)
    p = parser()
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    try:
        cfg = _config(p, a)
    except ValueError as e:
        p.error(str(e))
    cfg = dataclasses.replace(cfg, command="python " + " ".join([sys.argv[0], *argv]))
    t0 = time.perf_counter()
    res = run(cfg)
    print(f"total time: {(time.perf_counter() - t0) / 60:.1f} min")
    for emb, r in res["closed_loop"].items():
        print(f"  {emb}: success {r['successes']}/{r['n_episodes']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
