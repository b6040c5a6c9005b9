"""New-embodiment fine-tuning building blocks: a fresh embodiment slot + real peft LoRA.

GR00T serves many robot bodies with one shared model; only the category-specific encoders and
decoders (`CategorySpecificLinear`, weight W[E, in, out], bias b[E, out]) differ per embodiment.
Adding a new robot therefore means:

1. pick a free slot e (`choose_slot`, in groot_kit.train.slots) and copy-initialise slice e of every category-specific layer
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

from groot_kit.train.slots import (LoraSetupError, SlotGradientMask, aligned_dims,  # noqa: F401  (L.* API)
                                   category_specific_layers, choose_slot, init_embodiment_slot,
                                   load_slot_state_dict, slot_state_dict, used_slots)

DIT_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
VLM_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
TARGET_CHOICES = ("dit", "vlm")

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
SLOT_WEIGHTS = "embodiment_slot.safetensors"
FINETUNE_META = "finetune.json"
PEFT_PREFIX = "base_model.model."


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
