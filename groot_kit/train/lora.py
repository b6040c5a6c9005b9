"""New-embodiment fine-tuning building blocks: a fresh embodiment slot + real peft LoRA.

GR00T serves many robot bodies with one shared model; only the category-specific encoders and
decoders (`CategorySpecificLinear`, weight W[E, in, out], bias b[E, out]) differ per embodiment.
Adding a new robot therefore means:

1. pick a free slot e (`choose_slot`) and copy-initialise slice e of every category-specific layer
   (`init_embodiment_slot`): from the MEAN of the slots the base model was trained on (default; the
   mean encoder maps states/actions into the region of feature space the DiT already knows), from
   one chosen slot (`init_from=<slot id>`, good when the new arm resembles a known one), or keep the
   random initialisation (`init_from="random"`, what "from scratch" means);
2. train that slice fully, with a gradient mask so the other E-1 slices (other robots) stay
   bit-identical (`SlotGradientMask`; AdamW's decoupled weight decay would still move them, so the
   fine-tuning recipe uses weight_decay=0);
3. add peft LoRA adapters to the DiT attention (`to_q`, `to_k`, `to_v`, `to_out.0`) and optionally
   to the language model's `q_proj/k_proj/v_proj/o_proj` (`apply_lora`); every base weight stays
   frozen. Unlike NVIDIA's LoRA script, the embodiment projectors stay trainable (step 2): freezing
   them is the known cause of poor LoRA results.

Saving (`save_adapters`): a folder in peft's own format (`adapter_config.json` +
`adapter_model.safetensors`, keys `base_model.model.<module>.lora_A.weight`, so
`peft.PeftModel.from_pretrained(GrootPolicy.from_pretrained(base), folder)` also reads it), plus
`embodiment_slot.safetensors` (the slot's W/b slices only) and `finetune.json` (slot id, base
checkpoint, processor with the new arm's normalisation stats). `load_adapters(base_policy, folder)`
rebuilds the fine-tuned policy; `merge_lora(policy)` folds the adapters into the base weights
(peft's merge + unload, per layer) and leaves a plain GrootPolicy that `save_pretrained` writes as
an ordinary checkpoint.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from groot_kit.model.embodiment_layers import CategorySpecificLinear

DIT_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
VLM_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
TARGET_CHOICES = ("dit", "vlm")

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
SLOT_WEIGHTS = "embodiment_slot.safetensors"
FINETUNE_META = "finetune.json"
PEFT_PREFIX = "base_model.model."


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
def target_regex(targets: str | Sequence[str] = "dit") -> str:
    """peft `target_modules` regex (full match on module names) for "dit", "vlm" or both.

    `targets` may be "dit", "vlm", "dit+vlm", a list of those, or explicit leaf names such as
    ["to_q", "to_v"] (matched inside the DiT) .
    """
    if isinstance(targets, str):
        targets = [t for t in re.split(r"[+, ]+", targets) if t]
    targets = list(targets)
    if not targets:
        raise LoraSetupError("targets is empty; use 'dit' (DiT attention), 'vlm' (language-model attention) or both")
    pats = []
    leaves = [t for t in targets if t not in TARGET_CHOICES]
    bad = [t for t in leaves if t not in DIT_TARGETS + VLM_TARGETS]
    if bad:
        raise LoraSetupError(f"targets {bad} unknown; use 'dit', 'vlm' or leaf names from {DIT_TARGETS + VLM_TARGETS}")
    dit_leaves = [t for t in leaves if t in DIT_TARGETS] + (list(DIT_TARGETS) if "dit" in targets else [])
    vlm_leaves = [t for t in leaves if t in VLM_TARGETS] + (list(VLM_TARGETS) if "vlm" in targets else [])
    if dit_leaves:
        pats.append(r"action_head\.model\..*\.(" + "|".join(re.escape(t) for t in dict.fromkeys(dit_leaves)) + ")")
    if vlm_leaves:
        pats.append(r"backbone\..*language_model\..*\.(" + "|".join(re.escape(t) for t in dict.fromkeys(vlm_leaves)) + ")")
    return "|".join(f"(?:{p})" for p in pats)


def lora_config(rank: int = 8, alpha: float = 16.0, targets: str | Sequence[str] = "dit", dropout: float = 0.0):
    from peft import LoraConfig
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        raise LoraSetupError(f"rank={rank!r}: LoRA rank must be a positive integer (e.g. 8)")
    if not alpha or float(alpha) <= 0:
        raise LoraSetupError(f"alpha={alpha!r}: LoRA alpha must be > 0 (the update is scaled by alpha/rank)")
    if not 0 <= float(dropout) < 1:
        raise LoraSetupError(f"dropout={dropout!r}: must be in [0, 1)")
    return LoraConfig(r=int(rank), lora_alpha=float(alpha), lora_dropout=float(dropout),
                      target_modules=target_regex(targets), bias="none")


def apply_lora(policy, rank: int = 8, alpha: float = 16.0, targets: str | Sequence[str] = "dit",
               dropout: float = 0.0, config=None):
    """Inject peft LoRA adapters (in place; the policy stays a GrootPolicy). Returns the LoraConfig.

    After this only the adapters require grad (peft freezes everything else).
    """
    from peft import inject_adapter_in_model
    cfg = config or lora_config(rank, alpha, targets, dropout)
    if has_lora(policy):
        raise LoraSetupError("this policy already carries LoRA adapters; merge_lora(policy) or start from the base")
    inject_adapter_in_model(cfg, policy, adapter_name="default")
    if not has_lora(policy):
        raise LoraSetupError(f"no module matched LoRA targets {targets!r}")
    return cfg


def lora_layers(policy) -> dict[str, nn.Module]:
    from peft.tuners.lora import LoraLayer
    return {n: m for n, m in policy.named_modules() if isinstance(m, LoraLayer)}


def has_lora(policy) -> bool:
    return bool(lora_layers(policy))


def lora_state_dict(policy) -> dict[str, torch.Tensor]:
    """Adapter tensors with peft's on-disk key names (adapter name removed, PeftModel prefix added)."""
    from peft import get_peft_model_state_dict
    sd = get_peft_model_state_dict(policy, adapter_name="default")
    return {PEFT_PREFIX + k: v.detach().contiguous().cpu() for k, v in sd.items()}


def mark_trainable(policy, slot: int) -> tuple[SlotGradientMask, dict[str, int]]:
    """Freeze everything, then unfreeze LoRA adapters and the embodiment layers (masked to `slot`).

    Returns the mask (keep it alive while training) and trainable counts.
    """
    for p in policy.parameters():
        p.requires_grad_(False)
    n_lora = 0
    for n, p in policy.named_parameters():
        if "lora_" in n:
            p.requires_grad_(True)
            n_lora += p.numel()
    mask = SlotGradientMask(policy, slot)
    n_slot = sum(l.W[slot].numel() + l.b[slot].numel() for l in category_specific_layers(policy).values())
    return mask, {"lora": n_lora, "embodiment_slot": n_slot,
                  "total_parameters": sum(p.numel() for p in policy.parameters())}


@torch.no_grad()
def merge_lora(policy):
    """Fold the adapters into the base weights and remove the peft wrappers (in place; returns the
    policy). Same operation as peft's `merge_and_unload`, done per layer because the adapters were
    injected into a plain module rather than wrapped in a PeftModel."""
    from peft.tuners.tuners_utils import BaseTunerLayer
    for name, module in list(policy.named_modules()):
        if isinstance(module, BaseTunerLayer):
            module.merge(safe_merge=True)
            parent_name, _, child = name.rpartition(".")
            parent = policy.get_submodule(parent_name) if parent_name else policy
            base = module.get_base_layer()
            if child.isdigit() and isinstance(parent, (nn.ModuleList, nn.Sequential)):
                parent[int(child)] = base
            else:
                setattr(parent, child, base)
    policy.__dict__.pop("peft_config", None)
    if hasattr(policy, "_hf_peft_config_loaded"):
        policy._hf_peft_config_loaded = False
    for p in policy.parameters():
        p.requires_grad_(False)
    return policy


# --------------------------------------------------------------------------- save / load
def _atomic_dir(path: Path):
    import shutil
    import tempfile
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))

    def commit():
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            path.rename(old)
        tmp.rename(path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return tmp, commit


def save_adapters(policy, path: str | os.PathLike, slot: int, lora_cfg=None, base_checkpoint: str | None = None,
                  embodiment: str | None = None, extra: dict | None = None) -> Path:
    """Write the adapters alone: peft files + the embodiment slot + finetune.json (atomic)."""
    import shutil
    from safetensors.torch import save_file
    path = Path(path)
    cfg = lora_cfg or getattr(policy, "peft_config", {}).get("default")
    if cfg is None or not has_lora(policy):
        raise LoraSetupError("save_adapters: the policy has no LoRA adapters (apply_lora first, and save before merging)")
    tmp, commit = _atomic_dir(path)
    try:
        cfg.save_pretrained(str(tmp))  # adapter_config.json in peft's format
        save_file(lora_state_dict(policy), str(tmp / ADAPTER_WEIGHTS), metadata={"format": "pt"})
        save_file(slot_state_dict(policy, slot), str(tmp / SLOT_WEIGHTS), metadata={"format": "pt", "slot": str(slot)})
        procs = policy.normalization.get("processors", {})
        meta = {"format": "groot_kit/lora-1", "slot_id": int(slot), "base_checkpoint": base_checkpoint,
                "embodiment": embodiment, "processor": procs.get(embodiment) if embodiment else None,
                "preset": policy.config.preset, **(extra or {})}
        (tmp / FINETUNE_META).write_text(json.dumps(meta, indent=2, default=str))
        commit()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def load_adapters(policy, path: str | os.PathLike):
    """Put saved adapters onto a base policy (in place; returns it, in eval mode): injects LoRA with
    the saved config, loads the adapter tensors, writes the embodiment slot, adds the processor."""
    from peft import LoraConfig, set_peft_model_state_dict
    from safetensors.torch import load_file
    path = Path(path)
    for f in (ADAPTER_CONFIG, ADAPTER_WEIGHTS, SLOT_WEIGHTS, FINETUNE_META):
        if not (path / f).is_file():
            raise LoraSetupError(f"adapter folder {path} lacks {f}; pass a folder written by save_adapters / finetune")
    meta = json.loads((path / FINETUNE_META).read_text())
    cfg = LoraConfig.from_pretrained(str(path))
    apply_lora(policy, config=cfg)
    state = load_file(str(path / ADAPTER_WEIGHTS))
    state = {k[len(PEFT_PREFIX):] if k.startswith(PEFT_PREFIX) else k: v for k, v in state.items()}
    res = set_peft_model_state_dict(policy, state, adapter_name="default")
    missing = [k for k in getattr(res, "missing_keys", []) if "lora_" in k]
    if missing:
        raise LoraSetupError(f"{path / ADAPTER_WEIGHTS} lacks {len(missing)} adapter tensors (e.g. {missing[0]}); "
                             "it was saved from a different model or is truncated")
    load_slot_state_dict(policy, load_file(str(path / SLOT_WEIGHTS)), int(meta["slot_id"]), str(path / SLOT_WEIGHTS))
    if meta.get("processor") and meta.get("embodiment"):
        policy.normalization.setdefault("processors", {})[meta["embodiment"]] = meta["processor"]
    for p in policy.parameters():
        p.requires_grad_(False)
    return policy.eval()


def load_finetuned(path: str | os.PathLike, base_checkpoint: str | os.PathLike | None = None):
    """Load a fine-tuned policy from an adapter folder (onto its recorded or the given base) or from a
    merged checkpoint folder (a plain GrootPolicy checkpoint)."""
    from groot_kit.model.policy import GrootPolicy
    path = Path(path)
    if (path / FINETUNE_META).is_file() and (path / ADAPTER_CONFIG).is_file():
        meta = json.loads((path / FINETUNE_META).read_text())
        base = base_checkpoint or meta.get("base_checkpoint")
        if base:
            policy = GrootPolicy.from_pretrained(base)
        else:
            # trained from a randomly initialised base: its weights travel in base/ beside the adapters
            if not (path / "base").is_dir():
                raise LoraSetupError(f"{path / FINETUNE_META} names no base checkpoint; pass base_checkpoint=")
            policy = GrootPolicy.from_pretrained(path / "base")
        return load_adapters(policy, path)
    return GrootPolicy.from_pretrained(path)


def trainable_summary(policy) -> dict[str, int]:
    return {"trainable": sum(p.numel() for p in policy.parameters() if p.requires_grad),
            "total": sum(p.numel() for p in policy.parameters())}
