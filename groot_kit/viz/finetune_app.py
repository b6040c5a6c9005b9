"""Notebook 04's widget app: define an arm, see it, record demos, LoRA-fine-tune with a live loss
curve, roll out and watch.

    from groot_kit.viz.finetune_app import FinetuneApp
    app = FinetuneApp(base_checkpoint="data_samples/checkpoints/tiny_base", output_dir="outputs/04_app")
    app.widget            # display it (the last expression of a cell)

Every button calls the same package functions the headless path uses (`groot_kit.train.finetune`):
the preview writes the arm with `write_custom_arm`, "Generate demos" runs `record_demos`, "Train"
runs `finetune(...)` with a callback that feeds a plotly FigureWidget, "Roll out" runs
`evaluate_closed_loop`. `fast=True` shrinks every default (tests, CI).
"""

from __future__ import annotations

import io
import os
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np


def png_bytes(img: np.ndarray, scale: int = 1) -> bytes:
    from PIL import Image
    im = Image.fromarray(np.asarray(img, np.uint8))
    if scale != 1:
        im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def placeholder_png(width: int, height: int, text: str) -> bytes:
    """A light-grey PNG with a short note: an empty ``widgets.Image`` shows a broken-image icon."""
    from PIL import Image, ImageDraw
    im = Image.new("RGB", (width, height), (238, 238, 238))
    ImageDraw.Draw(im).text((10, height // 2 - 6), text, fill=(120, 120, 120))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def render_arm_preview(spec, size: int = 240, out_dir: str | os.PathLike | None = None, slot_id: int = 30,
                       task: str = "reach") -> tuple[np.ndarray, object]:
    """Write the arm for `spec` (ArmSpec) and render it at its home pose: a 3/4 view of the robot
    beside the scene's front camera. Returns (image uint8 [S, 2S, 3], EmbodimentSpec)."""
    from groot_kit.sim import make_env
    from groot_kit.train.finetune import build_arm
    out_dir = Path(out_dir or tempfile.mkdtemp(prefix="arm_preview_")) / spec.name
    emb = build_arm(spec, out_dir, slot_id)
    env = make_env(str(emb.root), task if task in emb.tasks else emb.tasks[0], image_size=64, seed=0,
                   randomize=False, num_cubes=1)
    try:
        import mujoco
        env.reset(seed=0)
        reach = float(sum(spec.link_lengths))
        cam = mujoco.MjvCamera()
        cam.type = mujoco.mjtCamera.mjCAMERA_FREE
        cam.lookat[:] = [0.3 * reach, 0.0, 0.3 * reach]
        cam.distance, cam.azimuth, cam.elevation = 1.9 * reach + 0.2, 140.0, -22.0
        r = mujoco.Renderer(env.model, size, size)
        try:
            r.update_scene(env.data, camera=cam)
            iso = r.render().copy()
        finally:
            r.close()
        img = np.concatenate([iso, env.render_camera(next(iter(emb.cameras)), size)], axis=1)
    finally:
        env.close()
    return img, emb


class FinetuneApp:
    """ipywidgets app; `.widget` is the root. State: `.result` (FinetuneResult), `.eval` (rollout)."""

    def __init__(self, base_checkpoint: str | os.PathLike | None = None, output_dir: str | os.PathLike = "outputs/finetune_app",
                 fast: bool = False, seed: int = 0, task: str = "reach", preview: bool = True):
        import ipywidgets as W
        import plotly.graph_objects as go
        from groot_kit.train.finetune import default_arm_spec

        self.base_checkpoint = str(base_checkpoint) if base_checkpoint else None
        self.output_dir, self.fast, self.seed, self.task = Path(output_dir), fast, seed, task
        self.result, self.eval, self.emb = None, None, None
        self._slot = None
        spec = default_arm_spec()
        lay = W.Layout
        # ---------------------------------------------------------------- arm
        self.num_joints = W.IntSlider(value=spec.num_joints, min=4, max=8, description="joints")
        self.arm_name = W.Text(value=spec.name, description="name")
        self.gripper = W.Checkbox(value=spec.gripper, description="gripper")
        self.links_box = W.VBox()
        self._make_joint_rows(spec.link_lengths, spec.joint_limits)
        self.preview = W.Image(value=placeholder_png(480, 240, "rendering the arm ..."), format="png",
                               layout=lay(width="480px", height="240px"))
        self.arm_status = W.HTML()
        self.preview_button = W.Button(description="Update preview", icon="refresh")
        self.preview_button.on_click(lambda _: self.update_preview())
        self.num_joints.observe(self._on_num_joints, names="value")
        # ---------------------------------------------------------------- demos
        self.num_demos = W.IntSlider(value=2 if fast else 20, min=1, max=100, description="demos")
        self.demo_button = W.Button(description="Generate demos", icon="database")
        self.demo_button.on_click(lambda _: self.generate_demos())
        self.demo_status = W.HTML()
        self.demo_image = W.Image(value=placeholder_png(256, 128, "no demos yet: Generate demos"), format="png",
                                  layout=lay(width="256px", height="128px"))
        # ---------------------------------------------------------------- LoRA
        self.rank = W.Dropdown(options=[2, 4, 8, 16, 32], value=4 if fast else 16, description="rank")
        self.alpha = W.FloatText(value=8.0 if fast else 32.0, description="alpha")
        self.lr = W.FloatLogSlider(value=1e-3, base=10, min=-5, max=-1, step=0.25, description="learning rate",
                                   readout_format=".0e")
        self.steps = W.IntSlider(value=20 if fast else 1500, min=10, max=5000, step=10, description="steps")
        self.targets = W.SelectMultiple(options=["dit", "vlm"], value=["dit"], description="LoRA on",
                                        rows=2)
        self.train_button = W.Button(description="Train", button_style="primary", icon="play")
        self.train_button.on_click(lambda _: self.train())
        self.progress = W.IntProgress(value=0, min=0, max=1, description="progress")
        self.train_status = W.HTML(value="not trained yet")
        self.train_status.add_class("groot-train-status")
        self.fig = go.FigureWidget(data=[go.Scatter(x=[], y=[], mode="lines+markers", name="flow loss")],
                                   layout=go.Layout(title="training loss (live)", xaxis_title="step",
                                                    yaxis_title="loss", height=300, width=520,
                                                    margin=dict(l=50, r=10, t=40, b=40)))
        # ---------------------------------------------------------------- rollout
        self.eval_episodes = W.IntSlider(value=1 if fast else 10, min=1, max=50, description="episodes")
        self.rollout_button = W.Button(description="Roll out", icon="video-camera")
        self.rollout_button.on_click(lambda _: self.rollout())
        self.rollout_status = W.HTML()
        self.video = W.Image(value=placeholder_png(240, 240, "no rollout yet: Roll out"), format="png",
                             layout=lay(width="240px", height="240px"))
        self.play = W.Play(value=0, min=0, max=0, interval=33, description="play")
        self.frame = W.IntSlider(value=0, min=0, max=0, description="frame")
        W.jslink((self.play, "value"), (self.frame, "value"))
        self.frame.observe(self._show_frame, names="value")
        self._frames: np.ndarray | None = None

        h = lambda t: W.HTML(f"<h3 style='margin:6px 0'>{t}</h3>")  # noqa: E731
        self.widget = W.VBox([
            h("1. Define the arm"),
            W.HBox([W.VBox([self.arm_name, self.num_joints, self.gripper, self.links_box, self.preview_button,
                            self.arm_status]), self.preview]),
            h("2. Generate expert demonstrations"),
            W.HBox([W.VBox([self.num_demos, self.demo_button, self.demo_status]), self.demo_image]),
            h("3. LoRA fine-tuning (new embodiment slot + adapters)"),
            W.HBox([W.VBox([self.rank, self.alpha, self.lr, self.steps, self.targets, self.train_button,
                            self.progress, self.train_status]), self.fig]),
            h("4. Roll out in MuJoCo"),
            W.HBox([W.VBox([self.eval_episodes, self.rollout_button, self.rollout_status, W.HBox([self.play, self.frame])]),
                    self.video]),
        ])
        if preview:
            self.update_preview()

    # ------------------------------------------------------------------ arm
    def _make_joint_rows(self, lengths, limits) -> None:
        import ipywidgets as W
        self.link_w, self.limit_w = [], []
        rows = []
        for i, (ln, (lo, hi)) in enumerate(zip(lengths, limits)):
            lw = W.BoundedFloatText(value=round(float(ln), 3), min=0.01, max=1.5, step=0.01, description=f"link {i + 1} (m)",
                                    layout=W.Layout(width="190px"), style={"description_width": "80px"})
            rw = W.FloatRangeSlider(value=(float(lo), float(hi)), min=-3.14, max=3.14, step=0.05,
                                    description=f"limits {i + 1}", readout_format=".2f",
                                    layout=W.Layout(width="330px"))
            self.link_w.append(lw)
            self.limit_w.append(rw)
            rows.append(W.HBox([lw, rw]))
        self.links_box.children = rows

    def _on_num_joints(self, change) -> None:
        from groot_kit.sim.arm_generator import ArmSpec
        n = change["new"]
        default = ArmSpec(num_joints=n, link_lengths=[0.1] * n)
        old = [w.value for w in self.link_w]
        lengths = (old + [0.06] * n)[:n] if old else default.link_lengths
        self._make_joint_rows(lengths, default.joint_limits)
        self.update_preview()

    def arm_spec(self):
        """The ArmSpec the widgets describe (raises EmbodimentError with a clear message)."""
        from groot_kit.sim.arm_generator import ArmSpec
        return ArmSpec(num_joints=self.num_joints.value, link_lengths=[w.value for w in self.link_w],
                       joint_limits=[tuple(w.value) for w in self.limit_w], gripper=bool(self.gripper.value),
                       name=self.arm_name.value.strip() or "my_arm")

    def slot(self) -> int:
        if self._slot is None:
            from groot_kit.train.lora import choose_slot
            if self.base_checkpoint:
                from groot_kit.model.policy import GrootPolicy
                self._slot = choose_slot(GrootPolicy.from_pretrained(self.base_checkpoint))
            else:
                from groot_kit.config import get_preset
                self._slot = get_preset("tiny").action_head.max_num_embodiments - 2
        return self._slot

    def build_arm(self):
        from groot_kit.train.finetune import build_arm
        spec = self.arm_spec()
        self.emb = build_arm(spec, self.output_dir / "embodiment" / spec.name, self.slot())
        return self.emb

    def update_preview(self) -> None:
        try:
            spec = self.arm_spec()
            t = time.perf_counter()
            img, emb = render_arm_preview(spec, 240, self.output_dir / "preview", self.slot(), self.task)
            self.preview.value = png_bytes(img)
            self.arm_status.value = (f"<span style='color:green'>{spec.num_joints}-DOF arm, reach "
                                     f"{sum(spec.link_lengths):.2f} m, slot {self.slot()} "
                                     f"(rendered in {time.perf_counter() - t:.1f} s)</span>")
        except Exception as e:  # show the validation message instead of a traceback
            self.arm_status.value = f"<span style='color:#b00'>{type(e).__name__}: {e}</span>"

    # ------------------------------------------------------------------ demos
    def _image_size(self) -> int:
        if self.base_checkpoint:
            import json
            cfg = json.loads((Path(self.base_checkpoint) / "config.json").read_text())
            return int(cfg["vlm"]["vision"]["image_size"])
        return 64

    def generate_demos(self) -> dict | None:
        from groot_kit.train.finetune import record_demos
        self.demo_button.disabled = True
        try:
            emb = self.build_arm()
            self.demo_status.value = f"recording {self.num_demos.value} demos ..."
            t = time.perf_counter()
            info = record_demos(emb.root, self.task, int(self.num_demos.value), self.output_dir / "demos",
                                image_size=self._image_size(), seed=self.seed)
            self.demo_status.value = (f"{self.num_demos.value} successful expert demos "
                                      f"{'(reused)' if info.get('reused') else ''} in {time.perf_counter() - t:.1f} s")
            self._show_demo_frame(emb)
            return info
        except Exception as e:
            self.demo_status.value = f"<span style='color:#b00'>{type(e).__name__}: {e}</span>"
            return None
        finally:
            self.demo_button.disabled = False

    def _show_demo_frame(self, emb) -> None:
        try:
            from groot_kit.sim import make_env
            env = make_env(str(emb.root), self.task, image_size=128, seed=self.seed, num_cubes=1)
            env.reset(seed=self.seed)
            img = np.concatenate([env.render_camera(c, 128) for c in list(emb.cameras)[:2]], axis=1)
            env.close()
            self.demo_image.value = png_bytes(img)
        except Exception:
            pass

    # ------------------------------------------------------------------ train
    def settings(self) -> dict:
        """The finetune(...) keyword arguments the widgets describe."""
        return dict(arm_spec=self.arm_spec(), num_demos=int(self.num_demos.value), rank=int(self.rank.value),
                    alpha=float(self.alpha.value), lr=float(self.lr.value), steps=int(self.steps.value),
                    targets="+".join(self.targets.value) or "dit", seed=self.seed,
                    output_dir=str(self.output_dir), base_checkpoint=self.base_checkpoint, task=self.task,
                    slot_id=self.slot())

    def _on_row(self, step: int, row: dict) -> None:
        tr = self.fig.data[0]
        with self.fig.batch_update():
            tr.x = tuple(tr.x or ()) + (step,)
            tr.y = tuple(tr.y or ()) + (row["loss"],)
        self.progress.value = step
        self.train_status.value = f"step {step} / {self.progress.max} &middot; loss {row['loss']:.4f}"

    def train(self):
        from groot_kit.recipes.finetune import finetune
        self.train_button.disabled = True
        try:
            kw = self.settings()
            self.progress.max, self.progress.value = kw["steps"], 0
            self.fig.data[0].x, self.fig.data[0].y = (), ()
            self.train_status.value = "preparing (arm, demos, base model) ..."

            def stage(name, info):
                if name in ("arm", "demos", "model"):
                    self.train_status.value = f"{name} ..."
            bs = 4 if self.fast else 16
            self.result = finetune(**kw, callbacks=[self._on_row], eval_episodes=0, batch_size=bs,
                                   log_every=2 if self.fast else 10, resume=False, on_stage=stage,
                                   save_merged=not self.fast)
            m = self.result.metrics
            self.emb_dir = self.result.embodiment_dir
            self.train_status.value = (f"done: step {m['steps']} / {m['steps']} &middot; loss {m['final_loss']:.4f} "
                                       f"&middot; trainable {m['trainable']['lora']:,} LoRA + "
                                       f"{m['trainable']['embodiment_slot']:,} slot params of "
                                       f"{m['trainable']['total_parameters']:,} &middot; adapters saved to "
                                       f"{m['adapter_dir']} ({m['adapter_bytes'] / 1024:.0f} kB)")
            return self.result
        except Exception as e:
            self.train_status.value = f"<span style='color:#b00'>{type(e).__name__}: {e}</span>"
            traceback.print_exc()
            return None
        finally:
            self.train_button.disabled = False

    # ------------------------------------------------------------------ rollout
    def rollout(self):
        from groot_kit.eval import evaluate_closed_loop, finetune_eval_seed
        if self.result is None:
            self.rollout_status.value = "<span style='color:#b00'>train first (step 3)</span>"
            return None
        self.rollout_button.disabled = True
        try:
            n = int(self.eval_episodes.value)
            done = []

            def prog(i, ok):
                done.append(ok)
                self.rollout_status.value = f"episode {i}/{n}: {sum(done)} successes"
            self.eval = evaluate_closed_loop(self.result.policy, self.result.embodiment_dir, self.task, n,
                                             seed=finetune_eval_seed(self.seed), num_cubes=1, video_episodes=1,
                                             video_size=240, progress=prog)
            self.rollout_status.value = (f"<b>success rate {100 * self.eval['success_rate']:.0f}%</b> "
                                         f"({self.eval['successes']}/{n} unseen scenes)")
            self._frames = self.eval["videos"][0] if self.eval["videos"] else None
            if self._frames is not None:
                self.frame.max = self.play.max = len(self._frames) - 1
                self.frame.value = 0
                self._show_frame({"new": 0})
            return self.eval
        except Exception as e:
            self.rollout_status.value = f"<span style='color:#b00'>{type(e).__name__}: {e}</span>"
            traceback.print_exc()
            return None
        finally:
            self.rollout_button.disabled = False

    def _show_frame(self, change) -> None:
        if self._frames is not None and len(self._frames):
            i = int(np.clip(change["new"], 0, len(self._frames) - 1))
            self.video.value = png_bytes(self._frames[i])


def finetune_app(**kw):
    """Build and return the app's root widget (display it as a cell's last expression)."""
    return FinetuneApp(**kw).widget
