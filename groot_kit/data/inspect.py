"""`groot-kit dataset inspect | validate | convert | plot`: look at a dataset before training on it.

``validate`` runs GR00T's checks on the folder as it is (v2.0, v2.1 or v3.0, nothing converted or
written): modality slices vs features, video files vs episodes, NaNs, timestamps monotone and
consistent with fps, idle leading frames, actions identical to the state, a single instruction.
Each finding is a ``Problem`` (error: training would fail or learn garbage; warning: worth a look),
with the file/field and the fix. ``inspect`` adds episodes, frames, fps, features, keys, tasks and a
per-key stats table; ``plot`` writes per-key trajectories and a video strip (plotly HTML).
"""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .errors import DataError
from .modality import ACTION_FEATURE, STATE_FEATURE, ModalityConfig
from .writer import MODALITY_FILE

IDLE_FRAMES = 10  # this many motionless frames at an episode's start is worth trimming


@dataclass
class Problem:
    level: str   # "error" | "warning"
    where: str   # file -> field
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.level.upper()}: {self.where}: {self.problem}. Fix: {self.fix}"


def _meta(root: Path) -> tuple[dict, str]:
    from .convert import codebase_version
    ver = codebase_version(root)
    return json.loads((root / "meta/info.json").read_text()), ver


def read_frames(root: Path, columns: list[str] | None = None):
    """Every parquet row of the folder as one pandas DataFrame (v2 per-episode files or v3 chunks)."""
    import pandas as pd
    import pyarrow.parquet as pq

    files = sorted((root / "data").rglob("*.parquet"))
    if not files:
        raise DataError(str(root / "data"), "no parquet files", "point at the dataset root (meta/, data/, videos/)")
    parts = []
    for i, f in enumerate(files):
        names = pq.read_schema(f).names
        df = pq.read_table(f, columns=[c for c in columns if c in names] if columns else None).to_pandas()
        if "episode_index" not in df:  # v2 per-episode file without the column: its order is the episode
            df["episode_index"] = i
        parts.append(df)
    return pd.concat(parts, ignore_index=True)


def tasks_of(root: Path, version: str) -> list[str]:
    if version.startswith("v2"):
        p = root / "meta/tasks.jsonl"
        return [json.loads(l)["task"] for l in p.read_text().splitlines() if l.strip()] if p.exists() else []
    import pandas as pd
    p = root / "meta/tasks.parquet"
    return [str(t) for t in pd.read_parquet(p).index] if p.exists() else []


def _video_problems(root: Path, info: dict, version: str, n_eps: int) -> list[Problem]:
    out = []
    for k, f in info.get("features", {}).items():
        if f.get("dtype") != "video":
            continue
        files = _video_files(root, k)
        if not files:
            out.append(Problem("warning", f"{root / 'meta/info.json'} -> features.{k}", "declared, but no mp4 files",
                               "nothing to do: the kit skips it; drop it from info.json to silence this"))
        elif version.startswith("v2") and len(files) != n_eps:
            out.append(Problem("error", f"{root / 'videos'} -> {k}", f"{len(files)} mp4 files for {n_eps} episodes",
                               "restore the missing episode videos or remove those episodes"))
    return out


def validate(root: str | Path) -> list[Problem]:
    """GR00T's dataset checks on ``root`` as it is; returns the problems found (empty: clean)."""
    root = Path(root)
    info, ver = _meta(root)
    feats = info.get("features", {})
    fps = float(info.get("fps") or 0)
    out: list[Problem] = []
    where_info = str(root / "meta/info.json")
    if fps <= 0:
        out.append(Problem("error", f"{where_info} -> fps", f"missing or not positive ({info.get('fps')!r})",
                           "set fps to the recording rate"))
    mod = None
    if (root / MODALITY_FILE).exists():
        try:
            mod = ModalityConfig.load(root / MODALITY_FILE)
            mod.check_features({k: v for k, v in feats.items() if k not in _phantoms(root, feats)}, where_info)
        except DataError as e:
            out.append(Problem("error", e.where, e.problem, e.fix))
    else:
        out.append(Problem("warning", str(root / MODALITY_FILE), "missing: one 'state'/'action' key is assumed",
                           "write meta/modality.json naming the joints (GR00T's schema) to select keys later"))
    df = read_frames(root, [STATE_FEATURE, ACTION_FEATURE, "episode_index", "timestamp", "frame_index"])
    n_eps = int(df["episode_index"].nunique())
    out += _video_problems(root, info, ver, n_eps)
    arrays = {c: np.stack(df[c].to_numpy()).astype(np.float64) for c in (STATE_FEATURE, ACTION_FEATURE) if c in df}
    for c, a in arrays.items():
        bad = ~np.isfinite(a).all(1)
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            out.append(Problem("error", f"{root / 'data'} -> column '{c}'",
                               f"{int(bad.sum())} rows with NaN/inf (first: episode {int(df['episode_index'][r])})",
                               "repair or drop those episodes"))
    if "frame_index" not in df:
        out.append(Problem("warning", f"{root / 'data'} -> frame_index", "column missing",
                           "nothing to do: the kit derives it from the row order when it converts"))
    eps = df.groupby("episode_index", sort=True)
    if "timestamp" in df and fps > 0:
        for e, g in eps:
            dt = np.diff(g["timestamp"].to_numpy(np.float64))
            if (dt <= 0).any():
                out.append(Problem("error", f"{root / 'data'} -> timestamp", f"not increasing in episode {e}",
                                   "re-export the episode with monotone timestamps"))
                break
            if len(dt) and np.abs(dt - 1 / fps).max() > 0.25 / fps:
                out.append(Problem("warning", f"{root / 'data'} -> timestamp",
                                   f"episode {e}: steps of {dt.min():.4g}-{dt.max():.4g} s, fps {fps:g} says {1 / fps:.4g} s",
                                   "fix info.json fps, or resample the episode (dropped frames?)"))
                break
    if STATE_FEATURE in arrays:
        idle = []
        for e, g in eps:
            s = arrays[STATE_FEATURE][g.index.to_numpy()]
            moving = np.flatnonzero(np.abs(np.diff(s, axis=0)).max(1) > 1e-6) if len(s) > 1 else np.array([0])
            if (moving[0] if len(moving) else len(s)) >= IDLE_FRAMES:
                idle.append(int(e))
        if idle:
            out.append(Problem("warning", f"{root / 'data'} -> {STATE_FEATURE}",
                               f"{len(idle)} episode(s) start with >= {IDLE_FRAMES} motionless frames (e.g. {idle[:5]})",
                               "trim the idle start: the policy learns to wait"))
    if STATE_FEATURE in arrays and ACTION_FEATURE in arrays and arrays[STATE_FEATURE].shape == arrays[ACTION_FEATURE].shape:
        if np.allclose(arrays[STATE_FEATURE], arrays[ACTION_FEATURE], atol=1e-7):
            out.append(Problem("error", f"{root / 'data'} -> {ACTION_FEATURE}", "identical to observation.state in every frame",
                               "record the commanded (or next) joint targets as the action"))
    tasks = tasks_of(root, ver)
    if len(tasks) <= 1 or (mod is not None and len(set(tasks) - {"valid"}) <= 1):
        out.append(Problem("warning", str(root / ("meta/tasks.jsonl" if ver.startswith("v2") else "meta/tasks.parquet")),
                           f"only one instruction ({tasks[0]!r})" if tasks else "no instructions",
                           "fine for a single task; the language input cannot tell tasks apart"))
    return out


def _video_files(root: Path, key: str) -> list[Path]:
    """mp4 files of one video feature: v2 videos/chunk-*/<key>/*.mp4, v3 videos/<key>/chunk-*/*.mp4."""
    vids = root / "videos"
    return [p for p in vids.rglob("*.mp4") if key in p.relative_to(vids).parts] if vids.exists() else []


def _phantoms(root: Path, feats: dict) -> set[str]:
    return {k for k, f in feats.items() if f.get("dtype") == "video" and not _video_files(root, k)}


def inspect(root: str | Path, select=None) -> dict:
    """Summary of a dataset: version, episodes, frames, fps, features, keys, tasks, per-key stats, problems."""
    from .normalization import load_numeric
    from .reader import open_dataset

    root = Path(root)
    raw_info, ver = _meta(root)
    problems = validate(root)
    summary = {"root": str(root), "codebase_version": ver, "fps": raw_info.get("fps"),
               "features": {k: f"{f['dtype']}{list(f.get('shape', []))}" for k, f in raw_info.get("features", {}).items()},
               "tasks": tasks_of(root, ver), "problems": [asdict(p) for p in problems]}
    if any(p.level == "error" for p in problems):
        return summary
    info = open_dataset(root, select=select)
    m = info.modality
    summary.update(episodes=info.num_episodes, frames=info.num_frames, robot=info.embodiment,
                   state_keys={k: [*s.src, s.dim] for k, s in m.state.items()},
                   action_keys={k: [*s.src, s.dim] for k, s in m.action.items()}, cameras=dict(m.video),
                   language_key=m.language_key or "task", converted_copy=str(info.root) if info.source else None)
    st, ac = load_numeric(info)
    table = []
    for group, arr in (("state", st), ("action", ac)):
        for k, s in (getattr(m, group).items() if arr is not None else []):
            x = arr[:, s.start:s.end]
            table.append({"key": f"{group}.{k}", "dims": s.dim, "min": float(x.min()), "max": float(x.max()),
                          "mean": float(x.mean()), "std": float(x.std())})
    summary["stats"] = table
    return summary


def plot(root: str | Path, episode: int = 0, select=None, frames: int = 6):
    """Per-key state (solid) / action (dotted) trajectories of one episode + a strip of video frames."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from .dataset import GrootDataset

    ds = GrootDataset(root, select=select, image_size=96)
    m = ds.modality
    idx = np.flatnonzero(ds.frame_episode_index == episode)
    if not len(idx):
        raise DataError(f"{root} -> episode {episode}", "no such episode",
                        f"pick one of 0..{int(ds.frame_episode_index.max())}")
    hf = ds.ds.hf_dataset.with_format(None).select(idx.tolist())
    cols = {k: np.asarray(hf[k], np.float32) for k in {s.original_key for g in (m.state, m.action) for s in g.values()}}
    keys = list(dict.fromkeys(list(m.state) + list(m.action)))
    cams = list(m.video)
    fig = make_subplots(len(keys) + len(cams), 1, subplot_titles=keys + [f"video.{c}" for c in cams])
    t = np.arange(len(idx)) / ds.info.fps
    for r, k in enumerate(keys, 1):
        for group, dash in (("state", "solid"), ("action", "dot")):
            s = getattr(m, group).get(k)
            if s is None:
                continue
            x = cols[s.original_key][:, s.src[0]:s.src[1]]
            for d in range(x.shape[1]):
                fig.add_scatter(x=t, y=x[:, d], mode="lines", line=dict(dash=dash), name=f"{group}.{k}[{d}]",
                                row=r, col=1)
    pick = np.linspace(0, len(idx) - 1, min(frames, len(idx))).astype(int)
    for j, (cam, key) in enumerate(m.video.items()):
        strip = np.concatenate([(ds.ds[int(idx[i])][key].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
                                for i in pick], axis=1)
        fig.add_trace(go.Image(z=strip), row=len(keys) + j + 1, col=1)
    fig.update_layout(title=f"{Path(root).name}: episode {episode}", height=220 * (len(keys) + len(cams)),
                      showlegend=False)
    return fig


# ------------------------------------------------------------------------------------- CLI
def add_dataset_commands(sub) -> None:
    """`groot-kit dataset inspect|validate|convert|plot` (sub: the top-level subparsers)."""
    p = sub.add_parser("dataset", help="inspect / validate / convert / plot a GR00T or LeRobot dataset")
    dsub = p.add_subparsers(dest="dataset_command", required=True)
    for name, hlp in (("inspect", "episodes, fps, features, keys, tasks, per-key stats, problems"),
                      ("validate", "GR00T's checks; exit 1 on errors"), ("plot", "per-key trajectories + video strip")):
        s = dsub.add_parser(name, help=hlp)
        s.add_argument("path")
        if name != "validate":
            s.add_argument("--data-config", help="select keys (YAML or shipped name)")
        if name == "inspect":
            s.add_argument("--json", action="store_true")
        if name == "plot":
            s.add_argument("--episode", type=int, default=0)
            s.add_argument("--output", default=None, help="HTML file (default outputs/plots/<name>_ep<N>.html)")
        s.set_defaults(fn=_run)
    s = dsub.add_parser("convert", help="GR00T/LeRobot v2.0/v2.1 -> LeRobot v3.0, or (--to gr00t-v2.1) a v3.0 "
                                        "recording -> the layout Isaac-GR00T's trainer reads (source left untouched)")
    s.add_argument("src")
    s.add_argument("dst")
    s.add_argument("--to", choices=("v3.0", "gr00t-v2.1"), default="v3.0",
                   help="v3.0: read a GR00T/LeRobot v2 folder; gr00t-v2.1: export a v3.0 folder (default: v3.0)")
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(fn=_run)


def _run(args: argparse.Namespace) -> int:
    from .data_config import DataConfig
    sel = DataConfig.load(args.data_config) if getattr(args, "data_config", None) else None
    cmd = args.dataset_command
    if cmd == "validate":
        probs = validate(args.path)
        for p in probs:
            print(p)
        n_err = sum(p.level == "error" for p in probs)
        print(f"{args.path}: {n_err} error(s), {len(probs) - n_err} warning(s)")
        return 1 if n_err else 0
    if cmd == "inspect":
        s = inspect(args.path, sel)
        print(json.dumps(s, indent=1) if args.json else _text(s))
        return 1 if any(p["level"] == "error" for p in s["problems"]) else 0
    if cmd == "convert" and args.to == "gr00t-v2.1":
        from .export_v21 import export_gr00t_v21
        print(f"wrote {export_gr00t_v21(args.src, args.dst, overwrite=args.overwrite)} (GR00T-LeRobot v2.1)")
        return 0
    if cmd == "convert":
        from .convert import convert_v2_to_v3
        print(f"wrote {convert_v2_to_v3(args.src, args.dst, overwrite=args.overwrite)} (LeRobot v3.0)")
        return 0
    out = Path(args.output or f"outputs/plots/{Path(args.path).name}_ep{args.episode}.html")
    out.parent.mkdir(parents=True, exist_ok=True)
    plot(args.path, args.episode, sel).write_html(str(out))
    print(f"wrote {out}")
    return 0


def _text(s: dict) -> str:
    lines = [f"{s['root']} ({s['codebase_version']}, {s['fps']} fps)"]
    if "episodes" in s:
        lines += [f"  robot {s['robot']}: {s['episodes']} episodes, {s['frames']} frames",
                  "  state:  " + ", ".join(f"{k}[{a}:{b}]" for k, (a, b, _) in s["state_keys"].items()),
                  "  action: " + ", ".join(f"{k}[{a}:{b}]" for k, (a, b, _) in s["action_keys"].items()),
                  "  cameras: " + (", ".join(s["cameras"]) or "(none)") + f"; instruction: {s['language_key']}"]
    lines += [f"  tasks ({len(s['tasks'])}): " + "; ".join(s["tasks"][:5])]
    if s.get("stats"):
        lines.append(f"  {'key':<24}{'dims':>5}{'min':>10}{'max':>10}{'mean':>10}{'std':>10}")
        lines += [f"  {r['key']:<24}{r['dims']:>5}{r['min']:>10.4g}{r['max']:>10.4g}{r['mean']:>10.4g}{r['std']:>10.4g}"
                  for r in s["stats"]]
    lines += [f"  {p['level'].upper()}: {p['where']}: {p['problem']}. Fix: {p['fix']}" for p in s["problems"]]
    return "\n".join(lines)
