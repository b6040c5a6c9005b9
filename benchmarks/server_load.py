"""Policy-server load test on loopback: 10,000 requests, 1,000 of them malformed, against the tiny
GrootPolicy served from a separate process (`python -m groot_kit.runtime.cli_hooks`).

    .venv/bin/python benchmarks/server_load.py [--total 10000 --malformed 1000 --out server_load.json]

Prints and writes JSON: latency p50/p99 (valid / malformed / all), throughput, malformed answered,
unexpected replies, timeouts, crashes (0 = server still answers ping and its process is alive).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--total", type=int, default=10_000)
    ap.add_argument("--malformed", type=int, default=1_000)
    ap.add_argument("--max-message-mb", type=float, default=1.0)
    ap.add_argument("--time-limit-s", type=float, default=900.0)
    ap.add_argument("--out", default="benchmarks/results/server_load.json")
    args = ap.parse_args(argv)

    import torch
    torch.set_num_threads(1)
    from groot_kit.model.policy import GrootPolicy
    from groot_kit.runtime.client import PolicyClient
    from groot_kit.runtime.loadtest import run_load
    from groot_kit.runtime.policy_fn import demo_observation, demo_processor

    policy = GrootPolicy("tiny")
    obs = demo_observation(demo_processor(policy), image_hw=(64, 64))
    port, token = free_port(), "bench-token"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GROOT_KIT_API_TOKEN": token}
    cmd = [sys.executable, "-m", "groot_kit.runtime.cli_hooks", "--host", "127.0.0.1", "--port", str(port),
           "--max-message-mb", str(args.max_message_mb), "--threads", "1"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with PolicyClient(port=port, api_token=token, timeout_ms=500) as c:
            t0 = time.time()
            while not c.ping():
                if proc.poll() is not None or time.time() - t0 > 120:
                    raise RuntimeError(f"server did not start:\n{proc.stdout.read() if proc.stdout else ''}")
        res = run_load(port, obs, total=args.total, malformed=args.malformed, api_token=token,
                       max_message_bytes=int(args.max_message_mb * 1024 * 1024),
                       time_limit_s=args.time_limit_s, is_alive=lambda: proc.poll() is None)
        res.update(policy="tiny GrootPolicy (random init), K=4, 1 camera 64px, batch 1, server in its own process, "
                          "1 torch thread each side, one REQ client", host="127.0.0.1", cpu_count=os.cpu_count(),
                   torch=torch.__version__)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    text = json.dumps(res, indent=2)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {out}")
    return 0 if res["crashes"] == 0 and res["malformed_answered"] == res["malformed_sent"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
