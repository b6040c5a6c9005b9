"""`make book`: the notebooks, executed in fast mode, as a static offline HTML site.

    python -m groot_kit.book                      # execute every notebook, build outputs/book/
    python -m groot_kit.book --executed DIR       # reuse notebooks already executed into DIR

Each page is one nbconvert (lab template) export, made self-contained and offline:
* plotly figures are drawn by plotly.js embedded inline in the page (no CDN), and each carries a
  static PNG (kaleido, rendered by Debian's chromium) shown until plotly.js has drawn it, and
  instead of it where scripts do not run; the PNG is also added to the executed notebook's output
  bundle, so nbconvert and GitHub previews of ``executed/*.ipynb`` show the plot;
* ipywidgets (apps, sliders) cannot run without a kernel: they become a short note saying so;
* scripts or styles from the network (require.js, MathJax, widget manager) are removed.
``index.html`` follows the talk: the data pyramid, the dual system, cross-embodiment, then RL and
deployment. ``book.json`` lists per page the number of figures and stderr outputs (the tests read it).
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import html
import json
import re
import shutil
import sys
import time
from pathlib import Path

from groot_kit.notebooks import NOTEBOOK_DIR, REPO, list_notebooks, run_notebook, stderr_outputs

PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
TQDM = re.compile(r"\d+%\|")  # text of a tqdm bar, e.g. "train: 100%|####| 30/30"
# The talk's structure (GR00T N1): which notebooks tell which part.
CHAPTERS = [
    ("Start here", "A whole VLA model in five minutes.", ["00"]),
    ("1 · The data pyramid", "Teleop at the top, synthetic data in the middle, action-free video at the "
     "base, mixed into one pretraining run.", ["01", "03"]),
    ("2 · The dual system", "System 2 (vision-language, ~10 Hz) plans; System 1 (flow-matching DiT, "
     "120 Hz control) turns its features into action chunks, in closed loop.", ["02", "05"]),
    ("3 · Cross-embodiment", "One model, many bodies: a new arm gets a fresh embodiment slot and LoRA, from the "
     "simulator or from a dataset you bring.", ["04", "08"]),
    ("4 · Beyond imitation, and deployment", "RL on top of imitation, and the export to an edge device.",
     ["06", "07"]),
]
EXTERNAL = re.compile(r"<script[^>]*\bsrc=[\"']https?://[^>]*>\s*</script>|<link[^>]*\bhref=[\"']https?://[^>]*>",
                      re.I)
# nbconvert's lab template imports mermaid from a CDN (only when a page has diagrams; ours have none)
MERMAID = re.compile(r"<script type=\"module\">(?:(?!</script>).)*?mermaid(?:(?!</script>).)*?</script>", re.S)
PAGE_JS = """<script>
// Hide each static PNG once plotly.js has drawn its figure; without scripts the PNG stays.
window.addEventListener("load", function () {
  document.querySelectorAll(".gk-figure").forEach(function (f) {
    if (f.querySelector(".js-plotly-plot .main-svg")) { f.querySelector(".gk-static").style.display = "none"; }
  });
});
</script>"""
PAGE_CSS = """<style>
.gk-figure { position: relative; }
.gk-figure .gk-static { max-width: 100%; display: block; }
.gk-figure .plotly-graph-div:not(.js-plotly-plot) { display: none; }
.gk-widget { padding: 8px 12px; border-left: 4px solid #f0ad4e; background: #fdf7ee; font-size: 13px; }
.gk-nav { font: 14px sans-serif; padding: 8px 16px; background: #f4f4f4; }
</style>"""


# ------------------------------------------------------------------------------ static images
class StaticRenderer:
    """Renders plotly figures to PNG with kaleido in one long-lived headless Chromium."""

    def __init__(self, chromium: str | None = None):
        self.chromium = chromium or shutil.which("chromium") or shutil.which("chromium-browser")
        self.error: str | None = None

    def render_all(self, figures: list[dict]) -> list[bytes | None]:
        """PNG bytes per figure (None where rendering failed; ``self.error`` says why)."""
        if not figures:
            return []
        try:
            out = asyncio.run(self._render(figures))
            failed = [i for i, png in enumerate(out) if png is None]
            if failed:  # seen on a loaded machine: a tab had lost kaleido's scripts; a fresh browser draws it
                self.error = None
                for i, png in zip(failed, asyncio.run(self._render([figures[i] for i in failed]))):
                    out[i] = png
            return out
        except Exception as e:  # no chromium, or kaleido missing: pages still build, without PNGs
            self.error = f"{type(e).__name__}: {e}"
            return [None] * len(figures)

    async def _render(self, figures: list[dict]) -> list[bytes | None]:
        import kaleido
        kw = {"path": self.chromium} if self.chromium else {}
        out = []
        # mathjax=False: kaleido would otherwise load MathJax from a CDN (offline it waits and fails)
        async with kaleido.Kaleido(n=1, mathjax=False, timeout=60, **kw) as k:
            for fig in figures:
                layout = fig.get("layout", {})
                opts = {"format": "png", "width": layout.get("width") or 900, "height": layout.get("height") or 450}
                try:
                    out.append(await k.calc_fig(fig, opts=opts))
                except Exception as e:  # one bad figure must not cost the others their images
                    self.error = f"{type(e).__name__}: {e}"
                    out.append(None)
        return out


# ------------------------------------------------------------------------------ one page
def _figure_html(fig: dict, png: bytes | None, n: int) -> str:
    import plotly.io as pio
    div = pio.to_html(fig, include_plotlyjs=False, full_html=False, div_id=f"gk-fig-{n}",
                      config={"responsive": True})
    img = (f'<img class="gk-static" alt="static image of the figure" src="data:image/png;base64,'
           f'{base64.b64encode(png).decode()}"/>' if png else "")
    return f'<div class="gk-figure">{img}{div}</div>'


def prepare_notebook(nb: dict, renderer: StaticRenderer | None) -> tuple[dict, dict]:
    """Add PNG fallbacks and inline plotly HTML to every plotly output, turn widgets into notes.

    Returns (the notebook for nbconvert, stats {figures, pngs, widgets, stderr}).
    """
    outputs = [o for c in nb["cells"] for o in c.get("outputs", []) if "data" in o]
    figs = [o for o in outputs if PLOTLY_MIME in o["data"]]
    pngs = renderer.render_all([o["data"][PLOTLY_MIME] for o in figs]) if renderer else [None] * len(figs)
    for i, (o, png) in enumerate(zip(figs, pngs)):
        if png:
            o["data"]["image/png"] = base64.b64encode(png).decode()
        o["data"]["text/html"] = _figure_html(o["data"][PLOTLY_MIME], png, i)
    widgets = [o for o in outputs if WIDGET_MIME in o["data"] and PLOTLY_MIME not in o["data"]]
    for o in widgets:
        text = "".join(o["data"].get("text/plain", ""))
        if TQDM.search(text):  # a finished progress bar: its text says everything
            o["data"] = {"text/html": f"<pre>{html.escape(text)}</pre>"}
        else:
            o["data"] = {"text/html": '<div class="gk-widget">Interactive widget: it needs a running kernel. Open '
                                      'this notebook in JupyterLab (<code>make lab</code>) to use it.</div>'}
    nb.get("metadata", {}).pop("widgets", None)  # the widget manager would be fetched from a CDN
    stats = {"figures": len(figs), "pngs": sum(p is not None for p in pngs), "widgets": len(widgets),
             "stderr": len(stderr_outputs(nb))}
    return nb, stats


def notebook_page(nb: dict, plotly_js: str, nav: str) -> str:
    """nbconvert's lab-template HTML of a prepared notebook, offline and with plotly.js inline."""
    import nbformat
    from nbconvert import HTMLExporter
    node = nbformat.reads(json.dumps(nb), as_version=4)  # joins list sources, as nbconvert expects
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(node)
    body = MERMAID.sub("", EXTERNAL.sub("", body))
    head = f"{PAGE_CSS}<script>{plotly_js}</script>"
    body = body.replace("</head>", head + "</head>", 1).replace("</body>", PAGE_JS + "</body>", 1)
    return re.sub(r"(<body[^>]*>)", r"\1" + nav.replace("\\", r"\\"), body, count=1)


# ------------------------------------------------------------------------------ the site
def _title_and_goal(nb: dict) -> tuple[str, str]:
    first = "".join(nb["cells"][0]["source"]) if nb["cells"] else ""
    title = next((ln.lstrip("# ").strip() for ln in first.splitlines() if ln.startswith("#")), "notebook")
    goal = re.search(r"\*\*Goal\.\*\*\s*(.+?)(?:\n\n|$)", first, re.S)
    plain = re.sub(r"[*`]", "", goal.group(1)).replace("\n", " ").strip() if goal else ""  # no markdown on the index
    return title, plain


def index_page(pages: list[dict]) -> str:
    by_num = {p["name"][:2]: p for p in pages}
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>groot_kit: the book</title>",
             "<style>body{font:15px/1.5 sans-serif;max-width:860px;margin:2em auto;padding:0 1em}"
             "h2{margin-top:1.6em;border-bottom:1px solid #ddd}.meta{color:#777;font-size:13px}</style></head><body>",
             "<h1>groot_kit: a GR00T-N1-style VLA, notebook by notebook</h1>",
             "<p>Every page is a notebook executed in <b>fast mode</b> (small budgets, so figures that show "
             "training are smoke runs; the pages say where). Run them for real with <code>make lab</code>.</p>"]
    for title, blurb, nums in CHAPTERS:
        items = [by_num[n] for n in nums if n in by_num]
        if not items:
            continue
        parts.append(f"<h2>{html.escape(title)}</h2><p>{html.escape(blurb)}</p><ul>")
        for p in items:
            parts.append(f"<li><a href='{p['name']}.html'>{html.escape(p['title'])}</a><br>{html.escape(p['goal'])}"
                         f"<br><span class='meta'>{p['figures']} figures · fast-mode run {p['executed_s']} s</span></li>")
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def build_book(out_dir: str | Path = REPO / "outputs" / "book", executed_dir: str | Path | None = None,
               notebooks: list[Path] | None = None, images: bool = True) -> dict:
    """Execute (or reuse) the notebooks and write the site to ``out_dir``; returns the manifest.

    ``executed_dir``: a folder with notebooks already executed (e.g. by the tests); missing ones
    are executed into ``out_dir/executed``. A notebook that fails is listed with its error and the
    site is still written, so the failure is visible on the index page and in ``book.json``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run_dir = out_dir / "executed"
    import plotly
    plotly_js = (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_text()
    renderer = StaticRenderer() if images else None
    pages, failed = [], []
    nbs = notebooks or list_notebooks(NOTEBOOK_DIR)
    nav = " · ".join(f"<a href='{p.stem}.html'>{p.stem[:2]}</a>" for p in nbs)
    nav = f"<div class='gk-nav'><a href='index.html'>book index</a> · {nav}</div>"
    for path in nbs:
        t0 = time.perf_counter()
        done = Path(executed_dir) / path.name if executed_dir else None
        if not (done and done.exists()):
            r = run_notebook(path, run_dir, fast=True)
            done = run_dir / path.name
            if not r["ok"]:
                failed.append({"name": path.stem, "error": r["error"]})
                if not done.exists():
                    continue
        nb = json.loads(done.read_text())
        title, goal = _title_and_goal(nb)
        nb, stats = prepare_notebook(nb, renderer)
        (run_dir).mkdir(parents=True, exist_ok=True)
        (run_dir / path.name).write_text(json.dumps(nb))  # executed copy with PNG fallbacks (GitHub, nbconvert)
        (out_dir / f"{path.stem}.html").write_text(notebook_page(nb, plotly_js, nav))
        ran_s = nb.get("metadata", {}).get("papermill", {}).get("duration")  # papermill's own clock
        pages.append({"name": path.stem, "title": title, "goal": goal, **stats,
                      "executed_s": round(ran_s, 1) if ran_s else None, "page_s": round(time.perf_counter() - t0, 1)})
        print(f"{path.stem:<32} {stats['figures']:>3} figures ({stats['pngs']} PNG), {stats['widgets']} widgets, "
              f"{stats['stderr']} stderr", flush=True)
    (out_dir / "index.html").write_text(index_page(pages))
    manifest = {"pages": pages, "failed": failed, "png_error": renderer.error if renderer else "images off"}
    (out_dir / "book.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Build the static offline HTML book from the notebooks (fast mode).")
    ap.add_argument("--out", default=str(REPO / "outputs" / "book"), help="site folder (default: outputs/book)")
    ap.add_argument("--executed", default=None, help="reuse notebooks already executed into this folder")
    ap.add_argument("--no-images", action="store_true", help="skip the kaleido PNG fallbacks")
    a = ap.parse_args(argv)
    m = build_book(a.out, a.executed, images=not a.no_images)
    bad = m["failed"] + [p for p in m["pages"] if p["stderr"]]
    print(f"book: {len(m['pages'])} pages in {a.out}/index.html; failed: {m['failed'] or 'none'}; "
          f"PNG: {m['png_error'] or 'all rendered'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
