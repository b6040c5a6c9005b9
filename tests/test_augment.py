"""Train-time image augmentation: shifts are pure translations, jitter stays in range, absent views
stay empty, draws are reproducible from the generator, inference never sees it."""
import pytest
import torch

from groot_kit.train.augment import augment_images, color_jitter, random_shift
from groot_kit.train.trainer import TrainConfig


def test_random_shift_is_a_translation_with_edge_padding():
    x = torch.rand(4, 2, 3, 16, 16)
    y = random_shift(x, 3, torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    for b in range(4):
        for v in range(2):
            # some offset (dy, dx) in [-3, 3]^2 maps the interior of x onto y exactly
            ok = any(torch.equal(y[b, v, :, 3:-3, 3:-3], x[b, v, :, 3 + dy:13 + dy, 3 + dx:13 + dx])
                     for dy in range(-3, 4) for dx in range(-3, 4))
            assert ok
    assert not torch.equal(y, x)  # 8 images, 49 offsets each: all-zero shifts would be a bug
    assert torch.equal(random_shift(x, 0), x)


def test_color_jitter_bounds_and_mask():
    x = torch.full((2, 2, 3, 8, 8), 0.5)
    y = color_jitter(x, 0.2, torch.Generator().manual_seed(1))
    # a uniform image only changes brightness: factor in [0.8, 1.2]
    assert ((y >= 0.4 - 1e-6) & (y <= 0.6 + 1e-6)).all() and not torch.equal(y, x)
    mask = torch.tensor([[True, False], [True, True]])
    z = augment_images(torch.rand(2, 2, 3, 8, 8), mask, 2, 0.2, torch.Generator().manual_seed(2))
    assert torch.count_nonzero(z[0, 1]) == 0 and z.min() >= 0 and z.max() <= 1
    a = augment_images(x, mask, 2, 0.2, torch.Generator().manual_seed(5))
    b = augment_images(x, mask, 2, 0.2, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_bad_augmentation_settings_are_refused():
    with pytest.raises(ValueError, match="image_shift"):
        TrainConfig(image_shift=-1)
    with pytest.raises(ValueError, match="color_jitter"):
        TrainConfig(color_jitter=1.5)
