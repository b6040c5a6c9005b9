"""Wire format of the policy server (same shape as NVIDIA Isaac-GR00T's inference service).

Request  (msgpack map):  {"endpoint": "get_action" | "ping" | "get_modality_config",
                          "data": {...},            # observation for get_action
                          "api_token": "..."}       # only when the server has a token
Response (msgpack map):  the endpoint's result, e.g. {"action.left_arm": ndarray, ...},
                         or {"error": "<message>", "code": "<kind>"} on any failure.

numpy arrays travel as the map {"__ndarray_class__": True, "as_npy": <np.save bytes>} and are
read back with ``np.load(..., allow_pickle=False)``: object arrays (which would need pickle) are
refused. Modality configs travel as {"__ModalityConfig_class__": True, "as_json": "<json>"}, the
form GR00T's own clients decode. A missing "endpoint" means "get_action", as in GR00T's server.
Nothing on this path ever unpickles.
"""
from __future__ import annotations

import io
import json
from typing import Any

import msgpack
import numpy as np

NDARRAY_TAG = "__ndarray_class__"
MODALITY_TAG = "__ModalityConfig_class__"
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024   # 64 MiB: a few 224 px camera frames fit many times


class ProtocolError(ValueError):
    """A message could not be decoded (bad msgpack, bad array bytes, pickled arrays...)."""


class ModalityConfigDict(dict):
    """A decoded ModalityConfig wire entry: {"delta_indices": [...], "modality_keys": [...]}."""


def encode_modality_config(cfg: dict) -> dict:
    """{"delta_indices": [...], "modality_keys": [...]} -> GR00T's ModalityConfig wire entry."""
    return {MODALITY_TAG: True, "as_json": json.dumps(dict(cfg))}


def _encode_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            raise TypeError("object arrays cannot be sent (they would need pickle); send numeric arrays or lists of str")
        buf = io.BytesIO()
        np.save(buf, obj, allow_pickle=False)
        return {NDARRAY_TAG: True, "as_npy": buf.getvalue()}
    if isinstance(obj, np.generic):
        return obj.item()
    if hasattr(obj, "detach") and hasattr(obj, "numpy"):   # torch tensor
        return _encode_default(obj.detach().cpu().numpy())
    raise TypeError(f"cannot encode {type(obj).__name__}; send dicts, lists, str, numbers or numpy arrays")


def _decode_hook(obj: dict) -> Any:
    if NDARRAY_TAG in obj:
        raw = obj.get("as_npy")
        if not isinstance(raw, (bytes, bytearray)):
            raise ProtocolError("array entry has no 'as_npy' bytes; encode arrays with np.save (allow_pickle=False)")
        try:
            arr = np.load(io.BytesIO(raw), allow_pickle=False)
        except ValueError as e:   # object arrays need pickle -> refused
            raise ProtocolError(f"array bytes refused ({e}); send numeric arrays saved with allow_pickle=False") from None
        except Exception as e:    # truncated / not an .npy file
            raise ProtocolError(f"array bytes are not a valid .npy file ({type(e).__name__}: {e})") from None
        if not isinstance(arr, np.ndarray):
            raise ProtocolError("array bytes did not hold a single .npy array")
        return arr
    if MODALITY_TAG in obj:
        try:
            return ModalityConfigDict(json.loads(obj["as_json"]))
        except Exception as e:
            raise ProtocolError(f"bad modality-config entry ({e})") from None
    return obj


def packb(obj: Any) -> bytes:
    """Python object (dicts, lists, str, numbers, numpy arrays) -> msgpack bytes."""
    return msgpack.packb(obj, default=_encode_default, use_bin_type=True)


def unpackb(data: bytes, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> Any:
    """msgpack bytes -> Python object, arrays restored without pickle. Raises ProtocolError."""
    if len(data) > max_bytes:
        raise ProtocolError(f"message is {len(data)} bytes, over the limit of {max_bytes}")
    try:
        return msgpack.unpackb(data, object_hook=_decode_hook, raw=False, strict_map_key=False)
    except ProtocolError:
        raise
    except Exception as e:  # ExtraData, FormatError, StackError, UnicodeDecodeError, ValueError ...
        raise ProtocolError(f"message is not valid msgpack ({type(e).__name__}: {str(e)[:200]})") from None


def object_array_npy_bytes() -> bytes:
    """`.npy` bytes whose header declares an object (pickle) array: a hostile payload for tests.

    Built by hand (header + a pickle stream of None), so nothing here ever enables pickling; the
    decoder must refuse it because np.load runs with allow_pickle=False.
    """
    import io
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    return buf.getvalue() + b"\x80\x04N."
