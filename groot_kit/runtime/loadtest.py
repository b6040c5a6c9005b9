"""Loopback load test of the policy server: N requests with a share of malformed ones mixed in.

Used by `benchmarks/server_load.py` (full 10,000) and by the tests (smaller count).
"""
from __future__ import annotations

import time

import numpy as np

from .client import PolicyClient
from .fuzz import malformed_requests
from .protocol import packb


def run_load(port: int, observation: dict, *, total: int = 10_000, malformed: int = 1_000,
             api_token: str | None = None, max_message_bytes: int = 64 * 1024 * 1024,
             timeout_ms: int = 10_000, seed: int = 0, time_limit_s: float | None = None,
             is_alive=None) -> dict:
    """Send `total` requests (of which `malformed` are bad) in a shuffled order over one REQ socket.

    Returns latency percentiles for valid and malformed requests, throughput, how many malformed
    requests got an error reply, unexpected outcomes and `crashes` (server stopped answering).
    """
    rng = np.random.default_rng(seed)
    bad = malformed_requests(observation, api_token, max_message_bytes)
    good = packb({"endpoint": "get_action", "data": observation, **({"api_token": api_token} if api_token else {})})
    kinds = np.zeros(total, dtype=bool)
    kinds[rng.choice(total, size=min(malformed, total), replace=False)] = True
    lat_ok, lat_bad = [], []
    answered_bad = ok = unexpected = timeouts = 0
    by_kind: dict[str, int] = {}
    t_begin = time.perf_counter()
    sent = 0
    with PolicyClient(port=port, api_token=api_token, timeout_ms=timeout_ms, max_message_bytes=None) as c:
        for i in range(total):
            if time_limit_s is not None and time.perf_counter() - t_begin > time_limit_s:
                break
            if kinds[i]:
                kind, raw = bad[int(rng.integers(len(bad)))]
            else:
                kind, raw = "valid", good
            t0 = time.perf_counter()
            try:
                reply = c.request_raw(raw)
            except TimeoutError:
                timeouts += 1
                continue
            finally:
                sent += 1
            dt = (time.perf_counter() - t0) * 1e3
            is_err = isinstance(reply, dict) and "error" in reply
            if kinds[i]:
                lat_bad.append(dt)
                expect_error = kind != "ping_ok_control"
                if is_err or not expect_error:
                    answered_bad += 1
                    by_kind[kind] = by_kind.get(kind, 0) + 1
                else:
                    unexpected += 1
            else:
                lat_ok.append(dt)
                if is_err:
                    unexpected += 1
                else:
                    ok += 1
        wall = time.perf_counter() - t_begin
        alive = c.ping()
    if is_alive is not None:
        alive = alive and bool(is_alive())

    def pct(x, q):
        return float(np.percentile(x, q)) if len(x) else float("nan")

    lat_all = lat_ok + lat_bad
    return {
        "requests_sent": sent, "valid_ok": ok, "malformed_sent": int(kinds[:sent].sum()),
        "malformed_answered": answered_bad, "malformed_by_kind": by_kind, "unexpected": unexpected,
        "timeouts": timeouts, "crashes": 0 if alive else 1, "wall_s": wall,
        "throughput_rps": sent / wall if wall > 0 else float("nan"),
        "latency_ms": {"p50": pct(lat_all, 50), "p99": pct(lat_all, 99), "max": max(lat_all) if lat_all else float("nan")},
        "valid_latency_ms": {"p50": pct(lat_ok, 50), "p99": pct(lat_ok, 99)},
        "malformed_latency_ms": {"p50": pct(lat_bad, 50), "p99": pct(lat_bad, 99)},
    }
