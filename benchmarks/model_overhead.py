"""Cost of VREMD's own modules relative to its ViT backbone, and training memory frozen vs trainable.

1. Forward time of the whole model / forward time of the backbone alone on the same 3 frames (goal <= 1.25:
   HKME, BMD and the heads cost at most a quarter of the backbone), per preset, timed interleaved in one run.
2. Peak resident memory of one training step (forward, backward, AdamW step) with the backbone frozen vs
   trainable; each case runs in a fresh subprocess so that peaks do not mix.
3. Parameter counts per preset and per module.

    uv run python benchmarks/model_overhead.py                       # vitb and vitl, batch 1, memory for vitb
    uv run python benchmarks/model_overhead.py --presets vremd-vitb --repeats 3 --memory-preset none
"""

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch

from vremd_models import PRESETS, VREMD, VREMDConfig


def parameter_counts(config: VREMDConfig) -> dict[str, int]:
    model = VREMD(config)
    counts = {name: sum(p.numel() for p in module.parameters()) for name, module in model.named_children()}
    counts["total"] = sum(p.numel() for p in model.parameters())
    counts["trainable"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return counts


def time_forward(config: VREMDConfig, batch: int, repeats: int) -> tuple[float, float]:
    torch.manual_seed(0)
    model = VREMD(config).eval()
    pixels = torch.randn(batch, config.num_frames, 3, *config.image_size)
    backbone_times, model_times = [], []
    with torch.inference_mode():
        model(pixels)  # warm-up: allocator, kernels
        for _ in range(repeats):  # interleaved, so load changes hit both alike
            start = time.perf_counter()
            model.backbone(pixels)
            backbone_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            model(pixels)
            model_times.append(time.perf_counter() - start)
    return statistics.median(backbone_times), statistics.median(model_times)


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def train_step_memory(preset: str, frozen: bool, batch: int) -> dict[str, float]:
    """Run in a subprocess: peak RSS of one training step over the RSS before it, in MiB."""
    torch.manual_seed(0)
    config = VREMDConfig.from_preset(preset, freeze_backbone=frozen)
    model = VREMD(config).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    pixels = torch.randn(batch, config.num_frames, 3, *config.image_size)
    targets = torch.rand(batch, config.num_joints, *config.heatmap_size)
    before = _rss_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as clear:  # resets VmHWM (peak RSS) to the current RSS
        clear.write("5")
    model(pixels, targets).loss.backward()
    optimizer.step()
    peak = _rss_kib("VmHWM")
    return {"before_mib": before / 1024, "peak_mib": peak / 1024, "step_mib": (peak - before) / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["vremd-vitb", "vremd-vitl"], choices=sorted(PRESETS))
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    # One thread by default: on a shared 2-core machine the second thread's wake-ups dominate the many small ops of
    # VREMD's own modules and inflate the ratio (measured: 1.8 at 2 threads under load vs 1.15 at 1 thread).
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--memory-preset", default="vremd-vitb", help="preset for the memory comparison, or none")
    parser.add_argument("--memory-batch", type=int, default=2)
    parser.add_argument("--counts", nargs="*", default=sorted(PRESETS), help="presets to count parameters of")
    parser.add_argument("--_memory-case", nargs=2, metavar=("PRESET", "FROZEN"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if args._memory_case:  # child process of the memory comparison
        preset, frozen = args._memory_case
        print(json.dumps(train_step_memory(preset, frozen == "1", args.memory_batch)))
        return

    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, median of {args.repeats}")
    for name in args.counts:
        counts = parameter_counts(PRESETS[name])
        modules = ", ".join(f"{k} {v / 1e6:.2f}M" for k, v in counts.items() if k not in ("total", "trainable"))
        print(
            f"params {name}: total {counts['total'] / 1e6:.2f}M, trainable {counts['trainable'] / 1e6:.2f}M ({modules})"
        )
    for name in args.presets:
        backbone, whole = time_forward(PRESETS[name], args.batch, args.repeats)
        print(
            f"forward {name}: backbone {backbone * 1e3:.0f} ms, model {whole * 1e3:.0f} ms, "
            f"ratio {whole / backbone:.3f} (goal <= 1.25)"
        )
    if args.memory_preset != "none":
        results = {}
        for frozen in ("1", "0"):
            cmd = [sys.executable, __file__, "--threads", str(args.threads), "--memory-batch", str(args.memory_batch)]
            out = subprocess.run([*cmd, "--_memory-case", args.memory_preset, frozen], capture_output=True, text=True)
            if out.returncode != 0:
                raise SystemExit(out.stderr)
            results[frozen] = json.loads(out.stdout.strip().splitlines()[-1])
        frozen_step, trainable_step = results["1"]["step_mib"], results["0"]["step_mib"]
        print(
            f"train-step memory {args.memory_preset} (batch {args.memory_batch}): frozen +{frozen_step:.0f} MiB "
            f"(peak {results['1']['peak_mib']:.0f}), trainable +{trainable_step:.0f} MiB "
            f"(peak {results['0']['peak_mib']:.0f}), ratio trainable/frozen {trainable_step / frozen_step:.2f}"
        )


if __name__ == "__main__":
    main()
