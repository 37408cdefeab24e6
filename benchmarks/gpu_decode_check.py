"""GPU JPEG decoding (``TopDownTransform(torch_decode_device="cuda")``) vs the CPU path, samples per second.

Same rows (shuffled, 1080p synthetic clips), same outputs, same run: the default CPU path (libjpeg-turbo
DCT-scaled decoding + cv2 warps, one thread: one DataLoader worker's rate) against batched nvJPEG decoding
through ``torchvision.io.decode_jpeg(list, device="cuda")`` with the crops warped on the GPU, timed in wall
seconds with the device synchronised. Prints both rates, the ratio, and how far the crops differ.
Called by ``benchmarks/gpu_check.sh``; ``--device cpu`` runs the torchvision path on the CPU (a smoke run).

    uv run python benchmarks/gpu_decode_check.py
"""

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from posetrack_data import TopDownTransform, generate_dataset, load_posetrack
from posetrack_data.transforms import IMAGENET_STD


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best of each is kept")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("gpu_decode_check.py: no CUDA device visible to torch")
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "synthetic"
        generate_dataset(root, num_videos=args.videos, num_frames=args.frames, image_size=(1920, 1080),
                         person_height=(0.3, 0.85), seed=0, val_fraction=0.25)  # fmt: skip
        rows = load_posetrack(root, split="train", cache_dir=Path(tmp) / "cache")
        order = np.random.default_rng(0).permutation(len(rows))
        batches = [order[i : i + args.batch_size] for i in range(0, len(order), args.batch_size)]
        cpu = TopDownTransform(train=False, root=root, return_tensors="pt")
        dev = TopDownTransform(train=False, root=root, torch_decode_device=args.device, return_tensors="pt")
        cpu_ds, dev_ds = rows.with_transform(cpu), rows.with_transform(dev)
        dev_ds[batches[0].tolist()]  # warm-up: nvJPEG handles, CUDA context

        def sync() -> None:
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()

        best = {"cpu": float("inf"), "device": float("inf")}
        for _ in range(args.rounds):
            for name, ds in (("cpu", cpu_ds), ("device", dev_ds)):
                sync()
                start = time.perf_counter()
                for batch in batches:
                    out = ds[batch.tolist()]
                sync()
                best[name] = min(best[name], time.perf_counter() - start)
        a, b = cpu_ds[batches[0].tolist()], dev_ds[batches[0].tolist()]
        to_255 = torch.tensor(IMAGENET_STD).view(3, 1, 1) * 255
        diff = ((a["pixel_values"] - b["pixel_values"].cpu()).abs() * to_255).mean().item()
        n = len(order)
        name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
        print(f"{n} shuffled 1080p rows, batch {args.batch_size}, best of {args.rounds}; device: {name}")
        print(f"CPU path (libjpeg-turbo, 1 thread): {n / best['cpu']:7.1f} samples/s")
        print(f"torchvision decode_jpeg on {args.device}: {n / best['device']:7.1f} samples/s"
              f" ({out['pixel_values'].device})")  # fmt: skip
        print(f"ratio device / CPU: {best['cpu'] / best['device']:.2f}x; mean |pixel diff| {diff:.2f}/255")


if __name__ == "__main__":
    main()
