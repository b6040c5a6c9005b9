"""Configs and size presets for the GR00T-N1-style policy.

One dataclass per part, nanoGPT style: every field has a commented default, and four named
presets (`tiny`, `small`, `n1_2b`, `n1_5_3b`) fill them in. Validation lives in `__post_init__`
and every message says what to change.

Paper symbol -> code name (see README "Symbols"):
    H      action horizon                ActionHeadConfig.action_horizon (16)
    Dmax_a padded action dims            ActionHeadConfig.max_action_dim (32)
    Dmax_s padded state dims             ActionHeadConfig.max_state_dim (64)
    E      embodiment slots              ActionHeadConfig.max_num_embodiments (32)
    K      Euler denoising steps         ActionHeadConfig.num_inference_timesteps (4)
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal

VARIANTS = ("n1", "n1_5")


class ConfigError(ValueError):
    """A config value is out of range or inconsistent; the message names the field and the fix."""


def _require(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


@dataclass
class VisionConfig:
    """SigLIP vision tower (transformers `SiglipVisionConfig` fields)."""

    image_size: int = 224          # input resolution S (square)
    patch_size: int = 14           # 224/14 = 16x16 = 256 patches
    hidden_size: int = 1152        # SigLIP-so400m width
    intermediate_size: int = 4304
    num_hidden_layers: int = 27
    num_attention_heads: int = 16

    def __post_init__(self) -> None:
        _require(self.image_size % self.patch_size == 0,
                 f"vision.image_size ({self.image_size}) must be a multiple of vision.patch_size "
                 f"({self.patch_size}); pick e.g. image_size={self.patch_size * (self.image_size // self.patch_size)}")
        _require(self.hidden_size % self.num_attention_heads == 0,
                 "vision.hidden_size must be divisible by vision.num_attention_heads")

    @property
    def patches_per_side(self) -> int:
        return self.image_size // self.patch_size


@dataclass
class LMConfig:
    """Decoder-only language model (Llama for N1, Qwen3 for N1.5), truncated to `select_layer`."""

    arch: Literal["llama", "qwen3"] = "llama"
    vocab_size: int = 49152        # SmolLM2 tokenizer (N1); 151936 for Qwen3 (N1.5)
    hidden_size: int = 2048
    intermediate_size: int = 8192
    num_attention_heads: int = 32
    num_key_value_heads: int = 32
    head_dim: int | None = None    # Qwen3 sets it explicitly (128); Llama derives it
    rms_norm_eps: float = 1e-5
    rope_theta: float = 130000.0
    max_position_embeddings: int = 8192
    tie_word_embeddings: bool = True
    num_hidden_layers: int = 24    # layers of the full LM (before truncation)

    def __post_init__(self) -> None:
        _require(self.arch in ("llama", "qwen3"), f"lm.arch must be 'llama' or 'qwen3', got {self.arch!r}")
        _require(self.num_attention_heads % self.num_key_value_heads == 0,
                 "lm.num_attention_heads must be a multiple of lm.num_key_value_heads")
        if self.head_dim is None:
            _require(self.hidden_size % self.num_attention_heads == 0,
                     "lm.hidden_size must be divisible by lm.num_attention_heads (or set lm.head_dim)")


@dataclass
class VLMConfig:
    """System 2: vision tower -> connector -> truncated LM -> (N1) projection to the DiT width."""

    vision: VisionConfig = field(default_factory=VisionConfig)
    lm: LMConfig = field(default_factory=LMConfig)
    select_layer: int = 12          # keep the LM's first `select_layer` layers
    pixel_shuffle: bool = True      # N1: 2x2 patches -> 1 token of 4x width; N1.5: off
    connector: Literal["mlp", "linear"] = "mlp"   # N1: LN-Linear-GELU-Linear; N1.5: one Linear
    project_to_dim: int | None = 1536   # N1: backbone.linear to the DiT width; N1.5: None (LM-wide)
    max_text_tokens: int = 64       # instruction tokens in the prompt
    prompt_order: Literal["image_first", "text_first"] = "image_first"  # GR00T/Eagle: image tokens,
                                    # then the instruction. text_first puts the instruction first so
                                    # that, in the causal LM, image tokens can attend to it
    num_views: int = 1              # camera images per observation (each gives its own tokens)
    max_subtask_tokens: int = 8     # sub-task text System 2 may emit (co-training, beyond N1)

    def __post_init__(self) -> None:
        if isinstance(self.vision, dict):
            self.vision = VisionConfig(**self.vision)
        if isinstance(self.lm, dict):
            self.lm = LMConfig(**self.lm)
        _require(1 <= self.select_layer <= self.lm.num_hidden_layers,
                 f"vlm.select_layer ({self.select_layer}) must be in 1..lm.num_hidden_layers "
                 f"({self.lm.num_hidden_layers})")
        if self.pixel_shuffle:
            _require(self.vision.patches_per_side % 2 == 0,
                     f"pixel shuffle needs an even number of patches per side; got "
                     f"{self.vision.patches_per_side} (vision.image_size/vision.patch_size). "
                     "Change image_size or set vlm.pixel_shuffle=False")
        _require(self.connector in ("mlp", "linear"), "vlm.connector must be 'mlp' or 'linear'")
        _require(self.num_views >= 1, "vlm.num_views must be >= 1")
        _require(self.prompt_order in ("image_first", "text_first"),
                 f"vlm.prompt_order must be 'image_first' (GR00T's layout) or 'text_first', got {self.prompt_order!r}")

    @property
    def image_tokens_per_view(self) -> int:
        n = self.vision.patches_per_side ** 2
        return n // 4 if self.pixel_shuffle else n

    @property
    def output_dim(self) -> int:
        """Width of the VL tokens handed to System 1."""
        return self.project_to_dim or self.lm.hidden_size


@dataclass
class ActionHeadConfig:
    """System 1: per-embodiment encoders/decoders around a flow-matching DiT."""

    action_horizon: int = 16        # H
    max_action_dim: int = 32        # Dmax_a
    max_state_dim: int = 64         # Dmax_s
    max_num_embodiments: int = 32   # E (category-specific weight slices)
    hidden_size: int = 1024         # encoder/decoder MLP hidden and DiT output dim
    input_embedding_dim: int = 1536 # DiT width w (= heads * head_dim)
    num_layers: int = 16            # DiT blocks (even: cross-attn to VL, odd: self-attn)
    num_attention_heads: int = 32
    attention_head_dim: int = 48
    cross_attention_dim: int = 1536 # width of VL tokens (= VLMConfig.output_dim)
    max_seq_len: int = 1024         # learned position table for action tokens
    num_timestep_buckets: int = 1000
    num_inference_timesteps: int = 4    # K Euler steps
    noise_beta_alpha: float = 1.5
    noise_beta_beta: float = 1.0
    noise_s: float = 0.999
    time_sampling: Literal["n1_release", "fixed"] = "n1_release"  # t=(s-u)/s  vs  t=s(1-u)
    num_future_tokens: int = 0      # N1.5: 32 learned tokens between state and actions
    use_vl_self_attention: bool = False  # N1.5: vlln + 4 self-attention blocks on VL tokens
    vl_self_attention_layers: int = 4
    vl_self_attention_heads: int = 32
    use_vl_mask_in_cross_attention: bool = False  # reference behaviour: mask NOT applied

    def __post_init__(self) -> None:
        _require(self.input_embedding_dim == self.num_attention_heads * self.attention_head_dim,
                 f"action_head.input_embedding_dim ({self.input_embedding_dim}) must equal "
                 f"num_attention_heads*attention_head_dim ({self.num_attention_heads}*{self.attention_head_dim})")
        _require(self.input_embedding_dim % 2 == 0, "action_head.input_embedding_dim must be even (sinusoidal code)")
        _require(self.action_horizon <= self.max_seq_len,
                 "action_head.action_horizon must be <= max_seq_len (the position table size)")
        _require(self.time_sampling in ("n1_release", "fixed"),
                 "action_head.time_sampling must be 'n1_release' or 'fixed'")
        _require(self.num_inference_timesteps >= 1, "action_head.num_inference_timesteps must be >= 1")
        _require(self.max_num_embodiments >= 1, "action_head.max_num_embodiments must be >= 1")


@dataclass
class GrootConfig:
    """The whole policy. `variant` picks the N1 or N1.5 wiring; presets fill in the sizes."""

    variant: Literal["n1", "n1_5"] = "n1"
    preset: str = "custom"
    vlm: VLMConfig = field(default_factory=VLMConfig)
    action_head: ActionHeadConfig = field(default_factory=ActionHeadConfig)
    # Beyond the reference: >0 co-trains System 2 to emit the current sub-task as text with the LM's
    # (tied) embedding matrix as head: loss = flow + subtask_loss_weight * cross-entropy. 0 = N1.
    subtask_loss_weight: float = 0.0
    # Beyond the reference: >0 adds `goal_head`, a Linear that predicts, from System 2's last prompt
    # token, the normalised state the episode ends in (where the instruction sends the robot);
    # loss += goal_loss_weight * masked MSE. A direct signal for grounding the instruction. 0 = off.
    goal_loss_weight: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.vlm, dict):
            self.vlm = VLMConfig(**self.vlm)
        if isinstance(self.action_head, dict):
            self.action_head = ActionHeadConfig(**self.action_head)
        _require(self.variant in VARIANTS, f"variant must be one of {VARIANTS}, got {self.variant!r}")
        _require(self.vlm.output_dim == self.action_head.cross_attention_dim,
                 f"vlm output width ({self.vlm.output_dim}) must equal action_head.cross_attention_dim "
                 f"({self.action_head.cross_attention_dim}); set vlm.project_to_dim or cross_attention_dim")
        _require(self.subtask_loss_weight >= 0, "subtask_loss_weight must be >= 0 (0 turns co-training off)")
        _require(self.goal_loss_weight >= 0, "goal_loss_weight must be >= 0 (0 turns the goal head off)")
        if self.variant == "n1_5":
            _require(self.action_head.use_vl_self_attention,
                     "variant 'n1_5' needs action_head.use_vl_self_attention=True")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GrootConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        _require(not unknown, f"config.json has unknown fields {sorted(unknown)}; "
                 "is this a groot_kit config? (NVIDIA checkpoints load with "
                 "groot_kit.model.gr00t_checkpoint.load_gr00t_checkpoint or GrootPolicy.from_pretrained)")
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


# ---------------------------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------------------------

def _tiny() -> GrootConfig:
    # Trains on one CPU core: 64 px images, 2-layer vision, 2-layer LM, 4-block DiT of width 64.
    return GrootConfig(
        variant="n1", preset="tiny",
        vlm=VLMConfig(
            vision=VisionConfig(image_size=64, patch_size=8, hidden_size=64, intermediate_size=128,
                                num_hidden_layers=2, num_attention_heads=4),
            lm=LMConfig(arch="llama", vocab_size=512, hidden_size=64, intermediate_size=128,
                        num_attention_heads=4, num_key_value_heads=4, num_hidden_layers=2,
                        max_position_embeddings=512, rope_theta=10000.0),
            select_layer=2, pixel_shuffle=True, connector="mlp", project_to_dim=64,
            max_text_tokens=24, num_views=1),
        action_head=ActionHeadConfig(hidden_size=64, input_embedding_dim=64, num_layers=4,
                                     num_attention_heads=4, attention_head_dim=16,
                                     cross_attention_dim=64, max_seq_len=64),
    )


def _small() -> GrootConfig:
    # Laptop / single-GPU middle ground (~40M parameters).
    return GrootConfig(
        variant="n1", preset="small",
        vlm=VLMConfig(
            vision=VisionConfig(image_size=112, patch_size=14, hidden_size=256, intermediate_size=1024,
                                num_hidden_layers=6, num_attention_heads=4),
            lm=LMConfig(arch="llama", vocab_size=4096, hidden_size=384, intermediate_size=1024,
                        num_attention_heads=6, num_key_value_heads=6, num_hidden_layers=8,
                        max_position_embeddings=1024, rope_theta=10000.0),
            select_layer=6, pixel_shuffle=True, connector="mlp", project_to_dim=256,
            max_text_tokens=32, num_views=2),
        action_head=ActionHeadConfig(hidden_size=256, input_embedding_dim=256, num_layers=8,
                                     num_attention_heads=8, attention_head_dim=32,
                                     cross_attention_dim=256, max_seq_len=128),
    )


def _n1_2b() -> GrootConfig:
    # GR00T N1 2B: Eagle-2 (SigLIP-so400m @224 + SmolLM2-1.7B cut at layer 12) + 16-block DiT.
    return GrootConfig(variant="n1", preset="n1_2b", vlm=VLMConfig(), action_head=ActionHeadConfig())


def _n1_5_3b() -> GrootConfig:
    # GR00T N1.5 3B: Eagle 2.5 (SigLIP @224, no pixel shuffle, Linear connector, Qwen3-1.7B cut at
    # layer 12), LM-wide (2048) VL tokens -> vlln + 4 VL self-attention blocks, 32 future tokens.
    return GrootConfig(
        variant="n1_5", preset="n1_5_3b",
        vlm=VLMConfig(
            lm=LMConfig(arch="qwen3", vocab_size=151936, hidden_size=2048, intermediate_size=6144,
                        num_attention_heads=16, num_key_value_heads=8, head_dim=128,
                        rms_norm_eps=1e-6, rope_theta=1000000.0, max_position_embeddings=40960,
                        num_hidden_layers=28, tie_word_embeddings=True),
            select_layer=12, pixel_shuffle=False, connector="linear", project_to_dim=None),
        action_head=ActionHeadConfig(cross_attention_dim=2048, num_future_tokens=32,
                                     use_vl_self_attention=True, time_sampling="n1_release"),
    )


PRESETS = {"tiny": _tiny, "small": _small, "n1_2b": _n1_2b, "n1_5_3b": _n1_5_3b}


def get_preset(name: str, **overrides: Any) -> GrootConfig:
    """Return a fresh config for a named preset. `overrides` replace top-level fields."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    cfg = PRESETS[name]()
    return dataclasses.replace(cfg, **overrides) if overrides else cfg
