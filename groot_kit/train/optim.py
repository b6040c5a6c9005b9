"""The one AdamW every training loop in the kit builds (`build_adamw`).

It is torch's AdamW with `fused=True` wherever torch has the fused kernel for the parameters'
device (CPU and CUDA). Same update rule and hyper-parameters as NVIDIA's recipe
(`optim="adamw_torch"` in HF's Trainer, which leaves torch's default implementation); what changes
is memory traffic. The default implementation runs about a dozen separate element-wise ops per
parameter tensor, each a full pass over parameter-sized memory (on the CPU: one tensor at a time;
on CUDA: `foreach`, batched over tensors but still op by op); the fused kernel reads each of
param / grad / exp_avg / exp_avg_sq once and writes three of them once. At the full N1.5 head
(1.07B parameters) on 2 CPU cores: ~5 s per step -> ~0.5 s (`benchmarks/system1.py`).

Numerics: the same formula; a single step agrees with the default implementation to float32
rounding (tests/test_optim.py).
"""

from __future__ import annotations

from typing import Iterable

import torch

FUSED_DEVICES = ("cpu", "cuda")


def fused_supported(params: list[torch.Tensor]) -> bool:
    """True when every parameter is a floating-point tensor on a device with torch's fused AdamW."""
    return bool(params) and all(p.device.type in FUSED_DEVICES and p.is_floating_point() for p in params)


def build_adamw(params: Iterable[torch.Tensor] | Iterable[dict], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                eps: float = 1e-8, weight_decay: float = 0.01, fused: bool | None = None) -> torch.optim.AdamW:
    """torch.optim.AdamW over `params` (tensors, or param-group dicts).

    fused: None -> fused when `fused_supported`; False -> torch's default implementation (what
    `optim="adamw_torch"` gives; the benchmark's reference); True -> fused, or an error from torch
    when the device has no fused kernel.
    """
    params = list(params)
    tensors = [p for g in params for p in g["params"]] if params and isinstance(params[0], dict) else params
    if fused is None:
        fused = fused_supported(tensors)
    return torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                             fused=True if fused else None)
