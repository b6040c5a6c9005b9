#!/usr/bin/env python3
"""Standalone GR00T runtime for an exported bundle (copied into the bundle as `runtime.py`).

Needs only numpy plus ONE inference backend:
    onnxruntime            runs the bundle's ONNX graphs (CPU, or CUDA/TensorRT execution providers)
    tensorrt (10.x)        runs the engines that build_engines.sh writes; device buffers through
                           cuda-python (`pip install cuda-python`) or pycuda, whichever imports
No torch, no transformers, no groot_kit.

Tokenization: the bundle holds `tokenizer/tokenizer.json`; when the small `tokenizers` package is
installed the runtime tokenizes any instruction with it (same ids as the training tokenizer).
Without it, the runtime falls back to `prompts.json`: instructions tokenized at bundle time.
The prompt layout is GrootPolicy.tokenize's: <bos> <image>*n_img text[:max_text] <eos> <pad>*
(config prompt.order image_first), or <bos> text[:max_text] <pad>* <image>*n_img <eos> (text_first).

Usage (python runtime.py --help):
    rt = GrootRuntime(bundle_dir, backend="onnxruntime")          # or "tensorrt", "auto"
    actions = rt.predict_action_chunk(pixel_values, state, embodiment_id, ["pick up the cube"], noise=None)
        pixel_values float32 [B, V, 3, S, S] in [0, 1]; state float32 [B, Dmax_s] (normalised, zero-padded)
        embodiment_id int64 [B]; noise float32 [B, H, Dmax_a] (drawn from N(0, 1) when None)
        -> normalised action chunk float32 [B, H, Dmax_a]
    Dual rate: vl = rt.encode_vl(...) (System 2, slow) then rt.sample(vl, state, ...) (System 1, fast).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

BUNDLE_FORMAT = "groot_kit_bundle/1"


class BundleError(RuntimeError):
    """The bundle folder or an input is malformed; the message names the file/field and the fix."""


# ---------------------------------------------------------------------------------------------- backends

class OrtGraph:
    """One ONNX graph under onnxruntime."""

    def __init__(self, path, threads=None, providers=None):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        if threads:
            so.intra_op_num_threads = int(threads)
        avail = ort.get_available_providers()
        providers = providers or [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in avail]
        self.session = ort.InferenceSession(str(path), so, providers=providers)
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]

    def run(self, feed):
        return self.session.run(None, {k: feed[k] for k in self.inputs})[0]


class _CudaMem:
    """Minimal device memory API over cuda-python (cudart) or pycuda."""

    def __init__(self):
        self.kind = None
        try:
            try:
                from cuda.bindings import runtime as cudart   # cuda-python >= 12.6
            except ImportError:
                from cuda import cudart                        # older cuda-python
            self.cudart, self.kind = cudart, "cudart"
            self.stream = self._ok(cudart.cudaStreamCreate())
        except ImportError:
            try:
                import pycuda.autoinit  # noqa: F401
                import pycuda.driver as drv
            except ImportError as e:
                raise BundleError("the tensorrt backend needs cuda-python (pip install cuda-python) or pycuda "
                                  "for device buffers; or use backend='onnxruntime'") from e
            self.drv, self.kind = drv, "pycuda"
            self.stream = drv.Stream()

    def _ok(self, res):
        err = res[0] if isinstance(res, tuple) else res
        if int(err) != 0:
            raise BundleError(f"CUDA error {err}")
        return res[1] if isinstance(res, tuple) and len(res) == 2 else None

    @property
    def stream_handle(self):
        return self.stream if self.kind == "cudart" else self.stream.handle

    def malloc(self, nbytes):
        if self.kind == "cudart":
            return int(self._ok(self.cudart.cudaMalloc(max(1, nbytes))))
        return self.drv.mem_alloc(max(1, nbytes))

    def free(self, ptr):
        if self.kind == "cudart":
            self.cudart.cudaFree(ptr)
        else:
            ptr.free()

    def h2d(self, dptr, host):
        if self.kind == "cudart":
            k = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
            self._ok(self.cudart.cudaMemcpyAsync(dptr, host.ctypes.data, host.nbytes, k, self.stream))
        else:
            self.drv.memcpy_htod_async(dptr, host, self.stream)

    def d2h(self, host, dptr):
        if self.kind == "cudart":
            k = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
            self._ok(self.cudart.cudaMemcpyAsync(host.ctypes.data, dptr, host.nbytes, k, self.stream))
        else:
            self.drv.memcpy_dtoh_async(host, dptr, self.stream)

    def sync(self):
        if self.kind == "cudart":
            self._ok(self.cudart.cudaStreamSynchronize(self.stream))
        else:
            self.stream.synchronize()


class TrtGraph:
    """One serialized TensorRT 10 engine (explicit shapes, dynamic batch via its profile)."""

    def __init__(self, engine_path):
        try:
            import tensorrt as trt
        except ImportError as e:
            raise BundleError("tensorrt does not import here; install TensorRT 10 (JetPack ships it) or use "
                              "backend='onnxruntime'") from e
        if not Path(engine_path).exists():
            raise BundleError(f"engine {engine_path} is missing; run build_engines.sh on the target device first")
        self.trt = trt
        self.logger = trt.Logger(trt.Logger.WARNING)
        with open(engine_path, "rb") as f:
            self.runtime = trt.Runtime(self.logger)     # must outlive the engine
            self.engine = self.runtime.deserialize_cuda_engine(f.read())
        if self.engine is None:
            raise BundleError(f"could not deserialize {engine_path}; engines are specific to the TensorRT version "
                              "and GPU that built them: rebuild with build_engines.sh on this device")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.mem = _CudaMem()
        self._buffers = {}          # name -> (device ptr, nbytes)

    def _buffer(self, name, nbytes):
        ptr, size = self._buffers.get(name, (None, 0))
        if ptr is None or size < nbytes:
            if ptr is not None:
                self.mem.free(ptr)
            ptr = self.mem.malloc(nbytes)
            self._buffers[name] = (ptr, nbytes)
        return ptr

    def run(self, feed):
        trt = self.trt
        for n in self.inputs:
            a = np.ascontiguousarray(feed[n], dtype=trt.nptype(self.engine.get_tensor_dtype(n)))
            self.context.set_input_shape(n, a.shape)
            ptr = self._buffer(n, a.nbytes)
            self.mem.h2d(ptr, a)
            self.context.set_tensor_address(n, int(ptr))
        outs = []
        for n in self.outputs:
            shape = tuple(self.context.get_tensor_shape(n))
            host = np.empty(shape, dtype=trt.nptype(self.engine.get_tensor_dtype(n)))
            ptr = self._buffer(n, host.nbytes)
            self.context.set_tensor_address(n, int(ptr))
            outs.append((host, ptr))
        if not self.context.execute_async_v3(self.mem.stream_handle):
            raise BundleError("TensorRT execution failed (see the TensorRT log above)")
        for host, ptr in outs:
            self.mem.d2h(host, ptr)
        self.mem.sync()
        return outs[0][0].astype(np.float32)

    def __del__(self):
        for ptr, _ in getattr(self, "_buffers", {}).values():
            try:
                self.mem.free(ptr)
            except Exception:
                pass


# ---------------------------------------------------------------------------------------------- runtime

class PromptBuilder:
    """input_ids / attention_mask without transformers (tokenizers package, or prompts.json)."""

    def __init__(self, bundle: Path, prompt_cfg: dict):
        self.cfg = prompt_cfg
        self.tokenizer = None
        tj = bundle / "tokenizer" / "tokenizer.json"
        try:
            from tokenizers import Tokenizer
            if tj.exists():
                self.tokenizer = Tokenizer.from_file(str(tj))
        except ImportError:
            pass
        pj = bundle / "prompts.json"
        self.known = json.loads(pj.read_text()) if pj.exists() else {}

    def text_ids(self, text: str) -> list:
        if self.tokenizer is not None:
            return self.tokenizer.encode(text, add_special_tokens=False).ids
        if text in self.known:
            return list(self.known[text])
        raise BundleError(f"cannot tokenize {text!r}: the `tokenizers` package is not installed and the "
                          "instruction is not in prompts.json. pip install tokenizers, or re-export the bundle "
                          "with this instruction in `instructions=`")

    def __call__(self, instructions):
        c = self.cfg
        ids, mask = [], []
        for text in instructions:
            t = self.text_ids(text)[: c["max_text_tokens"]]
            img, gap = [c["image_token_id"]] * c["num_image_tokens"], c["max_text_tokens"] - len(t)
            if c.get("order", "image_first") == "text_first":   # image tokens at fixed positions after the text
                ids.append([c["bos_id"]] + t + [c["pad_id"]] * gap + img + [c["eos_id"]])
                mask.append([1] * (1 + len(t)) + [0] * gap + [1] * (len(img) + 1))
            else:
                ids.append([c["bos_id"]] + img + t + [c["eos_id"]] + [c["pad_id"]] * gap)
                mask.append([1] * (len(img) + len(t) + 2) + [0] * gap)
        return np.asarray(ids, dtype=np.int64), np.asarray(mask, dtype=np.int64)


class GrootRuntime:
    """Runs an exported GR00T policy bundle with onnxruntime or TensorRT."""

    def __init__(self, bundle_dir, backend: str = "auto", threads: int | None = None):
        self.dir = Path(bundle_dir)
        cfg_file = self.dir / "config.json"
        if not cfg_file.exists():
            raise BundleError(f"{cfg_file} is missing; point GrootRuntime at a folder written by export_jetson_bundle")
        self.config = json.loads(cfg_file.read_text())
        if self.config.get("format") != BUNDLE_FORMAT:
            raise BundleError(f"{cfg_file} is not a groot_kit bundle config (format != {BUNDLE_FORMAT})")
        if backend == "auto":
            backend = "tensorrt" if self._engines_exist() and _imports("tensorrt") else "onnxruntime"
        if backend not in ("onnxruntime", "tensorrt"):
            raise BundleError(f"backend must be 'onnxruntime', 'tensorrt' or 'auto', got {backend!r}")
        self.backend, self.threads = backend, threads
        self.prompt = PromptBuilder(self.dir, self.config["prompt"])
        norm = self.dir / "normalization.json"
        self.normalization = json.loads(norm.read_text()) if norm.exists() else {}
        self._graphs = {}

    def _engines_exist(self):
        return all((self.dir / g["engine"]).exists() for g in self.config["graphs"].values())

    def graph(self, name):
        if name not in self._graphs:
            g = self.config["graphs"].get(name)
            if g is None:
                raise BundleError(f"graph {name!r} is not in this bundle ({sorted(self.config['graphs'])})")
            if self.backend == "tensorrt":
                self._graphs[name] = TrtGraph(self.dir / g["engine"])
            else:
                self._graphs[name] = OrtGraph(self.dir / g["onnx"], threads=self.threads)
        return self._graphs[name]

    # -- inputs ----------------------------------------------------------------------------------
    def _check(self, name, arr, shape, dtype):
        arr = np.asarray(arr)
        if arr.ndim != len(shape) or any(s is not None and a != s for a, s in zip(arr.shape, shape)):
            raise BundleError(f"{name} must have shape {['B' if s is None else s for s in shape]}, got {list(arr.shape)}")
        if dtype == np.float32 and not np.isfinite(arr).all():
            raise BundleError(f"{name} contains NaN or inf")
        return np.ascontiguousarray(arr, dtype=dtype)

    def _noise(self, B, noise, seed):
        m = self.config["model"]["action_head"]
        shape = (None, m["action_horizon"], m["max_action_dim"])
        if noise is None:
            noise = np.random.default_rng(seed).standard_normal((B, shape[1], shape[2])).astype(np.float32)
        return self._check("noise", noise, shape, np.float32)

    def _common(self, pixel_values, state, embodiment_id, instructions, input_ids, attention_mask):
        m = self.config["model"]
        S, V = m["vlm"]["vision"]["image_size"], m["vlm"]["num_views"]
        pv = self._check("pixel_values", pixel_values, (None, V, 3, S, S), np.float32)
        B = pv.shape[0]
        st = self._check("state", state, (B, m["action_head"]["max_state_dim"]), np.float32)
        if input_ids is None:
            if instructions is None or len(instructions) != B:
                raise BundleError(f"pass {B} instructions (one per sample) or input_ids + attention_mask")
            input_ids, attention_mask = self.prompt(list(instructions))
        T = self.config["prompt"]["seq_len"]
        feed = {"pixel_values": pv, "input_ids": self._check("input_ids", input_ids, (B, T), np.int64),
                "attention_mask": self._check("attention_mask", attention_mask, (B, T), np.int64), "state": st}
        if self.config.get("embodiment_slot") is None:
            eid = self._check("embodiment_id", np.broadcast_to(np.asarray(embodiment_id, dtype=np.int64), (B,)), (B,), np.int64)
            E = m["action_head"]["max_num_embodiments"]
            if (eid < 0).any() or (eid >= E).any():
                raise BundleError(f"embodiment_id {eid.tolist()} outside 0..{E - 1}")
            feed["embodiment_id"] = eid
        return feed

    # -- inference -------------------------------------------------------------------------------
    def predict_action_chunk(self, pixel_values, state, embodiment_id=0, instructions=None, noise=None,
                             input_ids=None, attention_mask=None, seed=None):
        """Whole policy graph: -> normalised action chunk float32 [B, H, Dmax_a]."""
        feed = self._common(pixel_values, state, embodiment_id, instructions, input_ids, attention_mask)
        feed["noise"] = self._noise(feed["state"].shape[0], noise, seed)
        return self.graph("policy").run(feed)

    def encode_vl(self, pixel_values, instructions=None, input_ids=None, attention_mask=None):
        """System 2 only (run at a slow rate): -> (vl_tokens [B, T, c], attention_mask [B, T])."""
        m = self.config["model"]
        B = np.asarray(pixel_values).shape[0]
        feed = self._common(pixel_values, np.zeros((B, m["action_head"]["max_state_dim"]), np.float32), 0,
                            instructions, input_ids, attention_mask)
        return self.graph("system2").run(feed), feed["attention_mask"]

    def sample(self, vl_tokens, state, embodiment_id=0, noise=None, vl_mask=None, seed=None):
        """System 1 only (fast rate): K unrolled Euler steps -> action chunk [B, H, Dmax_a]."""
        st = np.ascontiguousarray(state, dtype=np.float32)
        B = st.shape[0]
        feed = {"vl_tokens": np.ascontiguousarray(vl_tokens, dtype=np.float32), "state": st,
                "noise": self._noise(B, noise, seed)}
        if self.config.get("embodiment_slot") is None:
            feed["embodiment_id"] = np.broadcast_to(np.asarray(embodiment_id, dtype=np.int64), (B,)).copy()
        if vl_mask is not None:
            feed["vl_mask"] = np.asarray(vl_mask, dtype=np.int64)
        return self.graph("system1").run(feed)

    def unnormalize(self, key_stats: dict, y):
        """Map normalised values back with one key's stats ({mode, min, max, mean, std, q01, q99})."""
        y = np.asarray(y, dtype=np.float64)
        mode = key_stats["mode"]
        g = {k: np.asarray(key_stats[k], dtype=np.float64) for k in ("min", "max", "mean", "std", "q01", "q99") if k in key_stats}
        if mode in ("min_max", "q99"):
            lo, hi = (g["q01"], g["q99"]) if mode == "q99" else (g["min"], g["max"])
            return (y + 1) / 2 * (hi - lo) + lo
        if mode == "mean_std":
            return y * g["std"] + g["mean"]
        if mode == "binary":
            return np.where(y > 0.5, g["max"], g["min"])
        raise BundleError(f"unknown normalization mode {mode!r}")


def _imports(name):
    try:
        __import__(name)
        return True
    except Exception:
        return False


def main(argv=None):
    ap = argparse.ArgumentParser(description="Run a groot_kit policy bundle (numpy + onnxruntime or tensorrt)")
    ap.add_argument("--bundle", default=os.path.dirname(os.path.abspath(__file__)), help="bundle folder")
    ap.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "tensorrt"])
    ap.add_argument("--inputs", help=".npz with pixel_values, state, embodiment_id and optionally noise, input_ids, attention_mask")
    ap.add_argument("--instruction", action="append", help="instruction text (repeat once per sample)")
    ap.add_argument("--out", help=".npz to write the action chunk to (key 'actions')")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    rt = GrootRuntime(a.bundle, backend=a.backend, threads=a.threads)
    if a.inputs:
        d = dict(np.load(a.inputs))
    else:  # smoke test on random inputs
        m = rt.config["model"]
        S, V = m["vlm"]["vision"]["image_size"], m["vlm"]["num_views"]
        rng = np.random.default_rng(a.seed)
        d = {"pixel_values": rng.random((1, V, 3, S, S), dtype=np.float32),
             "state": rng.standard_normal((1, m["action_head"]["max_state_dim"])).astype(np.float32),
             "embodiment_id": np.zeros(1, np.int64)}
    actions = rt.predict_action_chunk(d["pixel_values"], d["state"], d.get("embodiment_id", 0),
                                      instructions=a.instruction or (None if "input_ids" in d else ["do nothing"] * len(d["state"])),
                                      noise=d.get("noise"), input_ids=d.get("input_ids"),
                                      attention_mask=d.get("attention_mask"), seed=a.seed)
    info = {"backend": rt.backend, "shape": list(actions.shape), "tokenizer": "tokenizers" if rt.prompt.tokenizer else "prompts.json",
            "torch_loaded": "torch" in sys.modules}
    if a.out:
        np.savez(a.out, actions=actions)
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
