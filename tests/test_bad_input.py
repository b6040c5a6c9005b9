"""Every malformed batch gives one clear InputError that names the field and the fix."""
import pytest
import torch

from groot_kit.config import ConfigError, get_preset, VisionConfig
from groot_kit.model.policy import InputError, dummy_batch


def _bad(batch, **changes):
    b = dict(batch)
    b.update(changes)
    return b


@pytest.mark.parametrize("case,match", [
    ("state_1d", r"batch\['state'\] must be a float tensor \[B, 64\]"),
    ("state_short", r"batch\['state'\] has 10 dims; zero-pad it to 64"),
    ("state_too_many", r"batch\['state'\] has 70 dims, more than the padded maximum 64"),
    ("images_wrong_size", r"batch\['pixel_values'\] must be float \[B=2, V, 3, 64, 64\].*resize"),
    ("images_channels_last", r"batch\['pixel_values'\]"),
    ("too_many_views", r"2 camera views but vlm.num_views is 1"),
    ("embodiment_out_of_range", r"embodiment_id'\] has ids \[32\] outside 0..31"),
    ("embodiment_negative", r"embodiment_id'\] has ids \[-1\]"),
    ("embodiment_float", r"embodiment_id'\] must be a long tensor"),
    ("nan_state", r"batch\['state'\] contains NaN"),
    ("nan_images", r"batch\['pixel_values'\] contains NaN"),
    ("missing_state", r"batch is missing \['state'\]"),
    ("instruction_count", r"batch\['instruction'\] must be a list of 2 strings"),
])
def test_inference_batch_errors(tiny_policy, case, match):
    b = dummy_batch(tiny_policy, 2)
    bad = {
        "state_1d": lambda: _bad(b, state=torch.zeros(64)),
        "state_short": lambda: _bad(b, state=torch.zeros(2, 10)),
        "state_too_many": lambda: _bad(b, state=torch.zeros(2, 70)),
        "images_wrong_size": lambda: _bad(b, pixel_values=torch.rand(2, 1, 3, 96, 96)),
        "images_channels_last": lambda: _bad(b, pixel_values=torch.rand(2, 1, 64, 64, 3)),
        "too_many_views": lambda: _bad(b, pixel_values=torch.rand(2, 2, 3, 64, 64)),
        "embodiment_out_of_range": lambda: _bad(b, embodiment_id=torch.tensor([0, 32])),
        "embodiment_negative": lambda: _bad(b, embodiment_id=torch.tensor([-1, 0])),
        "embodiment_float": lambda: _bad(b, embodiment_id=torch.tensor([0.0, 1.0])),
        "nan_state": lambda: _bad(b, state=torch.full((2, 64), float("nan"))),
        "nan_images": lambda: _bad(b, pixel_values=b["pixel_values"].clone().fill_(float("nan"))),
        "missing_state": lambda: {k: v for k, v in b.items() if k != "state"},
        "instruction_count": lambda: _bad(b, instruction=["only one"]),
    }[case]()
    with pytest.raises(InputError, match=match) as e:
        tiny_policy.predict_action_chunk(bad)
    assert "\n" not in str(e.value)  # one clear line


@pytest.mark.parametrize("case,match", [
    ("action_too_many_dims", r"batch\['action'\] has 40 dims, more than the padded maximum 32"),
    ("action_wrong_horizon", r"batch\['action'\] must be \[B, H, Dmax_a\] = \[2, 16, 32\]"),
    ("mask_mismatch", r"batch\['action_mask'\] must match"),
    ("nan_action", r"batch\['action'\] contains NaN"),
    ("missing_action", r"batch is missing \['action'"),
])
def test_training_batch_errors(tiny_policy, case, match):
    b = dummy_batch(tiny_policy, 2, training=True)
    bad = {
        "action_too_many_dims": lambda: _bad(b, action=torch.zeros(2, 16, 40)),
        "action_wrong_horizon": lambda: _bad(b, action=torch.zeros(2, 8, 32)),
        "mask_mismatch": lambda: _bad(b, action_mask=torch.ones(2, 16, 7, dtype=torch.bool)),
        "nan_action": lambda: _bad(b, action=b["action"].clone().fill_(float("nan"))),
        "missing_action": lambda: {k: v for k, v in b.items() if k != "action"},
    }[case]()
    with pytest.raises(InputError, match=match):
        tiny_policy(bad)


def test_config_validation_names_the_fix():
    with pytest.raises(ConfigError, match="multiple of vision.patch_size"):
        VisionConfig(image_size=100, patch_size=14)
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        get_preset("huge")
    cfg = get_preset("tiny").to_dict()
    cfg["action_head"]["cross_attention_dim"] = 128
    from groot_kit.config import GrootConfig
    with pytest.raises(ConfigError, match="must equal action_head.cross_attention_dim"):
        GrootConfig.from_dict(cfg)
