"""groot_kit.export: ONNX export + onnxruntime parity, latency benchmark, TensorRT engines, Jetson bundle.

    export_policy(policy_or_checkpoint_dir, out_dir, modules=None, opset=18, ...) -> report (+ parity.json)
    benchmark_deploy(policy, onnx_dir, threads=(1, 2)) -> latency rows (eager PyTorch vs onnxruntime)
    build_engine(onnx_path, fp16=True, shape_profiles=None) -> engine path     (needs tensorrt)
    export_jetson_bundle(policy, out_dir) -> bundle with build_engines.sh and a standalone runtime.py
"""

from groot_kit.export.onnx_export import (DEFAULT_OPSET, PARITY_ATOL, ExportError, bake_embodiment, check_parity,
                                          export_graph, export_policy, graph_specs, ort_session)
from groot_kit.export.tensorrt import (TensorRTUnavailable, build_engine, default_shape_profiles,
                                       tensorrt_available, trt_parity, trtexec_shapes)
from groot_kit.export.jetson import export_jetson_bundle
from groot_kit.export.benchmark import benchmark_deploy, format_table

__all__ = ["DEFAULT_OPSET", "PARITY_ATOL", "ExportError", "bake_embodiment", "check_parity", "export_graph",
           "export_policy", "graph_specs", "ort_session", "TensorRTUnavailable", "build_engine",
           "default_shape_profiles", "tensorrt_available", "trt_parity", "trtexec_shapes", "export_jetson_bundle",
           "benchmark_deploy", "format_table"]
