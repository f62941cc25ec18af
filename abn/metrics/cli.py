"""``python -m abn scorecard``: score explanation methods on a dataset split."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch import nn

from abn.device import DEVICE_HELP, one_line, resolve_device
from abn.train.run import TrainError, check_writable

from .scorecard import (
    METRICS,
    Entry,
    format_differences,
    format_summary,
    paired_differences,
    reference_method,
    sample_batches,
    score,
    summarize,
)

ROLES = ("model", "baseline", "cam")
DEFAULT_ROLE = {"abn": "model", "abn-class": "model", "cam": "cam"}  # the rest: baseline


def add_scorecard_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``scorecard``; ``args.func(args)`` runs it and returns the exit code."""
    from abn.cli import COMMANDS
    from abn.explain import list_methods

    p = subparsers.add_parser(
        "scorecard",
        help=COMMANDS["scorecard"].help,
        description=(
            "Each method explains its model's predicted class on the same images. "
            "abn/abn-class use --model, cam uses --cam, the post-hoc methods (Grad-CAM family, "
            "RISE, Integrated Gradients, Occlusion) --baseline; "
            "write METHOD@ROLE (role: model, baseline, cam) to choose, e.g. gradcam@model."
        ),
    )
    p.add_argument("--model", required=True, help="ABN checkpoint")
    p.add_argument("--baseline", help="plain baseline checkpoint (Grad-CAM family)")
    p.add_argument("--cam", help="CAM-variant checkpoint (method 'cam')")
    p.add_argument("--data", help="dataset name (default: the one in the model's card)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--split", help="default: the card's test split, else the dataset's eval split")
    p.add_argument("--n", type=int, default=1000, help="images (a seeded random sample)")
    p.add_argument("--methods", default="abn,cam,gradcam,gradcam++,scorecam",
                   help="comma-separated, any case, each optionally @ROLE; from "
                        f"{', '.join(list_methods())}")  # fmt: skip
    p.add_argument("--metrics", default="deletion,insertion,confidence",
                   help=f"comma-separated from {', '.join(METRICS)} (road is slow on CPU)")  # fmt: skip
    p.add_argument("--steps", type=int, default=16, help="deletion/insertion steps")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--sanity", type=int, default=0, metavar="N",
                   help="also run the randomisation sanity check on N images")  # fmt: skip
    p.add_argument("--intervention", action="store_true",
                   help="also run the ABN attention intervention test")  # fmt: skip
    p.add_argument("--out", required=True, help="output folder for CSV/JSON")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run_scorecard)
    return p


def parse_methods(text: str, models: dict[str, nn.Module]) -> list[Entry]:
    """``GradCAM,abn,gradcam@model`` → entries, checking each method fits its model. Methods
    are matched as the library matches them (any case, ``-``/``_`` ignored, aliases)."""
    from abn.explain import list_methods, method_names

    entries = []
    for item in [m.strip() for m in text.split(",") if m.strip()]:
        asked, _, role = item.partition("@")
        try:
            [method] = method_names(asked)
        except ValueError as exc:
            raise ValueError(f"{item}: {exc}") from None
        role = role.strip() or DEFAULT_ROLE.get(method, "baseline")
        if role not in ROLES:
            raise ValueError(f"{item}: role must be one of {', '.join(ROLES)}")
        model = models.get(role)
        if model is None:
            raise ValueError(f"{item}: needs --{role}")
        if method not in list_methods(model):
            raise ValueError(
                f"{item}: {method!r} cannot explain the {role} model "
                f"({model.spec.name}/{model.spec.variant}); it supports {', '.join(list_methods(model))}"
            )
        entries.append(Entry(f"{method} ({model.spec.variant})", model, method))
    if not entries:
        raise ValueError("no methods given")
    return entries


def run_scorecard(args: argparse.Namespace) -> int:
    from abn.checkpoint import load
    from abn.data import dataset_info
    from abn.evaluate import evaluation_data

    for flag, value, low in (("--n", args.n, 1), ("--batch-size", args.batch_size, 1),
                             ("--steps", args.steps, 2), ("--sanity", args.sanity, 0)):  # fmt: skip
        if value < low:
            print(f"abn scorecard: error: {flag} must be >= {low}, not {value}", file=sys.stderr)
            return 2
    try:
        device = resolve_device(args.device)
        models = {r: load(getattr(args, r), map_location=device) for r in ROLES if getattr(args, r)}
        if args.intervention and not (models["model"].is_abn and not models["model"].is_multitask):
            raise ValueError("--intervention needs a single-task ABN --model")
        entries = parse_methods(args.methods, models)
        metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
        unknown = set(metrics) - set(METRICS)
        if unknown:
            raise ValueError(f"unknown metrics {sorted(unknown)}; choose from {', '.join(METRICS)}")
        card = models["model"].card
        args.data, args.split, args.data_root = evaluation_data(
            card, args.data, args.split, args.data_root
        )
        check_companions(models, dataset_info(args.data, args.data_root))
        batches, n, total = sample_batches(
            card,
            args.data,
            args.split,
            args.n,
            args.batch_size,
            args.seed,
            args.data_root,
            device,
        )
        out = Path(args.out)
        check_writable(out, need_bytes=0)
    except (ValueError, KeyError, OSError, TrainError) as exc:
        print(f"abn scorecard: error: {one_line(exc)}", file=sys.stderr)
        return 2
    try:
        return _run(args, device, models, entries, metrics, batches, n, total, out)
    except (ValueError, OSError, RuntimeError) as exc:  # a bad image in the split, a full disk
        print(f"abn scorecard: error: {one_line(exc)}", file=sys.stderr)
        return 1


def check_companions(models: dict[str, nn.Module], info) -> None:
    """Refuse a --baseline or --cam model trained on other classes than the dataset's (the
    --model is checked when the images are drawn): its maps would explain a foreign label."""
    from abn.evaluate import check_classes

    for role, model in models.items():
        if role != "model":
            try:
                check_classes(model.card, info)
            except ValueError as exc:
                raise ValueError(f"--{role}: {exc}") from None


def _run(args, device, models, entries, metrics, batches, n, total, out: Path) -> int:
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=total * len(entries), desc="scorecard", unit="batch")
    table = score(entries, batches, metrics, args.steps, total_batches=total,
                  progress=(lambda d, t, label: (bar.set_postfix_str(label), bar.update(1)))
                  if bar else None)  # fmt: skip
    if bar:
        bar.close()
    summary = summarize(table)
    table.to_csv(out / "scorecard.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    written = [out / "scorecard.csv", out / "summary.csv"]
    print(f"{n} images of {args.data}/{args.split} (seed {args.seed}), device {device}")
    print(format_summary(summary))
    diffs = paired_differences(table, reference_method(entries))
    if not diffs.empty:  # more than one method: each against the ABN map, image by image
        diffs.to_csv(out / "differences.csv", index=False)
        written.append(out / "differences.csv")
        print(format_differences(diffs))
    extras = _extras(args, models, entries, batches)
    if extras:
        (out / "checks.json").write_text(json.dumps(extras, indent=2))
    print(f"wrote {', '.join(map(str, written))}")
    return 0


def _extras(args, models, entries, batches) -> dict:
    from abn.explain import explain
    from abn.metrics import attention_intervention, cascading_randomization

    extras: dict = {}
    _, images, _ = next(iter(batches()))
    if args.sanity:
        x = images[: args.sanity]
        extras["sanity"] = {}
        for e in entries:

            def fn(model, imgs, targets, method=e.method):
                return explain(model, imgs, method, target=targets.tolist()).maps

            targets = explain(e.model, x, e.method).targets
            rep = cascading_randomization(e.model, x, targets, fn, e.label)
            extras["sanity"][e.label] = {"verdict": rep.verdict,
                                         "steps": [vars(s) for s in rep.steps]}  # fmt: skip
            print(f"sanity {e.label}: {rep.verdict}")
    if args.intervention:
        parts = [attention_intervention(models["model"], imgs) for _, imgs, _ in batches()]
        extras["intervention"] = {}
        for kind in parts[0]:
            joined = {m: torch.cat([p[kind][m].float() for p in parts]) for m in parts[0][kind]}
            means = {m: float(v.mean()) for m, v in joined.items()}
            extras["intervention"][kind] = means | {"n": len(next(iter(joined.values())))}
        for kind, d in extras["intervention"].items():
            print(
                f"intervention {kind} ({d['n']} images): drop {d['drop']:.3f}, "
                f"flipped {d['flipped']:.1%}, KL {d['kl']:.3f}"
            )
    return extras
