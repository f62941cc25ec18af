"""``python -m abn``: train, eval, models, card, and data, explain and scorecard from their modules.

Every sub-command's handler returns an exit code; user errors print one line and exit with
2 (bad arguments or config) or 1 (the run itself failed), never a traceback.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from importlib import import_module
from pathlib import Path
from typing import Any, NamedTuple

from abn.device import one_line

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"

# common flag → config key
TRAIN_FLAGS = {
    "epochs": int,
    "lr": float,
    "batch_size": int,
    "model": str,
    "variant": str,
    "data": str,
    "data_root": str,
    "out": str,
    "name": str,
    "seed": int,
    "device": str,
    "precision": str,
    "workers": int,
    "limit_train": int,
    "limit_test": int,
}


# what a resumed run may change: how it runs and how long, not what it learns or where from
RESUMABLE = (
    "epochs", "quiet", "device", "eval_every", "workers", "compile", "cuda_graphs",
    "channels_last", "data_root",
)  # fmt: skip


class UsageError(Exception):
    """Bad arguments or config: reported as ``abn <cmd>: error: ...`` with exit code 2."""


class Command(NamedTuple):
    """A sub-command: the module and function that add its parser, and its help line."""

    module: str
    adder: str
    help: str


COMMANDS: dict[str, Command] = {
    "train": Command(__name__, "add_train_parser", "train a model from a config"),
    "eval": Command(
        __name__, "add_eval_parser", "top-1/top-5 error (or attribute accuracy) of a checkpoint"
    ),
    "models": Command(__name__, "add_models_parser", "list the registered backbones and variants"),
    "card": Command(__name__, "add_card_parser", "print a checkpoint's model card (JSON)"),
    "data": Command("abn.cli_data", "add_data_parser", "prepare datasets and show what they are"),
    "explain": Command(
        "abn.explain.cli", "add_explain_parser", "explain images with ABN / CAM / Grad-CAM maps"
    ),
    "scorecard": Command(
        "abn.metrics.cli",
        "add_scorecard_parser",
        "score explanation methods (deletion/insertion, Average Drop, ROAD, sanity)",
    ),
    "report": Command(
        "abn.cli_report",
        "add_report_parser",
        "a folder, ZIP or list of images -> one self-contained HTML report",
    ),
    "familiarity": Command(
        "abn.cli_familiarity",
        "add_familiarity_parser",
        "calibrate the 'unlike the training data' signal of a checkpoint",
    ),
    "finetune": Command(
        "abn.editing.cli_finetune",
        "add_finetune_parser",
        "fine-tune an ABN from an edit set of attention maps (Mitsuhara et al.)",
    ),
}


def resolve_config_path(name: str) -> Path:
    """A config file path, or the name of one in ``configs/`` (with or without ``.toml``)."""
    path = Path(name)
    if path.is_file():
        return path
    for candidate in (CONFIG_DIR / name, CONFIG_DIR / f"{name}.toml"):
        if candidate.is_file():
            return candidate
    known = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.toml")))
    raise UsageError(f"config {name!r} not found (a file, or one of: {known})")


def add_train_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train",
        help=COMMANDS["train"].help,
        description="Train from a TOML config; any value can be overridden with --set KEY=VALUE.",
    )
    p.add_argument(
        "config", nargs="?", help="config file or name in configs/ (e.g. cifar10-resnet110)"
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value (TOML syntax; model_kwargs.NAME=VALUE too)",
    )
    for key, kind in TRAIN_FLAGS.items():
        flag = "--" + key.replace("_", "-")
        p.add_argument(flag, dest=key, type=kind, default=None, metavar=key.upper())
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    p.add_argument(
        "--cuda-graphs",
        action="store_true",
        default=None,
        help="replay each training step as one CUDA graph (GPU; not with DDP or --compile)",
    )
    p.add_argument("--quiet", action="store_true", default=None, help="no progress bars or logs")
    p.add_argument(
        "--resume",
        metavar="RUN_DIR_OR_FILE",
        help="continue a run from its last complete epoch (last.state.pt)",
    )
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.set_defaults(func=run_train)
    return p


def train_overrides(args: argparse.Namespace) -> list[str]:
    """``--set`` values followed by the common flags, as ``key=value`` strings."""
    from abn.train.config import _toml_value

    out = list(args.overrides)
    for key in [*TRAIN_FLAGS, "compile", "cuda_graphs", "quiet"]:
        value = getattr(args, key)
        if value is not None:
            out.append(f"{key}={_toml_value(value)}")
    return out


def check_unchanged(cfg: Any, saved: Any) -> None:
    """Refuse a resumed run whose flags or ``--set`` values change its folder, model, data or
    recipe: only :data:`RESUMABLE` settings may differ from its ``config.toml``."""
    changed = [k for k, v in cfg.to_dict().items()
               if k not in RESUMABLE and v != getattr(saved, k)]  # fmt: skip
    if changed:
        names = [f"--{k.replace('_', '-')}" if k in TRAIN_FLAGS else k for k in changed]
        raise UsageError(
            f"{', '.join(names)} cannot change when resuming: the run keeps its folder, "
            "model, data and recipe (start a new run to change them)"
        )


def run_train(args: argparse.Namespace) -> int:
    from abn.checkpoint import CheckpointError
    from abn.data.errors import ImageReadError
    from abn.train import ConfigError, ResumeError, TrainError, load_config, resolve_resume, train
    from abn.train.config import to_toml
    from abn.train.state import check_not_shortened

    try:
        resume = resolve_resume(args.resume) if args.resume else None
        if resume and args.config:
            raise UsageError("give either a config or --resume (the run folder holds its config)")
        path = (
            resume.run_dir / "config.toml"
            if resume
            else (resolve_config_path(args.config) if args.config else None)
        )
        cfg = load_config(path, train_overrides(args))
        if resume:
            check_unchanged(cfg, load_config(path, []))
            check_not_shortened(resume, cfg.epochs)
    except (ConfigError, ResumeError) as exc:
        raise UsageError(str(exc)) from None
    if args.print_config:
        print(to_toml(cfg), end="")
        return 0
    try:
        result = train(cfg, resume=resume, command=shlex.join(["abn", *args.argv]))
    except (TrainError, ResumeError, CheckpointError, ValueError, OSError) as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        if isinstance(exc, ImageReadError):
            print(bad_image_hint(cfg, resume.run_dir if resume else cfg.run_dir()), file=sys.stderr)
        return 1
    if result.final is not None and not cfg.quiet:
        print(f"saved {result.final}")
    return 0


def bad_image_hint(cfg: Any, run_dir: Path) -> str:
    """What to do after an unreadable training image: find them all, then resume (or, before
    the first epoch has finished, run the same command again)."""
    from abn.train.state import STATE_NAME

    root = f" --root {shlex.quote(str(cfg.data_root))}" if cfg.data_root else ""
    again = (
        f"go on with `abn train --resume {shlex.quote(str(run_dir))}`"
        if (run_dir / STATE_NAME).is_file()
        else "run the same command again (no epoch finished, so there is nothing to resume)"
    )
    return (
        f"  `abn data check {cfg.data}{root}` lists every unreadable image; fix or remove "
        f"them, then {again}"
    )


def add_eval_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("eval", help=COMMANDS["eval"].help)
    p.add_argument("--model", required=True, metavar="CKPT", help="a .safetensors checkpoint")
    p.add_argument(
        "--baseline",
        metavar="CKPT",
        help="also evaluate this checkpoint on the same images and compare them image by image: "
        "McNemar's exact test (Holm over attributes) and a bootstrap 95%% CI of the difference",
    )
    p.add_argument("--data", help="dataset name (default: the card's dataset)")
    p.add_argument("--data-root", help="data root (default: $ABN_DATA_ROOT or ./data)")
    p.add_argument("--split", help="split (default: the dataset's evaluation split)")
    p.add_argument(
        "--limit",
        type=int,
        default=0,
        metavar="N",
        help="evaluate a deterministic sample of N images",
    )
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--precision",
        choices=("fp32", "bf16", "auto"),
        default="fp32",
        help="fp32 (default), bf16 autocast, or auto: bf16 where the hardware runs it natively",
    )
    p.add_argument("--write-card", action="store_true", help="store the results in the card")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument(
        "--out",
        metavar="DIR",
        help="also write eval.json (as --json prints) and, with --baseline, comparison.csv",
    )
    p.set_defaults(func=run_eval)
    return p


def run_eval(args: argparse.Namespace) -> int:
    import json

    from abn.checkpoint import CheckpointError
    from abn.evaluate import evaluate_checkpoint, format_result, write_card_metrics

    if args.limit < 0 or args.batch_size < 1:
        raise UsageError("--limit must be >= 0 and --batch-size >= 1")
    check_device(args.device)
    try:
        out = _eval_out_dir(args.out)
        run = evaluate_checkpoint(
            args.model,
            args.data,
            args.split,
            args.data_root,
            args.limit,
            args.batch_size,
            args.workers,
            args.device,
            args.precision,
        )
        if args.write_card:
            write_card_metrics(args.model, run)
    except (CheckpointError, ValueError, OSError) as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 1
    if not args.json:
        print(format_result(run.result, run.title()))
        if args.write_card:
            print(f"wrote the results into {args.model}'s card, as {run.card_key()!r}")
    report: dict[str, Any] = run.record()
    cmp = None
    if args.baseline:
        paired = _compare_with_baseline(args, run)
        if paired is None:
            return 1
        base, cmp = paired
        report = {
            "model": {"checkpoint": str(args.model), **run.record()},
            "baseline": {"checkpoint": str(args.baseline), **base.record()},
            "comparison": cmp.as_dict(),
        }
    if args.json:
        print(json.dumps(report, indent=2))
    if out is not None:
        written = _write_eval_files(out, report, cmp)
        print(f"wrote {', '.join(map(str, written))}", file=sys.stderr if args.json else sys.stdout)
    return 0


def _eval_out_dir(path: str | None) -> Any:
    """``--out``'s folder, made now (a bad path fails before the evaluation), or ``None``."""
    if not path:
        return None
    from pathlib import Path

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _write_eval_files(out: Any, report: dict[str, Any], cmp: Any) -> list[Any]:
    """``eval.json`` (what ``--json`` prints) and, with a baseline, ``comparison.csv`` (a row
    per compared row: top-1, or each attribute)."""
    import csv
    import json

    written = [out / "eval.json"]
    written[0].write_text(json.dumps(report, indent=2) + "\n")
    if cmp is not None:
        rows = [r.as_dict() | {"n": r.n, "significant": r.p_holm <= cmp.alpha} for r in cmp.rows]
        written.append(out / "comparison.csv")
        with written[1].open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return written


def _compare_with_baseline(args: argparse.Namespace, run: Any) -> tuple[Any, Any] | None:
    """Evaluate ``--baseline`` on the same images and pair the two (printed unless ``--json``);
    ``None`` after printing why it could not."""
    from abn.checkpoint import CheckpointError
    from abn.evaluate import compare, evaluate_checkpoint, format_comparison, format_result

    try:
        base = evaluate_checkpoint(
            args.baseline, run.dataset, run.split, run.root, args.limit,
            args.batch_size, args.workers, args.device, args.precision,
        )  # fmt: skip
        cmp = compare(run.result, base.result)
    except (CheckpointError, ValueError, OSError) as exc:
        print(f"error: baseline: {one_line(exc)}", file=sys.stderr)
        return None
    if not args.json:
        print()
        print(format_result(base.result, base.title()))
        print()
        print(format_comparison(cmp, "model", "baseline"))
    return base, cmp


def check_device(name: str) -> None:
    """A ``--device`` that cannot be used here is a usage error (exit 2), found before any work."""
    from abn.device import resolve_device

    try:
        resolve_device(name)
    except ValueError as exc:
        raise UsageError(one_line(exc)) from None


def add_models_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("models", help=COMMANDS["models"].help)
    p.add_argument("pattern", nargs="?", default="*", help="glob, e.g. 'resnet*'")
    p.set_defaults(func=run_models)
    return p


def run_models(args: argparse.Namespace) -> int:
    from abn.models import get_entry, list_models, list_variants

    names = list_models(args.pattern)
    if not names:
        print(f"no model matches {args.pattern!r}", file=sys.stderr)
        return 1
    print(f"{'model':<20}{'family':<10}{'input':<10}description")
    for name in names:
        e = get_entry(name)
        size = f"{e.input_size[0]}x{e.input_size[1]}"
        print(f"{name:<20}{e.family:<10}{size:<10}{e.description}")
    print(f"\nvariants: {', '.join(list_variants())}")
    return 0


def add_card_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("card", help=COMMANDS["card"].help)
    p.add_argument("checkpoint", help="a .safetensors checkpoint")
    p.set_defaults(func=run_card)
    return p


def run_card(args: argparse.Namespace) -> int:
    from abn.checkpoint import CheckpointError, card_json

    try:
        print(card_json(args.checkpoint))
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The CLI's parser. With ``command``, only that sub-command's parser is built in full (its
    module imported); the others are one help line each, so ``abn --help`` imports no torch."""
    parser = argparse.ArgumentParser(
        prog="abn", description="Attention Branch Networks: train, evaluate, explain."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, spec in COMMANDS.items():
        if command is None or name == command:
            module = (
                sys.modules[__name__] if spec.module == __name__ else import_module(spec.module)
            )
            getattr(module, spec.adder)(sub)
        else:
            sub.add_parser(name, help=spec.help, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m abn``; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(next((a for a in argv if not a.startswith("-")), None) or "")
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        prog = f"abn {args.command}"
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `abn card m.safetensors | head`: the reader has gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
        return 0
