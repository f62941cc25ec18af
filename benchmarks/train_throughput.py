"""Training throughput (images/s) of the ABN, plain and CAM variants of one backbone, side by side.

Each round runs every (variant, precision, mode) for ``--steps`` SGD steps in turn, so they
share whatever else the machine is doing; the median over rounds is reported, with the ratio
ABN / plain (cost of the attention branch) and CAM / plain. Modes: ``eager`` (the default) and,
on CUDA, ``graphs`` (each step replayed as one CUDA graph, ``abn/train/graphs.py``), each with its
``÷ eager`` speed-up. Writes JSON.

    python benchmarks/train_throughput.py --models resnet20 resnet110 --batch-size 128
    python benchmarks/train_throughput.py --real cifar10 --devices cuda --compile
    python benchmarks/train_throughput.py --devices cuda --models resnet56 --modes eager graphs
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from abn.models import create
from abn.precision import cpu_capability, native_bf16
from abn.train.config import TrainConfig
from abn.train.run import hardware, make_step


def batches(
    args: argparse.Namespace, device: torch.device
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``--steps`` batches: synthetic (random) or real in-memory, augmented on the device."""
    n, size = args.batch_size, args.size
    if args.real:
        from abn.data.memory import load_into_memory

        mem = load_into_memory(
            args.real, "train", root=args.data_root, limit=n * args.steps, progress=False
        )
        loader = mem.loader(
            n, train=True, device=device, seed=0, channels_last=device.type == "cuda"
        )
        return list(loader)
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(args.steps):
        x = torch.randn(n, 3, size, size, generator=g).to(device)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        out.append((x, torch.randint(0, args.num_classes, (n,), generator=g).to(device)))
    return out


def build(name: str, variant: str, args, device: torch.device):
    torch.manual_seed(0)
    model = create(name, variant, args.num_classes).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    kw = {"fused": True} if device.type == "cuda" else {"foreach": True}
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4, **kw)
    runner = torch.compile(model) if args.compile else model
    return runner, opt


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_model(name: str, device: torch.device, args) -> list[dict]:
    data = batches(args, device)
    runs = {}
    modes = [m for m in args.modes if m == "eager" or device.type == "cuda"]
    for variant in args.variants:
        for mode in modes:
            model, opt = build(name, variant, args, device)
            for precision in args.precisions:
                cfg = TrainConfig(cuda_graphs=mode == "graphs")
                step = make_step(cfg, model, opt, device, precision)  # the runs' own step
                # graphs: 3 eager warm-ups, then the capture, before anything is timed
                warm = args.warmup if mode == "eager" else max(args.warmup, 4)
                for x, y in (data * warm)[:warm]:
                    step(x, y)
                runs[(variant, precision, mode)] = (step, [])
    for _ in range(args.rounds):
        for step, times in runs.values():
            sync(device)
            t = time.perf_counter()
            for x, y in data:
                step(x, y)
            sync(device)
            times.append(time.perf_counter() - t)
    rows = []
    images = args.batch_size * len(data)
    for (variant, precision, mode), (_, times) in runs.items():
        rows.append(
            {
                "model": name,
                "variant": variant,
                "precision": precision,
                "mode": mode,
                "device": device.type,
                "images_per_s": images / statistics.median(times),
            }
        )
    for row in rows:
        same = [r for r in rows if (r["precision"], r["mode"]) == (row["precision"], row["mode"])]
        base = next(r for r in same if r["variant"] == "plain")
        row["cost_vs_plain"] = base["images_per_s"] / row["images_per_s"]
        eager = next(
            r
            for r in rows
            if (r["variant"], r["precision"], r["mode"])
            == (row["variant"], row["precision"], "eager")
        )
        row["speedup_vs_eager"] = row["images_per_s"] / eager["images_per_s"]
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["resnet20", "resnet110"])
    p.add_argument("--variants", nargs="+", default=["abn", "plain", "cam"])
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    p.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda if present")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--steps", type=int, default=3, help="timed steps per round")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--modes", nargs="+", default=["eager"], choices=["eager", "graphs"],
                   help="graphs: CUDA graph replay (CUDA devices only)")  # fmt: skip
    p.add_argument("--real", metavar="DATASET", help="real in-memory data, e.g. cifar10")
    p.add_argument("--data-root")
    p.add_argument("--json", default="benchmarks/results/train_throughput.json")
    args = p.parse_args()
    if "plain" not in args.variants:
        args.variants.append("plain")
    if "eager" not in args.modes:
        args.modes.insert(0, "eager")
    if args.compile and "graphs" in args.modes:
        p.error("--compile and --modes graphs exclude each other")
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    rows = []
    for dev in devices:
        device = torch.device(dev)
        for name in args.models:
            new = bench_model(name, device, args)
            print(
                f"done {name} on {dev}: "
                + ", ".join(
                    f"{r['variant']}/{r['precision']}/{r['mode']} {r['images_per_s']:.1f} img/s"
                    for r in new
                ),
                flush=True,
            )
            rows += new
    print(
        f"{'model':<11}{'device':<7}{'prec':<6}{'mode':<7}{'variant':<8}{'img/s':>9}"
        f"{'÷ plain':>9}{'÷ eager':>9}"
    )
    for r in rows:
        print(
            f"{r['model']:<11}{r['device']:<7}{r['precision']:<6}{r['mode']:<7}{r['variant']:<8}"
            f"{r['images_per_s']:>9.1f}{r['cost_vs_plain']:>8.2f}x{r['speedup_vs_eager']:>8.2f}x"
        )
    cpu_bf16 = "native" if native_bf16(torch.device("cpu")) else "emulated"
    print(f'CPU: {cpu_capability()}, bf16 {cpu_bf16} (precision = "auto" uses bf16 only if native)')
    meta = {
        "hardware": hardware(torch.device(devices[-1])),
        "threads": torch.get_num_threads(),
        "cpu_capability": cpu_capability(),
        "cpu_native_bf16": native_bf16(torch.device("cpu")),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "batch_size": args.batch_size,
        "size": args.size,
        "compile": args.compile,
        "data": args.real or "synthetic",
    }
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
