"""Multi-process sim recording (shards merged with lerobot's aggregate_datasets) and sampled image stats."""
import json
import os
from dataclasses import dataclass

import numpy as np
import pytest

from groot_kit.data import DataError, EncoderOptions, GrootDataset, open_dataset, write_dataset
from groot_kit.data.sim_data import modality_for, record_sim_dataset, sim_episodes
from groot_kit.embodiment import load_embodiment

SIZE = 64


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    root = tmp_path_factory.mktemp("par") / "reach"
    fig = record_sim_dataset(root, "so100", "reach", 4, image_size=SIZE, seed=0, workers=2)
    return root, fig


def test_two_workers_merge_into_one_dataset(sharded):
    root, fig = sharded
    spec = load_embodiment("so100")
    assert fig["workers"] == 2 and fig["path"] == str(root) and fig["frames_per_s"] > 0
    info = open_dataset(root)
    meta = info.groot
    eps = meta["episodes"]
    lengths = [e["length"] for e in eps]
    assert info.num_episodes == len(eps) == 4
    assert info.num_frames == sum(lengths) == meta["frames"] == fig["frames"]
    assert [e["episode_index"] for e in eps] == [0, 1, 2, 3]
    assert [e["provenance"]["seed"] for e in eps] == [0, 1, 2, 3]  # shard 1 continues workers=1's seeds
    assert meta["workers"] == 2 and [p["episodes"] for p in meta["parts"]] == [2, 2]
    assert meta["embodiment"] == "so100" and meta["encoder"]["stats_max_side"] == 24
    f = info.features
    assert f["observation.state"]["shape"][0] == spec.state_dim and f["action"]["shape"][0] == spec.action_dim
    for cam in spec.cameras:
        assert tuple(f[f"observation.images.{cam}"]["shape"]) == (SIZE, SIZE, 3)
    assert json.loads((root / "meta/modality.json").read_text()) == modality_for(spec).to_dict()
    assert not [p.name for p in root.parent.iterdir() if p.name.startswith(".")]  # no shard/tmp folders left


def test_sharded_dataset_loads_and_decodes_second_shard(sharded):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root, _ = sharded
    lr = LeRobotDataset("local/reach", root=root)
    lengths = [e["length"] for e in open_dataset(root).groot["episodes"]]
    assert list(lr.meta.episodes["length"]) == lengths and lr.num_frames == sum(lengths)
    # episode 3 was recorded by the worker process: its frames must decode from the merged videos at the
    # right timestamps, i.e. match a fresh render of the same seed (up to H.264 loss)
    truth = next(iter(sim_episodes("so100", "reach", 1, image_size=SIZE, seed=3)))
    first = int(lr.meta.episodes["dataset_from_index"][3])
    for t in (0, lengths[3] - 1):
        item = lr[first + t]
        assert int(item["episode_index"]) == 3 and int(item["frame_index"]) == t
        for cam in ("front", "wrist"):
            got = item[f"observation.images.{cam}"].numpy().transpose(1, 2, 0)
            assert got.shape == (SIZE, SIZE, 3)
            err = np.abs(got - truth.frames[cam][t] / 255.0).mean()
            assert err < 0.03, (cam, t, err)
    gd = GrootDataset(root, embodiment_id=1, image_size=32)
    s = gd[len(gd) - 1]
    assert len(gd) == sum(lengths) and s["episode_index"] == 3 and s["pixel_values"].shape == (2, 3, 32, 32)
    assert s["state_mask"].sum() == 6 and s["action_mask"][0].sum() == 6


def test_sampled_image_stats_match_lerobots(tmp_path):
    from lerobot.datasets import compute_stats

    original = compute_stats.auto_downsample_height_width
    spec = load_embodiment("so100")
    eps = list(sim_episodes("so100", "pick_place", 2, image_size=SIZE, seed=0))  # ~130 frames each
    stats = {}
    for side in (24, None):
        root = tmp_path / f"side{side}"
        write_dataset(eps, root, modality_for(spec), fps=int(spec.control_hz), robot_type="so100",
                      encoder=EncoderOptions(stats_max_side=side))
        stats[side] = json.loads((root / "meta/stats.json").read_text())
        assert compute_stats.auto_downsample_height_width is original  # swap undone after each write
    for cam in spec.cameras:
        fast, ref = stats[24][f"observation.images.{cam}"], stats[None][f"observation.images.{cam}"]
        for k in ("mean", "std"):  # per channel, in [0, 1] units; measured differences are ~0.001
            np.testing.assert_allclose(np.ravel(fast[k]), np.ravel(ref[k]), atol=0.005, err_msg=f"{cam} {k}")
        assert np.ravel(fast["count"])[0] < np.ravel(ref["count"])[0]  # it did sample fewer pixels
    with pytest.raises(DataError, match="stats_max_side"):
        write_dataset(eps, tmp_path / "bad", modality_for(spec), fps=30, encoder=EncoderOptions(stats_max_side=0))


@pytest.mark.parametrize("bad", [0, -2, 1.5, "2", True, None])
def test_bad_workers_value(tmp_path, bad):
    with pytest.raises(ValueError, match="workers: must be an integer >= 1"):
        record_sim_dataset(tmp_path / "x", "so100", "reach", 2, image_size=SIZE, workers=bad)
    assert not (tmp_path / "x").exists()


def test_overwrite_and_only_success_seed_ranges(tmp_path):
    root = tmp_path / "x"
    root.mkdir()
    (root / "old.txt").write_text("old")
    with pytest.raises(DataError, match="already exists"):
        record_sim_dataset(root, "so100", "reach", 2, image_size=SIZE, workers=2)
    fig = record_sim_dataset(root, "so100", "reach", 2, image_size=SIZE, workers=2, overwrite=True,
                             only_success=True)
    assert fig["workers"] == 2 and not (root / "old.txt").exists()
    eps = open_dataset(root).groot["episodes"]
    # with only_success a shard starting at episode k tries seeds from 3k (up to 3 tries per episode)
    assert [e["provenance"]["seed"] for e in eps] == [0, 3] and all(e["success"] for e in eps)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]


@dataclass
class _FailsInWorker(EncoderOptions):
    """Encoder options that break only in a process other than the one that made them."""

    parent_pid: int = 0

    def lerobot_kwargs(self):
        if os.getpid() != self.parent_pid:
            raise RuntimeError("boom in the worker")
        return super().lerobot_kwargs()


def test_worker_failure_names_shard_and_cleans_up(tmp_path):
    root = tmp_path / "ds"
    with pytest.raises(RuntimeError, match=r"shard 1 of 2 \(episodes 1\.\.1, seeds from 1.*boom in the worker"):
        record_sim_dataset(root, "so100", "reach", 2, image_size=SIZE, workers=2,
                           encoder=_FailsInWorker(parent_pid=os.getpid()))
    assert list(tmp_path.iterdir()) == []  # no dataset, no shard or temp folders
