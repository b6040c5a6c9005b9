"""Malformed requests for server tests and the load benchmark (each must get an error reply)."""
from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

from .protocol import NDARRAY_TAG, object_array_npy_bytes, packb


def _req(endpoint: str | None, data: Any = None, token: str | None = None, with_data: bool = True) -> dict:
    r: dict[str, Any] = {}
    if endpoint is not None:
        r["endpoint"] = endpoint
    if with_data:
        r["data"] = data
    if token:
        r["api_token"] = token
    return r


def malformed_requests(valid_obs: dict, token: str | None, max_message_bytes: int) -> list[tuple[str, bytes]]:
    """(kind, raw bytes) pairs covering every class of bad input the server must survive."""
    obs = dict(valid_obs)
    state_key = next(k for k in obs if k.startswith("state."))
    video_key = next((k for k in obs if k.startswith("video.")), None)
    cases: list[tuple[str, Any]] = []
    cases.append(("bad_msgpack", b"\xc1\xc1 this is not msgpack"))
    cases.append(("truncated_msgpack", packb(_req("get_action", obs, token))[:-7]))
    cases.append(("empty_message", b""))
    cases.append(("not_a_map", packb([1, 2, 3])))
    cases.append(("unknown_endpoint", _req("get_weights", {}, token)))
    cases.append(("endpoint_not_str", _req(42, obs, token)))   # type: ignore[arg-type]
    cases.append(("wrong_token", _req("get_action", obs, (token or "") + "-wrong")))
    cases.append(("missing_token" if token else "ping_ok_control", _req("ping", None, None, with_data=False)))
    cases.append(("missing_data", _req("get_action", None, token, with_data=False)))
    cases.append(("data_not_map", _req("get_action", [1, 2], token)))
    cases.append(("empty_data", _req("get_action", {}, token)))
    cases.append(("missing_key", _req("get_action", {k: v for k, v in obs.items() if k != state_key}, token)))
    bad = dict(obs)
    bad[state_key] = np.asarray(obs[state_key]).astype(np.float32)[..., :-1]
    cases.append(("wrong_state_shape", _req("get_action", bad, token)))
    bad = dict(obs)
    s = np.asarray(obs[state_key], dtype=np.float32).copy()
    s.flat[0] = np.nan
    bad[state_key] = s
    cases.append(("nan_state", _req("get_action", bad, token)))
    bad = dict(obs)
    bad[state_key] = np.ones_like(np.asarray(obs[state_key]), dtype=np.complex64)
    cases.append(("complex_dtype", _req("get_action", bad, token)))
    if video_key:
        bad = dict(obs)
        bad[video_key] = np.asarray(obs[video_key]).astype(np.float32)
        cases.append(("float_video", _req("get_action", bad, token)))
        bad = dict(obs)
        bad[video_key] = np.asarray(obs[video_key])[..., :2]
        cases.append(("video_two_channels", _req("get_action", bad, token)))
    bad = dict(obs)
    bad[state_key] = "0.1 0.2 0.3"
    cases.append(("state_as_string", _req("get_action", bad, token)))
    # array entries that would need pickle, or are not .npy at all
    pickled = {NDARRAY_TAG: True, "as_npy": object_array_npy_bytes()}
    raw_obs = {k: v for k, v in obs.items() if not isinstance(v, np.ndarray)}
    cases.append(("pickled_array", msgpack.packb({"endpoint": "get_action", "api_token": token,
                                                  "data": {**raw_obs, state_key: pickled}}, use_bin_type=True)))
    cases.append(("garbage_npy", msgpack.packb({"endpoint": "get_action", "api_token": token,
                                                "data": {state_key: {NDARRAY_TAG: True, "as_npy": b"\x93NUMPY garbage"}}},
                                               use_bin_type=True)))
    cases.append(("npy_not_bytes", msgpack.packb({"endpoint": "get_action", "api_token": token,
                                                  "data": {state_key: {NDARRAY_TAG: True, "as_npy": 5}}})))
    big = np.zeros(max_message_bytes // 4 + 1024, np.float32)   # over the soft limit, under the hard one
    cases.append(("oversize", _req("get_action", {**obs, "state.extra": big}, token)))
    out = []
    for kind, c in cases:
        out.append((kind, c if isinstance(c, bytes) else packb(c)))
    return out
