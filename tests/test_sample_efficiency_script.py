"""The sample-efficiency recipe: scratch rows of an earlier sweep are reused only when every setting
they depend on matches (they never read the base checkpoint, so a new base need not retrain them);
its flags come from the config dataclasses."""
import dataclasses
import json

import pytest

from groot_kit.recipes.sample_efficiency import SampleEfficiencyConfig, kept_scratch_rows, main


def _cfg(f, **ft):
    base = SampleEfficiencyConfig(demos=[20], methods=["lora"], keep_scratch_from=str(f))
    return dataclasses.replace(base, finetune=dataclasses.replace(base.finetune, **ft))


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


def test_matching_scratch_rows_are_kept(tmp_path):
    f = _earlier(tmp_path)
    rows = kept_scratch_rows(_cfg(f))
    assert rows == [{"method": "scratch", "demos": 20, "success_rate": 0.2, "kept_from": str(f)}]


def test_other_settings_or_missing_rows_are_refused(tmp_path):
    f = _earlier(tmp_path, lr=3e-4)
    with pytest.raises(ValueError, match=r"its lr differ.*Fix"):
        kept_scratch_rows(_cfg(f))
    f = _earlier(tmp_path)
    with pytest.raises(ValueError, match=r"scratch_steps"):
        kept_scratch_rows(_cfg(f, steps=800))
    with pytest.raises(ValueError, match=r"eval_seed=100000 vs 300000"):   # tuning-range rows vs reported scenes
        kept_scratch_rows(_cfg(f, eval_seed=300_000))
    with pytest.raises(ValueError, match=r"no scratch row for \[50\] demos"):
        kept_scratch_rows(dataclasses.replace(_cfg(f), demos=[20, 50]))
    with pytest.raises(ValueError, match="no such file"):
        kept_scratch_rows(_cfg(tmp_path / "nope.json"))
    with pytest.raises(ValueError, match="both give the scratch rows"):
        SampleEfficiencyConfig(methods=["lora", "scratch"], keep_scratch_from=str(f))


def test_flags_are_generated_from_the_configs(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for flag in ("--demos", "--methods", "--keep-scratch-from", "--num-joints", "--rank", "--steps", "--seed"):
        assert flag in text
    assert "(default: 10,20,50)" in text and "(default: 16)" in text            # recipe defaults shown
    assert "outputs/sample_efficiency" in text                                  # the sweep's own defaults
    assert main(["--methods", "lora,bogus"]) == 2
    assert "unknown method" in capsys.readouterr().err


def test_base_reference_is_the_results_file_that_wrote_that_base():
    """The ceiling a sweep is compared with comes from the pretraining run of ITS base (it once always
    read the reach base's file, even for a pick_place base)."""
    from groot_kit.recipes.sample_efficiency import base_reference
    reach = base_reference("data_samples/checkpoints/tiny_base")
    assert reach["source"] == "benchmarks/results/pretrain_tiny.json" and reach["per_embodiment"]["so100"] is not None
    pick = base_reference("data_samples/checkpoints/tiny_pick_so100_dagger2")
    assert pick["source"] == "benchmarks/results/pretrain_pick_place_so100_dagger2.json"
    assert base_reference("outputs/no_such_base") is None and base_reference(None) is None
