"""GR00T v2.1 / v2.0 layout (per-episode parquet + mp4 + modality.json) -> v3.0 via lerobot's converter."""
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from groot_kit.data import GrootDataset, convert_v2_to_v3, open_dataset
from groot_kit.data.toy import toy_episodes


def make_gr00t_v2(root, n_eps=2, T=12, size=32, version="v2.1"):
    """A small dataset in GR00T's LeRobot v2 layout, made here (foreign-format fixture)."""
    from lerobot.configs.video import RGBEncoderConfig
    from lerobot.datasets.video_utils import encode_video_frames

    eps = toy_episodes(n_eps, T=T, size=size, seed=3)
    (root / "meta").mkdir(parents=True)
    feats = {
        "observation.state": {"dtype": "float32", "shape": [3], "names": None},
        "action": {"dtype": "float32", "shape": [3], "names": None},
        "observation.images.ego_view": {"dtype": "video", "shape": [size, size, 3],
                                        "names": ["height", "width", "channel"],
                                        "info": {"video.fps": 10.0, "video.height": size, "video.width": size,
                                                 "video.channels": 3, "video.codec": "h264",
                                                 "video.pix_fmt": "yuv420p", "video.is_depth_map": False,
                                                 "has_audio": False}},
        "annotation.human.action.task_description": {"dtype": "int64", "shape": [1], "names": None},
        "timestamp": {"dtype": "float32", "shape": [1], "names": None},
        "frame_index": {"dtype": "int64", "shape": [1], "names": None},
        "episode_index": {"dtype": "int64", "shape": [1], "names": None},
        "index": {"dtype": "int64", "shape": [1], "names": None},
        "task_index": {"dtype": "int64", "shape": [1], "names": None},
    }
    info = {"codebase_version": version, "robot_type": "toy", "total_episodes": n_eps, "total_frames": n_eps * T,
            "total_tasks": 1, "total_videos": n_eps, "total_chunks": 1, "chunks_size": 1000, "fps": 10,
            "splits": {"train": f"0:{n_eps}"},
            "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
            "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
            "features": feats}
    (root / "meta/info.json").write_text(json.dumps(info, indent=2))
    (root / "meta/tasks.jsonl").write_text(json.dumps({"task_index": 0, "task": eps[0].instruction}) + "\n")
    (root / "meta/episodes.jsonl").write_text("".join(
        json.dumps({"episode_index": i, "tasks": [eps[0].instruction], "length": T}) + "\n" for i in range(n_eps)))
    (root / "meta/modality.json").write_text(json.dumps({
        "state": {"pos": {"start": 0, "end": 2}, "gripper": {"start": 2, "end": 3}},
        "action": {"delta": {"start": 0, "end": 2}, "gripper": {"start": 2, "end": 3}},
        "video": {"ego_view": {"original_key": "observation.images.ego_view"}},
        "annotation": {"human.action.task_description": {}}}))
    stats_lines = []
    for i, ep in enumerate(eps):
        df = pd.DataFrame({
            "observation.state": list(ep.states), "action": list(ep.actions),
            "annotation.human.action.task_description": np.zeros(T, np.int64),
            "timestamp": np.arange(T, dtype=np.float32) / 10, "frame_index": np.arange(T),
            "episode_index": np.full(T, i), "index": np.arange(T) + i * T, "task_index": np.zeros(T, np.int64)})
        p = root / f"data/chunk-000/episode_{i:06d}.parquet"
        p.parent.mkdir(parents=True, exist_ok=True)
        df.to_parquet(p)
        imgs = root / f"tmp_imgs/{i}"
        imgs.mkdir(parents=True)
        for t, fr in enumerate(ep.frames["front"]):
            Image.fromarray(fr).save(imgs / f"frame-{t:06d}.png")
        encode_video_frames(imgs, root / f"videos/chunk-000/observation.images.ego_view/episode_{i:06d}.mp4", 10,
                            video_encoder=RGBEncoderConfig(vcodec="h264", preset="ultrafast"))
        st = {k: {"min": v.min(0).tolist(), "max": v.max(0).tolist(), "mean": v.mean(0).tolist(),
                  "std": v.std(0).tolist(), "count": [T]} for k, v in
              (("observation.state", ep.states), ("action", ep.actions))}
        for k in ("timestamp", "frame_index", "episode_index", "index", "task_index",
                  "annotation.human.action.task_description"):
            v = df[k].to_numpy(np.float64)
            st[k] = {"min": [v.min()], "max": [v.max()], "mean": [v.mean()], "std": [v.std()], "count": [T]}
        st["observation.images.ego_view"] = {s: [[[0.5]]] * 3 for s in ("min", "max", "mean", "std")}
        st["observation.images.ego_view"]["count"] = [T]
        stats_lines.append(json.dumps({"episode_index": i, "stats": st}))
    if version == "v2.1":
        (root / "meta/episodes_stats.jsonl").write_text("\n".join(stats_lines) + "\n")
    import shutil
    shutil.rmtree(root / "tmp_imgs")
    return eps


@pytest.mark.parametrize("version", ["v2.1", "v2.0"])
def test_convert_gr00t_v2(tmp_path, version):
    src = tmp_path / "gr00t_v2"
    eps = make_gr00t_v2(src, version=version)
    before = sorted(p.relative_to(src) for p in src.rglob("*"))
    dst = convert_v2_to_v3(src, tmp_path / "v3")
    assert sorted(p.relative_to(src) for p in src.rglob("*")) == before  # source untouched
    info = open_dataset(dst)
    assert info.info["codebase_version"] == "v3.0" and info.num_episodes == 2 and info.num_frames == 24
    assert info.modality.video == {"ego_view": "observation.images.ego_view"}
    assert (dst / "meta/modality.json").exists()
    ds = GrootDataset(dst, image_size=16)
    s = ds[12 + 3]
    back = ds.stats.unnormalize_flat("action", s["action"][:, :3], ds.modality)
    assert np.allclose(back[0].numpy(), eps[1].actions[3], atol=1e-4)
    assert s["pixel_values"].shape == (1, 3, 16, 16) and s["instruction"] == eps[0].instruction
