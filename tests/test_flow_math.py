"""Pin System 1's math: loss vs an independent computation, masking, the Euler sampler,
per-embodiment isolation, overfitting, and checkpoint round trips."""
import math
import time

import pytest
import torch
import torch.nn.functional as F

from groot_kit.model.policy import GrootPolicy, dummy_batch


# ---------------------------------------------------------------------------------------------
# An independent, functional re-implementation of the action head from DESIGN.md section 4,
# reading raw tensors out of the state dict (no module code shared with the package).
# ---------------------------------------------------------------------------------------------
def _cat_linear(sd, name, x, e):
    return torch.einsum("bti,bio->bto", x, sd[name + ".W"][e]) + sd[name + ".b"][e][:, None]


def _ln(x, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps)


def _lin(sd, name, x):
    return x @ sd[name + ".weight"].T + sd[name + ".bias"]


def _attn(sd, name, x, ctx, heads):
    q, k, v = _lin(sd, name + ".to_q", x), _lin(sd, name + ".to_k", ctx), _lin(sd, name + ".to_v", ctx)
    B, N, C = q.shape
    d = C // heads
    q, k, v = (t.reshape(B, -1, heads, d).permute(0, 2, 1, 3) for t in (q, k, v))
    w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
    return _lin(sd, name + ".to_out.0", (w @ v).permute(0, 2, 1, 3).reshape(B, N, C))


def reference_velocity(sd, cfg, x_t, bucket, state, vl, e):
    w = cfg.input_embedding_dim
    # action encoder: sinusoid of the integer bucket, sin half first
    half = w // 2
    freqs = torch.exp(-torch.arange(half) * math.log(10000) / half)
    ang = bucket.float()[:, None, None] * freqs
    code = torch.cat([torch.sin(ang), torch.cos(ang)], -1).expand(-1, x_t.shape[1], -1)
    a = _cat_linear(sd, "action_encoder.W1", x_t, e)
    h = _cat_linear(sd, "action_encoder.W2", torch.cat([a, code], -1), e)
    h = _cat_linear(sd, "action_encoder.W3", h * torch.sigmoid(h), e)
    h = h + sd["position_embedding.weight"][: x_t.shape[1]]
    s = _cat_linear(sd, "state_encoder.layer2", F.relu(_cat_linear(sd, "state_encoder.layer1", state[:, None], e)), e)
    h = torch.cat([s, h], 1)
    # timestep encoder: 256 channels, cos first, shift 1
    ex = torch.exp(-math.log(10000) * torch.arange(128) / 127)
    ang = bucket.float()[:, None] * ex
    temb = torch.cat([torch.cos(ang), torch.sin(ang)], -1)
    temb = _lin(sd, "model.timestep_encoder.timestep_embedder.linear_2",
                F.silu(_lin(sd, "model.timestep_encoder.timestep_embedder.linear_1", temb)))
    for i in range(cfg.num_layers):
        p = f"model.transformer_blocks.{i}"
        scale, shift = _lin(sd, p + ".norm1.linear", F.silu(temb)).chunk(2, -1)
        n = _ln(h, 1e-5) * (1 + scale[:, None]) + shift[:, None]
        h = h + _attn(sd, p + ".attn1", n, vl if i % 2 == 0 else n, cfg.num_attention_heads)
        ff = _lin(sd, p + ".ff.net.2", F.gelu(_lin(sd, p + ".ff.net.0.proj", _ln(h, 1e-5)), approximate="tanh"))
        h = h + ff
    shift, scale = _lin(sd, "model.proj_out_1", F.silu(temb)).chunk(2, -1)
    out = _lin(sd, "model.proj_out_2", _ln(h, 1e-6) * (1 + scale[:, None]) + shift[:, None])
    dec = _cat_linear(sd, "action_decoder.layer2", F.relu(_cat_linear(sd, "action_decoder.layer1", out, e)), e)
    return dec[:, -x_t.shape[1]:]


def test_flow_matching_loss_equals_independent_computation(tiny_policy):
    p = tiny_policy
    cfg = p.config.action_head
    batch = dummy_batch(p, 3, training=True, action_dims=6)
    batch["embodiment_id"] = torch.tensor([0, 5, 31])
    g = torch.Generator().manual_seed(3)
    noise = torch.randn(3, cfg.action_horizon, cfg.max_action_dim, generator=g)
    t = torch.tensor([0.05, 0.5, 0.93])
    with torch.no_grad():
        loss, _ = p(batch, noise=noise, t=t)
        vl, _ = p.encode_vl(batch)
    sd = {k[len("action_head."):]: v for k, v in p.state_dict().items() if k.startswith("action_head.")}
    A = batch["action"]
    x_t = (1 - t[:, None, None]) * noise + t[:, None, None] * A
    bucket = torch.floor(t * 1000).long()
    pred = reference_velocity(sd, cfg, x_t, bucket, batch["state"], vl, batch["embodiment_id"])
    mask = batch["action_mask"].float()
    expected = (((pred - (A - noise)) ** 2) * mask).sum() / mask.sum()
    assert torch.allclose(loss, expected, rtol=1e-5, atol=1e-6), (loss.item(), expected.item())


def test_padded_dims_contribute_nothing(tiny_policy):
    p = tiny_policy
    batch = dummy_batch(p, 2, training=True, action_dims=5)
    noise = torch.randn(2, 16, 32)
    t = torch.tensor([0.3, 0.7])
    loss1, _ = p(batch, noise=noise, t=t)
    # garbage in the padded dims of the action and of the noise: same loss
    batch2 = dict(batch, action=batch["action"].clone())
    batch2["action"][..., 5:] = 100.0
    noise2 = noise.clone()
    noise2[..., 5:] = -7.0
    # the padded dims feed the encoder too, so compare the masked-loss definition directly:
    from groot_kit.model.action_head import masked_flow_loss
    pred = torch.randn(2, 16, 32)
    target = torch.randn(2, 16, 32)
    m = batch["action_mask"]
    pred2, target2 = pred.clone(), target.clone()
    pred2[..., 5:] += 1e3
    target2[..., 5:] -= 1e3
    assert masked_flow_loss(pred, target, m) == masked_flow_loss(pred2, target2, m)
    # and no gradient flows from padded outputs
    pred.requires_grad_(True)
    masked_flow_loss(pred, target, m).backward()
    assert pred.grad[..., 5:].abs().sum() == 0 and pred.grad[..., :5].abs().sum() > 0
    # normalisation is by the number of real entries, not all entries
    assert torch.isclose(masked_flow_loss(torch.ones(1, 16, 32), torch.zeros(1, 16, 32), m[:1]), torch.tensor(1.0))
    assert torch.isfinite(loss1)


def test_euler_sampler_integrates_straight_flow_exactly(tiny_policy, monkeypatch):
    """For the straight-line field v(x, t) = (A - x)/(1 - t), K Euler steps land exactly on A."""
    p = tiny_policy
    head = p.action_head
    A = torch.randn(2, 16, 32)
    seen_t = []

    def straight_velocity(x, timestep, state_tokens, vl, e, vl_mask=None, **reuse):
        t = timestep.float()[:, None, None] / 1000.0
        seen_t.append(float(t[0]))
        return (A - x) / (1 - t)

    monkeypatch.setattr(head, "velocity", straight_velocity)
    for K in (1, 4, 8):
        seen_t.clear()
        x0 = torch.randn(2, 16, 32)
        out, traj = head.sample(torch.zeros(2, 5, 64), torch.zeros(2, 64), torch.zeros(2, dtype=torch.long),
                                num_steps=K, noise=x0, return_trajectory=True)
        assert seen_t == [k / K for k in range(K)]
        assert torch.allclose(out, A, atol=1e-5)
        # every iterate lies on the straight path x_k = (1 - k/K) x0 + (k/K) A
        for k in range(K + 1):
            assert torch.allclose(traj[:, k], (1 - k / K) * x0 + (k / K) * A, atol=1e-5)


def test_gradient_step_on_embodiment_3_changes_only_slot_3(tiny_policy):
    from groot_kit.model.embodiment_layers import CategorySpecificLinear
    p = tiny_policy.train()
    batch = dummy_batch(p, 4, training=True, embodiment_id=3, action_dims=7)
    before = {n: m.W.detach().clone() for n, m in p.named_modules() if isinstance(m, CategorySpecificLinear)}
    before_b = {n: m.b.detach().clone() for n, m in p.named_modules() if isinstance(m, CategorySpecificLinear)}
    opt = torch.optim.SGD(p.parameters(), lr=0.1)
    loss, _ = p(batch)
    loss.backward()
    opt.step()
    assert len(before) == 7  # state encoder (2) + action encoder (3) + action decoder (2)
    for n, m in p.named_modules():
        if isinstance(m, CategorySpecificLinear):
            changed = (m.W.detach() != before[n]).flatten(1).any(1) | (m.b.detach() != before_b[n]).any(1)
            assert changed[3], f"{n}: slot 3 did not change"
            assert not changed[torch.arange(m.num_categories) != 3].any(), f"{n}: another slot changed"


def test_tiny_policy_overfits_one_batch_on_cpu():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    p = GrootPolicy("tiny").train()
    batch = dummy_batch(p, 4, training=True, action_dims=7)
    ids, mask = p.tokenize(batch["instruction"])
    batch.update(input_ids=ids, attention_mask=mask)

    def eval_loss():  # fixed set of (noise, t) draws so the measurement itself is not noisy
        with torch.no_grad():
            return sum(p(batch, noise=torch.randn(4, 16, 32, generator=torch.Generator().manual_seed(s)),
                         t=torch.rand(4, generator=torch.Generator().manual_seed(100 + s)))[0].item()
                       for s in range(8)) / 8

    start_loss = eval_loss()
    opt = torch.optim.AdamW(p.parameters(), lr=3e-3, betas=(0.95, 0.999), weight_decay=0.0)
    steps = 800
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    # CPU time of this process (one thread), so a busy machine does not fail the test.
    t0 = time.process_time()
    for _ in range(steps):
        loss, _ = p(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    elapsed = time.process_time() - t0
    end_loss = eval_loss()
    assert end_loss < start_loss / 10, (start_loss, end_loss)
    assert elapsed < 60, f"overfitting took {elapsed:.1f} s of CPU time on one core"


def test_save_load_round_trip_is_bit_identical(tiny_policy, tmp_path):
    p = tiny_policy
    p.normalization = {"so100": {"state.arm": {"mode": "min_max", "min": [0.0], "max": [1.0]}}}
    batch = dummy_batch(p, 2)
    noise = torch.randn(2, 16, 32)
    a1 = p.predict_action_chunk(batch, noise=noise)
    p.save_pretrained(tmp_path / "ckpt")
    q = GrootPolicy.from_pretrained(tmp_path / "ckpt")
    a2 = q.predict_action_chunk(batch, noise=noise)
    assert torch.equal(a1, a2)
    assert q.normalization == p.normalization
    assert q.tokenizer.get_vocab() == p.tokenizer.get_vocab()
    # saving over an existing checkpoint replaces it atomically and leaves no temp folders
    p.save_pretrained(tmp_path / "ckpt")
    assert sorted(x.name for x in tmp_path.iterdir()) == ["ckpt"]


def test_select_action_serves_a_queue_and_refills_each_chunk(tiny_policy, monkeypatch):
    p = tiny_policy
    batch = dummy_batch(p, 2)
    calls = []
    real = p.predict_action_chunk

    def counted(b, **kw):
        calls.append(1)
        return real(b, **kw)

    monkeypatch.setattr(p, "predict_action_chunk", counted)
    torch.manual_seed(1)
    chunk = real(batch)
    p.reset()
    torch.manual_seed(1)
    served = [p.select_action(batch) for _ in range(16)]
    assert len(calls) == 1
    assert torch.equal(torch.stack(served, 1), chunk)
    p.select_action(batch)
    assert len(calls) == 2
    p.reset()
    p.select_action(batch, n_action_steps=4)
    assert len(calls) == 3
    for _ in range(3):
        p.select_action(batch, n_action_steps=4)
    assert len(calls) == 3
    p.select_action(batch, n_action_steps=4)
    assert len(calls) == 4


def test_time_sampling_variants():
    from groot_kit.config import ActionHeadConfig
    from groot_kit.model.action_head import sample_flow_time
    torch.manual_seed(0)
    rel = sample_flow_time(20000, ActionHeadConfig(time_sampling="n1_release"))
    fix = sample_flow_time(20000, ActionHeadConfig(time_sampling="fixed"))
    assert rel.max() <= 1.0 and rel.min() >= -0.001 - 1e-6
    assert fix.min() >= 0.0 and fix.max() <= 0.999
    # u ~ Beta(1.5, 1) has mean 0.6, so t = (s-u)/s has mean ~0.3994 and t = s(1-u) mean ~0.3996
    assert abs(rel.mean().item() - (0.999 - 0.6) / 0.999) < 0.01
    assert abs(fix.mean().item() - 0.999 * 0.4) < 0.01


def test_subtask_cotraining_learns_text_without_changing_system1_inputs():
    """System 2 learns to name the sub-task; the prompt features System 1 sees are unchanged by it."""
    import dataclasses
    from groot_kit.config import get_preset
    torch.manual_seed(0)
    cfg = dataclasses.replace(get_preset("tiny"), subtask_loss_weight=1.0)
    p = GrootPolicy(cfg).train()
    batch = dummy_batch(p, 2, training=True, action_dims=4)
    batch["pixel_values"][1] = 1 - batch["pixel_values"][0]  # two different scenes
    batch["subtask"] = ["reach", "grasp"]
    # causal LM: prompt features with and without the appended sub-task segment are identical
    ids, mask = p.tokenize(batch["instruction"])
    sub_ids, sub_mask = p.tokenize_subtasks(batch["subtask"])
    with torch.no_grad():
        h_full = p.backbone.lm_hidden(batch["pixel_values"], torch.cat([ids, sub_ids], 1), torch.cat([mask, sub_mask], 1))
        h_prompt = p.backbone.lm_hidden(batch["pixel_values"], ids, mask)
    assert torch.allclose(h_full[:, : ids.shape[1]], h_prompt, atol=1e-5)
    opt = torch.optim.AdamW(p.parameters(), lr=3e-3)
    first = None
    for _ in range(150):
        loss, info = p(batch)
        first = first or info["subtask_loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert info["subtask_loss"] < first / 10
    assert p.eval().predict_subtask(batch) == ["reach", "grasp"]
