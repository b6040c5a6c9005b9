"""scripts/sample_efficiency.py: scratch rows of an earlier sweep are reused only when every setting
they depend on matches (they never read the base checkpoint, so a new base need not retrain them)."""
import dataclasses
import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("sample_efficiency", REPO / "scripts/sample_efficiency.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _args(**kw):
    base = dict(task="reach", num_cubes=1, seed=0, lr=1e-3, batch_size=32, start_noise=0.3, hold_seconds=0.0,
                image_shift=0, color_jitter=0.0)
    base.update(kw)
    return SimpleNamespace(**base)


def _earlier(tmp_path, **over):
    from groot_kit.train import finetune as F
    r = {"arm": dataclasses.asdict(F.default_arm_spec()), "task": "reach", "num_cubes": 1, "seed": 0,
         "scratch_steps": 1200, "lr": 1e-3, "batch_size": 32, "start_noise": 0.3, "hold_seconds": 0.0,
         "image_shift": 0, "color_jitter": 0.0,
         "rows": [{"method": "lora", "demos": 20, "success_rate": 1.0},
                  {"method": "scratch", "demos": 10, "success_rate": 0.05},
                  {"method": "scratch", "demos": 20, "success_rate": 0.2}]}
    r.update(over)
    f = tmp_path / "earlier.json"
    f.write_text(json.dumps(r))
    return f


def test_matching_scratch_rows_are_kept(script, tmp_path):
    f = _earlier(tmp_path)
    rows = script.kept_scratch_rows(str(f), _args(), 1200, [20])
    assert rows == [{"method": "scratch", "demos": 20, "success_rate": 0.2, "kept_from": str(f)}]


def test_other_settings_or_missing_rows_are_refused(script, tmp_path):
    f = _earlier(tmp_path, lr=3e-4)
    with pytest.raises(SystemExit, match=r"its lr differ.*Fix"):
        script.kept_scratch_rows(str(f), _args(), 1200, [20])
    f = _earlier(tmp_path)
    with pytest.raises(SystemExit, match=r"scratch_steps"):
        script.kept_scratch_rows(str(f), _args(), 800, [20])
    with pytest.raises(SystemExit, match=r"no scratch row for \[50\] demos"):
        script.kept_scratch_rows(str(f), _args(), 1200, [20, 50])
    with pytest.raises(SystemExit, match="no such file"):
        script.kept_scratch_rows(str(tmp_path / "nope.json"), _args(), 1200, [20])
