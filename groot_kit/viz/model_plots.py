"""Plotly figures for the model notebooks (00 quickstart, 02 dual-system architecture).

Every function returns a `plotly.graph_objects.Figure` and takes plain tensors / arrays / dicts, so
the notebooks stay short: they call the model, then one of these.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

# Parts of GrootPolicy.num_parameters() that are leaves (the other keys are sums of these).
PART_GROUPS = {
    "vision_tower": "System 2", "connector": "System 2", "language_model": "System 2",
    "backbone_projection": "System 2",
    "vl_self_attention": "System 1", "dit": "System 1", "state_encoder": "System 1",
    "action_encoder": "System 1", "action_decoder": "System 1", "position_and_future_tokens": "System 1",
}
SYSTEM_COLORS = {"System 2": "#636EFA", "System 1": "#EF553B"}
DIM_COLORS = ["#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A", "#19D3F3"]  # one colour per action dim

# Paper figures (GR00T N1 whitepaper, N1.5 release notes) for the preset comparison table.
PAPER_PARAMS = {
    "n1_2b": {"total": 2.2e9, "system2_vlm": 1.34e9, "source": "GR00T N1 paper: 2.2B total, 1.34B in the VLM"},
    # "3B" is the checkpoint's name (GR00T-N1.5-3B); no exact count is published, so no % is computed.
    "n1_5_3b": {"total": None, "name": "3B", "system2_vlm": None, "source": "GR00T N1.5 release name: 3B"},
}


def _np(x: Any) -> np.ndarray:
    if torch.is_tensor(x):
        return x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=float)


def human(n: float) -> str:
    """1234567 -> '1.23M'."""
    for unit, div in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.3g}{unit}"
    return f"{int(n)}"


# -------------------------------------------------------------------------------- parameters
def parameter_bar(parts: Mapping[str, int], title: str = "Parameters per part") -> go.Figure:
    """Horizontal bars of the leaf parts of `policy.num_parameters()`, coloured by System 1 / 2."""
    leaves = [(k, v) for k, v in parts.items() if k in PART_GROUPS and v > 0]
    leaves.sort(key=lambda kv: kv[1])
    fig = go.Figure()
    for system, color in SYSTEM_COLORS.items():
        sel = [(k, v) for k, v in leaves if PART_GROUPS[k] == system]
        fig.add_bar(y=[k for k, _ in sel], x=[v for _, v in sel], orientation="h", name=system,
                    marker_color=color, text=[human(v) for _, v in sel], textposition="auto",
                    hovertemplate="%{y}: %{x:,} parameters<extra></extra>")
    total = parts.get("total", sum(v for _, v in leaves))
    fig.update_layout(title=f"{title} (total {human(total)})", xaxis_title="parameters",
                      barmode="stack", height=120 + 28 * len(leaves), margin=dict(l=10, r=10, t=50, b=40))
    return fig


def parameter_table(rows: Sequence[Mapping[str, Any]], title: str = "Parameters per preset") -> go.Figure:
    """A table figure; `rows` are dicts with the same keys (first row's keys are the columns)."""
    cols = list(rows[0].keys())
    cells = [[(human(r[c]) if isinstance(r[c], (int, float)) and not isinstance(r[c], bool) and abs(r[c]) >= 1e3
               else ("" if r[c] is None else str(r[c]))) for r in rows] for c in cols]
    fig = go.Figure(go.Table(header=dict(values=[f"<b>{c}</b>" for c in cols], align="left"),
                             cells=dict(values=cells, align="left")))
    fig.update_layout(title=title, height=80 + 32 * (len(rows) + 1), margin=dict(l=10, r=10, t=40, b=10))
    return fig


def preset_parameter_rows(counts: Mapping[str, Mapping[str, int]]) -> list[dict[str, Any]]:
    """{preset: num_parameters()} -> table rows, with the paper's figures beside ours."""
    rows = []
    for name, p in counts.items():
        paper = PAPER_PARAMS.get(name, {})
        row = {"preset": name, "System 2 (VLM)": p["system2_vlm"], "backbone total": p["backbone"],
               "System 1 (action head)": p["system1_action_head"], "DiT": p["dit"], "total": p["total"],
               "paper total": paper.get("total") or paper.get("name"), "paper VLM": paper.get("system2_vlm")}
        if paper.get("total"):
            row["total vs paper"] = f"{100 * (p['total'] / paper['total'] - 1):+.1f}%"
        else:
            row["total vs paper"] = ""
        rows.append(row)
    return rows


# -------------------------------------------------------------------------------- actions
def action_chunk_figure(chunk: Any, dims: Iterable[int] | None = None, title: str = "Predicted action chunk",
                        dt: float | None = None, targets: Any = None) -> go.Figure:
    """One line per action dim over the horizon. chunk: [H, D] (or [1, H, D]).

    ``targets`` ([H, D], optional): drawn dashed in the same colour as the dim it belongs to.
    """
    a = _np(chunk)
    if a.ndim == 3:
        a = a[0]
    dims = list(dims) if dims is not None else list(range(a.shape[1]))
    x = np.arange(a.shape[0]) * (dt or 1.0)
    fig = go.Figure()
    for j, d in enumerate(dims):
        color = DIM_COLORS[j % len(DIM_COLORS)]
        fig.add_scatter(x=x, y=a[:, d], mode="lines+markers", name=f"dim {d}", line=dict(color=color),
                        legendgroup=f"dim {d}")
        if targets is not None:
            fig.add_scatter(x=x, y=_np(targets)[:, d], mode="lines", name=f"target {d}", legendgroup=f"dim {d}",
                            line=dict(color=color, dash="dash"))
    fig.update_layout(title=title, xaxis_title="time (s)" if dt else "horizon step h", yaxis_title="normalised action",
                      height=380, legend=dict(orientation="v"))
    return fig


def denoising_animation(trajectories: Mapping[str, Any], dims: Sequence[int] = (0, 1, 2),
                        num_frames: int | None = None, title: str = "Flow matching: noise -> actions") -> go.Figure:
    """Animate Euler iterates side by side, one panel per entry of `trajectories`.

    trajectories: {label: [K+1, H, D] (or [1, K+1, H, D])} with possibly different K. The slider
    walks the flow time t from 0 to 1; each panel shows its latest iterate with t_k <= t, so a
    K=4 panel jumps in 4 big steps while a K=16 panel moves in 16 small ones.
    """
    trajs = {}
    for k, v in trajectories.items():
        a = _np(v)
        trajs[k] = a[0] if a.ndim == 4 else a
    max_k = max(a.shape[0] - 1 for a in trajs.values())
    n = num_frames or max_k + 1
    ts = np.linspace(0.0, 1.0, n)
    labels = list(trajs)
    fig = make_subplots(rows=1, cols=len(labels), subplot_titles=labels, shared_yaxes=True)
    colors = DIM_COLORS
    lo = min(float(a[..., list(dims)].min()) for a in trajs.values())
    hi = max(float(a[..., list(dims)].max()) for a in trajs.values())

    def traces(t: float) -> list[go.Scatter]:
        out = []
        for col, lab in enumerate(labels):
            a = trajs[lab]
            xa, ya = ("x", "y") if col == 0 else (f"x{col + 1}", f"y{col + 1}")
            K = a.shape[0] - 1
            k = int(np.floor(t * K + 1e-9))
            for j, d in enumerate(dims):
                # faint final target for reference, then the current iterate
                out.append(go.Scatter(y=a[-1, :, d], mode="lines", line=dict(color=colors[j % 6], dash="dot", width=1),
                                      showlegend=False, hoverinfo="skip", xaxis=xa, yaxis=ya))
                out.append(go.Scatter(y=a[k, :, d], mode="lines+markers", line=dict(color=colors[j % 6]),
                                      name=f"dim {d}", legendgroup=f"dim {d}", showlegend=col == 0, xaxis=xa, yaxis=ya))
        return out

    fig.add_traces(traces(0.0))
    frames, steps = [], []
    for i, t in enumerate(ts):
        frames.append(go.Frame(data=traces(float(t)), name=f"{t:.3f}"))
        steps.append(dict(method="animate", label=f"{t:.2f}",
                          args=[[f"{t:.3f}"], dict(mode="immediate", frame=dict(duration=0, redraw=True),
                                                   transition=dict(duration=0))]))
    fig.frames = frames
    pad = 0.1 * (hi - lo + 1e-6)
    fig.update_yaxes(range=[lo - pad, hi + pad])
    fig.update_xaxes(title_text="horizon step h")
    fig.update_layout(
        title=title + " (dotted: final chunk)", height=470, margin=dict(b=150),
        # the slider starts right of the Play/Pause buttons, so neither covers the other's ticks
        sliders=[dict(active=0, currentvalue=dict(prefix="flow time t = "), steps=steps, x=0.2, len=0.8,
                      y=-0.12, yanchor="top", pad=dict(t=30))],
        updatemenus=[dict(type="buttons", showactive=False, direction="left", x=0.0, y=-0.12, xanchor="left",
                          yanchor="top", pad=dict(t=58),
                          buttons=[dict(label="Play", method="animate",
                                        args=[None, dict(frame=dict(duration=300, redraw=True), fromcurrent=True)]),
                                   dict(label="Pause", method="animate",
                                        args=[[None], dict(mode="immediate", frame=dict(duration=0))])])])
    return fig


def loss_curve(losses: Sequence[float], title: str = "Flow-matching loss", log_y: bool = True) -> go.Figure:
    """Loss per step (a plain Figure; wrap in go.FigureWidget for live updates)."""
    fig = go.Figure(go.Scatter(x=list(range(len(losses))), y=list(losses), mode="lines", name="loss"))
    fig.update_layout(title=title, xaxis_title="step", yaxis_title="loss", height=340)
    if log_y:
        fig.update_yaxes(type="log")
    return fig


# -------------------------------------------------------------------------------- architecture
def token_layout(cfg) -> dict[str, int]:
    """Token counts of one sample: L VL tokens (System 2) and 1 + F + H DiT tokens (System 1)."""
    v, ah = cfg.vlm, cfg.action_head
    n_img = v.num_views * v.image_tokens_per_view
    return {"image_tokens": n_img, "text_tokens": v.max_text_tokens, "special_tokens": 2,
            "L_vl_tokens": 2 + n_img + v.max_text_tokens, "state_tokens": 1,
            "future_tokens": ah.num_future_tokens, "action_tokens": ah.action_horizon,
            "N_dit_tokens": 1 + ah.num_future_tokens + ah.action_horizon}


def token_layout_figure(cfg, title: str | None = None) -> go.Figure:
    """Diagram: System 2's L VL tokens (top) feeding System 1's DiT token row (bottom) by cross-attention."""
    t = token_layout(cfg)
    fig = go.Figure()
    # widths proportional to sqrt(count) so 1 state token is still visible next to 256 image tokens
    def w(n: int) -> float:
        return 0.0 if n == 0 else 1.0 + 2.0 * np.sqrt(n)

    def row(y0: float, segs: list[tuple[str, int, str]]) -> list[tuple[float, float]]:
        x, spans = 0.0, []
        for label, n, color in segs:
            if n == 0:
                spans.append((x, x))
                continue
            fig.add_shape(type="rect", x0=x, x1=x + w(n), y0=y0, y1=y0 + 1, fillcolor=color, opacity=0.85,
                          line=dict(color="white", width=2))
            fig.add_annotation(x=x + w(n) / 2, y=y0 + 0.5, text=f"{label}<br>{n}", showarrow=False,
                               font=dict(color="white", size=12))
            spans.append((x, x + w(n)))
            x += w(n)
        return spans

    top = row(3.0, [("&lt;bos&gt;", 1, "#7f7f7f"), ("image tokens", t["image_tokens"], "#636EFA"),
                     ("instruction tokens", t["text_tokens"], "#19D3F3"), ("&lt;eos&gt;", 1, "#7f7f7f")])
    bottom = row(0.0, [("state", 1, "#00CC96"), ("future", t["future_tokens"], "#AB63FA"),
                       ("action tokens (H)", t["action_tokens"], "#EF553B")])
    x_end_top, x_end_bot = top[-1][1], bottom[-1][1]
    for x in np.linspace(0.5, x_end_bot - 0.5, 5):
        fig.add_annotation(x=x, y=1.05, ax=x * x_end_top / max(x_end_bot, 1e-6), ay=2.95, xref="x", yref="y",
                           axref="x", ayref="y", showarrow=True, arrowhead=2, arrowcolor="#444", text="")
    fig.add_annotation(x=max(x_end_top, x_end_bot) / 2, y=2.0, showarrow=False, bgcolor="white",
                       text="even DiT blocks: cross-attention (queries = bottom row, keys/values = top row)<br>"
                            "odd DiT blocks: self-attention within the bottom row")
    fig.add_annotation(x=0, y=4.3, xanchor="left", showarrow=False,
                       text=f"<b>System 2</b>: L = {t['L_vl_tokens']} vision-language tokens, computed once per chunk")
    fig.add_annotation(x=0, y=-0.35, xanchor="left", showarrow=False,
                       text=f"<b>System 1</b>: N = 1 + {t['future_tokens']} + {t['action_tokens']} = {t['N_dit_tokens']} "
                            f"DiT tokens, denoised K = {cfg.action_head.num_inference_timesteps} times per chunk")
    fig.update_xaxes(visible=False, range=[-0.5, max(x_end_top, x_end_bot) + 0.5])
    fig.update_yaxes(visible=False, range=[-0.8, 4.7])
    fig.update_layout(title=title or f"Token layout ({cfg.preset})", height=330, plot_bgcolor="white",
                      margin=dict(l=10, r=10, t=50, b=10))
    return fig


# -------------------------------------------------------------------------------- latency
def latency_figure(results: Sequence[Mapping[str, Any]], budget_ms: float = 1000 / 120,
                   system2_budget_ms: float | None = 50.0) -> go.Figure:
    """Grouped bars (median, p90 as error) of System 2 and System 1 chunk per preset vs budgets.

    results: outputs of `groot_kit.bench.measure_latency`.
    """
    names = [f"{r['preset']} ({r['device']}, {r['threads']} thr)" for r in results]
    fig = go.Figure()
    for key, label, color in (("system2", "System 2 (once per chunk)", SYSTEM_COLORS["System 2"]),
                              ("system1_chunk", "System 1 chunk (K Euler steps)", SYSTEM_COLORS["System 1"]),
                              ("euler_step", "one Euler step", "#FFA15A")):
        med = [r[key]["median_ms"] for r in results]
        p90 = [r[key]["p90_ms"] for r in results]
        fig.add_bar(x=names, y=med, name=label, marker_color=color,
                    error_y=dict(type="data", symmetric=False, array=[p - m for p, m in zip(p90, med)],
                                 arrayminus=[0] * len(med)),
                    text=[f"{m:.2f}" for m in med], textposition="outside",
                    hovertemplate="%{x}<br>median %{y:.2f} ms<extra>" + label + "</extra>")
    fig.add_hline(y=budget_ms, line_dash="dash", line_color=SYSTEM_COLORS["System 1"],
                  annotation_text=f"120 Hz tick: {budget_ms:.1f} ms (System 1 budget)")
    if system2_budget_ms:
        fig.add_hline(y=system2_budget_ms, line_dash="dot", line_color=SYSTEM_COLORS["System 2"],
                      annotation_text=f"System 2 budget: {system2_budget_ms:.0f} ms")
    fig.update_layout(title="Measured latency on this machine (median, whisker to p90)", barmode="group",
                      yaxis_title="ms", yaxis_type="log", height=420)
    return fig


# -------------------------------------------------------------------------------- attention
@torch.no_grad()
def capture_dit_attention(policy, batch: dict, timestep: int = 0, noise: torch.Tensor | None = None,
                          seed: int = 0) -> list[dict[str, Any]]:
    """Attention weights of every DiT block for one velocity call at flow `timestep` (bucket 0..999).

    Forward hooks on each block's `attn1` recompute softmax(q k^T / sqrt(d)) from the block's own
    inputs (the model itself runs unchanged). -> [{"block", "kind", "weights" [heads, N, M]}] for sample 0.
    """
    ah = policy.action_head
    vl, vl_mask = policy.encode_vl(batch)
    state, eid = batch["state"].to(policy.device), batch["embodiment_id"].to(policy.device)
    B = state.shape[0]
    if noise is None:
        g = torch.Generator().manual_seed(seed)
        noise = torch.randn(B, ah.cfg.action_horizon, ah.cfg.max_action_dim, generator=g).to(vl)
    maps: list[dict[str, Any]] = []
    handles = []
    for i, block in enumerate(ah.model.transformer_blocks):
        def hook(module, args, output, i=i, block=block):
            x = args[0]
            ctx = args[1] if len(args) > 1 and args[1] is not None else x
            mask = args[2] if len(args) > 2 else None
            q, k = module._split(module.to_q(x)), module._split(module.to_k(ctx))
            logits = q @ k.transpose(-1, -2) / module.head_dim ** 0.5
            if mask is not None:
                logits = logits.masked_fill(~mask[:, None, None, :].bool(), float("-inf"))
            maps.append({"block": i, "kind": "cross" if block.is_cross else "self",
                         "weights": logits.softmax(-1)[0].float().cpu()})
        handles.append(block.attn1.register_forward_hook(hook))
    try:
        vlp = ah.process_vl(vl)
        ts = torch.full((B,), int(timestep), dtype=torch.long, device=state.device)
        ah.velocity(noise, ts, ah.encode_state(state, eid), vlp, eid, vl_mask)
    finally:
        for h in handles:
            h.remove()
    return maps


def attention_maps_figure(maps: Sequence[Mapping[str, Any]], cfg, head: int | None = None,
                          title: str = "DiT attention (mean over heads)") -> go.Figure:
    """Heatmaps (queries = DiT tokens on y, keys on x) for each block from `capture_dit_attention`.

    Cross blocks: keys are the L VL tokens (image | instruction); self blocks: keys are the DiT tokens.
    """
    lay = token_layout(cfg)
    titles = [f"block {m['block']}: {m['kind']}-attention" for m in maps]
    fig = make_subplots(rows=1, cols=len(maps), subplot_titles=titles, horizontal_spacing=0.04)
    for c, m in enumerate(maps, start=1):
        w = m["weights"]
        w = w.mean(0) if head is None else w[head]
        fig.add_trace(go.Heatmap(z=_np(w), coloraxis="coloraxis",
                                 hovertemplate="query %{y}, key %{x}: %{z:.3f}<extra></extra>"), row=1, col=c)
        fig.update_yaxes(autorange="reversed", row=1, col=c, title_text="DiT token (0=state)" if c == 1 else None)
        if m["kind"] == "cross":
            n_img = lay["image_tokens"]
            for xline in (0.5, 0.5 + n_img):
                fig.add_vline(x=xline, line_color="white", line_width=1, row=1, col=c)
            fig.update_xaxes(title_text=f"VL token (1..{n_img} image)", row=1, col=c)
        else:
            fig.update_xaxes(title_text="DiT token", row=1, col=c)
    fig.update_layout(title=title, height=380, coloraxis=dict(colorscale="Viridis"),
                      margin=dict(l=10, r=10, t=70, b=40))
    return fig


def attention_summary(maps: Sequence[Mapping[str, Any]], cfg) -> list[dict[str, Any]]:
    """Where each block's attention mass goes, averaged over heads and action-token queries."""
    lay = token_layout(cfg)
    out = []
    H, F = lay["action_tokens"], lay["future_tokens"]
    for m in maps:
        w = m["weights"].mean(0)[-H:]          # action-token queries
        if m["kind"] == "cross":
            n_img = lay["image_tokens"]
            to_image = float(w[:, 1:1 + n_img].sum(-1).mean())
            # prompt = <bos> | image tokens | instruction, <eos>, padding (right-padded)
            to_text = float(w[:, 1 + n_img:].sum(-1).mean())
            row = {"block": m["block"], "kind": "cross", "to_bos": float(w[:, 0].mean()), "to_image": to_image,
                   "to_instruction_eos_padding": to_text}
        else:
            row = {"block": m["block"], "kind": "self", "to_state": float(w[:, 0].mean()),
                   "to_future": float(w[:, 1:1 + F].sum(-1).mean()), "to_actions": float(w[:, 1 + F:].sum(-1).mean())}
        row["entropy"] = float(-(w.clamp_min(1e-12).log() * w).sum(-1).mean())
        out.append(row)
    return out
