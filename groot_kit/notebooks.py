"""Run, check and strip the kit's notebooks (used by `make tour`, the tests and pre-commit).

Conventions (DESIGN.md section 7): the first code cell is the only one tagged `parameters` and
starts with FAST_MODE, SEED, DEVICE, OUTPUT_DIR; outputs are stripped before commit; each notebook
writes OUTPUT_DIR/metrics.json.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from groot_kit.paths import REPO_ROOT as REPO
from groot_kit.paths import repo_path  # noqa: F401  (notebooks import it from here)
NOTEBOOK_DIR = REPO / "notebooks"
REQUIRED_PARAMETERS = ["FAST_MODE", "SEED", "DEVICE", "OUTPUT_DIR"]


def shipped_result(relpath: str) -> dict:
    """A measured result shipped in the repo (e.g. ``benchmarks/results/imitation_vs_rl.json``)."""
    return json.loads(repo_path(relpath, must_exist="shipped result").read_text())


def smoke_run_note(text: str, fast: bool = True) -> None:
    """Show, next to a figure, that fast mode only smoke-tests it (and what the full run gives).

    Fast mode shrinks budgets so CI can run every notebook; where the trained result is the point
    the numbers then mean nothing, and the narration must not seem to contradict the figure.
    """
    if fast:
        from IPython.display import Markdown, display
        display(Markdown(f"> **Fast mode: a smoke run.** {text}"))


def list_notebooks(folder: Path = NOTEBOOK_DIR) -> list[Path]:
    return sorted(folder.glob("[0-9][0-9]_*.ipynb"))


def check_conventions(path: Path) -> list[str]:
    """Return the list of convention violations of one notebook (empty = fine)."""
    nb = json.loads(Path(path).read_text())
    problems = []
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        problems.append(f"{len(tagged)} cells tagged 'parameters' (want exactly 1)")
    elif not code or tagged[0] is not code[0]:
        problems.append("the 'parameters' cell is not the first code cell")
    else:
        src = "".join(tagged[0]["source"])
        names = re.findall(r"^([A-Z][A-Z0-9_]*)\s*(?::\s*[\w\[\], |]+)?\s*=", src, flags=re.M)
        if names[:4] != REQUIRED_PARAMETERS:
            problems.append(f"parameters cell starts with {names[:4]}, want {REQUIRED_PARAMETERS}")
        for line in src.splitlines():
            if re.match(r"^[A-Z][A-Z0-9_]*\s*[:=]", line) and "#" not in line:
                problems.append(f"parameter line without a help comment: {line.strip()}")
        problems += _papermill_parse_problems(src, names)
    ids = [c.get("id") for c in nb["cells"]]
    if None in ids or len(set(ids)) != len(ids):
        problems.append("cells without a unique 'id' (nbformat 4.5 requires one; strip_outputs adds them)")
    if any(c.get("outputs") or c.get("execution_count") for c in code):
        problems.append("stored outputs (run `make strip-notebooks`)")
    if not nb["cells"] or nb["cells"][0]["cell_type"] != "markdown" or not "".join(nb["cells"][0]["source"]).lstrip().startswith("#"):
        problems.append("first cell is not a markdown title")
    return problems


def _papermill_parse_problems(src: str, names: list[str]) -> list[str]:
    """papermill must read every parameter (it skips a line it cannot parse, e.g. one whose help
    comment holds an '=', and then warns "Passed unknown parameter" when it is injected)."""
    from papermill.translators import PythonTranslator
    parsed = {p.name for p in PythonTranslator.inspect({"source": src})}
    return [f"papermill cannot parse parameter {n} (no '=' inside its help comment)" for n in names if n not in parsed]


def strip_outputs(path: Path) -> None:
    nb = json.loads(Path(path).read_text())
    seen = set()
    for c in nb["cells"]:
        if not c.get("id") or c["id"] in seen:  # cells pasted in without an id
            c["id"] = uuid.uuid4().hex[:8]
        seen.add(c["id"])
        if c["cell_type"] == "code":
            c["outputs"], c["execution_count"] = [], None
        c.get("metadata", {}).pop("execution", None)
        c.get("metadata", {}).pop("papermill", None)
    nb.get("metadata", {}).pop("papermill", None)
    Path(path).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


@contextmanager
def _environ(**values: str):
    """Set environment variables for the duration of a block, then restore the old ones."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _ipc_kernel_manager():
    """A kernel manager that talks to the kernel over local IPC sockets, not TCP.

    ipykernel >= 7 warns "Kernel is running over TCP without encryption" on every TCP start, and
    that warning lands in every papermill log; IPC sockets are local files, so there is nothing
    to warn about (and nothing listening on a port).
    """
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class IPCKernelManager(AsyncKernelManager):
        @default("transport")
        def _transport_default(self):
            return "ipc"

        @default("ip")
        def _ip_default(self):
            # a private folder per kernel: jupyter_client's default ("kernel-ipc" in the working
            # directory when no connection file is known yet) lets two kernels started at once in
            # the same folder pick the same socket files, and their messages fail the HMAC check
            import tempfile
            return os.path.join(tempfile.mkdtemp(prefix="groot-kit-kernel-"), "ipc")

    return IPCKernelManager


def run_notebook(path: Path, output_dir: Path, fast: bool = True, timeout: int = 900,
                 parameters: dict | None = None) -> dict:
    """Execute one notebook with papermill; returns {name, ok, seconds, metrics, error, stderr}.

    ``parameters`` override the notebook's parameters cell (FAST_MODE and OUTPUT_DIR are set here);
    ``stderr`` lists the first line of every stderr output the executed notebook holds.
    """
    import papermill as pm
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    work = output_dir / Path(path).stem
    t0 = time.perf_counter()
    result = {"name": Path(path).stem, "ok": False, "seconds": 0.0, "metrics": {}, "error": None, "stderr": []}
    # The kernel inherits the environment: fast mode for nbmake-style checks, and this checkout's
    # groot_kit first on its path (not whatever an editable install points to).
    path_env = os.pathsep.join([str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    with _environ(GROOT_KIT_FAST="1" if fast else "0", PYTHONPATH=path_env):
        try:
            pm.execute_notebook(str(path), str(output_dir / Path(path).name), cwd=str(Path(path).parent),
                                parameters={**(parameters or {}), "FAST_MODE": fast, "OUTPUT_DIR": str(work)},
                                kernel_name="python3", progress_bar=False, execution_timeout=timeout,
                                kernel_manager_class=_ipc_kernel_manager())
            metrics_file = work / "metrics.json"
            result["metrics"] = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
            result["ok"] = metrics_file.exists()
            if not result["ok"]:
                result["error"] = f"{metrics_file} was not written"
        except Exception as e:  # report and go on with the next notebook
            result["error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
    executed = output_dir / Path(path).name
    if executed.exists():
        result["stderr"] = stderr_outputs(json.loads(executed.read_text()))
    result["seconds"] = round(time.perf_counter() - t0, 1)
    return result


def stderr_outputs(nb: dict) -> list[str]:
    """'cell N: first line' for every stderr stream output of an executed notebook (red blocks in Lab)."""
    found = []
    for i, cell in enumerate(nb.get("cells", [])):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                text = "".join(out.get("text", "")).strip()
                found.append(f"cell {i}: {text.splitlines()[0][:200] if text else '(blank)'}")
    return found


def _summary(metrics: dict, limit: int = 3) -> str:
    items = [(k, v) for k, v in metrics.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)]
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in items[:limit])


def tour(output_dir: str | Path = REPO / "outputs" / "tour", fast: bool = True) -> int:
    """Run every notebook headless and print one line per notebook. Returns the failure count."""
    failures = 0
    notebooks = list_notebooks()
    if not notebooks:
        print("no notebooks found in", NOTEBOOK_DIR)
        return 1
    for nb in notebooks:
        r = run_notebook(nb, Path(output_dir), fast=fast)
        failures += not r["ok"]
        status = "ok  " if r["ok"] else "FAIL"
        detail = _summary(r["metrics"]) if r["ok"] else r["error"]
        print(f"{status} {r['name']:<32} {r['seconds']:>6.1f}s  {detail}", flush=True)
    print(f"{len(notebooks) - failures}/{len(notebooks)} notebooks ran; outputs in {output_dir}")
    return failures


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "strip":
        for p in argv[1:] or [str(p) for p in list_notebooks()]:
            strip_outputs(Path(p))
        return 0
    if argv and argv[0] == "check":
        bad = 0
        for p in list_notebooks():
            for problem in check_conventions(p):
                print(f"{p.name}: {problem}")
                bad += 1
        return 1 if bad else 0
    return 1 if tour(fast=os.environ.get("GROOT_KIT_FAST", "1") != "0") else 0


if __name__ == "__main__":
    raise SystemExit(main())
