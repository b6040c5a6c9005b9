"""Embodiment slots: which slots a policy uses, a free one for a new robot, initialising it from a
trained robot (aligned by joint role), gradient masks that train one slot only, and its weights alone."""
from __future__ import annotations

import torch
from torch import nn

from groot_kit.model.embodiment_layers import CategorySpecificLinear


class LoraSetupError(ValueError):
    """Bad LoRA / slot settings; the message names the argument and the fix."""


# --------------------------------------------------------------------------- embodiment slots
def category_specific_layers(policy: nn.Module) -> dict[str, CategorySpecificLinear]:
    """name -> every CategorySpecificLinear (state encoder, action encoder, action decoder)."""
    return {n: m for n, m in policy.named_modules() if isinstance(m, CategorySpecificLinear)}


def used_slots(policy) -> list[int]:
    """Slots the policy was trained on, from the processors saved in it (empty when unknown)."""
    procs = getattr(policy, "normalization", {}).get("processors", {})
    return sorted({int(p["embodiment_id"]) for p in procs.values() if "embodiment_id" in p})


def choose_slot(policy, preferred: int | None = None) -> int:
    """A slot for a new embodiment: `preferred` if given (validated), else the highest slot the base
    policy has not used (the built-in embodiments sit at 1, 2, 24, 31, so we search 30 down to 3)."""
    E = policy.config.action_head.max_num_embodiments
    taken = set(used_slots(policy))
    if preferred is not None:
        if not 0 <= int(preferred) < E:
            raise LoraSetupError(f"slot_id={preferred} is outside 0..{E - 1} (action_head.max_num_embodiments); "
                                 "pick a free slot or leave slot_id=None")
        if int(preferred) in taken:
            raise LoraSetupError(f"slot_id={preferred} is already used by this policy ({_slot_owner(policy, preferred)}); "
                                 f"training it would overwrite that robot. Pick another, e.g. {choose_slot(policy)}")
        return int(preferred)
    for s in list(range(E - 2, 2, -1)) + [E - 1, 0, 1, 2]:
        if s not in taken:
            return s
    raise LoraSetupError(f"all {E} embodiment slots of this policy are used; there is no free slot")


def _slot_owner(policy, slot: int) -> str:
    for name, p in policy.normalization.get("processors", {}).items():
        if int(p.get("embodiment_id", -1)) == int(slot):
            return name
    return "?"


def _is_gripper(key: str) -> bool:
    return "grip" in key or "hand" in key


def aligned_dims(src_mod, new_mod, group: str) -> list[tuple[int, int]]:
    """(new index, source index) pairs for the `group` ("state"/"action") dims of two robots: keys of
    the same name pair up, then gripper/hand keys with gripper/hand keys and arm keys with arm keys in
    order; inside a pair of different lengths the joints map proportionally along the chain (first to
    first, last to last). New dims with no partner get none."""
    src, new = getattr(src_mod, group), getattr(new_mod, group)
    pairs, free = {}, [k for k in src]
    for k in new:
        if k in free:
            pairs[k] = k
            free.remove(k)
    for k in new:
        if k not in pairs:
            match = next((f for f in free if _is_gripper(f) == _is_gripper(k)), None)
            if match is not None:
                pairs[k] = match
                free.remove(match)
    out = []
    for k, f in pairs.items():
        n, m = new[k].dim, src[f].dim
        for i in range(n):
            j = i if n == m else (round(i * (m - 1) / (n - 1)) if n > 1 else 0)
            out.append((new[k].start + i, src[f].start + min(j, m - 1)))
    return out


# the category-specific layers whose one axis is the robot's state / action dims (NVIDIA's names)
_DIM_AXES = {"state_encoder.layer1": ("state", "in"), "action_encoder.W1": ("action", "in"),
             "action_decoder.layer2": ("action", "out")}


@torch.no_grad()
def _align_slot(policy, slot: int, src: int, src_mod, new_mod) -> None:
    """Re-map the dims axis of the copied slice so that each of the new robot's joints starts from its
    counterpart's weights (gripper from gripper), instead of from whatever sat at the same index."""
    for name, layer in category_specific_layers(policy).items():
        hit = next((v for k, v in _DIM_AXES.items() if name.endswith(k)), None)
        if hit is None:
            continue
        group, axis = hit
        size = layer.W.shape[1] if axis == "in" else layer.W.shape[2]
        pairs = [(a, b) for a, b in aligned_dims(src_mod, new_mod, group) if a < size and b < size]
        ni = torch.tensor([a for a, _ in pairs], dtype=torch.long)   # (too many dims: refused later, with the fix)
        si = torch.tensor([b for _, b in pairs], dtype=torch.long)
        if axis == "in":
            layer.W[slot].zero_()
            layer.W[slot][ni] = layer.W[src][si]
        else:
            layer.W[slot].zero_()
            layer.b[slot].zero_()
            layer.W[slot][:, ni] = layer.W[src][:, si]
            layer.b[slot][ni] = layer.b[src][si]


@torch.no_grad()
def init_embodiment_slot(policy, slot: int, init_from: int | str = "mean", new_dims: tuple[int, int] | None = None,
                         new_modality=None) -> list[int]:
    """Copy-initialise slice `slot` of every category-specific layer. Returns the source slots.

    init_from: "mean" -> mean of the slots in `used_slots(policy)` (all other slots if none is
    recorded); "nearest" -> the trained slot whose robot has the same (state_dim, action_dim) as
    `new_dims` (closest dims otherwise; "mean" when nothing is known); an embodiment name the policy
    knows (e.g. "so100") or an int -> that slot; "random" -> leave the existing initialisation.
    new_modality: the new robot's ModalityConfig; with a single source robot whose processor the
    policy carries, the state/action axes are then aligned by joint role (`aligned_dims`), so e.g. a
    6-joint arm's gripper starts from so100's gripper, not from so100's (unused) seventh dim.
    """
    E = policy.config.action_head.max_num_embodiments
    if init_from == "random":
        return []
    procs = getattr(policy, "normalization", {}).get("processors", {})
    if new_dims is None and new_modality is not None:
        new_dims = (new_modality.state_dim, new_modality.action_dim)
    if init_from == "nearest":
        known = []
        if new_dims is not None:
            for name, p in procs.items():
                if "embodiment_id" in p and int(p["embodiment_id"]) != slot:
                    m = policy.get_processor(name).modality
                    known.append((abs(m.state_dim - new_dims[0]) + abs(m.action_dim - new_dims[1]), int(p["embodiment_id"])))
        init_from = min(known)[1] if known else "mean"
    if isinstance(init_from, str) and init_from in procs:
        init_from = int(procs[init_from]["embodiment_id"])
    if init_from == "mean":
        src = [s for s in used_slots(policy) if s != slot] or [s for s in range(E) if s != slot]
    else:
        try:
            src = [int(init_from)]
        except (TypeError, ValueError):
            raise LoraSetupError(f"init_from={init_from!r}: use 'mean', 'nearest', 'random', an embodiment the "
                                 f"policy knows ({sorted(procs)}) or a slot id") from None
        if not 0 <= src[0] < E:
            raise LoraSetupError(f"init_from={init_from}: slot outside 0..{E - 1}")
    idx = torch.tensor(src)
    for layer in category_specific_layers(policy).values():
        layer.W[slot] = layer.W[idx].mean(0)
        layer.b[slot] = layer.b[idx].mean(0)
    owner = next((n for n, p in procs.items() if len(src) == 1 and int(p.get("embodiment_id", -1)) == src[0]), None)
    if new_modality is not None and owner is not None:
        _align_slot(policy, slot, src[0], policy.get_processor(owner).modality, new_modality)
    return src


class SlotGradientMask:
    """Gradient hooks so only slice `slot` of every W[E, in, out] / b[E, out] learns.

    The other slices get an exactly-zero gradient; with Adam(W) state starting at zero their update
    is exactly zero (keep weight decay 0: AdamW's decoupled decay moves every parameter that has a
    gradient). `remove()` takes the hooks off.
    """

    def __init__(self, policy, slot: int):
        self.slot = int(slot)
        self.handles = []
        for layer in category_specific_layers(policy).values():
            for p in (layer.W, layer.b):
                p.requires_grad_(True)
                mask = torch.zeros(p.shape[0], *([1] * (p.dim() - 1)), dtype=p.dtype, device=p.device)
                mask[self.slot] = 1
                self.handles.append(p.register_hook(lambda g, m=mask: g * m.to(g.dtype)))

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()


def slot_state_dict(policy, slot: int) -> dict[str, torch.Tensor]:
    """`<layer>.W` [in, out] and `<layer>.b` [out] of one slot (what a new embodiment adds)."""
    out = {}
    for name, layer in category_specific_layers(policy).items():
        out[f"{name}.W"] = layer.W[slot].detach().contiguous().cpu().clone()
        out[f"{name}.b"] = layer.b[slot].detach().contiguous().cpu().clone()
    return out


@torch.no_grad()
def load_slot_state_dict(policy, state: dict[str, torch.Tensor], slot: int, source: str = "slot weights") -> None:
    layers = category_specific_layers(policy)
    want = {f"{n}.{k}" for n in layers for k in ("W", "b")}
    if set(state) != want:
        miss, extra = sorted(want - set(state)), sorted(set(state) - want)
        raise LoraSetupError(f"{source} does not match this policy's embodiment layers (missing {miss[:2]}, "
                             f"unexpected {extra[:2]}); load it onto the base checkpoint it was trained from")
    for name, layer in layers.items():
        for k in ("W", "b"):
            p, v = getattr(layer, k), state[f"{name}.{k}"]
            if tuple(p.shape[1:]) != tuple(v.shape):
                raise LoraSetupError(f"{source}: {name}.{k} has shape {list(v.shape)} but the policy's slice is "
                                     f"{list(p.shape[1:])}; use the base checkpoint these adapters were trained on")
            p[slot] = v.to(p.dtype).to(p.device)


# --------------------------------------------------------------------------- LoRA
