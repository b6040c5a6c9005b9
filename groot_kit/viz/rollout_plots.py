"""Plotly figures for evaluation and closed-loop rollouts (notebooks 03 and 05 part 2).

    from groot_kit.viz import rollout_plots as rp
    res = rp.closed_loop_section("data_samples/checkpoints/tiny_base", ["so100"], n_episodes=2)
    res["figures"]["success"].show(); res["figures"]["video"].show()

Every figure function takes plain dicts / arrays (the results of ``groot_kit.eval``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from groot_kit.viz.model_plots import SYSTEM_COLORS


def frames_animation(frames: np.ndarray, fps: float = 10.0, title: str = "", max_frames: int = 120,
                     height: int | None = None) -> go.Figure:
    """uint8 [T, H, W, 3] -> a plotly animation with play button and slider (every k-th frame)."""
    T = len(frames)
    step = max(1, int(np.ceil(T / max_frames)))
    idx = list(range(0, T, step))
    if idx[-1] != T - 1:
        idx.append(T - 1)
    fig = go.Figure(data=[go.Image(z=frames[idx[0]])],
                    frames=[go.Frame(data=[go.Image(z=frames[i])], name=str(i)) for i in idx])
    dur = int(1000 * step / max(fps, 1e-6))
    fig.update_layout(
        title=title, height=height or min(600, frames.shape[1] + 160), margin=dict(l=10, r=10, t=40, b=10),
        xaxis=dict(visible=False), yaxis=dict(visible=False),
        updatemenus=[dict(type="buttons", showactive=False, x=0, y=-0.02, xanchor="left", yanchor="top",
                          buttons=[dict(label="play", method="animate",
                                        args=[None, dict(frame=dict(duration=dur, redraw=True), fromcurrent=True)]),
                                   dict(label="pause", method="animate",
                                        args=[[None], dict(frame=dict(duration=0), mode="immediate")])])],
        sliders=[dict(steps=[dict(method="animate", label=str(i),
                                  args=[[str(i)], dict(mode="immediate", frame=dict(duration=0, redraw=True))])
                             for i in idx], x=0.15, len=0.85, y=-0.02, currentvalue=dict(prefix="step "))])
    return fig


def success_figure(results: Mapping[str, Mapping[str, Any]], title: str = "Closed-loop success",
                   goal: float | None = 0.8) -> go.Figure:
    """Bar per embodiment of success rate (``{name: evaluate_closed_loop result}``) with n on top."""
    names = list(results)
    rates = [100 * results[n]["success_rate"] for n in names]
    text = [f"{results[n]['successes']}/{results[n]['n_episodes']}" for n in names]
    fig = go.Figure(go.Bar(x=names, y=rates, text=text, textposition="outside", marker_color="#00CC96"))
    if goal is not None:
        fig.add_hline(y=100 * goal, line=dict(dash="dash", color="gray"), annotation_text=f"goal {goal:.0%}")
    fig.update_layout(title=title, yaxis=dict(title="success (%)", range=[0, 110]), height=360)
    return fig


def episode_outcomes_figure(result: Mapping[str, Any], title: str | None = None) -> go.Figure:
    """Steps per episode coloured by success (one closed-loop result)."""
    eps = result["episodes"]
    fig = go.Figure(go.Bar(x=[str(e["seed"]) for e in eps], y=[e["steps"] for e in eps],
                           marker_color=["#00CC96" if e["success"] else "#EF553B" for e in eps],
                           text=["ok" if e["success"] else "fail" for e in eps], textposition="outside"))
    fig.update_layout(title=title or f"{result['embodiment']} / {result['task']}: steps per episode (green = success)",
                      xaxis_title="seed", yaxis_title="control steps", height=320)
    return fig


def subtask_timeline_figure(episode: Mapping[str, Any], replan_every: int = 8,
                            title: str = "System 2's sub-task at each query") -> go.Figure:
    """What System 2 said at each chunk query of one episode (``episode['subtasks']``)."""
    subs = list(episode.get("subtasks") or [])
    if not subs:
        fig = go.Figure()
        fig.add_annotation(text="policy not co-trained for sub-tasks (subtask_loss_weight = 0)", showarrow=False)
        return fig.update_layout(title=title, height=200)
    names = sorted(set(subs), key=subs.index)
    t = [i * replan_every for i in range(len(subs))]
    fig = go.Figure(go.Scatter(x=t, y=subs, mode="markers+lines", line_shape="hv",
                               marker=dict(size=9)))
    fig.update_layout(title=title, xaxis_title="control step", yaxis=dict(categoryorder="array", categoryarray=names),
                      height=260)
    return fig


def training_curve_widget(title: str = "Training loss (live)"):
    """Show a live loss / sub-task loss figure; returns ``(live, callback(step, row))``.

    ``live`` is a :class:`groot_kit.viz.live.LiveFigure` (already displayed); call ``live.freeze()``
    when training ends so the saved notebook keeps the curve.
    """
    from groot_kit.viz.live import LiveFigure

    live = LiveFigure(go.Figure(layout=dict(title=title, xaxis_title="step", yaxis=dict(title="loss", type="log"),
                                            height=340)))
    fig = live.fig
    fig.add_scatter(x=[], y=[], name="loss (flow + sub-task)", mode="lines")
    fig.add_scatter(x=[], y=[], name="sub-task loss", mode="lines")

    def callback(step: int, row: dict) -> None:
        with fig.batch_update():
            fig.data[0].x = tuple(fig.data[0].x) + (step,)
            fig.data[0].y = tuple(fig.data[0].y) + (row["loss"],)
            if "subtask_loss" in row:
                fig.data[1].x = tuple(fig.data[1].x) + (step,)
                fig.data[1].y = tuple(fig.data[1].y) + (row["subtask_loss"],)
    return live, callback


def data_mixture_figure(datasets: Sequence[Mapping[str, Any]], title: str = "Pretraining mixture (frames)") -> go.Figure:
    """Stacked bars: frames per embodiment, split by pyramid tier (rows of generate_pretrain_data)."""
    embs = sorted({d["embodiment"] for d in datasets})
    fig = go.Figure()
    colors = {"teleop": "#AB63FA", "synthetic": "#636EFA", "video": "#FFA15A"}
    for tier in ("teleop", "synthetic", "video"):
        ys = [sum(d["frames"] for d in datasets if d["embodiment"] == e and d["tier"] == tier and d.get("role") != "eval")
              for e in embs]
        if any(ys):
            fig.add_bar(x=embs, y=ys, name=tier, marker_color=colors[tier])
    fig.update_layout(barmode="stack", title=title, yaxis_title="frames", height=340)
    return fig


def handover_figure(episodes: Sequence[Any], camera: str = "front", max_episodes: int = 4,
                    title: str = "Recovery demos: where the expert took over (top) and where it finished (bottom)"
                    ) -> go.Figure:
    """Front-camera frames of recovery demos (``groot_kit.train.recovery``): the first frame of each
    clip (the state the policy left the robot in) above its last frame (the expert at the goal).
    Labels: ``k`` = policy steps before the hand-over, ``+n`` = expert steps kept."""
    eps = [e for e in episodes if camera in e.frames][:max_episodes]
    if not eps:
        raise ValueError(f"handover_figure: no episode has camera {camera!r}; pass recovery_episodes(...) output")
    top = np.concatenate([e.frames[camera][0] for e in eps], axis=1)
    bottom = np.concatenate([e.frames[camera][-1] for e in eps], axis=1)
    fig = go.Figure(go.Image(z=np.concatenate([top, bottom], axis=0)))
    w = eps[0].frames[camera].shape[2]
    for i, e in enumerate(eps):
        fig.add_annotation(x=(i + 0.5) * w, y=0, yanchor="bottom", showarrow=False,
                           text=f"k={e.provenance.get('handover_step', '?')}, +{len(e)}")
    fig.update_layout(title=title, height=260 + 60 * (len(eps) > 2), margin=dict(t=70),
                      xaxis=dict(visible=False), yaxis=dict(visible=False))
    return fig


def closed_loop_section(checkpoint: str | Path = "data_samples/checkpoints/tiny_base",
                        embodiments: Sequence[str] | None = None, task: str = "reach", n_episodes: int = 2,
                        seed: int = 200_000, num_cubes: int = 1, replan_every: int = 8,
                        video_dir: str | Path | None = None, policy=None) -> dict[str, Any]:
    """Notebook 05 part 2: the pretrained base policy in closed loop on each of its embodiments.

    Returns ``{"results": {emb: result}, "figures": {"success", "video" (first episode of the first
    embodiment, annotated with System 2's sub-task), "timeline", "outcomes": {emb: fig}}, "metrics"}``.
    """
    from groot_kit.model.policy import GrootPolicy
    from groot_kit.eval import evaluate_closed_loop, strip_arrays

    from groot_kit.notebooks import repo_path

    policy = policy or GrootPolicy.from_pretrained(repo_path(checkpoint, must_exist="checkpoint"))
    embodiments = list(embodiments or policy.normalization.get("processors", {}))
    results = {}
    for emb in embodiments:
        results[emb] = evaluate_closed_loop(policy, emb, task, n_episodes, seed=seed, replan_every=replan_every,
                                            env_kwargs={"num_cubes": num_cubes}, keep_frames=True,
                                            video_dir=video_dir)
    first = results[embodiments[0]]["episodes"][0]
    figs = {"success": success_figure(results, title=f"Closed-loop success, {task} ({n_episodes} episodes each)"),
            "video": frames_animation(first["frames"], fps=10,
                                      title=f"{embodiments[0]}: {first['instruction']} "
                                            f"({'success' if first['success'] else 'failure'})"),
            "timeline": subtask_timeline_figure(first, replan_every),
            "outcomes": {e: episode_outcomes_figure(r) for e, r in results.items()}}
    metrics = {e: {"success_rate": r["success_rate"], "successes": r["successes"], "n_episodes": r["n_episodes"]}
               for e, r in results.items()}
    return {"results": {e: strip_arrays(r) for e, r in results.items()}, "raw": results, "figures": figs,
            "metrics": metrics}


def dual_rate_timeline_figure(tl: Mapping[str, Any], window_ms: float = 600.0,
                              title: str = "Dual-rate runtime: who runs when") -> go.Figure:
    """Top: System 2 updates, System 1 chunks and control ticks as bars over the first `window_ms`
    of a run, with System 2's deadlines (dotted) and the steps that started a new chunk (ticks).
    Bottom: feature age per chunk (how old System 2's camera input was when System 1 used it).
    tl: ``run_mujoco_demo(..., timeline=True)["timeline"]``."""
    rows = [("System 2 (VLM)", tl["system2"], SYSTEM_COLORS["System 2"]),
            ("System 1 (chunk)", tl["system1"], SYSTEM_COLORS["System 1"]),
            ("control tick", tl["control"], "#2ca02c")]
    fig = make_subplots(rows=2, cols=1, row_heights=[0.6, 0.4], vertical_spacing=0.16,
                        subplot_titles=("events over time (ms; bar length = compute time)",
                                        "feature age per chunk (ms since System 2's camera input)"))
    for name, ev, color in rows:
        keep = [i for i, s in enumerate(ev["start_ms"]) if s <= window_ms]
        fig.add_bar(y=[name] * len(keep), x=[max(ev["dur_ms"][i], 0.3) for i in keep],
                    base=[ev["start_ms"][i] for i in keep], orientation="h", marker_color=color, name=name,
                    hovertemplate="start %{base:.1f} ms, %{x:.2f} ms<extra></extra>", row=1, col=1)
    period2 = 1e3 / tl["system2_hz"]
    for k in range(1, int(window_ms // period2) + 1):
        fig.add_vline(x=k * period2, line_dash="dot", line_color="#999", row=1, col=1)
    ctl = tl["control"]["start_ms"]
    bx = [ctl[b] for b in tl["boundaries"] if b < len(ctl) and ctl[b] <= window_ms]
    fig.add_scatter(x=bx, y=["control tick"] * len(bx), mode="markers", marker=dict(symbol="triangle-up", size=9,
                    color="black"), name="new chunk starts", row=1, col=1)
    s1 = tl["system1"]["start_ms"]
    fig.add_scatter(x=s1[:len(tl["feature_age_ms"])], y=tl["feature_age_ms"], mode="markers+lines",
                    marker_color=SYSTEM_COLORS["System 2"], name="feature age", row=2, col=1)
    fig.add_hline(y=period2, line_dash="dot", line_color="#999", row=2, col=1,
                  annotation_text="one System 2 period", annotation_position="top left")
    fig.update_xaxes(range=[0, window_ms], row=1, col=1)
    fig.update_xaxes(title_text="time since the first control tick (ms)", range=[0, max(s1[-1] if s1 else 0, 1.0)],
                     row=2, col=1)
    fig.update_yaxes(title_text="age (ms)", row=2, col=1)
    fig.update_layout(title=title, height=560, barmode="overlay", legend=dict(orientation="h", y=-0.18))
    return fig


def chunk_modes_figure(modes: Mapping[str, Mapping[str, float]],
                       title: str = "Action jumps at chunk boundaries vs inside a chunk") -> go.Figure:
    """Grouped bars per execution mode (``compare_modes`` output): mean |a_t - a_{t-1}| at the steps
    that start a new chunk vs the other steps."""
    names = list(modes)
    fig = go.Figure()
    fig.add_bar(x=names, y=[modes[m].get("boundary_mean", 0.0) for m in names], name="at a chunk boundary",
                marker_color=SYSTEM_COLORS["System 1"])
    fig.add_bar(x=names, y=[modes[m].get("inside_mean", 0.0) for m in names], name="inside a chunk",
                marker_color="#bbb")
    fig.update_layout(title=title, barmode="group", yaxis_title="mean action jump (normalised units)", height=340,
                      xaxis_title="execution mode")
    return fig


def grounding_curve_figure(curve: Sequence[Mapping[str, Any]], title: str = "System 2 grounding pretext") -> go.Figure:
    """The pretext's probe rows (groot_kit.train.grounding: ``info["curve"]``): named-cube-nearest
    rate against step (left axis, chance dashed) and the position error with the instruction and
    with it blanked (right axis, cm)."""
    steps = [r["step"] for r in curve]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=steps, y=[100 * r["own_nearest_rate"] for r in curve], name="named cube nearest (%)",
                             mode="lines+markers"), secondary_y=False)
    if curve and curve[0].get("chance"):
        fig.add_hline(y=100 * curve[0]["chance"], line=dict(dash="dash", color="gray"), annotation_text="chance")
    fig.add_trace(go.Scatter(x=steps, y=[r["error_cm"] for r in curve], name="error, instruction (cm)",
                             line=dict(dash="dot")), secondary_y=True)
    fig.add_trace(go.Scatter(x=steps, y=[r["error_blank_cm"] for r in curve], name="error, blanked (cm)",
                             line=dict(dash="dot")), secondary_y=True)
    fig.update_layout(title=title, xaxis_title="step", height=360)
    fig.update_yaxes(title_text="named cube nearest (%)", range=[0, 105], secondary_y=False)
    fig.update_yaxes(title_text="position error (cm)", rangemode="tozero", secondary_y=True)
    return fig


def instruction_outcome_text(result: Mapping[str, Any]) -> str:
    """One line on a follow_instruction result: what was asked, which cube moved, success."""
    t = result.get("target")
    if t is None:
        verdict = "the text names no cube (and bin) of this scene by colour, so success is not defined"
    else:
        asked = t["cube_color"] + (f" cube -> {t['bin_color']} bin" if t.get("bin_color") else " cube")
        verdict = f"asked for the {asked}: {'success' if result['success'] else 'failure'}"
    return f"'{result['instruction']}': went for the {result['went_for']} cube; {verdict} ({result['steps']} steps)"


def instruction_panel(policy, embodiment: str = "so100", task: str = "pick_place", seed: int = 300_000,
                      num_cubes: int = 3, video_size: int = 128):
    """Type an instruction, watch the policy do it (notebook 05). A scene seed box, the scene's valid
    instructions to pick from (or type your own), a run button, and the annotated rollout below.
    -> ipywidgets.VBox (its `.last` attribute holds the latest follow_instruction result)."""
    import ipywidgets as W
    from IPython.display import display

    from groot_kit.eval.language import follow_instruction, scene_instructions

    seed_box = W.IntText(value=seed, description="scene seed")
    choices = W.Dropdown(description="valid", layout=W.Layout(width="560px"))
    text = W.Text(description="instruction", layout=W.Layout(width="560px"))
    run = W.Button(description="run", button_style="primary")
    out = W.Output()
    box = W.VBox([seed_box, choices, W.HBox([text, run]), out])
    box.last = None

    def load_scene(_=None):
        opts = [r["instruction"] for r in scene_instructions(embodiment, task, int(seed_box.value), num_cubes)]
        choices.options = opts
        choices.value = opts[0]
        text.value = opts[0]

    def pick(change):
        if change.get("new"):
            text.value = change["new"]

    def go_(_=None):
        run.disabled = True
        out.clear_output()
        with out:
            print("rolling out ...")
        try:
            r = follow_instruction(policy, embodiment, task, int(seed_box.value), text.value, num_cubes,
                                   video_size=video_size)
            box.last = r
            out.clear_output()
            with out:
                print(instruction_outcome_text(r))
                display(frames_animation(r["frames"], fps=15, title=r["instruction"]))
        finally:
            run.disabled = False

    seed_box.observe(load_scene, names="value")
    choices.observe(pick, names="value")
    run.on_click(go_)
    load_scene()
    return box
