"""Crash-safe folder writes shared by checkpoints, bundles and datasets."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Write a folder all-or-nothing.

    Yields an empty temporary sibling of `path`; when the block finishes it is renamed to `path`
    (an existing folder there is moved aside first and deleted afterwards). If the block raises, the
    temporary folder is deleted and `path` is left exactly as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        yield tmp
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_json_checked(file: str | os.PathLike, missing_fix: str, corrupt_fix: str, error=ValueError):
    """Parse a JSON file, raising `error` with one message that names the file and the fix."""
    import json
    file = Path(file)
    if not file.exists():
        raise error(f"{file} is missing; {missing_fix}")
    try:
        return json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise error(f"{file} is not valid JSON ({e}); {corrupt_fix}") from e


def files_digest(files) -> str:
    """Short content hash of some files (name + bytes, in sorted order): a changed input shows as a
    changed digest, so cached or resumable work keyed by it starts over."""
    import hashlib
    h = hashlib.sha256()
    for f in sorted(Path(f) for f in files):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:16]


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to a temporary sibling, then rename it over `path`: a reader never sees half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path
