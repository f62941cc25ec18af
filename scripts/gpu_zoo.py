"""Train the default model zoo on one GPU in a short, fixed time window.

Runs every default model's ``python -m abn train`` concurrently on one GPU (small CIFAR-style
networks cannot fill a GPU alone) and fits the epochs to a time budget: a short probe measures
each run's training speed with all of them sharing the GPU, and each dataset then gets the most
epochs (a multiple of 4, so the 50%/75% milestones are exact) that its slowest variant finishes
in the budget; the variants of a dataset share that recipe.

The runs share the GPU through CUDA MPS (started here when ``nvidia-cuda-mps-control`` exists):
without it the GPU time-slices between processes, and on an H200 eight runs then trained at
1.1-1.7k images/s each; with MPS three CIFAR ResNet-56 runs together trained at 3.0k (ABN),
3.3k (plain) and 4.4k (CAM) images/s, where the ABN run alone reached 3.8k. Steps::

    python scripts/gpu_zoo.py prepare --packs PACK_DIR     # extract packs, decode caches
    python scripts/gpu_zoo.py probe                         # → runs/zoo-probe.json
    python scripts/gpu_zoo.py train --budget 420 --deadline 480  # plan, train, wait
    python scripts/gpu_zoo.py pack --out OUT --part 1       # fp16 copies, evals, ≤15 MiB pieces

``--only cifar10 imagenette`` (on each step) gives the whole window to some datasets.
``probe --set cuda_graphs=true`` with ``train ... --extra --cuda-graphs`` replays each step as one
CUDA graph; check it first on the GPU with ``pytest tests/train/test_graphs.py`` (seconds).

Every run is an ordinary run folder (``runs/<name>``): ``scripts/ship_model.py`` ships it.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIECE = 15 * 2**20


@dataclass(frozen=True)
class Group:
    """One dataset's runs: a named config, its variants, split sizes and an epoch cap."""

    config: str
    model: str
    data: str
    variants: tuple[str, ...]
    n_train: int
    n_test: int
    cap: int
    eval_every: int
    save_s: float  # per-epoch checkpoint writing, seconds

    def name(self, variant: str) -> str:
        return f"{self.data}-{self.model}-{variant}"


GROUPS = (
    Group("cifar10-resnet56", "resnet56", "cifar10", ("abn", "plain", "cam"),
          50_000, 10_000, 300, 10, 0.2),
    Group("imagenette-resnet18", "resnet18", "imagenette", ("abn", "plain", "cam"),
          9_469, 3_925, 200, 10, 1.0),
    Group("celeba-hq-resnet20", "resnet20", "celeba-hq", ("abn_multitask", "plain_multitask"),
          24_183, 2_824, 40, 5, 0.2),  # CelebA's official train / test split
)  # fmt: skip
PACKS = {"cifar10": "cifar10-jpeg", "imagenette": "imagenette2-160", "celeba-hq": "celeba-hq-64"}
FOLDERS = {"cifar10": "cifar10", "imagenette": "imagenette2-160", "celeba-hq": "celeba-hq-64"}


def groups(only: Sequence[str] = ()) -> list[Group]:
    """The groups of the datasets in ``only`` (all when empty)."""
    unknown = set(only) - {g.data for g in GROUPS}
    if unknown:
        raise SystemExit(f"unknown dataset(s) {sorted(unknown)}: one of {[g.data for g in GROUPS]}")
    return [g for g in GROUPS if not only or g.data in only]


def jobs(only: Sequence[str] = ()) -> list[tuple[Group, str]]:
    return [(g, v) for g in groups(only) for v in g.variants]


def _cfg(group: Group, variant: str, data_root: str, overrides: Sequence[str] = ()):
    from abn.train.config import load_config

    return load_config(ROOT / "configs" / f"{group.config}.toml", [f'variant="{variant}"',
                       f'data_root="{data_root}"', *overrides])  # fmt: skip


# ---------------------------------------------------------------- prepare
def prepare(packs: list[Path], data_root: Path, workers: int, only: list[str]) -> None:
    """Extract each pack found in ``packs`` (whole, or split as NAME.tar.gz.part*), decode caches."""
    data_root.mkdir(parents=True, exist_ok=True)
    for group in groups(only):
        folder = data_root / FOLDERS[group.data]
        stem = PACKS[group.data]
        parts = pack_parts(packs, stem)
        if not folder.is_dir() and parts:
            t = time.time()
            cat = subprocess.Popen(["cat", *map(str, parts)], stdout=subprocess.PIPE)
            subprocess.run(["tar", "xzf", "-", "-C", str(data_root)], stdin=cat.stdout, check=True)
            cat.wait()
            print(f"extracted {stem} ({len(parts)} part(s)) in {time.time() - t:.1f}s", flush=True)
        copy_beside(packs, folder, group.data)
        if folder.is_dir():
            decode(group, str(data_root), workers)


def copy_beside(packs: list[Path], folder: Path, data: str) -> None:
    """Files that travel beside a pack (``Pack.extras``: CelebA-HQ's split file) go next to its
    images, as ``abn data prepare`` puts them; checked against the ``SHA256SUMS`` beside them
    when there is one."""
    from abn.data.prepare import PACKS as PACK_FILES
    from abn.data.prepare import SUMS_FILE, _read_sums, copy_extras

    pack = next(p for p in PACK_FILES if data in p.datasets)
    for source in packs:
        if folder.is_dir() and pack.extras and all((source / n).is_file() for n in pack.extras):
            verify = (source / SUMS_FILE).is_file()
            copy_extras(source, folder, pack, _read_sums(source) if verify else {}, verify)
            return


def pack_parts(packs: list[Path], stem: str) -> list[Path]:
    """The pieces of pack ``stem`` across ``packs`` folders, in order (by file name), or the
    whole ``stem.tar.gz``; a piece may travel in another folder than the one before it."""
    parts = sorted((f for d in packs for f in d.glob(f"{stem}.tar.gz.part*")), key=lambda f: f.name)
    return parts or [f for d in packs for f in d.glob(f"{stem}.tar.gz")][:1]


def decode(group: Group, data_root: str, workers: int) -> None:
    """Fill the in-memory loader's cache for both splits, as the training runs will read it."""
    from abn.data.memory import load_into_memory
    from abn.train.data import _stored_size, resolve_info

    cfg = _cfg(group, group.variants[0], data_root)
    info = resolve_info(cfg)
    size = tuple(cfg.input_size) if cfg.input_size else tuple(info.input_size)
    for split in (info.train_split, info.eval_split):
        t = time.time()
        mem = load_into_memory(cfg.data, split, root=data_root, size=_stored_size(info.recipe, size),
                               num_workers=workers, progress=False)  # fmt: skip
        print(f"cached {cfg.data}/{split}: {len(mem)} images in {time.time() - t:.1f}s", flush=True)


# ---------------------------------------------------------------- probe
def probe_one(
    group: Group, variant: str, start_at: float, seconds: float, overrides: Sequence[str] = ()
) -> dict:
    """Training speed (images/s) of one run on synthetic data, measured from ``start_at``.

    ``overrides`` (``key=value``, as ``abn train --set``) are those the training runs will get,
    e.g. ``cuda_graphs=true``.
    """
    import torch

    from abn.data.memory import DeviceBatches
    from abn.precision import resolve_precision, use_channels_last
    from abn.train.data import _stored_size, resolve_info
    from abn.train.engine import train_one_epoch
    from abn.train.optim import build_optimizer
    from abn.train.run import build_model, make_step, resolve_device

    cfg = _cfg(group, variant, "", overrides)
    device = resolve_device("auto")
    precision = resolve_precision(cfg.precision, device)
    torch.backends.cudnn.benchmark = True
    info = resolve_info(cfg)
    size = tuple(cfg.input_size) if cfg.input_size else tuple(info.input_size)
    stored = _stored_size(info.recipe, size)
    n = cfg.batch_size * 16
    images = torch.randint(0, 256, (n, 3, *stored), dtype=torch.uint8)
    if info.task == "multilabel":
        targets = torch.randint(0, 2, (n, info.num_classes)).float()
    else:
        targets = torch.randint(0, info.num_classes, (n,))
    cl = use_channels_last(cfg.channels_last, device, precision)
    batches = DeviceBatches(images, targets, cfg.batch_size, recipe=info.recipe, crop_size=size,
                            device=device, channels_last=cl)  # fmt: skip
    fmt = torch.channels_last if cl else torch.preserve_format
    model = build_model(cfg, info.num_classes).to(device, memory_format=fmt)
    opt = build_optimizer(model, cfg, device)
    step = make_step(cfg, model, opt, device, precision)
    train_one_epoch(model, batches, opt, device, precision, step=step)  # warm-up (and capture)
    while time.time() < start_at:
        train_one_epoch(model, batches, opt, device, precision, step=step)
    done, spent = 0, 0.0
    while spent < seconds:
        stats = train_one_epoch(model, batches, opt, device, precision, step=step)
        done, spent = done + stats.images, spent + stats.seconds
    memory = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else 0.0
    return {"name": group.name(variant), "images_per_s": done / spent, "max_memory_gib": memory}


def probe(
    seconds: float, out: Path, wait: float, only: Sequence[str] = (), overrides: Sequence[str] = ()
) -> None:
    """Probe every run at once (they share the GPU as they will in training)."""
    start_mps()
    start_at = time.time() + wait
    procs = []
    for group, variant in jobs(only):
        argv = [sys.executable, __file__, "probe-one", group.config, variant,
                "--start-at", str(start_at), "--seconds", str(seconds),
                *(f"--set={o}" for o in overrides)]  # fmt: skip
        procs.append(subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=_env()))
    results = []
    for p in procs:
        text, _ = p.communicate()
        lines = [ln for ln in text.splitlines() if ln.startswith("{")]
        if p.returncode or not lines:
            raise SystemExit(f"probe failed ({p.returncode}): {p.args}")
        results.append(json.loads(lines[-1]))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    for r in results:
        print(f"{r['name']:40s} {r['images_per_s']:9.0f} img/s  {r['max_memory_gib']:.1f} GiB")


def start_mps() -> None:
    """Let the runs' kernels share the GPU (CUDA MPS) instead of time-slicing it."""
    if shutil.which("nvidia-cuda-mps-control") is None:
        return
    started = subprocess.run(["nvidia-cuda-mps-control", "-d"], capture_output=True, text=True)
    print("CUDA MPS", "started" if started.returncode == 0 else "not started", flush=True)


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


# ---------------------------------------------------------------- plan + train
def plan(rates: dict[str, float], budget: float, only: Sequence[str] = ()) -> dict[str, int]:
    """Epochs per dataset: the most (multiple of 4, ≤ cap) its slowest run fits in ``budget``."""
    epochs = {}
    for group in groups(only):
        slowest = min(rates[group.name(v)] for v in group.variants)
        per_epoch = (group.n_train + group.n_test / 3 / group.eval_every) / slowest + group.save_s
        fit = int(budget / per_epoch) // 4 * 4
        epochs[group.data] = max(4, min(group.cap, fit))
    return epochs


def train(
    budget: float,
    probe_path: Path,
    data_root: str,
    out: str,
    deadline: float,
    extra: list[str],
    only: Sequence[str] = (),
) -> None:
    """Launch every run with the planned epochs; stop any still running at ``deadline`` s."""
    rates = {r["name"]: r["images_per_s"] for r in json.loads(probe_path.read_text())}
    epochs = plan(rates, budget, only)
    print("plan:", json.dumps(epochs), flush=True)
    start_mps()
    t0 = time.time()
    procs = {}
    Path(out).mkdir(parents=True, exist_ok=True)
    for group, variant in jobs(only):
        name = group.name(variant)
        argv = [sys.executable, "-m", "abn", "train", group.config, "--variant", variant,
                "--epochs", str(epochs[group.data]), "--name", name, "--data-root", data_root,
                "--out", out, "--quiet", "--set", f"eval_every={group.eval_every}", *extra]  # fmt: skip
        log = open(Path(out) / f"{name}.log", "w")  # noqa: SIM115
        procs[name] = (
            subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=_env()),
            log,
        )
    while procs and time.time() - t0 < deadline:
        for name, (p, log) in list(procs.items()):
            if p.poll() is not None:
                log.close()
                print(f"{time.time() - t0:6.0f}s {name} exited {p.returncode}", flush=True)
                del procs[name]
        time.sleep(2)
    for name, (p, log) in procs.items():
        p.terminate()
        p.wait()
        log.close()
        print(f"{time.time() - t0:6.0f}s {name} STOPPED at the deadline", flush=True)


# ---------------------------------------------------------------- pack
def pack(
    out: Path, part: int, runs: Path, data_root: str, limit: int = 0, only: Sequence[str] = ()
) -> None:
    """Part 1: small runs whole (fp32) + every run's logs + Imagenette ABN in fp16, in pieces;
    part 2: the other Imagenette runs in fp16."""
    out.mkdir(parents=True, exist_ok=True)
    big = [g.name(v) for g, v in jobs(only) if g.data == "imagenette"]
    halves = big[:1] if part == 1 else big[1:]
    evals = {}
    for name in halves:
        evals[name] = half_copy(runs / name, data_root, limit)
    staging = runs / f"zoo-part{part}.tar"
    with tarfile.open(staging, "w") as tar:
        for group, variant in jobs(only):
            name = group.name(variant)
            run = runs / name
            if part == 1:
                for f in ("config.toml", "metrics.csv"):
                    if (run / f).exists():
                        tar.add(run / f, f"{name}/{f}")
                if (runs / f"{name}.log").exists():
                    tar.add(runs / f"{name}.log", f"{name}.log")
                if group.data != "imagenette":
                    for f in ("final.safetensors", "last.safetensors"):
                        if (run / f).exists():
                            tar.add(run / f, f"{name}/{f}")
                            break
            if name in halves and (run / "half.safetensors").exists():
                tar.add(run / "half.safetensors", f"{name}/half.safetensors")
        info = tarfile.TarInfo(f"evals-part{part}.json")  # both parts unpack into one folder
        blob = json.dumps(evals, indent=1).encode()
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
    split(staging, out)


def half_copy(run: Path, data_root: str, limit: int = 0) -> dict:
    """Write ``half.safetensors`` (fp16) of the run's final (else last) weights; evaluate both."""
    import abn
    from abn.evaluate import evaluate_checkpoint

    src = run / "final.safetensors"
    if not src.exists():
        src = run / "last.safetensors"
    if not src.exists():
        return {"missing": True}
    model = abn.load(src)
    half = abn.save(model, run / "half.safetensors", model.card, half=True)
    result = {"source": src.name}
    for key, path in (("fp32", src), ("fp16", half)):
        rec = evaluate_checkpoint(
            path,
            data_root=data_root,
            limit=limit,
            workers=min(8, os.cpu_count() or 1),
            batch_size=256,
        ).record()
        result[key] = rec
        print(f"{run.name} {key}: {json.dumps(rec)[:200]}", flush=True)
    return result


def split(path: Path, out: Path) -> None:
    data = path.read_bytes()
    for i in range(0, len(data), PIECE):
        (out / f"{path.name}.{i // PIECE:03d}").write_bytes(data[i : i + PIECE])
    print(f"{path.name}: {len(data) / 2**20:.1f} MiB in {-(-len(data) // PIECE)} piece(s)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("prepare")
    a.add_argument("--packs", type=Path, nargs="+", required=True)
    a.add_argument("--data-root", type=Path, default=ROOT / "data")
    a.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 1))
    a.add_argument("--only", nargs="*", default=[], help="datasets to prepare (default: all)")
    a = sub.add_parser("probe")
    a.add_argument("--only", nargs="*", default=[], help="datasets to probe (default: all)")
    a.add_argument("--seconds", type=float, default=15)
    a.add_argument("--wait", type=float, default=25, help="start-up allowance before measuring")
    a.add_argument("--out", type=Path, default=ROOT / "runs" / "zoo-probe.json")
    a.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config overrides the training runs will get (e.g. cuda_graphs=true)")  # fmt: skip
    a = sub.add_parser("probe-one")
    a.add_argument("config")
    a.add_argument("variant")
    a.add_argument("--start-at", type=float, required=True)
    a.add_argument("--seconds", type=float, required=True)
    a.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    a = sub.add_parser("train")
    a.add_argument("--budget", type=float, required=True, help="seconds of training to plan")
    a.add_argument("--only", nargs="*", default=[], help="datasets to train (default: all)")
    a.add_argument("--deadline", type=float, required=True, help="stop runs after this many s")
    a.add_argument("--probe", type=Path, default=ROOT / "runs" / "zoo-probe.json")
    a.add_argument("--data-root", default=str(ROOT / "data"))
    a.add_argument("--out", default=str(ROOT / "runs"))
    a.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more `abn train` args")
    a = sub.add_parser("pack")
    a.add_argument("--out", type=Path, required=True)
    a.add_argument("--part", type=int, choices=(1, 2), required=True)
    a.add_argument("--runs", type=Path, default=ROOT / "runs")
    a.add_argument("--data-root", default=str(ROOT / "data"))
    a.add_argument("--eval-limit", type=int, default=0, help="evaluate on a sample (tests)")
    a.add_argument("--only", nargs="*", default=[], help="datasets to pack (default: all)")
    args = p.parse_args()
    if args.cmd == "prepare":
        prepare(args.packs, args.data_root, args.workers, args.only)
    elif args.cmd == "probe":
        probe(args.seconds, args.out, args.wait, args.only, args.overrides)
    elif args.cmd == "probe-one":
        group = next(g for g in GROUPS if g.config == args.config)
        result = probe_one(group, args.variant, args.start_at, args.seconds, args.overrides)
        print(json.dumps(result), flush=True)
    elif args.cmd == "train":
        train(args.budget, args.probe, args.data_root, args.out, args.deadline, args.extra,
              args.only)  # fmt: skip
    elif args.cmd == "pack":
        pack(args.out, args.part, args.runs, args.data_root, args.eval_limit, args.only)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    shutil.which("tar") or sys.exit("tar is needed")
    main()
