"""The decoy experiment (issue #19): can attention edits undo a shortcut an ABN has learned?

A small patch whose colour encodes the class is pasted, at a random place, on 95% of a subset of
CIFAR-10's training images, so that a ResNet-20 ABN learns the shortcut. Measured on test images
without the patch and with a swapped (wrong-class colour) patch: accuracy and the share of the
attention map's mass inside the patch, for

  (a) the decoy-trained ABN,
  (b) (a) fine-tuned (abn.editing.finetune) from automatic edits that erase the patch's cells from
      M' on N = 10, 100, 1000 patched training images, with replay of the decoy training data,
  (c) the same images, steps and replay without the map loss (gamma = 0): the control.

``--mechanism multiply`` trains the decoy ABN with Eq. 1, g'(x) = M(x)·g(x), so the patch's
features reach the perception branch only through the map (the default, ``residual``, is Eq. 2,
g'(x) = (1 + M(x))·g(x)).

CPU only. Run (about 15 minutes on 2 shared cores)::

    OMP_NUM_THREADS=1 nice .venv/bin/python experiments/decoy.py --out runs/decoy \\
        --json docs/editing/decoy.json --table docs/editing/decoy_table.md

Everything but the JSON and the table goes under ``--out`` (the decoy model, the fine-tuned
checkpoints and their cards); no image is written into the repository.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from abn.checkpoint import card_for, load, save
from abn.data import build_dataset
from abn.data.memory import DeviceBatches
from abn.editing.finetune import FinetuneConfig, finetune
from abn.embeddings import wilson_interval
from abn.models import create
from abn.precision import autocast_for, resolve_precision
from abn.stats import mcnemar_exact, mean_ci, paired_bootstrap_ci
from abn.train.engine import TrainStep, train_one_epoch
from abn.train.optim import set_lr
from abn.train.run import hardware

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# one saturated colour per class (RGB)
COLOURS = torch.tensor(
    [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [255, 0, 255],
     [0, 255, 255], [255, 128, 0], [128, 0, 255], [255, 255, 255], [0, 0, 0]],
    dtype=torch.uint8,
)  # fmt: skip
PATCH = 6  # pixels; at even offsets on a 32 px image it covers 3×3 cells of the 16×16 map
MEAN = STD = (0.5, 0.5, 0.5)


def normalise(x: torch.Tensor) -> torch.Tensor:
    return (x.float() / 255 - 0.5) / 0.5


def load_subset(root: str | None, split: str, per_class: int, seed: int):
    """``per_class`` images of each class (seeded choice), uint8 N×3×32×32, and labels."""
    ds = build_dataset("cifar10", split, root=root)
    targets = torch.tensor(ds.targets) if hasattr(ds, "targets") else None
    if targets is None:
        targets = torch.tensor([int(ds[i][1]) for i in range(len(ds))])
    g = torch.Generator().manual_seed(seed)
    chosen = []
    for c in range(len(CLASSES)):
        idx = (targets == c).nonzero().flatten()
        chosen.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
    order = torch.cat(chosen)
    order = order[torch.randperm(len(order), generator=g)]
    x = torch.stack([torch.as_tensor(ds[int(i)][0]) for i in order])
    return x, targets[order]


def paste(x: torch.Tensor, colours: torch.Tensor, seed: int) -> torch.Tensor:
    """Patches of ``colours`` (N, -1: none) at random even offsets; returns the offsets N×2
    (-1 where no patch). ``x`` is changed in place."""
    g = torch.Generator().manual_seed(seed)
    n, size = len(x), x.shape[-1]
    offsets = torch.randint(0, (size - PATCH) // 2 + 1, (n, 2), generator=g) * 2
    offsets[colours < 0] = -1
    for i in range(n):
        if colours[i] >= 0:
            r, c = offsets[i].tolist()
            x[i, :, r : r + PATCH, c : c + PATCH] = COLOURS[colours[i]].view(3, 1, 1)
    return offsets


def patch_cells(offsets: torch.Tensor, map_size: int, image_size: int = 32) -> torch.Tensor:
    """N×h×w bool: the map cells a patch covers (none where the offset is -1)."""
    scale = image_size // map_size
    masks = torch.zeros(len(offsets), map_size, map_size, dtype=torch.bool)
    for i, (r, c) in enumerate(offsets.tolist()):
        if r >= 0:
            masks[
                i,
                r // scale : (r + PATCH - 1) // scale + 1,
                c // scale : (c + PATCH - 1) // scale + 1,
            ] = True
    return masks


class Pairs(Dataset):
    """(normalised image, label): the replay data, the decoy training set as trained on."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return normalise(self.x[i]), self.y[i]


@dataclass
class Record:
    id: str
    label: int
    attribute: int | None = None


class AutoEdits:
    """Automatic edits held in memory (the :class:`abn.editing.editset.EditSet` interface):
    M' = M with the patch's cells set to 0."""

    def __init__(self, x, y, originals, edited, digest: str) -> None:
        self.x, self.originals, self.edited = x, originals, edited
        self.records = [Record(str(i), int(t)) for i, t in enumerate(y)]
        self.digest = digest

    def __len__(self) -> int:
        return len(self.records)

    def maps(self, record):
        i = int(record.id)
        return self.originals[i], self.edited[i]

    def image(self, record, data_root=None):
        from PIL import Image

        return Image.fromarray(self.x[int(record.id)].permute(1, 2, 0).numpy())


# --- training the decoy model ------------------------------------------------------------------


def train_decoy(x, y, args, device, precision) -> torch.nn.Module:
    torch.manual_seed(args.seed)
    model = create("resnet20", variant="abn", num_classes=10, mechanism=args.mechanism)
    opt = torch.optim.SGD(
        model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4, nesterov=True
    )
    batches = DeviceBatches(x, y, args.batch_size, train=True, recipe="cifar", seed=args.seed)
    step = TrainStep(model, opt, device, precision)
    for epoch in range(args.epochs):
        set_lr(opt, args.lr * 0.5 * (1 + math.cos(math.pi * epoch / args.epochs)))
        batches.set_epoch(epoch)
        s = train_one_epoch(model, batches, opt, device, precision, step=step)
        print(
            f"decoy epoch {epoch + 1}/{args.epochs}: loss {s.loss:.3f} train {s.acc_per:.1f}% "
            f"({s.images_per_s:.0f} img/s)",
            flush=True,
        )
    return model.eval()


# --- measuring ---------------------------------------------------------------------------------


@torch.no_grad()
def predict(model, x: torch.Tensor, precision: str, batch: int = 250, erase=None):
    """Predicted classes and attention maps (N×h×w, fp32) of uint8 images. ``erase`` (N×h×w
    bool): re-predict with those cells of M(x) set to 0 (an edit at inference, no training)."""
    model.eval()
    preds, maps = [], []
    for i in range(0, len(x), batch):
        with autocast_for(torch.device("cpu"), precision):
            out = model(normalise(x[i : i + batch]))
            logits = out.logits
            if erase is not None:
                keep = (~erase[i : i + batch]).unsqueeze(1).to(out.attention.dtype)
                logits = model(normalise(x[i : i + batch]), attention=out.attention * keep).logits
        preds.append(logits.float().argmax(1))
        maps.append(out.attention[:, 0].float())  # the model's own M(x), never the edited one
    return torch.cat(preds), torch.cat(maps)


def proportion(hits: np.ndarray) -> dict:
    k, n = int(hits.sum()), int(hits.size)
    lo, hi = wilson_interval(k, n)
    return {"value": 100.0 * k / n, "ci95": [100.0 * lo, 100.0 * hi], "n": n}


def share_inside(maps: torch.Tensor, cells: torch.Tensor) -> dict:
    share = ((maps * cells).flatten(1).sum(1) / maps.flatten(1).sum(1).clamp_min(1e-12)).numpy()
    m, half, n = mean_ci(100.0 * share)
    return {"value": m, "ci95": [m - half, m + half], "n": n}


def measure(model, sets: dict, precision: str, erase: bool = False) -> tuple[dict, dict]:
    """Per test set: accuracy (Wilson), attention share in the patch (t), follows-the-patch.
    ``erase``: with the patch's cells of M(x) set to 0 at inference (clean images: unchanged)."""
    out, correct = {}, {}
    for name, (x, y, cells, patch_class) in sets.items():
        pred, maps = predict(model, x, precision, erase=cells if erase else None)
        hits = (pred == y).numpy()
        correct[name] = hits
        row = {"accuracy": proportion(hits)}
        if cells is not None:
            row["attention_in_patch"] = share_inside(maps, cells)
            row["predicts_patch_class"] = proportion((pred == patch_class).numpy())
        out[name] = row
    return out, correct


def paired(a: np.ndarray, b: np.ndarray) -> dict:
    """a vs b on the same images: accuracy difference (points), bootstrap CI, McNemar p."""
    diff, lo, hi = paired_bootstrap_ci(100.0 * (a.astype(float) - b.astype(float)), 10_000, 0)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    return {"difference": diff, "ci95": [lo, hi], "p_mcnemar": mcnemar_exact(only_a, only_b),
            "n": int(a.size)}  # fmt: skip


# --- the experiment ----------------------------------------------------------------------------


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/decoy", help="working folder (models, cards)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--json", default="docs/editing/decoy.json")
    p.add_argument("--table", default="docs/editing/decoy_table.md")
    p.add_argument("--train-per-class", type=int, default=1000)
    p.add_argument("--test-per-class", type=int, default=200)
    p.add_argument("--decoy-share", type=float, default=0.95)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--ns", default="10,100,1000")
    p.add_argument("--gamma", type=float, default=10.0)
    p.add_argument("--ft-epochs", type=int, default=3)
    p.add_argument("--ft-steps", type=int, default=40, help="steps per fine-tuning epoch")
    p.add_argument("--ft-lr", type=float, default=0.01)
    p.add_argument("--ft-train", default="branches")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--mechanism",
        default="residual",
        choices=("residual", "multiply"),
        help="the decoy ABN's attention mechanism: residual g·(1+M) (Eq. 2) or multiply "
        "M·g (Eq. 1), where the perception branch sees g only through the map",
    )
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    device = torch.device("cpu")
    precision = resolve_precision("auto", device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # data: 95% of the training images carry their class's patch; test sets clean / swapped
    x_tr, y_tr = load_subset(args.data_root, "train", args.train_per_class, args.seed)
    g = torch.Generator().manual_seed(args.seed + 1)
    decoy = torch.rand(len(y_tr), generator=g) < args.decoy_share
    off_tr = paste(x_tr, torch.where(decoy, y_tr, -1), args.seed + 2)
    x_te, y_te = load_subset(args.data_root, "test", args.test_per_class, args.seed + 3)
    wrong = (y_te + torch.randint(1, 10, (len(y_te),), generator=g)) % 10
    x_sw, x_mt = x_te.clone(), x_te.clone()
    off_sw = paste(x_sw, wrong, args.seed + 4)
    off_mt = paste(x_mt, y_te, args.seed + 4)
    print(f"data: {len(y_tr)} training images ({int(decoy.sum())} with the patch), "
          f"{len(y_te)} test images; {time.perf_counter() - t0:.0f} s", flush=True)  # fmt: skip

    # (a) the decoy model
    parent = out / "decoy.safetensors"
    if not parent.exists():
        t = time.perf_counter()
        model = train_decoy(x_tr, y_tr, args, device, precision)
        card = card_for(
            model, class_names=list(CLASSES), input_size=(32, 32), mean=MEAN, std=STD,
            notes="decoy experiment: colour patch = class on 95% of the training images",
            training={"epochs": args.epochs, "images": len(y_tr), "seconds":
                      time.perf_counter() - t},
        )  # fmt: skip
        save(model, parent, card)
    decoy_model = load(parent)
    if decoy_model.mechanism != args.mechanism:
        raise SystemExit(
            f"{parent} is a {decoy_model.mechanism} ABN, not {args.mechanism}: use another --out"
        )
    train_s = decoy_model.card.training.get("seconds")
    size = decoy_model(torch.zeros(1, 3, 32, 32)).attention.shape[-1]
    sets = {
        "clean": (x_te, y_te, None, None),
        "swapped_patch": (x_sw, y_te, patch_cells(off_sw, size), wrong),
        "matching_patch": (x_mt, y_te, patch_cells(off_mt, size), y_te),
    }
    results = {"decoy": measure(decoy_model, sets, precision)}
    rows = {"decoy": results["decoy"][0]}
    corrects = {"decoy": results["decoy"][1]}
    # the same model, the patch's cells erased from M(x) at inference (oracle patch position)
    rows["decoy_erased"], corrects["decoy_erased"] = measure(decoy_model, sets, precision, True)

    # automatic edits on the first N patched training images (nested sets)
    patched = decoy.nonzero().flatten()
    replay = Pairs(x_tr, y_tr)
    cells_tr = patch_cells(off_tr, size)
    _, maps_tr = predict(decoy_model, x_tr[patched[: max(map(int, args.ns.split(",")))]], precision)
    runs = {}
    for n in [int(v) for v in args.ns.split(",")]:
        idx = patched[:n]
        originals = maps_tr[:n].numpy()
        edited = np.where(cells_tr[idx].numpy(), 0.0, originals).astype(np.float32)
        edits = AutoEdits(x_tr[idx], y_tr[idx], list(originals), list(edited), f"decoy-auto-{n}")
        for label, gamma in (("edit", args.gamma), ("control", 0.0)):
            name = f"{label}_n{n}"
            run_dir = out / name
            cfg = FinetuneConfig(
                epochs=args.ft_epochs, gamma=gamma, train=args.ft_train, lr=args.ft_lr,
                batch_size=16, steps_per_epoch=args.ft_steps, replay_ratio=1.0,
                seed=args.seed, test_limit=-1,
            )  # fmt: skip
            t = time.perf_counter()
            if (run_dir / "final.safetensors").exists():
                tuned = load(run_dir / "final.safetensors")
                info = tuned.card.training["finetune"]
                maps = {"before": info["maps_before"], "after": info["maps_after"]}
            else:
                resume = (run_dir / "last.state.pt").exists()
                res = finetune(parent, edits, run_dir, cfg, replay_data=replay, resume=resume)
                tuned = load(res.checkpoint)
                maps = {"before": asdict(res.maps_before), "after": asdict(res.maps_after)}
            rows[name], corrects[name] = measure(tuned, sets, precision)
            runs[name] = {"n": n, "gamma": gamma, "edited_images": maps,
                          "seconds": time.perf_counter() - t}  # fmt: skip
            print(f"{name}: {time.perf_counter() - t:.0f} s; swapped acc "
                  f"{rows[name]['swapped_patch']['accuracy']['value']:.1f}%, attention in patch "
                  f"{rows[name]['swapped_patch']['attention_in_patch']['value']:.1f}%", flush=True)  # fmt: skip

    comparisons = {
        f"decoy_erased_vs_decoy/{test}": paired(
            corrects["decoy_erased"][test], corrects["decoy"][test]
        )
        for test in ("swapped_patch", "matching_patch")
    }
    for n in [int(v) for v in args.ns.split(",")]:
        for test in ("clean", "swapped_patch"):
            comparisons[f"edit_n{n}_vs_control_n{n}/{test}"] = paired(
                corrects[f"edit_n{n}"][test], corrects[f"control_n{n}"][test]
            )
            comparisons[f"edit_n{n}_vs_decoy/{test}"] = paired(
                corrects[f"edit_n{n}"][test], corrects["decoy"][test]
            )
    wall = time.perf_counter() - t0
    report = {
        "experiment": "decoy (issue #19)",
        "command": "OMP_NUM_THREADS=1 nice .venv/bin/python experiments/decoy.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "setup": {
            "model": "resnet20 ABN (16x16 maps), trained from scratch on the decoy set",
            "mechanism": decoy_model.mechanism,
            "train_images": len(y_tr),
            "patched_share": float(decoy.float().mean()),
            "patch": f"{PATCH}x{PATCH} px, colour = class, random even position (3x3 map cells)",
            "uniform_share_in_patch": 100.0 * 9 / size**2,
            "decoy_erased": "the decoy model re-run with the patch's cells of M(x) set to 0 "
            "(model(x, attention=...)); no training; attention shares are of the unedited M(x)",
            "test_images": len(y_te),
            "test_sets": {
                "clean": "no patch",
                "swapped_patch": "patch of a wrong class's colour",
                "matching_patch": "patch of the true class's colour",
            },
            "decoy_training": {
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "lr": args.lr,
                "schedule": "cosine",
                "augmentation": "crop+flip",
                "seconds": train_s,
            },
            "finetune": {
                "epochs": args.ft_epochs,
                "steps_per_epoch": args.ft_steps,
                "batch": "16 edited + 16 replay (decoy training set, no augmentation)",
                "lr": args.ft_lr,
                "train": args.ft_train,
                "gamma_edit": args.gamma,
                "gamma_control": 0.0,
                "edits": "M' = M with the patch's cells set to 0, on the first N "
                "patched training images (nested)",
            },
            "seed": args.seed,
            "intervals": "accuracy: Wilson 95%; attention share: mean with t 95%; paired: "
            "bootstrap 95% (10,000 resamples) and McNemar exact",
        },
        "rows": rows,
        "finetune_runs": runs,
        "comparisons": comparisons,
        "hardware": f"{hardware()}, {torch.get_num_threads()} thread(s), precision "
        f"{precision}; a 2-core machine shared with other work (figures measured under load)",
        "wall_s": wall,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    Path(args.table).write_text(table(rows) + "\n")
    print(table(rows))
    print(f"wall {wall:.0f} s")
    return 0


def _fmt(cell: dict) -> str:
    lo, hi = cell["ci95"]
    return f"{cell['value']:.1f} [{lo:.1f}, {hi:.1f}]"


def table(rows: dict) -> str:
    head = (
        "| model | clean: accuracy % | swapped patch: accuracy % | swapped: predicts the patch's "
        "class % | swapped: attention in patch % | matching patch: attention in patch % |\n"
        "|---|---|---|---|---|---|"
    )
    lines = [head]
    for name, r in rows.items():
        label = {
            "decoy": "(a) decoy-trained ABN",
            "decoy_erased": "(a) with the patch erased from M at inference",
        }.get(name, name)
        if name.startswith("edit_n"):
            label = f"(b) edits erase patch, N = {name[6:]}"
        elif name.startswith("control_n"):
            label = f"(c) control (gamma = 0), N = {name[9:]}"
        sw, mt = r["swapped_patch"], r["matching_patch"]
        lines.append(
            f"| {label} | {_fmt(r['clean']['accuracy'])} | {_fmt(sw['accuracy'])} | "
            f"{_fmt(sw['predicts_patch_class'])} | {_fmt(sw['attention_in_patch'])} | "
            f"{_fmt(mt['attention_in_patch'])} |"
        )
    return "\n".join(lines)


def side_by_side(arms: list[tuple[str, dict, dict]]) -> str:
    """One line per arm (label, its report, the report holding its inference-erase row): the
    decoy model with and without the patch erased from M at inference, and the N = 1000 edit
    against its control on swapped-patch images."""
    head = (
        "| arm | (a) swapped: attention in patch % | (a) swapped: accuracy % | (a) swapped: "
        "predicts the patch's class % | (a), patch erased from M at inference: swapped accuracy "
        "% | (a), erased at inference: predicts the patch's class % | (b) N = 1000: swapped "
        "attention in patch % | (b) − (c), N = 1000, swapped accuracy: points [95% CI], McNemar p "
        "|\n|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for label, report, erase_report in arms:
        a, e = report["rows"]["decoy"]["swapped_patch"], erase_report["rows"]["decoy_erased"]
        b = report["rows"]["edit_n1000"]["swapped_patch"]
        d = report["comparisons"]["edit_n1000_vs_control_n1000/swapped_patch"]
        lo, hi = d["ci95"]
        lines.append(
            f"| {label} | {_fmt(a['attention_in_patch'])} | {_fmt(a['accuracy'])} | "
            f"{_fmt(a['predicts_patch_class'])} | {_fmt(e['swapped_patch']['accuracy'])} | "
            f"{_fmt(e['swapped_patch']['predicts_patch_class'])} | "
            f"{_fmt(b['attention_in_patch'])} | {d['difference']:+.1f} [{lo:+.1f}, {hi:+.1f}], "
            f"p = {d['p_mcnemar']:.2g} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
