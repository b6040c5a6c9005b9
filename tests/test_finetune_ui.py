"""The fine-tuning widget app in a real browser: JupyterLab in headless Chromium through Playwright.

Opens a small notebook that builds `FinetuneApp(fast=True)`, runs it, clicks Train and checks that
the live loss curve (plotly FigureWidget) gets points and the status text counts the steps; then
clicks Roll out and checks a success rate is shown.
Needs Debian's `chromium` (apt-get install chromium) and the Python `playwright` package; skipped
otherwise.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    if shutil.which("chromium") is None:
        pytest.skip("Debian chromium not installed (apt-get install -y chromium)")
    pytest.importorskip("playwright")
    port = _free_port()
    env = dict(os.environ, MUJOCO_GL="egl", HF_HUB_OFFLINE="1", JUPYTER_PLATFORM_DIRS="1")
    jupyter = Path(sys.executable).with_name("jupyter")
    cmd = [str(jupyter) if jupyter.exists() else "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
           f"--port={port}", "--IdentityProvider.token=", "--ServerApp.password=", f"--ServerApp.root_dir={tmp_path}",
           "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(tmp_path / "jupyter.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(url + "/api/status", timeout=1)
                break
            except Exception:
                if proc.poll() is not None:
                    raise RuntimeError("jupyter lab exited: " + (tmp_path / "jupyter.log").read_text()[-2000:])
                time.sleep(0.5)
        yield url, tmp_path
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.mark.xdist_group("notebooks")   # not beside a notebook execution: two kernels starved the page
@pytest.mark.timeout(300)
def test_train_button_updates_live_curve(lab):
    from playwright.sync_api import sync_playwright
    url, root = lab
    _notebook(root / "finetune_app.ipynb", root / "app_out")
    t0 = time.time()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(120_000)   # no wait in this test may block for ever
            page.goto(f"{url}/lab/tree/finetune_app.ipynb", timeout=60_000)
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel",
                                   timeout=60_000)
            page.wait_for_function("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
                                   ".status === 'idle'", timeout=60_000)
            # start run-all without awaiting its promise (it resolves only when every cell has run)
            page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
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
        finally:
            browser.close()
    assert time.time() - t0 < 180
