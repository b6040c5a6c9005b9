"""The fine-tuning widget app in a real browser: JupyterLab in headless Chromium through Playwright.

Opens a small notebook that builds `FinetuneApp(fast=True)`, runs it, clicks Train and checks that
the live loss curve (plotly FigureWidget) gets points and the status text counts the steps; then
clicks Roll out and checks a success rate is shown.
Needs Debian's `chromium` and the Python `playwright` package (see tests/lab_browser.py).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab_browser import chromium, jupyter_lab, open_notebook, require_browser, start_run_all

pytestmark = pytest.mark.slow


def _notebook(path: Path, out_dir: Path) -> None:
    cells = [
        "import os\nos.environ['MUJOCO_GL'] = 'egl'\nos.environ['HF_HUB_OFFLINE'] = '1'\n"
        "import torch\ntorch.set_num_threads(1)",
        "from groot_kit.viz.finetune_app import FinetuneApp\n"
        f"app = FinetuneApp(output_dir={str(out_dir)!r}, fast=True)\napp.widget",
    ]
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "source": c, "outputs": [], "execution_count": None}
                    for c in cells],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))


@pytest.fixture
def lab(tmp_path):
    require_browser()
    with jupyter_lab(tmp_path) as url:
        yield url, tmp_path


@pytest.mark.xdist_group("notebooks")   # not beside a notebook execution: two kernels starved the page
@pytest.mark.timeout(300)
def test_train_button_updates_live_curve(lab):
    url, root = lab
    _notebook(root / "finetune_app.ipynb", root / "app_out")
    with chromium() as browser:
        page = open_notebook(browser, url, "finetune_app.ipynb")
        start_run_all(page)
        train = page.locator(".jupyter-widgets button", has_text="Train")
        train.wait_for(state="visible", timeout=90_000)
        status = page.locator(".groot-train-status")
        assert "not trained" in status.inner_text()
        train.click()
        # live: the status counts steps and the curve gets points while / after training
        page.wait_for_function(
            "() => { const s = document.querySelector('.groot-train-status');"
            " return s && /step \\d+ \\/ 20/.test(s.innerText); }", timeout=120_000)
        page.wait_for_function(
            "() => [...document.querySelectorAll('.js-plotly-plot')].some("
            "d => d.data && d.data[0] && d.data[0].x && d.data[0].x.length >= 1)", timeout=60_000)
        page.wait_for_function("() => document.querySelector('.groot-train-status').innerText.startsWith('done')",
                               timeout=120_000)
        n_points = page.evaluate("() => Math.max(...[...document.querySelectorAll('.js-plotly-plot')]"
                                 ".map(d => (d.data && d.data[0] && d.data[0].x) ? d.data[0].x.length : 0))")
        assert n_points == 10, n_points  # fast mode: 20 steps logged every 2
        assert "step 20 / 20" in status.inner_text()
        # roll out: a success rate appears
        page.locator(".jupyter-widgets button", has_text="Roll out").click()
        page.wait_for_function("() => [...document.querySelectorAll('.jupyter-widgets')].some("
                               "e => /success rate \\d+%/.test(e.innerText))", timeout=120_000)
