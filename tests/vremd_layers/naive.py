"""Naive references for the vremd_layers modules, written from the paper and its rows in docs/paper-map.md.

Each function reads a module's parameters and recomputes its output with plain torch ops (loops over heads,
points, frames and tokens; no einops, no call of the module or its sub-modules), so a test comparing the two
fails when the module wires a sub-layer wrongly. Sizes in the tests stay tiny; speed is not a goal here.
"""

import math

import torch
import torch.nn.functional as F


def randomize(module, seed=0, std=0.5):
    """Give every parameter random values, so no sub-layer starts as an identity (LayerNorm) or zero (bias)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype) * std)
    return module


def layer_norm(x, norm):
    """LayerNorm over the last axis with the affine parameters of ``norm``: x (..., C) -> (..., C)."""
    centred = x - x.mean(dim=-1, keepdim=True)
    variance = centred.square().mean(dim=-1, keepdim=True)
    return centred / torch.sqrt(variance + norm.eps) * norm.weight + norm.bias


def linear(x, layer):
    """``x W^T + b`` with the weights of an ``nn.Linear``."""
    return x @ layer.weight.T + (0 if layer.bias is None else layer.bias)


def mlp(x, module):
    """fc2(GELU(fc1(x))), the two-layer perceptron of the transformer blocks: x (..., C) -> (..., C_out)."""
    return linear(F.gelu(linear(x, module.fc1)), module.fc2)


def attention(layer, x, context):
    """Multi-head attention from queries ``x`` (B, N, D) to ``context`` (B, M, D), one head at a time -> (B, N, D).

    Per head h: ``softmax(q_h k_h^T / sqrt(d)) v_h`` with ``q = W_q x``, ``[k, v] = W_kv context``; heads
    concatenated, then ``W_o``.
    """
    D = x.shape[-1]
    heads = layer.num_heads
    d = D // heads
    q = linear(x, layer.q)
    keys_values = linear(context, layer.kv)
    keys, values = keys_values[..., :D], keys_values[..., D:]
    head_outputs = []
    for head in range(heads):
        channels = slice(head * d, (head + 1) * d)
        logits = q[..., channels] @ keys[..., channels].transpose(-2, -1) / math.sqrt(d)
        head_outputs.append(logits.softmax(dim=-1) @ values[..., channels])
    return linear(torch.cat(head_outputs, dim=-1), layer.proj)


def transformer_block(block, x, context=None):
    """Pre-norm block: ``x + attn(LN1 x, LN1 context)`` then ``x + mlp(LN2 x)``; x (B, N, D) -> (B, N, D).

    Without ``context`` the attention is self attention (context = x).
    """
    normed = layer_norm(x, block.norm1)
    x = x + attention(block.attn, normed, normed if context is None else layer_norm(context, block.norm1))
    return x + mlp(layer_norm(x, block.norm2), block.mlp)


def bilinear(image, locations):
    """Naive zero-padded bilinear read: image (B, C, H, W), locations (B, Q, 2) as (x, y) -> (B, Q, C)."""
    B, C, H, W = image.shape
    x, y = locations[..., 0], locations[..., 1]
    x0, y0 = x.floor().detach(), y.floor().detach()
    out = torch.zeros(B, locations.shape[1], C, dtype=image.dtype)
    for dx in (0, 1):
        for dy in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            weight = (1 - (x - xi).abs()) * (1 - (y - yi).abs())
            inside = (xi >= 0) & (xi <= W - 1) & (yi >= 0) & (yi <= H - 1)
            index = (yi.clamp(0, H - 1) * W + xi.clamp(0, W - 1)).long()
            corner = torch.gather(image.flatten(2), 2, index[:, None, :].expand(B, C, -1)).transpose(1, 2)
            out = out + corner * (weight * inside)[..., None]
    return out


def grid_image(tokens, H, W):
    """Row-major tokens (B, H*W, C) as an image (B, C, H, W)."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], H, W)


def reference_points(H, W, dtype):
    """Token centres (H*W, 2) as (x, y): token i * W + j sits at (j, i)."""
    ys, xs = torch.meshgrid(torch.arange(H, dtype=dtype), torch.arange(W, dtype=dtype), indexing="ij")
    return torch.stack([xs.flatten(), ys.flatten()], dim=-1)


def dca(layer, x, z, grid_size):
    """Eqs. 3-4 read literally: loop over heads and points, sample x itself, then apply W_k and W_v."""
    H, W = grid_size
    B, N, D = x.shape
    heads, points = layer.num_heads, layer.num_points
    d = D // heads
    q = linear(x, layer.q)
    guide = torch.cat([q, linear(z, layer.z)], dim=-1)
    conv = layer.offset_conv
    guide = F.conv2d(grid_image(guide, H, W), conv.weight, conv.bias, padding=conv.padding, groups=conv.groups)
    guide = F.gelu(guide).flatten(2).transpose(1, 2)
    offsets = linear(guide, layer.offset_proj).reshape(B, N, heads, points, 2)
    image = grid_image(x, H, W)
    w_key, w_value = layer.kv.weight[:D], layer.kv.weight[D:]
    head_outputs = []
    for head in range(heads):
        channels = slice(head * d, (head + 1) * d)
        logits, values = [], []
        for point in range(points):
            sample = bilinear(image, reference_points(H, W, x.dtype) + offsets[:, :, head, point])
            key = sample @ w_key[channels].T
            values.append(sample @ w_value[channels].T)
            logits.append((q[..., channels] * key).sum(-1) / math.sqrt(d))
        weights = torch.stack(logits, dim=-1).softmax(dim=-1)
        head_outputs.append(sum(weights[..., p : p + 1] * values[p] for p in range(points)))
    return linear(torch.cat(head_outputs, dim=-1), layer.proj)


def adc_stream(stream, motion, features, grid_size):
    """One direction of an ADC block (paper "Adaptive Deformable Cross block"), with DCA as its operator.

    ``m' = m + W_merge [DCA(x=LN m, z=LN F) (+) CrossAttn(query LN m, context LN F)]``, then
    ``m' + MLP(LN m')``. motion, features (B, N, D) -> (B, N, D).
    """
    normed, guide = layer_norm(motion, stream.norm_motion), layer_norm(features, stream.norm_features)
    branches = torch.cat([dca(stream.deformable, normed, guide, grid_size), attention(stream.cross, normed, guide)], -1)
    motion = motion + linear(branches, stream.merge)
    return motion + mlp(layer_norm(motion, stream.norm_mlp), stream.mlp)


def motion_fusion(fusion, motion):
    """The fusion layer: per token, the S streams' vectors concatenated in stream order, LN, MLP.

    motion (B, S, N, D) -> (B, N, D).
    """
    S, N = motion.shape[1], motion.shape[2]
    tokens = []
    for n in range(N):
        joined = torch.cat([motion[:, s, n] for s in range(S)], dim=-1)  # (B, S*D): stream 0's D first
        tokens.append(mlp(layer_norm(joined, fusion.norm), fusion.mlp))
    return torch.stack(tokens, dim=1)


def spatio_temporal_aggregation(layer, features):
    """Spatio-temporal aggregation (Sec. "Human-Keypoint Mask ..."), computed frame by frame and token by token.

    Spatial blocks over each frame's N tokens; the frame embedding added to each token's T copies, temporal
    blocks over those copies; the copies concatenated in frame order, LN, MLP to D. features (B, T, N, D) ->
    (B, N, D).
    """
    T, N = features.shape[1], features.shape[2]
    frames = [features[:, t] for t in range(T)]
    for block in layer.spatial_blocks:
        frames = [transformer_block(block, frame) for frame in frames]
    tokens = []
    for n in range(N):
        copies = torch.stack([frames[t][:, n] + layer.frame_embed[t] for t in range(T)], dim=1)  # (B, T, D)
        for block in layer.temporal_blocks:
            copies = transformer_block(block, copies)
        joined = torch.cat([copies[:, t] for t in range(T)], dim=-1)  # (B, T*D): frame 0's D first
        tokens.append(mlp(layer_norm(joined, layer.norm), layer.fold))
    return torch.stack(tokens, dim=1)
