"""Hooks from ``groot_kit.sim`` (MuJoCo) to datasets: record expert / simulated-teleop datasets and
multiply teleop demos MimicGen-style in the real physics (IK through the sim's ArmIK)."""
from __future__ import annotations

import math
import multiprocessing as mp
import numbers
import os
import shutil
import time
import traceback
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from groot_kit.constants import configure_rendering

from .episode import EpisodeData, from_sim_episode
from .errors import DataError
from .modality import SUBTASK_ANNOTATION, SUBTASK_FEATURE, ModalityConfig
from .pyramid import SourceDemo, multiply_demos, pose_mat
from .writer import EncoderOptions, merge_datasets, write_dataset

#: which object each pick-and-place sub-task is relative to (MimicGen's object-centric segments)
PICK_PLACE_OBJECTS = {"reach": "cube", "grasp": "cube", "lift": "cube", "move": "bin", "place": "bin", "release": "bin"}


def modality_for(spec) -> ModalityConfig:
    """The embodiment's modality.json, with the sub-task annotation pointing at the feature we write."""
    m = ModalityConfig.from_dict(spec.modality, source=str(Path(spec.root) / "modality.json"))
    m.annotation[SUBTASK_ANNOTATION] = SUBTASK_FEATURE
    return m


def norm_modes_for(spec) -> dict[str, str]:
    """Per-key normalization modes declared in embodiment.yaml."""
    out = {f"state.{k}": v.normalization for k, v in spec.state.items()}
    out.update({f"action.{k}": v.normalization for k, v in spec.action.items()})
    return out


def sim_episodes(embodiment: str, task: str, n: int, image_size: int = 96, seed: int = 0, teleop: bool = False,
                 timings: dict | None = None, only_success: bool = False, max_tries: int | None = None, *,
                 num_cubes: int | None = None, start_noise: float | None = None, hold_seconds: float = 0.0,
                 min_steps: int = 1, stats: dict | None = None, targets_per_scene: int = 1) -> Iterator[EpisodeData]:
    """Yield ``n`` episodes from the scripted expert (tier 'synthetic', domain-randomised) or the
    simulated operator (tier 'teleop'), on scene seeds ``seed, seed+1, ...``.

    ``only_success`` / ``min_steps`` skip failed or too-short episodes (lerobot cannot store a 1-frame
    episode; a start pose already at the goal teaches nothing) and try further seeds, up to
    ``max_tries`` (default ``3n + 5``). ``num_cubes`` / ``start_noise`` go to the env (None: its
    defaults); the expert keeps recording ``hold_seconds`` after success. ``timings`` accumulates sim
    seconds and frames; ``stats`` receives ``tried`` and ``kept`` when the generator finishes.
    ``targets_per_scene`` > 1 records each multi-cube scene that many times, each time with another
    cube as the target: the same first image under different instructions and goals, so the words
    are the only way to tell the demos apart (counterfactual pairs against memorising scenes)."""
    from groot_kit.sim import make_env, make_expert, rollout
    from groot_kit.sim.teleop import SimulatedOperator

    env_kw = {k: v for k, v in (("num_cubes", num_cubes), ("start_noise", start_noise)) if v is not None}
    env = make_env(embodiment, task, image_size=image_size, seed=seed, **env_kw)
    hold = int(round(hold_seconds * env.spec_e.control_hz))
    tier = "teleop" if teleop else "synthetic"
    made, k = 0, 0
    try:
        while made < n and k < (max_tries or 3 * n + 5):
            s = seed + k
            k += 1
            for j in range(max(1, targets_per_scene)):
                if made >= n:
                    break
                t0 = time.perf_counter()
                start = None
                if j > 0:   # the same scene again, another cube named
                    start, _ = env.reset(seed=s)
                    env.unwrapped.next_target(j)
                pol = SimulatedOperator(env, seed=s) if teleop else make_expert(env)
                ep = rollout(env, pol, seed=s, tier=tier, extra_steps_after_success=hold, start_obs=start)
                if timings is not None:
                    timings["sim_s"] = timings.get("sim_s", 0.0) + time.perf_counter() - t0
                    timings["frames"] = timings.get("frames", 0) + len(ep)
                if (only_success and not ep.success) or len(ep) < min_steps:
                    continue
                made += 1
                yield from_sim_episode(ep, tier=tier, instruction=env.unwrapped.instruction, provenance={
                    "source": "simulated_operator" if teleop else "scripted_expert", "embodiment": env.spec_e.name,
                    "task": task, "seed": s, "target_variant": j, **({"num_cubes": num_cubes} if num_cubes is not None else {}),
                    "domain_randomization": True, **{k2: v for k2, v in ep.meta.items() if isinstance(v, (int, float, str))}})
    finally:
        env.close()
        if stats is not None:
            stats.update(tried=k, kept=made)


def prefetch(iterable, depth: int = 2) -> Iterator:
    """Run a generator in a background thread (MuJoCo stepping/rendering and video encoding release the
    GIL, so simulating episode k+1 overlaps with encoding episode k on a 2-core machine)."""
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def work():
        try:
            for x in iterable:
                if stop.is_set():
                    break
                q.put(x)
        except BaseException as e:  # re-raised in the consumer
            q.put(e)
        finally:
            q.put(done)

    th = threading.Thread(target=work, daemon=True)
    th.start()
    try:
        while True:
            x = q.get()
            if x is done:
                break
            if isinstance(x, BaseException):
                raise x
            yield x
    finally:
        stop.set()
        while th.is_alive():
            try:
                q.get_nowait()
            except Exception:
                pass
            th.join(timeout=0.05)


def record_sim_dataset(root: str | Path, embodiment: str, task: str, n_episodes: int, image_size: int = 96,
                       seed: int = 0, teleop: bool = False, encoder: EncoderOptions | None = None,
                       overwrite: bool = False, only_success: bool = False, parallel: bool = True,
                       workers: int = 1) -> dict[str, Any]:
    """Record a dataset from MuJoCo and write it (LeRobot v3.0 + modality.json). Returns figures.

    ``parallel``: simulate the next episode in a background thread while this one is written.
    ``workers`` > 1: record in that many processes (recording is GIL-bound, ~1.2 of 2 cores busy in
    one process). The episodes are split into contiguous shards (sizes differ by at most one); shard 0
    is recorded in this process, the others in child processes started with the "forkserver" method
    ("spawn" where that is missing; MuJoCo's EGL contexts must never be forked). Each shard is a
    dataset of its own in a hidden folder beside ``root``; they are merged in shard order with
    lerobot's ``aggregate_datasets`` and the result is renamed into place (see ``merge_datasets``).
    The first call in a process starts the fork server, which imports torch/lerobot once (a few
    seconds); later calls fork from it almost instantly. As with any multiprocessing code, a script
    that calls this must guard its entry point with ``if __name__ == "__main__":``.

    Seeds: with ``workers=1`` episode tries use seeds ``seed, seed+1, ...``. A shard whose first
    episode is number ``start`` uses seeds from ``seed + start`` (so without ``only_success`` the
    merged dataset holds the very episodes ``workers=1`` records, in the same order), or from
    ``seed + 3 * start`` with ``only_success`` (each shard of ``n`` episodes may try up to ``3 * n``
    seeds, so the ranges never overlap).

    Figures: path, frames (simulated, summed over shards), seconds (wall clock, end to end),
    sim_seconds (summed over shards), frames_per_s, workers (processes used: at most n_episodes).
    """
    if isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or workers < 1:
        raise DataError("workers", f"must be an integer >= 1, got {workers!r}",
                        "pass workers=1 to record in this process, or e.g. the number of CPU cores")
    workers = max(1, min(int(workers), int(n_episodes)))
    t0 = time.perf_counter()
    job = dict(embodiment=embodiment, task=task, image_size=image_size, teleop=teleop, encoder=encoder,
               only_success=only_success, parallel=parallel)
    if workers == 1:
        fig = _record_shard(root=root, n_episodes=n_episodes, seed=seed, overwrite=overwrite, **job)
    else:
        fig = _record_sharded(Path(root), n_episodes, seed, workers, overwrite, job)
    total = time.perf_counter() - t0
    return {"path": str(Path(root)), "frames": fig["frames"], "seconds": total, "sim_seconds": fig["sim_seconds"],
            "frames_per_s": fig["frames"] / max(total, 1e-9), "workers": workers}


def _record_shard(root, embodiment: str, task: str, n_episodes: int, image_size: int, seed: int, teleop: bool,
                  encoder: EncoderOptions | None, overwrite: bool, only_success: bool, parallel: bool,
                  max_tries: int | None = None) -> dict[str, Any]:
    """Record and write one dataset in this process; returns simulated frames and sim seconds."""
    from groot_kit.embodiment import load_embodiment

    spec = load_embodiment(embodiment)
    tm: dict[str, Any] = {}
    gen = sim_episodes(embodiment, task, n_episodes, image_size, seed, teleop, tm, only_success, max_tries)
    write_dataset(prefetch(gen) if parallel else gen,
                  root, modality_for(spec), fps=int(spec.control_hz), robot_type=spec.name,
                  embodiment=spec.name, embodiment_id=spec.slot_id, encoder=encoder, overwrite=overwrite)
    return {"frames": tm.get("frames", 0), "sim_seconds": tm.get("sim_s", 0.0)}


def _shard_process_main(conn, env: dict, job: dict) -> None:
    """Entry point of a shard's child process: record, then send ("ok", figures) or ("error", cause, traceback)."""
    # a fork-server child inherits the fork server's environment, which may be older than the caller's
    os.environ.clear()
    os.environ.update(env)
    configure_rendering()  # the cleared environment gets the kit's rendering defaults back
    try:
        msg = ("ok", _record_shard(**job))
    except BaseException as e:  # noqa: BLE001 - reported to the parent, which raises
        msg = ("error", f"{type(e).__name__}: {e}", traceback.format_exc())
    conn.send(msg)
    conn.close()


def _mp_context():
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        # the fork server imports these once; each shard process then forks with them loaded
        ctx.set_forkserver_preload(["groot_kit.data.sim_data", "lerobot.datasets.lerobot_dataset"])
        return ctx
    return mp.get_context("spawn")


def _record_sharded(root: Path, n: int, seed: int, workers: int, overwrite: bool, job: dict) -> dict[str, Any]:
    if root.exists() and not overwrite:
        raise DataError(str(root), "already exists", "pass overwrite=True or choose another path")
    sizes = [n // workers + (w < n % workers) for w in range(workers)]
    starts = [sum(sizes[:w]) for w in range(workers)]
    stride = 3 if job["only_success"] else 1  # see the docstring of record_sim_dataset
    shard_dir = root.parent / f".{root.name}.shards-{uuid.uuid4().hex[:8]}"
    jobs = [dict(job, root=shard_dir / f"shard-{w:03d}", n_episodes=sizes[w], seed=seed + stride * starts[w],
                 max_tries=3 * sizes[w] if job["only_success"] else None, overwrite=False)
            for w in range(workers)]

    def failed(w: int, cause: str, detail: str = "") -> RuntimeError:
        where = "this process" if w == 0 else "a worker process"
        return RuntimeError(
            f"record_sim_dataset: shard {w} of {workers} (episodes {starts[w]}..{starts[w] + sizes[w] - 1}, "
            f"seeds from {jobs[w]['seed']}, recorded in {where}) failed: {cause}. Nothing was written to "
            f"{root}." + (" Rerun with workers=1 to debug in-process." if w else "")
            + (f"\n--- worker traceback ---\n{detail}" if detail else ""))

    ctx = _mp_context()
    procs: list[tuple[int, Any, Any]] = []  # (shard, process, receiving end of its pipe)
    try:
        shard_dir.mkdir(parents=True)
        for w in range(1, workers):
            recv, send = ctx.Pipe(duplex=False)
            p = ctx.Process(target=_shard_process_main, args=(send, dict(os.environ), jobs[w]),
                            name=f"groot_kit-shard-{w}")
            p.start()
            send.close()  # the child holds the only sending end: EOF on our side means it died
            procs.append((w, p, recv))
        figs = []
        try:
            figs.append(_record_shard(**jobs[0]))
        except Exception as e:
            raise failed(0, f"{type(e).__name__}: {e}") from e
        for w, p, recv in procs:
            try:
                msg = recv.recv()
            except EOFError:
                p.join()
                raise failed(w, f"the worker process exited with code {p.exitcode} before reporting") from None
            p.join()
            if msg[0] != "ok":
                raise failed(w, msg[1], msg[2])
            figs.append(msg[1])
        merge_datasets([j["root"] for j in jobs], root, overwrite=overwrite, extra_meta={"workers": workers})
    finally:
        for _, p, recv in procs:
            if p.is_alive():
                p.terminate()
            p.join()
            recv.close()
        shutil.rmtree(shard_dir, ignore_errors=True)
    return {"frames": sum(f["frames"] for f in figs), "sim_seconds": sum(f["sim_seconds"] for f in figs)}


# ------------------------------------------------------------------------------ MimicGen in MuJoCo
def _object_poses(env) -> dict[str, np.ndarray]:
    T = env.target
    return {"cube": pose_mat(env.body_pos(T["cube"]), env.body_mat(T["cube"])),
            "bin": pose_mat(np.asarray(T["bin_pos"], float))}


def source_demo_from_sim(env, ep, source_id: str = "") -> SourceDemo:
    """Replay a recorded single-arm pick_place episode (same seed) to recover the end-effector path and
    the object poses at each step (the Episode itself stores only joints)."""
    seed = ep.provenance.get("seed") if isinstance(ep, EpisodeData) else ep.seed
    env.reset(seed=seed)
    arm = env.target["arm"]
    eef, objs = [], []
    for a in ep.actions:
        p, R = env.ee_pose(arm)
        eef.append(pose_mat(p, R))
        objs.append(_object_poses(env))
        env.step(a)
    grip = np.asarray(ep.actions)[:, list(env.spec_e.action).index("gripper")] if "gripper" in env.spec_e.action \
        else np.zeros(len(ep.actions))
    gk = env.spec_e.action.get("gripper")
    if gk is not None:
        grip = np.asarray(ep.actions)[:, gk.start]
    return SourceDemo(eef_poses=np.stack(eef), gripper=grip, subtasks=list(ep.subtasks),
                      segment_objects=PICK_PLACE_OBJECTS, object_poses=objs, instruction=ep.instruction,
                      source_id=source_id)


class SimMimicEnv:
    """MimicEnv (see pyramid.py) over a single-arm ``pick_place`` GrootSimEnv."""

    def __init__(self, env, seed_offset: int = 10_000, speed: float | None = None):
        from groot_kit.sim.expert import ScriptedExpert

        self.env, self.seed_offset = env, seed_offset
        self._Expert = ScriptedExpert
        self.speed = speed or float(env.layout.get("speed", 0.3))

    def reset_scene(self, rng):
        from groot_kit.sim.rollout import EpisodeRecorder

        self.seed = int(self.seed_offset + rng.integers(1_000_000))
        self.obs, _ = self.env.reset(seed=self.seed)
        self.arm = self.env.target["arm"]
        ex = self._Expert(self.env)
        ex.reset()
        self.ctl, self.ex = ex.ctl, ex
        for c in self.ctl.values():
            c.q = self.env.data.qpos[self.env.arms[c.arm].qadr].copy()
        self.rec = EpisodeRecorder(self.env, tier="synthetic", seed=self.seed)
        self.ok = False

    def object_pose(self, name):
        return _object_poses(self.env)[name]

    def eef_pose(self):
        p, R = self.env.ee_pose(self.arm)
        return pose_mat(p, R)

    def bridge_steps(self, a, b) -> int:
        d = float(np.linalg.norm(a[:3, 3] - b[:3, 3]))
        return max(3, int(math.ceil(d / (self.speed * self.env.spec_e.control_dt))))

    def servo(self, target, gripper):
        c = self.ctl[self.arm]
        c.pos, c.rot, c.grip = target[:3, 3].copy(), target[:3, :3].copy(), float(gripper)
        c.solve()
        a = self.ex._action()
        self.rec.add(self.obs, a, "")
        self.obs, _, _, _, info = self.env.step(a)
        self.ok |= bool(info.get("success"))

    def success(self):
        return self.ok

    def episode(self, instruction, subtasks):
        ep = self.rec.finish(success=self.ok)
        ep.subtasks = list(subtasks)
        out = from_sim_episode(ep, tier="synthetic", instruction=self.env.instruction)
        out.provenance = {"seed": self.seed}
        return out


def multiply_sim_demos(embodiment: str, sources: list[EpisodeData], n_attempts: int, image_size: int = 96,
                       seed: int = 0, progress: Callable | None = None):
    """MimicGen-style multiplication of a few single-arm pick_place demos in MuJoCo.

    Returns (successful episodes, MultiplyReport)."""
    from groot_kit.sim import make_env

    env = make_env(embodiment, "pick_place", image_size=image_size, seed=seed)
    try:
        src = [source_demo_from_sim(env, ep, f"demo{i}") for i, ep in enumerate(sources)]
        return multiply_demos(src, SimMimicEnv(env), n_attempts, seed=seed, progress=progress)
    finally:
        env.close()
