"""Finding embodiments by name: the built-in robots, user folders and ``$GROOT_KIT_EMBODIMENTS``.

An :class:`EmbodimentRegistry` searches, in this order (the first folder holding a name wins):

1. the built-in robots shipped inside the package (``groot_kit/embodiments/<name>/``, package
   data, so a wheel carries them);
2. robot folders registered at run time with :meth:`EmbodimentRegistry.register` (what
   :func:`groot_kit.sim.arm_generator.write_custom_arm` does); a later registration of the same
   name replaces an earlier one;
3. robots remembered across processes: ``register(folder, persist=True)`` (what the fine-tuning
   recipe does for its new arm) writes ``{name: folder}`` to ``$GROOT_KIT_HOME/embodiments.json``
   (default ``~/.groot_kit``), so ``groot-kit eval / serve / runtime-demo --embodiment my_arm``
   find the arm by name later; entries whose folder is gone are skipped;
4. every folder listed in ``$GROOT_KIT_EMBODIMENTS`` (``os.pathsep`` separated), each holding
   ``<name>/embodiment.yaml`` sub-folders; read at each lookup, so setting it late works.

A robot's name is its folder's name. :func:`default_registry` is the one the kit's own functions
use (:func:`load_embodiment`, ``make_env``); build your own registry to search other places.
"""

from __future__ import annotations

import os
from pathlib import Path

from groot_kit.embodiment.loader import parse_yaml, read_embodiment
from groot_kit.embodiment.spec import NUM_SLOTS, EmbodimentError, EmbodimentSpec

BUILTIN_DIR = Path(__file__).resolve().parents[1] / "embodiments"  # groot_kit/embodiments/ (package data)
ENV_VAR = "GROOT_KIT_EMBODIMENTS"
HOME_ENV_VAR = "GROOT_KIT_HOME"
FIRST_FREE_SLOT = 8  # new arms take the lowest free slot from here (0..7 left for GR00T's own bodies)


def _is_robot(folder: Path) -> bool:
    return (folder / "embodiment.yaml").is_file()


def user_index_path() -> Path:
    """``$GROOT_KIT_HOME/embodiments.json`` (default ``~/.groot_kit/embodiments.json``)."""
    return Path(os.environ.get(HOME_ENV_VAR) or Path.home() / ".groot_kit") / "embodiments.json"


def _read_index() -> dict[str, Path]:
    import json
    f = user_index_path()
    try:
        return {str(k): Path(v) for k, v in json.loads(f.read_text()).items()} if f.is_file() else {}
    except (ValueError, AttributeError):  # a damaged index must not break every lookup
        return {}


def _robots_in(parent: Path) -> dict[str, Path]:
    """{name: folder} for every sub-folder of ``parent`` holding an embodiment.yaml (sorted)."""
    if not parent.is_dir():
        return {}
    return {sub.name: sub for sub in sorted(parent.iterdir()) if _is_robot(sub)}


class EmbodimentRegistry:
    """Name -> embodiment folder lookup over built-ins, registered folders and an env-var path list.

    ``builtin_dir=None`` leaves out the built-ins; ``env_var=None`` ignores the environment.
    """

    def __init__(self, builtin_dir: str | os.PathLike | None = BUILTIN_DIR, env_var: str | None = ENV_VAR,
                 persistent: bool = True):
        self.builtin_dir = Path(builtin_dir) if builtin_dir is not None else None
        self.env_var, self.persistent = env_var, persistent
        self._registered: dict[str, Path] = {}  # user robot folders, by name

    # ------------------------------------------------------------------ where robots are
    def env_dirs(self) -> list[Path]:
        """The folders listed in the environment variable right now."""
        raw = os.environ.get(self.env_var, "") if self.env_var else ""
        return [Path(p) for p in raw.split(os.pathsep) if p]

    def folders(self) -> dict[str, Path]:
        """{name: folder} of every robot found, in search order (the first folder per name wins)."""
        found: dict[str, Path] = dict(_robots_in(self.builtin_dir)) if self.builtin_dir else {}
        for name, folder in self._registered.items():
            if _is_robot(folder):  # a registered folder deleted since (e.g. a tmp dir) is skipped
                found.setdefault(name, folder)
        if self.persistent:
            for name, folder in _read_index().items():
                if _is_robot(folder):
                    found.setdefault(name, folder)
        for d in self.env_dirs():
            for name, folder in _robots_in(d).items():
                found.setdefault(name, folder)
        return found

    def names(self) -> list[str]:
        return list(self.folders())

    def builtin_names(self) -> list[str]:
        return list(_robots_in(self.builtin_dir)) if self.builtin_dir else []

    # ------------------------------------------------------------------ lookup
    def resolve(self, name_or_path: str | os.PathLike) -> Path:
        """The folder of a robot given by name, by folder path, or by the path of its embodiment.yaml.

        A plain name (no path separator) is looked up by name first, then as a folder in the
        working directory."""
        p = Path(name_or_path)
        as_name = isinstance(name_or_path, str) and os.sep not in name_or_path and "/" not in name_or_path
        if as_name:
            folder = self.folders().get(name_or_path)
            if folder is not None:
                return folder
        if p.name == "embodiment.yaml" and p.is_file():
            return p.parent
        if p.is_dir():
            return p
        if not as_name:
            raise EmbodimentError(f"embodiment folder {str(p)!r} does not exist. Fix: pass the folder that holds "
                                  f"embodiment.yaml, or a robot name: {', '.join(self.names()) or '(none)'}")
        raise EmbodimentError(
            f"unknown embodiment {str(name_or_path)!r}. Known: {', '.join(self.names()) or '(none)'}. Fix: pass one "
            f"of these names or an embodiment folder path; add your own robot folders with "
            f"groot_kit.embodiment.register_embodiment(folder) or ${self.env_var or ENV_VAR}, or generate one with "
            f"groot_kit.sim.arm_generator.write_custom_arm(ArmSpec(...), out_dir)")

    def load(self, name_or_path: str | os.PathLike | EmbodimentSpec) -> EmbodimentSpec:
        """Load and validate a robot given by name or folder (a spec is returned unchanged)."""
        if isinstance(name_or_path, EmbodimentSpec):
            return name_or_path
        return read_embodiment(self.resolve(name_or_path))

    # ------------------------------------------------------------------ user robots
    def register(self, folder: str | os.PathLike, persist: bool = False) -> EmbodimentSpec:
        """Make the robot in ``folder`` findable by its folder name. Validates it; returns its spec.
        ``persist=True`` also remembers it in the user index, for later processes.

        A built-in's name cannot be taken (the built-in would win the lookup); registering a name
        again points it at the new folder."""
        folder = Path(folder)
        if not _is_robot(folder):
            raise EmbodimentError(f"{folder}: not an embodiment folder (no embodiment.yaml). Fix: register the folder "
                                  "that holds embodiment.yaml, modality.json and the MJCF files")
        spec = read_embodiment(folder)
        builtin = _robots_in(self.builtin_dir).get(folder.name) if self.builtin_dir else None
        if builtin is not None and builtin.resolve() != folder.resolve():
            raise EmbodimentError(f"{folder}: the name {folder.name!r} is a built-in robot's. Fix: rename the folder "
                                  "(for a generated arm: ArmSpec(name=...)), or address it by path without registering")
        self._registered[folder.name] = folder
        if persist:
            import json

            from groot_kit.fileio import atomic_write_text
            index = {k: str(v) for k, v in _read_index().items()}
            index[folder.name] = str(folder.resolve())
            user_index_path().parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(user_index_path(), json.dumps(index, indent=1, sort_keys=True))
        return spec

    # ------------------------------------------------------------------ slot ids
    def slots(self) -> dict[int, str]:
        """slot id -> robot name for every robot found. Raises on two robots sharing a slot."""
        reg: dict[int, str] = {}
        for name, folder in self.folders().items():
            s = self._slot_of(folder)
            if s in reg:
                raise EmbodimentError(f"{folder / 'embodiment.yaml'}: field 'slot_id': {name!r} and {reg[s]!r} both "
                                      f"use slot {s}. Fix: give one of them a free slot, e.g. {self.free_slot()}")
            reg[s] = name
        return reg

    def free_slot(self, start: int = FIRST_FREE_SLOT) -> int:
        """The lowest slot id from ``start`` up (then from 0) that no robot found uses."""
        used = {self._slot_of(folder) for folder in self.folders().values()}
        for s in list(range(start, NUM_SLOTS)) + list(range(0, start)):
            if s not in used:
                return s
        raise EmbodimentError(f"all {NUM_SLOTS} embodiment slots are taken. Fix: remove an unused embodiment folder")

    @staticmethod
    def _slot_of(folder: Path):
        # Only the slot is read (not a full validation): a broken unrelated folder must not block
        # choosing a slot for a new arm; it fails with a clear error when it is loaded.
        y = parse_yaml((folder / "embodiment.yaml").read_text()) or {}
        return y.get("slot_id") if isinstance(y, dict) else None


_DEFAULT = EmbodimentRegistry()


def default_registry() -> EmbodimentRegistry:
    """The registry the kit's functions use when none is given."""
    return _DEFAULT


def load_embodiment(name_or_path: str | os.PathLike | EmbodimentSpec,
                    registry: EmbodimentRegistry | None = None) -> EmbodimentSpec:
    """Load and validate a robot by name (``"so100"``) or folder path. Raises :class:`EmbodimentError`."""
    return (registry or _DEFAULT).load(name_or_path)


def list_embodiments(registry: EmbodimentRegistry | None = None) -> list[str]:
    """Names of every robot found (built-ins first)."""
    return (registry or _DEFAULT).names()


def register_embodiment(folder: str | os.PathLike, registry: EmbodimentRegistry | None = None,
                        persist: bool = False) -> EmbodimentSpec:
    """Make a user robot folder findable by name (see :meth:`EmbodimentRegistry.register`)."""
    return (registry or _DEFAULT).register(folder, persist=persist)


def slot_registry(registry: EmbodimentRegistry | None = None) -> dict[int, str]:
    """slot id -> robot name for every robot found. Raises on a duplicate slot."""
    return (registry or _DEFAULT).slots()


def free_slot(start: int = FIRST_FREE_SLOT, registry: EmbodimentRegistry | None = None) -> int:
    """The lowest slot id from ``start`` up that no robot found uses."""
    return (registry or _DEFAULT).free_slot(start)
