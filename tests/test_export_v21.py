"""v3.0 -> GR00T-LeRobot v2.1 export: the layout Isaac-GR00T's trainer reads, and back through our own reader."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

import fixtures_datasets as F
from groot_kit.cli import main
from groot_kit.data import DataError, GrootDataset
from groot_kit.data.convert import CACHE_ENV
from groot_kit.data.export_v21 import TASK_COLUMN, export_gr00t_v21
from groot_kit.paths import repo_path

SRC = repo_path("data_samples/so100_teleop")   # a kit recording: 3 episodes, 2 cameras, sub-task strings


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    before = F.tree_digest(SRC)
    dst = tmp_path_factory.mktemp("v21") / "so100_teleop_v21"
    assert main(["dataset", "convert", str(SRC), str(dst), "--to", "gr00t-v2.1"]) == 0
    assert F.tree_digest(SRC) == before   # the source is only read
    return dst


def test_layout_is_gr00t_v21(exported):
    info = json.loads((exported / "meta/info.json").read_text())
    assert info["codebase_version"] == "v2.1" and info["total_episodes"] == 3 and info["total_frames"] == 577
    tasks = [json.loads(line) for line in (exported / "meta/tasks.jsonl").read_text().splitlines()]
    eps = [json.loads(line) for line in (exported / "meta/episodes.jsonl").read_text().splitlines()]
    assert [e["length"] for e in eps] == [190, 189, 198] and len(eps[0]["tasks"]) == 1
    text = {t["task_index"]: t["task"] for t in tasks}
    for e in eps:
        i = e["episode_index"]
        df = pd.read_parquet(exported / f"data/chunk-000/episode_{i:06d}.parquet")
        assert len(df) == e["length"] and list(df["frame_index"]) == list(range(e["length"]))
        # GR00T reads language from annotation.* columns holding indices into tasks.jsonl
        assert {text[int(t)] for t in df[TASK_COLUMN]} == set(e["tasks"])
        assert {text[int(t)] for t in df["annotation.human.subtask"]} <= {"reach", "grasp", "lift", "move", "place",
                                                                         "release"}
        assert np.stack(df["observation.state"]).dtype == np.float32 and bool(df["next.done"].iloc[-1])
        for cam in ("observation.images.front", "observation.images.wrist"):
            assert (exported / f"videos/chunk-000/{cam}/episode_{i:06d}.mp4").stat().st_size > 0
    mod = json.loads((exported / "meta/modality.json").read_text())
    assert mod["annotation"] == {"human.task_description": {}, "human.subtask": {}}
    stats = [json.loads(line) for line in (exported / "meta/episodes_stats.jsonl").read_text().splitlines()]
    assert len(stats[0]["stats"]["action"]["mean"]) == 6


def test_round_trip_through_our_reader(exported):
    """Read back (v2.1 -> lerobot's v3 converter): same numbers, same language, frames within codec noise."""
    a, b = GrootDataset(SRC, image_size=64), GrootDataset(exported, image_size=64)
    assert len(a) == len(b) == 577
    for i in (0, 100, 189, 190, 400, 576):
        x, y = a.ds[i], b.ds[i]
        for k in ("observation.state", "action"):
            assert torch.equal(x[k], y[k]), (i, k)
        assert a.instruction(x) == b.instruction(y) and a.subtask(x) == b.subtask(y) != ""
        for cam in ("observation.images.front", "observation.images.wrist"):
            assert (x[cam] - y[cam]).abs().mean() < 0.03, (i, cam)


def test_refusals_name_the_fix(exported, tmp_path):
    with pytest.raises(DataError, match="already exists.*--overwrite"):
        export_gr00t_v21(SRC, exported)
    with pytest.raises(DataError, match="not v3.0"):
        export_gr00t_v21(exported, tmp_path / "again")
    assert not (tmp_path / "again").exists()
