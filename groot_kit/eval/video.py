"""Rollout videos: annotated frames (instruction, step, System 2's sub-task) and quiet H.264 mp4s."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _overlay(frame: np.ndarray, lines: list[str], scale: int = 4) -> np.ndarray:
    from PIL import Image, ImageDraw
    img = Image.fromarray(frame).resize((frame.shape[1] * scale, frame.shape[0] * scale), Image.NEAREST)
    d = ImageDraw.Draw(img)
    y = 2
    for ln in lines:
        d.rectangle([0, y, img.width, y + 11], fill=(0, 0, 0))
        d.text((3, y), ln, fill=(255, 255, 255))
        y += 12
    return np.asarray(img)


def annotate_frames(ep, cams: list[str] | None = None, scale: int = 4) -> np.ndarray:
    """Frames of a sim Episode side by side per camera, with instruction, step and System 2 sub-task."""
    cams = cams or list(ep.frames)
    out = []
    T = len(ep)
    for t in range(T):
        row = np.concatenate([ep.frames[c][t] for c in cams], axis=1)
        sub = ep.subtasks[t] if t < len(ep.subtasks) else ""
        status = "SUCCESS" if (ep.success and t == T - 1) else ""
        out.append(_overlay(row, [ep.instruction[:60], f"t={t:3d}  sub-task: {sub}  {status}"], scale))
    return np.stack(out)


def write_video(frames: np.ndarray, path: str | Path, fps: float = 30.0) -> Path:
    """uint8 [T,H,W,3] -> H.264 mp4 through PyAV (already a lerobot dependency)."""
    import av
    av.logging.set_level(av.logging.ERROR)   # libx264 prints its settings per file at INFO: noise in notebooks
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    T, h, w, _ = frames.shape
    h2, w2 = h - h % 2, w - w % 2
    with av.open(str(path), mode="w") as c:
        s = c.add_stream("libx264", rate=int(round(fps)))
        s.width, s.height, s.pix_fmt = w2, h2, "yuv420p"
        s.options = {"preset": "ultrafast", "crf": "23"}
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f[:h2, :w2]), format="rgb24")))
        c.mux(s.encode())
    return path
