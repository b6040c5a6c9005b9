"""Client for the policy server (also talks to NVIDIA Isaac-GR00T inference servers: same wire format).

    with PolicyClient(port=5555, api_token="secret") as client:
        assert client.ping()
        cfg = client.get_modality_config()
        actions = client.get_action({"video.front": img, "state.arm": q, ...})
"""
from __future__ import annotations

from typing import Any

import zmq

from .protocol import DEFAULT_MAX_MESSAGE_BYTES, packb, unpackb


class ServerError(RuntimeError):
    """The server answered with an error; `.code` names the kind (bad_request, unauthorized, ...)."""

    def __init__(self, message: str, code: str | None = None):
        super().__init__(f"Server error: {message}")
        self.message, self.code = message, code


class PolicyClient:
    """ZeroMQ REQ client. A timed-out request rebuilds the socket (REQ sockets wedge otherwise)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 5555, timeout_ms: int = 15000,
                 api_token: str | None = None, max_message_bytes: int | None = DEFAULT_MAX_MESSAGE_BYTES):
        self.host, self.port, self.timeout_ms = host, int(port), int(timeout_ms)
        self.api_token, self.max_message_bytes = api_token, max_message_bytes
        self.context = zmq.Context()
        self.socket: zmq.Socket | None = None
        self._init_socket()

    def _init_socket(self) -> None:
        if self.socket is not None:
            self.socket.close(0)
        self.socket = self.context.socket(zmq.REQ)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.RCVTIMEO, self.timeout_ms)
        self.socket.setsockopt(zmq.SNDTIMEO, self.timeout_ms)
        self.socket.connect(f"tcp://{self.host}:{self.port}")

    # ------------------------------------------------------------------ raw transport
    def request_raw(self, payload: bytes) -> Any:
        """Send raw bytes, return the decoded reply (error replies are returned, not raised)."""
        try:
            self.socket.send(payload)
            reply = self.socket.recv()
        except zmq.Again:
            self._init_socket()
            raise TimeoutError(f"no reply from tcp://{self.host}:{self.port} within {self.timeout_ms} ms "
                               "(server down, busy, or the message was over its hard size limit)") from None
        return unpackb(reply, max_bytes=1 << 31)

    def call_endpoint(self, endpoint: str, data: dict | None = None, requires_input: bool = True) -> Any:
        request: dict[str, Any] = {"endpoint": endpoint}
        if requires_input:
            request["data"] = data
        if self.api_token:
            request["api_token"] = self.api_token
        payload = packb(request)
        if self.max_message_bytes is not None and len(payload) > self.max_message_bytes:
            raise ValueError(f"request is {len(payload)} bytes, over max_message_bytes={self.max_message_bytes}; "
                             "send smaller images or raise the limit on both sides")
        response = self.request_raw(payload)
        if isinstance(response, dict) and "error" in response:
            raise ServerError(str(response["error"]), response.get("code"))
        return response

    # ------------------------------------------------------------------ endpoints
    def ping(self) -> bool:
        try:
            self.call_endpoint("ping", requires_input=False)
            return True
        except (TimeoutError, zmq.ZMQError):
            return False

    def get_action(self, observation: dict[str, Any]) -> dict[str, Any]:
        return self.call_endpoint("get_action", observation)

    def get_modality_config(self) -> dict[str, Any]:
        return {k: dict(v) for k, v in self.call_endpoint("get_modality_config", requires_input=False).items()}

    def kill_server(self) -> Any:
        return self.call_endpoint("kill", requires_input=False)

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        if self.socket is not None:
            self.socket.close(0)
            self.socket = None
        if not self.context.closed:
            self.context.term()

    def __enter__(self) -> "PolicyClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
