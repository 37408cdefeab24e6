"""ViTPose state dicts with the real key names and shapes (random values), and their reference forward passes.

Key names and shapes follow the ViTPose repository's mmpose backbone (``mmpose/models/backbones/vit.py`` with
``TopdownHeatmapSimpleHead``) and transformers' ``VitPoseForPoseEstimation`` (``modeling_vitpose.py``,
``modeling_vitpose_backbone.py``). The reference forwards re-implement each source model's own computation
(LayerNorm eps 1e-6 as in ViTPose) so the converted VREMD baseline can be checked against them.
"""

import math

import torch
import torch.nn.functional as F

from vremd_models import VREMDConfig

D, DEPTH, HEADS, J = 32, 2, 2, 17
IMAGE, GRID = (64, 48), (4, 3)


def _rand(*shape: int) -> torch.Tensor:
    return torch.randn(*shape) * 0.2


def mmpose_state_dict(grid=GRID, depth=DEPTH, head="simple", D=D) -> dict[str, torch.Tensor]:
    sd = {
        "backbone.patch_embed.proj.weight": _rand(D, 3, 16, 16),
        "backbone.patch_embed.proj.bias": _rand(D),
        "backbone.pos_embed": _rand(1, grid[0] * grid[1] + 1, D),
        "backbone.last_norm.weight": 1 + _rand(D),
        "backbone.last_norm.bias": _rand(D),
    }
    for i in range(depth):
        p = f"backbone.blocks.{i}."
        sd |= {
            p + "norm1.weight": 1 + _rand(D), p + "norm1.bias": _rand(D),
            p + "attn.qkv.weight": _rand(3 * D, D), p + "attn.qkv.bias": _rand(3 * D),
            p + "attn.proj.weight": _rand(D, D), p + "attn.proj.bias": _rand(D),
            p + "norm2.weight": 1 + _rand(D), p + "norm2.bias": _rand(D),
            p + "mlp.fc1.weight": _rand(4 * D, D), p + "mlp.fc1.bias": _rand(4 * D),
            p + "mlp.fc2.weight": _rand(D, 4 * D), p + "mlp.fc2.bias": _rand(D),
        }  # fmt: skip
    if head == "simple":
        sd |= {"keypoint_head.final_layer.weight": _rand(J, D, 3, 3), "keypoint_head.final_layer.bias": _rand(J)}
    elif head == "classic":
        sd |= {"keypoint_head.deconv_layers.0.weight": _rand(D, 256, 4, 4)}
        sd |= _batchnorm("keypoint_head.deconv_layers.1.", 256)
        sd |= {"keypoint_head.deconv_layers.3.weight": _rand(256, 256, 4, 4)}
        sd |= _batchnorm("keypoint_head.deconv_layers.4.", 256)
        sd |= {"keypoint_head.final_layer.weight": _rand(J, 256, 1, 1), "keypoint_head.final_layer.bias": _rand(J)}
    return sd


def transformers_state_dict(grid=GRID, depth=DEPTH, head="simple", D=D) -> dict[str, torch.Tensor]:
    sd = {
        "backbone.embeddings.patch_embeddings.projection.weight": _rand(D, 3, 16, 16),
        "backbone.embeddings.patch_embeddings.projection.bias": _rand(D),
        "backbone.embeddings.position_embeddings": _rand(1, grid[0] * grid[1] + 1, D),
        "backbone.layernorm.weight": 1 + _rand(D),
        "backbone.layernorm.bias": _rand(D),
    }
    for i in range(depth):
        p = f"backbone.encoder.layer.{i}."
        for name in ("query", "key", "value"):
            sd |= {
                p + f"attention.attention.{name}.weight": _rand(D, D),
                p + f"attention.attention.{name}.bias": _rand(D),
            }
        sd |= {
            p + "attention.output.dense.weight": _rand(D, D), p + "attention.output.dense.bias": _rand(D),
            p + "layernorm_before.weight": 1 + _rand(D), p + "layernorm_before.bias": _rand(D),
            p + "layernorm_after.weight": 1 + _rand(D), p + "layernorm_after.bias": _rand(D),
            p + "mlp.fc1.weight": _rand(4 * D, D), p + "mlp.fc1.bias": _rand(4 * D),
            p + "mlp.fc2.weight": _rand(D, 4 * D), p + "mlp.fc2.bias": _rand(D),
        }  # fmt: skip
    if head == "simple":
        sd |= {"head.conv.weight": _rand(J, D, 3, 3), "head.conv.bias": _rand(J)}
    elif head == "classic":
        sd |= {"head.deconv1.weight": _rand(D, 256, 4, 4), "head.deconv2.weight": _rand(256, 256, 4, 4)}
        sd |= _batchnorm("head.batchnorm1.", 256) | _batchnorm("head.batchnorm2.", 256)
        sd |= {"head.conv.weight": _rand(J, 256, 1, 1), "head.conv.bias": _rand(J)}
    return sd


def _batchnorm(prefix: str, channels: int) -> dict[str, torch.Tensor]:
    return {
        prefix + "weight": 1 + _rand(channels),
        prefix + "bias": _rand(channels),
        prefix + "running_mean": _rand(channels),
        prefix + "running_var": 1 + _rand(channels).abs(),
        prefix + "num_batches_tracked": torch.tensor(10),
    }


# Reference forward passes, written from each source model's own code (eps 1e-6 as ViTPose's LayerNorm).


def _attention(x, q, k, v):
    B, N, _ = x.shape
    q, k, v = (t.reshape(B, N, HEADS, -1).transpose(1, 2) for t in (q, k, v))
    attn = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(-1)
    return (attn @ v).transpose(1, 2).reshape(B, N, -1)


def _simple_head(tokens, weight, bias):
    B = tokens.shape[0]
    grid = tokens.transpose(1, 2).reshape(B, D, *GRID)
    return F.conv2d(
        F.interpolate(F.relu(grid), scale_factor=4, mode="bilinear", align_corners=False), weight, bias, padding=1
    )


def mmpose_forward(sd, image):
    x = F.conv2d(
        image, sd["backbone.patch_embed.proj.weight"], sd["backbone.patch_embed.proj.bias"], stride=16, padding=2
    )
    x = x.flatten(2).transpose(1, 2)
    pos = sd["backbone.pos_embed"]
    x = x + pos[:, 1:] + pos[:, :1]
    for i in range(DEPTH):
        p = f"backbone.blocks.{i}."
        h = F.layer_norm(x, (D,), sd[p + "norm1.weight"], sd[p + "norm1.bias"], eps=1e-6)
        B, N, _ = h.shape
        qkv = F.linear(h, sd[p + "attn.qkv.weight"], sd[p + "attn.qkv.bias"]).reshape(B, N, 3, HEADS, -1)
        q, k, v = (qkv[:, :, s].reshape(B, N, -1) for s in range(3))
        x = x + F.linear(_attention(h, q, k, v), sd[p + "attn.proj.weight"], sd[p + "attn.proj.bias"])
        h = F.layer_norm(x, (D,), sd[p + "norm2.weight"], sd[p + "norm2.bias"], eps=1e-6)
        h = F.linear(
            F.gelu(F.linear(h, sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"])),
            sd[p + "mlp.fc2.weight"],
            sd[p + "mlp.fc2.bias"],
        )
        x = x + h
    x = F.layer_norm(x, (D,), sd["backbone.last_norm.weight"], sd["backbone.last_norm.bias"], eps=1e-6)
    return _simple_head(x, sd["keypoint_head.final_layer.weight"], sd["keypoint_head.final_layer.bias"])


def transformers_forward(sd, image):
    e = "backbone.embeddings."
    x = F.conv2d(
        image,
        sd[e + "patch_embeddings.projection.weight"],
        sd[e + "patch_embeddings.projection.bias"],
        stride=16,
        padding=2,
    )
    x = x.flatten(2).transpose(1, 2)
    pos = sd[e + "position_embeddings"]
    x = x + pos[:, 1:] + pos[:, :1]
    for i in range(DEPTH):
        p = f"backbone.encoder.layer.{i}."
        h = F.layer_norm(x, (D,), sd[p + "layernorm_before.weight"], sd[p + "layernorm_before.bias"], eps=1e-6)
        q, k, v = (
            F.linear(h, sd[p + f"attention.attention.{n}.weight"], sd[p + f"attention.attention.{n}.bias"])
            for n in ("query", "key", "value")
        )
        x = x + F.linear(
            _attention(h, q, k, v), sd[p + "attention.output.dense.weight"], sd[p + "attention.output.dense.bias"]
        )
        h = F.layer_norm(x, (D,), sd[p + "layernorm_after.weight"], sd[p + "layernorm_after.bias"], eps=1e-6)
        x = x + F.linear(
            F.gelu(F.linear(h, sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"])),
            sd[p + "mlp.fc2.weight"],
            sd[p + "mlp.fc2.bias"],
        )
    x = F.layer_norm(x, (D,), sd["backbone.layernorm.weight"], sd["backbone.layernorm.bias"], eps=1e-6)
    return _simple_head(x, sd["head.conv.weight"], sd["head.conv.bias"])  # fmt: skip


def mmpose1_state_dict(grid=GRID, depth=DEPTH, head="simple", D=D, class_slot=False) -> dict[str, torch.Tensor]:
    """mmpose 1.x ViTPose: mmpretrain VisionTransformer (with_cls_token=False) + HeatmapHead."""
    sd = {
        "backbone.patch_embed.projection.weight": _rand(D, 3, 16, 16),
        "backbone.patch_embed.projection.bias": _rand(D),
        "backbone.pos_embed": _rand(1, grid[0] * grid[1] + int(class_slot), D),
        "backbone.ln1.weight": 1 + _rand(D),
        "backbone.ln1.bias": _rand(D),
    }
    for i in range(depth):
        p = f"backbone.layers.{i}."
        sd |= {
            p + "ln1.weight": 1 + _rand(D), p + "ln1.bias": _rand(D),
            p + "attn.qkv.weight": _rand(3 * D, D), p + "attn.qkv.bias": _rand(3 * D),
            p + "attn.proj.weight": _rand(D, D), p + "attn.proj.bias": _rand(D),
            p + "ln2.weight": 1 + _rand(D), p + "ln2.bias": _rand(D),
            p + "ffn.layers.0.0.weight": _rand(4 * D, D), p + "ffn.layers.0.0.bias": _rand(4 * D),
            p + "ffn.layers.1.weight": _rand(D, 4 * D), p + "ffn.layers.1.bias": _rand(D),
        }  # fmt: skip
    if head == "simple":
        sd |= {"head.final_layer.weight": _rand(J, D, 3, 3), "head.final_layer.bias": _rand(J)}
    elif head == "classic":
        sd |= {"head.deconv_layers.0.weight": _rand(D, 256, 4, 4)} | _batchnorm("head.deconv_layers.1.", 256)
        sd |= {"head.deconv_layers.3.weight": _rand(256, 256, 4, 4)} | _batchnorm("head.deconv_layers.4.", 256)
        sd |= {"head.final_layer.weight": _rand(J, 256, 1, 1), "head.final_layer.bias": _rand(J)}
    return sd


def mmpose1_forward(sd, image):
    b = "backbone."
    x = F.conv2d(
        image, sd[b + "patch_embed.projection.weight"], sd[b + "patch_embed.projection.bias"], stride=16, padding=2
    )
    x = x.flatten(2).transpose(1, 2) + sd[b + "pos_embed"]
    for i in range(DEPTH):
        p = f"backbone.layers.{i}."
        h = F.layer_norm(x, (D,), sd[p + "ln1.weight"], sd[p + "ln1.bias"], eps=1e-6)
        B, N, _ = h.shape
        qkv = F.linear(h, sd[p + "attn.qkv.weight"], sd[p + "attn.qkv.bias"]).reshape(B, N, 3, HEADS, -1)
        q, k, v = (qkv[:, :, s].reshape(B, N, -1) for s in range(3))
        x = x + F.linear(_attention(h, q, k, v), sd[p + "attn.proj.weight"], sd[p + "attn.proj.bias"])
        h = F.layer_norm(x, (D,), sd[p + "ln2.weight"], sd[p + "ln2.bias"], eps=1e-6)
        h = F.gelu(F.linear(h, sd[p + "ffn.layers.0.0.weight"], sd[p + "ffn.layers.0.0.bias"]))
        x = x + F.linear(h, sd[p + "ffn.layers.1.weight"], sd[p + "ffn.layers.1.bias"])
    x = F.layer_norm(x, (D,), sd[b + "ln1.weight"], sd[b + "ln1.bias"], eps=1e-6)
    return _simple_head(x, sd["head.final_layer.weight"], sd["head.final_layer.bias"])


# The three layouts: (state dict with random values, the source model's reference forward).
LAYOUTS = {
    "mmpose": (mmpose_state_dict, mmpose_forward),
    "mmpose1": (mmpose1_state_dict, mmpose1_forward),
    "transformers": (transformers_state_dict, transformers_forward),
}


def vremd_config(**overrides) -> VREMDConfig:
    """A small VREMD whose backbone has the shape of these state dicts (width D, DEPTH blocks, 64x48 input)."""
    sizes = {
        "image_size": IMAGE, "heatmap_size": (16, 12), "backbone_dim": D, "backbone_depth": DEPTH,
        "backbone_num_heads": HEADS, "hidden_dim": 16, "num_heads": 2, "keypoint_head_hidden_dim": 16,
    }  # fmt: skip
    return VREMDConfig.from_preset("vremd-tiny", **{**sizes, **overrides})
