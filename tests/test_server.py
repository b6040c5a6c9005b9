"""Policy server: round trip == direct call, token, malformed fuzz, payload limit, loopback load."""
from __future__ import annotations

import time

import msgpack
import numpy as np
import pytest
import torch

from groot_kit.runtime.client import PolicyClient, ServerError
from groot_kit.runtime.fuzz import malformed_requests
from groot_kit.runtime.protocol import MODALITY_TAG, packb, unpackb
from groot_kit.runtime.server import ObservationSpec, PolicyServer

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def tiny():
    from groot_kit.model.policy import GrootPolicy
    from groot_kit.runtime.policy_fn import GrootPolicyFn, demo_observation, demo_processor
    torch.manual_seed(0)
    policy = GrootPolicy("tiny").eval()
    proc = demo_processor(policy)
    fn = GrootPolicyFn(policy, proc)
    return fn, demo_observation(proc)


@pytest.fixture(scope="module")
def server(tiny):
    fn, _ = tiny
    srv = PolicyServer(fn, fn.modality_config(), port=0, api_token=TOKEN, max_message_bytes=256 * 1024,
                       observation_spec=fn.observation_spec()).start()
    yield srv
    srv.stop()
    assert not srv.running


@pytest.fixture()
def client(server):
    with PolicyClient(port=server.port, api_token=TOKEN, timeout_ms=5000, max_message_bytes=None) as c:
        yield c


def test_binds_loopback_by_default(server):
    assert server.host == "127.0.0.1" and server.address.startswith("tcp://127.0.0.1:")


def test_round_trip_equals_direct_call(tiny, client):
    fn, obs = tiny
    assert client.ping()
    torch.manual_seed(123)
    remote = client.get_action(obs)
    torch.manual_seed(123)
    direct = fn(obs)
    assert set(remote) == set(direct) == {"action.arm", "action.gripper"}
    for k in direct:
        assert remote[k].dtype == direct[k].dtype and remote[k].shape == direct[k].shape == (1, 16, direct[k].shape[-1])
        np.testing.assert_array_equal(remote[k], direct[k])


def test_modality_config_in_gr00t_wire_form(tiny, client, server):
    fn, _ = tiny
    assert client.get_modality_config() == fn.modality_config()
    # raw reply: GR00T clients rebuild ModalityConfig from {"__ModalityConfig_class__", "as_json"}
    raw = client.socket
    raw.send(msgpack.packb({"endpoint": "get_modality_config", "api_token": TOKEN}))
    reply = msgpack.unpackb(raw.recv())
    assert reply["state"][MODALITY_TAG] is True and "modality_keys" in reply["state"]["as_json"]


def test_gr00t_default_endpoint_is_get_action(tiny, client):
    _, obs = tiny
    reply = client.request_raw(packb({"data": obs, "api_token": TOKEN}))
    assert "action.arm" in reply


def test_token_rejected(tiny, server):
    _, obs = tiny
    for token in (None, "wrong"):
        with PolicyClient(port=server.port, api_token=token, timeout_ms=5000) as bad:
            with pytest.raises(ServerError, match="Unauthorized") as e:
                bad.get_action(obs)
            assert e.value.code == "unauthorized"
    with PolicyClient(port=server.port, api_token=TOKEN, timeout_ms=5000) as good:
        assert good.ping()


def test_kill_disabled_by_default(client, server):
    with pytest.raises(ServerError, match="disabled"):
        client.kill_server()
    assert server.running and client.ping()


def test_malformed_requests_answered_and_server_survives(tiny, client, server):
    fn, obs = tiny
    cases = malformed_requests(obs, TOKEN, server.max_message_bytes)
    assert len(cases) >= 20
    for kind, raw in cases:
        reply = client.request_raw(raw)
        assert isinstance(reply, dict) and "error" in reply, (kind, reply)
        assert isinstance(reply["error"], str) and len(reply["error"]) > 10, kind
    assert client.ping()
    torch.manual_seed(5)
    out = client.get_action(obs)
    torch.manual_seed(5)
    np.testing.assert_array_equal(out["action.arm"], fn(obs)["action.arm"])


@pytest.mark.parametrize("kind,needle", [("nan_state", "NaN"), ("missing_key", "missing"),
                                         ("wrong_state_shape", "shape"), ("float_video", "uint8"),
                                         ("pickled_array", "refused"), ("bad_msgpack", "msgpack"),
                                         ("unknown_endpoint", "Unknown endpoint"), ("oversize", "limit")])
def test_error_messages_name_the_problem(tiny, client, server, kind, needle):
    _, obs = tiny
    raw = dict(malformed_requests(obs, TOKEN, server.max_message_bytes))[kind]
    reply = client.request_raw(raw)
    assert needle.lower() in reply["error"].lower(), reply


def test_payload_over_hard_limit_dropped_and_server_survives(tiny, server):
    _, obs = tiny
    huge = packb({"endpoint": "get_action", "api_token": TOKEN,
                  "data": {**obs, "state.extra": np.zeros(server.hard_limit_bytes // 4 + 4096, np.float32)}})
    with PolicyClient(port=server.port, api_token=TOKEN, timeout_ms=1500, max_message_bytes=None) as c:
        with pytest.raises(TimeoutError):       # zmq MAXMSGSIZE drops the connection, nothing is buffered
            c.request_raw(huge)
        assert c.ping()                          # the client rebuilt its socket; the server still serves
    # the client refuses to send over its own limit
    with PolicyClient(port=server.port, api_token=TOKEN, max_message_bytes=1024) as c:
        with pytest.raises(ValueError, match="max_message_bytes"):
            c.get_action(obs)
    assert server.running


def test_policy_exception_is_reported_not_fatal():
    def flaky(obs):
        if obs.get("boom"):
            raise RuntimeError("kaboom")
        return {"action.x": np.zeros((1, 16, 2), np.float32)}

    with PolicyServer(flaky, port=0) as srv, PolicyClient(port=srv.port, timeout_ms=5000) as c:
        with pytest.raises(ServerError, match="kaboom") as e:
            c.get_action({"boom": 1})
        assert e.value.code == "policy_error"
        assert c.get_action({"state.x": np.zeros(2, np.float32)})["action.x"].shape == (1, 16, 2)


def test_port_in_use_clear_error():
    with PolicyServer(lambda o: {"a": np.zeros(1)}, port=0) as srv:
        with pytest.raises(OSError, match="cannot bind"):
            PolicyServer(lambda o: {"a": np.zeros(1)}, port=srv.port).start()


def test_protocol_never_unpickles():
    from groot_kit.runtime.protocol import ProtocolError, object_array_npy_bytes
    with pytest.raises(ProtocolError):
        unpackb(msgpack.packb({"x": {"__ndarray_class__": True, "as_npy": object_array_npy_bytes()}}))
    with pytest.raises(TypeError):
        packb({"x": np.array([1, "a"], dtype=object)})


def _fast_fn(obs):
    s = np.asarray(obs["state.arm"], np.float32).reshape(-1, 1, 7)
    return {"action.arm": np.repeat(s, 16, axis=1), "action.gripper": np.zeros((s.shape[0], 16, 1), np.float32)}


def test_load_loopback_with_malformed_mix(tiny):
    """2,000 requests (200 malformed) on loopback against a fast policy_fn: all answered, no crash.
    (benchmarks/server_load.py runs the full 10,000 / 1,000 against the tiny GrootPolicy.)"""
    from groot_kit.runtime.loadtest import run_load
    fn, obs = tiny
    with PolicyServer(_fast_fn, fn.modality_config(), port=0, api_token=TOKEN, max_message_bytes=256 * 1024,
                      observation_spec=fn.observation_spec()) as srv:
        res = run_load(srv.port, obs, total=2000, malformed=200, api_token=TOKEN, max_message_bytes=256 * 1024,
                       time_limit_s=50, is_alive=lambda: srv.running)
    assert res["requests_sent"] == 2000, res
    assert res["malformed_sent"] == 200 and res["malformed_answered"] == 200, res
    assert res["valid_ok"] == 1800 and res["unexpected"] == 0 and res["timeouts"] == 0, res
    assert res["crashes"] == 0
