"""The simulator <-> policy boundary: a GrootSimEnv observation as GR00T's raw observation, and a
decoded action chunk as the env's flat action vector. Used by the evaluator's controller
(groot_kit.eval) and the dual-rate demo (groot_kit.runtime.demo), so both see the same robot."""
from __future__ import annotations

from typing import Any

import numpy as np

from groot_kit.constants import TASK_KEY


def check_keys(spec, modality, group: str) -> None:
    """The processor's `group` keys exist in the embodiment with the same dims (else a clear error)."""
    have = getattr(spec, group)
    for k, s in getattr(modality, group).items():
        if k not in have:
            raise ValueError(f"the policy's processor uses {group} key '{k}', which embodiment '{spec.name}' does not "
                             f"have (its keys: {list(have)}); evaluate the embodiment the processor was made for")
        if have[k].dim != s.dim:
            raise ValueError(f"{group} key '{k}': the policy's processor has {s.dim} dims, embodiment '{spec.name}' "
                             f"{have[k].dim}; evaluate the embodiment the processor was made for")


def sim_observation(env, obs: dict, modality, instruction: str | None = None, video: bool = True) -> dict[str, Any]:
    """A GrootSimEnv observation (``{cam: uint8 [h,w,3], "state": [state_dim]}``) -> GR00T's raw
    observation ``{"video.<cam>", "state.<key>" [d], "annotation.human.task_description"}`` with the
    keys of `modality` (the policy processor's), cut from the env's state by the env's own key slices.
    `instruction` replaces the env's instruction (language ablations); `video=False` leaves the images
    out (the dual-rate demo renders them on the System 2 thread)."""
    env = env.unwrapped if hasattr(env, "unwrapped") else env
    spec = env.spec_e
    raw: dict[str, Any] = {}
    if video:
        for cam in modality.video:
            if cam not in obs:
                raise ValueError(f"camera '{cam}' is not in the env observation (it has {sorted(k for k in obs if k != 'state')}); "
                                 f"make the env with render=True and the embodiment the processor was made for")
            raw[f"video.{cam}"] = obs[cam]
    st = np.asarray(obs["state"], np.float32)
    for k in modality.state:
        ks = spec.state[k]
        raw[f"state.{k}"] = st[..., ks.start:ks.end]
    raw[TASK_KEY] = env.instruction if instruction is None else instruction
    return raw


def flat_env_action(decoded: dict[str, np.ndarray], spec, modality) -> np.ndarray:
    """``{"action.<key>": [B, H, d]}`` (processor.decode_action) -> [B, H, action_dim] in the env's
    action layout."""
    first = next(iter(decoded.values()))
    out = np.zeros((*first.shape[:2], spec.action_dim), np.float32)
    for k in modality.action:
        s = spec.action[k]
        out[..., s.start:s.end] = decoded[f"action.{k}"]
    return out
