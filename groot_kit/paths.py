"""Where the kit's own files are, whatever the working directory (notebooks run from notebooks/,
the CLI from anywhere): the repo root of a source checkout, and the shipped checkpoints."""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent                 # meaningful in a source checkout (editable install)
TINY_BASE = "data_samples/checkpoints/tiny_base"
TINY_LANG_SO100 = "data_samples/checkpoints/tiny_lang_so100"   # so100 only, grounded System 2 (3-cube reach)
TINY_PICK_SO100_DAGGER2 = "data_samples/checkpoints/tiny_pick_so100_dagger2"  # so100 only, pick_place with 3 cubes /
                                # 2 bins: the last stage of the pick_place_so100 chain (groot_kit.recipes.chain)


def resolve_repo_path(path: str | Path) -> Path:
    """For command-line arguments: `path` as given (relative to the working directory) if it exists,
    else relative to the repo root if that exists; else `path` unchanged (so the caller's error names
    what the user typed). Notebooks use `repo_path` (always the repo's folders)."""
    p = Path(path).expanduser()
    if p.exists() or p.is_absolute():
        return p
    q = REPO_ROOT / p
    return q if q.exists() else p


def repo_path(path: str | os.PathLike, must_exist: str = "") -> Path:
    """Resolve a notebook parameter path against the repository root, whatever the working directory.

    Lab runs kernels in notebooks/, papermill and scripts elsewhere; relative paths such as
    ``outputs/04_...`` or ``data_samples/checkpoints/tiny_base`` always mean the repo's folders, so
    there is one ``outputs/``. Absolute paths are kept. ``must_exist`` names what the path is for:
    then a missing path raises FileNotFoundError naming the resolved path (never a silent fallback).
    """
    p = Path(path).expanduser()
    p = p if p.is_absolute() else REPO_ROOT / p
    if must_exist and not p.exists():
        raise FileNotFoundError(f"{must_exist} not found: {p} (from {str(path)!r}, relative paths are taken from "
                                f"the repo root {REPO_ROOT}). Fix: pass an existing folder, or see the README for how to make it.")
    return p
