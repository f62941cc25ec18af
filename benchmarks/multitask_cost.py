"""Cost of multi-task ABN's per-task perception passes against a plain multi-task network.

Multi-task ABN runs the perception branch once per attribute (T passes, batched as B·T inputs),
so its cost grows with T. This prints forward and training-step times of ``abn_multitask`` and
``plain_multitask`` on the same backbone, measured side by side, and their ratio.

    python benchmarks/multitask_cost.py --model resnet18 --stem small --size 64 --tasks 40
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from contextlib import nullcontext

import torch

from abn.models import create


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(args) -> dict:
    device = torch.device(args.device)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    y = torch.randint(0, 2, (args.batch, args.tasks), device=device)
    amp = torch.autocast(device.type, dtype=torch.bfloat16) if args.bf16 else nullcontext()
    results = {}
    for variant in ("plain_multitask", "abn_multitask"):
        kw = {"chunk_size": args.chunk} if variant == "abn_multitask" else {}
        model = create(args.model, variant, num_classes=args.tasks, stem=args.stem, **kw)
        model = model.to(device)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def forward(model=model):
            with torch.no_grad(), amp:
                model.eval()(x)

        def step(model=model, opt=opt):
            model.train()
            with amp:
                out = model(x)
                if out.logits.dim() == 3:
                    loss = torch.nn.functional.cross_entropy(out.logits.flatten(0, 1), y.flatten())
                    loss = loss + torch.nn.functional.binary_cross_entropy_with_logits(
                        out.att_logits, y.float()
                    )
                else:
                    loss = torch.nn.functional.binary_cross_entropy_with_logits(
                        out.logits, y.float()
                    )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        results[variant] = {
            "forward_ms": 1000 * _time(forward, args.repeats),
            "train_step_ms": 1000 * _time(step, args.repeats),
        }
    for key in ("forward_ms", "train_step_ms"):
        results[f"ratio_{key}"] = results["abn_multitask"][key] / results["plain_multitask"][key]
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet18")
    p.add_argument("--stem", default="small")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--tasks", type=int, default=40)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--chunk", type=int, default=0)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", default="")
    args = p.parse_args()
    res = measure(args)
    hw = (
        torch.cuda.get_device_name()
        if args.device.startswith("cuda")
        else f"CPU ×{torch.get_num_threads()} threads"
    )
    print(
        f"{args.model} (stem={args.stem}) at {args.size}px, T={args.tasks}, batch {args.batch}, "
        f"{'bf16' if args.bf16 else 'fp32'}, {hw}"
    )
    print(f"{'variant':<18}{'forward ms':>12}{'train step ms':>16}")
    for v in ("plain_multitask", "abn_multitask"):
        print(f"{v:<18}{res[v]['forward_ms']:>12.1f}{res[v]['train_step_ms']:>16.1f}")
    print(
        f"{'ABN / plain':<18}{res['ratio_forward_ms']:>11.1f}×{res['ratio_train_step_ms']:>15.1f}×"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "hardware": hw, "results": res}, f, indent=2)


if __name__ == "__main__":
    main()
