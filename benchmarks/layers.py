"""Benchmarks for vremd_layers, each against a baseline timed in the same run.

1. DCA forward + backward at the paper's scale (B=32, 16x12 grid, D=1024, 8 heads, 4 points) against
   - a naive loop over heads and points (one grid_sample per head and point, on all D channels), and
   - the transformers-style pure-torch formulation (per-tensor ``value.flatten(2).transpose(1, 2).reshape(...)``
     layout, keys and values sampled by separate grid_sample calls, broadcast-multiply-and-sum attention),
   with memory (CUDA: peak allocated; CPU: activations saved for the backward pass).
2. Attention backends, forward + backward: sdpa vs math on CPU; xformers vs sdpa on CUDA when installed.

    uv run python benchmarks/layers.py                      # paper scale, a few minutes on 2 cores
    uv run python benchmarks/layers.py --batch-size 8       # smaller batch
    uv run python benchmarks/layers.py --device cuda        # on a GPU
"""

import argparse
import importlib.util
import math
import statistics
import time

import torch
import torch.nn.functional as F
from einops import rearrange

from vremd_layers import Attention, DeformableCrossAttention


def offsets_and_query(layer, x, z, H, W):
    """The layer's own query and sampling locations (shared by all variants, so only sampling differs)."""
    query = layer.q(x)
    guide = rearrange(torch.cat([query, layer.z(z)], dim=-1), "b (hh ww) c -> b c hh ww", hh=H)
    guide = rearrange(layer.offset_act(layer.offset_conv(guide)), "b c hh ww -> b (hh ww) c")
    offsets = rearrange(layer.offset_proj(guide), "b n (h p xy) -> b n h p xy", h=layer.num_heads, xy=2)
    ys, xs = torch.meshgrid(torch.arange(H, device=x.device), torch.arange(W, device=x.device), indexing="ij")
    reference = torch.stack([xs.flatten(), ys.flatten()], dim=-1).to(x.dtype)
    return query, reference[:, None, None, :] + offsets


def to_grid(locations, H, W):
    """Token-grid (x, y) to grid_sample's [-1, 1] with align_corners=False."""
    return (locations + 0.5) * locations.new_tensor([2.0 / W, 2.0 / H]) - 1.0


def naive_dca(layer, x, z, grid_size):
    """Eqs. 3-4 literally: loop over heads and points, sample all D channels of x, project per head."""
    H, W = grid_size
    D = x.shape[-1]
    heads, points, d = layer.num_heads, layer.num_points, D // layer.num_heads
    query, locations = offsets_and_query(layer, x, z, H, W)
    image = rearrange(x, "b (hh ww) c -> b c hh ww", hh=H)
    w_key, w_value = layer.kv.weight[:D], layer.kv.weight[D:]
    outputs = []
    for head in range(heads):
        channels = slice(head * d, (head + 1) * d)
        logits, values = [], []
        for point in range(points):
            grid = to_grid(locations[:, :, head, point], H, W)[:, :, None, :]  # (B, N, 1, 2)
            sample = F.grid_sample(image, grid, align_corners=False)[..., 0].transpose(1, 2)  # (B, N, D)
            values.append(sample @ w_value[channels].T)
            logits.append((query[..., channels] * (sample @ w_key[channels].T)).sum(-1) / math.sqrt(d))
        weights = torch.stack(logits, dim=-1).softmax(dim=-1)
        outputs.append(sum(weights[..., p, None] * values[p] for p in range(points)))
    return layer.proj(torch.cat(outputs, dim=-1))


def transformers_style_dca(layer, x, z, grid_size):
    """DCA in the layout of transformers' pure-torch multi_scale_deformable_attention (single level)."""
    H, W = grid_size
    B, N, D = x.shape
    heads, d = layer.num_heads, D // layer.num_heads
    query, locations = offsets_and_query(layer, x, z, H, W)
    key, value = layer.kv(x).view(B, N, 2, heads, d).unbind(dim=2)
    grid = to_grid(locations, H, W).transpose(1, 2).flatten(0, 1)  # (B*heads, N, P, 2)
    sampled = []
    for tensor in (key, value):
        image = tensor.flatten(2).transpose(1, 2).reshape(B * heads, d, H, W)
        sampled.append(F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=False))
    sampled_key, sampled_value = sampled  # (B*heads, d, N, P)
    query = query.view(B, N, heads, d).permute(0, 2, 3, 1).reshape(B * heads, d, N, 1)
    weights = ((query * sampled_key).sum(1, keepdim=True) / math.sqrt(d)).softmax(dim=-1)
    out = (sampled_value * weights).sum(-1).view(B, heads * d, N).transpose(1, 2)
    return layer.proj(out)


def ours(layer, x, z, grid_size):
    return layer(x, z, grid_size)


VARIANTS = {"vremd_layers DCA": ours, "transformers-style": transformers_style_dca, "naive loop": naive_dca}


def make_dca(args):
    torch.manual_seed(0)
    layer = DeformableCrossAttention(args.dim, num_heads=args.heads, num_points=args.points).to(args.device)
    shape = (args.batch_size, args.height * args.width, args.dim)
    x = torch.randn(shape, device=args.device, requires_grad=True)
    z = torch.randn(shape, device=args.device, requires_grad=True)
    return layer, x, z


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def fwd_bwd_step(fn, layer, x, z, grid_size):
    def step():
        layer.zero_grad(set_to_none=True)
        x.grad = z.grad = None
        fn(layer, x, z, grid_size).square().mean().backward()

    return step


def time_interleaved(steps, device, repeats):
    """Median and best seconds per step; the steps take turns so that load from other processes hits all alike."""
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            sync(device)
            start = time.perf_counter()
            step()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(values), min(values)) for name, values in times.items()}


def step_memory(step, device, known_tensors):
    """Run ``step`` once (it doubles as the warm-up) and return the memory it needed beyond known tensors.

    CUDA: the allocator's peak over what was allocated before. CPU has no allocator statistics, so there it is
    the activation memory kept for the backward pass (distinct storages saved by autograd, ``known_tensors``
    such as inputs and weights excluded), which is what dominates training memory.
    """
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        step()
        return torch.cuda.max_memory_allocated() - before
    known = {t.untyped_storage().data_ptr() for t in known_tensors}
    saved = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in known:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        step()
    return sum(saved.values())


def check_dca_variants_agree(layer, x, z, grid_size):
    with torch.no_grad():
        expected = ours(layer, x[:2], z[:2], grid_size)
        for name, fn in VARIANTS.items():
            error = (fn(layer, x[:2], z[:2], grid_size) - expected).abs().max().item()
            if error > 1e-4:
                raise RuntimeError(f"{name} disagrees with vremd_layers DCA: max abs error {error:.2e}")


def bench_dca(args):
    torch.set_num_threads(args.threads)
    grid_size = (args.height, args.width)
    layer, x, z = make_dca(args)
    check_dca_variants_agree(layer, x, z, grid_size)
    print(
        f"DCA forward+backward, B={args.batch_size}, grid {args.height}x{args.width}, D={args.dim}, "
        f"{args.heads} heads, {args.points} points, {args.device}, {args.threads} threads, median of {args.repeats}"
    )
    steps = {name: fwd_bwd_step(fn, layer, x, z, grid_size) for name, fn in VARIANTS.items()}
    peaks = {name: step_memory(step, args.device, [x, z, *layer.parameters()]) for name, step in steps.items()}
    seconds = time_interleaved(steps, args.device, args.repeats)
    ours_median, ours_best = seconds["vremd_layers DCA"]
    memory_label = "peak" if args.device == "cuda" else "saved for backward"
    for name in VARIANTS:
        median, best = seconds[name]
        print(
            f"  {name:20s} median {median * 1e3:9.1f} ms (best {best * 1e3:9.1f})  "
            f"{memory_label} {peaks[name] / 2**20:6.0f} MiB  "
            f"ours is {median / ours_median:.2f}x faster (best: {best / ours_best:.2f}x)"
        )


def bench_attention(args):
    torch.manual_seed(0)
    device = args.device
    backends = ["math", "sdpa"] if device == "cpu" else ["sdpa", "xformers"]
    if device == "cuda" and importlib.util.find_spec("xformers") is None:
        print("  xformers not installed: skipping xformers vs sdpa")
        return
    torch.set_num_threads(args.threads)
    shape = (args.attn_batch_size, args.attn_tokens, args.dim)
    dtype = torch.float32 if device == "cpu" else torch.float16
    x = torch.randn(shape, device=device, dtype=dtype, requires_grad=True)
    base = Attention(args.dim, num_heads=args.attn_heads, backend=backends[0]).to(device, dtype)
    other = Attention(args.dim, num_heads=args.attn_heads, backend=backends[1]).to(device, dtype)
    other.load_state_dict(base.state_dict())
    print(
        f"Attention forward+backward, B={args.attn_batch_size}, N={args.attn_tokens}, D={args.dim}, "
        f"{args.attn_heads} heads, {device}, {dtype}"
    )
    steps = {layer.backend: (lambda layer=layer: layer(x).sum().backward()) for layer in (base, other)}
    for step in steps.values():
        step()  # warm-up
    seconds = time_interleaved(steps, device, args.repeats)
    for name, (median, best) in seconds.items():
        print(f"  {name:9s} median {median * 1e3:9.1f} ms (best {best * 1e3:9.1f})")
    ratio = seconds[backends[0]][0] / seconds[backends[1]][0]
    best_ratio = seconds[backends[0]][1] / seconds[backends[1]][1]
    print(f"  {backends[1]} is {ratio:.2f}x faster than {backends[0]} (best: {best_ratio:.2f}x)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--height", type=int, default=16)
    parser.add_argument("--width", type=int, default=12)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--points", type=int, default=4)
    parser.add_argument("--attn-batch-size", type=int, default=8)
    parser.add_argument("--attn-tokens", type=int, default=627, help="HKME joint tokens: 3 * (192 + 17)")
    parser.add_argument("--attn-heads", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--only", choices=["dca", "attention"], default=None)
    args = parser.parse_args()
    if args.only in (None, "dca"):
        bench_dca(args)
    if args.only in (None, "attention"):
        bench_attention(args)


if __name__ == "__main__":
    main()
