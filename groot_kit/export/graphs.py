"""The exportable graphs: each GR00T module (and System 1 / the whole policy with the Euler loop
unrolled) as a torch.nn.Module with static shapes apart from the batch axis. See onnx_export for the
table of inputs and outputs."""
from __future__ import annotations

import copy

import torch
from torch import nn


class ExportError(ValueError):
    """An export request is invalid or an exported graph does not match PyTorch."""


# ----------------------------------------------------------------------------------------------
# Exportable wrappers (tensor in, tensor out, no Python-side state)
# ----------------------------------------------------------------------------------------------

class _SlotLinear(nn.Module):
    """A CategorySpecificLinear with one embodiment slice baked in: y = x @ W[slot] + b[slot]."""

    def __init__(self, layer: nn.Module, slot: int):
        super().__init__()
        self.W = nn.Parameter(layer.W.detach()[slot].clone(), requires_grad=False)
        self.b = nn.Parameter(layer.b.detach()[slot].clone(), requires_grad=False)

    def forward(self, x: torch.Tensor, embodiment_id: torch.Tensor | None = None) -> torch.Tensor:
        return torch.matmul(x, self.W) + self.b

    def slice(self, embodiment_id=None, uniform: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Same contract as CategorySpecificLinear.slice: the one baked slot, W [in, out], b [out]."""
        return self.W, self.b


def bake_embodiment(action_head: nn.Module, slot: int) -> nn.Module:
    """Deep copy of the action head whose category-specific layers use only `slot`."""
    from groot_kit.model.embodiment_layers import CategorySpecificLinear
    E = action_head.cfg.max_num_embodiments
    if not (0 <= int(slot) < E):
        raise ExportError(f"embodiment_slot={slot} is outside 0..{E - 1} (action_head.max_num_embodiments); "
                          "use the slot from the embodiment's embodiment.yaml")
    head = copy.deepcopy(action_head)
    for parent in list(head.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, CategorySpecificLinear):
                setattr(parent, name, _SlotLinear(child, int(slot)))
    return head


class VisionGraph(nn.Module):
    def __init__(self, policy):
        super().__init__()
        self.tower = policy.backbone.eagle.vision_model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        from groot_kit.model.vlm import SIGLIP_MEAN, SIGLIP_STD
        return self.tower((pixel_values - SIGLIP_MEAN) / SIGLIP_STD)


def pixel_shuffle_static(x: torch.Tensor, side: int) -> torch.Tensor:
    """`groot_kit.model.vlm.pixel_shuffle` with the patch grid side known statically (traceable by
    both exporters): [N, side*side, C] -> [N, side*side/4, 4C], same channel order."""
    C = x.shape[-1]
    x = x.reshape(-1, side // 2, 2, side // 2, 2, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, (side // 2) ** 2, 4 * C)


class ConnectorGraph(nn.Module):
    def __init__(self, policy):
        super().__init__()
        self.shuffle = policy.config.vlm.pixel_shuffle
        self.side = policy.config.vlm.vision.patches_per_side
        self.mlp1 = policy.backbone.eagle.mlp1

    def forward(self, patch_features: torch.Tensor) -> torch.Tensor:
        x = pixel_shuffle_static(patch_features, self.side) if self.shuffle else patch_features
        return self.mlp1(x)


class LMGraph(nn.Module):
    def __init__(self, policy):
        super().__init__()
        self.lm = policy.backbone.eagle.language_model

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.lm(inputs_embeds, attention_mask)


class StateEncoderGraph(nn.Module):
    def __init__(self, head):
        super().__init__()
        self.head = head

    def forward(self, state: torch.Tensor, embodiment_id: torch.Tensor | None = None) -> torch.Tensor:
        return self.head.encode_state(state, embodiment_id)


class ActionEncoderGraph(nn.Module):
    def __init__(self, head):
        super().__init__()
        self.enc = head.action_encoder

    def forward(self, actions, timestep, embodiment_id=None):
        return self.enc(actions, timestep, embodiment_id)


class DiTGraph(nn.Module):
    def __init__(self, head):
        super().__init__()
        self.dit = head.model

    def forward(self, tokens, vl_tokens, timestep):
        return self.dit(tokens, vl_tokens, timestep)


class ActionDecoderGraph(nn.Module):
    def __init__(self, head):
        super().__init__()
        self.dec = head.action_decoder

    def forward(self, dit_out, embodiment_id=None):
        return self.dec(dit_out, embodiment_id)


class VLAdapterGraph(nn.Module):
    """N1.5: vlln (LayerNorm) + VL self-attention blocks."""

    def __init__(self, head):
        super().__init__()
        self.head = head

    def forward(self, vl_tokens):
        return self.head.process_vl(vl_tokens)


class System2Graph(nn.Module):
    """pixel_values [B, V, 3, S, S], input_ids [B, T], attention_mask [B, T] -> vl_tokens [B, T, c]."""

    def __init__(self, policy):
        super().__init__()
        self.backbone = policy.backbone
        self.image_token_id = int(policy.image_token_id)
        self.vision = VisionGraph(policy)
        self.connector = ConnectorGraph(policy)
        vcfg = policy.config.vlm
        self.num_image_tokens = vcfg.num_views * vcfg.image_tokens_per_view

    def forward(self, pixel_values, input_ids, attention_mask):
        eagle = self.backbone.eagle
        embeds = eagle.language_model.model.embed_tokens(input_ids)
        S = pixel_values.shape[-1]
        feats = self.connector(self.vision(pixel_values.reshape(-1, 3, S, S)))   # EagleModel.image_features
        img = feats.reshape(-1, self.num_image_tokens, feats.shape[-1]).to(embeds.dtype)   # [B, V*n, D]
        is_img = input_ids == self.image_token_id                            # [B, T]
        idx = (torch.cumsum(is_img.to(torch.int64), dim=1) - 1).clamp(min=0)
        idx = idx.clamp(max=img.shape[1] - 1)
        picked = torch.gather(img, 1, idx.unsqueeze(-1).expand(-1, -1, img.shape[-1]))
        embeds = torch.where(is_img.unsqueeze(-1), picked, embeds)
        hidden = eagle.language_model(embeds, attention_mask)
        return self.backbone.linear(hidden)


class System1Graph(nn.Module):
    """vl_tokens [B, T, c], state [B, Ds], (embodiment_id [B]), noise [B, H, Da] -> actions [B, H, Da].

    The K Euler steps are unrolled; step k uses the integer timestep floor(k / K * buckets). What the
    steps share is computed once at the top of the graph (`head.plan_chunk`: VL self-attention and
    every cross-attention block's keys/values, the state token, the timestep tensors, which fold to
    constants), so each unrolled step runs only the action tokens through the DiT.
    """

    def __init__(self, head, num_steps: int, baked: bool = False):
        super().__init__()
        self.head = head
        self.K = int(num_steps)
        self.baked = baked
        self.buckets = head.cfg.num_timestep_buckets
        self.use_mask = head.cfg.use_vl_mask_in_cross_attention

    def run(self, vl_tokens, state, embodiment_id, noise, vl_mask=None):
        K = self.K
        mask = vl_mask if self.use_mask else None
        velocity = self.head.step_velocity(vl_tokens, state, embodiment_id, K, mask, exact_reference=False)
        x = noise
        for k in range(K):
            x = x + velocity(x, k) / K
        return x

    def forward(self, vl_tokens, state, embodiment_id, noise, vl_mask=None):
        return self.run(vl_tokens, state, embodiment_id, noise, vl_mask)


class System1BakedGraph(System1Graph):
    """System 1 with one embodiment slot baked in: (vl_tokens, state, noise[, vl_mask]) -> actions."""

    def forward(self, vl_tokens, state, noise, vl_mask=None):
        return self.run(vl_tokens, state, None, noise, vl_mask)


class PolicyGraph(nn.Module):
    """The whole policy: System 2 once, then the unrolled System-1 Euler loop."""

    def __init__(self, policy, head, num_steps: int, baked: bool = False):
        super().__init__()
        self.s2 = System2Graph(policy)
        self.s1 = System1Graph(head, num_steps, baked)
        self.baked = baked

    def forward(self, pixel_values, input_ids, attention_mask, state, embodiment_id, noise):
        vl = self.s2(pixel_values, input_ids, attention_mask)
        return self.s1.run(vl, state, embodiment_id, noise, attention_mask)


class PolicyBakedGraph(PolicyGraph):
    """The whole policy with one embodiment slot baked in (no embodiment_id input)."""

    def forward(self, pixel_values, input_ids, attention_mask, state, noise):
        vl = self.s2(pixel_values, input_ids, attention_mask)
        return self.s1.run(vl, state, None, noise, attention_mask)
