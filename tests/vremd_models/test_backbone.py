import pytest
import torch

from vremd_models.backbone import ViTPoseBackbone


def _backbone(**overrides):
    kwargs = {"image_size": (64, 48), "patch_size": 16, "embed_dim": 32, "depth": 2, "num_heads": 2}
    return ViTPoseBackbone(**{**kwargs, **overrides})


def test_vitpose_layout_at_256x192():
    backbone = _backbone(image_size=(256, 192), depth=1)
    assert backbone.vit.cls_token is None
    assert tuple(backbone.vit.pos_embed.shape) == (1, 16 * 12, 32)
    assert backbone.vit.patch_embed.proj.padding == (2, 2)
    assert backbone.grid_size == (16, 12)
    features = backbone(torch.randn(1, 3, 3, 256, 192))
    assert features.shape == (1, 3, 192, 32)


def test_frames_are_encoded_independently_in_one_batch():
    torch.manual_seed(0)
    backbone = _backbone(frozen=False).eval()
    clip = torch.randn(2, 3, 3, 64, 48)
    features = backbone(clip)
    assert features.shape == (2, 3, 12, 32)
    for b in range(2):
        for t in range(3):
            alone = backbone(clip[b : b + 1, t : t + 1])[0, 0]
            torch.testing.assert_close(features[b, t], alone, rtol=1e-5, atol=1e-5)


def test_padding_makes_patches_see_their_neighbours():
    # With ViTPose's padding=2 the first patch's conv window covers pixels 0..13 and the second 14..29:
    # changing pixel 14 (in the first patch of an unpadded ViT) must move the second token only.
    torch.manual_seed(0)
    backbone = _backbone(depth=1, frozen=False).eval()
    image = torch.zeros(1, 1, 3, 64, 48)
    tokens = backbone.vit.patch_embed(image[:, 0])
    changed = image.clone()
    changed[..., 0, 14] = 1.0
    moved = (backbone.vit.patch_embed(changed[:, 0]) - tokens).abs().sum(-1)[0]
    assert moved[0] == 0
    assert moved[1] > 0


def test_frozen_backbone_has_no_gradients_and_stays_in_eval():
    backbone = _backbone(drop_path=0.5, frozen=True)
    assert not any(p.requires_grad for p in backbone.parameters())
    backbone.train()
    assert not backbone.training
    assert not backbone.vit.blocks[1].training
    clip = torch.randn(1, 3, 3, 64, 48, requires_grad=True)
    first, second = backbone(clip), backbone(clip)
    assert not first.requires_grad  # run under no_grad: nothing kept for backward
    torch.testing.assert_close(first, second)  # no stochastic depth although train() was called


def test_trainable_backbone_gets_gradients():
    backbone = _backbone(frozen=False).train()
    backbone(torch.randn(1, 3, 3, 64, 48)).square().mean().backward()
    grads = [p.grad for p in backbone.parameters()]
    assert all(g is not None for g in grads)
    assert backbone.vit.patch_embed.proj.weight.grad.abs().sum() > 0


def test_image_size_mismatch_is_reported():
    with pytest.raises(ValueError, match=r"pixel_values must be \(B, T, 3, 64, 48\), got \(1, 3, 3, 64, 64\)"):
        _backbone()(torch.randn(1, 3, 3, 64, 64))
