"""Latency helpers shared by `benchmarks/latency.py`, `benchmarks/system1.py`, notebook 02 and the tests.

What is timed (batch 1 by default, one forward each, `torch.no_grad`):
    system2_ms           `policy.encode_vl(batch)` - System 2, runs once per action chunk
                         (includes tokenising the instruction unless the batch carries input_ids)
    tokenize_ms          `policy.tokenize(instructions)` alone (part of system2_ms)
    system1_chunk_ms     `policy.action_head.sample(...)` - System 1, K Euler steps -> one chunk
    euler_step_ms        one `action_head.velocity(...)` call (a single DiT pass) + the Euler update

Each is warmed up, then repeated N times; we report median and p90 in milliseconds.
The real-time goal of GR00T N1 is a 16-action chunk in 63.9 ms (L40, bf16); here we check the
kit's own budget: System 1 must produce a chunk within one 120 Hz control tick (8.3 ms) and
System 2 within 50 ms on ONE CPU thread for the `tiny` preset.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch

# The budgets checked for `tiny` on one CPU thread.
CONTROL_HZ = 120.0
SYSTEM1_BUDGET_MS = 1000.0 / CONTROL_HZ     # 8.33 ms: one chunk per 120 Hz control tick
SYSTEM2_BUDGET_MS = 50.0                    # System 2 may run slower (it runs once per chunk)

PRESETS_CPU = ("tiny", "small")
PRESETS_GPU = ("n1_2b", "n1_5_3b")


def _sync(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_callable(fn: Callable[[], Any], repeats: int = 20, warmup: int = 3,
                  device: torch.device | str = "cpu") -> dict[str, float]:
    """Run `fn` `warmup` times untimed, then `repeats` times timed.

    -> {"median_ms", "p90_ms", "mean_ms", "min_ms", "max_ms", "repeats"} (wall clock, CUDA-synchronised)
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(max(0, warmup)):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return summarize_ms(times)


def summarize_ms(times_ms: list[float]) -> dict[str, float]:
    """median / p90 (nearest-rank) / mean / min / max of a list of milliseconds."""
    s = sorted(times_ms)
    p90 = s[min(len(s) - 1, max(0, math.ceil(0.9 * len(s)) - 1))]
    return {"median_ms": statistics.median(s), "p90_ms": p90, "mean_ms": statistics.fmean(s),
            "min_ms": s[0], "max_ms": s[-1], "repeats": len(s)}


def build_policy(preset: str, device: str = "cpu", dtype: torch.dtype | None = None, seed: int = 0):
    """A randomly initialised eval-mode policy of `preset` on `device` (optionally cast to `dtype`)."""
    from groot_kit.model.policy import GrootPolicy
    torch.manual_seed(seed)
    with torch.device(device):
        policy = GrootPolicy(preset)
    if dtype is not None:
        policy = policy.to(dtype)
    return policy.eval()


def _cast_batch(batch: dict, dtype: torch.dtype | None) -> dict:
    if dtype is None:
        return batch
    return {k: (v.to(dtype) if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in batch.items()}


@torch.no_grad()
def measure_latency(policy, num_steps: int = 4, repeats: int = 20, warmup: int = 3, batch_size: int = 1,
                    count_flops: bool = True) -> dict[str, Any]:
    """Time System 2, System 1 (one chunk of `num_steps` Euler steps) and one Euler step.

    `policy` is a GrootPolicy (any device / dtype). Returns a JSON-serialisable dict.
    """
    from groot_kit.model.policy import dummy_batch
    cfg = policy.config
    ah = policy.action_head
    dev = policy.device
    dtype = next(policy.parameters()).dtype
    batch = _cast_batch(dummy_batch(policy, batch_size), dtype)
    state, eid = batch["state"], batch["embodiment_id"]

    instr = list(batch["instruction"])
    tok = time_callable(lambda: policy.tokenize(instr), repeats, warmup, dev)
    sys2 = time_callable(lambda: policy.encode_vl(batch), repeats, warmup, dev)
    ids, am = policy.tokenize(instr)
    cached = {**batch, "input_ids": ids, "attention_mask": am}
    sys2_cached = time_callable(lambda: policy.encode_vl(cached), repeats, warmup, dev)

    vl, vl_mask = policy.encode_vl(batch)
    sys1 = time_callable(lambda: ah.sample(vl, state, eid, num_steps=num_steps, vl_mask=vl_mask),
                         repeats, warmup, dev)

    # One Euler step = one DiT pass on prepared tokens + the update (what the loop repeats K times).
    vlp = ah.process_vl(vl)
    st = ah.encode_state(state, eid)
    x = torch.randn(batch_size, cfg.action_head.action_horizon, cfg.action_head.max_action_dim,
                    dtype=dtype, device=dev)
    ts = torch.zeros(batch_size, dtype=torch.long, device=dev)

    def step():
        return x + ah.velocity(x, ts, st, vlp, eid, vl_mask) / num_steps

    euler = time_callable(step, repeats, warmup, dev)

    out: dict[str, Any] = {
        "preset": cfg.preset, "variant": cfg.variant, "device": str(dev), "dtype": str(dtype).replace("torch.", ""),
        "threads": torch.get_num_threads(), "batch_size": batch_size, "num_steps": num_steps,
        "action_horizon": cfg.action_head.action_horizon, "vl_tokens": int(vl.shape[1]),
        "system2": sys2, "system2_cached_tokens": sys2_cached, "tokenize": tok,
        "system1_chunk": sys1, "euler_step": euler,
        "parameters": policy.num_parameters(),
    }
    if count_flops:
        out["flops"] = count_chunk_flops(policy, batch, num_steps=num_steps)
    return out


@torch.no_grad()
def count_chunk_flops(policy, batch: dict, num_steps: int = 4) -> dict[str, float]:
    """FLOPs (2 x MACs) of System 2 once and System 1 for one chunk, on `batch` as given.

    Same numbers as `groot_kit.model.policy.count_flops_per_chunk`, but works for bf16/fp16 models
    (that helper builds an fp32 batch), because the caller passes a batch already cast to the model dtype.
    """
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc2:
        vl, vl_mask = policy.encode_vl(batch)
    with FlopCounterMode(display=False) as fc1:
        policy.action_head.sample(vl, batch["state"], batch["embodiment_id"], num_steps=num_steps, vl_mask=vl_mask)
    return {"system2_flops": float(fc2.get_total_flops()), "system1_flops_per_chunk": float(fc1.get_total_flops()),
            "num_steps": num_steps}


def check_goals(result: dict[str, Any], system1_budget_ms: float = SYSTEM1_BUDGET_MS,
                system2_budget_ms: float = SYSTEM2_BUDGET_MS) -> list[dict[str, Any]]:
    """Compare median latencies to the budgets -> [{"name", "value_ms", "budget_ms", "passed"}]."""
    checks = []
    for name, key, budget in (("System 1 chunk", "system1_chunk", system1_budget_ms),
                              ("System 2", "system2", system2_budget_ms)):
        v = result[key]["median_ms"]
        checks.append({"name": name, "value_ms": v, "budget_ms": budget, "passed": bool(v <= budget)})
    return checks


def profile_chunk(policy, num_steps: int = 4, row_limit: int = 15) -> str:
    """torch.profiler table (self CPU time) of System 2 + one System 1 chunk, to find what is slow."""
    from torch.profiler import ProfilerActivity, profile
    from groot_kit.model.policy import dummy_batch
    batch = dummy_batch(policy, 1)
    with torch.no_grad():
        for _ in range(3):
            policy.predict_action_chunk(batch, num_steps=num_steps)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(10):
                policy.predict_action_chunk(batch, num_steps=num_steps)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=row_limit)


def time_interleaved(*fns: Callable[[], Any], repeats: int, warmup: int = 1) -> tuple[dict, ...]:
    """Time callables in turn, the order rotating each round (a b c, b c a, ...), so load from other
    processes hits all alike. -> one summary per callable, like `summarize_ms`, each with
    `cpu_median_ms`: the process CPU time per call (all torch threads), which waiting for a shared
    core does not inflate."""
    for _ in range(max(0, warmup)):
        for fn in fns:
            fn()
    n = len(fns)
    times, cpu = [[] for _ in fns], [[] for _ in fns]
    for r in range(repeats):
        for j in range(n):
            i = (r + j) % n
            t0, c0 = time.perf_counter(), time.process_time()
            fns[i]()
            times[i].append((time.perf_counter() - t0) * 1e3)
            cpu[i].append((time.process_time() - c0) * 1e3)
    return tuple({**summarize_ms(times[i]), "cpu_median_ms": statistics.median(cpu[i])} for i in range(n))


def head_inputs(head, vl_len: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random System 1 inputs at batch 1 on the head's device: vl [1, L, c], state [1, Ds], eid [1],
    noise and action [1, H, Da], t [1]."""
    cfg = head.cfg
    g = torch.Generator().manual_seed(seed)
    x = {"vl": torch.randn(1, vl_len, cfg.cross_attention_dim, generator=g),
         "state": torch.randn(1, cfg.max_state_dim, generator=g),
         "eid": torch.zeros(1, dtype=torch.long),
         "noise": torch.randn(1, cfg.action_horizon, cfg.max_action_dim, generator=g),
         "action": torch.randn(1, cfg.action_horizon, cfg.max_action_dim, generator=g),
         "t": torch.tensor([0.37])}
    device = next(head.parameters()).device
    return {k: v.to(device) for k, v in x.items()}


def measure_chunk_paths(head, vl_len: int, num_steps: int = 4, repeats: int = 5, warmup: int = 1) -> dict[str, Any]:
    """One System 1 chunk (K Euler steps, batch 1, vl_len VL tokens) three ways:

        chunk_ref      `exact_reference=True`: everything recomputed in every step (NVIDIA's way)
        chunk_opt      the planned path: what the K steps share (VL self-attention, cross-attention
                       keys/values, state/future tokens, timestep modulations) computed once per chunk
        chunk_vl_reused  the planned path from a VL context prepared earlier (`head.prepare_vl`), as
                       the dual-rate runtime does between System 2 updates

    -> {"L", "chunk_ref_ms", "chunk_opt_ms", "chunk_ratio", "chunk_cpu_ratio", "chunk_max_abs_diff",
    "chunk_vl_reused_ms", "chunk_vl_reused_ratio", "chunk_ref", "chunk_opt", "chunk_vl_reused"} (wall-clock
    medians in ms, the three timed in turn; ratios > 1: faster than the reference; max_abs_diff: the
    planned and reused chunks against the reference)."""
    x = head_inputs(head, vl_len)

    @torch.no_grad()
    def chunk(exact: bool, vl=x["vl"]):
        return head.sample(vl, x["state"], x["eid"], num_steps=num_steps, noise=x["noise"], exact_reference=exact)

    with torch.no_grad():
        ctx = head.prepare_vl(x["vl"])
    ref_chunk = chunk(True)
    diff = max((ref_chunk - chunk(False)).abs().max().item(), (ref_chunk - chunk(False, ctx)).abs().max().item())
    ref, opt, reuse = time_interleaved(lambda: chunk(True), lambda: chunk(False), lambda: chunk(False, ctx),
                                       repeats=repeats, warmup=warmup)
    return {"L": vl_len, "chunk_ref_ms": ref["median_ms"], "chunk_opt_ms": opt["median_ms"],
            "chunk_ratio": ref["median_ms"] / opt["median_ms"],
            "chunk_cpu_ratio": ref["cpu_median_ms"] / opt["cpu_median_ms"], "chunk_max_abs_diff": diff,
            "chunk_vl_reused_ms": reuse["median_ms"], "chunk_vl_reused_ratio": ref["median_ms"] / reuse["median_ms"],
            "chunk_ref": ref, "chunk_opt": opt, "chunk_vl_reused": reuse}



def measure_train_paths(head, vl_len: int, repeats: int = 5, warmup: int = 1, lr: float = 1e-7) -> dict[str, Any]:
    """One training step of the head (batch 1, vl_len VL tokens): zero_grad, flow loss forward,
    backward, AdamW step (betas 0.95/0.999, weight decay 1e-5, as NVIDIA's recipe), two ways:

        train_ref   `exact_reference=True` + torch's default AdamW (what `optim="adamw_torch"` builds)
        train_opt   the planned path (last block and output layers for the action tokens only) +
                    the kit's AdamW (`train.optim.build_adamw`: the fused kernel)

    The head's weights move by `lr` per step (kept tiny). On the CPU both optimizers share one set
    of moments (two would not fit beside a 1.07B-parameter head in 24 GiB); the update is the same.

    -> {"L", "train_ref_ms", "train_opt_ms", "train_ratio", "train_cpu_ratio", "train_loss_abs_diff",
    "fwd_bwd_ref_ms", "fwd_bwd_opt_ms", "fwd_bwd_ratio", "adamw_ref_ms", "adamw_opt_ms", "adamw_ratio",
    "train_ref", "train_opt"} (wall-clock medians, timed in turn; the fwd_bwd and adamw parts are
    medians of the same calls, split where the optimizer step starts)."""
    from groot_kit.train.optim import build_adamw
    x = head_inputs(head, vl_len)
    mask = torch.ones_like(x["action"], dtype=torch.bool)
    device = x["vl"].device
    params = [p for p in head.parameters() if p.requires_grad]
    opts = {name: build_adamw(params, lr=lr, betas=(0.95, 0.999), weight_decay=1e-5, fused=fused)
            for name, fused in (("ref", False), ("opt", None))}
    if device.type == "cpu":
        opts["opt"].state = opts["ref"].state
    adamw_ms: dict[str, list[float]] = {"ref": [], "opt": []}

    def forward_backward(exact: bool) -> torch.Tensor:
        head.zero_grad(set_to_none=True)
        loss, _ = head(x["vl"], x["state"], x["eid"], x["action"], mask, noise=x["noise"], t=x["t"],
                       exact_reference=exact)
        loss.backward()
        return loss.detach()

    def step(name: str) -> None:
        forward_backward(name == "ref")
        _sync(device)
        t0 = time.perf_counter()
        opts[name].step()
        _sync(device)
        adamw_ms[name].append((time.perf_counter() - t0) * 1e3)

    was_training = head.training
    head.train()
    loss_diff = abs(forward_backward(True).item() - forward_backward(False).item())
    ref, opt = time_interleaved(lambda: step("ref"), lambda: step("opt"), repeats=repeats, warmup=warmup)
    head.zero_grad(set_to_none=True)
    head.train(was_training)
    del opts
    adamw = {k: statistics.median(v[-repeats:]) for k, v in adamw_ms.items()}
    fwd_bwd = {k: t["median_ms"] - adamw[k] for k, t in (("ref", ref), ("opt", opt))}
    return {"L": vl_len, "train_ref_ms": ref["median_ms"], "train_opt_ms": opt["median_ms"],
            "train_ratio": ref["median_ms"] / opt["median_ms"],
            "train_cpu_ratio": ref["cpu_median_ms"] / opt["cpu_median_ms"], "train_loss_abs_diff": loss_diff,
            "fwd_bwd_ref_ms": fwd_bwd["ref"], "fwd_bwd_opt_ms": fwd_bwd["opt"],
            "fwd_bwd_ratio": fwd_bwd["ref"] / fwd_bwd["opt"],
            "adamw_ref_ms": adamw["ref"], "adamw_opt_ms": adamw["opt"], "adamw_ratio": adamw["ref"] / adamw["opt"],
            "train_ref": ref, "train_opt": opt}


def _paths_table(rows: list[dict[str, Any]], columns: list[tuple[str, int, str, str]]) -> str:
    """preset / threads / L, then `columns` as (header, width, row key, format spec), one line per row."""
    head = f"{'preset':<8} {'thr':>3} {'L':>4} " + " ".join(f"{h:>{w}}" for h, w, _, _ in columns)
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r.get('preset', ''):<8} {r.get('threads', torch.get_num_threads()):>3} {r.get('L', ''):>4} "
                     + " ".join(f"{r[k]:>{w}{spec}}" for _, w, k, spec in columns))
    return "\n".join(lines)


def format_chunk_paths(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of `measure_chunk_paths` rows (or benchmarks/results/system1.json rows)."""
    return _paths_table(rows, [("ref ms", 9, "chunk_ref_ms", ".1f"), ("planned ms", 11, "chunk_opt_ms", ".1f"),
                               ("ratio", 6, "chunk_ratio", ".2f"), ("VL reused ms", 13, "chunk_vl_reused_ms", ".1f"),
                               ("ratio", 6, "chunk_vl_reused_ratio", ".2f"),
                               ("max |diff|", 10, "chunk_max_abs_diff", ".1e")])


def format_train_paths(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of `measure_train_paths` rows (or benchmarks/results/system1*.json rows)."""
    return _paths_table(rows, [("step ms, ref", 13, "train_ref_ms", ".1f"), ("optimised", 10, "train_opt_ms", ".1f"),
                               ("ratio", 6, "train_ratio", ".2f"), ("fwd+bwd ms, ref", 16, "fwd_bwd_ref_ms", ".1f"),
                               ("optimised", 10, "fwd_bwd_opt_ms", ".1f"),
                               ("AdamW ms, default", 18, "adamw_ref_ms", ".1f"), ("fused", 8, "adamw_opt_ms", ".1f")])

def environment_info() -> dict[str, Any]:
    """Hardware / software context stored with every result."""
    info = {"python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "cuda": torch.cuda.is_available(),
            "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def write_json(obj: Any, path: str | os.PathLike) -> Path:
    """Write `obj` as indented JSON atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def format_table(results: list[dict[str, Any]]) -> str:
    """A plain-text table of results (one row per preset)."""
    head = (f"{'preset':<9} {'device':<6} {'dtype':<8} {'thr':>3} {'params':>9} {'S2 GFLOP':>9} {'S1 GFLOP':>9} "
            f"{'S2 med/p90 ms':>15} {'S1 chunk med/p90 ms':>20} {'step med/p90 ms':>16}")
    lines = [head, "-" * len(head)]
    for r in results:
        fl = r.get("flops", {})
        s2, s1, st = r["system2"], r["system1_chunk"], r["euler_step"]
        lines.append(
            f"{r['preset']:<9} {r['device']:<6} {r['dtype']:<8} {r['threads']:>3} "
            f"{_human(r['parameters']['total']):>9} "
            f"{fl.get('system2_flops', float('nan')) / 1e9:>9.4g} {fl.get('system1_flops_per_chunk', float('nan')) / 1e9:>9.4g} "
            f"{s2['median_ms']:>7.2f}/{s2['p90_ms']:<7.2f} {s1['median_ms']:>10.2f}/{s1['p90_ms']:<9.2f} "
            f"{st['median_ms']:>7.2f}/{st['p90_ms']:<8.2f}")
    return "\n".join(lines)


def _human(n: float) -> str:
    for unit, div in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= div:
            return f"{n / div:.3g}{unit}"
    return str(int(n))
