"""What does an explanation cost compared with a forward pass?

For one backbone: the median time of the plain-variant model's forward, the ABN model's own
forward, and every explanation method on the ABN model, measured side by side (interleaved
rounds, so load changes on a shared machine hit all alike), at several batch sizes, on CPU and
on GPU when present. Prints each time as a ratio to the plain forward and to the ABN forward,
and writes JSON. The paper's claim: ABN's map costs nothing beyond its forward pass (target:
``abn`` ≤ 1.05× the ABN forward).

    python benchmarks/explain_cost.py --model resnet110 --threads 2
    python benchmarks/explain_cost.py --model resnet18 --input-size 160 --kw stem=imagenet
    python benchmarks/explain_cost.py --compare-160      # the dashboard's Compare, one image
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import time
from collections.abc import Callable

import torch

import abn
from abn.explain import explain, explain_many, get_method, list_methods
from abn.explain.render import overlay

# many forward passes per image (Score-CAM, Ablation-CAM, RISE, Integrated Gradients, Occlusion):
# batch 1, few repetitions
SLOW = frozenset(m for m in list_methods() if get_method(m).slow)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _kwargs(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        out[key] = int(value) if value.lstrip("-").isdigit() else value
    return out


def measure(
    candidates: dict[str, Callable[[], object]],
    device: str,
    budget_s: float,
    max_reps: int,
    reps_for: Callable[[str], int] | None = None,
) -> dict[str, float]:
    """Median seconds per candidate over interleaved rounds (2 warm-up calls each)."""
    estimate = {}
    for name, fn in candidates.items():
        for _ in range(2 if name not in SLOW else 1):
            _sync(device)
            t = time.perf_counter()
            fn()
            _sync(device)
            estimate[name] = time.perf_counter() - t
    per_round = sum(estimate.values())
    rounds = max(3, min(max_reps, int(budget_s / max(per_round, 1e-6))))
    times: dict[str, list[float]] = {n: [] for n in candidates}
    for r in range(rounds):
        for name, fn in candidates.items():
            if reps_for is not None and r >= reps_for(name):
                continue
            _sync(device)
            t = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - t)
    return {n: statistics.median(v) for n, v in times.items() if v}


def bench_model(args: argparse.Namespace, device: str) -> list[dict]:
    kw = _kwargs(args.kw)
    if args.checkpoint:
        model = abn.load(args.checkpoint, map_location=device)
        name, kw = model.spec.name, dict(model.spec.kwargs)
        num_classes = model.spec.num_classes
    else:
        name, num_classes = args.model, args.num_classes
        model = abn.create(name, args.variant, num_classes=num_classes, **kw).to(device).eval()
    plain = abn.create(name, "plain", num_classes=num_classes, **kw).to(device).eval()
    size = args.input_size or abn.models.get_entry(name).input_size[0]
    usable = list_methods(model)
    asked = [get_method(m).name for m in args.methods] if args.methods else usable
    methods = [m for m in asked if m in usable]
    sizes = list(args.batch_sizes)
    if device.startswith("cuda") and 256 not in sizes:
        sizes.append(256)
    autocast = (
        torch.autocast(device.split(":")[0], dtype=torch.bfloat16)
        if args.bf16
        else contextlib.nullcontext()
    )
    rows = []
    for bs in sizes:
        x = torch.randn(bs, 3, size, size, device=device)

        def forward(m=model, x=x):
            with torch.inference_mode():
                return m(x)

        candidates: dict[str, Callable[[], object]] = {
            "forward: plain": lambda: forward(plain),
            "forward: " + model.spec.variant: forward,
        }
        for method in methods:
            if method in SLOW and bs > 1:
                continue
            candidates[method] = lambda m=method, x=x: explain(model, x, m)
        with autocast:
            medians = measure(
                candidates,
                device,
                args.budget,
                args.max_reps,
                reps_for=lambda n: 1 if n in SLOW else 10**9,
            )
        base_plain = medians["forward: plain"]
        base_own = medians["forward: " + model.spec.variant]
        for cand, sec in medians.items():
            rows.append(
                {
                    "model": f"{name}/{model.spec.variant}",
                    "device": device,
                    "input": size,
                    "batch": bs,
                    "what": cand,
                    "ms": sec * 1e3,
                    "x_plain_forward": sec / base_plain,
                    "x_own_forward": sec / base_own,
                    "bf16": bool(args.bf16),
                }
            )
        print_table([r for r in rows if r["batch"] == bs])
    return rows


def print_table(rows: list[dict]) -> None:
    r0 = rows[0]
    print(
        f"\n{r0['model']} · {r0['device']} · {r0['input']} px · batch {r0['batch']}"
        f"{' · bf16' if r0['bf16'] else ''}"
    )
    print(f"| {'what':<20} | {'ms':>10} | {'× plain fwd':>11} | {'× own fwd':>9} |")
    print(f"|{'-' * 22}|{'-' * 12}|{'-' * 13}|{'-' * 11}|")
    for r in rows:
        print(
            f"| {r['what']:<20} | {r['ms']:>10.2f} | {r['x_plain_forward']:>11.2f} "
            f"| {r['x_own_forward']:>9.2f} |"
        )


def compare_160(args: argparse.Namespace, device: str) -> list[dict]:
    """The dashboard's Compare for one 160 px image: ABN, CAM, Grad-CAM, Grad-CAM++ maps and
    their overlays, from resnet18 ABN / CAM / plain models with 10 classes."""
    models = {
        v: abn.create("resnet18", v, num_classes=10).to(device).eval()
        for v in ("abn", "cam", "plain")
    }
    from PIL import Image

    image = Image.new("RGB", (160, 160), (120, 90, 60))
    from abn.explain.preprocess import preprocess

    def prep():
        return preprocess(image, input_size=(160, 160), mean=(0.5,) * 3, std=(0.5,) * 3).to(device)

    def separate():  # Grad-CAM family on the plain baseline
        x = prep()
        maps = [
            explain(models["abn"], x, "abn").maps[0],
            explain(models["cam"], x, "cam").maps[0],
            *(
                r.maps[0]
                for r in explain_many(models["plain"], x, ["gradcam", "gradcam++"]).values()
            ),
        ]
        return [overlay(image, m) for m in maps]

    def shared():  # Grad-CAM family on the ABN model, sharing ABN's forward pass
        x = prep()
        maps = [
            *(
                r.maps[0]
                for r in explain_many(models["abn"], x, ["abn", "gradcam", "gradcam++"]).values()
            ),
            explain(models["cam"], x, "cam").maps[0],
        ]
        return [overlay(image, m) for m in maps]

    def forwards():
        x = prep()
        with torch.inference_mode():
            for m in models.values():
                m(x)

    medians = measure(
        {
            "3 forwards only": forwards,
            "compare (grad on plain)": separate,
            "compare (grad on abn)": shared,
        },
        device,
        args.budget,
        args.max_reps,
    )
    print(f"\nCompare, one 160 px image, resnet18 ×3 models, 10 classes · {device}")
    print(f"| {'what':<26} | {'ms':>9} |")
    print(f"|{'-' * 28}|{'-' * 11}|")
    for k, v in medians.items():
        print(f"| {k:<26} | {v * 1e3:>9.1f} |")
    return [{"device": device, "what": k, "ms": v * 1e3} for k, v in medians.items()]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="resnet110", help="registry backbone name")
    p.add_argument("--variant", default="abn")
    p.add_argument("--checkpoint", default=None, help="benchmark a saved model instead")
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--kw", nargs="*", default=[], help="backbone options, e.g. stem=small")
    p.add_argument("--input-size", type=int, default=None, help="default: the registry's")
    p.add_argument("--batch-sizes", type=lambda s: [int(v) for v in s.split(",")], default=[1, 64])
    p.add_argument("--methods", type=lambda s: s.split(","), default=None)
    p.add_argument("--devices", default=None, help="default: cpu, and cuda when present")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--budget", type=float, default=20.0, help="seconds of timing per table")
    p.add_argument("--max-reps", type=int, default=30)
    p.add_argument("--bf16", action="store_true", help="run everything under bf16 autocast")
    p.add_argument("--compare-160", action="store_true", help="time the dashboard's Compare")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    devices = args.devices.split(",") if args.devices else ["cpu"]
    if args.devices is None and torch.cuda.is_available():
        devices.append("cuda")
    info = {
        "torch": torch.__version__,
        "cpu_threads": args.threads,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
    print(json.dumps(info))
    results = []
    for device in devices:
        results += compare_160(args, device) if args.compare_160 else bench_model(args, device)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"info": info, "args": vars(args), "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
