"""The bundled ``data_samples/``: one small dataset per embodiment and per pyramid tier.

Regenerate with ``python scripts/make_data_samples.py`` (about a minute on 2 CPU cores).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from .pyramid import to_video_tier, video_modality
from .reader import open_dataset
from .sim_data import modality_for, multiply_sim_demos, record_sim_dataset, sim_episodes
from .writer import write_dataset

#: name -> recipe. kind: "expert" | "teleop" | "mimicgen" | "video"
SAMPLES: dict[str, dict[str, Any]] = {
    "so100_teleop": dict(kind="teleop", embodiment="so100", task="pick_place", episodes=3, seed=0),
    "so100_mimicgen": dict(kind="mimicgen", embodiment="so100", task="pick_place", episodes=3, seed=0),
    "so100_video": dict(kind="video", embodiment="so100", task="pick_place", episodes=2, seed=100),
    "panda7_expert": dict(kind="expert", embodiment="panda7", task="pick_place", episodes=2, seed=0),
    "gr1_upper_expert": dict(kind="expert", embodiment="gr1_upper", task="reach", episodes=2, seed=0),
    "custom_arm_expert": dict(kind="expert", embodiment="custom_arm", task="reach", episodes=2, seed=0),
}
IMAGE_SIZE = 64


def make_sample(name: str, out_dir: str | Path, image_size: int = IMAGE_SIZE, overwrite: bool = True) -> dict:
    from groot_kit.embodiment import load_embodiment

    r = SAMPLES[name]
    root = Path(out_dir) / name
    spec = load_embodiment(r["embodiment"])
    t0 = time.perf_counter()
    kw = dict(fps=int(spec.control_hz), robot_type=spec.name, embodiment=spec.name, embodiment_id=spec.slot_id,
              overwrite=overwrite)
    if r["kind"] in ("expert", "teleop"):
        record_sim_dataset(root, r["embodiment"], r["task"], r["episodes"], image_size, r["seed"],
                           teleop=r["kind"] == "teleop", overwrite=overwrite, only_success=True)
    elif r["kind"] == "mimicgen":
        src = list(sim_episodes(r["embodiment"], r["task"], 1, image_size, r["seed"], teleop=True, only_success=True))
        eps, rep = multiply_sim_demos(r["embodiment"], src, r["episodes"], image_size, seed=r["seed"])
        write_dataset(src + eps, root, modality_for(spec), **kw)
    elif r["kind"] == "video":
        eps = to_video_tier(list(sim_episodes(r["embodiment"], r["task"], r["episodes"], image_size, r["seed"],
                                              only_success=True)))
        write_dataset(eps, root, video_modality(modality_for(spec)), **kw)
    info = open_dataset(root)
    return {"name": name, "episodes": info.num_episodes, "frames": info.num_frames,
            "tiers": sorted(set(info.episode_tiers())), "seconds": round(time.perf_counter() - t0, 1),
            "mb": round(sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / 2**20, 3)}


def make_all(out_dir: str | Path = "data_samples", names: list[str] | None = None) -> list[dict]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    res = [make_sample(n, out_dir) for n in (names or list(SAMPLES))]
    # a partial rerun (names=[...]) updates its rows and keeps the others', in SAMPLES order
    manifest = out_dir / "manifest.json"
    rows = {r["name"]: r for r in (json.loads(manifest.read_text())["datasets"] if manifest.exists() else [])}
    rows.update({r["name"]: r for r in res})
    rows = [rows[n] for n in SAMPLES if n in rows]
    manifest.write_text(json.dumps({"image_size": IMAGE_SIZE, "datasets": rows}, indent=1) + "\n")
    return res
