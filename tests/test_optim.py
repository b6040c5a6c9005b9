"""The kit's AdamW (`train.optim.build_adamw`): the fused kernel where torch has one, the same update."""

from __future__ import annotations

import copy

import pytest
import torch

from groot_kit import bench
from groot_kit.config import get_preset
from groot_kit.model.action_head import FlowMatchingActionHead
from groot_kit.train.optim import build_adamw, fused_supported


def _head_with_grads(seed: int = 0) -> FlowMatchingActionHead:
    torch.manual_seed(seed)
    head = FlowMatchingActionHead(get_preset("tiny").action_head).train()
    x = bench.head_inputs(head, 12, seed=seed)
    loss, _ = head(x["vl"], x["state"], x["eid"], x["action"], torch.ones_like(x["action"], dtype=torch.bool),
                   noise=x["noise"], t=x["t"])
    loss.backward()
    return head


def test_fused_is_chosen_on_cpu_and_can_be_refused():
    params = list(_head_with_grads().parameters())
    assert fused_supported(params)
    assert build_adamw(params, lr=1e-3).defaults["fused"] is True
    assert not build_adamw(params, lr=1e-3, fused=False).defaults["fused"]
    groups = [{"params": params[:3]}, {"params": params[3:], "lr": 1e-4}]
    assert build_adamw(groups, lr=1e-3).defaults["fused"] is True
    assert not fused_supported([torch.zeros(3, dtype=torch.long)])


@pytest.mark.parametrize("weight_decay", [0.0, 1e-5])
def test_fused_step_matches_default_adamw(weight_decay):
    """Three steps from the same state and gradients: the fused and default updates agree to float32
    rounding (gradients are fixed, so differences cannot grow through the loss)."""
    head = _head_with_grads()
    a, b = head, copy.deepcopy(head)
    for p, q in zip(a.parameters(), b.parameters()):  # deepcopy does not copy .grad
        q.grad = p.grad.clone()
    opts = [build_adamw(m.parameters(), lr=1e-3, betas=(0.95, 0.999), weight_decay=weight_decay, fused=f)
            for m, f in ((a, False), (b, True))]
    before = [p.detach().clone() for p in a.parameters()]
    for _ in range(3):
        for opt in opts:
            opt.step()
    moved = max((p - q).abs().max().item() for p, q in zip(a.parameters(), before))
    assert moved > 1e-4  # the step did something
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-6, atol=1e-7, msg=f"{name}: fused AdamW differs from the default")
    for p, q in zip(a.parameters(), b.parameters()):
        sa, sb = opts[0].state[p], opts[1].state[q]
        torch.testing.assert_close(sb["exp_avg_sq"], sa["exp_avg_sq"], rtol=1e-6, atol=1e-12)

