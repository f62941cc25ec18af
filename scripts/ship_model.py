"""Ship a trained run as a default model: evaluate, store compactly, write its card.

    python scripts/ship_model.py runs/cifar10-resnet20-abn assets/cifar10-resnet20-abn.safetensors

Evaluates ``final.safetensors`` in fp32 on the dataset's whole test split, stores the weights in
float16 when that changes top-1 (or mean attribute) accuracy by at most 0.1 point (else float32),
and writes the card: the test metrics of the shipped weights, the training time summed from
``metrics.csv``, the command that retrains it, and a note. The file is written in the current
checkpoint format (``abn.checkpoint.FORMAT``): its card names every constructor argument, and
a run's format-1 checkpoint is shipped with its card upgraded (``abn.card.upgrade_card``).
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

import abn
from abn.evaluate import evaluate_checkpoint

HALF_TOLERANCE = 0.1  # accuracy points


def headline(record: dict) -> float:
    """Top-1 accuracy (multi-class) or mean attribute accuracy (multi-label), in %."""
    if "per_top1_err" in record:
        return 100.0 - record["per_top1_err"]
    return record["per_mean_acc"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="a run folder of `python -m abn train`")
    p.add_argument("out", type=Path, help="the .safetensors file to write")
    p.add_argument("--data-root", default=None)
    p.add_argument("--note", default="")
    p.add_argument("--retrain", default="", help="the command that retrains this model")
    p.add_argument("--checkpoint", default="final.safetensors",
                   help="which checkpoint of the run (last.safetensors for a stopped run)")  # fmt: skip
    args = p.parse_args()

    final = args.run / args.checkpoint
    model = abn.load(final)
    card = model.card
    full = evaluate_checkpoint(final, data_root=args.data_root)
    with tempfile.TemporaryDirectory() as tmp:
        half_path = abn.save(model, Path(tmp) / "half.safetensors", card, half=True)
        half = evaluate_checkpoint(half_path, data_root=args.data_root)
    delta = headline(half.record()) - headline(full.record())
    use_half = abs(delta) <= HALF_TOLERANCE
    shipped = half if use_half else full
    with (args.run / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    card.metrics = {shipped.card_key(): shipped.record()}
    from abn.train.run import hardware

    card.training = {
        "hardware": hardware(),
        **card.training,
        "epochs": len(rows),
        "train_seconds_total": round(sum(float(r["time_s"]) for r in rows), 1),
        "retrain": args.retrain,
    }
    storage = "float16" if use_half else "float32"
    card.notes = " ".join(
        s
        for s in (
            args.note,
            f"Weights stored in {storage} (fp16 changes the headline accuracy by {delta:+.2f} "
            f"points on {shipped.dataset}/{shipped.split}).",
        )
        if s
    )
    abn.save(model, args.out, card, half=use_half)
    print(f"{args.out}: {headline(shipped.record()):.2f}% on {shipped.dataset}/{shipped.split} "
          f"(n={shipped.result.n}), {storage}, {args.out.stat().st_size / 1e6:.1f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
