import json
import subprocess
import sys

from groot_kit.cli import main


def test_info_lists_presets(capsys):
    assert main(["info", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert set(rows) == {"tiny", "small", "n1_2b", "n1_5_3b"}
    assert rows["n1_2b"]["system1_action_head"] == 854_736_896


def test_predict_and_convert_round_trip(tmp_path, tiny_policy, capsys):
    tiny_policy.save_pretrained(tmp_path / "ck")
    assert main(["predict", "--checkpoint", str(tmp_path / "ck")]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["shape"] == [1, 16, 32]
    assert main(["convert", str(tmp_path / "ck"), str(tmp_path / "nv"), "--to", "nvidia"]) == 0
    assert (tmp_path / "nv" / "model.safetensors.index.json").exists()
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(tmp_path / "nv")]) == 0
    assert json.loads(capsys.readouterr().out) == first


def test_bad_checkpoint_is_one_line_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "groot_kit.cli", "predict", "--checkpoint", str(tmp_path / "missing")],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert "does not exist" in r.stderr and "Traceback" not in r.stderr
