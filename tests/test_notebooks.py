"""Every notebook follows the conventions and runs headless in fast mode (papermill), printing no
stderr output (no red blocks in Lab), with paths taken from the repo root whatever the cwd."""

import pytest

from groot_kit.notebooks import REPO, check_conventions, list_notebooks, repo_path, run_notebook

NOTEBOOKS = list_notebooks()


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 2


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_conventions(path):
    assert check_conventions(path) == []


@pytest.mark.slow
@pytest.mark.xdist_group("notebooks")
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_fast_mode(path, executed_notebook):
    result = executed_notebook(path)  # shared with tests/test_book.py
    assert result["ok"], result["error"]
    assert result["metrics"], "metrics.json is empty"
    assert result["stderr"] == [], "stderr output in the executed notebook:\n" + "\n".join(result["stderr"])


def test_repo_path_is_independent_of_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert repo_path("outputs/00_quickstart") == REPO / "outputs" / "00_quickstart"
    assert repo_path(tmp_path / "x") == tmp_path / "x"  # absolute paths are kept
    assert (repo_path("data_samples/checkpoints/tiny_base", must_exist="base") / "config.json").is_file()
    with pytest.raises(FileNotFoundError, match=str(REPO / "no" / "such" / "base")):
        repo_path("no/such/base", must_exist="BASE_CHECKPOINT")


def test_no_notebook_parameter_points_outside_the_repo_root():
    # "../data_samples" only worked from notebooks/; repo_path makes every relative path repo-rooted
    for path in NOTEBOOKS:
        assert '"../' not in path.read_text(), f"{path.name}: a '../' path; use a repo-relative one"


@pytest.mark.slow
def test_missing_base_checkpoint_is_an_error_naming_the_path(tmp_path):
    nb = REPO / "notebooks" / "04_finetune_custom_arm_lora.ipynb"
    result = run_notebook(nb, tmp_path, fast=True, timeout=300, parameters={"BASE_CHECKPOINT": "no/such/base"})
    assert not result["ok"]
    assert "FileNotFoundError" in result["error"] and str(REPO / "no" / "such" / "base") in result["error"], result["error"]
