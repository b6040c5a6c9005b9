"""Fitting a training run into a wall-time budget (TrainConfig.time_budget_minutes)."""
from __future__ import annotations

import time


class TimeBudget:
    """Fits training into `minutes` of wall time: at each logged row it sets cfg.max_steps = step +
    (time left) x (measured steps/s), until `freeze_after` of the budget has passed, then freezes it.
    The loop re-reads cfg.max_steps each step and the cosine schedule follows it. A resumed run gets
    a fresh budget.

    The first steps decode videos into the sample cache and run slower (on 2 cores, 2.6-3.4 steps/s
    against 5.6 once cached). A rate measured then would fix too few steps, so while a row reports
    more than `warm_miss` of its reads missing the cache (``row["cache_miss"]``) the freeze waits,
    until `freeze_by` of the budget at the latest."""

    def __init__(self, cfg, minutes: float, log=print, freeze_after: float = 0.6, min_steps: int = 60,
                 warm_miss: float = 0.1, freeze_by: float = 0.9):
        self.cfg, self.budget, self.log, self.freeze_after = cfg, minutes * 60, log, freeze_after
        self.min_steps, self.step0, self.warm_miss, self.freeze_by = min_steps, 0, warm_miss, freeze_by
        self.t0, self.done = time.perf_counter(), False

    def start(self, step: int = 0) -> None:
        self.t0, self.step0 = time.perf_counter(), step

    def __call__(self, step: int, row: dict) -> None:
        ran = step - self.step0
        if self.done or ran < self.min_steps:
            return
        elapsed = time.perf_counter() - self.t0
        rate = float(row.get("steps_per_s") or ran / max(elapsed, 1e-9))
        self.cfg.max_steps = max(step + 1, int(step + max(0.0, self.budget - elapsed) * rate))
        warming = float(row.get("cache_miss") or 0.0) > self.warm_miss
        if elapsed > self.freeze_after * self.budget and (not warming or elapsed > self.freeze_by * self.budget):
            self.done = True
            why = f", the cache still filling ({row['cache_miss']:.0%} misses)" if warming else ""
            self.log(f"  time budget {self.budget / 60:.0f} min at {1 / max(rate, 1e-9):.3f} s/step "
                     f"({elapsed / self.budget:.0%} of it gone{why}): max_steps fixed at {self.cfg.max_steps}")
