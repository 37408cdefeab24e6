"""Training-step throughput: train.py's accelerate loop vs a naive loop without accelerate, same model, same run.

Both loops run the same VREMD (frozen backbone by default), the same AdamW and the same pre-generated batches;
the accelerate loop goes through ``prepare``, ``accumulate``, ``autocast``, ``backward`` and a LambdaLR step,
exactly as ``train.py`` does. Rounds alternate between the two loops, and the medians are compared, so a
shared machine's load affects both alike.

    uv run python benchmarks/train_throughput.py                       # vremd-tiny, 128x96, CPU
    uv run python benchmarks/train_throughput.py --preset vremd-vitb --image-size 256 192 --batch-size 32
"""

import argparse
import statistics
import time

import torch
from accelerate import Accelerator

from vremd_models import VREMD, VREMDConfig


def make_samples(config: VREMDConfig, count: int) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    T, J = config.num_frames, config.num_joints
    return [
        {
            "pixel_values": torch.randn(T, 3, *config.image_size, generator=generator),
            "target_heatmaps": torch.rand(J, *config.heatmap_size, generator=generator),
            "target_weight": torch.ones(J),
        }
        for _ in range(count)
    ]


def naive_round(model, optimizer, loader, device) -> float:
    start = time.perf_counter()
    count = 0
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        loss = model(batch["pixel_values"], batch["target_heatmaps"], batch["target_weight"]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        count += batch["pixel_values"].shape[0]
    if device.type == "cuda":
        torch.cuda.synchronize()
    return count / (time.perf_counter() - start)


def accelerate_round(accelerator, model, optimizer, scheduler, loader) -> float:
    start = time.perf_counter()
    count = 0
    for batch in loader:
        with accelerator.accumulate(model):
            with accelerator.autocast():
                loss = model(batch["pixel_values"], batch["target_heatmaps"], batch["target_weight"]).loss
            accelerator.backward(loss)
            optimizer.step()
            if accelerator.sync_gradients:
                scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        count += batch["pixel_values"].shape[0]
    if accelerator.device.type == "cuda":
        torch.cuda.synchronize()
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="vremd-tiny")
    parser.add_argument("--image-size", type=int, nargs=2, default=(128, 96), metavar=("H", "W"))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=8, help="steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--trainable-backbone", action="store_true", help="train the backbone too")
    args = parser.parse_args()

    H, W = args.image_size
    config = VREMDConfig.from_preset(
        args.preset, image_size=(H, W), heatmap_size=(H // 4, W // 4), freeze_backbone=not args.trainable_backbone
    )
    samples = make_samples(config, args.batch_size * args.steps)

    accelerator = Accelerator()
    device = accelerator.device
    torch.manual_seed(0)
    naive_model = VREMD(config).to(device).train()
    naive_optimizer = torch.optim.AdamW([p for p in naive_model.parameters() if p.requires_grad], lr=1e-4)
    naive_loader = torch.utils.data.DataLoader(samples, batch_size=args.batch_size, shuffle=False)

    torch.manual_seed(0)
    model = VREMD(config).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    loader = torch.utils.data.DataLoader(samples, batch_size=args.batch_size, shuffle=False)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)

    naive_round(naive_model, naive_optimizer, naive_loader, device)  # warm-up
    accelerate_round(accelerator, model, optimizer, scheduler, loader)
    naive, wrapped = [], []
    for _ in range(args.rounds):
        naive.append(naive_round(naive_model, naive_optimizer, naive_loader, device))
        wrapped.append(accelerate_round(accelerator, model, optimizer, scheduler, loader))

    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6
    print(f"{args.preset} {H}x{W}, batch {args.batch_size}, {trainable:.2f}M trainable parameters, {device}")
    print(f"naive loop (no accelerate):  {statistics.median(naive):8.1f} samples/s")
    print(f"accelerate loop (train.py):  {statistics.median(wrapped):8.1f} samples/s")
    print(f"ratio accelerate / naive:    {statistics.median(wrapped) / statistics.median(naive):8.3f}")


if __name__ == "__main__":
    main()
