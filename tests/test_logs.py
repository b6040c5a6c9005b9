"""Third-party log noise is silenced in one place (groot_kit.logs), for every entry point."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

WRITE_TOY_DATASET = """
import sys
import groot_kit  # the package import is the one place the logs are quieted
from groot_kit.data import write_dataset
from groot_kit.data.toy import toy_episodes, toy_modality
write_dataset(list(toy_episodes(2, T=12)), sys.argv[1], toy_modality(), fps=10, overwrite=True)
print("ok")
"""


def _write(tmp_path, verbose: bool) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    if verbose:
        env["GROOT_KIT_VERBOSE_LOGS"] = "1"
    return subprocess.run([sys.executable, "-c", WRITE_TOY_DATASET, str(tmp_path / "ds")], env=env,
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)


def test_writing_a_dataset_prints_no_encoder_logs_or_progress_bars(tmp_path):
    quiet = _write(tmp_path, verbose=False)
    assert quiet.returncode == 0 and quiet.stdout.strip() == "ok", quiet.stderr
    assert "libx264" not in quiet.stderr and "Map:" not in quiet.stderr, quiet.stderr[:2000]
    assert quiet.stderr.strip() == "", quiet.stderr[:2000]


def test_verbose_switch_keeps_the_libraries_output(tmp_path):
    # The same write with GROOT_KIT_VERBOSE_LOGS=1 shows what the quiet run removed, so the test
    # above cannot pass merely because nothing would have been printed anyway.
    loud = _write(tmp_path, verbose=True)
    assert loud.returncode == 0, loud.stderr
    assert "libx264" in loud.stderr and "Map:" in loud.stderr
