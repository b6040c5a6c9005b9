"""check_* helpers tell a right answer from a wrong one, recomputing the truth with the kit."""
from groot_kit.exercises import check_mask_ones, check_tier_shares


def test_check_mask_ones(capsys):
    assert check_mask_ones(32, action_dims=2) is True          # 16 horizon steps x 2 real dims
    assert check_mask_ones(64, action_dims=2) is False
    assert check_mask_ones(16 * 6, action_dims=6) is True
    assert check_mask_ones(None) is False
    assert "Right." in capsys.readouterr().out


def test_check_tier_shares():
    weights = {"teleop": 1, "synthetic": 0, "video": 0}
    assert check_tier_shares({"teleop": 1.0, "synthetic": 0.0, "video": 0.0}, weights) is True
    assert check_tier_shares({"teleop": 0.5, "synthetic": 0.3, "video": 0.2}, weights) is False
