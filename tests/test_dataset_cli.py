"""`groot-kit dataset inspect | validate | convert | plot` on published-style folders."""
import json

import numpy as np
import pandas as pd
import pytest

import fixtures_datasets as F
from groot_kit.cli import main
from groot_kit.data import open_dataset
from groot_kit.data.convert import CACHE_ENV
from groot_kit.data.inspect import validate


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def gr1(tmp_path_factory):
    return F.gr1_v20(tmp_path_factory.mktemp("d") / "gr1_v20")


def _no_video_set(root, dim=4, **kw):
    keys = {"arm": dim - 1, "gripper": 1}
    mod = {"state": F.slices(keys), "action": F.slices(keys), "video": {}}
    return F.write_v2(root, version="v2.1", fps=10, dim=dim, modality=mod, tasks=["a", "b"], cams={}, **kw)


def _edit(root, ep, fn):
    p = root / f"data/chunk-000/episode_{ep:06d}.parquet"
    df = pd.read_parquet(p)
    fn(df)
    df.to_parquet(p)


def test_validate_clean_and_each_problem(tmp_path, capsys):
    clean = _no_video_set(tmp_path / "clean")
    assert validate(clean) == []
    bad = _no_video_set(tmp_path / "bad", n_eps=4)

    def nan(df):
        s = np.stack(df["observation.state"].to_numpy())
        s[3, 1] = np.nan
        df["observation.state"] = list(s)

    def backwards(df):
        df["timestamp"] = df["timestamp"].to_numpy()[::-1].copy()

    def idle(df):
        s = np.stack(df["observation.state"].to_numpy())
        s[:12] = s[0]
        df["observation.state"] = list(s)

    def jumpy(df):
        df["timestamp"] = df["timestamp"] * 3

    _edit(bad, 0, nan)
    _edit(bad, 1, backwards)
    _edit(bad, 2, idle)
    mod = json.loads((bad / "meta/modality.json").read_text())
    mod["state"]["gripper"]["end"] = 5  # past the 4-dim feature
    (bad / "meta/modality.json").write_text(json.dumps(mod))
    found = {(p.level, p.where.rsplit(" -> ", 1)[-1]): p for p in validate(bad)}
    assert "NaN/inf" in found[("error", "column 'observation.state'")].problem
    assert "not increasing in episode 1" in found[("error", "timestamp")].problem
    assert "motionless" in found[("warning", "observation.state")].problem
    assert "slices end at 5 but feature 'observation.state' has 4 dims" in found[("error", "state")].problem
    assert main(["dataset", "validate", str(bad)]) == 1
    assert "ERROR" in capsys.readouterr().out
    same = _no_video_set(tmp_path / "same", n_eps=1)
    _edit(same, 0, lambda df: df.__setitem__("action", df["observation.state"]))
    _edit(same, 0, jumpy)
    msgs = {p.problem for p in validate(same)}
    assert "identical to observation.state in every frame" in msgs
    assert any("steps of" in m and "fps 10 says 0.1 s" in m for m in msgs)
    assert any("only one instruction" in p.problem for p in validate(F.so100_v21_av1(tmp_path / "so100")))


def test_inspect_convert_plot(gr1, tmp_path, capsys):
    before = F.tree_digest(gr1)
    assert main(["dataset", "inspect", str(gr1), "--data-config", "gr1_arms_only", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["episodes"] == 3 and s["frames"] == 72 and s["codebase_version"] == "v2.0"
    assert s["state_keys"]["right_arm"] == [22, 29, 7] and [r["key"] for r in s["stats"]][:2] == ["state.left_arm",
                                                                                                   "state.right_arm"]
    assert any("side_view" in p["where"] for p in s["problems"])
    assert main(["dataset", "inspect", str(gr1)]) == 0
    assert "left_leg[13:19]" in capsys.readouterr().out
    dst = tmp_path / "v3"
    assert main(["dataset", "convert", str(gr1), str(dst)]) == 0
    info = open_dataset(dst)
    assert info.info["codebase_version"] == "v3.0" and info.num_frames == 72 and list(info.modality.video) == ["ego_view"]
    assert main(["dataset", "convert", str(gr1), str(dst)]) == 2  # exists: refused, not overwritten
    out = tmp_path / "p.html"
    assert main(["dataset", "plot", str(gr1), "--data-config", "gr1_arms_only", "--episode", "1",
                 "--output", str(out)]) == 0
    html = out.read_text()
    assert "state.right_hand[5]" in html and "video.ego_view" in html and "left_leg" not in html
    assert F.tree_digest(gr1) == before
