"""Dual-rate runtime: System 2 (vision-language) slow on its own thread, System 1 (action head) at
the control rate, chunk execution modes with temporal ensembling, and timing statistics.

    systems = GrootSystems(policy, processor)               # or any two callables
    rt = DualRateRuntime(systems.system2, systems.system1, control_hz=120, system2_hz=10,
                         mode="ensemble", replan_every=4)
    with rt.started(first_obs):
        for t in range(n):
            action = rt.step(obs)                            # one control tick (System 1)
            obs = env_step(action)
    rt.stats()                                               # p50/p99 latency, rates, jitter, misses

Threads: System 2 runs in a worker thread that wakes every 1/system2_hz seconds (sleep to the next
deadline), encodes the latest observation the control loop published, and publishes the features
with a sequence number and timestamps. System 1 runs in the caller's thread: each tick reads the
latest features (never waits for System 2 after the first), samples a new chunk when the execution
mode asks for one, and returns one action. torch intra-op threads are set per thread
(System 2: `system2_threads`, System 1: `system1_threads`) so the two do not oversubscribe the cores.

Chunk execution modes (H = chunk length):
    "whole"     execute all H actions of a chunk, then sample the next (stutters every H steps)
    "replan"    sample a new chunk every `replan_every` steps, execute its first steps
    "ensemble"  sample every `replan_every` steps and execute the weighted mean of all overlapping
                chunks' predictions for the current step, weights exp(-m * i) with i = 0 for the
                oldest chunk (ACT's temporal ensembling, m = `ensemble_decay`)
"""
from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

MODES = ("whole", "replan", "ensemble")


# ---------------------------------------------------------------------------- shared slot
@dataclass
class Published:
    value: Any
    seq: int            # 1, 2, ... (0 = nothing yet)
    t_input: float      # perf_counter time of the observation it was computed from
    t_done: float       # perf_counter time it was published

    def age(self, now: float | None = None) -> float:
        """Seconds since the observation behind this value was taken."""
        return (time.perf_counter() if now is None else now) - self.t_input


class LatestSlot:
    """Thread-safe 'latest value' mailbox: writers overwrite, readers never block (except `wait`)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._item = Published(None, 0, 0.0, 0.0)

    def publish(self, value: Any, t_input: float | None = None) -> int:
        now = time.perf_counter()
        with self._cond:
            self._item = Published(value, self._item.seq + 1, now if t_input is None else t_input, now)
            self._cond.notify_all()
            return self._item.seq

    def get(self) -> Published:
        with self._cond:
            return self._item

    def wait(self, after_seq: int = 0, timeout: float | None = None) -> Published | None:
        """Block until a value newer than `after_seq` exists (None on timeout)."""
        with self._cond:
            ok = self._cond.wait_for(lambda: self._item.seq > after_seq, timeout)
            return self._item if ok else None


# ---------------------------------------------------------------------------- statistics
class RateStats:
    """Start times and durations of a periodic task -> achieved rate, latency and jitter percentiles."""

    def __init__(self, name: str, nominal_hz: float | None = None):
        self.name, self.nominal_hz = name, nominal_hz
        self.starts: list[float] = []
        self.durations: list[float] = []
        self.missed = 0
        self._lock = threading.Lock()

    def record(self, t_start: float, t_end: float, missed: bool = False) -> None:
        with self._lock:
            self.starts.append(t_start)
            self.durations.append(t_end - t_start)
            self.missed += int(missed)

    def summary(self) -> dict[str, float]:
        with self._lock:
            s, d, missed = np.asarray(self.starts), np.asarray(self.durations) * 1e3, self.missed
        out: dict[str, float] = {"count": int(len(s)), "missed_deadlines": int(missed)}
        if len(d):
            out.update(latency_p50_ms=float(np.percentile(d, 50)), latency_p99_ms=float(np.percentile(d, 99)),
                       latency_max_ms=float(d.max()))
        if len(s) > 1:
            periods = np.diff(s) * 1e3
            out["achieved_hz"] = float((len(s) - 1) / (s[-1] - s[0]))
            if self.nominal_hz:
                jit = np.abs(periods - 1e3 / self.nominal_hz)
                out.update(nominal_hz=float(self.nominal_hz), jitter_p50_ms=float(np.percentile(jit, 50)),
                           jitter_p99_ms=float(np.percentile(jit, 99)))
        return out


# ---------------------------------------------------------------------------- chunk execution
class ChunkExecutor:
    """Turns a stream of action chunks [H, D] into one action per control step (see module doc)."""

    def __init__(self, mode: str = "ensemble", horizon: int = 16, replan_every: int | None = None,
                 ensemble_decay: float = 0.1):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        n = horizon if mode == "whole" else (replan_every or (horizon // 2 if mode == "replan" else 2))
        if not 1 <= n <= horizon:
            raise ValueError(f"replan_every must be in 1..{horizon} (the chunk length), got {n}")
        if ensemble_decay < 0:
            raise ValueError("ensemble_decay (m) must be >= 0")
        self.mode, self.horizon, self.replan_every, self.m = mode, horizon, n, float(ensemble_decay)
        self.reset()

    def reset(self) -> None:
        self.step_idx = 0
        self.chunks: list[tuple[int, np.ndarray]] = []   # (start step, chunk [H, D])
        self.boundaries: list[int] = []                  # steps whose action first used a new chunk

    def needs_chunk(self) -> bool:
        if not self.chunks:
            return True
        return self.step_idx - self.chunks[-1][0] >= self.replan_every

    def add_chunk(self, chunk) -> None:
        c = np.asarray(chunk, dtype=np.float64)
        if c.ndim == 3 and c.shape[0] == 1:
            c = c[0]
        if c.ndim != 2 or c.shape[0] < self.horizon:
            raise ValueError(f"chunk must be [H={self.horizon}, D], got {list(c.shape)}")
        if self.mode != "ensemble":
            self.chunks = []
        self.chunks.append((self.step_idx, c[: self.horizon]))
        self.boundaries.append(self.step_idx)

    def next_action(self) -> np.ndarray:
        t = self.step_idx
        live = [(s, c) for s, c in self.chunks if s <= t < s + self.horizon]
        if not live:
            raise RuntimeError("no chunk covers this step; call add_chunk when needs_chunk() is True")
        self.chunks = live
        if self.mode == "ensemble" and len(live) > 1:
            w = np.exp(-self.m * np.arange(len(live)))       # i = 0: oldest chunk (ACT)
            a = sum(wi * c[t - s] for wi, (s, c) in zip(w, live)) / w.sum()
        else:
            s, c = live[-1]
            a = c[t - s]
        self.step_idx += 1
        return np.asarray(a, dtype=np.float32)


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


# ---------------------------------------------------------------------------- GrootPolicy systems
class GrootSystems:
    """System 2 / System 1 callables for a GrootPolicy.

    Observations are either raw GR00T-style dicts (with a `processor`, a GrootProcessor) or
    model batches (pixel_values, instruction, state, embodiment_id). system1 returns a
    normalised chunk [H, Dmax_a] (numpy); `decode(action)` unnormalises one step with the processor.
    """

    def __init__(self, policy, processor=None, num_steps: int | None = None, embodiment_id: int | None = None):
        self.policy, self.processor, self.num_steps = policy.eval(), processor, num_steps
        self.embodiment_id = embodiment_id

    def _batch(self, obs: dict) -> dict:
        return self.processor(obs) if self.processor is not None else obs

    def _state(self, obs: dict) -> tuple[torch.Tensor, torch.Tensor]:
        if self.processor is None:
            return obs["state"], obs["embodiment_id"]
        p = self.processor
        parts = []
        for key, s in p.modality.state.items():
            x = torch.as_tensor(np.asarray(obs[f"state.{key}"], dtype=np.float32)).reshape(-1, s.dim)
            parts.append(p.stats.normalize("state", key, x))
        x = torch.cat(parts, -1) if parts else torch.zeros(1, 0)
        state = torch.nn.functional.pad(x, (0, p.max_state_dim - x.shape[-1]))
        return state, torch.full((state.shape[0],), p.embodiment_id, dtype=torch.long)

    @torch.no_grad()
    def system2(self, obs: dict):
        batch = self._batch(obs)
        self.policy.validate_batch(batch)
        return self.policy.encode_vl(batch)

    @torch.no_grad()
    def system1(self, features, obs: dict) -> np.ndarray:
        vl, vl_mask = features
        state, eid = self._state(obs)
        if self.embodiment_id is not None:
            eid = torch.full_like(eid, self.embodiment_id)
        dev = self.policy.device
        chunk = self.policy.action_head.sample(vl, state.to(dev), eid.to(dev), num_steps=self.num_steps,
                                               vl_mask=vl_mask)
        return chunk[0].float().cpu().numpy()

    def decode(self, action: np.ndarray) -> dict[str, np.ndarray]:
        return self.processor.decode_action(torch.as_tensor(action)[None, None])


# ---------------------------------------------------------------------------- runtime
class DualRateRuntime:
    """System 2 thread at `system2_hz`, System 1 + chunk execution at `control_hz` in the caller's thread."""

    def __init__(self, system2: Callable[[Any], Any], system1: Callable[[Any, Any], Any], *,
                 control_hz: float = 120.0, system2_hz: float = 10.0, mode: str = "ensemble",
                 horizon: int = 16, replan_every: int | None = None, ensemble_decay: float = 0.1,
                 system2_threads: int | None = None, system1_threads: int | None = 1):
        if control_hz <= 0 or system2_hz <= 0:
            raise ValueError("control_hz and system2_hz must be positive")
        self.system2_fn, self.system1_fn = system2, system1
        self.control_hz, self.system2_hz = float(control_hz), float(system2_hz)
        self.executor = ChunkExecutor(mode, horizon, replan_every, ensemble_decay)
        import os
        ncpu = os.cpu_count() or 1
        self.system2_threads = system2_threads or max(1, ncpu - 1)
        self.system1_threads = system1_threads
        self.observations = LatestSlot()
        self.features = LatestSlot()
        self.s2_stats = RateStats("system2", system2_hz)
        self.s1_stats = RateStats("system1_chunk")          # one entry per sampled chunk
        self.tick_stats = RateStats("control", control_hz)  # one entry per control tick
        self.feature_ages_ms: list[float] = []
        self.actions: list[np.ndarray] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._s2_error: BaseException | None = None
        self.s2_overruns = 0

    # ------------------------------------------------------------------ System 2 thread
    def _system2_loop(self) -> None:
        torch.set_num_threads(self.system2_threads)
        period = 1.0 / self.system2_hz
        next_t = time.perf_counter()
        try:
            while not self._stop.is_set():
                item = self.observations.wait(0, timeout=0.1)
                if item is None:
                    continue
                t0 = time.perf_counter()
                feats = self.system2_fn(item.value)
                t1 = time.perf_counter()
                self.features.publish(feats, t_input=item.t_input)
                next_t += period
                missed = t1 > next_t
                if missed:   # overran: skip to the next deadline in the future
                    self.s2_overruns += 1
                    next_t += period * np.ceil((t1 - next_t) / period)
                self.s2_stats.record(t0, t1, missed)
                self._stop.wait(max(0.0, next_t - time.perf_counter()))
        except BaseException as e:  # surfaced by step()/stop()
            self._s2_error = e

    def start(self, first_observation: Any, timeout: float = 60.0) -> "DualRateRuntime":
        """Start System 2 and wait until its first features exist."""
        if self._thread is not None:
            raise RuntimeError("runtime already started")
        self._stop.clear()
        self.executor.reset()
        self.observations.publish(first_observation)
        self._thread = threading.Thread(target=self._system2_loop, name="groot-system2", daemon=True)
        self._thread.start()
        deadline = time.perf_counter() + timeout
        while self.features.get().seq == 0:
            if self._s2_error is not None:
                self.stop()
                raise RuntimeError(f"System 2 failed: {self._s2_error!r}") from self._s2_error
            if time.perf_counter() > deadline:
                self.stop()
                raise TimeoutError(f"System 2 produced no features within {timeout} s")
            self.features.wait(0, timeout=0.05)
        if self.system1_threads:
            torch.set_num_threads(self.system1_threads)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop and join the System 2 thread (returns within one System 2 call + timeout)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError("System 2 thread did not stop in time")
            self._thread = None

    @contextlib.contextmanager
    def started(self, first_observation: Any, timeout: float = 60.0):
        self.start(first_observation, timeout)
        try:
            yield self
        finally:
            self.stop()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------ System 1 tick
    def step(self, observation: Any, publish: bool = True) -> np.ndarray:
        """One control tick: publish the observation for System 2, sample a chunk if due, return an action."""
        if self._s2_error is not None:
            raise RuntimeError(f"System 2 failed: {self._s2_error!r}") from self._s2_error
        t0 = time.perf_counter()
        if publish:
            self.observations.publish(observation, t0)
        if self.executor.needs_chunk():
            feats = self.features.get()
            self.feature_ages_ms.append(feats.age(t0) * 1e3)
            chunk = self.system1_fn(feats.value, observation)
            self.executor.add_chunk(chunk)
            self.s1_stats.record(t0, time.perf_counter())
        a = self.executor.next_action()
        self.actions.append(a)
        return a

    # ------------------------------------------------------------------ paced loop
    def run(self, env_step: Callable[[np.ndarray], Any], first_observation: Any, num_steps: int,
            realtime: bool = True, publish_every: int = 1) -> dict:
        """Closed loop for `num_steps` ticks; with realtime=True each tick sleeps to its deadline
        (t0 + k / control_hz) and a tick that ends after its deadline counts as missed."""
        period = 1.0 / self.control_hz
        obs = first_observation
        with self.started(first_observation):
            t_begin = time.perf_counter()
            for k in range(num_steps):
                t0 = time.perf_counter()
                a = self.step(obs, publish=(k % publish_every == 0))
                obs = env_step(a)
                t1 = time.perf_counter()
                deadline = t_begin + (k + 1) * period
                self.tick_stats.record(t0, t1, missed=realtime and t1 > deadline)
                if realtime:
                    delay = deadline - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
        return self.stats()

    def stats(self) -> dict:
        ages = np.asarray(self.feature_ages_ms)
        out = {"system2": self.s2_stats.summary(), "system1_chunks": self.s1_stats.summary(),
               "control": self.tick_stats.summary(), "mode": self.executor.mode,
               "replan_every": self.executor.replan_every,
               "discontinuity": discontinuity(self.actions, self.executor.boundaries) if self.actions else {}}
        if len(ages):
            out["feature_age_ms"] = {"p50": float(np.percentile(ages, 50)), "p99": float(np.percentile(ages, 99)),
                                     "max": float(ages.max())}
        return out


def compare_modes(chunk_fn: Callable[[int], np.ndarray], num_steps: int = 480, horizon: int = 16,
                  replan_every: int = 4, ensemble_decay: float = 0.1) -> dict[str, dict]:
    """Discontinuity of each execution mode on the same chunk source (no threads, no clock).

    chunk_fn(step) -> chunk [H, D] predicted at `step` (e.g. a policy on the current observation).
    """
    res = {}
    for mode in MODES:
        ex = ChunkExecutor(mode, horizon, None if mode == "whole" else replan_every, ensemble_decay)
        acts = []
        for t in range(num_steps):
            if ex.needs_chunk():
                ex.add_chunk(chunk_fn(t))
            acts.append(ex.next_action())
        res[mode] = discontinuity(acts, ex.boundaries)
        res[mode]["chunks"] = len(ex.boundaries)
    return res
