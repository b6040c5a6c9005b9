"""GrootPolicy: System 2 (VL backbone) + System 1 (flow-matching action head), LeRobot-style API.

The model-level batch (already normalised and padded; `groot_kit.data` builds it):
    pixel_values  float32 [B, V, 3, S, S] in [0, 1]     S = cfg.vlm.vision.image_size
    instruction   list[str] of length B                 (or input_ids + attention_mask [B, T])
    state         float32 [B, Dmax_s]                   normalised, zero-padded
    embodiment_id long    [B]                           slot in 0..E-1
    action        float32 [B, H, Dmax_a]                training only
    action_mask   bool    [B, H, Dmax_a]                training only (False on padded dims)

    forward(batch)              -> (loss, info)
    predict_action_chunk(batch) -> [B, H, Dmax_a]        (System 2 once, then K Euler steps)
    select_action(batch)        -> [B, Dmax_a]           one action per call, refilled every chunk
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from groot_kit.config import GrootConfig, get_preset
from groot_kit.model.action_head import FlowMatchingActionHead
from groot_kit.model.tokenizer import build_tokenizer
from groot_kit.model.vlm import VLBackbone

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
NORMALIZATION_NAME = "normalization.json"
TOKENIZER_DIR = "tokenizer"
FORMAT_TAG = "groot_kit/1"


class InputError(ValueError):
    """A batch or observation is malformed; the message names the field and the fix."""


class CheckpointError(ValueError):
    """A checkpoint folder is missing, truncated, foreign or does not match its config."""


class GrootPolicy(nn.Module):
    def __init__(self, config: GrootConfig | str, tokenizer=None, normalization: dict | None = None):
        super().__init__()
        self.config = get_preset(config) if isinstance(config, str) else config
        cfg = self.config
        self.tokenizer = tokenizer if tokenizer is not None else build_tokenizer(min(512, cfg.vlm.lm.vocab_size))
        self.image_token_id = self.tokenizer.convert_tokens_to_ids("<image>")
        if len(self.tokenizer) > cfg.vlm.lm.vocab_size:
            raise InputError(f"tokenizer has {len(self.tokenizer)} tokens but vlm.lm.vocab_size is "
                             f"{cfg.vlm.lm.vocab_size}; raise vocab_size or use a smaller tokenizer")
        self.backbone = VLBackbone(cfg.vlm, cfg.variant, self.image_token_id)
        self.action_head = FlowMatchingActionHead(cfg.action_head)
        if cfg.goal_loss_weight > 0:
            self.add_goal_head(cfg.goal_loss_weight)
        # Per-embodiment normalisation stats travel with the checkpoint (JSON-serialisable dict).
        self.normalization: dict[str, Any] = normalization or {}
        self._executor = None          # chunk executor behind select_action

    def add_goal_head(self, weight: float) -> None:
        """Train System 2 to say where the episode ends: goal_head(last prompt token) -> goal state.

        A kit addition (not in GR00T): with several objects on the table the flow loss alone gives a
        weak signal for binding the instruction's words to the right object; this loss asks System 2's
        output for the named object's consequence directly. Only training uses it."""
        if weight <= 0:
            raise InputError(f"goal loss weight {weight}: give a positive number (0 means no goal head)")
        self.config.goal_loss_weight = float(weight)
        if not hasattr(self, "goal_head"):
            self.goal_head = nn.Linear(self.config.vlm.output_dim, self.config.action_head.max_state_dim).to(self.device)

    # ------------------------------------------------------------------ shapes & validation
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def num_parameters(self) -> dict[str, int]:
        """Parameter counts per part (works on the meta device)."""
        def count(m: nn.Module) -> int:
            return sum(p.numel() for p in m.parameters())
        eagle = self.backbone.eagle
        ah = self.action_head
        parts = {
            "vision_tower": count(eagle.vision_model),
            "connector": count(eagle.mlp1),
            "language_model": count(eagle.language_model),
            "backbone_projection": count(self.backbone.linear),
            "dit": count(ah.model),
            "state_encoder": count(ah.state_encoder),
            "action_encoder": count(ah.action_encoder),
            "action_decoder": count(ah.action_decoder),
            "position_and_future_tokens": count(ah.position_embedding) + (count(ah.future_tokens) if hasattr(ah, "future_tokens") else 0),
            "vl_self_attention": (count(ah.vlln) + count(ah.vl_self_attention)) if hasattr(ah, "vl_self_attention") else 0,
        }
        parts["system2_vlm"] = parts["vision_tower"] + parts["connector"] + parts["language_model"]
        parts["backbone"] = count(self.backbone)
        parts["system1_action_head"] = count(ah)
        parts["total"] = count(self)
        return parts

    def validate_batch(self, batch: dict, training: bool = False) -> None:
        """Raise InputError naming the field and the fix for any malformed entry."""
        cfg = self.config
        ah, v = cfg.action_head, cfg.vlm.vision
        need = ["pixel_values", "state", "embodiment_id"] + (["action", "action_mask"] if training else [])
        missing = [k for k in need if k not in batch]
        if "instruction" not in batch and "input_ids" not in batch:
            missing.append("instruction (or input_ids + attention_mask)")
        if missing:
            raise InputError(f"batch is missing {missing}; build batches with groot_kit.data (or see the "
                             "GrootPolicy docstring for the expected keys)")
        state = batch["state"]
        if not torch.is_tensor(state) or state.dim() != 2:
            raise InputError(f"batch['state'] must be a float tensor [B, {ah.max_state_dim}], got "
                             f"{_shape(state)}; stack one state vector per sample")
        B = state.shape[0]
        if state.shape[1] > ah.max_state_dim:
            raise InputError(f"batch['state'] has {state.shape[1]} dims, more than the padded maximum "
                             f"{ah.max_state_dim} (action_head.max_state_dim); drop state keys or raise the maximum")
        if state.shape[1] != ah.max_state_dim:
            raise InputError(f"batch['state'] has {state.shape[1]} dims; zero-pad it to {ah.max_state_dim} "
                             "(groot_kit.data.GrootProcessor does this)")
        pv = batch["pixel_values"]
        want = (B, None, 3, v.image_size, v.image_size)
        if not torch.is_tensor(pv) or pv.dim() != 5 or pv.shape[0] != B or tuple(pv.shape[2:]) != want[2:]:
            raise InputError(f"batch['pixel_values'] must be float [B={B}, V, 3, {v.image_size}, {v.image_size}] "
                             f"in [0, 1], got {_shape(pv)}; resize images to vlm.vision.image_size")
        if pv.shape[1] != cfg.vlm.num_views:
            raise InputError(f"batch['pixel_values'] has {pv.shape[1]} camera views but vlm.num_views is "
                             f"{cfg.vlm.num_views}; pass that many views or change the config")
        eid = batch["embodiment_id"]
        if not torch.is_tensor(eid) or eid.shape != (B,) or eid.dtype not in (torch.int64, torch.int32):
            raise InputError(f"batch['embodiment_id'] must be a long tensor [B={B}], got {_shape(eid)}")
        out_of_range = (eid < 0) | (eid >= ah.max_num_embodiments)
        if out_of_range.any():
            raise InputError(f"batch['embodiment_id'] has ids {sorted(set(eid[out_of_range].tolist()))} outside 0.."
                             f"{ah.max_num_embodiments - 1} (action_head.max_num_embodiments); use the slot "
                             "from the embodiment's embodiment.yaml")
        if "instruction" in batch and (not isinstance(batch["instruction"], (list, tuple)) or len(batch["instruction"]) != B):
            raise InputError(f"batch['instruction'] must be a list of {B} strings")
        for key in ("state", "pixel_values") + (("action",) if training else ()):
            if not torch.isfinite(batch[key]).all():
                raise InputError(f"batch['{key}'] contains NaN or inf; clean the data (groot_kit.data "
                                 "rejects NaNs at load time) or check the normalisation stats")
        if training:
            a, m = batch["action"], batch["action_mask"]
            want_a = (B, ah.action_horizon, ah.max_action_dim)
            if a.dim() == 3 and a.shape[0] == B and a.shape[1] == ah.action_horizon and a.shape[2] > ah.max_action_dim:
                raise InputError(f"batch['action'] has {a.shape[2]} dims, more than the padded maximum "
                                 f"{ah.max_action_dim} (action_head.max_action_dim); drop action keys or raise the maximum")
            if tuple(a.shape) != want_a:
                raise InputError(f"batch['action'] must be [B, H, Dmax_a] = {list(want_a)}, got {_shape(a)}; "
                                 "window actions t..t+H-1 and zero-pad to Dmax_a")
            if tuple(m.shape) != want_a:
                raise InputError(f"batch['action_mask'] must match batch['action'] {list(want_a)}, got {_shape(m)}")

    # ------------------------------------------------------------------ System 2
    def tokenize(self, instructions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """The prompt, one fixed-length row per instruction (T = 2 + V*n + max_text_tokens).

        image_first (GR00T): <bos> <image>*(V*n) text <eos> <pad>...
        text_first:          <bos> text <pad>... <image>*(V*n) <eos>   (image tokens at fixed
                             positions; in the causal LM they can attend to the instruction)
        -> input_ids [B, T], attention_mask [B, T] (0 on padding)
        """
        return build_prompt(self.tokenizer, instructions, self.image_token_id,
                            self.config.vlm.num_views * self.config.vlm.image_tokens_per_view,
                            self.config.vlm.max_text_tokens, self.config.vlm.prompt_order, self.device)

    def encode_vl(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """System 2: -> vl_tokens [B, T, c], vl_mask [B, T] (c = vlm.output_dim)."""
        input_ids, attention_mask = self._prompt(batch)
        return self.backbone(batch["pixel_values"].to(self.device), input_ids, attention_mask)

    def _prompt(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        if "input_ids" in batch:
            return batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)
        return self.tokenize(list(batch["instruction"]))

    def tokenize_subtasks(self, subtasks: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Sub-task segment appended after the prompt: <bos> text <eos> <pad>... -> ids, mask [B, S+2]"""
        tok, S = self.tokenizer, self.config.vlm.max_subtask_tokens
        ids, mask = [], []
        for text in subtasks:
            row = [tok.bos_token_id] + tok(text, add_special_tokens=False).input_ids[:S] + [tok.eos_token_id]
            pad = S + 2 - len(row)
            ids.append(row + [tok.pad_token_id] * pad)
            mask.append([1] * len(row) + [0] * pad)
        return torch.tensor(ids, device=self.device), torch.tensor(mask, device=self.device)

    # ------------------------------------------------------------------ training
    def forward(self, batch: dict, noise: torch.Tensor | None = None,
                t: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        """Masked flow-matching loss (+ sub-task text loss when co-training); info holds floats.

        Co-training appends the sub-task segment after the prompt in the same LM pass. The LM is
        causal, so the prompt's features (all System 1 sees) do not depend on the appended text and
        are identical at inference, where no sub-task is given.
        """
        self.validate_batch(batch, training=True)
        action_mask = batch["action_mask"]
        if "action_is_pad" in batch:  # steps past the episode end carry no target
            action_mask = action_mask & ~batch["action_is_pad"].bool()[..., None]
        ids, mask = self._prompt(batch)
        cotrain = self.config.subtask_loss_weight > 0 and batch.get("subtask") is not None
        if cotrain:
            sub_ids, sub_mask = self.tokenize_subtasks(list(batch["subtask"]))
            ids, mask = torch.cat([ids, sub_ids], 1), torch.cat([mask, sub_mask], 1)
        hidden = self.backbone.lm_hidden(batch["pixel_values"].to(self.device), ids, mask)
        P = ids.shape[1] - (sub_ids.shape[1] if cotrain else 0)
        vl, vl_mask = self.backbone.linear(hidden[:, :P]), mask[:, :P].bool()
        loss, info = self.action_head(vl, batch["state"], batch["embodiment_id"], batch["action"],
                                      action_mask, vl_mask=vl_mask, noise=noise, t=t)
        info = {k: float(v) for k, v in info.items()}
        if self.config.goal_loss_weight > 0 and batch.get("goal_state") is not None:
            goal_loss = self.goal_loss(vl, vl_mask, batch["goal_state"].to(vl.device), batch["goal_state_mask"].to(vl.device))
            loss = loss + self.config.goal_loss_weight * goal_loss
            info["goal_loss"] = float(goal_loss.detach())
        if cotrain:
            text_loss = self._subtask_text_loss(hidden[:, P:], sub_ids, sub_mask)
            loss = loss + self.config.subtask_loss_weight * text_loss
            info["subtask_loss"] = float(text_loss.detach())
        info["loss"] = float(loss.detach())
        return loss, info

    def _subtask_text_loss(self, hidden_sub: torch.Tensor, sub_ids: torch.Tensor, sub_mask: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the sub-task segment: hidden_sub [B, S+2, D_lm] are the LM states at the
        segment's positions; position j predicts token j+1 (after the <bos> marker)."""
        logits = self.backbone.text_logits(hidden_sub[:, :-1])
        target = sub_ids[:, 1:].masked_fill(sub_mask[:, 1:] == 0, -100)
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), target.reshape(-1),
                                                 ignore_index=-100)

    def subtask_text_loss(self, batch: dict) -> torch.Tensor:
        """System 2 alone: the sub-task text loss of `batch` (pixel_values, instruction, subtask [B]),
        without System 1 (the grounding pretext co-trains it). -> scalar"""
        ids, mask = self._prompt(batch)
        sub_ids, sub_mask = self.tokenize_subtasks(list(batch["subtask"]))
        hidden = self.backbone.lm_hidden(batch["pixel_values"].to(self.device), torch.cat([ids, sub_ids], 1),
                                         torch.cat([mask, sub_mask], 1))
        return self._subtask_text_loss(hidden[:, ids.shape[1]:], sub_ids, sub_mask)

    def predict_goal(self, vl: torch.Tensor, vl_mask: torch.Tensor) -> torch.Tensor:
        """goal_head on the last real prompt token: vl [B, T, c], vl_mask [B, T] -> [B, Dmax_s]"""
        return self.goal_head(last_prompt_token(vl, vl_mask))

    def goal_loss(self, vl: torch.Tensor, vl_mask: torch.Tensor, goal: torch.Tensor, goal_mask: torch.Tensor) -> torch.Tensor:
        """Masked MSE of predict_goal against goal [B, Dmax_s] (goal_mask False on padded dims)."""
        m = goal_mask.to(vl.dtype)
        return (((self.predict_goal(vl, vl_mask) - goal) ** 2) * m).sum() / m.sum().clamp(min=1)

    @torch.no_grad()
    def predict_subtask(self, batch: dict) -> list[str]:
        """System 2 names the current sub-task (greedy decoding after the prompt). -> B strings"""
        self.validate_batch(batch)
        ids, mask = self._prompt(batch)
        tok = self.tokenizer
        B = ids.shape[0]
        gen = torch.full((B, 1), tok.bos_token_id, dtype=torch.long, device=ids.device)
        done = torch.zeros(B, dtype=torch.bool, device=ids.device)
        for _ in range(self.config.vlm.max_subtask_tokens + 1):
            seq = torch.cat([ids, gen], 1)
            m = torch.cat([mask, torch.ones_like(gen)], 1)
            hidden = self.backbone.lm_hidden(batch["pixel_values"].to(self.device), seq, m)
            nxt = self.backbone.text_logits(hidden[:, -1]).argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, tok.pad_token_id), nxt)
            gen = torch.cat([gen, nxt[:, None]], 1)
            done |= nxt == tok.eos_token_id
            if done.all():
                break
        return [tok.decode([i for i in row[1:].tolist() if i not in (tok.eos_token_id, tok.pad_token_id)]).strip()
                for row in gen]

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def predict_action_chunk(self, batch: dict, num_steps: int | None = None,
                             noise: torch.Tensor | None = None, generator: torch.Generator | None = None,
                             return_trajectory: bool = False):
        """-> normalised action chunk [B, H, Dmax_a] (and, if asked, the K+1 Euler iterates)."""
        self.validate_batch(batch)
        vl, vl_mask = self.encode_vl(batch)
        return self.action_head.sample(vl, batch["state"].to(self.device), batch["embodiment_id"].to(self.device),
                                       num_steps=num_steps, noise=noise, vl_mask=vl_mask, generator=generator,
                                       return_trajectory=return_trajectory)

    @torch.no_grad()
    def select_action(self, batch: dict, n_action_steps: int | None = None) -> torch.Tensor:
        """One action per call [B, Dmax_a]; a new chunk is predicted every `n_action_steps` calls
        (default H), executed by the kit's one chunk executor (groot_kit.chunking)."""
        from groot_kit.chunking import ChunkExecutor
        H = self.config.action_head.action_horizon
        n = n_action_steps or H
        if self._executor is None or self._executor.replan_every != n:
            self._executor = ChunkExecutor("replan", H, n)
        if self._executor.needs_chunk():
            chunk = self.predict_action_chunk(batch)                          # [B, H, D]
            self._executor.add_chunk(chunk.transpose(0, 1).float().cpu().numpy())
        return torch.from_numpy(self._executor.next_action()).to(self.device)

    def reset(self) -> None:
        """Forget the current chunk (call at episode start)."""
        self._executor = None

    # ------------------------------------------------------------------ processors
    def set_processor(self, processor) -> None:
        """Store an embodiment's GrootProcessor (modality, normalisation stats, slot) in the checkpoint."""
        self.normalization.setdefault("processors", {})[processor.embodiment] = processor.to_dict()

    def get_processor(self, embodiment: str | None = None):
        """The GrootProcessor saved for `embodiment` (the only one when None)."""
        from groot_kit.data.processor import GrootProcessor
        procs = self.normalization.get("processors", {})
        if not procs:
            raise InputError("this policy carries no processor (normalisation stats); train it with "
                             "groot_kit.train or call policy.set_processor(GrootProcessor.from_dataset(ds))")
        if embodiment is None:
            if len(procs) > 1:
                raise InputError(f"policy has processors for {sorted(procs)}; pass embodiment=<one of them>")
            embodiment = next(iter(procs))
        if embodiment not in procs:
            raise InputError(f"no processor for embodiment {embodiment!r}; this policy knows {sorted(procs)}")
        return GrootProcessor.from_dict(procs[embodiment])

    # ------------------------------------------------------------------ checkpoints
    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Write config.json, model.safetensors, tokenizer/ and normalization.json atomically.

        Everything goes to a temporary sibling folder first, which is then renamed over `path`,
        so a crash never leaves a half-written checkpoint where a good one was.
        """
        from safetensors.torch import save_file

        from groot_kit.fileio import atomic_directory
        path = Path(path)
        with atomic_directory(path) as tmp:
            meta = {"format": FORMAT_TAG, **self.config.to_dict()}
            (tmp / CONFIG_NAME).write_text(json.dumps(meta, indent=2))
            state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
            save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "pt", "groot_kit": FORMAT_TAG})
            self.tokenizer.save_pretrained(str(tmp / TOKENIZER_DIR))
            (tmp / NORMALIZATION_NAME).write_text(json.dumps(self.normalization, indent=2))
        return path

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, map_location: str = "cpu") -> "GrootPolicy":
        """Load a folder written by save_pretrained (or an NVIDIA GR00T checkpoint folder)."""
        from transformers import PreTrainedTokenizerFast
        path = Path(path)
        if not path.is_dir():
            raise CheckpointError(f"checkpoint folder {path} does not exist; pass the folder given to save_pretrained")
        from groot_kit.fileio import read_json_checked
        cfg_file = path / CONFIG_NAME
        meta = read_json_checked(cfg_file, "a checkpoint folder needs config.json next to its weights",
                                 "restore it from the run that wrote it", CheckpointError)
        if "backbone_cfg" in meta and "action_head_cfg" in meta:
            from groot_kit.model.gr00t_checkpoint import load_gr00t_checkpoint
            return load_gr00t_checkpoint(path, map_location=map_location)
        if meta.pop("format", None) != FORMAT_TAG:
            raise CheckpointError(f"{cfg_file} is not a groot_kit checkpoint (no 'format': '{FORMAT_TAG}') nor an "
                                  "NVIDIA GR00T one (no backbone_cfg/action_head_cfg)")
        config = GrootConfig.from_dict(meta)
        tok_dir = path / TOKENIZER_DIR
        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(tok_dir)) if tok_dir.exists() else None
        norm_file = path / NORMALIZATION_NAME
        normalization = json.loads(norm_file.read_text()) if norm_file.exists() else {}
        # Built on the CPU (not meta): non-persistent buffers such as rotary frequencies must exist.
        policy = cls(config, tokenizer=tokenizer, normalization=normalization)
        state = load_safetensors_checked(path / WEIGHTS_NAME, map_location)
        load_state_dict_checked(policy, state, source=str(path / WEIGHTS_NAME))
        return policy.eval()


def load_safetensors_checked(file: Path, map_location: str = "cpu") -> dict[str, torch.Tensor]:
    """safetensors load with a clear error for a missing, truncated or corrupt file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    if not Path(file).exists():
        raise CheckpointError(f"weights file {file} is missing; re-save the checkpoint")
    try:
        return load_file(str(file), device=map_location)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"weights file {file} is truncated or corrupt ({e}); re-download it or restore "
                              "it from the run that wrote it (checkpoints are written atomically, so the "
                              "previous one is intact)") from e


def load_state_dict_checked(policy: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """strict load with one message listing missing / unexpected / mis-shaped tensors."""
    own = policy.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    bad_shape = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or bad_shape:
        parts = []
        if bad_shape:
            k = bad_shape[0]
            parts.append(f"{len(bad_shape)} shape mismatches (e.g. {k}: weights {list(state[k].shape)} vs config "
                         f"{list(own[k].shape)})")
        if missing:
            parts.append(f"{len(missing)} tensors missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensors (e.g. {unexpected[0]})")
        raise CheckpointError(f"config does not match the weights in {source}: " + "; ".join(parts) +
                              ". Use the config.json saved with these weights (or the preset they were trained with)")
    policy.load_state_dict(state, strict=True)


def last_prompt_token(vl: torch.Tensor, vl_mask: torch.Tensor) -> torch.Tensor:
    """System 2's last real prompt token: vl [B, T, c], vl_mask [B, T] -> [B, c]. In the causal LM it
    has seen the whole prompt (image and instruction), so per-prompt heads read it."""
    T = vl_mask.shape[1]
    last = T - 1 - vl_mask.flip(1).to(torch.int64).argmax(1)        # padding may sit mid-prompt (text_first)
    return vl[torch.arange(vl.shape[0], device=vl.device), last]


def build_prompt(tokenizer, instructions: list[str], image_token_id: int, num_image_tokens: int,
                 max_text_tokens: int, order: str = "image_first", device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """GrootPolicy.tokenize's layout (see there). -> input_ids, attention_mask [B, 2 + n_img + max_text]"""
    bos, eos, pad = tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
    ids, mask = [], []
    for text in instructions:
        t = tokenizer(text, add_special_tokens=False).input_ids[:max_text_tokens]
        gap = max_text_tokens - len(t)
        img = [image_token_id] * num_image_tokens
        if order == "text_first":
            row, m = [bos] + t + [pad] * gap + img + [eos], [1] * (1 + len(t)) + [0] * gap + [1] * (len(img) + 1)
        else:
            row, m = [bos] + img + t + [eos] + [pad] * gap, [1] * (len(img) + len(t) + 2) + [0] * gap
        ids.append(row)
        mask.append(m)
    return torch.tensor(ids, device=device), torch.tensor(mask, device=device)


def _shape(x: Any) -> str:
    if torch.is_tensor(x):
        return f"{x.dtype} {list(x.shape)}"
    return type(x).__name__


def count_flops_per_chunk(policy: GrootPolicy, num_steps: int | None = None, batch_size: int = 1) -> dict[str, float]:
    """Multiply-accumulate-based FLOPs (2 * MACs) of System 2 once and System 1 for one chunk."""
    from torch.utils.flop_counter import FlopCounterMode
    cfg = policy.config
    batch = dummy_batch(policy, batch_size)
    with torch.no_grad():
        with FlopCounterMode(display=False) as fc2:
            vl, mask = policy.encode_vl(batch)
        with FlopCounterMode(display=False) as fc1:
            policy.action_head.sample(vl, batch["state"], batch["embodiment_id"], num_steps=num_steps)
    return {"system2_flops": float(fc2.get_total_flops()), "system1_flops_per_chunk": float(fc1.get_total_flops()),
            "num_steps": num_steps or cfg.action_head.num_inference_timesteps}


def dummy_batch(policy: GrootPolicy, batch_size: int = 1, training: bool = False, seed: int = 0,
                embodiment_id: int = 0, action_dims: int | None = None) -> dict:
    """A valid random batch for `policy` (for demos, benchmarks and tests)."""
    cfg = policy.config
    g = torch.Generator().manual_seed(seed)
    ah, S = cfg.action_head, cfg.vlm.vision.image_size
    dev = policy.device
    batch = {
        "pixel_values": torch.rand(batch_size, cfg.vlm.num_views, 3, S, S, generator=g).to(dev),
        "instruction": ["pick up the red cube and place it in the yellow bin"] * batch_size,
        "state": torch.randn(batch_size, ah.max_state_dim, generator=g).to(dev),
        "embodiment_id": torch.full((batch_size,), embodiment_id, dtype=torch.long, device=dev),
    }
    if training:
        d = action_dims or ah.max_action_dim
        a = torch.zeros(batch_size, ah.action_horizon, ah.max_action_dim)
        a[..., :d] = torch.randn(batch_size, ah.action_horizon, d, generator=g)
        m = torch.zeros_like(a, dtype=torch.bool)
        m[..., :d] = True
        batch.update(action=a.to(dev), action_mask=m.to(dev))
    return batch
