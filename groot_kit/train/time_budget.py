"""Fitting a training run into a wall-time budget (TrainConfig.time_budget_minutes)."""
from __future__ import annotations

import time


class TimeBudget:
    """Fits training into `minutes` of wall time: at each logged row it sets cfg.max_steps = step +
    (time left) x (measured steps/s), until `freeze_after` of the budget has passed, then freezes it.
    The loop re-reads cfg.max_steps each step and the cosine schedule follows it. The first steps
    decode videos and run slower; later rows correct the estimate. A resumed run gets a fresh budget."""

    def __init__(self, cfg, minutes: float, log=print, freeze_after: float = 0.6, min_steps: int = 60):
        self.cfg, self.budget, self.log, self.freeze_after = cfg, minutes * 60, log, freeze_after
        self.min_steps, self.step0 = min_steps, 0
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
        if elapsed > self.freeze_after * self.budget:
            self.done = True
            self.log(f"  time budget {self.budget / 60:.0f} min at {1 / max(rate, 1e-9):.3f} s/step: "
                     f"max_steps fixed at {self.cfg.max_steps}")
