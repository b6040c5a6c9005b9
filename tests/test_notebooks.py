"""Every notebook follows the conventions and runs headless in fast mode (papermill)."""
import pytest

from groot_kit.notebooks import check_conventions, list_notebooks, run_notebook

NOTEBOOKS = list_notebooks()


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 2


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_conventions(path):
    assert check_conventions(path) == []


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_fast_mode(path, tmp_path):
    result = run_notebook(path, tmp_path, fast=True, timeout=600)
    assert result["ok"], result["error"]
    assert result["metrics"], "metrics.json is empty"
