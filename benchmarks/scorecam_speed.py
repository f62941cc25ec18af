"""Score-CAM seconds per image: pytorch-grad-cam's default use vs the toolkit's fast path.

For each shipped model (ResNet-18 ABN and plain at 160 px, ResNet-20 ABN at 32 px), on ``n``
test images: the library as its README uses it (``ScoreCAM(model, [layer])(x, targets)``: fp32,
its batch of 16 masked images) and ``abn.explain(..., "scorecam")`` (bf16 autocast where native,
channels-last, inference mode, all-zero masks skipped; see ``ScoreCAMExplainer``), one image at
a time, interleaved so load changes on a shared machine hit both alike. Also reports how far the
fast maps are from the library's (Spearman ρ of the low-resolution maps, max |Δ| after min-max
scaling), and writes JSON.

    python benchmarks/scorecam_speed.py --n 5 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import abn
from abn.explain import explain, get_explainer
from abn.explain.gradcam import grad_cam_library
from abn.metrics.scorecard import sample_batches
from abn.precision import cpu_capability, native_bf16

ROOT = Path(__file__).resolve().parents[1]
MODELS = (
    ("imagenette-resnet18-abn", "val"),
    ("imagenette-resnet18-plain", "val"),
    ("cifar10-resnet20-abn", "test"),
)


class Logits(torch.nn.Module):
    """The model's logits as a plain tensor, as pytorch-grad-cam expects a classifier."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).logits


def library_map(model, x: torch.Tensor, target: int) -> np.ndarray:
    """pytorch-grad-cam's Score-CAM as its README uses it, at the layer's own resolution."""
    lib = grad_cam_library()
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    layer = model.default_target_layer()
    low = type("LowRes", (lib.ScoreCAM,), {"get_target_width_height": _layer_size})
    with low(model=Logits(model), target_layers=[layer]) as cam:
        return cam(x, targets=[ClassifierOutputTarget(target)])[0]


def _layer_size(self, input_tensor):
    a = self.activations_and_grads.activations[0]
    return a.shape[-1], a.shape[-2]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra = np.argsort(np.argsort(a.ravel())).astype(float)
    rb = np.argsort(np.argsort(b.ravel())).astype(float)
    return float(np.corrcoef(ra, rb)[0, 1])


def minmax(a: np.ndarray) -> np.ndarray:
    return (a - a.min()) / max(float(a.max() - a.min()), 1e-7)


def run_model(stem: str, split: str, n: int, root: str) -> dict:
    model = abn.load(ROOT / "assets" / f"{stem}.safetensors")
    batches, _, _ = sample_batches(model.card, split=split, n=n + 1, batch_size=1, root=root)
    images = [x for _, x, _ in batches()]
    lib_s, fast_s, rhos, diffs = [], [], [], []
    for i, x in enumerate(images):
        start = time.perf_counter()
        fast = explain(model, x, "scorecam")
        t_fast = time.perf_counter() - start
        target = int(fast.targets[0])
        start = time.perf_counter()
        ref = library_map(model, x, target)
        t_lib = time.perf_counter() - start
        if i == 0:  # warm-up: first calls build caches and the fast copy
            continue
        lib_s.append(t_lib)
        fast_s.append(t_fast)
        mine = fast.raw[0].numpy()
        rhos.append(spearman(ref, mine))
        diffs.append(float(np.abs(minmax(ref) - minmax(mine)).max()))
        print(f"  {stem} image {i}: library {t_lib:.2f} s, fast {t_fast:.2f} s, ρ {rhos[-1]:.3f}")
    size = tuple(images[0].shape[-2:])
    channels = get_explainer("scorecam", model).layer_shape(size)
    return {
        "model": stem,
        "input_size": list(size),
        "target_layer_shape": list(channels),
        "n": len(lib_s),
        "library_s": _stats(lib_s),
        "fast_s": _stats(fast_s),
        "speedup": statistics.mean(lib_s) / statistics.mean(fast_s),
        "spearman_min": min(rhos),
        "spearman_mean": statistics.mean(rhos),
        "max_abs_diff_after_minmax": max(diffs),
    }


def _stats(values: list[float]) -> dict:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.mean(values), "sd": sd, "values": values}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=5, help="timed images per model (+1 warm-up)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--root", default=str(ROOT / "data"), help="data root")
    p.add_argument("--models", nargs="+", default=[m for m, _ in MODELS])
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/scorecam_speed_cpu.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    grad_cam_library()  # import once, outside the timings
    load_before = os.getloadavg()
    results = [run_model(m, s, args.n, args.root) for m, s in MODELS if m in args.models]
    print(f"\nScore-CAM, seconds per image (mean ± sd), {args.threads} threads:")
    for r in results:
        lib, fast = r["library_s"], r["fast_s"]
        print(
            f"  {r['model']:<28} {r['input_size'][0]:>3} px  library {lib['mean']:6.2f} ± "
            f"{lib['sd']:.2f}   fast {fast['mean']:5.2f} ± {fast['sd']:.2f}   "
            f"×{r['speedup']:.1f}   ρ ≥ {r['spearman_min']:.3f}"
        )
    out = {
        "benchmark": "scorecam_speed",
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "cpu_capability": cpu_capability(),
            "native_bf16": native_bf16(torch.device("cpu")),
            "cpus": os.cpu_count(),
            "threads": args.threads,
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "torch": torch.__version__,
        },
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
