"""Inference throughput (images/s) of checkpoints in NCHW and channels-last, side by side.

What ``python -m abn eval`` picks is ``use_channels_last("auto", ...)``: channels-last on CUDA
and on CPU in fp32. Each round times every (checkpoint, format) in turn on the same random batch
at the card's input size, so they share whatever else the machine is doing; the median over
rounds is reported with the ``channels-last ÷ NCHW`` speed-up. The numbers are the same either
way (``tests/train/test_evaluate.py`` checks ``abn eval`` against a plain NCHW loop, and
``tests/test_assets.py`` the shipped cards). Writes JSON.

    python benchmarks/eval_throughput.py                       # the shipped models in assets/
    python benchmarks/eval_throughput.py runs/my-run/model.safetensors --device cuda
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from abn.checkpoint import load
from abn.device import resolve_device
from abn.train.run import hardware

ASSETS = Path(__file__).resolve().parents[1] / "assets"
FORMATS = {"nchw": torch.contiguous_format, "channels-last": torch.channels_last}


@torch.inference_mode()
def images_per_second(model: torch.nn.Module, x: torch.Tensor, steps: int) -> float:
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        model(x)
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return steps * len(x) / (time.perf_counter() - start)


def measure(path: Path, args: argparse.Namespace, device: torch.device) -> dict:
    model = load(path, map_location=device).eval()
    h, w = model.card.input_size
    x = torch.randn(args.batch_size, 3, h, w, device=device)
    speeds: dict[str, list[float]] = {fmt: [] for fmt in FORMATS}
    for _ in range(args.rounds):
        for fmt, memory_format in FORMATS.items():
            model.to(memory_format=memory_format)
            xf = x.contiguous(memory_format=memory_format)
            images_per_second(model, xf, 1)  # warm-up: oneDNN picks its kernels per format
            speeds[fmt].append(images_per_second(model, xf, args.steps))
    median = {fmt: statistics.median(v) for fmt, v in speeds.items()}
    return {
        "checkpoint": path.name,
        "input_size": [h, w],
        "images_per_s": median,
        "channels_last_speedup": median["channels-last"] / median["nchw"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoints", nargs="*", type=Path, help="default: assets/*.safetensors")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=2, help="timed batches per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/eval_throughput.json"))
    args = p.parse_args()
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        p.error(str(exc))
    paths = args.checkpoints or sorted(ASSETS.glob("*.safetensors"))
    print(f"{hardware(device)} · torch {torch.__version__} · {torch.get_num_threads()} threads")
    print(f"{'checkpoint':45} {'size':>8} {'NCHW':>8} {'ch-last':>8} {'÷ NCHW':>7}  (images/s)")
    rows = []
    for path in paths:
        row = measure(path, args, device)
        rows.append(row)
        speed = row["images_per_s"]
        size = "×".join(map(str, row["input_size"]))
        print(
            f"{row['checkpoint']:45} {size:>8} {speed['nchw']:8.1f} "
            f"{speed['channels-last']:8.1f} {row['channels_last_speedup']:6.2f}×",
            flush=True,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "hardware": hardware(device),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "rows": rows,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
