"""Latency of eager PyTorch vs onnxruntime, per module and per action chunk.

`benchmark_deploy(policy, onnx_dir)` times each exported graph under onnxruntime and the same
wrapper module in eager PyTorch (same inputs), for each thread count, and also the reference
eager paths the runtime actually uses (`action_head.sample` for a System-1 chunk and
`predict_action_chunk` for a whole chunk). Timings are medians over `repeats` calls after
`warmup` calls, in milliseconds (minimums are reported too: on a shared machine the median of a
2-thread run mostly measures the other processes).
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch

from groot_kit.export.onnx_export import graph_specs, ort_session


def time_fn(fn: Callable[[], Any], repeats: int = 30, warmup: int = 5, max_s: float = 20.0) -> dict[str, float]:
    """Median / p90 / min wall time of `fn()` in ms (stops early after `max_s` seconds)."""
    for _ in range(warmup):
        fn()
    ts = []
    t_end = time.perf_counter() + max_s
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
        if time.perf_counter() > t_end and len(ts) >= 3:
            break
    ts.sort()
    return {"median_ms": statistics.median(ts), "p90_ms": ts[min(len(ts) - 1, int(0.9 * len(ts)))],
            "min_ms": ts[0], "n": len(ts)}


def benchmark_deploy(policy, onnx_dir: str | Path, threads: Iterable[int] = (1, 2), batch_size: int = 1,
                     modules: Iterable[str] | None = None, repeats: int = 30, warmup: int = 5,
                     opt_level: str = "all", baked_dir: str | Path | None = None,
                     embodiment_slot: int | None = None) -> dict[str, Any]:
    """Per-module and per-chunk latency, eager PyTorch vs onnxruntime (CPU).

    onnx_dir: folder written by `export_policy`. baked_dir (optional): one written with
    `embodiment_slot=...`, timed as extra rows `system1[slot]` / `policy[slot]`.
    -> {"rows": [{module, threads, eager_ms, ort_ms, speedup}], "system1_chunk_speedup": {threads: x}, ...}
    """
    policy = policy.eval()
    onnx_dir = Path(onnx_dir)
    specs = graph_specs(policy)
    names = [n for n in (modules or specs) if (onnx_dir / f"{n}.onnx").exists()]
    extra: list[tuple[str, Any, Path]] = []
    if baked_dir is not None:
        bspecs = graph_specs(policy, embodiment_slot=embodiment_slot if embodiment_slot is not None else 0)
        for n in ("system1", "policy"):
            if (Path(baked_dir) / f"{n}.onnx").exists():
                extra.append((f"{n}[slot]", bspecs[n], Path(baked_dir) / f"{n}.onnx"))
    old_threads = torch.get_num_threads()
    rows = []
    try:
        for th in threads:
            torch.set_num_threads(int(th))
            todo = [(n, specs[n], onnx_dir / f"{n}.onnx") for n in names] + extra
            for label, sp, path in todo:
                inputs = sp.make_inputs(batch_size, 0)
                sess = ort_session(path, threads=th, opt_level=opt_level)
                want = {i.name for i in sess.get_inputs()}
                feed = {k: v.numpy() for k, v in inputs.items() if k in want}
                with torch.inference_mode():
                    eager = time_fn(lambda: sp.module(*inputs.values()), repeats, warmup)
                ort_t = time_fn(lambda: sess.run(None, feed), repeats, warmup)
                rows.append({"module": label, "threads": int(th), "batch": batch_size,
                             "eager_ms": eager["median_ms"], "ort_ms": ort_t["median_ms"],
                             "speedup": eager["median_ms"] / ort_t["median_ms"],
                             "eager_min_ms": eager["min_ms"], "ort_min_ms": ort_t["min_ms"]})
            # the reference eager paths (what GrootPolicy itself runs)
            from groot_kit.model.policy import dummy_batch
            b = dummy_batch(policy, batch_size)
            ids, mask = policy.tokenize(b["instruction"])
            b.update(input_ids=ids, attention_mask=mask)
            with torch.inference_mode():
                vl, vl_mask = policy.encode_vl(b)
                s1 = time_fn(lambda: policy.action_head.sample(vl, b["state"], b["embodiment_id"], vl_mask=vl_mask),
                             repeats, warmup)
                full = time_fn(lambda: policy.predict_action_chunk(b), repeats, warmup)
            for label, ref, graph in (("system1_chunk (action_head.sample)", s1, "system1"),
                                      ("policy_chunk (predict_action_chunk)", full, "policy")):
                ort_row = next((r for r in rows if r["module"] == graph and r["threads"] == th), None)
                rows.append({"module": label, "threads": int(th), "batch": batch_size, "eager_ms": ref["median_ms"],
                             "ort_ms": ort_row["ort_ms"] if ort_row else float("nan"),
                             "speedup": ref["median_ms"] / ort_row["ort_ms"] if ort_row else float("nan"),
                             "eager_min_ms": ref["min_ms"], "ort_min_ms": ort_row["ort_min_ms"] if ort_row else float("nan")})
    finally:
        torch.set_num_threads(old_threads)
    goal = {}
    for th in threads:
        r = next((r for r in rows if r["module"].startswith("system1_chunk") and r["threads"] == th), None)
        if r:
            best = min([r["ort_ms"]] + [x["ort_ms"] for x in rows if x["module"] == "system1[slot]" and x["threads"] == th])
            goal[str(th)] = {"eager_ms": r["eager_ms"], "ort_ms": r["ort_ms"], "speedup": r["speedup"],
                             "best_ort_ms": best, "best_speedup": r["eager_ms"] / best}
    return {"preset": policy.config.preset, "variant": policy.config.variant, "batch": batch_size,
            "num_steps": policy.config.action_head.num_inference_timesteps, "opt_level": opt_level,
            "torch": torch.__version__, "onnxruntime": _ort_version(), "cpu": platform.processor() or platform.machine(),
            "rows": rows, "system1_chunk_speedup": goal}


def _ort_version() -> str:
    import onnxruntime
    return onnxruntime.__version__


def format_table(result: dict[str, Any]) -> str:
    """Plain-text table of `benchmark_deploy` rows."""
    lines = [f"{'module':38s} {'thr':>3s} {'eager ms':>10s} {'ORT ms':>10s} {'speedup':>8s} "
             f"{'eager min':>10s} {'ORT min':>10s}"]
    for r in result["rows"]:
        lines.append(f"{r['module']:38s} {r['threads']:3d} {r['eager_ms']:10.3f} {r['ort_ms']:10.3f} {r['speedup']:7.2f}x "
                     f"{r['eager_min_ms']:10.3f} {r['ort_min_ms']:10.3f}")
    for th, g in result.get("system1_chunk_speedup", {}).items():
        lines.append(f"System 1 chunk (K={result['num_steps']}), {th} thread(s): eager {g['eager_ms']:.2f} ms, "
                     f"ORT {g['ort_ms']:.2f} ms ({g['speedup']:.2f}x), best ORT {g['best_ort_ms']:.2f} ms "
                     f"({g['best_speedup']:.2f}x)")
    return "\n".join(lines)


def save_json(result: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=lambda o: float(o) if isinstance(o, np.floating) else str(o)))
    return path
