"""Training throughput (images/s) of the ABN, plain and CAM variants of one backbone, side by side.

Each round runs every (variant, precision, mode) for ``--steps`` SGD steps in turn, so they
share whatever else the machine is doing; the median over rounds is reported, with the ratio
ABN / plain (cost of the attention branch) and CAM / plain. Modes: ``eager`` (the default) and,
on CUDA, ``graphs`` (each step replayed as one CUDA graph, ``abn/train/graphs.py``), each with its
``÷ eager`` speed-up. Memory formats: ``auto`` (what training picks, ``use_channels_last``),
``nchw`` and ``channels-last``, with the ``÷ nchw`` speed-up where NCHW is measured too.
Writes JSON.

    python benchmarks/train_throughput.py --models resnet20 resnet110 --batch-size 128
    python benchmarks/train_throughput.py --real cifar10 --devices cuda --compile
    python benchmarks/train_throughput.py --devices cuda --models resnet56 --modes eager graphs
    python benchmarks/train_throughput.py --models resnet20 --memory-formats nchw channels-last
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from abn.device import resolve_device
from abn.models import create
from abn.precision import cpu_capability, native_bf16, use_channels_last
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
        return list(mem.loader(n, train=True, device=device, seed=0))
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(args.steps):
        x = torch.randn(n, 3, size, size, generator=g).to(device)
        out.append((x, torch.randint(0, args.num_classes, (n,), generator=g).to(device)))
    return out


def channels_last(fmt: str, device: torch.device, precision: str) -> bool:
    return use_channels_last(fmt, device, precision) if fmt == "auto" else fmt == "channels-last"


def build(name: str, variant: str, args, device: torch.device, cl: bool):
    torch.manual_seed(0)
    fmt = torch.channels_last if cl else torch.preserve_format
    model = create(name, variant, args.num_classes).to(device, memory_format=fmt)
    kw = {"fused": True} if device.type == "cuda" else {"foreach": True}
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4, **kw)
    runner = torch.compile(model) if args.compile else model
    return runner, opt


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def in_format(data: list[tuple[torch.Tensor, torch.Tensor]], cl: bool) -> list:
    fmt = torch.channels_last if cl else torch.contiguous_format
    return [(x.contiguous(memory_format=fmt), y) for x, y in data]


def bench_model(name: str, device: torch.device, args) -> list[dict]:
    data = batches(args, device)
    runs = {}
    modes = [m for m in args.modes if m == "eager" or device.type == "cuda"]
    for variant in args.variants:
        for mode in modes:
            for precision in args.precisions:
                for fmt in args.memory_formats:
                    cl = channels_last(fmt, device, precision)
                    model, opt = build(name, variant, args, device, cl)
                    cfg = TrainConfig(cuda_graphs=mode == "graphs")
                    step = make_step(cfg, model, opt, device, precision)  # the runs' own step
                    # graphs: 3 eager warm-ups, then the capture, before anything is timed
                    warm = args.warmup if mode == "eager" else max(args.warmup, 4)
                    own = in_format(data, cl)
                    for x, y in (own * warm)[:warm]:
                        step(x, y)
                    label = "channels-last" if cl else "nchw"
                    runs[(variant, precision, mode, fmt, label)] = (step, own, [])
    for _ in range(args.rounds):
        for step, own, times in runs.values():
            sync(device)
            t = time.perf_counter()
            for x, y in own:
                step(x, y)
            sync(device)
            times.append(time.perf_counter() - t)
    rows = []
    images = args.batch_size * len(data)
    for (variant, precision, mode, fmt, label), (_, _, times) in runs.items():
        rows.append(
            {
                "model": name,
                "variant": variant,
                "precision": precision,
                "mode": mode,
                "memory_format": label if fmt != "auto" else f"auto: {label}",
                "device": device.type,
                "images_per_s": images / statistics.median(times),
            }
        )
    keys = ("variant", "precision", "mode", "memory_format")

    def other(row: dict, **changed: str) -> dict | None:
        want = {k: changed.get(k, row[k]) for k in keys}
        return next((r for r in rows if all(r[k] == v for k, v in want.items())), None)

    for row in rows:
        row["cost_vs_plain"] = other(row, variant="plain")["images_per_s"] / row["images_per_s"]
        row["speedup_vs_eager"] = row["images_per_s"] / other(row, mode="eager")["images_per_s"]
        nchw = other(row, memory_format="nchw")
        row["speedup_vs_nchw"] = row["images_per_s"] / nchw["images_per_s"] if nchw else None
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
    p.add_argument("--memory-formats", nargs="+", default=["auto"],
                   choices=["auto", "nchw", "channels-last"],
                   help="auto: what training picks for the device and precision")  # fmt: skip
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
    try:  # a GPU asked for on a machine without one: one line, not a driver traceback
        resolved = {dev: resolve_device(dev) for dev in devices}
    except ValueError as exc:
        p.error(str(exc))
    rows = []
    for dev in devices:
        device = resolved[dev]
        for name in args.models:
            new = bench_model(name, device, args)
            print(
                f"done {name} on {dev}: "
                + ", ".join(
                    f"{r['variant']}/{r['precision']}/{r['mode']}/{r['memory_format']} "
                    f"{r['images_per_s']:.1f} img/s"
                    for r in new
                ),
                flush=True,
            )
            rows += new
    print(
        f"{'model':<11}{'device':<7}{'prec':<6}{'mode':<7}{'format':<20}{'variant':<8}{'img/s':>9}"
        f"{'÷ plain':>9}{'÷ eager':>9}{'÷ nchw':>9}"
    )
    for r in rows:
        vs_nchw = f"{r['speedup_vs_nchw']:>8.2f}x" if r["speedup_vs_nchw"] else f"{'-':>9}"
        print(
            f"{r['model']:<11}{r['device']:<7}{r['precision']:<6}{r['mode']:<7}"
            f"{r['memory_format']:<20}{r['variant']:<8}{r['images_per_s']:>9.1f}"
            f"{r['cost_vs_plain']:>8.2f}x{r['speedup_vs_eager']:>8.2f}x{vs_nchw}"
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
        "memory_formats": args.memory_formats,
        "data": args.real or "synthetic",
    }
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
