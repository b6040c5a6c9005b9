"""Reinforcement learning on top of the flow-matching policy: residual PPO in MuJoCo.

Why residual PPO. GR00T's System 1 samples a 16-step action chunk by integrating a learned
velocity field; its log-likelihood is not available in closed form, so plain policy-gradient on
the flow policy itself is awkward and slow on a CPU. Instead a small Gaussian MLP (the *residual
actor*) adds a per-step correction to whatever a *base* controller commands (Silver et al. 2018,
"Residual Policy Learning"; Ankile et al. 2024 for chunked imitation policies):

    a_t = base_t + delta_t,   delta_t = clip(delta_{t-1} + scale * u_t),   u_t ~ N(mu(o_t), diag(sigma^2))

The correction ``delta`` integrates the actor's outputs (it is reset at each episode start and is
part of the actor's input), so the actor acts as a velocity command on top of the base and can
hold a persistent offset where the base policy aims slightly wrong.

* imitation + RL: ``base_t`` = the BC-trained GrootPolicy's chunk (System 2 once per chunk,
  System 1 Euler sampler, ``n_action_steps`` executed per chunk); ``mu``'s last layer starts at
  zero, so the initial policy *is* the imitation policy plus a little exploration noise.
* RL from scratch: the same algorithm with ``base_t`` = the arm's joint positions at the start of
  the episode (``HoldBase``), i.e. joint-velocity control with no prior.

The actor and critic see privileged low-dimensional features (joint positions, end-effector and
goal positions, the base's commanded offset): the RL part stays tiny and sample-efficient, while
the base policy keeps seeing camera image + instruction + state through System 2.

Files: task.py (task, demos, BC), ppo.py (PPO), residual.py (base controllers, residual policy,
evaluation, training); the three-arm experiment is groot_kit.recipes.imitation_vs_rl.

Pieces (all used by ``scripts/imitation_vs_rl.py`` and ``notebooks/06_imitation_vs_rl.ipynb``)::

    RLTaskConfig / RLTask        env wrapper with a dense reward (reach / pick_place)
    collect_demos, train_bc      expert demos -> flow-matching BC through groot_kit.train.Trainer
    FlowBase, HoldBase           base controllers
    ActorCritic, compute_gae, ppo_update, train_ppo      PPO from scratch (no external RL library)
    ResidualPolicy               base + actor; save_pretrained / from_pretrained
    evaluate                     closed-loop success on fixed evaluation seeds
    compare_imitation_vs_rl      the three-arm experiment (imitation / RL scratch / imitation + RL)
"""
from .ppo import ActorCritic, PPOConfig, compute_gae, ppo_update
from .residual import FlowBase, HoldBase, ResidualPolicy, evaluate, train_ppo
from .task import (
                   EVAL_SEED_OFFSET,
                   Demo,
                   DemoChunkDataset,
                   RLTask,
                   RLTaskConfig,
                   collect_demos,
                   make_processor,
                   stack_observations,
                   train_bc,
)

__all__ = ["ActorCritic", "PPOConfig", "compute_gae", "ppo_update", "FlowBase", "HoldBase", "ResidualPolicy",
           "evaluate", "train_ppo", "EVAL_SEED_OFFSET", "Demo", "DemoChunkDataset", "RLTask", "RLTaskConfig",
           "collect_demos", "make_processor", "stack_observations", "train_bc"]
