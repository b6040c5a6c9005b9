"""The planned System-1 path (reuse across the K Euler steps) gives the reference path's numbers."""
import dataclasses

import pytest
import torch

from groot_kit.config import get_preset
from groot_kit.model.action_head import FlowMatchingActionHead


def _head(preset: str, **overrides) -> FlowMatchingActionHead:
    cfg = get_preset(preset).action_head
    return FlowMatchingActionHead(dataclasses.replace(cfg, **overrides)).eval()


# Full-size heads keep NVIDIA's widths and every other setting but only 4 DiT blocks (2 cross,
# 2 self), 2 VL self-attention blocks and 4 embodiment slots, so the test fits in seconds on a CPU.
SMALLER = dict(num_layers=4, vl_self_attention_layers=2, max_num_embodiments=4)
HEADS = {"tiny": dict(), "small": dict(), "n1_2b": SMALLER, "n1_5_3b": SMALLER}


@pytest.fixture(scope="module", params=list(HEADS))
def head(request):
    torch.manual_seed(0)
    return _head(request.param, **HEADS[request.param])


def _inputs(head, B, L=37, mixed=False, seed=0):
    cfg = head.cfg
    g = torch.Generator().manual_seed(seed)
    vl = torch.randn(B, L, cfg.cross_attention_dim, generator=g)
    state = torch.randn(B, cfg.max_state_dim, generator=g)
    eid = (torch.arange(B) * 5) % cfg.max_num_embodiments if mixed else torch.full((B,), 3)
    noise = torch.randn(B, cfg.action_horizon, cfg.max_action_dim, generator=g)
    mask = torch.ones(B, L, dtype=torch.bool)
    mask[:, L - 5:] = False
    return vl, state, eid, noise, mask


@pytest.mark.parametrize("B,mixed", [(1, False), (8, False), (8, True)])
def test_planned_sampling_matches_reference(head, B, mixed):
    vl, state, eid, noise, mask = _inputs(head, B, mixed=mixed)
    ref, ref_traj = head.sample(vl, state, eid, noise=noise, vl_mask=mask, exact_reference=True, return_trajectory=True)
    out, traj = head.sample(vl, state, eid, noise=noise, vl_mask=mask, return_trajectory=True)
    err = (traj - ref_traj).abs().max().item()
    assert err < 1e-5, err
    assert torch.allclose(out, ref, atol=1e-5, rtol=0)
    if B == 1:  # a second chunk reuses the cached timestep modulations and still agrees
        out2 = head.sample(vl, state, eid, noise=noise, vl_mask=mask)
        assert (out2 - ref).abs().max().item() < 1e-5


def test_training_loss_and_grads_match_reference(head):
    vl, state, eid, noise, mask = _inputs(head, 4, mixed=True)
    cfg = head.cfg
    action = torch.randn(4, cfg.action_horizon, cfg.max_action_dim)
    amask = torch.ones_like(action, dtype=torch.bool)
    amask[..., 7:] = False
    t = torch.tensor([0.1, 0.4, 0.7, 0.95])
    results = []
    for exact in (True, False):
        head.zero_grad()
        loss, _ = head(vl, state, eid, action, amask, vl_mask=mask, noise=noise, t=t, exact_reference=exact)
        loss.backward()
        results.append((loss.detach(), {n: p.grad.clone() for n, p in head.named_parameters() if p.grad is not None}))
    (l_ref, g_ref), (l_opt, g_opt) = results
    assert torch.allclose(l_ref, l_opt, rtol=1e-5, atol=1e-6)
    assert set(g_ref) == set(g_opt)
    for n in g_ref:  # key biases have zero true gradient (softmax shift): floor the scale at 1e-5
        scale = max(g_ref[n].abs().max().item(), 1e-5)
        assert (g_ref[n] - g_opt[n]).abs().max().item() / scale < 1e-4, n


def test_modulation_cache_follows_weight_changes():
    torch.manual_seed(1)
    head = _head("tiny")
    vl, state, eid, noise, mask = _inputs(head, 2)
    before = head.sample(vl, state, eid, noise=noise)
    with torch.no_grad():  # an in-place update, as an optimizer step makes
        head.model.timestep_encoder.timestep_embedder.linear_2.weight.mul_(1.5)
        head.model.transformer_blocks[1].norm1.linear.bias.add_(0.3)
    after = head.sample(vl, state, eid, noise=noise)
    ref = head.sample(vl, state, eid, noise=noise, exact_reference=True)
    assert (after - before).abs().max() > 1e-3
    assert (after - ref).abs().max().item() < 1e-5
    # a state dict loaded over the head also refreshes it
    other = _head("tiny")
    head.load_state_dict(other.state_dict())
    assert (head.sample(vl, state, eid, noise=noise) - other.sample(vl, state, eid, noise=noise,
                                                                     exact_reference=True)).abs().max() < 1e-5


def test_vl_context_reused_across_chunks_gives_the_same_chunks():
    torch.manual_seed(2)
    head = _head("small", use_vl_mask_in_cross_attention=True)
    vl, state, eid, noise, mask = _inputs(head, 3)
    ctx = head.prepare_vl(vl, mask)
    for seed in range(2):  # two chunks (new state, new noise) from one System-2 output
        s2 = state + seed
        ref = head.sample(vl, s2, eid, noise=noise + seed, vl_mask=mask, exact_reference=True)
        out = head.sample(ctx, s2, eid, noise=noise + seed)
        assert (out - ref).abs().max().item() < 1e-5
    # the mask is applied (config flag on): dropping it changes the result
    assert (head.sample(vl, state, eid, noise=noise) - head.sample(ctx, state, eid, noise=noise)).abs().max() > 1e-4
    with pytest.raises(ValueError, match="VLContext"):
        head.sample(ctx, state, eid, noise=noise, exact_reference=True)
