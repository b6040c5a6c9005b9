"""data_samples/: every bundled dataset opens; one is regenerated from scratch into a tmp dir."""
import json
from pathlib import Path

import pytest

from groot_kit.data import GrootDataset, open_dataset
from groot_kit.data.samples import SAMPLES, make_sample

ROOT = Path(__file__).resolve().parents[1] / "data_samples"


def test_bundled_samples_cover_embodiments_and_tiers():
    man = json.loads((ROOT / "manifest.json").read_text())
    tiers, embs = set(), set()
    for d in man["datasets"]:
        info = open_dataset(ROOT / d["name"])
        assert info.num_episodes == d["episodes"] and info.num_frames == d["frames"]
        tiers |= set(info.episode_tiers())
        embs.add(info.groot["embodiment"])
    assert tiers == {"teleop", "synthetic", "video"}
    assert embs == {"so100", "panda7", "gr1_upper", "custom_arm"}
    size = sum(f.stat().st_size for f in ROOT.rglob("*") if f.is_file())
    assert size < 20 * 2**20


@pytest.mark.parametrize("name", ["so100_teleop", "so100_video"])
def test_bundled_sample_batches(name):
    ds = GrootDataset(ROOT / name, embodiment_id=1, image_size=32)
    s = ds[len(ds) // 2]
    assert s["pixel_values"].shape == (2, 3, 32, 32)
    if name == "so100_video":
        assert not s["action_mask"].any()
    else:
        assert s["state_mask"].sum() == 6 and s["action_mask"][0].sum() == 6 and s["subtask"]


def test_regenerate_one_sample(tmp_path):
    r = make_sample("custom_arm_expert", tmp_path)
    info = open_dataset(tmp_path / "custom_arm_expert")
    assert r["episodes"] == info.num_episodes == SAMPLES["custom_arm_expert"]["episodes"]
    assert info.episode_tiers() == ["synthetic"] * info.num_episodes
    f = info.features
    from groot_kit.embodiment import load_embodiment
    spec = load_embodiment("custom_arm")
    assert f["observation.state"]["shape"][0] == spec.state_dim and f["action"]["shape"][0] == spec.action_dim
    for cam in spec.cameras:
        assert f[f"observation.images.{cam}"]["shape"][:2] in ([64, 64], (64, 64))
    assert "annotation.human.subtask" in f
    assert info.modality.action_dim == spec.action_dim
