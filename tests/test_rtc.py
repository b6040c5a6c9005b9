"""Real-time chunking: the guided sampler reproduces the executed prefix and leaves the rest to the policy."""
import math

import pytest
import torch

from groot_kit.config import get_preset
from groot_kit.model.action_head import FlowMatchingActionHead
from groot_kit.model.rtc import guidance_weight, rtc_sample, rtc_soft_mask

MU, SIGMA = 0.3, 0.5


def gaussian_velocity(K):
    """The exact flow-matching velocity for data A ~ N(MU, SIGMA^2) per element (x_t = (1-t) eps + t A):
    v = E[A - eps | x_t] = MU + (t SIGMA^2 - (1 - t)) / ((1 - t)^2 + t^2 SIGMA^2) * (x - t MU)."""
    def v(x, k):
        t = k / K
        return MU + (t * SIGMA ** 2 - (1 - t)) / ((1 - t) ** 2 + t ** 2 * SIGMA ** 2) * (x - t * MU)
    return v


@pytest.fixture(scope="module")
def head():
    torch.manual_seed(0)
    return FlowMatchingActionHead(get_preset("tiny").action_head).eval()


def test_soft_mask_shape():
    w = rtc_soft_mask(16, 4, 10)
    assert torch.equal(w[:4], torch.ones(4)) and torch.equal(w[10:], torch.zeros(6))
    assert (w[4:10] > 0).all() and (w[4:10] < 1).all() and (w[4:10].diff() < 0).all()  # decays
    c = (10 - 4) / (10 - 4 + 1)
    assert math.isclose(w[4].item(), c * (math.exp(c) - 1) / (math.e - 1), rel_tol=1e-6)
    assert guidance_weight(0.0, 5.0) == 5.0 and guidance_weight(0.75, 5.0) < 5.0
    with pytest.raises(ValueError, match="prefix_len"):
        rtc_soft_mask(16, 11, 10)


def test_gaussian_policy_prefix_is_inpainted_and_the_free_part_is_the_policy_sample(head):
    K, B, d, P = 4, 64, 4, 10
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(B, 16, 32, generator=g)
    prev = MU + SIGMA * torch.randn(B, P, 32, generator=g)   # the previous chunk's remaining actions
    z = torch.zeros(B, 64), torch.zeros(B, dtype=torch.long)
    free = rtc_sample(head, torch.zeros(B, 3, 64), *z, prev, d, num_steps=K, noise=noise,
                      velocity=gaussian_velocity(K), max_guidance=0.0)
    out = rtc_sample(head, torch.zeros(B, 3, 64), *z, prev, d, num_steps=K, noise=noise,
                     velocity=gaussian_velocity(K))
    free_err = (free[:, :d] - prev[:, :d]).abs().mean()
    err = (out[:, :d] - prev[:, :d]).abs().mean()
    assert err < 0.25 * free_err, (err, free_err)              # executed prefix reproduced
    assert (out[:, d] - prev[:, d]).abs().mean() < 0.5 * free_err  # and the overlap joins it
    # beyond the overlap (mask 0) the policy's own sample is untouched (this field is per element)
    assert torch.equal(out[:, P:], free[:, P:])
    # with no guidance it is exactly the plain Euler sampler of this field
    x = noise.clone()
    for k in range(K):
        x = x + gaussian_velocity(K)(x, k) / K
    assert torch.allclose(free, x, atol=1e-6)


def test_real_head_continues_the_previous_chunk(head):
    g = torch.Generator().manual_seed(2)
    vl, state = torch.randn(2, 20, 64, generator=g), torch.randn(2, 64, generator=g)
    eid = torch.tensor([0, 3])
    n1, n2 = torch.randn(2, 16, 32, generator=g), torch.randn(2, 16, 32, generator=g)
    prev = head.sample(vl, state, eid, noise=n1)
    s, d = 4, 3                      # 4 actions executed before the observation, 3 more during inference
    free = head.sample(vl, state, eid, noise=n2)
    out = rtc_sample(head, vl, state, eid, prev[:, s:], d, noise=n2)
    ref = rtc_sample(head, vl, state, eid, prev[:, s:], d, noise=n2, exact_reference=True)
    assert (out - ref).abs().max() < 1e-4   # the planned path gives the same guided chunk
    with torch.no_grad():                   # a VLContext made by the System-2 side works the same
        ctx = head.prepare_vl(vl)
    assert (rtc_sample(head, ctx, state, eid, prev[:, s:], d, noise=n2) - out).abs().max() < 1e-5
    free_err = (free[:, :d] - prev[:, s:s + d]).abs().mean()
    assert (out[:, :d] - prev[:, s:s + d]).abs().mean() < 0.1 * free_err
    jump_free = (free[:, d] - prev[:, s + d]).abs().mean()
    assert (out[:, d] - prev[:, s + d]).abs().mean() < 0.2 * jump_free  # no jump where execution switches
    # past the overlap (ticks P.. = H - s..) the chunk stays the policy's sample for this noise: much
    # closer to it than two samples of the policy (different noise) are to each other
    P = 16 - s
    spread = (free[:, P:] - prev[:, P:]).abs().mean()
    assert (out[:, P:] - free[:, P:]).abs().mean() < 0.25 * spread
    with pytest.raises(ValueError, match="prefix_actions"):
        rtc_sample(head, vl, state, eid, prev[:, :, :7], d, noise=n2)
