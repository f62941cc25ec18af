"""How fast does an attention edit re-predict?

For each shipped ABN model: the time of :meth:`abn.editing.Editable.predict` (the attention
mechanism and the perception branch on the edited map, g(x) reused) against a full forward with
the edited map as override (``model(x, attention=edited)``), measured side by side in
interleaved rounds (so load changes on a shared machine hit both alike), batch 1, no autograd,
fp32. Also the one-time cost of :class:`~abn.editing.Editable` (g(x) and M(x), once per image).
For the multi-task model, one attribute: the override forward is timed over all attributes
(``model(x, attention=...)``) and restricted to the edited one (``tasks=[a]``). Prints median
milliseconds with the interquartile range and n, and writes JSON. Target (issue 19): an edit's
re-prediction under 0.2 s on CPU for a 160 px image.

    python benchmarks/edit_repredict.py      # the three shipped ABN models, CPU, 1 and 2 threads
    python benchmarks/edit_repredict.py --threads 2 --budget 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import abn
from abn.editing import Editable, box, erase
from abn.precision import cpu_capability

REPO = Path(__file__).resolve().parents[1]
MODELS = {  # asset → the attribute to edit (multi-task: 31 = Smiling)
    "imagenette-resnet18-abn": None,
    "cifar10-resnet20-abn": None,
    "celeba-hq-resnet20-abn_multitask": 31,
}
TARGET_S = 0.2


def measure(candidates: dict[str, Callable[[], object]], budget_s: float, max_reps: int):
    """Seconds per call of each candidate over interleaved rounds (2 warm-up calls each)."""
    estimate = {}
    for name, fn in candidates.items():
        for _ in range(2):
            t = time.perf_counter()
            fn()
            estimate[name] = time.perf_counter() - t
    rounds = max(5, min(max_reps, int(budget_s / max(sum(estimate.values()), 1e-6))))
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return times


def summary(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1e3
    q25, median, q75 = np.percentile(ms, [25, 50, 75])
    return {"median_ms": median, "q25_ms": q25, "q75_ms": q75, "n": len(ms)}


def bench(asset: str, attribute: int | None, args: argparse.Namespace) -> list[dict]:
    model = abn.load(REPO / "assets" / f"{asset}.safetensors").eval()
    size = tuple(model.card.input_size)
    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(0))
    editable = Editable(model, x, attribute)
    h, w = editable.map.shape
    edited = erase(editable.map, box((h, w), 0, 0, h // 2 - 1, w // 2 - 1))
    if attribute is None:
        override = torch.from_numpy(edited)[None, None]
    else:
        with torch.no_grad():
            override = model(x).attention.clone()
        override[0, attribute] = torch.from_numpy(edited)

    def full(**kw):
        with torch.no_grad():
            return model(x, attention=override, **kw)

    candidates: dict[str, Callable[[], object]] = {
        "edit re-predict (Editable.predict)": lambda: editable.predict(edited),
        "full forward with override": full,
    }
    if attribute is not None:
        candidates["full forward with override, tasks=[a]"] = lambda: full(tasks=[attribute])
    candidates["setup once per image (Editable)"] = lambda: Editable(model, x, attribute)
    times = measure(candidates, args.budget, args.max_reps)
    base = statistics.median(times["full forward with override"])
    rows = []
    for what, seconds in times.items():
        row = {
            "model": asset,
            "input": f"{size[0]}x{size[1]}",
            "map": f"{h}x{w}",
            "attribute": attribute,
            "what": what,
            **summary(seconds),
            "x_full_forward": statistics.median(seconds) / base,
        }
        rows.append(row)
    return rows


def print_table(rows: list[dict]) -> None:
    r0 = rows[0]
    att = f" · attribute {r0['attribute']}" if r0["attribute"] is not None else ""
    print(f"\n{r0['model']} · {r0['input']} px · map {r0['map']}{att} · {r0['threads']} thread(s)")
    print(f"  {'':40s} {'median ms':>10s} {'IQR ms':>17s} {'n':>5s} {'× full':>7s}")
    for r in rows:
        iqr = f"{r['q25_ms']:.2f}–{r['q75_ms']:.2f}"
        print(
            f"  {r['what']:40s} {r['median_ms']:10.2f} {iqr:>17s} {r['n']:5d} "
            f"{r['x_full_forward']:7.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    parser.add_argument(
        "--threads", type=int, nargs="+", default=[1, 2], help="CPU thread counts to run at"
    )
    parser.add_argument("--budget", type=float, default=8.0, help="seconds per model")
    parser.add_argument("--max-reps", type=int, default=200)
    parser.add_argument(
        "--json", default=str(REPO / "benchmarks" / "results" / "edit_repredict_cpu.json")
    )
    args = parser.parse_args()
    load_before = os.getloadavg()
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for asset in args.models:
            model_rows = [{"threads": threads, **r} for r in bench(asset, MODELS[asset], args)]
            print_table(model_rows)
            rows += model_rows
    for r in rows:
        if r["input"] == "160x160" and r["what"].startswith("edit re-predict"):
            verdict = "meets" if r["median_ms"] / 1e3 < TARGET_S else "misses"
            print(
                f"160 px edit re-predict, {r['threads']} thread(s): {r['median_ms']:.1f} ms "
                f"(IQR {r['q25_ms']:.1f}–{r['q75_ms']:.1f}, n = {r['n']}): {verdict} the 0.2 s "
                "target"
            )
    info = {
        "torch": torch.__version__,
        "cpu_capability": cpu_capability(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor(),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "precision": "fp32",
        "batch": 1,
    }
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"info": info, "args": vars(args), "results": rows}
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
