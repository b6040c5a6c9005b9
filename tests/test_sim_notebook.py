"""Notebook 05 follows the notebook conventions (structure only; executing it is the notebook suite's job)."""

from pathlib import Path

import nbformat

NB = Path(__file__).resolve().parents[1] / "notebooks" / "05_mujoco_rollouts.ipynb"


def test_notebook05_conventions():
    nb = nbformat.read(NB, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0] is code[0]
    names = [line.split(":")[0] for line in code[0].source.splitlines() if line.strip()]
    assert names[:4] == ["FAST_MODE", "SEED", "DEVICE", "OUTPUT_DIR"]
    assert all("#" in line for line in code[0].source.splitlines() if line.strip())
    src = "\n".join(c.source for c in nb.cells)
    assert "GROOT_KIT_FAST" in src and "metrics.json" in src
    assert "## Part 2: the pretrained policy in closed loop" in src  # trained policy + System 2 sub-task text
    assert "coming with the training issue" not in src
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)
