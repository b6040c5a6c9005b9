"""Stutter at chunk boundaries, per execution mode, on the trained tiny base (no threads, no clock).

    python benchmarks/chunk_boundaries.py            # so100 reach scene, 96 ticks, delay 0 and 2

Each chunk is sampled with fresh noise from the same observation (as System 1 does every few ticks),
so chunks agree within themselves but not with each other. Reports the mean action jump at chunk
boundaries and inside chunks (normalised units, the robot's real action dims) for whole / replan /
ensemble / rtc (soft replacement, and Black et al.'s guidance). Writes
benchmarks/results/chunk_boundaries.json.
"""
from __future__ import annotations

import json
import sys

import torch

from groot_kit.chunking import compare_modes
from groot_kit.model.policy import GrootPolicy
from groot_kit.paths import REPO_ROOT, TINY_BASE
from groot_kit.runtime.systems import GrootSystems
from groot_kit.sim import make_env
from groot_kit.sim.policy_io import sim_observation


def main() -> int:
    torch.set_num_threads(1)
    policy = GrootPolicy.from_pretrained(REPO_ROOT / TINY_BASE).eval()
    proc = policy.get_processor("so100")
    env = make_env("so100", "reach", image_size=64, seed=3, num_cubes=1)
    o, _ = env.reset(seed=3)
    obs = sim_observation(env, o, proc.modality)
    env.close()
    out = {"command": "python benchmarks/chunk_boundaries.py", "embodiment": "so100", "ticks": 96,
           "replan_every": 8, "results": {}}
    for method in ("replace", "guided"):
        systems = GrootSystems(policy, proc, rtc_method=method)
        feats = systems.system2(obs)

        def chunk_fn(t, prefix=None, prefix_len=0):
            torch.manual_seed(1000 + t)
            return systems.system1(feats, obs, prefix=prefix, prefix_len=prefix_len)
        for delay in (0, 2):
            res = compare_modes(chunk_fn, num_steps=96, replan_every=8, delay=delay)
            out["results"][f"rtc_{method}_delay{delay}"] = res
            print(f"rtc={method} delay={delay}: " + ", ".join(
                f"{m} {r['boundary_mean']:.3f}/{r['inside_mean']:.3f}" for m, r in res.items()))
    path = REPO_ROOT / "benchmarks" / "results" / "chunk_boundaries.json"
    path.write_text(json.dumps(out, indent=1, default=float))
    print(f"boundary/inside mean jumps; written to {path.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
