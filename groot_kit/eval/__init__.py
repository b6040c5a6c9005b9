"""groot_kit.eval: the one way to evaluate a policy.

    evaluate_closed_loop(policy, "so100", task="reach", n_episodes=50, seed=300_000)   # MuJoCo success
    evaluate_open_loop(policy, "data_samples/panda7_expert")                           # GR00T's open-loop MSE

Closed loop runs `PolicyController` (a chunk executor from groot_kit.chunking) on the
observations of `sim_observation`; the seed rule and the seed ranges are in `groot_kit.eval.seeds`.
"""
from groot_kit.sim.policy_io import flat_env_action, sim_observation

from .closed_loop import evaluate_closed_loop, success_table
from .controller import PolicyController
from .language import (chosen_cube, confusion_figure, follow_instruction, goal_probe, language_ablation,
                       scene_instructions, subtask_accuracy)
from .open_loop import (
           dim_names,
           evaluate_open_loop,
           open_loop_figure,
           per_dim_mse_figure,
           strip_arrays,
)
from .seeds import finetune_eval_seed, scene_seeds, wilson_interval
from .video import annotate_frames, write_video

__all__ = ["language_ablation", "goal_probe", "subtask_accuracy", "follow_instruction", "scene_instructions", "chosen_cube", "confusion_figure", "evaluate_closed_loop", "success_table", "PolicyController", "flat_env_action", "sim_observation",
           "dim_names", "evaluate_open_loop", "open_loop_figure", "per_dim_mse_figure", "strip_arrays",
           "finetune_eval_seed", "scene_seeds", "wilson_interval", "annotate_frames", "write_video"]
