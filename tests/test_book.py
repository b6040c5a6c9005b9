"""`make book`: the static offline HTML site, opened in headless Chromium (Python Playwright driving
Debian's chromium; never `playwright install`).

Builds the book from the notebooks the notebook tests execute (one fast-mode run per session, see
conftest.executed_notebook), then checks on every page: each plotly output is drawn by the inline
plotly.js and has a static PNG that decodes, no stderr output, and no request leaves the machine.
"""
from __future__ import annotations

import json
import shutil

import pytest

from groot_kit.book import build_book, prepare_notebook
from groot_kit.notebooks import list_notebooks

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("notebooks")]

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
NOTEBOOKS = list_notebooks()


@pytest.fixture(scope="module")
def book(executed_notebook, tmp_path_factory):
    if shutil.which("chromium") is None:
        pytest.skip("Debian chromium not installed (apt-get install -y chromium)")
    for path in NOTEBOOKS:
        executed_notebook(path)
    out = tmp_path_factory.mktemp("book")
    manifest = build_book(out, executed_dir=executed_notebook.folder, notebooks=NOTEBOOKS)
    return out, manifest


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_every_notebook_has_a_page_and_the_index_links_them(book, browser):
    out, manifest = book
    assert manifest["failed"] == [] and manifest["png_error"] is None, manifest
    assert [p["name"] for p in manifest["pages"]] == [p.stem for p in NOTEBOOKS]
    page = browser.new_page()
    page.goto((out / "index.html").as_uri())
    links = page.eval_on_selector_all("a", "els => els.map(e => e.getAttribute('href'))")
    assert sorted(links) == sorted(f"{p.stem}.html" for p in NOTEBOOKS)
    headings = " ".join(page.locator("h2").all_inner_texts())
    assert all(k in headings for k in ("data pyramid", "dual system", "Cross-embodiment"))
    page.close()


@pytest.mark.parametrize("name", [p.stem for p in NOTEBOOKS])
def test_page_shows_its_figures_offline_without_stderr(book, browser, name):
    out, manifest = book
    info = next(p for p in manifest["pages"] if p["name"] == name)
    assert info["figures"] > 0, f"{name}: no plotly figure on the page"
    page = browser.new_page()
    remote = []
    page.on("request", lambda r: remote.append(r.url) if r.url.startswith(("http://", "https://")) else None)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto((out / f"{name}.html").as_uri(), wait_until="load")
    page.wait_for_function(f"document.querySelectorAll('.gk-figure .js-plotly-plot').length >= {info['figures']}",
                           timeout=60_000)
    assert page.locator(".gk-figure").count() == info["figures"]
    decoded = page.eval_on_selector_all(".gk-static", "imgs => imgs.filter(i => i.complete && i.naturalWidth > 0).length")
    assert decoded == info["figures"] == info["pngs"], f"{name}: {decoded} of {info['figures']} PNG fallbacks decode"
    assert page.locator('[data-mime-type="application/vnd.jupyter.stderr"]').count() == 0
    assert remote == [], f"{name}: the page fetched {remote[:3]}"
    assert errors == [], f"{name}: script errors {errors[:3]}"
    page.close()


def test_static_fallback_needs_no_javascript(book, browser):
    # Without scripts (a mail client, a locked-down viewer) the PNGs are what the reader sees.
    out, _ = book
    ctx = browser.new_context(java_script_enabled=False)
    page = ctx.new_page()
    page.goto((out / f"{NOTEBOOKS[0].stem}.html").as_uri())
    visible = page.eval_on_selector_all(".gk-static", "imgs => imgs.filter(i => i.naturalWidth > 0 && i.offsetParent !== null).length")
    assert visible == page.locator(".gk-figure").count() > 0
    ctx.close()


def test_executed_notebooks_carry_png_for_nbconvert_and_github(book):
    out, manifest = book
    nb = json.loads((out / "executed" / f"{NOTEBOOKS[0].stem}.ipynb").read_text())
    bundles = [o["data"] for c in nb["cells"] for o in c.get("outputs", []) if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert bundles and all("image/png" in b for b in bundles)
    assert "widgets" not in nb["metadata"]


def test_widgets_become_a_note_and_stderr_is_counted():
    nb = {"metadata": {"widgets": {"state": {}}}, "cells": [{"cell_type": "code", "source": "", "outputs": [
        {"output_type": "display_data", "metadata": {},
         "data": {"application/vnd.jupyter.widget-view+json": {"model_id": "x"}, "text/plain": "VBox()"}},
        {"output_type": "display_data", "metadata": {},
         "data": {"application/vnd.jupyter.widget-view+json": {"model_id": "y"}, "text/plain": "train: 100%|##| 30/30"}},
        {"output_type": "stream", "name": "stderr", "text": "[libx264 @ 0x1] frame I:5\n"}]}]}
    prepared, stats = prepare_notebook(nb, renderer=None)
    assert stats == {"figures": 0, "pngs": 0, "widgets": 2, "stderr": 1}
    outs = prepared["cells"][0]["outputs"]
    assert "make lab" in outs[0]["data"]["text/html"]
    assert outs[1]["data"]["text/html"] == "<pre>train: 100%|##| 30/30</pre>"  # a progress bar keeps its text
    assert "widgets" not in prepared["metadata"]
