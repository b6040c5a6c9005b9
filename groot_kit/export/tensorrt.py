"""TensorRT 10 engines from the exported ONNX graphs, and a parity check against onnxruntime.

Runs wherever `tensorrt` imports (a GPU machine or a Jetson). Elsewhere `tensorrt_available()`
is False and every entry point raises `TensorRTUnavailable` with the reason, so callers (tests,
notebook 07) can skip cleanly. On a Jetson without Python TensorRT, `build_engines.sh` in the
bundle does the same with `trtexec`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np


class TensorRTUnavailable(RuntimeError):
    """tensorrt (Python) is not installed or no CUDA device is usable here."""


def tensorrt_available() -> tuple[bool, str]:
    """(True, version) when `import tensorrt` works, else (False, reason)."""
    try:
        import tensorrt as trt
    except Exception as e:   # ImportError or a broken CUDA install
        return False, f"tensorrt does not import here ({type(e).__name__}: {e}); TensorRT steps need a GPU or Jetson"
    return True, trt.__version__


def _require_trt():
    ok, why = tensorrt_available()
    if not ok:
        raise TensorRTUnavailable(why)
    import tensorrt as trt
    return trt


def default_shape_profiles(onnx_path: str | os.PathLike, min_batch: int = 1, opt_batch: int = 1,
                           max_batch: int = 8) -> dict[str, tuple[tuple[int, ...], ...]]:
    """min/opt/max shapes for every input of an ONNX graph whose axis 0 is the (only) dynamic one."""
    import onnx
    m = onnx.load(str(onnx_path), load_external_data=False)
    init = {i.name for i in m.graph.initializer}
    prof = {}
    for inp in m.graph.input:
        if inp.name in init:
            continue
        dims = inp.type.tensor_type.shape.dim
        rest = []
        for d in dims[1:]:
            if not d.HasField("dim_value"):
                raise ValueError(f"{onnx_path}: input {inp.name} has a dynamic non-batch axis ({d.dim_param}); "
                                 "pass shape_profiles explicitly")
            rest.append(int(d.dim_value))
        prof[inp.name] = ((min_batch, *rest), (opt_batch, *rest), (max_batch, *rest))
    return prof


def trtexec_shapes(profiles: dict[str, tuple[tuple[int, ...], ...]]) -> str:
    """--minShapes/--optShapes/--maxShapes arguments for trtexec."""
    parts = []
    for flag, i in (("--minShapes", 0), ("--optShapes", 1), ("--maxShapes", 2)):
        parts.append(flag + "=" + ",".join(f"{n}:{'x'.join(str(s) for s in p[i])}" for n, p in profiles.items()))
    return " ".join(parts)


def build_engine(onnx_path: str | os.PathLike, engine_path: str | os.PathLike | None = None, fp16: bool = True,
                 shape_profiles: dict[str, tuple[tuple[int, ...], ...]] | None = None, max_batch: int = 8,
                 workspace_gb: float = 4.0, verbose: bool = False) -> Path:
    """Parse an ONNX graph and serialize a TensorRT 10 engine (`.plan`) next to it (or at engine_path).

    shape_profiles: {input name: (min_shape, opt_shape, max_shape)}; default: batch 1 / 1 / max_batch.
    fp16 keeps LayerNorm/softmax-sensitive layers to TensorRT's own precision heuristics; compare
    against onnxruntime with `trt_parity` (expect ~1e-3..1e-2 in fp16, ~1e-5 in fp32).
    """
    trt = _require_trt()
    onnx_path = Path(onnx_path)
    engine_path = Path(engine_path) if engine_path else onnx_path.with_suffix(".plan")
    logger = trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)        # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errs}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profiles = shape_profiles or default_shape_profiles(onnx_path, max_batch=max_batch)
    profile = builder.create_optimization_profile()
    for name, (mn, opt, mx) in profiles.items():
        profile.set_shape(name, tuple(mn), tuple(opt), tuple(mx))
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path} (see the log above)")
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = engine_path.with_name(engine_path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(plan)
    os.replace(tmp, engine_path)
    return engine_path


def load_engine_runner(engine_path: str | os.PathLike):
    """A runner with `.run(feed: dict[str, np.ndarray]) -> np.ndarray` (the bundle runtime's TrtGraph)."""
    _require_trt()
    from groot_kit.export.bundle_runtime import TrtGraph
    return TrtGraph(engine_path)


def trt_parity(onnx_path: str | os.PathLike, engine_path: str | os.PathLike, feeds: Iterable[dict[str, np.ndarray]],
               atol: float = 5e-2) -> dict[str, Any]:
    """Compare a TensorRT engine with onnxruntime (fp32 CPU) on the same feeds.

    -> {"max_abs_diff": [per feed], "ok": all <= atol}. fp16 engines typically land near 1e-3.
    """
    from groot_kit.export.onnx_export import ort_session
    runner = load_engine_runner(engine_path)
    sess = ort_session(onnx_path)
    names = {i.name for i in sess.get_inputs()}
    diffs = []
    for feed in feeds:
        ref = sess.run(None, {k: v for k, v in feed.items() if k in names})[0]
        out = runner.run({k: v for k, v in feed.items() if k in names})
        diffs.append(float(np.abs(out.astype(np.float64) - ref).max()))
    return {"max_abs_diff": diffs, "atol": atol, "ok": all(d <= atol for d in diffs)}
