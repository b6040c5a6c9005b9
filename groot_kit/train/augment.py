"""Training-time image augmentation: random shifts (DrQ-style) and brightness/contrast jitter.

Both are applied to the batch in the trainer and never at inference, so the processor, the server
and the exported graphs see the same images as before. Why: the tiny policy memorises the scenes it
was trained on (measured on the pretraining mixture: 65% closed-loop success on training scenes,
15% on unseen ones); small shifts and lighting changes make every frame a slightly new scene.

    pix = augment_images(batch["pixel_values"], batch["view_mask"], shift=4, jitter=0.1, generator=g)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def random_shift(pix: torch.Tensor, shift: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pad every image by `shift` px (edge pixels repeated) and crop it back at a random offset.

    pix: [B, V, 3, S, S] float in [0, 1] -> same shape; each image gets its own offset in
    [-shift, shift]^2. shift=0 returns `pix` unchanged."""
    if shift <= 0:
        return pix
    B, V, C, H, W = pix.shape
    x = F.pad(pix.reshape(B * V, C, H, W), (shift,) * 4, mode="replicate")
    off = torch.randint(0, 2 * shift + 1, (B * V, 2), generator=generator)
    out = torch.stack([x[i, :, dy:dy + H, dx:dx + W] for i, (dy, dx) in enumerate(off.tolist())])
    return out.reshape(B, V, C, H, W)


def color_jitter(pix: torch.Tensor, strength: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-image brightness and contrast factors drawn from [1 - strength, 1 + strength].

    pix: [B, V, 3, S, S] float in [0, 1] -> same shape, clamped to [0, 1]."""
    if strength <= 0:
        return pix
    B, V = pix.shape[:2]
    lo, span = 1.0 - strength, 2.0 * strength
    # drawn on the CPU generator (reproducible on any device), applied where the images are
    bright = (lo + span * torch.rand(B, V, 1, 1, 1, generator=generator)).to(pix.device, pix.dtype)
    contrast = (lo + span * torch.rand(B, V, 1, 1, 1, generator=generator)).to(pix.device, pix.dtype)
    mean = pix.mean(dim=(2, 3, 4), keepdim=True)
    return ((pix - mean) * contrast + mean * bright).clamp(0, 1)


def augment_images(pix: torch.Tensor, view_mask: torch.Tensor | None = None, shift: int = 4, jitter: float = 0.1,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """random_shift then color_jitter; padded (absent) views stay all-zero. Works on any device;
    the random draws come from `generator` (a CPU generator).

    pix: [B, V, 3, S, S]; view_mask: [B, V] bool (True = a real camera image)."""
    out = color_jitter(random_shift(pix, shift, generator), jitter, generator)
    if view_mask is not None:
        out = out * view_mask[:, :, None, None, None].to(out.dtype)
    return out
