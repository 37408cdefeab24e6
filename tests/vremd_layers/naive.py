"""Naive references for the vremd_layers modules, written from the paper and its rows in docs/paper-map.md.

Each function reads a module's parameters and recomputes its output with plain torch ops (loops over heads,
points, frames and tokens; no einops, no call of the module or its sub-modules), so a test comparing the two
fails when the module wires a sub-layer wrongly. Sizes in the tests stay tiny; speed is not a goal here.
"""

import math

import torch
import torch.nn.functional as F


def linear(x, layer):
    """``x W^T + b`` with the weights of an ``nn.Linear``."""
    return x @ layer.weight.T + (0 if layer.bias is None else layer.bias)


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
