"""``abn finetune``: fine-tune an ABN from an edit set (see :mod:`abn.editing.finetune`)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from abn.data.paths import repo_root

DEFAULTS = {
    "epochs": 5,
    "gamma": 1.0,
    "train": "branches",
    "lr": 0.01,
    "batch_size": 16,
    "steps_per_epoch": 0,
    "replay_ratio": 1.0,
    "seed": 0,
    "test_limit": 0,
}  # fmt: skip — the values of FinetuneConfig, repeated so that --help imports no torch


def default_out_dir() -> Path:
    """Where fine-tuned models go: ``$ABN_USER_MODELS_DIR``, else ``<repo>/runs/user``."""
    env = os.environ.get("ABN_USER_MODELS_DIR")
    return Path(env) if env else repo_root() / "runs" / "user"


def add_finetune_parser(subparsers: Any) -> argparse.ArgumentParser:
    from abn.cli import COMMANDS

    p = subparsers.add_parser(
        "finetune",
        help=COMMANDS["finetune"].help,
        description=(
            "Fine-tune an ABN from an edit set (Mitsuhara et al.): loss L_att + L_per + "
            "GAMMA * mean((M(x) - M'(x))^2) on the edited images, mixed with replay batches of "
            "the model's training data. Writes OUT_DIR/NAME/final.safetensors, whose card "
            "records the parent, the edit set, GAMMA, EPOCHS, TRAIN and before/after metrics."
        ),
    )
    p.add_argument("--model", required=True, help="the ABN checkpoint (.safetensors) to fine-tune")
    p.add_argument("--edits", required=True, help="edit set folder (holds edits.json)")
    p.add_argument("--name", required=True, help="run name: the output folder OUT_DIR/NAME")
    p.add_argument(
        "--out-dir",
        default=None,
        help="parent folder of the run (default: $ABN_USER_MODELS_DIR, else <repo>/runs/user)",
    )
    p.add_argument(
        "--data",
        default=None,
        help="dataset to replay and test on (default: the model card's dataset)",
    )
    p.add_argument(
        "--data-root", default=None, help="data root (default: $ABN_DATA_ROOT, else ./data)"
    )
    p.add_argument("--epochs", type=int, default=DEFAULTS["epochs"], help="epochs (default 5)")
    p.add_argument(
        "--gamma",
        type=float,
        default=DEFAULTS["gamma"],
        help="weight of the map loss mean((M - M')^2) (default 1.0; 0 = no map loss)",
    )
    p.add_argument(
        "--train",
        choices=("branches", "feature_extractor", "all"),
        default=DEFAULTS["train"],
        help="what trains: attention + perception branches with the feature extractor frozen "
        "(default, as Mitsuhara et al.), only the feature extractor, or everything",
    )
    p.add_argument("--lr", type=float, default=DEFAULTS["lr"], help="SGD learning rate (0.01)")
    p.add_argument(
        "--batch-size", type=int, default=DEFAULTS["batch_size"], help="edited images per step (16)"
    )
    p.add_argument(
        "--steps-per-epoch",
        type=int,
        default=DEFAULTS["steps_per_epoch"],
        help="steps per epoch (default 0: one pass over the edited images)",
    )
    replay = p.add_mutually_exclusive_group()
    replay.add_argument(
        "--replay",
        dest="replay",
        action="store_true",
        default=None,
        help="require replay of the training data (default: replay when it is found)",
    )
    replay.add_argument(
        "--no-replay", dest="replay", action="store_false", help="train on the edits only"
    )
    p.add_argument(
        "--replay-ratio",
        type=float,
        default=DEFAULTS["replay_ratio"],
        help="replay images per edited image in a step (default 1.0)",
    )
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="seed of the batches (0)")
    p.add_argument(
        "--test-limit",
        type=int,
        default=DEFAULTS["test_limit"],
        help="test images for the before/after accuracy (default 0: the whole split; -1: none)",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default cpu)")
    p.add_argument(
        "--precision", default="auto", help="fp32, bf16 or auto (bf16 where native; default)"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue OUT_DIR/NAME from its last complete epoch (same model, edits, options)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_finetune)
    return p


def _config(args: argparse.Namespace):
    from abn.editing.finetune import FinetuneConfig

    return FinetuneConfig(
        epochs=args.epochs, gamma=args.gamma, train=args.train, lr=args.lr,
        batch_size=args.batch_size, steps_per_epoch=args.steps_per_epoch, replay=args.replay,
        replay_ratio=args.replay_ratio, seed=args.seed, test_limit=args.test_limit,
        precision=args.precision, device=args.device,
    )  # fmt: skip


def _bar(quiet: bool):
    """A progress callback drawing a tqdm bar on stderr, and a function closing it."""
    if quiet:
        return None, lambda: None
    from tqdm.auto import tqdm

    bar = tqdm(total=0, unit="step", dynamic_ncols=True, file=sys.stderr, leave=False)

    def report(step: int, total: int, message: str) -> None:
        if bar.total != total:
            bar.total = total
        bar.n = step
        bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    return report, bar.close


def run_finetune(args: argparse.Namespace) -> int:
    from abn.cli import UsageError
    from abn.device import one_line
    from abn.editing.finetune import FinetuneError, finetune
    from abn.train.state import ResumeError

    run_dir = Path(args.out_dir or default_out_dir()) / args.name
    try:
        cfg = _config(args)
        cfg.check()
    except FinetuneError as exc:
        raise UsageError(str(exc)) from None
    report, close = _bar(args.quiet)
    try:
        result = finetune(
            args.model, Path(args.edits), run_dir, cfg,
            data_root=args.data_root, data=args.data, resume=args.resume, progress=report,
            command=shlex.join(["abn", *getattr(args, "argv", [])]),
        )  # fmt: skip
    except (FinetuneError, ResumeError, ValueError, OSError) as exc:
        close()
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 1
    close()
    if not args.quiet:
        print(summary(result))
    print(f"saved {result.checkpoint}")
    return 0


def summary(result) -> str:
    """The before → after numbers in a few lines."""
    b, a = result.maps_before, result.maps_after
    lines = [
        f"map MSE on the {b.n} edited images: {b.mse:.4f} -> {a.mse:.4f}",
        f"attention mass in erased regions ({b.n_erased} images): "
        f"{100 * b.erased_mass:.1f}% -> {100 * a.erased_mass:.1f}%"
        if b.n_erased
        else "no erased regions",
        f"replay: {result.replay}",
    ]
    if result.comparison:
        c = result.comparison
        lo, hi = c["ci95"]
        p = c["rows"][0]["p_mcnemar"] if c["rows"] else float("nan")
        lines.append(
            f"test accuracy (n={c['n']}): {result.test_before['accuracy']:.2f}% -> "
            f"{result.test_after['accuracy']:.2f}% (difference {c['accuracy_difference']:+.2f} "
            f"points, 95% CI [{lo:+.2f}, {hi:+.2f}], McNemar p={p:.3g})"
        )
    return "\n".join(lines)
