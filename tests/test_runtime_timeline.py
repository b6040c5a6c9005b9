"""The dual-rate section of notebook 02: a real runtime run's event timeline, and the chunk modes
compared on a recorded episode."""
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
BASE = REPO / "data_samples" / "checkpoints" / "tiny_base"


def test_timeline_of_a_real_run_matches_its_statistics():
    from groot_kit.runtime.demo import run_mujoco_demo
    from groot_kit.viz.rollout_plots import dual_rate_timeline_figure

    run = run_mujoco_demo("so100", "reach", seconds=0.7, system2_hz=10.0, checkpoint=str(BASE), timeline=True)
    tl = run["timeline"]
    assert len(tl["system2"]["start_ms"]) == run["system2"]["count"] >= 2
    assert len(tl["system1"]["start_ms"]) == run["system1_chunks"]["count"] == len(tl["feature_age_ms"])
    assert len(tl["control"]["start_ms"]) == run["control"]["count"] == round(0.7 * run["control_hz"])
    assert len(tl["control_missed"]) == run["control"]["missed_deadlines"]
    starts = np.asarray(tl["control"]["start_ms"])
    assert starts[0] == 0.0 and np.all(np.diff(starts) > 0)
    assert tl["boundaries"] == sorted(tl["boundaries"]) and len(tl["boundaries"]) >= 2
    assert min(tl["feature_age_ms"]) > 0
    fig = dual_rate_timeline_figure(tl)
    assert [t.name for t in fig.data[:3]] == ["System 2 (VLM)", "System 1 (chunk)", "control tick"]


def test_blending_chunks_shrinks_the_jump_at_chunk_boundaries():
    import torch

    from groot_kit.eval.open_loop import recorded_chunk_fn
    from groot_kit.model.policy import GrootPolicy
    from groot_kit.chunking import compare_modes

    policy = GrootPolicy.from_pretrained(BASE)
    chunk_fn, length = recorded_chunk_fn(policy, REPO / "data_samples" / "so100_teleop", episode=0, seed=0)
    assert chunk_fn(0).shape == (16, 6) and length > 16
    assert np.array_equal(chunk_fn(3), chunk_fn(3))  # noise seeded by the step: reproducible
    with pytest.raises(ValueError, match="episode 999"):
        recorded_chunk_fn(policy, REPO / "data_samples" / "so100_teleop", episode=999)
    torch.manual_seed(0)
    modes = compare_modes(chunk_fn, num_steps=min(length, 64), replan_every=4, delay=2)
    assert modes["whole"]["boundary_mean"] > modes["whole"]["inside_mean"]
    assert modes["ensemble"]["boundary_mean"] < modes["whole"]["boundary_mean"]
