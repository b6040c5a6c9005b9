"""Plotly figures for the data pyramid notebook."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

TIER_COLORS = {"teleop": "#2a9d8f", "synthetic": "#e9c46a", "video": "#e76f51"}
TIER_LABELS = {"teleop": "1 · real / teleop", "synthetic": "2 · synthetic", "video": "3 · video (no actions)"}


def pyramid_figure(summary: dict[str, dict[str, float]], title: str = "The data pyramid") -> go.Figure:
    """Centered horizontal bars: video at the bottom (widest in real life), teleop on top."""
    order = [t for t in ("video", "synthetic", "teleop") if t in summary]
    fig = make_subplots(1, 2, subplot_titles=("frames per tier", "hours per tier"), horizontal_spacing=0.12)
    for col, key in ((1, "frames"), (2, "hours")):
        for t in order:
            v = summary[t][key]
            fig.add_bar(y=[TIER_LABELS[t]], x=[v], base=[-v / 2], orientation="h", marker_color=TIER_COLORS[t],
                        name=t, showlegend=col == 1, text=[f"{v:.3g}"], textposition="inside",
                        hovertemplate=f"{t}: %{{x:.4g}} {key}<br>{summary[t]['episodes']} episodes<extra></extra>",
                        row=1, col=col)
    fig.update_layout(title=title, barmode="overlay", height=320, bargap=0.05)
    fig.update_xaxes(showticklabels=False)
    return fig


def frames_grid(frames: list[np.ndarray], titles: list[str], cols: int = 4, title: str = "") -> go.Figure:
    rows = int(np.ceil(len(frames) / cols))
    fig = make_subplots(rows, cols, subplot_titles=titles, horizontal_spacing=0.01, vertical_spacing=0.08)
    for i, f in enumerate(frames):
        fig.add_trace(go.Image(z=f), row=i // cols + 1, col=i % cols + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(title=title, height=200 * rows + 60, margin=dict(l=10, r=10, t=60, b=10))
    return fig


def trajectories_figure(series: dict[str, np.ndarray], fps: float, names: list[str] | None = None,
                        title: str = "") -> go.Figure:
    """series: label -> [T, D]; one line per dim, one dash style per series."""
    fig = go.Figure()
    dashes = ["solid", "dot", "dash", "dashdot"]
    for si, (lab, arr) in enumerate(series.items()):
        t = np.arange(len(arr)) / fps
        for d in range(arr.shape[1]):
            nm = names[d] if names and d < len(names) else f"dim {d}"
            fig.add_scatter(x=t, y=arr[:, d], mode="lines", name=f"{lab}: {nm}",
                            line=dict(dash=dashes[si % 4]), legendgroup=lab)
    fig.update_layout(title=title, xaxis_title="time (s)", height=360)
    return fig


def xy_paths_figure(paths: dict[str, list[np.ndarray]], markers: dict[str, np.ndarray] | None = None,
                    title: str = "") -> go.Figure:
    """Top view of end-effector paths (label -> list of [T, >=2]) and object positions."""
    fig = go.Figure()
    pal = ["#264653", "#e76f51", "#2a9d8f", "#f4a261"]
    for i, (lab, ps) in enumerate(paths.items()):
        for j, p in enumerate(ps):
            fig.add_scatter(x=p[:, 0], y=p[:, 1], mode="lines", line=dict(color=pal[i % 4], width=2 if i == 0 else 1),
                            name=lab, legendgroup=lab, showlegend=j == 0, opacity=0.9 if i == 0 else 0.6)
    for lab, pts in (markers or {}).items():
        pts = np.asarray(pts)
        fig.add_scatter(x=pts[:, 0], y=pts[:, 1], mode="markers", marker=dict(size=10, symbol="square"), name=lab)
    fig.update_layout(title=title, xaxis_title="x (m)", yaxis_title="y (m)", height=420)
    fig.update_yaxes(scaleanchor="x")
    return fig


def codebook_figure(usage: dict, title: str = "Latent-action codebook use") -> go.Figure:
    c = usage["counts"]
    fig = go.Figure(go.Bar(x=[f"code {i}" for i in range(len(c))], y=c, marker_color="#8ab17d"))
    fig.update_layout(title=f"{title}: {usage['used']}/{usage['num_codes']} codes used, "
                            f"perplexity {usage['perplexity']:.2f}", yaxis_title="frame pairs", height=320)
    return fig


def idm_figure(true: np.ndarray, pred: np.ndarray, fps: float, names: list[str] | None = None, dims=(0, 1, 2),
               title: str = "IDM pseudo-actions vs held-back true actions") -> go.Figure:
    fig = go.Figure()
    t = np.arange(len(true)) / fps
    pal = ["#264653", "#e76f51", "#2a9d8f", "#f4a261", "#8ab17d"]
    for k, d in enumerate(dims):
        nm = names[d] if names and d < len(names) else f"dim {d}"
        fig.add_scatter(x=t, y=true[:, d], mode="lines", name=f"true {nm}", line=dict(color=pal[k % 5]))
        fig.add_scatter(x=t, y=pred[:, d], mode="lines", name=f"IDM {nm}", line=dict(color=pal[k % 5], dash="dot"))
    fig.update_layout(title=title, xaxis_title="time (s)", height=360)
    return fig


def share_figure(shares: dict[str, float], target: dict[str, float], title: str = "") -> go.Figure:
    ks = list(shares)
    fig = go.Figure([go.Bar(x=ks, y=[shares[k] for k in ks], name="sampled", marker_color=[TIER_COLORS.get(k, "#999") for k in ks]),
                     go.Scatter(x=ks, y=[target.get(k, 0) for k in ks], mode="markers", name="target weight",
                                marker=dict(size=14, symbol="line-ew-open", line=dict(width=3)))])
    fig.update_layout(title=title, yaxis_title="share of samples", height=320)
    return fig
