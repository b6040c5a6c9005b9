"""Action-chunk execution: turn time-stamped chunks [H, D] into one action per control step.

One implementation shared by everything that runs a policy step by step: `GrootPolicy.select_action`,
the closed-loop evaluator (`groot_kit.eval`), the dual-rate runtime (`groot_kit.runtime.dual_rate`)
and the RL base policy. A chunk is [H, D] or, for a batch of robots stepped together, [H, B, D].

Real-time alignment: a chunk sampled from the observation of control step r predicts actions for
steps r, r+1, ..., r+H-1. The executor indexes it by absolute step: the action for step k is
chunk[k - r]; actions for steps that passed while it was computing are dropped, never replayed late.

Modes (H = chunk length, n = `replan_every`):
    "whole"     execute every remaining action of a chunk; the next one is due when it runs out
                (so each chunk runs H - dropped steps; stutters at every switch)
    "replan"    a new chunk is due n steps after the previous one was activated; execute only it
    "ensemble"  as "replan", but execute the weighted mean of all live chunks' predictions for the
                current step, weights exp(-m * i) with i = 0 for the oldest chunk (ACT's temporal
                ensembling, m = `ensemble_decay`); chunks are time-aligned before blending
    "rtc"       real-time chunking: executed as "replan", but each request carries the current chunk's
                actions still planned from the observation's step (`ChunkRequest.prefix`) and the
                number of them that will run before the new chunk takes over (`prefix_len`); the
                sampler inpaints them (groot_kit.model.rtc), so chunks join without a jump and
                without ensembling's lag
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

MODES = ("whole", "replan", "ensemble", "rtc")

# ---------------------------------------------------------------------------- chunk execution
@dataclass
class _Chunk:
    obs_step: int        # control step of the observation it was sampled from: chunk[i] is for step obs_step + i
    activate_at: int     # first step it may be used
    actions: np.ndarray  # [H, D]

    def covers(self, t: int, horizon: int) -> bool:
        return self.obs_step <= t < self.obs_step + horizon


class ChunkExecutor:
    """Turns time-stamped action chunks [H, D] into one action per control step (see module doc).

    Synchronous use (no latency): `if ex.needs_chunk(): ex.add_chunk(chunk)` then `ex.next_action()`.
    Prefetch use: `ex.add_chunk(chunk, obs_step=r, activate_at=due)`; the action for step k comes
    from chunk[k - r]. With no chunk covering the step, the last action is held (`held` counts it).
    """

    def __init__(self, mode: str = "ensemble", horizon: int = 16, replan_every: int | None = None,
                 ensemble_decay: float = 0.1):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        n = horizon if mode == "whole" else (replan_every or (2 if mode == "ensemble" else horizon // 2))
        if not 1 <= n <= horizon:
            raise ValueError(f"replan_every must be in 1..{horizon} (the chunk length), got {n}")
        if ensemble_decay < 0:
            raise ValueError("ensemble_decay (m) must be >= 0")
        self.mode, self.horizon, self.replan_every, self.m = mode, horizon, n, float(ensemble_decay)
        self.reset()

    def reset(self) -> None:
        self.step_idx = 0
        self.chunks: list[_Chunk] = []                   # active chunks, oldest first
        self.pending: list[_Chunk] = []                  # added, waiting for their activation step
        self.boundaries: list[int] = []                  # steps whose action first used a new chunk
        self.trace: list[tuple[int, int]] = []           # per step (obs_step, index) of the newest chunk; (-1, -1) held
        self.held = 0                                    # steps with no covering chunk (last action repeated)
        self._last: np.ndarray | None = None
        self._newest: _Chunk | None = None               # most recently added chunk (active or pending)
        self._newest_active_at: int | None = None

    # -- synchronous schedule
    def needs_chunk(self) -> bool:
        if self._newest is None:
            return True
        return self.step_idx - self._newest.obs_step >= self.replan_every

    # -- prefetch schedule
    def planned(self, t: int) -> np.ndarray | None:
        """The newest chunk's actions for steps t, t+1, ... [P, D] (None if it does not cover t)."""
        c = self._newest
        if c is None or not c.covers(t, self.horizon):
            return None
        return c.actions[t - c.obs_step:].copy()

    def next_due(self) -> int:
        """Step at which the chunk after the newest one should take over: n steps after the newest
        was (or will be) activated, and no later than the step its coverage runs out."""
        c = self._newest
        if c is None:
            return self.step_idx
        start = max(c.activate_at, c.obs_step)
        return min(start + self.replan_every, c.obs_step + self.horizon)

    def add_chunk(self, chunk, obs_step: int | None = None, activate_at: int | None = None) -> None:
        c = np.asarray(chunk, dtype=np.float64)
        if c.ndim == 3 and c.shape[0] == 1 < self.horizon:   # [1, H, D]: one robot with a batch axis
            c = c[0]
        if c.ndim < 2 or c.shape[0] < self.horizon:
            raise ValueError(f"chunk must be [H={self.horizon}, D] or [H, B, D], got {list(c.shape)}")
        r = self.step_idx if obs_step is None else int(obs_step)
        if r > self.step_idx:
            raise ValueError(f"chunk from step {r} is in the future (now {self.step_idx})")
        act = max(self.step_idx if activate_at is None else int(activate_at), r)
        ch = _Chunk(r, act, c[: self.horizon])
        self._newest = ch
        self.pending.append(ch)

    def _activate(self, t: int) -> None:
        ready = [c for c in self.pending if c.activate_at <= t]
        if not ready:
            return
        self.pending = [c for c in self.pending if c.activate_at > t]
        for c in ready:
            if self.mode != "ensemble":
                self.chunks = []
            self.chunks.append(c)
            self.boundaries.append(t)

    def _blend(self, t: int, live: list[_Chunk]) -> np.ndarray:
        if self.mode == "ensemble" and len(live) > 1:
            w = np.exp(-self.m * np.arange(len(live)))       # i = 0: oldest chunk (ACT)
            return sum(wi * c.actions[t - c.obs_step] for wi, c in zip(w, live)) / w.sum()
        return live[-1].actions[t - live[-1].obs_step]

    def peek_action(self) -> np.ndarray:
        """The action `next_action` will return for the current step, without advancing."""
        t = self.step_idx
        self._activate(t)
        live = [c for c in self.chunks if c.covers(t, self.horizon)]
        if not live:
            if self._last is None:
                raise RuntimeError("no chunk covers this step; call add_chunk when needs_chunk() is True")
            return self._last.copy()
        return np.asarray(self._blend(t, live), dtype=np.float32)

    def next_action(self) -> np.ndarray:
        t = self.step_idx
        self._activate(t)
        live = [c for c in self.chunks if c.covers(t, self.horizon)]
        self.chunks = live
        if not live:
            if self._last is None:
                raise RuntimeError("no chunk covers this step; call add_chunk when needs_chunk() is True")
            self.held += 1
            self.trace.append((-1, -1))
            self.step_idx += 1
            return self._last.copy()
        a = self._blend(t, live)
        self.trace.append((live[-1].obs_step, t - live[-1].obs_step))
        self.step_idx += 1
        self._last = np.asarray(a, dtype=np.float32)
        return self._last.copy()


@dataclass
class ChunkRequest:
    obs_step: int                 # control step of the observation
    due: int                      # step at which the executor wants the chunk
    observation: Any = None
    t_submit: float = 0.0
    late: bool = False            # its due step passed before it arrived
    prefix: np.ndarray | None = None   # "rtc": the current chunk's actions planned from obs_step on [P, D]
    prefix_len: int = 0                # "rtc": how many of them run before this chunk is due


class ChunkPrefetcher:
    """Clock-free prefetch bookkeeping on top of a ChunkExecutor (shared by the threaded runtime and
    the deterministic `compare_modes(delay=...)` simulation): when to request the next chunk, when
    it becomes active, late / stale counting.

    Per tick k: `accept(k, request, chunk)` for a chunk that came back, `check_late(k)`, then
    `executor.next_action()`, then `request(k, lookahead)` which returns a ChunkRequest to hand to
    System 1 (or None)."""

    def __init__(self, executor: ChunkExecutor):
        self.ex = executor
        self.in_flight: ChunkRequest | None = None
        self.late_chunks = 0
        self.stale_chunks = 0                      # arrived after its whole coverage had passed
        self.delays: list[int] = []                # ticks from observation to arrival (= actions dropped)
        self.lookaheads: list[int] = []

    def request(self, k: int, lookahead: int, observation: Any = None) -> ChunkRequest | None:
        if self.in_flight is not None:
            return None
        due = self.ex.next_due()
        L = max(1, min(int(lookahead), self.ex.replan_every, self.ex.horizon - 1))
        if k < due - L:
            return None
        self.lookaheads.append(L)
        self.in_flight = ChunkRequest(k, due, observation, time.perf_counter())
        if self.ex.mode == "rtc":
            prefix = self.ex.planned(k)
            if prefix is not None:
                self.in_flight.prefix, self.in_flight.prefix_len = prefix, min(due - k, len(prefix))
        return self.in_flight

    def check_late(self, k: int) -> None:
        r = self.in_flight
        if r is not None and not r.late and k >= r.due:
            r.late = True
            self.late_chunks += 1

    def accept(self, k: int, req: ChunkRequest, chunk) -> bool:
        """A chunk for `req` arrived at step k (before this tick's action). False if it was stale."""
        if req is self.in_flight:
            self.in_flight = None
        if not req.late and k > req.due:
            req.late = True
            self.late_chunks += 1
        self.delays.append(k - req.obs_step)
        if k >= req.obs_step + self.ex.horizon:
            self.stale_chunks += 1
            return False
        self.ex.add_chunk(chunk, obs_step=req.obs_step, activate_at=max(req.due, k))
        return True

    def summary(self) -> dict:
        d = np.asarray(self.delays)
        out = {"late_chunks": int(self.late_chunks), "stale_chunks": int(self.stale_chunks),
               "starved_ticks": int(self.ex.held)}
        if len(d):
            out.update(delay_ticks_p50=float(np.percentile(d, 50)), delay_ticks_max=int(d.max()))
        if self.lookaheads:
            out.update(lookahead_p50=float(np.median(self.lookaheads)), lookahead_max=int(max(self.lookaheads)))
        return out


def discontinuity(actions, boundaries) -> dict[str, float]:
    """Action jumps |a_t - a_{t-1}| (L2) at chunk boundaries vs. inside chunks."""
    a = np.asarray(actions, dtype=np.float64)
    if len(a) < 2:
        return {}
    jumps = np.linalg.norm(np.diff(a, axis=0), axis=-1)       # jumps[t-1] = |a_t - a_{t-1}|
    b = sorted({t for t in boundaries if 1 <= t < len(a)})
    inside = np.setdiff1d(np.arange(1, len(a)), b)
    out = {"mean_step": float(jumps.mean()), "max_step": float(jumps.max())}
    if b:
        out["boundary_mean"] = float(jumps[np.array(b) - 1].mean())
        out["boundary_max"] = float(jumps[np.array(b) - 1].max())
    if len(inside):
        out["inside_mean"] = float(jumps[inside - 1].mean())
    return out


def compare_modes(chunk_fn: Callable[[int], np.ndarray], num_steps: int = 480, horizon: int = 16,
                  replan_every: int = 4, ensemble_decay: float = 0.1, delay: int = 0,
                  lookahead: int | None = None, modes: tuple[str, ...] | None = None) -> dict[str, dict]:
    """Discontinuity of each execution mode on the same chunk source (no threads, no clock).

    chunk_fn(step) -> chunk [H, D] predicted from the observation at `step`; for "rtc" it is called as
    chunk_fn(step, prefix=..., prefix_len=...) (modes default: every mode chunk_fn can serve). delay = 0: chunks are
    sampled inside the tick (synchronous). delay = d > 0: prefetch as in DualRateRuntime, each chunk
    arriving d ticks after its observation, requested `lookahead` (default d + 1) ticks before due.
    """
    import inspect
    takes_prefix = "prefix" in inspect.signature(chunk_fn).parameters
    res = {}
    for mode in modes or tuple(m for m in MODES if m != "rtc" or takes_prefix):
        ex = ChunkExecutor(mode, horizon, None if mode == "whole" else replan_every, ensemble_decay)
        pf = ChunkPrefetcher(ex)
        acts, arrive = [], 0

        def sample(t, prefix=None, prefix_len=0, _rtc=mode == "rtc"):
            return chunk_fn(t, prefix=prefix, prefix_len=prefix_len) if _rtc else chunk_fn(t)
        if delay > 0:
            pf.accept(0, pf.request(0, 1), sample(0))
        pending: tuple[ChunkRequest, np.ndarray] | None = None
        for t in range(num_steps):
            if delay <= 0:
                if ex.needs_chunk():
                    ex.add_chunk(sample(t, ex.planned(t)))
                acts.append(ex.next_action())
                continue
            if pending is not None and t >= arrive:
                pf.accept(t, *pending)
                pending = None
            pf.check_late(t)
            acts.append(ex.next_action())
            req = pf.request(t, lookahead or delay + 1)
            if req is not None:
                pending, arrive = (req, sample(t, req.prefix, req.prefix_len)), t + delay
        res[mode] = discontinuity(acts, ex.boundaries)
        res[mode]["chunks"] = len(ex.boundaries)
        if delay > 0:
            res[mode].update(pf.summary())
    return res
