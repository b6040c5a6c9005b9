"""Bring your own data: published GR00T/LeRobot layouts load unchanged, keys are selected GR00T style,
a new robot fine-tunes from the base in a free slot, and open-loop evaluation runs on the selection."""
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import fixtures_datasets as F
from groot_kit.data import DataError, GrootDataset, open_dataset
from groot_kit.data.convert import CACHE_ENV
from groot_kit.data.data_config import DataConfig, available

BASE = Path(__file__).resolve().parents[1] / "data_samples/checkpoints/tiny_base"
ARMS = "left_arm,right_arm,left_hand,right_hand"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    return {name: getattr(F, name)(root / name) for name in ("gr1_v20", "so100_v21_av1", "bimanual_v21", "v30_extra")}


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_corpus_is_small(corpus):
    for name, root in corpus.items():
        assert sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) < 2_000_000, name


def test_gr1_v20_opens_unchanged_and_is_cached(corpus, cache):
    src = corpus["gr1_v20"]
    before = F.tree_digest(src)
    with pytest.warns(UserWarning, match=r"observation.images.side_view have no files; skipped"):
        info = open_dataset(src)
    assert F.tree_digest(src) == before  # the source folder is never written
    assert info.root.parent == cache and info.source == src and info.fps == 20
    assert info.modality.state_dim == 44 and list(info.modality.video) == ["ego_view"]
    assert "observation.images.side_view" not in info.features
    data = pd.read_parquet(next((info.root / "data").rglob("*.parquet")))
    assert np.array_equal(data["frame_index"].to_numpy(), np.tile(np.arange(24), 3))  # derived
    assert np.array_equal(data["index"].to_numpy(), np.arange(72))
    stamp = (info.root / "meta/info.json").stat().st_mtime_ns
    again = open_dataset(src)  # reused, not converted again
    assert again.root == info.root and (info.root / "meta/info.json").stat().st_mtime_ns == stamp
    assert len(list(cache.iterdir())) == 1


def test_selection_gathers_the_chosen_dims(corpus):
    src = corpus["gr1_v20"]
    dc = DataConfig.load("gr1_arms_only")
    ds = GrootDataset(src, image_size=32, select=dc)
    assert list(ds.modality.state) == ["left_arm", "right_arm", "left_hand", "right_hand"]
    assert ds.modality.state_dim == ds.modality.action_dim == 26
    raw = pd.read_parquet(src / "data/chunk-000/episode_000001.parquet")
    act = np.stack(raw["action"].to_numpy())  # float64 in the source
    want = np.concatenate([act[:, 0:7], act[:, 22:29], act[:, 7:13], act[:, 29:35]], 1)
    got = ds.raw_actions(np.arange(24, 48))
    assert got.shape == (24, 26) and np.allclose(got, want, atol=1e-6)
    s = ds[24 + 5]
    assert s["action_mask"][0].sum() == 26 and s["state_mask"].sum() == 26
    back = ds.stats.unnormalize_flat("action", s["action"][:, :26], ds.modality)
    assert np.allclose(back[0].numpy(), want[5], atol=1e-4)
    assert s["instruction"] == F.GR1_TASK  # from the annotation column's task index
    assert s["pixel_values"].shape == (1, 3, 32, 32)  # 48x64 video resized to the model's input


def test_wrong_keys_list_the_keys_that_exist(corpus):
    with pytest.raises(DataError, match=r"state_keys: 'tail' is not a state key.*use keys that exist: left_arm, "
                                        r"left_hand, left_leg, neck, right_arm"):
        open_dataset(corpus["gr1_v20"], select=DataConfig(state_keys=["left_arm", "tail"]))
    with pytest.raises(DataError, match=r"video_keys: 'side_view' is not a camera.*ego_view"):
        open_dataset(corpus["gr1_v20"], select=DataConfig(video_keys=["side_view"]))
    with pytest.raises(DataError, match=r"language_key.*use one of: task, annotation.human.action.task_description"):
        open_dataset(corpus["gr1_v20"], select=DataConfig(language_key="annotation.human.coarse"))


def test_data_config_files(tmp_path):
    assert {"gr1_arms_only", "so100", "so101_bimanual", "kit_so100", "kit_panda7", "kit_gr1_upper"} <= set(available())
    for name in available():
        DataConfig.load(name)
    bad = tmp_path / "bad.yaml"
    bad.write_text("state_keys: [a]\nnormalisation: {state.a: q99}\n")
    with pytest.raises(DataError, match=r"bad.yaml -> normalisation: unknown field"):
        DataConfig.load(bad)
    bad.write_text("state_keys: [a]\nnormalization: {state.a: q95}\n")
    with pytest.raises(DataError, match=r"normalization.state.a: unknown mode 'q95'"):
        DataConfig.load(bad)
    with pytest.raises(DataError, match="one of: gr1_arms_only"):
        DataConfig.load("gr2_full")


def test_partly_missing_video_is_refused(corpus, tmp_path):
    src = tmp_path / "gr1"
    shutil.copytree(corpus["gr1_v20"], src)
    (src / "videos/chunk-000/observation.images.ego_view/episode_000001.mp4").unlink()
    with pytest.raises(DataError, match=r"episode_000001.mp4: missing, while 2 of 3 episodes have"):
        open_dataset(src)


def test_44_dims_without_selection_is_refused_with_the_fix(corpus, tmp_path, capsys):
    from groot_kit.cli import main
    rc = main(["train", "--dataset", str(corpus["gr1_v20"]), "--init-from", str(BASE), "--max-steps", "1",
               "--output-dir", str(tmp_path / "o"), "--progress", "false"])
    err = capsys.readouterr().err
    assert rc == 2 and "44 dims > model max 32" in err and "--action-keys" in err and "left_leg=6" in err


CASES = {
    # name: extra train flags, expected action keys
    "gr1_v20": (["--state-keys", ARMS, "--action-keys", ARMS, "--video-keys", "ego_view",
                 "--language-key", "annotation.human.action.task_description", "--lora"],
                ["left_arm", "right_arm", "left_hand", "right_hand"]),
    "so100_v21_av1": (["--data-config", "so100"], ["single_arm", "gripper"]),
    "bimanual_v21": (["--data-config", "so101_bimanual", "--lora"],
                     ["left_arm", "left_gripper", "right_arm", "right_gripper"]),
    "v30_extra": ([], ["action"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_load_finetune_evaluate(corpus, tmp_path, name):
    """Each published-style dataset, unchanged: 20 steps from the base in a free slot -> open-loop eval."""
    from groot_kit.cli import main
    from groot_kit.model.policy import GrootPolicy
    from groot_kit.eval import evaluate_open_loop

    src = corpus[name]
    before = F.tree_digest(src)
    flags, keys = CASES[name]
    out = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["train", "--dataset", str(src), "--init-from", str(BASE), "--max-steps", "20",
                     "--batch-size", "4", "--output-dir", str(out), "--progress", "false", *flags]) == 0
        assert F.tree_digest(src) == before
        policy = GrootPolicy.from_pretrained(out / "final")
        robot = src.name if name != "v30_extra" else "koch"
        proc = policy.get_processor(robot)
        assert list(proc.modality.action) == keys
        assert proc.embodiment_id not in (1, 2, 24)  # a free slot: the base's robots keep theirs
        base = GrootPolicy.from_pretrained(BASE)
        for n, p in base.named_parameters():  # the base's own robots are untouched
            if n.endswith((".W", ".b")) and "lora" not in n:
                assert p[[1, 2, 24]].equal(dict(policy.named_parameters())[n][[1, 2, 24]]), n
        readme = (out / "final/README.md").read_text()
        assert f"embodiment slot: {proc.embodiment_id}" in readme and keys[0] in readme
        res = evaluate_open_loop(policy, src, max_episodes=2)
    d = proc.modality.action_dim
    assert res["embodiment"] == robot and len(res["mse_per_dim"]) == d and np.isfinite(res["mse"])
    assert res["episodes"][0]["pred"].shape == res["episodes"][0]["gt"].shape == (24, d)
    if name == "gr1_v20":  # acceptance: 26 of 44 dims, adapters beside the merged checkpoint
        assert d == 26 and (out / "adapter/adapter_model.safetensors").exists()
        with warnings.catch_warnings():  # and `groot-kit eval --checkpoint --dataset` on the same selection
            warnings.simplefilter("ignore")
            assert main(["eval", "--checkpoint", str(out / "final"), "--dataset", str(src), "--output-dir",
                         str(tmp_path / "ev"), "--max-open-loop-episodes", "1"]) == 0
        ev = json.loads((tmp_path / "ev/eval.json").read_text())["open_loop"][str(src)]
        assert list(ev["mse_per_key"]) == keys and (tmp_path / f"ev/open_loop_{name}.html").exists()


def test_processor_records_selection_and_modes(corpus):
    """The processor saved with the checkpoint carries the key selection and per-key modes, so serve /
    export take observations of the selected keys only."""
    from groot_kit.data.processor import GrootProcessor
    from groot_kit.model.policy import GrootPolicy
    from groot_kit.train.run import NewRobot, build_datasets

    policy = GrootPolicy.from_pretrained(BASE)
    dc = DataConfig.load("gr1_arms_only").with_overrides(normalization={"action.left_hand": "mean_std",
                                                                        "state.right_arm": "q99"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = build_datasets([str(corpus["gr1_v20"])], policy, data_config=dc, new_robot=NewRobot(policy, 7, "mean"))
    assert ds.embodiment_id == 7
    d = json.loads(json.dumps(policy.normalization["processors"]["gr1_v20"]))  # as saved in normalization.json
    proc = GrootProcessor.from_dict(d)
    assert d["modality"]["state"]["right_arm"] == {"start": 7, "end": 14, "source": [22, 29]}
    assert d["modality"]["language_key"] == "annotation.human.action.task_description"
    assert proc.stats.groups["action"]["left_hand"].mode == "mean_std"
    assert proc.stats.groups["state"]["right_arm"].mode == "q99"
    assert proc.stats.groups["action"]["left_arm"].mode == "min_max"
    obs = {f"state.{k}": np.zeros(s.dim, np.float32) for k, s in proc.modality.state.items()}
    obs["video.ego_view"] = np.zeros((48, 64, 3), np.uint8)
    batch = proc(obs)
    assert batch["state_mask"].sum() == 26 and batch["action_mask"][0, 0].sum() == 26
    out = proc.decode_action(np.zeros((16, 32), np.float32))
    assert list(out) == ["action.left_arm", "action.right_arm", "action.left_hand", "action.right_hand"]
    with pytest.raises(Exception, match="slot_id=7 is already used"):
        NewRobot(policy, 7, "mean")("another", ds.info)


def test_v30_phantom_camera_is_read_through_a_view(corpus, tmp_path, cache):
    src = tmp_path / "v30"
    shutil.copytree(corpus["v30_extra"], src)
    info = json.loads((src / "meta/info.json").read_text())
    info["features"]["observation.images.wrist"] = dict(info["features"]["observation.images.front"])
    (src / "meta/info.json").write_text(json.dumps(info))
    before = F.tree_digest(src)
    with pytest.warns(UserWarning, match="observation.images.wrist have no files; skipped"):
        ds = GrootDataset(src, image_size=32)
    assert ds.info.root.parent == cache and ds.info.source == src and list(ds.modality.video) == ["front"]
    assert ds[3]["pixel_values"].shape == (1, 3, 32, 32) and F.tree_digest(src) == before


def test_gaps_in_episode_numbering(corpus, tmp_path):
    """An episode dropped from episodes.jsonl (its files left behind): the rest is renumbered 0..N-1."""
    src = tmp_path / "bi"
    shutil.copytree(corpus["bimanual_v21"], src)
    eps = [json.loads(l) for l in (src / "meta/episodes.jsonl").read_text().splitlines()]
    (src / "meta/episodes.jsonl").write_text("".join(json.dumps(e) + "\n" for e in eps if e["episode_index"] != 1))
    ds = GrootDataset(src, image_size=32)
    assert ds.info.num_episodes == 2 and len(ds) == 48
    want = np.stack(pd.read_parquet(src / "data/chunk-000/episode_000002.parquet")["action"].to_numpy())
    assert np.allclose(ds.raw_actions(np.arange(24, 48)), want) and int(ds[30]["episode_index"]) == 1
