"""The trainer: a real LeRobot dataset on disk, tune flags, kill-and-resume continuity,
corrupted checkpoints, and `accelerate launch` with two CPU processes (gloo)."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from groot_kit.model.policy import CheckpointError, GrootPolicy
from groot_kit.train.trainer import TrainConfig, Trainer, load_metrics, validate_checkpoint

REPO = Path(__file__).resolve().parents[1]
AUG = ("--image-shift", "2", "--color-jitter", "0.1")


@pytest.fixture(scope="module")
def toy_dataset(tmp_path_factory):
    from groot_kit.data import write_dataset
    from groot_kit.data.toy import toy_episodes, toy_modality
    root = tmp_path_factory.mktemp("data") / "toy"
    return write_dataset(toy_episodes(2, T=12, size=64, seed=0), root, toy_modality(), fps=10,
                         embodiment="toy", embodiment_id=2)


def _train_cmd(dataset, out, steps, extra=()):
    return [sys.executable, "-m", "groot_kit.train.run", "--dataset", str(dataset), "--output-dir", str(out),
            "--max-steps", str(steps), "--batch-size", "4", "--save-every", "5", "--log-every", "1",
            "--progress", "false", "--seed", "3", *extra]


def test_trainer_respects_tune_flags_and_writes_checkpoints(toy_dataset, tmp_path):
    from groot_kit.train.run import build_datasets
    torch.manual_seed(0)
    policy = GrootPolicy("tiny")
    ds = build_datasets([str(toy_dataset)], policy)
    dit_before = {k: v.clone() for k, v in policy.action_head.model.state_dict().items()}
    enc_before = policy.action_head.state_encoder.layer1.W.detach().clone()
    cfg = TrainConfig(output_dir=str(tmp_path / "run"), max_steps=6, batch_size=4, save_every=3, log_every=2,
                      tune_diffusion_model=False, progress=False)
    trainer = Trainer(policy, ds, cfg)
    assert trainer.optimizer.defaults["fused"] is True  # train.optim: the fused AdamW kernel on the CPU
    history = trainer.train()
    assert [h["step"] for h in history] == [2, 4, 6]
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in history)
    assert all(torch.equal(v, policy.action_head.model.state_dict()[k]) for k, v in dit_before.items())
    assert not torch.equal(enc_before, policy.action_head.state_encoder.layer1.W)
    cks = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert cks == ["step_000003", "step_000006"]
    for name in cks:
        validate_checkpoint(tmp_path / "run" / "checkpoints" / name)
    # the processor (normalisation stats for the embodiment) travels with the checkpoint
    saved = GrootPolicy.from_pretrained(tmp_path / "run" / "checkpoints" / "step_000006" / "policy")
    assert saved.get_processor("toy").embodiment_id == 2
    # warm-up then cosine decay
    assert history[0]["lr"] > history[-1]["lr"]
    # rows report the share of reads that missed the sample cache (the time budget waits for it to fill)
    assert history[0]["cache_miss"] > 0.5


def test_rows_report_cache_misses_falling_to_zero_once_every_sample_is_decoded(toy_dataset, tmp_path):
    from groot_kit.train.run import build_datasets
    policy = GrootPolicy("tiny")
    ds = build_datasets([str(toy_dataset)], policy)
    steps = -(-3 * len(ds) // 4)          # three passes over the data at batch 4
    cfg = TrainConfig(output_dir=str(tmp_path / "run"), max_steps=steps, batch_size=4, save_every=10_000,
                      log_every=1, progress=False)
    history = Trainer(policy, ds, cfg).train()
    misses = [h["cache_miss"] for h in history]
    assert misses[0] == 1.0 and misses[-1] == 0.0


# The killed run SIGKILLs itself right after logging step 8 (3 steps past the step-5 checkpoint):
# a real kill at a known point, so the test cannot race a fast machine to the end of the run.
_KILL_AT_STEP_8 = """
import os, signal, sys
from groot_kit.train import trainer as T
_log = T.Trainer._log
def log_then_die(self, row, tb):
    _log(self, row, tb)
    if row["step"] == 8:
        os.kill(os.getpid(), signal.SIGKILL)
T.Trainer._log = log_then_die
from groot_kit.train.run import main
main(sys.argv[1:])
"""


@pytest.mark.slow
def test_killed_run_resumes_on_the_same_loss_curve(toy_dataset, tmp_path):
    """Image augmentation is on: its random draws must continue where they stopped too."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    ref = subprocess.run(_train_cmd(toy_dataset, tmp_path / "ref", 14, AUG), env=env, capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr[-2000:]
    cmd = _train_cmd(toy_dataset, tmp_path / "killed", 14, AUG)
    killed = subprocess.run([sys.executable, "-c", _KILL_AT_STEP_8, *cmd[3:]], env=env, capture_output=True,
                            text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert (tmp_path / "killed" / "checkpoints" / "step_000005").exists()
    assert [r["step"] for r in load_metrics(tmp_path / "killed")] == list(range(1, 9))
    resumed = subprocess.run(_train_cmd(toy_dataset, tmp_path / "killed", 14, AUG), env=env, capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = load_metrics(tmp_path / "ref"), load_metrics(tmp_path / "killed")
    assert [r["step"] for r in b] == list(range(1, 15))
    for ra, rb in zip(a, b):
        assert ra["loss"] == pytest.approx(rb["loss"], rel=1e-6, abs=1e-7), (ra["step"], ra["loss"], rb["loss"])


def test_corrupted_checkpoint_is_detected(toy_dataset, tmp_path):
    from groot_kit.train.run import build_datasets
    policy = GrootPolicy("tiny")
    ds = build_datasets([str(toy_dataset)], policy)
    cfg = TrainConfig(output_dir=str(tmp_path / "run"), max_steps=2, batch_size=2, save_every=2, progress=False)
    Trainer(policy, ds, cfg).train()
    ck = tmp_path / "run" / "checkpoints" / "step_000002"
    weights = ck / "policy" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    cfg2 = TrainConfig(output_dir=str(tmp_path / "run"), max_steps=4, batch_size=2, progress=False)
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        Trainer(GrootPolicy("tiny"), ds, cfg2).train()
    (ck / "trainer_state.json").unlink()
    with pytest.raises(CheckpointError, match="lacks trainer_state.json; delete the folder"):
        validate_checkpoint(ck)


def test_checkpoint_of_another_run_is_not_resumed(toy_dataset, tmp_path):
    """A leftover checkpoint from different settings must not be silently continued."""
    from groot_kit.train.run import build_datasets
    policy = GrootPolicy("tiny")
    ds = build_datasets([str(toy_dataset)], policy)
    out = str(tmp_path / "run")
    Trainer(policy, ds, TrainConfig(output_dir=out, max_steps=2, batch_size=2, save_every=2, progress=False)).train()
    other = TrainConfig(output_dir=out, max_steps=4, batch_size=2, learning_rate=1e-3, progress=False)
    with pytest.raises(CheckpointError, match=r"different run \(differs in: config\).*Fix: delete"):
        Trainer(GrootPolicy("tiny"), ds, other).train()
    # the same settings with a longer budget resume (max_steps may change, e.g. a time budget)
    same = TrainConfig(output_dir=out, max_steps=3, batch_size=2, progress=False)
    t = Trainer(GrootPolicy("tiny"), ds, same)
    t.train()
    assert t.step == 3 and [h["step"] for h in t.history][0] <= 2


def test_dataset_that_does_not_match_the_model_is_refused(tmp_path):
    import numpy as np
    from groot_kit.data import EpisodeData, DataError, write_dataset
    from groot_kit.data.modality import ModalityConfig
    from groot_kit.train.run import build_datasets
    mod = ModalityConfig.from_dims({"joints": 70}, {"joints": 7}, ["front"])
    ep = EpisodeData(states=np.zeros((4, 70), np.float32), actions=np.zeros((4, 7), np.float32),
                     frames={"front": np.zeros((4, 64, 64, 3), np.uint8)}, instruction="x", subtasks=None,
                     tier="teleop", provenance={}, success=True)
    root = write_dataset([ep], tmp_path / "wide", mod, fps=10, embodiment_id=0)
    with pytest.raises(DataError, match="70 dims > model max 64"):
        build_datasets([str(root)], GrootPolicy("tiny"))


@pytest.mark.slow
def test_accelerate_launch_two_cpu_processes(toy_dataset, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # `--cpu` would pick accelerate's single-process launcher; torchrun (--multi_gpu) on a machine
    # without CUDA gives two CPU ranks, and the trainer's Accelerator(cpu=True) then uses gloo.
    env["CUDA_VISIBLE_DEVICES"] = ""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "groot_kit.train.run",
           *_train_cmd(toy_dataset, tmp_path / "ddp", 4)[3:]]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads([line for line in r.stdout.splitlines() if line.startswith("{")][-1])
    assert summary["steps"] == 4
    state = json.loads((tmp_path / "ddp" / "checkpoints" / "step_000004" / "trainer_state.json").read_text())
    assert state["world_size"] == 2
    assert state["data_position"] == 4 * 4 * 2  # steps x per-process batch x processes
    assert len(load_metrics(tmp_path / "ddp")) == 4  # only the main process logs


def test_datasets_of_one_embodiment_share_normalisation(tmp_path):
    from groot_kit.data import write_dataset
    from groot_kit.data.toy import toy_episodes, toy_modality
    from groot_kit.train.run import build_datasets
    a = write_dataset(toy_episodes(2, T=8, seed=1), tmp_path / "a", toy_modality(), fps=10, embodiment="toy", embodiment_id=2)
    b = write_dataset(toy_episodes(2, T=8, seed=2, tier="synthetic"), tmp_path / "b", toy_modality(), fps=10,
                      embodiment="toy", embodiment_id=2)
    policy = GrootPolicy("tiny")
    mix = build_datasets([str(a), f"{b}:0.5"], policy)
    sa, sb = (d.stats for d in mix.datasets)
    assert sa is sb  # one set of stats for the robot, over both datasets' frames
    lo = sa.groups["state"]["pos"].to_dict()
    assert lo == policy.get_processor("toy").stats.groups["state"]["pos"].to_dict()
    assert mix.weights == [1.0, 0.5]
