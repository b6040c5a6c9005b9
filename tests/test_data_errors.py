"""Bad input: one clear DataError naming the field and the fix."""
import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from groot_kit.data import DataError, GrootDataset, ModalityConfig, open_dataset, write_dataset
from groot_kit.data.toy import toy_episodes, toy_modality


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    root = tmp_path_factory.mktemp("e") / "good"
    write_dataset(toy_episodes(2, T=20, size=32), root, toy_modality(), fps=10)
    return root


def copy(good, tmp_path):
    dst = tmp_path / "ds"
    shutil.copytree(good, dst)
    return dst


def test_missing_path(tmp_path):
    with pytest.raises(DataError, match="does not exist.*Fix:"):
        open_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="info.json.*missing"):
        open_dataset(tmp_path / "empty")


@pytest.mark.parametrize("text,match", [
    ("{not json", r"modality.json: is not valid JSON"),
    ('{"action": {"a": {"start": 0, "end": 3}}}', r"'state'.*section 'state' is missing"),
    ('{"state": {"pos": {"start": 0}}, "action": {"a": {"start": 0, "end": 3}}}', r"state.pos: needs integer 'start' and 'end'"),
    ('{"state": {"pos": {"start": 0, "end": "2"}}, "action": {"a": {"start": 0, "end": 3}}}', r"state.pos: start/end must be integers"),
    ('{"state": {"pos": {"start": 0, "end": 2}, "g": {"start": 1, "end": 3}}, "action": {"a": {"start": 0, "end": 3}}}', r"overlap"),
    ('{"state": {"pos": {"start": 2, "end": 2}}, "action": {"a": {"start": 0, "end": 3}}}', r"empty or negative slice"),
])
def test_malformed_modality(good, tmp_path, text, match):
    ds = copy(good, tmp_path)
    (ds / "meta/modality.json").write_text(text)
    with pytest.raises(DataError, match=match):
        open_dataset(ds)


def test_inconsistent_modality_dims(good, tmp_path):
    ds = copy(good, tmp_path)
    m = json.loads((ds / "meta/modality.json").read_text())
    m["state"]["gripper"]["end"] = 4
    (ds / "meta/modality.json").write_text(json.dumps(m))
    with pytest.raises(DataError, match=r"state: slices end at 4 but feature 'observation.state' has 3 dims"):
        open_dataset(ds)


def test_missing_feature(good, tmp_path):
    ds = copy(good, tmp_path)
    m = json.loads((ds / "meta/modality.json").read_text())
    m["video"]["wrist"] = {"original_key": "observation.images.wrist"}
    (ds / "meta/modality.json").write_text(json.dumps(m))
    with pytest.raises(DataError, match=r"video feature 'observation.images.wrist' \(camera 'wrist'\) is missing"):
        open_dataset(ds)
    m["video"].pop("wrist")
    m["action"]["delta"]["original_key"] = "action.eef"
    (ds / "meta/modality.json").write_text(json.dumps(m))
    with pytest.raises(DataError, match=r"feature 'action.eef' named by modality action is missing"):
        open_dataset(ds)


def test_dimension_mismatch_with_embodiment(good):
    with pytest.raises(DataError, match=r"action.delta: data has 2 dims, embodiment 'so100' expects 5"):
        GrootDataset(good, expected_dims=({"pos": 2, "gripper": 1}, {"delta": 5, "gripper": 1}, "so100"))
    eps = toy_episodes(1, T=5, size=16)
    bad_mod = ModalityConfig.from_dims({"pos": 2, "gripper": 1}, {"delta": 5}, ["front"])
    with pytest.raises(DataError, match=r"episode 0.actions: dim 3 != modality action dim 5"):
        write_dataset(eps, good.parent / "x", bad_mod, fps=10)
    assert not (good.parent / "x").exists()
    with pytest.raises(DataError, match=r"action: 3 dims > model max 2.*max_action_dim"):
        GrootDataset(good, max_action_dim=2)


def test_nan_in_parquet(good, tmp_path):
    ds = copy(good, tmp_path)
    f = sorted((ds / "data").glob("**/*.parquet"))[0]
    t = pq.read_table(f)
    acts = t.column("action").to_pylist()
    acts[7][1] = float("nan")
    t = t.set_column(t.schema.get_field_index("action"), "action",
                     pa.array(acts, type=t.schema.field("action").type))
    pq.write_table(t, f)
    with pytest.raises(DataError, match=r"column 'action'.*NaN/inf at row 7 \(episode 0, frame 7\).*Fix: repair or drop"):
        open_dataset(ds)


def test_nan_episode_rejected_before_writing(tmp_path):
    eps = toy_episodes(1, T=5, size=16)
    eps[0].states[2, 0] = np.nan
    with pytest.raises(DataError, match=r"episode 0.states: NaN/inf at frame 2"):
        write_dataset(eps, tmp_path / "n", toy_modality(), fps=10)
    assert not (tmp_path / "n").exists() and not list(tmp_path.glob(".n.tmp*"))


def test_existing_target_and_v2(good, tmp_path):
    with pytest.raises(DataError, match="already exists.*overwrite=True"):
        write_dataset(toy_episodes(1, T=5, size=16), good, toy_modality(), fps=10)
    ds = copy(good, tmp_path)
    info = json.loads((ds / "meta/info.json").read_text())
    info["codebase_version"] = "v2.1"
    (ds / "meta/info.json").write_text(json.dumps(info))
    # a v2 label on a v3 layout: v2 folders are converted on open, and this one lacks v2's meta files
    with pytest.raises(DataError, match=r"meta/episodes.jsonl: missing. Fix: a v2 dataset needs"):
        open_dataset(ds)


def test_video_shorter_than_episode_is_caught(good, tmp_path):
    """A video segment one frame short of its episode (what lerobot's encoder leaves when it drops a
    frame) is reported with the camera and episode, and the kit's default never drops."""
    from groot_kit.data import EncoderOptions
    from groot_kit.data.writer import check_video_lengths
    assert check_video_lengths(good) == 2
    assert EncoderOptions().lerobot_kwargs()["encoder_queue_maxsize"] == 0  # unbounded: wait, never drop
    bad = tmp_path / "short"
    shutil.copytree(good, bad)
    f = sorted((bad / "meta" / "episodes").glob("*/*.parquet"))[0]
    t = pq.read_table(f).to_pandas()
    cam = next(c for c in t.columns if c.startswith("videos/") and c.endswith("/to_timestamp"))
    t.loc[1, cam] -= 1 / 10  # fps 10: one frame less
    pq.write_table(pa.Table.from_pandas(t, preserve_index=False), f)
    with pytest.raises(DataError, match=r"episode 1.*19 frames for 20 steps.*queue_frames=0"):
        check_video_lengths(bad)
