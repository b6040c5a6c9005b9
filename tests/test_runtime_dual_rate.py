"""Dual-rate runtime: System 1 prefetch thread (the tick never runs a model, late chunks counted and
non-blocking, chunks time-aligned), clean shutdown, chunk execution modes, GrootPolicy split == joint
call. No timing thresholds: CI machines are loaded, only behaviour is asserted."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from groot_kit.chunking import ChunkExecutor, compare_modes, discontinuity
from groot_kit.runtime.dual_rate import DualRateRuntime, LatestSlot
from groot_kit.runtime.systems import GrootSystems

WORKERS = ("groot-system2", "groot-system1")


def _no_worker_threads():
    return not any(t.name in WORKERS and t.is_alive() for t in threading.enumerate())


def _aligned_chunk(r, h=16):
    """Chunk sampled from the observation of step r: element i predicts step r + i, value = that step."""
    return np.arange(r, r + h, dtype=np.float32)[:, None]


def test_tick_never_calls_the_model_and_threads_stop_cleanly():
    where = {"s1": set(), "s2": set()}

    def system2(obs):
        where["s2"].add(threading.current_thread().name)
        return obs["t"]

    def system1(feat, obs):
        where["s1"].add(threading.current_thread().name)
        time.sleep(0.002)
        return _aligned_chunk(obs["t"])

    rt = DualRateRuntime(system2, system1, control_hz=120, system2_hz=20, mode="replan", replan_every=4)
    state = {"t": 0}

    def env_step(a):
        state["t"] += 1
        return {"t": state["t"]}

    stats = rt.run(env_step, {"t": 0}, num_steps=90, realtime=True)
    assert where == {"s1": {"groot-system1"}, "s2": {"groot-system2"}}      # never the control thread
    assert not rt.alive and _no_worker_threads()
    assert stats["control"]["count"] == 90 and stats["tick_step"]["count"] == 90
    assert stats["system1_chunks"]["count"] >= 2 and stats["system2"]["count"] >= 1
    for key in ("latency_p50_ms", "latency_p99_ms", "jitter_p50_ms", "jitter_p99_ms", "missed_deadlines"):
        assert key in stats["control"]
    assert {"late_chunks", "starved_ticks", "delay_ticks_p50"} <= set(stats["prefetch"])
    assert stats["torch_threads"] == {"system2": 1, "system1": 1}
    assert "p50" in stats["feature_age_ms"]


@pytest.mark.parametrize("mode,blocked_steps", [("replan", 10), ("whole", 20)])
def test_late_chunk_is_counted_and_does_not_block(mode, blocked_steps):
    release, hanging = threading.Event(), threading.Event()
    calls = []

    def system1(feat, obs):
        calls.append(obs["t"])
        if len(calls) > 1:
            hanging.set()
            release.wait(10)          # System 1 hangs until the test lets it go
        return _aligned_chunk(obs["t"])

    rt = DualRateRuntime(lambda o: 0, system1, mode=mode, replan_every=None if mode == "whole" else 4, lookahead=2)
    with rt.started({"t": 0}):
        acts = [float(rt.step({"t": k})[0]) for k in range(blocked_steps)]   # returns while System 1 hangs
        assert hanging.wait(10) and not release.is_set() and len(calls) == 2
        r = calls[1]                                            # step the pending request was posted at
        assert r == (2 if mode == "replan" else 14)             # due - lookahead
        pf = rt.prefetch.summary()
        assert pf["late_chunks"] == 1
        if mode == "replan":     # the old chunk's remaining actions keep going past the due step (4)
            assert acts == list(range(blocked_steps)) and pf["starved_ticks"] == 0
        else:                    # the old chunk ran out at step 16: hold its last action
            assert acts == list(range(16)) + [15.0] * (blocked_steps - 16)
            assert pf["starved_ticks"] == blocked_steps - 16
        release.set()
        assert rt.wait_for_chunk(10)
        k = blocked_steps
        a = float(rt.step({"t": k})[0])
        assert rt.executor.trace[-1] == (r, k - r) and a == k   # late chunk used at its aligned index
    assert rt.prefetch.late_chunks == 1 and not rt.alive


@pytest.mark.parametrize("mode", ["whole", "replan", "ensemble"])
def test_prefetched_chunk_is_time_aligned(mode):
    """The action executed at step k comes from index k - obs_step of its chunk (never an action for a
    step that already passed), in every mode, whatever the System 1 latency turned out to be."""
    def system1(feat, obs):
        time.sleep(0.003)
        return _aligned_chunk(obs["t"])

    state = {"t": 0}

    def env_step(a):
        state["t"] += 1
        return {"t": state["t"]}

    rt = DualRateRuntime(lambda o: 0, system1, control_hz=240, mode=mode, replan_every=None if mode == "whole" else 4)
    rt.run(env_step, {"t": 0}, num_steps=100, realtime=True)
    acts = np.stack(rt.actions)[:, 0]
    for k, (r, i) in enumerate(rt.executor.trace):
        if r < 0:                                   # starved tick: last action held
            assert acts[k] == acts[k - 1]
        else:
            assert i == k - r and 0 <= i < 16
            assert acts[k] == pytest.approx(k)      # all chunks agree on step k, so even the ensemble is k
    assert min(rt.prefetch.delays[1:]) >= 1         # a prefetched chunk's first action(s) are dropped
    assert not rt.alive and _no_worker_threads()


def test_stop_is_prompt_and_idempotent():
    rt = DualRateRuntime(lambda o: 0, lambda f, o: np.zeros((16, 2)), system2_hz=1.0)
    rt.start({"x": 1})
    t0 = time.perf_counter()
    rt.stop()
    rt.stop()
    assert time.perf_counter() - t0 < 1.0 and not rt.alive and _no_worker_threads()


def test_worker_failures_surface_and_threads_end():
    def bad(obs):
        raise ValueError("camera unplugged")

    rt = DualRateRuntime(bad, lambda f, o: np.zeros((16, 2)))
    with pytest.raises(RuntimeError, match="camera unplugged"):
        rt.start({"x": 1}, timeout=5)
    assert not rt.alive and _no_worker_threads()

    calls = []

    def s1(feat, obs):
        calls.append(1)
        if len(calls) > 1:
            raise ValueError("nan in the action head")
        return np.zeros((16, 2))

    rt = DualRateRuntime(lambda o: 0, s1, mode="replan", replan_every=4, lookahead=4)
    with pytest.raises(RuntimeError, match="nan in the action head"):
        with rt.started({"x": 1}):
            rt.step({"x": 1})                      # posts the request (due 4 - lookahead 4 = step 0)
            rt.wait_for_chunk(5)
    assert not rt.alive and _no_worker_threads()


def test_latest_slot_timestamps():
    slot = LatestSlot()
    assert slot.get().seq == 0 and slot.wait(0, timeout=0.01) is None
    t = time.perf_counter() - 0.05
    slot.publish("a", t_input=t)
    item = slot.get()
    assert item.value == "a" and item.seq == 1 and item.age() >= 0.05


def test_executor_whole_and_replan_schedules():
    whole = ChunkExecutor("whole", horizon=16)
    replan = ChunkExecutor("replan", horizon=16, replan_every=4)
    for ex, n in ((whole, 16), (replan, 4)):
        got = []
        for t in range(32):
            if ex.needs_chunk():
                ex.add_chunk(np.arange(t, t + 16, dtype=float)[:, None])
            got.append(float(ex.next_action()[0]))
        assert ex.boundaries == list(range(0, 32, n))
        assert got == list(range(32))    # chunk element k predicted for step t+k is the one executed


def test_executor_prefetch_alignment_activation_and_hold():
    ex = ChunkExecutor("replan", horizon=16, replan_every=4)
    ex.add_chunk(_aligned_chunk(0))
    assert [float(ex.next_action()[0]) for _ in range(3)] == [0, 1, 2]
    assert ex.next_due() == 4
    ex.add_chunk(_aligned_chunk(1) + 100, obs_step=1, activate_at=4)     # arrives early, waits for step 4
    assert float(ex.next_action()[0]) == 3                               # step 3: still the old chunk
    assert float(ex.next_action()[0]) == 104 and ex.trace[-1] == (1, 3)  # step 4: index 4 - 1
    assert ex.boundaries == [0, 4] and ex.next_due() == 8
    for _ in range(12):                                                  # steps 5..16: chunk covers 1..16
        ex.next_action()
    assert float(ex.next_action()[0]) == 116 and ex.held == 1 and ex.trace[-1] == (-1, -1)   # step 17: hold
    with pytest.raises(ValueError):
        ex.add_chunk(_aligned_chunk(0), obs_step=99)                     # from the future


def test_executor_ensemble_weights_oldest_first():
    ex = ChunkExecutor("ensemble", horizon=16, replan_every=1, ensemble_decay=np.log(3))
    ex.add_chunk(np.zeros((16, 1)))
    ex.next_action()
    ex.add_chunk(np.ones((16, 1)))
    # weights exp(-m*i): oldest 1, newest 1/3 -> (0*1 + 1/3) / (4/3) = 0.25
    assert float(ex.next_action()[0]) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        ChunkExecutor("fancy")
    with pytest.raises(ValueError):
        ChunkExecutor("replan", replan_every=17)


@pytest.mark.parametrize("delay", [0, 2])
def test_temporal_ensembling_lowers_boundary_discontinuity(delay):
    """Chunks that are each smooth but disagree with each other (independent noise per chunk,
    as with flow-matching samples) stutter at chunk boundaries; ensembling removes most of it,
    also when chunks arrive `delay` ticks after their observation (prefetch, time-aligned)."""
    rng = np.random.default_rng(0)

    def chunk_fn(t):
        k = np.arange(t, t + 16)[:, None] / 120.0
        return np.sin(2 * np.pi * 0.5 * k + np.arange(6)) + rng.normal(0, 0.05, (1, 6))

    res = compare_modes(chunk_fn, num_steps=600, replan_every=4, delay=delay)
    whole, replan, ens = res["whole"], res["replan"], res["ensemble"]
    assert whole["boundary_mean"] > 2.5 * whole["inside_mean"]        # the stutter exists
    assert ens["boundary_mean"] < 0.5 * whole["boundary_mean"]        # ensembling removes most of it
    assert ens["boundary_mean"] < 0.5 * replan["boundary_mean"]
    assert ens["max_step"] < whole["max_step"]
    if delay:
        assert all(r["late_chunks"] == 0 and r["starved_ticks"] == 0 for r in res.values())
        assert res["replan"]["delay_ticks_p50"] == delay


def test_compare_modes_counts_late_chunks_when_latency_exceeds_the_replan_period():
    res = compare_modes(lambda t: _aligned_chunk(t).repeat(2, 1), num_steps=120, replan_every=4, delay=6)
    assert res["replan"]["late_chunks"] >= res["replan"]["chunks"] - 1 > 0   # all but the first (+ one in flight)
    assert res["whole"]["late_chunks"] == 0                                    # lookahead 7 < 16 - 7


def test_discontinuity_metric():
    a = np.array([[0.0], [1.0], [2.0], [5.0], [6.0]])
    d = discontinuity(a, [0, 3])
    assert d["boundary_mean"] == pytest.approx(3.0) and d["inside_mean"] == pytest.approx(1.0)


@pytest.fixture(scope="module")
def tiny_systems():
    from groot_kit.model.policy import GrootPolicy
    from groot_kit.runtime.policy_fn import demo_observation, demo_processor
    torch.manual_seed(0)
    policy = GrootPolicy("tiny").eval()
    proc = demo_processor(policy)
    return policy, proc, demo_observation(proc)


def test_groot_systems_split_equals_joint_call(tiny_systems):
    policy, proc, obs = tiny_systems
    sys_ = GrootSystems(policy, proc)
    feats = sys_.system2(obs)
    torch.manual_seed(7)
    chunk = sys_.system1(feats, obs)
    torch.manual_seed(7)
    ref = policy.predict_action_chunk(proc(obs))[0].numpy()
    assert chunk.shape == (16, policy.config.action_head.max_action_dim)
    d = proc.modality.action_dim
    np.testing.assert_allclose(chunk[:, :d], ref[:, :d], atol=1e-5)
    assert not chunk[:, d:].any()           # padding dims: decoded by no one, zeroed
    dec = sys_.decode(chunk[0])
    assert dec["action.arm"].shape == (1, 1, 7)


def test_system2_features_carry_the_vl_context_system1_reuses(tiny_systems):
    """On the planned path System 2 hands System 1 the head's VLContext (VL self-attention, every
    cross-attention block's keys/values), computed once per System 2 update; chunks from it equal the
    reference path's, which recomputes everything from the tokens in every Euler step."""
    from groot_kit.model.action_head import VLContext
    policy, proc, obs = tiny_systems
    sys_ = GrootSystems(policy, proc)
    feats = sys_.system2(obs)
    assert isinstance(feats[0], VLContext)
    head = policy.action_head
    head.exact_reference = True
    try:
        ref_feats = sys_.system2(obs)
        assert isinstance(ref_feats[0], torch.Tensor) and ref_feats[0].dim() == 3
        torch.manual_seed(3)
        ref = sys_.system1(ref_feats, obs)
    finally:
        head.exact_reference = False
    for _ in range(2):                      # the same context serves chunk after chunk
        torch.manual_seed(3)
        np.testing.assert_allclose(sys_.system1(feats, obs), ref, atol=1e-5)


def test_runtime_with_tiny_policy_runs_and_stops(tiny_systems):
    policy, proc, obs = tiny_systems
    sys_ = GrootSystems(policy, proc)
    rt = DualRateRuntime(sys_.system2, sys_.system1, control_hz=60, system2_hz=10, mode="ensemble", replan_every=4)
    stats = rt.run(lambda a: obs, obs, num_steps=60, realtime=True)
    assert stats["control"]["count"] == 60 and stats["system2"]["count"] >= 3
    assert stats["system1_chunks"]["count"] >= 2
    assert not rt.alive and _no_worker_threads()
    assert np.isfinite(np.stack(rt.actions)).all()


def test_mujoco_demo_short():
    pytest.importorskip("groot_kit.sim")
    from groot_kit.runtime.demo import run_mujoco_demo
    try:
        stats = run_mujoco_demo("gr1_upper", seconds=0.5, mode="ensemble", replan_every=4)
    except Exception as e:  # pragma: no cover - headless GL missing
        if "OpenGL" in str(e) or "EGL" in str(e) or "gl" in type(e).__name__.lower():
            pytest.skip(f"no headless OpenGL here: {e}")
        raise
    assert stats["control"]["count"] == 60 and stats["control_hz"] == 120.0
    assert "missed_deadlines" in stats["control"] and "late_chunks" in stats["prefetch"]
    assert stats["system2"]["count"] >= 1 and stats["system1_chunks"]["count"] >= 1
    assert stats["threads_alive_after"] is False and _no_worker_threads()


@pytest.fixture(scope="module")
def base_systems():
    """The shipped tiny base on a real so100 scene (a trained policy: chunks that agree within
    themselves but, with fresh noise, not with each other)."""
    from pathlib import Path

    from groot_kit.model.policy import GrootPolicy
    from groot_kit.sim import make_env
    from groot_kit.sim.policy_io import sim_observation
    base = GrootPolicy.from_pretrained(Path(__file__).resolve().parents[1] / "data_samples/checkpoints/tiny_base")
    proc = base.eval().get_processor("so100")
    env = make_env("so100", "reach", image_size=64, seed=3, num_cubes=1)
    try:
        o, _ = env.reset(seed=3)
        obs = sim_observation(env, o, proc.modality)
    finally:
        env.close()
    return base, proc, obs


@pytest.mark.parametrize("delay", [0, 2])
def test_rtc_joins_chunks_without_a_jump_and_without_lag(base_systems, delay):
    """Real-time chunking on the trained tiny base: each new chunk continues the one executing, so the
    boundary jump falls far below whole-chunk switching's and below ensembling's, with no blending."""
    policy, proc, obs = base_systems
    sys_ = GrootSystems(policy, proc)
    feats = sys_.system2(obs)
    prefixes = []

    def chunk_fn(t, prefix=None, prefix_len=0):
        torch.manual_seed(1000 + t)                    # independent noise per chunk: they disagree
        prefixes.append(prefix is not None)
        return sys_.system1(feats, obs, prefix=prefix, prefix_len=prefix_len)

    res = compare_modes(chunk_fn, num_steps=96, replan_every=8, delay=delay)
    assert any(prefixes) and set(res) == {"whole", "replan", "ensemble", "rtc"}
    assert res["rtc"]["boundary_mean"] < 0.3 * res["whole"]["boundary_mean"]
    assert res["rtc"]["boundary_mean"] < res["ensemble"]["boundary_mean"]
    assert res["rtc"]["boundary_mean"] < 3 * res["rtc"]["inside_mean"]


def test_rtc_replacement_reproduces_the_executed_prefix(base_systems):
    from groot_kit.model.rtc import inpaint_sample
    policy, proc, obs = base_systems
    sys_ = GrootSystems(policy, proc)
    vl, mask = sys_.system2(obs)
    state, eid = sys_._state(obs)
    torch.manual_seed(1)
    prev = torch.as_tensor(sys_.system1((vl, mask), obs))[None]
    d, D = 4, proc.modality.action_dim
    new = inpaint_sample(policy.action_head, vl, state, eid, prev[:, 8:], d, vl_mask=mask, action_dims=D,
                         generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(new[0, :d, :D], prev[0, 8:8 + d, :D], atol=1e-5, rtol=0)   # executed: exact
    tail = new[0, 8:, :D]                                  # past the overlap: the policy's own, in its range
    assert torch.isfinite(tail).all() and tail.abs().max() < 3.0 and tail.std() > 1e-3


def test_runtime_rtc_mode_sends_the_executing_chunk_as_prefix(tiny_systems):
    policy, proc, obs = tiny_systems
    sys_ = GrootSystems(policy, proc)
    seen = []

    def system1(feats, o, prefix=None, prefix_len=0):
        seen.append(None if prefix is None else (prefix.shape, prefix_len))
        return sys_.system1(feats, o, prefix=prefix, prefix_len=prefix_len)

    rt = DualRateRuntime(sys_.system2, system1, control_hz=60, system2_hz=10, mode="rtc", replan_every=6)
    stats = rt.run(lambda a: obs, obs, num_steps=48, realtime=True)
    assert stats["control"]["count"] == 48 and not rt.alive
    with_prefix = [s for s in seen if s is not None]
    assert seen[0] is None and len(with_prefix) >= 2
    for shape, d in with_prefix:
        assert shape[1] == policy.config.action_head.max_action_dim and 0 < d <= shape[0] <= 16


def test_rtc_requests_carry_the_executing_chunks_remaining_plan():
    from groot_kit.chunking import ChunkPrefetcher
    ex = ChunkExecutor("rtc", horizon=16, replan_every=8)
    pf = ChunkPrefetcher(ex)
    first = np.arange(16, dtype=float)[:, None] * np.ones((1, 3))
    pf.accept(0, pf.request(0, 1), first)
    for _ in range(5):
        ex.next_action()                                      # steps 0..4 executed
    req = pf.request(5, lookahead=3)                          # due at 8: asked 3 ticks before
    assert req.obs_step == 5 and req.due == 8
    np.testing.assert_array_equal(req.prefix, first[5:])      # planned from the observation's step on
    assert req.prefix_len == 3                                # steps 5, 6, 7 run before the new chunk
    ex2 = ChunkExecutor("replan", horizon=16, replan_every=8)
    pf2 = ChunkPrefetcher(ex2)
    pf2.accept(0, pf2.request(0, 1), first)
    for _ in range(5):
        ex2.next_action()
    assert pf2.request(5, lookahead=3).prefix is None         # only "rtc" sends a prefix
