#!/usr/bin/env python
"""Data generation throughput: frames recorded per second end to end (scripted expert + MuJoCo
physics + rendering of every camera + video encoding + parquet), at 96 px, for several encoder settings,
in one process (sequential, or with the next episode simulated in a prefetch thread) or in several worker
processes whose shard datasets are merged at the end (merge time included).

    python benchmarks/datagen.py [--embodiment so100] [--episodes 4] [--workers 2]
                                 [--out benchmarks/results/datagen.json]

Prints a table and writes JSON. The machine is shared: run it alone for stable figures. The warm-up
(imports, first-use costs, starting the worker fork server) is paid once per process and not timed.
"""
import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from groot_kit.data import EncoderOptions  # noqa: E402
from groot_kit.data.sim_data import record_sim_dataset, sim_episodes  # noqa: E402

AV1 = dict(codec="libsvtav1", preset=None, crf=30, streaming=True, threads=None)
LEROBOT_STATS = "h264_ultrafast_streaming + prefetch, lerobot's full-frame image stats"


def configs(workers: int) -> dict[str, dict]:
    """label -> encoder (None: lerobot's defaults), prefetch thread, worker processes."""
    return {
        "lerobot_default (AV1, PNG then encode), sequential": dict(encoder=None, prefetch=False, workers=1),
        "av1_streaming, sequential": dict(encoder=EncoderOptions(**AV1), prefetch=False, workers=1),
        "h264_ultrafast_streaming, sequential": dict(encoder=EncoderOptions(), prefetch=False, workers=1),
        LEROBOT_STATS: dict(encoder=EncoderOptions(stats_max_side=None), prefetch=True, workers=1),
        "h264_ultrafast_streaming + prefetch": dict(encoder=EncoderOptions(), prefetch=True, workers=1),
        "av1_streaming + prefetch": dict(encoder=EncoderOptions(**AV1), prefetch=True, workers=1),
        f"h264_ultrafast_streaming + {workers} worker processes (default)":
            dict(encoder=EncoderOptions(), prefetch=True, workers=workers),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--embodiment", default="so100")
    ap.add_argument("--task", default="pick_place")
    ap.add_argument("--episodes", type=int, default=4)
    ap.add_argument("--image-size", type=int, default=96)
    ap.add_argument("--workers", type=int, default=2, help="processes for the multi-process row (default 2)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "datagen.json"))
    a = ap.parse_args(argv)
    if a.workers < 1:
        ap.error("--workers must be >= 1")

    res = {"embodiment": a.embodiment, "task": a.task, "episodes": a.episodes, "image_size": a.image_size,
           "workers": a.workers,
           "cpu_count": os.cpu_count(), "platform": platform.platform(), "results": {}}
    # warm-up: lerobot/torch imports and first-use costs (~3 s) are paid once per process, not per frame;
    # with workers > 1 this also starts the fork server the worker processes are forked from
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        record_sim_dataset(Path(d) / "warm", a.embodiment, a.task, a.workers, a.image_size, seed=99,
                           workers=a.workers)
    res["warmup_seconds"] = round(time.perf_counter() - t0, 2)
    # 1) simulation only (expert + physics + rendering), nothing written
    tm: dict = {}
    t0 = time.perf_counter()
    n_cams = None
    for ep in sim_episodes(a.embodiment, a.task, a.episodes, a.image_size, seed=0, timings=tm):
        n_cams = len(ep.frames)
    dt = time.perf_counter() - t0
    res["results"]["sim_only"] = {"frames": tm["frames"], "seconds": round(dt, 3), "frames_per_s": round(tm["frames"] / dt, 1)}
    res["cameras"] = n_cams
    # 2) end to end with each encoder setting
    for name, c in configs(a.workers).items():
        tmp = Path(tempfile.mkdtemp())
        try:
            enc = c["encoder"] if c["encoder"] is not None else _LerobotDefault(stats_max_side=None)
            r = record_sim_dataset(tmp / "ds", a.embodiment, a.task, a.episodes, a.image_size, seed=0,
                                   encoder=enc, parallel=c["prefetch"], workers=c["workers"])
            mb = sum(f.stat().st_size for f in (tmp / "ds").rglob("*") if f.is_file()) / 2**20
            res["results"][name] = {"frames": r["frames"], "seconds": round(r["seconds"], 3),
                                    "frames_per_s": round(r["frames_per_s"], 1), "dataset_mb": round(mb, 3),
                                    "workers": r["workers"]}
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2) + "\n")
    print(f"\n{a.embodiment}/{a.task}, {a.episodes} episodes, {a.image_size} px, {n_cams} cameras, "
          f"{os.cpu_count()} CPUs")
    w = max(len(k) for k in res["results"])
    print(f"{'setting':{w}s} {'frames':>7s} {'seconds':>8s} {'frames/s':>9s} {'images/s':>9s}")
    for k, v in res["results"].items():
        v["images_per_s"] = round(v["frames_per_s"] * n_cams, 1)
        print(f"{k:{w}s} {v['frames']:7d} {v['seconds']:8.2f} {v['frames_per_s']:9.1f} {v['images_per_s']:9.1f}")
    try:
        res["load_average"] = os.getloadavg()
    except OSError:
        pass
    Path(a.out).write_text(json.dumps(res, indent=2) + "\n")
    print(f"(frames/s counts control steps; each step renders {n_cams} camera images)\nJSON: {a.out}")
    return 0


class _LerobotDefault(EncoderOptions):
    def lerobot_kwargs(self):
        return {}


if __name__ == "__main__":
    sys.exit(main())
