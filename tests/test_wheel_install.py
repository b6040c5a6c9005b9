"""The wheel carries the robots: build it, install it into a fresh venv outside the repo, load every
built-in robot and roll out its scripted expert from that install alone.

The fresh venv has no pip and no packages of its own; a ``.pth`` line points it at the running
interpreter's site-packages for the dependencies (torch, mujoco, ...). Only that directory is
added, so the repo's editable install (a ``.pth`` *inside* it) is not processed and the only
``groot_kit`` importable is the wheel's. The child runs with the working directory outside the repo.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUILTIN = sorted(["so100", "panda7", "gr1_upper", "custom_arm"])

CHILD = textwrap.dedent("""
    import json, os, shutil, sys
    from pathlib import Path
    import numpy as np
    import groot_kit
    from groot_kit.embodiment import list_embodiments, load_embodiment
    from groot_kit.sim import make_env, make_expert, rollout
    from groot_kit.sim.arm_generator import ArmSpec, write_custom_arm

    venv = Path(sys.prefix).resolve()
    out = {"groot_kit": groot_kit.__file__, "names": list_embodiments(), "robots": {}}
    for name in out["names"]:
        spec = load_embodiment(name)
        # the robot's files are the installed package's, not a checkout's
        assert venv in spec.root.resolve().parents, (name, spec.root)
        env = make_env(name, spec.tasks[0], image_size=32, seed=0)
        ep = rollout(env, make_expert(env), max_steps=25, seed=0)
        frames = {k: np.asarray(v).shape for k, v in ep.frames.items()} if ep.frames else {}
        out["robots"][name] = {"steps": len(ep), "task": spec.tasks[0], "root": str(spec.root),
                               "finite": bool(np.isfinite(np.asarray(ep.states)).all()),
                               "moved": float(np.abs(np.diff(np.asarray(ep.states), axis=0)).sum()),
                               "frames": {k: list(s) for k, s in frames.items()}}
        env.close()
    # a user robot: generated from a spec, then found by name through $GROOT_KIT_EMBODIMENTS
    work = Path(sys.argv[1])
    write_custom_arm(ArmSpec(num_joints=4, link_lengths=[0.1, 0.25, 0.2, 0.08], name="wheel_arm"),
                     work / "gen" / "wheel_arm", register=False)
    shutil.copytree(work / "gen" / "wheel_arm", work / "mine" / "wheel_arm")
    os.environ["GROOT_KIT_EMBODIMENTS"] = str(work / "mine")
    out["user"] = {"names": list_embodiments(), "root": str(load_embodiment("wheel_arm").root)}
    print("RESULT" + json.dumps(out))
""")


def _fresh_venv(path: Path) -> Path:
    """A venv with no packages of its own; the running interpreter's site-packages serve the deps."""
    venv.EnvBuilder(with_pip=False, clear=True).create(path)
    py = path / "bin" / "python"
    site = Path(subprocess.check_output([py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                        text=True).strip())
    deps = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (site / "_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    return py


def _build_wheel(tmp: Path) -> Path:
    """Build from a copy of the sources, so the repo gets no build/ or egg-info folders."""
    src = tmp / "src"
    shutil.copytree(REPO / "groot_kit", src / "groot_kit", ignore=shutil.ignore_patterns("__pycache__"))
    for f in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / f, src / f)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                        "-w", str(tmp / "dist"), str(src)], cwd=tmp, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    (whl,) = (tmp / "dist").glob("groot_kit-*.whl")
    return whl


def test_wheel_installs_and_runs_every_builtin_robot(tmp_path):
    whl = _build_wheel(tmp_path)
    py = _fresh_venv(tmp_path / "venv")
    site = subprocess.check_output([py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                   text=True, cwd=tmp_path).strip()
    # --target installs only into the fresh venv and never touches the running environment
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", site,
                    str(whl)], check=True, cwd=tmp_path)

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GROOT_KIT_EMBODIMENTS")}
    env.update(MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"), HF_HUB_OFFLINE="1")
    r = subprocess.run([py, "-c", CHILD, str(tmp_path / "work")], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=150)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.split("RESULT", 1)[1])

    venv_dir = (tmp_path / "venv").resolve()
    assert venv_dir in Path(out["groot_kit"]).resolve().parents  # the wheel's copy, not the repo
    assert out["names"] == BUILTIN
    for name in BUILTIN:
        rob = out["robots"][name]
        assert venv_dir in Path(rob["root"]).resolve().parents
        assert rob["steps"] == 25 and rob["finite"] and rob["moved"] > 0.01, (name, rob)
        # every camera rendered from the installed scene: 25 frames, 32 px high, RGB
        assert len(rob["frames"]) == 2 and all(s[0] == 25 and s[1] == 32 and s[3] == 3
                                               for s in rob["frames"].values()), rob
    assert out["user"]["names"] == BUILTIN + ["wheel_arm"]
    assert Path(out["user"]["root"]) == tmp_path / "work" / "mine" / "wheel_arm"
