"""``check_*`` helpers: a notebook's exercise cell calls one with the learner's answer and gets a
plain verdict with the reason. Each check recomputes the truth with the kit's own code, so the
answer key cannot drift from what the notebook actually does.

    from groot_kit.exercises import check_mask_ones
    check_mask_ones(32)        # 00, exercise 3
"""
from __future__ import annotations

from typing import Mapping


def _verdict(ok: bool, right: str, wrong: str) -> bool:
    print(("Right. " + right) if ok else ("Not yet. " + wrong))
    return ok


def check_mask_ones(answer: int | None, action_dims: int = 2, preset: str = "tiny") -> bool:
    """00, exercise 3: entries of ONE sample's action mask that are 1 with `action_dims` real dims."""
    from groot_kit.model.policy import GrootPolicy, dummy_batch
    policy = GrootPolicy(preset)
    mask = dummy_batch(policy, batch_size=1, training=True, action_dims=action_dims)["action_mask"][0]
    truth, (H, D) = int(mask.sum()), tuple(mask.shape)
    if answer is None:
        return _verdict(False, "", f"Put your count in the call (the mask is [H={H}, Dmax_a={D}]).")
    return _verdict(int(answer) == truth, f"H x dims = {H} x {action_dims} = {truth}; the other "
                    f"{H * D - truth} padded entries are 0 and do not count in the loss.",
                    f"The mask is [H={H}, Dmax_a={D}]: which of its columns are real action dims?")


def check_tier_shares(shares: Mapping[str, float], weights: Mapping[str, float], tol: float = 0.1) -> bool:
    """01, exercise 4: the sampled tier shares follow the tier weights (each within `tol`)."""
    total = sum(weights.values())
    target = {k: v / total for k, v in weights.items()}
    off = {k: round(shares.get(k, 0.0) - t, 3) for k, t in target.items() if abs(shares.get(k, 0.0) - t) > tol}
    return _verdict(not off, f"the sampler follows the weights {target}, whatever each tier's size.",
                    f"these tiers are off their target share: {off}. Did you rerun the sampling cell?")
