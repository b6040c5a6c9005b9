"""Policy server: ZeroMQ REQ/REP + msgpack, request/response shape of NVIDIA Isaac-GR00T's service.

    server = PolicyServer(policy_fn, modality_config, port=5555, api_token="secret").start()
    ...                     # clients: groot_kit.runtime.client.PolicyClient or GR00T's own clients
    server.stop()

`policy_fn(observation: dict) -> dict[str, np.ndarray]` maps a GR00T-style observation
({"video.<cam>": uint8 [B,H,W,3], "state.<key>": float [B,d], "annotation.human.task_description":
[str]*B}) to unnormalised actions ({"action.<key>": [B,H,d]}); `GrootPolicyFn` (policy_fn.py) wraps a
GrootPolicy + GrootProcessor that way.

Endpoints: ping, get_action, get_modality_config (and kill, only with allow_kill=True).
Safety: binds to 127.0.0.1 unless told otherwise; optional shared token checked (constant time)
on every request; payload limit enforced twice (zmq MAXMSGSIZE drops anything over
`hard_limit_factor` x the limit before it is buffered, and every message over the limit itself is
answered with an error); every malformed request gets {"error": ..., "code": ...} and the server
keeps serving. Arrays are never unpickled (see protocol.py).
"""
from __future__ import annotations

import hmac
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import zmq

from groot_kit.constants import TASK_KEY

from .protocol import (
    DEFAULT_MAX_MESSAGE_BYTES,
    ProtocolError,
    encode_modality_config,
    packb,
    unpackb,
)

log = logging.getLogger("groot_kit.runtime.server")

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class RequestError(ValueError):
    """A request is malformed; `code` names the kind, the message names the field and the fix."""

    def __init__(self, message: str, code: str = "bad_request"):
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------------- observation checks
@dataclass
class ObservationSpec:
    """What get_action expects. Empty lists / None dims mean 'not checked'."""

    video_keys: list[str] = field(default_factory=list)
    state_dims: dict[str, int | None] = field(default_factory=dict)   # "state.<key>" -> dim
    language_keys: list[str] = field(default_factory=list)

    @classmethod
    def from_modality_config(cls, mc: dict | None, state_dims: dict[str, int] | None = None) -> "ObservationSpec":
        mc = mc or {}
        keys = lambda g: list((mc.get(g) or {}).get("modality_keys", []))
        sd = {k: (state_dims or {}).get(k) for k in keys("state")}
        return cls(keys("video"), sd, keys("language"))


_MAX_NDIM = 6


def validate_observation(data: Any, spec: ObservationSpec | None = None) -> dict[str, Any]:
    """Check a get_action observation; raise RequestError naming the field and the fix."""
    if not isinstance(data, dict):
        raise RequestError(f"'data' must be a map of observation keys, got {type(data).__name__}; send "
                           '{"video.<cam>": uint8 [B,H,W,3], "state.<key>": float [B,d], "' + TASK_KEY + '": [str]}')
    if not data:
        raise RequestError("'data' is empty; send the observation (see get_modality_config for the keys)",
                           "missing_keys")
    for k in data:
        if not isinstance(k, str):
            raise RequestError(f"observation key {k!r} is not a string; use keys like 'state.<key>'")
    spec = spec or ObservationSpec()
    need = list(spec.video_keys) + list(spec.state_dims) + list(spec.language_keys)
    missing = [k for k in need if k not in data]
    if missing:
        raise RequestError(f"observation is missing {missing}; the policy needs {need} "
                           "(ask get_modality_config)", "missing_keys")
    batch: dict[str, int] = {}
    for k, v in data.items():
        if isinstance(v, np.ndarray):
            if v.dtype.kind not in "biuf":
                raise RequestError(f"observation['{k}'] has dtype {v.dtype}; send numeric arrays "
                                   "(uint8 images, float32 states)", "bad_dtype")
            if v.ndim > _MAX_NDIM:
                raise RequestError(f"observation['{k}'] has {v.ndim} dims; at most {_MAX_NDIM}", "bad_shape")
            if v.dtype.kind == "f" and not np.isfinite(v).all():
                raise RequestError(f"observation['{k}'] contains NaN or inf; send finite values", "nan")
        elif isinstance(v, str):
            pass
        elif isinstance(v, (list, tuple)):
            if not all(isinstance(s, (str, int, float, bool)) or (isinstance(s, list) and all(isinstance(x, str) for x in s)) for s in v):
                raise RequestError(f"observation['{k}'] must be a list of strings (or numbers)", "bad_dtype")
            if any(isinstance(s, float) and not np.isfinite(s) for s in v):
                raise RequestError(f"observation['{k}'] contains NaN or inf; send finite values", "nan")
        elif isinstance(v, float):
            if not np.isfinite(v):
                raise RequestError(f"observation['{k}'] is NaN or inf; send a finite value", "nan")
        elif not isinstance(v, (int, bool)):
            raise RequestError(f"observation['{k}'] has type {type(v).__name__}; send numpy arrays, strings or "
                               "lists of strings", "bad_dtype")
    for k in spec.video_keys:
        v = data[k]
        if not isinstance(v, np.ndarray) or v.dtype != np.uint8:
            raise RequestError(f"observation['{k}'] must be a uint8 RGB array [B,H,W,3] (or [H,W,3]), got "
                               f"{_desc(v)}; convert images with .astype(np.uint8)", "bad_dtype")
        if v.ndim == 5 and v.shape[1] == 1:
            v = v[:, 0]
        if v.ndim not in (3, 4) or v.shape[-1] != 3 or min(v.shape) == 0:
            raise RequestError(f"observation['{k}'] has shape {list(v.shape)}; send [B,H,W,3] or [H,W,3] "
                               "(or [B,1,H,W,3])", "bad_shape")
        batch[k] = v.shape[0] if v.ndim == 4 else 1
    for k, dim in spec.state_dims.items():
        v = data[k]
        if not isinstance(v, np.ndarray):
            raise RequestError(f"observation['{k}'] must be a float array [B,{dim or 'd'}], got {_desc(v)}", "bad_dtype")
        if v.ndim == 3 and v.shape[1] == 1:
            v = v[:, 0]
        if v.ndim not in (1, 2) or (dim is not None and v.shape[-1] != dim):
            raise RequestError(f"observation['{k}'] has shape {list(v.shape)}; send [B,{dim or 'd'}] or "
                               f"[{dim or 'd'}]", "bad_shape")
        batch[k] = v.shape[0] if v.ndim == 2 else 1
    for k in spec.language_keys:
        v = data[k]
        if isinstance(v, str):
            continue
        if isinstance(v, np.ndarray) or not isinstance(v, (list, tuple)):
            raise RequestError(f"observation['{k}'] must be a string or a list of B strings, got {_desc(v)}", "bad_dtype")
        flat = [s for x in v for s in (x if isinstance(x, list) else [x])]
        if not all(isinstance(s, str) for s in flat):
            raise RequestError(f"observation['{k}'] must hold strings only", "bad_dtype")
        batch[k] = len(flat)
    if len(set(batch.values())) > 1:
        raise RequestError(f"observation keys disagree on the batch size: {batch}; give every key the same "
                           "leading dimension B", "bad_shape")
    return data


def _desc(v: Any) -> str:
    if isinstance(v, np.ndarray):
        return f"{v.dtype} array {list(v.shape)}"
    return type(v).__name__


def _check_actions(out: Any) -> dict:
    if not isinstance(out, dict) or not out:
        raise RuntimeError(f"policy_fn returned {type(out).__name__}, expected a non-empty dict of action arrays")
    res = {}
    for k, v in out.items():
        if hasattr(v, "detach"):
            v = v.detach().cpu().numpy()
        v = np.asarray(v)
        if v.dtype.kind not in "biuf":
            raise RuntimeError(f"policy_fn output '{k}' has dtype {v.dtype}; return numeric arrays")
        if v.dtype.kind == "f" and not np.isfinite(v).all():
            raise RuntimeError(f"policy_fn output '{k}' contains NaN/inf (check the checkpoint's normalisation stats)")
        res[str(k)] = v
    return res


# ---------------------------------------------------------------------------- server
@dataclass
class _Endpoint:
    handler: Callable
    requires_input: bool = True


class PolicyServer:
    """ZeroMQ REP server. Use `start()` (background thread) or `serve_forever()` (blocking)."""

    def __init__(self, policy_fn: Callable[[dict], dict], modality_config: dict | None = None, *,
                 host: str = "127.0.0.1", port: int = 5555, api_token: str | None = None,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, hard_limit_factor: float = 2.0,
                 observation_spec: ObservationSpec | None = None, allow_kill: bool = False,
                 poll_ms: int = 50):
        if not callable(policy_fn):
            raise TypeError("policy_fn must be callable: observation dict -> {'action.<key>': array}")
        if api_token is not None and (not isinstance(api_token, str) or not api_token):
            raise ValueError("api_token must be a non-empty string (or None for no token)")
        if max_message_bytes < 1024:
            raise ValueError("max_message_bytes must be at least 1024")
        self.policy_fn = policy_fn
        self.modality_config = {k: dict(v) for k, v in (modality_config or {}).items()}
        self.spec = observation_spec or ObservationSpec.from_modality_config(self.modality_config)
        self.host, self.port = host, int(port)
        self.api_token = api_token
        self.max_message_bytes = int(max_message_bytes)
        self.hard_limit_bytes = int(max_message_bytes * max(1.0, hard_limit_factor))
        self.allow_kill, self.poll_ms = allow_kill, poll_ms
        self.stats: Counter = Counter()
        self.latencies_ms: list[float] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._endpoints: dict[str, _Endpoint] = {}
        self.register_endpoint("ping", self._ping, requires_input=False)
        self.register_endpoint("get_action", self._get_action)
        self.register_endpoint("get_modality_config", self._get_modality_config, requires_input=False)
        self.register_endpoint("kill", self._kill, requires_input=False)
        if host not in LOOPBACK:
            log.warning("policy server binds to %s (not loopback)%s", host,
                        "" if api_token else " WITHOUT an api_token: anyone on the network can drive it")

    # ------------------------------------------------------------------ endpoints
    def register_endpoint(self, name: str, handler: Callable, requires_input: bool = True) -> None:
        self._endpoints[name] = _Endpoint(handler, requires_input)

    def _ping(self) -> dict:
        return {"status": "ok", "message": "Server is running", "endpoints": sorted(self._public_endpoints())}

    def _public_endpoints(self):
        return [e for e in self._endpoints if e != "kill" or self.allow_kill]

    def _get_action(self, data: Any) -> dict:
        obs = validate_observation(data, self.spec)
        return _check_actions(self.policy_fn(obs))

    def _get_modality_config(self) -> dict:
        return {k: encode_modality_config(v) for k, v in self.modality_config.items()}

    def _kill(self) -> dict:
        if not self.allow_kill:
            raise RequestError("endpoint 'kill' is disabled; start the server with allow_kill=True "
                               "(or stop it from the process that runs it)", "forbidden")
        self._stop.set()
        return {"status": "ok", "message": "Server is shutting down"}

    # ------------------------------------------------------------------ one message
    def handle_message(self, raw: bytes) -> bytes:
        """Bytes in, bytes out; never raises (every failure becomes an error reply)."""
        t0 = time.perf_counter()
        try:
            result = self._dispatch(raw)
            reply = packb(result)
            self.stats["ok"] += 1
        except RequestError as e:
            reply = self._error_reply(str(e), e.code)
        except ProtocolError as e:
            reply = self._error_reply(str(e), "bad_message")
        except Exception as e:  # policy failure or unencodable output: report, keep serving
            log.debug("policy error", exc_info=True)
            reply = self._error_reply(f"policy error ({type(e).__name__}): {e}", "policy_error")
        self.stats["requests"] += 1
        with self._lock:
            self.latencies_ms.append((time.perf_counter() - t0) * 1e3)
            if len(self.latencies_ms) > 100_000:
                del self.latencies_ms[:50_000]
        return reply

    def _error_reply(self, msg: str, code: str) -> bytes:
        self.stats[f"error:{code}"] += 1
        self.stats["errors"] += 1
        return packb({"error": msg, "code": code})

    def _dispatch(self, raw: bytes) -> Any:
        if len(raw) > self.max_message_bytes:
            raise RequestError(f"request is {len(raw)} bytes, over the server's limit of {self.max_message_bytes} "
                               "bytes; send smaller images (or fewer at once) or raise max_message_bytes", "too_large")
        req = unpackb(raw, self.max_message_bytes)
        if not isinstance(req, dict):
            raise RequestError(f"request must be a msgpack map {{'endpoint': ..., 'data': ...}}, got "
                               f"{type(req).__name__}", "bad_message")
        if self.api_token is not None:
            tok = req.get("api_token")
            if not isinstance(tok, str) or not hmac.compare_digest(tok.encode(), self.api_token.encode()):
                raise RequestError("Unauthorized: invalid or missing api_token; pass the server's token "
                                   "(PolicyClient(api_token=...))", "unauthorized")
        endpoint = req.get("endpoint", "get_action")
        if not isinstance(endpoint, str) or endpoint not in self._endpoints:
            raise RequestError(f"Unknown endpoint: {endpoint!r}; available: {sorted(self._public_endpoints())}",
                               "unknown_endpoint")
        ep = self._endpoints[endpoint]
        if ep.requires_input:
            if "data" not in req:
                raise RequestError(f"request for '{endpoint}' has no 'data'; send {{'endpoint': '{endpoint}', "
                                   "'data': {observation}}", "missing_keys")
            return ep.handler(req["data"])
        return ep.handler()

    # ------------------------------------------------------------------ socket loop
    def _bind(self) -> tuple[zmq.Context, zmq.Socket]:
        ctx = zmq.Context()
        sock = ctx.socket(zmq.REP)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, self.hard_limit_bytes)
        try:
            if self.port == 0:
                self.port = sock.bind_to_random_port(f"tcp://{self.host}")
            else:
                sock.bind(f"tcp://{self.host}:{self.port}")
        except zmq.ZMQError as e:
            sock.close(0)
            ctx.term()
            raise OSError(f"cannot bind the policy server to tcp://{self.host}:{self.port} ({e}); pick another "
                          "port (port=0 picks a free one) or stop the process using it") from None
        return ctx, sock

    def _loop(self, ctx: zmq.Context, sock: zmq.Socket) -> None:
        try:
            while not self._stop.is_set():
                if not sock.poll(self.poll_ms, zmq.POLLIN):
                    continue
                try:
                    raw = sock.recv(copy=True)
                except zmq.ZMQError:
                    continue
                sock.send(self.handle_message(raw))
        finally:
            sock.close(0)
            ctx.term()

    def _run_thread(self) -> None:
        try:
            ctx, sock = self._bind()
        except BaseException as e:
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        self._loop(ctx, sock)

    @property
    def address(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> "PolicyServer":
        """Serve in a background thread; returns once the socket is bound (or raises)."""
        if self._thread is not None:
            raise RuntimeError("server already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run_thread, name="groot-policy-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("policy server did not start")
        if self._error is not None:
            self._thread.join()
            self._thread = None
            raise self._error
        log.info("policy server listening on %s", self.address)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError("policy server thread did not stop in time")
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def serve_forever(self) -> None:
        """Blocking loop in the calling thread; Ctrl-C (or the kill endpoint) stops it cleanly."""
        ctx, sock = self._bind()
        print(f"groot_kit policy server listening on {self.address}"
              f"{' (token required)' if self.api_token else ''}", flush=True)
        try:
            self._loop(ctx, sock)
        except KeyboardInterrupt:
            pass

    def latency_summary(self) -> dict:
        with self._lock:
            lat = np.asarray(self.latencies_ms)
        if not len(lat):
            return {}
        return {"handled": int(len(lat)), "p50_ms": float(np.percentile(lat, 50)),
                "p99_ms": float(np.percentile(lat, 99)), "max_ms": float(lat.max())}

    def __enter__(self) -> "PolicyServer":
        return self.start() if self._thread is None else self

    def __exit__(self, *exc) -> None:
        self.stop()


# ---------------------------------------------------------------------------- CLI entry
def serve(checkpoint: str | None = None, *, processor: str | None = None, embodiment: str | None = None,
          preset: str = "tiny",
          host: str = "127.0.0.1", port: int = 5555, api_token: str | None = None,
          max_message_mb: float = 64.0, num_steps: int | None = None, device: str = "cpu",
          allow_kill: bool = False, block: bool = True) -> PolicyServer:
    """`groot-kit serve`: load a policy and serve it (blocking unless block=False).

    checkpoint: folder written by GrootPolicy.save_pretrained (None: a random `preset` model, for
    smoke tests). processor: JSON file of GrootProcessor.to_dict() (default: <checkpoint>/processor.json,
    else a demo 8-D arm processor). api_token: default from $GROOT_KIT_API_TOKEN.
    """
    import os

    from groot_kit.model.policy import GrootPolicy

    from .policy_fn import GrootPolicyFn, load_processor
    if checkpoint:
        policy = GrootPolicy.from_pretrained(checkpoint, map_location=device)
    else:
        log.warning("no checkpoint given: serving a randomly initialised '%s' policy (smoke test only)", preset)
        policy = GrootPolicy(preset).to(device).eval()
    proc = load_processor(policy, processor, checkpoint, embodiment)
    fn = GrootPolicyFn(policy, proc, num_steps=num_steps)
    token = api_token if api_token is not None else (os.environ.get("GROOT_KIT_API_TOKEN") or None)
    server = PolicyServer(fn, fn.modality_config(), host=host, port=port, api_token=token,
                          max_message_bytes=int(max_message_mb * 1024 * 1024),
                          observation_spec=fn.observation_spec(), allow_kill=allow_kill)
    if block:
        server.serve_forever()
        return server
    return server.start()
