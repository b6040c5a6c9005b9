import os
import sys

# Tests never touch the network and render headless.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GROOT_KIT_FAST", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


# The "notebooks" group's order: papermill runs first, so each notebook executes under its own test's
# limit and the book only assembles pages (it once ran all nine inside one 900 s test: decisions.md).
_GROUP_ORDER = ("test_notebooks.py", "test_book.py", "test_finetune_ui.py", "test_lab_notebooks.py")


def _group_rank(item) -> int:
    """Negative for the notebook group (in _GROUP_ORDER), 0 for every other test."""
    name = item.path.name
    grouped = item.get_closest_marker("xdist_group") and name in _GROUP_ORDER
    return _GROUP_ORDER.index(name) - len(_GROUP_ORDER) if grouped else 0


def pytest_sessionstart(session):
    """A nearly full disk shows up as notebook kernels and Lab pages that hang, not as a clear error:
    say so up front (the suite writes about 1 GB of datasets, videos and checkpoints to the temp dir)."""
    import shutil
    import tempfile
    free_gb = shutil.disk_usage(tempfile.gettempdir()).free / 1e9
    if free_gb < 5:
        sys.__stderr__.write(f"\nWARNING: only {free_gb:.1f} GB free in {tempfile.gettempdir()}; the tests need "
                             "about 1 GB there (plus 6 GB for .venv). Free some space if tests hang.\n")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Fail at once, not after a 90-minute hang, when pytest-xdist ignores ``xdist_group``: it
    marks grouped items by renaming their node ids, which pytest 9.2 no longer honours, and two
    notebook kernels plus two browsers on a 2-core runner then starve each other.

    Also stable-sorts the notebook group, in _GROUP_ORDER, to the front: it is the run's long pole (one
    worker runs it serially, about 750 s idle), so xdist should hand it out first. Other tests keep
    their order (their sort key is 0 and Python's sort is stable)."""
    items.sort(key=_group_rank)
    if os.environ.get("PYTEST_XDIST_WORKER") is None or not getattr(config.option, "loadgroup", False):
        return
    lost = [item.nodeid for item in items if item.get_closest_marker("xdist_group") and "@" not in item.nodeid]
    if lost:
        message = (
            f"pytest-xdist ignored xdist_group for {len(lost)} tests (e.g. {lost[0]}) under pytest "
            f"{pytest.__version__}: the notebook tests would run two at a time. Fix: pip install 'pytest<9.2' "
            "(pyproject's test extra pins it).")
        sys.__stderr__.write(f"\nERROR: {message}\n")   # a worker's exception reaches the terminal garbled
        raise pytest.UsageError(message)


@pytest.fixture(autouse=True)
def _own_groot_kit_home(tmp_path_factory, monkeypatch):
    """Each test its own $GROOT_KIT_HOME: robots a test registers persistently (the finetune recipe
    does) neither reach ~/.groot_kit nor show up in another test's registry."""
    monkeypatch.setenv("GROOT_KIT_HOME", str(tmp_path_factory.mktemp("groot_kit_home")))


@pytest.fixture
def tiny_policy():
    from groot_kit.model.policy import GrootPolicy
    torch.manual_seed(0)
    return GrootPolicy("tiny").eval()


@pytest.fixture(scope="session")
def executed_notebook(tmp_path_factory):
    """``run(path)`` -> ``run_notebook`` result; each notebook executes at most once per session in
    fast mode, so the notebook tests and the book test share one execution (keep both in the
    "notebooks" xdist group so they land on the same worker)."""
    from groot_kit.notebooks import run_notebook

    folder = tmp_path_factory.mktemp("executed_notebooks")
    done = {}

    def run(path):
        if path.stem not in done:
            done[path.stem] = run_notebook(path, folder, fast=True, timeout=600)
        return done[path.stem]

    run.folder = folder
    return run
