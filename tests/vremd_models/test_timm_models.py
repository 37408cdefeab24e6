"""The ViTPose backbones as timm models, checked with timm itself."""

import pytest
import timm
import torch
from safetensors.torch import save_file

import vremd_models  # noqa: F401 -- importing the package registers the names
from tests.vremd_models.vitpose_checkpoints import mmpose_state_dict
from vremd_models import VITPOSE_VARIANTS, VREMD, VREMDConfig


@pytest.mark.parametrize("size", sorted(VITPOSE_VARIANTS))
def test_names_build_the_published_shapes_with_the_padded_patch_embed(size):
    shape = VITPOSE_VARIANTS[size]
    with torch.device("meta"):  # ViTPose-H has 630M parameters: check the structure, not the numbers
        model = timm.create_model(f"vitpose_{size}")
    assert model.embed_dim == shape.embed_dim
    assert len(model.blocks) == shape.depth
    assert model.blocks[0].attn.num_heads == shape.num_heads
    assert model.patch_embed.proj.padding == (2, 2)
    assert model.cls_token is None
    assert tuple(model.pos_embed.shape) == (1, 16 * 12, shape.embed_dim)
    assert model.pretrained_cfg["license"] == "apache-2.0"
    assert f"vitpose_{size}" in timm.list_models("vitpose_*")


def _tiny_vremd() -> VREMD:
    config = VREMDConfig.from_preset(
        "vremd-tiny", image_size=(64, 48), heatmap_size=(16, 12), backbone_dim=768, backbone_depth=1,
        backbone_num_heads=12, hidden_dim=16, num_heads=2, keypoint_head_hidden_dim=16,
    )  # fmt: skip
    torch.manual_seed(0)
    return VREMD(config).eval()


def test_pretrained_file_from_a_vremd_folder_gives_the_backbones_features(tmp_path):
    vremd = _tiny_vremd()
    vremd.save_pretrained(tmp_path)
    model = timm.create_model(
        "vitpose_base", pretrained=True, pretrained_cfg_overlay={"file": str(tmp_path / "model.safetensors")},
        img_size=(64, 48), depth=1,
    ).eval()  # fmt: skip
    image = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(image), vremd.backbone(image[:, None])[:, 0], rtol=0, atol=0)


def test_pretrained_file_may_be_a_raw_vitpose_checkpoint(tmp_path):
    state_dict = mmpose_state_dict(D=768, depth=1)
    save_file(state_dict, tmp_path / "vitpose.safetensors")
    model = timm.create_model(
        "vitpose_base", pretrained=True, pretrained_cfg_overlay={"file": str(tmp_path / "vitpose.safetensors")},
        img_size=(64, 48), depth=1,
    )  # fmt: skip
    pos = state_dict["backbone.pos_embed"]
    torch.testing.assert_close(model.pos_embed, pos[:, 1:] + pos[:, :1])
    torch.testing.assert_close(model.blocks[0].attn.qkv.weight, state_dict["backbone.blocks.0.attn.qkv.weight"])


def test_a_stock_timm_vit_loads_the_weights_but_computes_other_features():
    # The pitfall the README documents: strict loading succeeds, the features do not match (no padding).
    vremd = _tiny_vremd()
    stock = timm.create_model(
        "vit_base_patch16_224", pretrained=False, img_size=(64, 48), depth=1, class_token=False, global_pool="",
        num_classes=0,
    ).eval()  # fmt: skip
    backbone = {k.removeprefix("backbone.vit."): v for k, v in vremd.state_dict().items() if k.startswith("backbone.")}
    stock.load_state_dict(backbone, strict=True)
    image = torch.randn(1, 3, 64, 48)
    with torch.no_grad():
        gap = (stock.forward_features(image) - vremd.backbone(image[:, None])[:, 0]).abs().max()
    assert gap > 0.1
