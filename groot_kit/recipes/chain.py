"""Warm-start chains: a committed checkpoint that took several recipe runs, rebuilt by one command.

A shipped checkpoint such as ``tiny_pick_so100_dagger2`` is not one run of the pretraining recipe:
it is a grounding stage on top of the committed ``tiny_base``, then a pick_place stage, then
two DAgger rounds, each warm-started from the one before. A chain lists those stages as data (the
recipe flags each stage ran with) and runs them in order, every stage starting from the checkpoint
the previous stage wrote, so a fresh clone needs no folder that only existed on one machine:

    python scripts/pretrain_tiny.py --chain pick_place_so100 --threads 2     # about 4.3 h on 2 cores
    python scripts/pretrain_tiny.py --chain pick_place_so100 --dry-run       # the stages' commands
    python scripts/pretrain_tiny.py --chain lift_box_gr1 --threads 2         # the humanoid lift, about 2 h

Each stage trains for its recorded time budget, so a slower machine trains fewer steps;
``--replay-steps`` trains each stage for the step count its committed record ran instead (the same
schedule on any machine, taking as long as that takes there).

A stage whose results file already records the same configuration is skipped, so an interrupted
chain picks up where it stopped (and a stage cut off mid-training resumes its own trainer
checkpoint). By default everything goes under ``outputs/chains/<chain>/`` and the committed
checkpoints are left alone; ``--in-place`` writes the committed folders and results files instead.
"""
from __future__ import annotations

import dataclasses
import json
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from groot_kit.recipes.pretrain import PretrainConfig, config_from_argv, parser, run
from groot_kit.train.pretrain import stage_train_dir

# Flags a chain sets itself (paths); a stage's recorded flags must not contain them.
_PATH_FIELDS = ("output_dir", "checkpoint_dir", "results_file", "init_from", "command")


@dataclass(frozen=True)
class Stage:
    name: str        # the checkpoint it produced: data_samples/checkpoints/<name> (the last stage's is shipped;
                     # earlier ones are rebuilt by the chain, their results files are committed)
    init_from: str   # a committed checkpoint (the chain's root) or "@<earlier stage's name>"
    workdir: str     # datasets + training runs, under outputs/; stages naming the same workdir share datasets
    flags: str       # the recipe flags it ran with, paths left out (the chain sets them); "{workdir}" stands
                     # for the stage's output folder (e.g. to aggregate an earlier round's hand-overs)
    results: str     # its committed results file

    @property
    def checkpoint(self) -> str:
        return f"data_samples/checkpoints/{self.name}"


_PICK_DATA = ("--embodiments so100 --task pick_place --num-cubes 3 --targets-per-scene 2 --expert-episodes 600 "
              "--teleop-episodes 100 --video-episodes 0 --eval-episodes 0 --heldout-episodes 2 --video-dir none")

_LIFT_DATA = ("--embodiments gr1_upper --task lift_box --expert-episodes 600 --teleop-episodes 150 --video-episodes 0 "
              "--eval-episodes 0 --heldout-episodes 2 --video-dir none")

_PICK_DATA_PANDA7 = _PICK_DATA.replace("--embodiments so100", "--embodiments panda7")

# The humanoid records a third as many episodes (4x longer, _episode_scale): 600 -> 200 expert, 150 -> 50 teleop
_PICK_DATA_GR1 = _PICK_DATA.replace("--embodiments so100", "--embodiments gr1_upper").replace(
    "--teleop-episodes 100", "--teleop-episodes 150")

CHAINS: dict[str, tuple[Stage, ...]] = {
    # so100 pick_place with 3 cubes and 2 bins, language-conditioned (issue 14); root: the committed base
    "pick_place_so100": (
        Stage("tiny_lang_so100", "data_samples/checkpoints/tiny_base", "lang_ground",
              "--embodiments so100 --task reach --num-cubes 3 --targets-per-scene 3 --expert-episodes 400 "
              "--teleop-episodes 100 --video-episodes 0 --grounding-scenes 20000 --grounding-minutes 20 "
              "--freeze-system2 --train-minutes 30 --learning-rate 3e-4 --eval-episodes 0 --heldout-episodes 2 "
              "--video-dir none", "benchmarks/results/pretrain_lang_grounding.json"),
        Stage("tiny_pick_so100", "@tiny_lang_so100", "pp_so100",
              f"{_PICK_DATA} --grounding-scenes 20000 --grounding-minutes 15 --grounding-subtask-weight 0.5 "
              "--freeze-system2 --train-minutes 55 --learning-rate 3e-4",
              "benchmarks/results/pretrain_pick_place_so100.json"),
        Stage("tiny_pick_so100_dagger", "@tiny_pick_so100", "pp_so100",
              f"{_PICK_DATA} --recovery-episodes 200 --freeze-system2 --train-minutes 60 --learning-rate 2e-4",
              "benchmarks/results/pretrain_pick_place_so100_dagger.json"),
        Stage("tiny_pick_so100_dagger2", "@tiny_pick_so100_dagger", "pp_so100",
              f"{_PICK_DATA} --recovery-episodes 250 --freeze-system2 --train-minutes 45 --learning-rate 2e-4",
              "benchmarks/results/pretrain_pick_place_so100_dagger2.json"),
    ),
    # gr1_upper lift_box (issue 14): a behaviour-cloning stage on the committed base, then a DAgger round
    # of random hand-overs and one of nudge hand-overs (with the first round's demos aggregated)
    "lift_box_gr1": (
        Stage("tiny_lift_gr1", "data_samples/checkpoints/tiny_base", "lift_gr1",
              f"{_LIFT_DATA} --train-minutes 40 --learning-rate 3e-4",
              "benchmarks/results/pretrain_lift_box_gr1.json"),
        Stage("tiny_lift_gr1_dagger", "@tiny_lift_gr1", "lift_gr1",
              f"{_LIFT_DATA} --recovery-episodes 90 --train-minutes 20 --learning-rate 2e-4",
              "benchmarks/results/pretrain_lift_box_gr1_dagger.json"),
        Stage("tiny_lift_gr1_dagger2", "@tiny_lift_gr1_dagger", "lift_gr1",
              f"{_LIFT_DATA} --nudge-recovery-episodes 90 --aggregate-recovery-from {{workdir}} "
              "--train-minutes 20 --learning-rate 2e-4",
              "benchmarks/results/pretrain_lift_box_gr1_dagger2.json"),
    ),
    # panda7 pick_place (issue 14): the cross-embodiment route. The shipped so100 pick_place checkpoint
    # (System 2 grounded on colours and sub-tasks, System 1 knows the task) is fine-tuned on the 7-DOF
    # arm's demos: a short grounding pass on its camera views, then the action stage with System 2 frozen;
    # then two DAgger rounds (random hand-overs, as the so100 chain's; the second aggregates the first)
    "pick_place_panda7": (
        Stage("tiny_pick_panda7", "data_samples/checkpoints/tiny_pick_so100_dagger2", "pp_panda7",
              f"{_PICK_DATA_PANDA7} --grounding-scenes 20000 --grounding-minutes 10 --grounding-subtask-weight 0.5 "
              "--freeze-system2 --train-minutes 50 --learning-rate 3e-4",
              "benchmarks/results/pretrain_pick_place_panda7.json"),
        Stage("tiny_pick_panda7_dagger", "@tiny_pick_panda7", "pp_panda7",
              f"{_PICK_DATA_PANDA7} --recovery-episodes 200 --freeze-system2 --train-minutes 30 --learning-rate 2e-4",
              "benchmarks/results/pretrain_pick_place_panda7_dagger.json"),
        # round 2: new hand-overs from round 1's policy as their own datasets, round 1's aggregated
        Stage("tiny_pick_panda7_dagger2", "@tiny_pick_panda7_dagger", "pp_panda7",
              f"{_PICK_DATA_PANDA7} --recovery-episodes 250 --recovery-round 1 --aggregate-recovery-from {{workdir}} "
              "--freeze-system2 --train-minutes 45 --learning-rate 2e-4",
              "benchmarks/results/pretrain_pick_place_panda7_dagger2.json"),
        # A third round (250 more hand-overs, both rounds aggregated; pretrain_pick_place_panda7_dagger3.json)
        # placed 26/50 on the tuning range, as round 2: not adopted, so not a stage of the chain.
    ),
    # gr1_upper pick_place (issue 14): the panda7 route on the humanoid. The shipped so100 pick_place
    # checkpoint brings System 2's colour and sub-task grounding; gr1_upper's own encoder slot was
    # trained on reach in tiny_base and survives the so100 stages
    "pick_place_gr1": (
        Stage("tiny_pick_gr1", "data_samples/checkpoints/tiny_pick_so100_dagger2", "pp_gr1",
              f"{_PICK_DATA_GR1} --grounding-scenes 20000 --grounding-minutes 10 --grounding-subtask-weight 0.5 "
              "--freeze-system2 --train-minutes 50 --learning-rate 3e-4",
              "benchmarks/results/pretrain_pick_place_gr1.json"),
        # A DAgger round on this stage (80 humanoid hand-overs, pretrain_pick_place_gr1_dagger.json) placed
        # 0/50 on the tuning range against the stage's 1/50: not adopted, so not a stage of the chain.
    ),
}

# Chains whose checkpoints are not committed (data_samples/ stays under its 20 MiB cap): they run under
# outputs/chains/<chain>/ only, and their results files record those paths.
NOT_SHIPPED = frozenset({"lift_box_gr1", "pick_place_panda7", "pick_place_gr1"})


@dataclass(frozen=True)
class StagePlan:
    stage: Stage
    config: PretrainConfig   # what this stage runs with
    done: bool               # nothing to run: its results file records this configuration, as do all
                             # before it, and its or a later stage's checkpoint is on disk


def _config_key(cfg) -> dict:
    """What decides whether a stage's recorded run is this stage: every field but the paths."""
    d = json.loads(json.dumps(dataclasses.asdict(cfg)))
    return {k: v for k, v in d.items() if k not in _PATH_FIELDS}


def stage_paths(chain: str, stage: Stage, in_place: bool) -> dict[str, str]:
    """Where a stage writes: the committed folders (``in_place``) or ``outputs/chains/<chain>/``."""
    if in_place:
        return {"checkpoint_dir": stage.checkpoint, "results_file": stage.results,
                "output_dir": f"outputs/{stage.workdir}"}
    root = f"outputs/chains/{chain}"
    return {"checkpoint_dir": f"{root}/checkpoints/{stage.name}", "results_file": f"{root}/results/{stage.name}.json",
            "output_dir": f"{root}/{stage.workdir}"}


def recorded_steps(stage: Stage) -> tuple[int, int]:
    """The training steps the stage's committed results file records: (action stage, grounding pretext;
    0 where the stage had no pretext)."""
    path = Path(stage.results)
    try:
        train = json.loads(path.read_text())["train"]
        return int(train["steps"]), int((train.get("grounding") or {}).get("steps", 0))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"--replay-steps: {path} gives no train.steps for stage {stage.name!r} ({e!r}). Fix: run "
                         "from the repository root of a full checkout, or drop --replay-steps") from None


def _without(argv: list[str], flags: tuple[str, ...]) -> list[str]:
    """argv with each ``--flag VALUE`` pair of ``flags`` removed."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in flags:
            skip = True
        else:
            out.append(a)
    return out


def plan(chain: str, in_place: bool = False, stages: tuple[Stage, ...] | None = None,
         replay_steps: bool = False) -> list[StagePlan]:
    """The chain's stages with the configuration each runs with, and which are already done.
    ``stages`` overrides the registered chain (tests run a minutes-scale chain through the same code).
    ``replay_steps``: each stage (and its grounding pretext) trains for the step count its committed
    record ran instead of its time budget, so a slower or faster machine rebuilds the same schedule (it takes as long as it takes)."""
    if stages is None:
        if chain not in CHAINS:
            raise ValueError(f"--chain {chain!r} is not a known chain. Fix: one of {sorted(CHAINS)}")
        stages = CHAINS[chain]
    configs: list[PretrainConfig] = []
    written: dict[str, str] = {}
    if in_place and chain in NOT_SHIPPED:
        raise ValueError(f"--chain {chain!r}: its checkpoints are not committed (data_samples/ is at its size cap). "
                         "Fix: run it without --in-place; it writes under outputs/chains/")
    if in_place and replay_steps:
        raise ValueError("--replay-steps with --in-place would overwrite the committed records with other settings. "
                         "Fix: drop --in-place (replays write under outputs/chains/)")
    for st in stages:
        paths = stage_paths(chain, st, in_place)
        argv = shlex.split(st.flags.replace("{workdir}", paths["output_dir"]))
        clash = [a for a in argv if a.lstrip("-").replace("-", "_") in _PATH_FIELDS]
        if clash:
            raise ValueError(f"chain {chain!r}, stage {st.name!r}: its flags give {clash}, which the chain sets "
                             "itself. Fix: drop them from Stage.flags")
        if replay_steps:
            steps, grounding_steps = recorded_steps(st)
            argv = _without(argv, ("--train-minutes", "--max-steps", "--grounding-max-steps")) + [
                "--max-steps", str(steps), "--train-minutes", "0"]
            if grounding_steps:
                argv += ["--grounding-max-steps", str(grounding_steps)]
        if st.init_from.startswith("@"):
            prev = st.init_from[1:]
            if prev not in written:
                raise ValueError(f"chain {chain!r}, stage {st.name!r}: init_from {st.init_from!r} names no earlier "
                                 f"stage (earlier: {list(written)}). Fix: order the stages or name a committed checkpoint")
            init = written[prev]
        else:
            init = st.init_from
        full = argv + ["--init-from", init] + [x for k, v in paths.items() for x in ("--" + k.replace("_", "-"), v)]
        cfg = config_from_argv(full)
        cfg = dataclasses.replace(cfg, command="python scripts/pretrain_tiny.py " + shlex.join(full))
        written[st.name] = paths["checkpoint_dir"]
        configs.append(cfg)
    # Resume after the last stage that has its checkpoint and whose results, like those of every
    # stage before it, record this configuration; a stage after one that runs again runs too.
    last = -1
    for i, c in enumerate(configs):
        if not _recorded(c):
            break
        if (Path(c.checkpoint_dir) / "model.safetensors").is_file():
            last = i
    return [StagePlan(st, c, i <= last) for i, (st, c) in enumerate(zip(stages, configs))]


def _recorded(cfg) -> bool:
    """Whether cfg's results file records a finished run of this configuration."""
    res = Path(cfg.results_file)
    if not res.is_file():
        return False
    try:
        recorded = json.loads(res.read_text())["config"]
    except (ValueError, KeyError):
        return False
    return recorded_key(recorded) == _config_key(cfg)


def recorded_key(recorded: dict) -> dict:
    """A results file's ``config`` compared like :func:`_config_key`. A field the recipe gained after
    the run (absent there) counts as its default: new fields default to the old behaviour."""
    return {**_config_key(PretrainConfig()), **{k: v for k, v in recorded.items() if k not in _PATH_FIELDS}}


def run_chain(chain: str, in_place: bool = False, dry_run: bool = False, stages: tuple[Stage, ...] | None = None,
              log: Callable[[str], None] = print, replay_steps: bool = False) -> list[dict]:
    """Run the chain's stages in order, skipping those already done. -> one row per stage."""
    rows = []
    steps = plan(chain, in_place, stages, replay_steps=replay_steps)
    upstream_ran = False
    for i, p in enumerate(steps, 1):
        head = f"[chain {chain} {i}/{len(steps)}] {p.stage.name}"
        log(f"{head}: done already ({p.config.results_file} records this configuration), skipped" if p.done
            else f"{head}: {p.config.command}")
        if p.done or dry_run:
            rows.append({"stage": p.stage.name, "ran": False, "done": p.done, "checkpoint": p.config.checkpoint_dir})
            continue
        train_dir = stage_train_dir(p.config)
        if train_dir.exists() and (upstream_ran or Path(p.config.results_file).exists()):
            # a finished run of other settings, or one warm-started from a stage that just changed:
            # its trainer checkpoints are not this stage's to resume
            log(f"{head}: its warm start or settings changed since {train_dir} was written; starting it over")
            shutil.rmtree(train_dir)
        res = run(p.config, log=log)
        upstream_ran = True
        rows.append({"stage": p.stage.name, "ran": True, "done": True, "checkpoint": p.config.checkpoint_dir,
                     "seconds": res["total_seconds"]})
    return rows


def main(argv: list[str] | None = None) -> int:
    """`python scripts/pretrain_tiny.py`: one recipe run from its flags, or ``--chain NAME``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    p = parser()
    g = p.add_argument_group("warm-start chains (groot_kit.recipes.chain)")
    g.add_argument("--chain", default=None, help=f"run a shipped checkpoint's recorded stages in order, one of "
                   f"{sorted(CHAINS)} (no other recipe flags with it)")
    g.add_argument("--in-place", action="store_true", help="with --chain: write the committed checkpoints and "
                   "results files (default: outputs/chains/<chain>/)")
    g.add_argument("--dry-run", action="store_true", help="with --chain: print the stages' commands, run nothing")
    g.add_argument("--replay-steps", action="store_true", help="with --chain: train each stage for the steps its "
                   "committed record ran, not for its time budget (the same schedule on a slower or faster machine)")
    a = p.parse_args(argv)
    if a.chain is None:
        if a.in_place or a.dry_run or a.replay_steps:
            p.error("--in-place, --dry-run and --replay-steps go with --chain NAME")
        from groot_kit.recipes.pretrain import main as run_once
        return run_once(argv)
    extra = [k for k, v in vars(a).items() if k not in ("chain", "in_place", "dry_run", "replay_steps", "threads")
             and p.get_default(k) != v]
    if extra:
        p.error(f"--chain runs each stage with its recorded flags; drop {['--' + k.replace('_', '-') for k in extra]}")
    import torch
    torch.set_num_threads(a.threads)
    try:
        rows = run_chain(a.chain, in_place=a.in_place, dry_run=a.dry_run, replay_steps=a.replay_steps)
    except ValueError as e:
        p.error(str(e))
    state = {(True, True): "ran", (False, True): "done already, skipped", (False, False): "would run"}
    print("chain: " + ", ".join(f"{r['stage']} ({state[r['ran'], r['done']]})" for r in rows))
    return 0
