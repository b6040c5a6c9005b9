"""One exception type for bad dataset input: every message names the file/field and the fix."""
from __future__ import annotations


class DataError(ValueError):
    """Raised for malformed or inconsistent dataset input (modality.json, features, NaNs, paths).

    The message always says *where* (file and field) and *how to fix it*.
    """

    def __init__(self, where: str, problem: str, fix: str):
        self.where, self.problem, self.fix = where, problem, fix
        super().__init__(f"{where}: {problem}. Fix: {fix}")
