"""Warm-start chains: the committed stages are what the chain runs, and a chain runs, skips and resumes."""
import json
import shutil
from pathlib import Path

import pytest

from groot_kit.recipes.chain import CHAINS, NOT_SHIPPED, Stage, _config_key, main, plan, recorded_key, run_chain

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("chain", sorted(CHAINS))
def test_committed_stages_are_the_chain(chain, monkeypatch):
    """Every committed stage of a chain (its results file) was run with the configuration the chain
    gives it, warm-started from the stage before (or the committed root); the last stage's checkpoint
    is shipped, the earlier ones are rebuilt by the chain when needed."""
    monkeypatch.chdir(REPO)
    shipped = chain not in NOT_SHIPPED
    steps = plan(chain, in_place=shipped)
    prev = None
    for p in steps:
        rec = json.loads((REPO / p.stage.results).read_text())["config"]
        assert recorded_key(rec) == _config_key(p.config), p.stage.name
        if shipped or prev is None:
            expected_init = prev or p.stage.init_from
            assert rec["init_from"] == expected_init, (p.stage.name, rec["init_from"])
        else:   # an unshipped chain's earlier runs may have kept a checkpoint elsewhere under outputs/
            assert Path(rec["init_from"]).name == Path(prev).name, (p.stage.name, rec["init_from"])
        prev = p.stage.checkpoint if shipped else p.config.checkpoint_dir
    if shipped:
        assert (REPO / steps[-1].stage.checkpoint / "model.safetensors").is_file()
        assert all(p.done for p in steps)           # so --in-place on this checkout runs nothing


def test_unshipped_chain_runs_out_of_place_and_fills_its_workdir():
    """A chain whose checkpoints are not committed refuses --in-place with the fix, and "{workdir}" in a
    stage's flags becomes that stage's output folder (the lift chain's second DAgger round aggregates the
    first round's hand-overs)."""
    with pytest.raises(ValueError, match="without --in-place"):
        plan("lift_box_gr1", in_place=True)
    cfgs = {p.stage.name: p.config for p in plan("lift_box_gr1")}
    work = "outputs/chains/lift_box_gr1/lift_gr1"
    assert cfgs["tiny_lift_gr1_dagger2"].aggregate_recovery_from == (work,)
    assert cfgs["tiny_lift_gr1_dagger2"].output_dir == work and cfgs["tiny_lift_gr1_dagger2"].recovery_round == 0


@pytest.mark.parametrize("chain", sorted(CHAINS))
def test_replay_steps_gives_each_stage_its_recorded_step_counts(chain, monkeypatch):
    """--replay-steps: every stage (and its grounding pretext) trains for the steps its committed record
    ran, not for a time budget; everything else is the stage's recorded configuration."""
    monkeypatch.chdir(REPO)
    for p, r in zip(plan(chain, replay_steps=True), plan(chain)):
        train = json.loads((REPO / p.stage.results).read_text())["train"]
        assert (p.config.max_steps, p.config.train_minutes) == (train["steps"], 0.0), p.stage.name
        assert p.config.grounding_max_steps == (train.get("grounding") or {}).get("steps", 0), p.stage.name
        same = {k: v for k, v in _config_key(p.config).items() if k not in ("max_steps", "train_minutes",
                                                                             "grounding_max_steps")}
        assert same == {k: v for k, v in _config_key(r.config).items() if k in same}
        assert "--max-steps" in p.config.command and "--train-minutes 40" not in p.config.command
    with pytest.raises(ValueError, match="--in-place"):
        plan(chain, in_place=True, replay_steps=True)


def test_chain_rejects_bad_stages():
    with pytest.raises(ValueError, match="names no earlier stage"):
        plan("t", stages=(Stage("b", "@a", "w", "--embodiments so100", "r.json"),))
    with pytest.raises(ValueError, match="which the chain sets"):
        plan("t", stages=(Stage("a", "x", "w", "--embodiments so100 --output-dir elsewhere", "r.json"),))
    with pytest.raises(SystemExit):            # argparse error naming the flag to drop
        main(["--chain", "pick_place_so100", "--train-minutes", "3"])


_TINY = ("--embodiments so100 --expert-episodes 3 --teleop-episodes 1 --video-episodes 0 --heldout-episodes 1 "
         "--max-steps 3 --train-minutes 0 --batch-size 4 --eval-episodes 0 --video-dir none")


@pytest.mark.slow
def test_chain_runs_stages_in_order_then_skips_and_reruns_what_changed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)            # the chain writes under ./outputs/chains/<chain>/
    root = str(REPO / "data_samples/checkpoints/tiny_base")
    stages = (Stage("a", root, "w", _TINY + " --learning-rate 1e-4", "unused.json"),
              Stage("b", "@a", "w", _TINY + " --learning-rate 5e-5", "unused.json"))
    logs: list[str] = []
    rows = run_chain("t", stages=stages, log=logs.append)
    assert [r["ran"] for r in rows] == [True, True]
    res_b = json.loads(Path("outputs/chains/t/results/b.json").read_text())
    assert res_b["config"]["init_from"] == "outputs/chains/t/checkpoints/a"      # b starts from a
    assert res_b["train"]["steps"] == 3 and any("reusing its datasets" in s for s in logs)
    assert (tmp_path / "outputs/chains/t/checkpoints/b/model.safetensors").is_file()

    assert [r["ran"] for r in run_chain("t", stages=stages, log=logs.append)] == [False, False]
    changed = (stages[0], Stage("b", "@a", "w", _TINY + " --learning-rate 2e-5", "unused.json"))
    assert [r["ran"] for r in run_chain("t", stages=changed, log=logs.append)] == [False, True]
    assert json.loads(Path("outputs/chains/t/results/b.json").read_text())["config"]["learning_rate"] == 2e-5
    # a shipped chain keeps only its last checkpoint: the earlier stage's results still count, nothing runs
    shutil.rmtree("outputs/chains/t/checkpoints/a")
    assert [r["ran"] for r in run_chain("t", stages=changed, log=logs.append)] == [False, False]


def test_dry_run_prints_every_stage_command_and_runs_nothing(tmp_path, monkeypatch, capsys):
    from groot_kit.recipes.chain import main
    monkeypatch.chdir(tmp_path)                     # a fresh clone's state: no stage done yet
    assert main(["--chain", "lift_box_gr1", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("python scripts/pretrain_tiny.py ") == 3 and "--init-from data_samples/checkpoints/tiny_base" in out
    assert out.strip().endswith("tiny_lift_gr1 (would run), tiny_lift_gr1_dagger (would run), "
                                "tiny_lift_gr1_dagger2 (would run)")
    assert not (tmp_path / "outputs").exists()
