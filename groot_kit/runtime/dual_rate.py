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

Chunk execution modes (H = chunk length, n = `replan_every`):
    "whole"     execute every remaining action of a chunk; the next one is due when it runs out
                (so each chunk runs H - dropped steps; stutters at every switch)
    "replan"    a new chunk is due n steps after the previous one was activated; execute only it
    "ensemble"  as "replan", but execute the weighted mean of all live chunks' predictions for the
                current step, weights exp(-m * i) with i = 0 for the oldest chunk (ACT's temporal
                ensembling, m = `ensemble_decay`); chunks are time-aligned before blending

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
        n = horizon if mode == "whole" else (replan_every or (horizon // 2 if mode == "replan" else 2))
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
        if c.ndim == 3 and c.shape[0] == 1:
            c = c[0]
        if c.ndim != 2 or c.shape[0] < self.horizon:
            raise ValueError(f"chunk must be [H={self.horizon}, D], got {list(c.shape)}")
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
        if self.mode == "ensemble" and len(live) > 1:
            w = np.exp(-self.m * np.arange(len(live)))       # i = 0: oldest chunk (ACT)
            a = sum(wi * c.actions[t - c.obs_step] for wi, c in zip(w, live)) / w.sum()
        else:
            a = live[-1].actions[t - live[-1].obs_step]
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


def compare_modes(chunk_fn: Callable[[int], np.ndarray], num_steps: int = 480, horizon: int = 16,
                  replan_every: int = 4, ensemble_decay: float = 0.1, delay: int = 0,
                  lookahead: int | None = None) -> dict[str, dict]:
    """Discontinuity of each execution mode on the same chunk source (no threads, no clock).

    chunk_fn(step) -> chunk [H, D] predicted from the observation at `step`. delay = 0: chunks are
    sampled inside the tick (synchronous). delay = d > 0: prefetch as in DualRateRuntime, each chunk
    arriving d ticks after its observation, requested `lookahead` (default d + 1) ticks before due.
    """
    res = {}
    for mode in MODES:
        ex = ChunkExecutor(mode, horizon, None if mode == "whole" else replan_every, ensemble_decay)
        pf = ChunkPrefetcher(ex)
        acts, arrive = [], 0
        if delay > 0:
            pf.accept(0, pf.request(0, 1), chunk_fn(0))
        pending: tuple[ChunkRequest, np.ndarray] | None = None
        for t in range(num_steps):
            if delay <= 0:
                if ex.needs_chunk():
                    ex.add_chunk(chunk_fn(t))
                acts.append(ex.next_action())
                continue
            if pending is not None and t >= arrive:
                pf.accept(t, *pending)
                pending = None
            pf.check_late(t)
            acts.append(ex.next_action())
            req = pf.request(t, lookahead or delay + 1)
            if req is not None:
                pending, arrive = (req, chunk_fn(t)), t + delay
        res[mode] = discontinuity(acts, ex.boundaries)
        res[mode]["chunks"] = len(ex.boundaries)
        if delay > 0:
            res[mode].update(pf.summary())
    return res
