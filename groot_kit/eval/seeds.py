"""The one seed rule of every closed-loop evaluation, the seed ranges, and the 95% interval.

Seed rule: an evaluation that starts at `seed` runs episode i on scene seed ``seed + i`` (cube
colours, poses, start pose and instruction all follow from it) and samples the policy's flow noise
from ``torch.Generator().manual_seed(seed + i)``. So the same start seed gives the same scenes and,
on the same machine, the same actions.

Seed ranges (keep tuning and reporting apart; never tune on the reported ones):

    0 ..  99_999        training data: scenes of recorded demos and pretraining datasets
    100_000 .. 299_999  tuning: the recipes' own evaluations (finetune, sample efficiency, pretrain)
    300_000 .. 699_999  reported figures (README and docs tables), each table naming its start seed
    700_000 ..          reserved for independent re-checks: refused unless `allow_reserved=True`
"""
from __future__ import annotations

import math

TRAIN_SEEDS = range(0, 100_000)
TUNING_SEEDS = range(100_000, 300_000)
REPORT_SEEDS = range(300_000, 700_000)
RESERVED_SEED_START = 700_000
FINETUNE_EVAL_OFFSET = 100_000   # finetune/sample-efficiency run `seed` evaluates from 100_000 + 1000*seed


def scene_seeds(seed: int, n_episodes: int, allow_reserved: bool = False) -> list[int]:
    """The scene seeds of an evaluation of `n_episodes` starting at `seed` (the seed rule above)."""
    if n_episodes < 0:
        raise ValueError(f"n_episodes must be >= 0, got {n_episodes}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if not allow_reserved and seed + n_episodes > RESERVED_SEED_START:
        raise ValueError(f"seeds {seed}..{seed + n_episodes - 1} reach into the reserved range (>= "
                         f"{RESERVED_SEED_START}, kept for independent re-checks); start below "
                         f"{RESERVED_SEED_START - n_episodes} or pass allow_reserved=True for a re-check")
    return [seed + i for i in range(n_episodes)]


def finetune_eval_seed(run_seed: int) -> int:
    """Start seed of the closed-loop evaluation of a fine-tuning run with seed `run_seed` (tuning range)."""
    return FINETUNE_EVAL_OFFSET + 1000 * int(run_seed)


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval (95% for z=1.96) of a success rate `successes / n`; (0, 1) for n=0."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in 0..n={n}, got {successes}")
    p = successes / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)
