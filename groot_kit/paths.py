"""Where the kit's own files are, whatever the working directory (notebooks run from notebooks/,
the CLI from anywhere): the repo root of a source checkout, and the shipped checkpoints."""
from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent                 # meaningful in a source checkout (editable install)
TINY_BASE = "data_samples/checkpoints/tiny_base"


def resolve_repo_path(path: str | Path) -> Path:
    """`path` as given if it exists, else relative to the repo root if that exists; else `path` unchanged
    (so the caller's error names what the user typed)."""
    p = Path(path).expanduser()
    if p.exists() or p.is_absolute():
        return p
    q = REPO_ROOT / p
    return q if q.exists() else p
