"""JupyterLab on 127.0.0.1 driven by headless Chromium (Playwright): shared by the browser tests.

Needs Debian's `chromium` (apt-get install chromium) and the Python `playwright` package; a test
that asks for them is skipped otherwise (scripts/install_system_deps.sh installs both in CI).
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
REPO = Path(__file__).resolve().parents[1]


def require_browser() -> None:
    if shutil.which("chromium") is None:
        pytest.skip("Debian chromium not installed (apt-get install -y chromium)")
    pytest.importorskip("playwright")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def jupyter_lab(root: Path, **env: str) -> Iterator[str]:
    """A JupyterLab server on loopback serving `root` (no token, no news, no update checks); yields its URL.
    Kernels inherit `env` and import this checkout's groot_kit first."""
    port = _free_port()
    path_env = os.pathsep.join([str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    full_env = dict(os.environ, MUJOCO_GL="egl", HF_HUB_OFFLINE="1", JUPYTER_PLATFORM_DIRS="1", PYTHONPATH=path_env,
                    **env)
    jupyter = Path(sys.executable).with_name("jupyter")
    cmd = [str(jupyter) if jupyter.exists() else "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
           f"--port={port}", "--IdentityProvider.token=", "--ServerApp.password=", f"--ServerApp.root_dir={root}",
           "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log_path = root / "jupyter.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env, cwd=root)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(240):
                try:
                    urllib.request.urlopen(url + "/api/status", timeout=1)
                    break
                except Exception:
                    if proc.poll() is not None:
                        raise RuntimeError("jupyter lab exited: " + log_path.read_text()[-2000:]) from None
                    time.sleep(0.5)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextmanager
def chromium() -> Iterator:
    """A headless Chromium (Playwright) browser."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def open_notebook(browser, url: str, name: str, timeout_ms: int = 180_000):
    """A new page with notebook `name` open in Lab and its kernel idle; every wait has a timeout.
    The waits are generous: on a loaded 2-core machine Lab 4.6 took 30-40 s to activate its plugins
    and almost a minute to give the notebook a kernel (measured 2026-12-07)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(timeout_ms)
    page.goto(f"{url}/lab/tree/{name}?reset", timeout=timeout_ms)   # ?reset: no tabs restored from an earlier page
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                           " && window.jupyterapp.shell.currentWidget.sessionContext"
                           " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                           " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel", timeout=timeout_ms)
    page.wait_for_function("() => { const w = window.jupyterapp.shell.currentWidget;"
                           " const k = w && w.sessionContext && w.sessionContext.session"
                           " && w.sessionContext.session.kernel; return k && k.status === 'idle'"
                           " && w.context && w.context.path.endsWith(" + repr(name) + "); }", timeout=timeout_ms)
    return page


def start_run_all(page) -> None:
    """Start Run All without awaiting its promise (it resolves only when every cell has run, and an
    awaited command blocked past pytest's timeout under load)."""
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
