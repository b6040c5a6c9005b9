"""groot_kit.sim: MuJoCo tabletop worlds, scripted experts, teleop and rollouts.

>>> from groot_kit.sim import make_env, make_expert, rollout
>>> env = make_env("so100", "pick_place", image_size=96, seed=0)
>>> ep = rollout(env, make_expert(env), seed=0)
"""

from groot_kit.sim.env import SUBTASKS, TASKS, GrootSimEnv, make_env
from groot_kit.sim.expert import ScriptedExpert, make_expert
from groot_kit.sim.rollout import Episode, EpisodeRecorder, rollout

__all__ = ["make_env", "GrootSimEnv", "TASKS", "SUBTASKS", "make_expert", "ScriptedExpert", "rollout",
           "Episode", "EpisodeRecorder"]


def _register_gym_ids() -> None:
    """``gymnasium.make("groot_kit/so100-pick_place-v0", image_size=96)`` for the built-in bodies."""
    import gymnasium

    from groot_kit.embodiment import default_registry

    reg = default_registry()
    for name in reg.builtin_names():
        for task in reg.load(name).tasks:
            gid = f"groot_kit/{name}-{task}-v0"
            if gid not in gymnasium.registry:
                gymnasium.register(id=gid, entry_point="groot_kit.sim.env:GrootSimEnv",
                                   kwargs={"embodiment": name, "task": task}, disable_env_checker=True)


_register_gym_ids()
