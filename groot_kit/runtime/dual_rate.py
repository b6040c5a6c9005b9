"""Dual-rate runtime: System 2 (vision-language) slow on its own thread, System 1 (action head) on a
second worker thread that prefetches the next action chunk, and a control tick that only pops (or
blends) one action, plus timing statistics.

    systems = GrootSystems(policy, processor)               # or any two callables
    rt = DualRateRuntime(systems.system2, systems.system1, control_hz=120, system2_hz=10,
                         mode="ensemble", replan_every=4)
    with rt.started(first_obs):                              # blocks until features + first chunk
        for t in range(n):
            action = rt.step(obs)                            # one control tick: never runs a model
            obs = env_step(action)
    rt.stats()                                               # rates, latency, jitter, misses, late chunks

Threads
    groot-system2   wakes every 1/system2_hz s (sleeps to the next deadline), encodes the latest
                    observation the control loop published, publishes the features with timestamps.
    groot-system1   waits for a chunk request (observation + the control step it was taken at),
                    samples a chunk from that observation and the LATEST System 2 features, and
                    hands it back. At most one request is in flight.
    caller          the control tick (`step`): publish the observation, pick up a finished chunk
                    if there is one (never waits for it), pop/blend one action, and when the
                    executor has consumed enough of the current chunk (at `due - lookahead`) post
                    the request for the next one. No model call happens in the tick.

Real-time chunking (time alignment): a chunk sampled from the observation of control step r
predicts actions for steps r, r+1, ..., r+H-1. It arrives some ticks later (System 1 latency), so
the executor indexes it by absolute step: the action for step k is chunk[k - r]; the actions for
steps that passed while it was computing are dropped, never replayed late. `lookahead` is the
number of ticks before the chunk is needed (its `due` step) at which it is requested; by default
it adapts to the measured System 1 latency (ceil(p90 latency x control_hz) + 1).

Late chunks: if the chunk is not back by its due step the tick does not block; it keeps executing
the previous chunk's remaining actions (its coverage runs to r+H-1) or, once those run out, holds
the last action ("starved" ticks). Such a chunk counts as late (`late_chunks`), separately from the
control loop's missed deadlines; it is activated as soon as it arrives.

Chunk execution modes ("whole", "replan", "ensemble"): see groot_kit.chunking.

torch threads: `torch.set_num_threads` is not a per-call setting. On the OpenMP backend (the
default CPU build, checked with torch 2.11) it sets the calling thread's OpenMP team size AND the
process-wide default that every thread which has not run a parallel op yet picks up (MKL follows);
on the native/TBB backends the intra-op pool is shared by the whole process. So the runtime uses
ONE setting, `torch_threads` (default 1), applied in both worker threads: System 2 and System 1
each run single-threaded torch on their own Python thread, and torch releases the GIL inside its
ops, so the two models use separate cores instead of oversubscribing them with two thread teams.
`stats()["torch_threads"]` reports what each worker thread actually saw.
"""
from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from groot_kit.chunking import (
    ChunkExecutor,
    ChunkPrefetcher,
    ChunkRequest,
    discontinuity,
)


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
def _pct(x, name: str) -> dict[str, float]:
    x = np.asarray(x, dtype=np.float64)
    if not len(x):
        return {}
    return {f"{name}_p50": float(np.percentile(x, 50)), f"{name}_p99": float(np.percentile(x, 99)),
            f"{name}_max": float(x.max())}


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


# ---------------------------------------------------------------------------- runtime
class DualRateRuntime:
    """System 2 thread at `system2_hz`, System 1 prefetch thread, control tick in the caller's thread.

    lookahead: ticks before a chunk's due step at which it is requested (None = adapt to the
    measured System 1 latency). torch_threads: intra-op threads for each worker (see module doc;
    None leaves torch's setting alone). system2_teardown: called in the System 2 thread as it
    exits, to release thread-affine resources System 2 created (e.g. a GL context for rendering).
    """

    def __init__(self, system2: Callable[[Any], Any], system1: Callable[[Any, Any], Any], *,
                 control_hz: float = 120.0, system2_hz: float = 10.0, mode: str = "ensemble",
                 horizon: int = 16, replan_every: int | None = None, ensemble_decay: float = 0.1,
                 lookahead: int | None = None, torch_threads: int | None = 1,
                 system2_teardown: Callable[[], None] | None = None):
        if control_hz <= 0 or system2_hz <= 0:
            raise ValueError("control_hz and system2_hz must be positive")
        if lookahead is not None and lookahead < 1:
            raise ValueError("lookahead must be >= 1 tick (or None = adaptive)")
        self.system2_fn, self.system1_fn = system2, system1
        self.control_hz, self.system2_hz = float(control_hz), float(system2_hz)
        self.executor = ChunkExecutor(mode, horizon, replan_every, ensemble_decay)
        self.prefetch = ChunkPrefetcher(self.executor)
        self.lookahead, self.torch_threads = lookahead, torch_threads
        self.system2_teardown = system2_teardown
        self.observations = LatestSlot()
        self.features = LatestSlot()
        self.s2_stats = RateStats("system2", system2_hz)
        self.s1_stats = RateStats("system1_chunk")          # one entry per sampled chunk (compute time)
        self.tick_stats = RateStats("control", control_hz)  # one entry per control tick (step + env step)
        self.step_stats = RateStats("tick_step")            # runtime.step() alone: pop/blend + bookkeeping
        self.feature_ages_ms: list[float] = []
        self.actions: list[np.ndarray] = []
        self.thread_torch: dict[str, int] = {}              # torch.get_num_threads() seen in each worker
        self._s1_latency: deque[float] = deque(maxlen=16)   # request -> result, seconds
        self._L = 1
        self._s1_cond = threading.Condition()
        self._s1_request: ChunkRequest | None = None
        self._s1_result: tuple[ChunkRequest, Any] | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._s2_error: BaseException | None = None
        self._s1_error: BaseException | None = None
        self.s2_overruns = 0

    # ------------------------------------------------------------------ worker threads
    def _set_threads(self, name: str) -> None:
        if self.torch_threads:
            torch.set_num_threads(self.torch_threads)
        self.thread_torch[name] = torch.get_num_threads()

    def _system2_loop(self) -> None:
        try:
            self._set_threads("system2")
            period = 1.0 / self.system2_hz
            next_t = time.perf_counter()
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
        except BaseException as e:  # surfaced by step()/start()
            self._s2_error = e
        finally:
            if self.system2_teardown is not None:
                try:
                    self.system2_teardown()
                except BaseException as e:
                    self._s2_error = self._s2_error or e

    def _system1_loop(self) -> None:
        try:
            self._set_threads("system1")
            while True:
                with self._s1_cond:
                    self._s1_cond.wait_for(lambda: self._s1_request is not None or self._stop.is_set())
                    if self._stop.is_set():
                        return
                    req, self._s1_request = self._s1_request, None
                feats = self.features.get()           # the LATEST System 2 features
                t0 = time.perf_counter()
                if req.prefix is not None:       # "rtc": continue the chunk that is executing
                    chunk = self.system1_fn(feats.value, req.observation, prefix=req.prefix,
                                            prefix_len=req.prefix_len)
                else:
                    chunk = self.system1_fn(feats.value, req.observation)
                t1 = time.perf_counter()
                req.observation = None
                self.feature_ages_ms.append((t0 - feats.t_input) * 1e3)
                self.s1_stats.record(t0, t1)
                with self._s1_cond:
                    self._s1_latency.append(t1 - req.t_submit)
                    self._s1_result = (req, chunk)
                    self._s1_cond.notify_all()
        except BaseException as e:  # surfaced by step()/start()
            self._s1_error = e

    def _raise_errors(self) -> None:
        for name, err in (("System 2", self._s2_error), ("System 1", self._s1_error)):
            if err is not None:
                raise RuntimeError(f"{name} failed: {err!r}") from err

    def _post(self, req: ChunkRequest) -> None:
        with self._s1_cond:
            self._s1_request = req
            self._s1_cond.notify_all()

    def _take_result(self) -> tuple[ChunkRequest, Any] | None:
        with self._s1_cond:
            res, self._s1_result = self._s1_result, None
            if res is not None and self.lookahead is None:     # adapt: ceil(p90 latency x rate) + 1
                lat = float(np.percentile(np.asarray(self._s1_latency), 90))
                self._L = int(math.ceil(lat * self.control_hz)) + 1
        return res

    def wait_for_chunk(self, timeout: float = 10.0) -> bool:
        """Block until System 1 has handed back a chunk that the next tick will pick up (for tests and
        offline stepping; the control loop itself never waits). Raises if a worker failed."""
        deadline = time.perf_counter() + timeout
        while self._s1_result is None:
            self._raise_errors()
            if time.perf_counter() > deadline:
                return False
            time.sleep(0.001)
        return True

    def _wait_until(self, cond: Callable[[], bool], what: str, deadline: float) -> None:
        while not cond():
            if self._s2_error is not None or self._s1_error is not None:
                self.stop()
                self._raise_errors()
            if time.perf_counter() > deadline:
                self.stop()
                raise TimeoutError(f"{what} within the start timeout")
            time.sleep(0.002)

    def start(self, first_observation: Any, timeout: float = 60.0) -> "DualRateRuntime":
        """Start both workers; block until System 2's first features and the first chunk exist."""
        if self._threads:
            raise RuntimeError("runtime already started")
        self._stop.clear()
        self._s1_request = self._s1_result = None
        self.executor.reset()
        self.prefetch = ChunkPrefetcher(self.executor)
        self.observations.publish(first_observation)
        deadline = time.perf_counter() + timeout
        self._threads = [threading.Thread(target=self._system2_loop, name="groot-system2", daemon=True),
                         threading.Thread(target=self._system1_loop, name="groot-system1", daemon=True)]
        self._threads[0].start()
        self._wait_until(lambda: self.features.get().seq > 0, "System 2 produced no features", deadline)
        self._threads[1].start()
        self._post(self.prefetch.request(0, 1, first_observation))
        self._wait_until(lambda: self._s1_result is not None, "System 1 produced no chunk", deadline)
        self.prefetch.accept(0, *self._take_result())
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop and join both workers (returns within one model call + timeout)."""
        self._stop.set()
        with self._s1_cond:
            self._s1_cond.notify_all()
        for t in self._threads:
            if t.ident is not None:      # started
                t.join(timeout)
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            raise RuntimeError(f"worker threads did not stop in time: {alive}")
        self._threads = []

    @contextlib.contextmanager
    def started(self, first_observation: Any, timeout: float = 60.0):
        self.start(first_observation, timeout)
        try:
            yield self
        finally:
            self.stop()

    @property
    def alive(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    # ------------------------------------------------------------------ control tick
    def step(self, observation: Any, publish: bool = True) -> np.ndarray:
        """One control tick; never calls a model and never waits for one.

        Publishes the observation for System 2, takes a finished chunk if System 1 has one
        (time-aligned to the step of its observation), pops/blends this step's action, and posts
        the next chunk request (this observation, this step) once it is `lookahead` ticks from due.
        """
        self._raise_errors()
        t0 = time.perf_counter()
        k = self.executor.step_idx
        if publish:
            self.observations.publish(observation, t0)
        res = self._take_result()
        if res is not None:
            self.prefetch.accept(k, *res)
        self.prefetch.check_late(k)
        a = self.executor.next_action()
        if self.prefetch.in_flight is None:
            req = self.prefetch.request(k, self.lookahead or self._L, observation)
            if req is not None:
                self._post(req)
        self.actions.append(a)
        self.step_stats.record(t0, time.perf_counter())
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
        with self._s1_cond:
            lat = np.asarray(self._s1_latency) * 1e3
        s1 = self.s1_stats.summary()
        s1.update(_pct(lat, "request_to_result_ms_last16"))
        out = {"system2": self.s2_stats.summary(), "system1_chunks": s1,
               "control": self.tick_stats.summary(), "tick_step": self.step_stats.summary(),
               "prefetch": self.prefetch.summary(), "mode": self.executor.mode,
               "replan_every": self.executor.replan_every, "lookahead": self.lookahead or f"auto ({self._L})",
               "torch_threads": dict(self.thread_torch),
               "discontinuity": discontinuity(self.actions, self.executor.boundaries) if self.actions else {}}
        if len(ages):
            out["feature_age_ms"] = {"p50": float(np.percentile(ages, 50)), "p99": float(np.percentile(ages, 99)),
                                     "max": float(ages.max())}
        return out
