"""System 2 / System 1 of a GrootPolicy as the two callables the dual-rate runtime drives."""
from __future__ import annotations

import numpy as np
import torch


class GrootSystems:
    """System 2 / System 1 callables for a GrootPolicy.

    Observations are either raw GR00T-style dicts (with a `processor`, a GrootProcessor) or
    model batches (pixel_values, instruction, state, embodiment_id). system2's features carry what
    System 1's chunks share until the next System 2 update (see `system2`). system1 returns a
    normalised chunk [H, Dmax_a] (numpy); `decode(action)` unnormalises one step with the processor.
    """

    def __init__(self, policy, processor=None, num_steps: int | None = None, embodiment_id: int | None = None,
                 rtc_method: str = "replace"):
        if rtc_method not in ("replace", "guided"):
            raise ValueError(f"rtc_method must be 'replace' (soft replacement) or 'guided' (Black et al.'s "
                             f"guidance), got {rtc_method!r}")
        self.policy, self.processor, self.num_steps = policy.eval(), processor, num_steps
        self.embodiment_id, self.rtc_method = embodiment_id, rtc_method

    def _batch(self, obs: dict) -> dict:
        return self.processor(obs) if self.processor is not None else obs

    def _state(self, obs: dict) -> tuple[torch.Tensor, torch.Tensor]:
        if self.processor is None:
            return obs["state"], obs["embodiment_id"]
        state, _, B = self.processor.encode_state(obs)
        if state is None:
            state = torch.zeros(B or 1, self.processor.max_state_dim)
        return state, torch.full((state.shape[0],), self.processor.embodiment_id, dtype=torch.long)

    @torch.no_grad()
    def system2(self, obs: dict):
        """-> features (vl, vl_mask) for `system1`. On the planned path (the default) vl is already
        the action head's VLContext (N1.5's VL self-attention, every cross-attention block's keys and
        values): they depend on System 2's tokens only, so they are computed here, at System 2's slow
        rate, and every chunk until the next update reuses them. With the head's exact_reference on,
        vl stays the tokens [B, T, c]."""
        batch = self._batch(obs)
        self.policy.validate_batch(batch)
        vl, vl_mask = self.policy.encode_vl(batch)
        head = self.policy.action_head
        if not head.exact_reference:
            vl = head.prepare_vl(vl, vl_mask)
        return vl, vl_mask

    @torch.no_grad()
    def system1(self, features, obs: dict, prefix: np.ndarray | None = None, prefix_len: int = 0,
                generator: torch.Generator | None = None) -> np.ndarray:
        """A normalised chunk [H, Dmax_a]. With `prefix` ([P, Dmax_a], the executing chunk's actions
        planned from this observation's step), real-time chunking inpaints them (groot_kit.model.rtc;
        `rtc_method` "replace" or "guided"). `generator`: the flow noise's (None: torch's global one)."""
        vl, vl_mask = features
        state, eid = self._state(obs)
        if self.embodiment_id is not None:
            eid = torch.full_like(eid, self.embodiment_id)
        dev = self.policy.device
        head = self.policy.action_head
        if prefix is None:
            chunk = head.sample(vl, state.to(dev), eid.to(dev), num_steps=self.num_steps, vl_mask=vl_mask,
                                generator=generator)
        else:
            from groot_kit.model.rtc import inpaint_sample, rtc_sample
            pre = torch.as_tensor(np.asarray(prefix, np.float32)[None], device=dev)
            fn = inpaint_sample if self.rtc_method == "replace" else rtc_sample
            chunk = fn(head, vl, state.to(dev), eid.to(dev), pre, int(prefix_len), num_steps=self.num_steps,
                       vl_mask=vl_mask, action_dims=self._action_dims(), generator=generator)
        out = chunk[0].float().cpu().numpy()
        if self._action_dims() is not None:
            out[:, self._action_dims():] = 0.0      # padding: decoded by no one; zeros keep chunk jumps honest
        return out

    def _action_dims(self) -> int | None:
        return self.processor.modality.action_dim if self.processor is not None else None

    def decode(self, action: np.ndarray) -> dict[str, np.ndarray]:
        return self.processor.decode_action(torch.as_tensor(action)[None, None])
