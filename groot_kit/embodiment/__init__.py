"""groot_kit.embodiment: read robot bodies and find them by name.

>>> from groot_kit.embodiment import load_embodiment, list_embodiments
>>> spec = load_embodiment("so100")          # or a folder path
>>> spec.state_dim, spec.action_dim, spec.slot_id
(6, 6, 1)

| module | what |
|---|---|
| ``spec.py`` | :class:`EmbodimentSpec` (joints, arms, cameras, state/action layout), :class:`EmbodimentError` |
| ``loader.py`` | :func:`read_embodiment`: one folder -> validated spec, errors name file, field and fix |
| ``registry.py`` | :class:`EmbodimentRegistry`: built-ins + registered folders + ``$GROOT_KIT_EMBODIMENTS`` |

The built-in robots (so100=slot 1, panda7=2, gr1_upper=24 = GR00T's ``gr1``, custom_arm=31 =
GR00T's ``new_embodiment``) are package data in ``groot_kit/embodiments/<name>/``. Generating a
robot folder (MJCF from a short arm spec) is :mod:`groot_kit.sim.arm_generator`, which uses this
package; this package never imports :mod:`groot_kit.sim`.
"""

from groot_kit.embodiment.loader import read_embodiment
from groot_kit.embodiment.registry import (BUILTIN_DIR, ENV_VAR, EmbodimentRegistry, default_registry, free_slot,
                                           list_embodiments, load_embodiment, register_embodiment, slot_registry)
from groot_kit.embodiment.spec import (NORMALIZATION_MODES, NUM_SLOTS, ArmInfo, EmbodimentError, EmbodimentSpec,
                                       KeySpec, camera_list, modality_dict)

__all__ = [
    "EmbodimentSpec", "KeySpec", "ArmInfo", "EmbodimentError", "NUM_SLOTS", "NORMALIZATION_MODES", "camera_list",
    "modality_dict", "read_embodiment", "EmbodimentRegistry", "default_registry", "BUILTIN_DIR", "ENV_VAR",
    "load_embodiment", "list_embodiments", "register_embodiment", "slot_registry", "free_slot",
]
