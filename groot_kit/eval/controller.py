"""Running a GrootPolicy in the simulator: one observation converter, one controller.

    ctl = PolicyController(policy, processor, env, mode="replan", replan_every=8, seed=s)
    action = ctl.act(obs)            # the env's flat action vector for this step

`groot_kit.sim.policy_io.sim_observation` turns the env's observation dict into GR00T's raw
observation (what a real robot sends to `groot-kit serve`). `PolicyController` samples a chunk of H actions when the chunk executor
(`groot_kit.chunking.ChunkExecutor`) asks for one and returns one action per step:
"whole" (every action of a chunk), "replan" (the first `replan_every`, then a new chunk) or
"ensemble" (temporal ensembling of the live chunks). When the policy was co-trained for sub-tasks,
System 2 names the sub-task at every query (`.subtask`).

Inference delay: with `delay_ticks=d > 0` every chunk arrives d control steps after the observation
it was sampled from, as on a robot whose model takes d / control_hz seconds. Meanwhile the robot
executes the previous chunk; the new one is requested d + 1 steps before it is due and its first d
actions (for steps already past) are never executed. This is the dual-rate runtime's prefetch
schedule (`groot_kit.chunking.ChunkPrefetcher`) on simulated time, so results do not depend on the
machine's speed. Mode "rtc" (real-time chunking) then inpaints the actions that run during the delay
into the new chunk. The delayed path keeps chunks in the model's normalised action space (where RTC
inpaints, as the runtime does) and decodes one step at a time.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from groot_kit.chunking import ChunkExecutor
from groot_kit.sim.policy_io import check_keys, flat_env_action, sim_observation


class PolicyController:
    """A GrootPolicy + its GrootProcessor as a sim controller (``.act(obs)``, ``.subtask``, ``.reset()``).

    mode / replan_every / ensemble_decay: the chunk executor's (default: replan every 8 of H=16).
    seed: the flow-noise generator's seed (the seed rule in groot_kit.eval.seeds uses the scene seed).
    instruction: a string, or ``fn(env) -> str`` called once per episode, that replaces the env's
    instruction at every query (language ablations); `.given_instruction` is the one in use.
    on_episode_start: ``fn(env)`` before the first query of each episode, e.g. to re-point the
    scene's target (``env.set_target``) so that success is measured against another instruction.
    """

    def __init__(self, policy, processor, env, mode: str = "replan", replan_every: int | None = 8, seed: int = 0,
                 predict_subtasks: bool | None = None, num_steps: int | None = None, ensemble_decay: float = 0.1,
                 instruction: str | Callable[[Any], str] | None = None,
                 on_episode_start: Callable[[Any], None] | None = None, delay_ticks: int = 0,
                 rtc_method: str = "replace"):
        self.policy, self.processor = policy, processor
        self.env = env.unwrapped if hasattr(env, "unwrapped") else env
        H = policy.config.action_head.action_horizon
        if not isinstance(delay_ticks, int) or not 0 <= delay_ticks < H - 1:
            raise ValueError(f"delay_ticks={delay_ticks!r} must be an integer in 0..{H - 2} (control steps a chunk "
                             "takes to arrive; the chunk must still cover steps after it)")
        if mode == "rtc" and delay_ticks < 1:
            raise ValueError("mode 'rtc' inpaints the actions that run while the next chunk is computed: give "
                             "delay_ticks >= 1 (the simulated inference delay in control steps)")
        if mode != "whole" and replan_every is not None and not 1 <= replan_every <= H:
            raise ValueError(f"replan_every={replan_every} must be in 1..{H} (the action horizon)")
        sp = self.env.spec_e
        if sp.action_dim != processor.modality.action_dim:
            raise ValueError(f"policy processor '{processor.embodiment}' has {processor.modality.action_dim} action "
                             f"dims but the env's {sp.name} has {sp.action_dim}; use the matching embodiment")
        check_keys(sp, processor.modality, "state")
        check_keys(sp, processor.modality, "action")
        self.executor = ChunkExecutor(mode, H, None if mode == "whole" else replan_every, ensemble_decay)
        self.replan_every = self.executor.replan_every
        self.delay_ticks = delay_ticks
        if delay_ticks:
            from groot_kit.runtime.systems import GrootSystems
            self.systems = GrootSystems(policy, processor, num_steps, rtc_method=rtc_method)
        self.num_steps, self.instruction, self.on_episode_start = num_steps, instruction, on_episode_start
        self.predict_subtasks = (policy.config.subtask_loss_weight > 0) if predict_subtasks is None else predict_subtasks
        self.gen = torch.Generator(device=policy.device).manual_seed(seed)
        self.queries = 0
        self.reset()

    def reset(self) -> None:
        """Forget the current chunks (a new episode)."""
        from groot_kit.chunking import ChunkPrefetcher
        self.executor.reset()
        self.prefetch = ChunkPrefetcher(self.executor)
        self._in_flight = None      # (request, normalised chunk, arrival step) while a chunk is "computing"
        self.subtask = ""
        self.given_instruction: str | None = None
        self.query_subtasks: list[tuple[int, str]] = []
        self._last_t: int | None = None

    @torch.no_grad()
    def predict_chunk(self, obs: dict) -> tuple[np.ndarray, dict]:
        """One query: env observation -> env actions [H, action_dim] (unnormalised) and the model batch."""
        if self.instruction is not None and self.given_instruction is None:
            ins = self.instruction
            self.given_instruction = ins(self.env) if callable(ins) else str(ins)
        raw = sim_observation(self.env, obs, self.processor.modality, self.given_instruction)
        batch = self.processor(raw)
        chunk = self.policy.predict_action_chunk(batch, num_steps=self.num_steps, generator=self.gen)
        acts = flat_env_action(self.processor.decode_action(chunk), self.env.spec_e, self.processor.modality)
        return acts[0], batch

    @torch.no_grad()
    def act(self, obs: dict) -> np.ndarray:
        if self.env.t == 0 and self._last_t is not None and self._last_t > 0:
            self.reset()  # a new episode started: drop the previous episode's chunks
        if self._last_t is None and self.on_episode_start is not None:
            self.on_episode_start(self.env)
        if self.delay_ticks:
            return self._act_delayed(obs)
        if self.executor.needs_chunk():
            chunk, batch = self.predict_chunk(obs)
            self.executor.add_chunk(chunk)
            self.queries += 1
            if self.predict_subtasks:
                self.subtask = self.policy.predict_subtask(batch)[0] or "(none)"
                self.query_subtasks.append((int(self.env.t), self.subtask))
        self._last_t = int(self.env.t)
        return self.executor.next_action()

    def _act_delayed(self, obs: dict) -> np.ndarray:
        """One step of the prefetch schedule with chunks arriving `delay_ticks` steps late (module doc)."""
        k, pf = self.executor.step_idx, self.prefetch
        if self._in_flight is not None and k >= self._in_flight[2]:
            pf.accept(k, *self._in_flight[:2])
            self._in_flight = None
        if self._last_t is None:   # the episode's first chunk: the robot waits for it
            pf.accept(k, pf.request(k, 1), self._sample_normalised(obs))
        pf.check_late(k)
        a = self.executor.next_action()                       # normalised [Dmax_a]
        req = pf.request(k, self.delay_ticks + 1)
        if req is not None:
            self._in_flight = (req, self._sample_normalised(obs, req.prefix, req.prefix_len), k + self.delay_ticks)
        self._last_t = int(self.env.t)
        step = self.processor.decode_action(torch.as_tensor(a)[None, None])
        return flat_env_action(step, self.env.spec_e, self.processor.modality)[0, 0]

    def _sample_normalised(self, obs: dict, prefix=None, prefix_len: int = 0) -> np.ndarray:
        """A chunk [H, Dmax_a] in the model's normalised space from this observation (RTC with a prefix)."""
        if self.instruction is not None and self.given_instruction is None:
            ins = self.instruction
            self.given_instruction = ins(self.env) if callable(ins) else str(ins)
        raw = sim_observation(self.env, obs, self.processor.modality, self.given_instruction)
        chunk = self.systems.system1(self.systems.system2(raw), raw, prefix, prefix_len, generator=self.gen)
        self.queries += 1
        if self.predict_subtasks:
            self.subtask = self.policy.predict_subtask(self.processor(raw))[0] or "(none)"
            self.query_subtasks.append((int(self.env.t), self.subtask))
        return chunk
