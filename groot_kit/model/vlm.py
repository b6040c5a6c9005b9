"""System 2: the vision-language backbone (Eagle-style) that turns images + instruction into tokens.

N1 form:   SigLIP -> pixel shuffle 0.5 -> mlp1 (LN, Linear, GELU, Linear) -> image tokens replace the
           <image> placeholders -> Llama LM cut to its first `select_layer` layers (final RMSNorm
           output) -> `linear` projection to the DiT width.
N1.5 form: SigLIP -> mlp1 (one Linear) -> Qwen3 LM cut to `select_layer` layers; features stay
           LM-wide (the action head applies vlln + VL self-attention).

Module names follow transformers / NVIDIA so official weights load by name:
    backbone.model.vision_model.vision_model.*      (N1)    backbone.eagle_model.*  (N1.5)
    backbone.model.mlp1.{0,1,3}.*                   backbone.model.language_model.model.*
    backbone.linear.*                               (N1 only)
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import (LlamaConfig, LlamaModel, Qwen3Config, Qwen3Model, SiglipVisionConfig,
                          SiglipVisionModel)

from groot_kit.config import VLMConfig

SIGLIP_MEAN = 0.5
SIGLIP_STD = 0.5


def pixel_shuffle(x: torch.Tensor) -> torch.Tensor:
    """Concatenate each 2x2 block of neighbouring patches into one token of 4x width.

    x: [N, P, C] with P = h*w patches (row-major) -> [N, P/4, 4C]; channel order
    (row 2i, col 2j), (2i, 2j+1), (2i+1, 2j), (2i+1, 2j+1), as InternVL/Eagle do it.
    """
    N, P, C = x.shape
    side = int(round(P ** 0.5))
    x = x.reshape(N, side // 2, 2, side // 2, 2, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(N, (side // 2) ** 2, 4 * C)


class VisionTower(nn.Module):
    """Holds transformers' SiglipVisionModel as `.vision_model` (the reference's nesting)."""

    def __init__(self, cfg: VLMConfig):
        super().__init__()
        v = cfg.vision
        sig = SiglipVisionConfig(hidden_size=v.hidden_size, intermediate_size=v.intermediate_size,
                                 num_hidden_layers=v.num_hidden_layers, num_attention_heads=v.num_attention_heads,
                                 image_size=v.image_size, patch_size=v.patch_size, vision_use_head=False)
        sig._attn_implementation = "sdpa"
        self.vision_model = SiglipVisionModel(sig)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values [N, 3, S, S] (SigLIP-normalised) -> patch features [N, P, Cv]"""
        return self.vision_model(pixel_values=pixel_values).last_hidden_state


class TruncatedLM(nn.Module):
    """`language_model.model` = a Llama/Qwen3 decoder holding only its first `select_layer` layers."""

    def __init__(self, cfg: VLMConfig):
        super().__init__()
        lm = cfg.lm
        common = dict(vocab_size=lm.vocab_size, hidden_size=lm.hidden_size, intermediate_size=lm.intermediate_size,
                      num_hidden_layers=cfg.select_layer, num_attention_heads=lm.num_attention_heads,
                      num_key_value_heads=lm.num_key_value_heads, rms_norm_eps=lm.rms_norm_eps,
                      max_position_embeddings=lm.max_position_embeddings, tie_word_embeddings=lm.tie_word_embeddings,
                      pad_token_id=0, bos_token_id=1, eos_token_id=2)
        if lm.arch == "llama":
            hf_cfg = LlamaConfig(**common, rope_theta=lm.rope_theta, head_dim=lm.head_dim or lm.hidden_size // lm.num_attention_heads)
            hf_cfg._attn_implementation = "sdpa"
            self.model = LlamaModel(hf_cfg)
        else:
            hf_cfg = Qwen3Config(**common, rope_theta=lm.rope_theta, head_dim=lm.head_dim or lm.hidden_size // lm.num_attention_heads)
            hf_cfg._attn_implementation = "sdpa"
            self.model = Qwen3Model(hf_cfg)

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """inputs_embeds [B, T, D], attention_mask [B, T] -> final-norm hidden states [B, T, D]"""
        return self.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, use_cache=False).last_hidden_state


class EagleModel(nn.Module):
    """vision_model + mlp1 connector + language_model, named like NVIDIA's Eagle wrapper."""

    def __init__(self, cfg: VLMConfig):
        super().__init__()
        self.cfg = cfg
        self.vision_model = VisionTower(cfg)
        cv, d = cfg.vision.hidden_size, cfg.lm.hidden_size
        if cfg.connector == "mlp":
            cin = cv * 4 if cfg.pixel_shuffle else cv
            self.mlp1 = nn.Sequential(nn.LayerNorm(cin), nn.Linear(cin, d), nn.GELU(), nn.Linear(d, d))
        else:
            self.mlp1 = nn.Sequential(nn.Linear(cv * 4 if cfg.pixel_shuffle else cv, d))
        self.language_model = TruncatedLM(cfg)

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values [B, V, 3, S, S] in [0, 1] -> image tokens [B, V * n_img, D_lm]"""
        B, V = pixel_values.shape[:2]
        x = (pixel_values.flatten(0, 1) - SIGLIP_MEAN) / SIGLIP_STD
        feats = self.vision_model(x)
        if self.cfg.pixel_shuffle:
            feats = pixel_shuffle(feats)
        feats = self.mlp1(feats)
        return feats.reshape(B, V * feats.shape[1], feats.shape[2])


class VLBackbone(nn.Module):
    """System 2. forward(pixel_values, input_ids, attention_mask) -> (vl_tokens [B, T, c], mask [B, T])"""

    def __init__(self, cfg: VLMConfig, variant: str, image_token_id: int):
        super().__init__()
        self.cfg = cfg
        self.image_token_id = image_token_id
        self.eagle_attr = "model" if variant == "n1" else "eagle_model"
        setattr(self, self.eagle_attr, EagleModel(cfg))
        self.linear = nn.Linear(cfg.lm.hidden_size, cfg.project_to_dim) if cfg.project_to_dim else nn.Identity()

    @property
    def eagle(self) -> EagleModel:
        return getattr(self, self.eagle_attr)

    def lm_hidden(self, pixel_values: torch.Tensor, input_ids: torch.Tensor,
                  attention_mask: torch.Tensor) -> torch.Tensor:
        """Final-norm LM hidden states [B, T, D_lm] with image tokens in the <image> slots."""
        eagle = self.eagle
        embeds = eagle.language_model.model.embed_tokens(input_ids)
        img = eagle.image_features(pixel_values).to(embeds.dtype)
        is_img = (input_ids == self.image_token_id).unsqueeze(-1)
        embeds = embeds.masked_scatter(is_img, img)
        return eagle.language_model(embeds, attention_mask)

    def text_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Next-token logits through the tied input embedding (no lm_head tensor). -> [B, T, vocab]"""
        return hidden @ self.eagle.language_model.model.embed_tokens.weight.T

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.lm_hidden(pixel_values, input_ids, attention_mask)
        return self.linear(hidden), attention_mask.bool()
