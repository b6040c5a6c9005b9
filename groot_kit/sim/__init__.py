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
