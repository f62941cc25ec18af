"""Evaluation: top-1/top-5 error of both ABN branches, per-attribute accuracy for multi-label.

``evaluate(model, batches)`` runs any model of the zoo over ``(x, y)`` batches and returns an
:class:`EvalResult`; counts are summed across ``torchrun`` processes. ``abn eval`` (see
:mod:`abn.cli`) wraps it for a checkpoint and a dataset split; :func:`compare` pairs two results
on the same images (McNemar's exact test, Holm over attributes, a bootstrap interval).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from abn.data.memory import deterministic_subset
from abn.distributed import all_reduce_sum, is_distributed
from abn.models import ModelOutput
from abn.precision import autocast_for, resolve_precision, use_channels_last
from abn.stats import ALPHA, RESAMPLES, holm, mcnemar_exact, paired_bootstrap_ci


@dataclass
class EvalResult:
    """Measured numbers of one evaluation (errors and accuracies in percent)."""

    task: str
    n: int
    metrics: dict[str, float] = field(default_factory=dict)
    per_attribute: dict[str, dict[str, float]] = field(default_factory=dict)
    #: Per image, whether the perception branch was right: N (top-1) or N×T (attributes), in
    #: the order the images were read; ``None`` after a multi-process evaluation.
    correct: np.ndarray | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"n": self.n, **self.metrics}
        if self.per_attribute:
            out["per_attribute"] = self.per_attribute
        return out


def _topk_hits(logits: torch.Tensor, target: torch.Tensor, ks: Sequence[int]) -> torch.Tensor:
    """B×len(ks): whether each image's label is among its top-k classes."""
    k_max = min(max(ks), logits.shape[1])
    top = logits.topk(k_max, dim=1).indices
    hits = top.eq(target.view(-1, 1))
    return torch.stack([hits[:, : min(k, k_max)].any(dim=1) for k in ks], dim=1)


def attribute_predictions(logits: torch.Tensor) -> torch.Tensor:
    """0/1 predictions, B×T, from B×T×2 two-way logits or B×T single logits."""
    if logits.dim() == 3:
        return logits.argmax(dim=-1)
    return (logits > 0).long()


class Accumulator:
    """Running correct counts of the perception (``per``) and attention (``att``) branches."""

    def __init__(self, task: str, num_outputs: int) -> None:
        self.task = task
        self.top5 = num_outputs > 5  # with 5 classes or fewer, top-5 is always right
        width = num_outputs if task == "multilabel" else 2
        # rows: per, att; multiclass columns: top1, top5; multilabel: one per attribute
        self.correct = torch.zeros(2, width, dtype=torch.float64)
        self.n = 0
        self.has_att = False
        self.hits: list[torch.Tensor] | None = []  # the perception branch's, per image

    def update(self, output: ModelOutput, target: torch.Tensor) -> None:
        self.n += int(target.shape[0])
        branches = [output.logits, output.att_logits]
        self.has_att = self.has_att or output.att_logits is not None
        for row, logits in enumerate(branches):
            if logits is None:
                continue
            logits = logits.detach().float()
            if self.task == "multilabel":
                hits = attribute_predictions(logits).eq(target.long())
                self.correct[row] += hits.sum(dim=0).cpu().double()
            else:
                topk = _topk_hits(logits, target, (1, 5))
                self.correct[row] += topk.sum(dim=0).cpu().double()
                hits = topk[:, 0]
            if row == 0 and self.hits is not None:
                self.hits.append(hits.cpu())

    def reduce(self) -> None:
        """Sum counts over all processes (in place); per-image records stay single-process."""
        if is_distributed():
            self.hits = None  # each process saw a shard: the images are not paired any more
        packed = torch.cat([self.correct.flatten(), torch.tensor([self.n, int(self.has_att)])])
        packed = all_reduce_sum(packed.double())
        self.correct = packed[:-2].view_as(self.correct)
        self.n, self.has_att = int(packed[-2]), bool(packed[-1])

    def result(self, names: Sequence[str] = ()) -> EvalResult:
        n = max(self.n, 1)
        acc = 100.0 * self.correct / n
        branches = ["per", "att"] if self.has_att else ["per"]
        metrics: dict[str, float] = {}
        per_attribute: dict[str, dict[str, float]] = {}
        for row, branch in enumerate(branches):
            if self.task == "multilabel":
                metrics[f"{branch}_mean_acc"] = float(acc[row].mean())
                for t, value in enumerate(acc[row].tolist()):
                    name = names[t] if t < len(names) else str(t)
                    per_attribute.setdefault(name, {})[branch] = value
            else:
                metrics[f"{branch}_top1_err"] = 100.0 - float(acc[row, 0])
                if self.top5:
                    metrics[f"{branch}_top5_err"] = 100.0 - float(acc[row, 1])
        hits = torch.cat(self.hits).numpy() if self.hits else None
        return EvalResult(self.task, self.n, metrics, per_attribute, hits)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    task: str = "multiclass",
    num_outputs: int | None = None,
    names: Sequence[str] = (),
    precision: str = "fp32",
    device: torch.device | str | None = None,
    progress: Any = None,
    channels_last: bool = False,
) -> EvalResult:
    """Top-1/top-5 errors (multiclass) or per-attribute accuracy (multilabel) of both branches.

    ``batches`` yields ``(x, y)``; ``x`` is moved to ``device`` (default: the model's), in
    channels-last memory format with ``channels_last`` (for a model converted to it).
    """
    fmt = torch.channels_last if channels_last else torch.preserve_format
    device = torch.device(device) if device else next(model.parameters()).device
    was_training = model.training
    model.eval()
    acc = Accumulator(task, num_outputs or _num_outputs(model))
    iterator = progress(batches) if progress else batches
    try:
        for x, y in iterator:
            x = x.to(device, non_blocking=True, memory_format=fmt)
            y = y.to(device, non_blocking=True)
            with autocast_for(device, precision):
                out = model(x)
            acc.update(out, y)
    finally:
        model.train(was_training)
    acc.reduce()
    return acc.result(names)


def _num_outputs(model: nn.Module) -> int:
    spec = getattr(model, "spec", None) or getattr(getattr(model, "module", None), "spec", None)
    return spec.num_classes if spec else 1


def format_result(result: EvalResult, title: str = "") -> str:
    """A plain-text table of an :class:`EvalResult`."""
    lines = [title] if title else []
    if result.task == "multilabel":
        branches = [b for b in ("per", "att") if f"{b}_mean_acc" in result.metrics]
        header = f"{'attribute':<22}" + "".join(f"{_label(b):>12}" for b in branches)
        lines += [header, "-" * len(header)]
        for name, row in result.per_attribute.items():
            lines.append(f"{name:<22}" + "".join(f"{row[b]:>11.2f}%" for b in branches))
        lines.append("-" * len(header))
        lines.append(
            f"{'average':<22}"
            + "".join(f"{result.metrics[f'{b}_mean_acc']:>11.2f}%" for b in branches)
        )
    else:
        ks = [k for k in (1, 5) if any(f"{b}_top{k}_err" in result.metrics for b in ("per", "att"))]
        lines.append(f"{'branch':<12}" + "".join(f"{f'top-{k} err':>12}" for k in ks))
        for b in ("per", "att"):
            if f"{b}_top1_err" in result.metrics:
                m = result.metrics
                lines.append(
                    f"{_label(b):<12}" + "".join(f"{m[f'{b}_top{k}_err']:>11.2f}%" for k in ks)
                )
    lines.append(f"images: {result.n}")
    return "\n".join(lines)


def _label(branch: str) -> str:
    return {"per": "perception", "att": "attention"}[branch]


def metrics_key(dataset: str, split: str, n: int, total: int) -> str:
    """Where a card keeps a split's numbers: ``"<data>/<split>"``, a sample's with ``" (sample of N)"``.

    A sample's numbers thus sit beside the whole split's, never over them.
    """
    key = f"{dataset}/{split}"
    return f"{key} (sample of {n})" if n < total else key


def metrics_record(result: EvalResult, total: int) -> dict[str, Any]:
    """``result``'s numbers for a card; a sample's also say how large the split was."""
    out = result.as_dict()
    if result.n < total:
        out["sample_of"] = total
    return out


@dataclass
class CheckpointEval:
    """The result of evaluating a checkpoint on one split, with what was measured."""

    checkpoint: str
    dataset: str
    split: str
    total: int  # images in the split
    limit: int  # 0: all of them
    result: EvalResult
    root: str | None = None  # the data root read (None: the default one)

    def title(self) -> str:
        sample = (
            f" (deterministic sample of {self.result.n} of {self.total} images)"
            if self.is_sample
            else ""
        )
        return f"{Path(self.checkpoint).name} on {self.dataset}/{self.split}{sample}"

    @property
    def is_sample(self) -> bool:
        return self.result.n < self.total

    def record(self) -> dict[str, Any]:
        return metrics_record(self.result, self.total)

    def card_key(self) -> str:
        """Where a card keeps these numbers: see :func:`metrics_key`."""
        return metrics_key(self.dataset, self.split, self.result.n, self.total)


def check_classes(card, info) -> None:
    """Refuse a dataset whose classes are not the model's: the same number and, where both
    name them, the same names in the same order (labels are indices into that list)."""
    if info.num_classes is not None and info.num_classes != card.num_classes:
        raise ValueError(
            f"{info.name} has {info.num_classes} classes but the model predicts {card.num_classes}"
        )
    theirs, ours = list(info.class_names), list(card.class_names or [])
    if theirs and ours and theirs != ours:
        what = "in another order" if sorted(theirs) == sorted(ours) else "different"
        raise ValueError(
            f"{info.name}'s classes are {what} from the model's: {_preview(theirs)} vs "
            f"{_preview(ours)}; evaluate a model on the classes it was trained on"
        )


def _preview(names: list[str], n: int = 4) -> str:
    return ", ".join(names[:n]) + (f", … ({len(names)})" if len(names) > n else "")


def card_data_root(card, data: str | None = None) -> str | None:
    """The tree an ``imagefolder`` model was trained from, as its card records it, when ``data``
    is its dataset (or ``None``); else ``None``. So ``abn eval`` finds a user's own tree again
    without ``--data-root`` (and a moved tree is named in the error). Registered datasets keep
    the usual data root (``--data-root``, else ``$ABN_DATA_ROOT`` or ``./data``)."""
    from abn.data import is_tree

    name = data or card.dataset
    recorded = str((card.recipe or {}).get("data_root") or "")
    if not recorded or not name or name != card.dataset or not is_tree(name):
        return None
    return str(Path(recorded).expanduser())


def evaluation_data(
    card, data: str | None = None, split: str | None = None, data_root: str | None = None
) -> tuple[str, str, str | None]:
    """``(dataset, split, root)`` to evaluate ``card``'s model on: the ones given, else the
    dataset, test split and data root it was trained and tested with."""
    from abn.data import evaluation_split

    name = data or card.dataset
    if not name:
        raise ValueError("the card names no dataset: pass --data")
    root = data_root or card_data_root(card, name)
    named = (card.splits or {}).get("test") if name == card.dataset else None
    return name, split or evaluation_split(name, named, root), root


def evaluate_checkpoint(
    checkpoint: str | Path,
    data: str | None = None,
    split: str | None = None,
    data_root: str | None = None,
    limit: int = 0,
    batch_size: int = 128,
    workers: int = 2,
    device: str = "auto",
    precision: str = "fp32",
) -> CheckpointEval:
    """Evaluate a checkpoint on a dataset split with the card's input size and normalisation."""
    from torch.utils.data import DataLoader, Subset

    from abn.checkpoint import load
    from abn.data import build_dataset, dataset_info
    from abn.data.transforms import transform_for
    from abn.device import resolve_device

    dev = resolve_device(device)
    precision = resolve_precision(precision, dev)
    model = load(checkpoint, map_location=dev)
    card = model.card
    channels_last = use_channels_last("auto", dev, precision)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    name, split, data_root = evaluation_data(card, data, split, data_root)
    info = dataset_info(name, data_root)
    check_classes(card, info)
    ds = build_dataset(name, split, root=data_root, transform=transform_for(card))
    total = len(ds)
    chosen = deterministic_subset(total, limit or None)
    if chosen is not None:
        ds = Subset(ds, chosen)
    loader = DataLoader(
        ds, batch_size=batch_size, num_workers=workers, pin_memory=dev.type == "cuda"
    )
    result = evaluate(
        model,
        loader,
        card.task,
        card.num_classes,
        card.class_names or info.class_names,
        precision,
        dev,
        channels_last=channels_last,
    )
    return CheckpointEval(str(checkpoint), name, split, total, limit, result, data_root)


def write_card_metrics(checkpoint: str | Path, run: CheckpointEval) -> None:
    """Store ``run``'s numbers in the checkpoint's card under ``run.card_key()``, atomically.

    A sample's numbers go beside the whole split's, never over them. The weights are written
    back unchanged (float16 files stay float16).
    """
    from safetensors import safe_open

    from abn.checkpoint import load, save

    with safe_open(str(checkpoint), framework="pt") as f:
        half = any(f.get_slice(k).get_dtype() == "F16" for k in f.keys())  # noqa: SIM118
    model = load(checkpoint)
    card = model.card
    card.metrics = {**card.metrics, run.card_key(): run.record()}
    save(model, checkpoint, card, half=half)


@dataclass
class PairedTest:
    """One row of a comparison (top-1, or one attribute): the 2×2 table and McNemar's test."""

    name: str
    both: int  # images both models get right
    model_only: int  # only the model gets right (McNemar's b)
    baseline_only: int  # only the baseline gets right (McNemar's c)
    neither: int
    p: float  # McNemar's exact two-sided p-value
    p_holm: float  # Holm-adjusted over the comparison's rows (= p for one row)

    @property
    def n(self) -> int:
        return self.both + self.model_only + self.baseline_only + self.neither

    @property
    def model_acc(self) -> float:
        return 100.0 * (self.both + self.model_only) / max(self.n, 1)

    @property
    def baseline_acc(self) -> float:
        return 100.0 * (self.both + self.baseline_only) / max(self.n, 1)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "baseline_acc": self.baseline_acc, "model_acc": self.model_acc,
                "difference": self.model_acc - self.baseline_acc, "both_right": self.both,
                "model_only_right": self.model_only, "baseline_only_right": self.baseline_only,
                "both_wrong": self.neither, "p_mcnemar": self.p, "p_holm": self.p_holm}  # fmt: skip


@dataclass
class Comparison:
    """A model against a baseline on the same images (perception branches), paired image by image.

    Single-label: one row, top-1. Multi-label: one row per attribute, whose McNemar p-values are
    Holm-corrected over the attributes; ``wins``/``losses`` count the significant ones (the
    "Odds" of the paper's CelebA table, with a test). ``difference`` is model − baseline
    accuracy (the mean over attributes) in points, ``ci`` its paired bootstrap 95% interval over
    images.
    """

    task: str
    rows: list[PairedTest]
    difference: float
    ci: tuple[float, float]
    resamples: int = RESAMPLES
    seed: int = 0
    alpha: float = ALPHA

    @property
    def n(self) -> int:
        return self.rows[0].n if self.rows else 0

    def _significant(self, sign: int) -> int:
        return sum(
            r.p_holm <= self.alpha and (r.model_only - r.baseline_only) * sign > 0
            for r in self.rows
        )

    @property
    def wins(self) -> int:
        """Rows where the model is significantly better (McNemar, Holm, ``alpha``)."""
        return self._significant(+1)

    @property
    def losses(self) -> int:
        """Rows where the model is significantly worse."""
        return self._significant(-1)

    def as_dict(self) -> dict[str, Any]:
        return {
            "task": self.task, "n": self.n, "alpha": self.alpha,
            "accuracy_difference": self.difference, "ci95": list(self.ci),
            "bootstrap": {"resamples": self.resamples, "seed": self.seed},
            "test": "McNemar exact (two-sided binomial on the discordant pairs)"
                    + (", Holm-corrected over the attributes" if self.task == "multilabel" else ""),
            "significant_wins": self.wins, "significant_losses": self.losses,
            "rows": [r.as_dict() for r in self.rows],
        }  # fmt: skip


def compare(
    model: EvalResult,
    baseline: EvalResult,
    resamples: int = RESAMPLES,
    seed: int = 0,
    alpha: float = ALPHA,
) -> Comparison:
    """Pair two results image by image (same split, same images, same order)."""
    if model.task != baseline.task:
        raise ValueError(f"cannot compare a {model.task} result with a {baseline.task} one")
    if model.correct is None or baseline.correct is None:
        raise ValueError("a paired comparison needs per-image results of one process each")
    if model.correct.shape != baseline.correct.shape:
        raise ValueError(
            f"the results are not of the same images: {model.correct.shape} vs "
            f"{baseline.correct.shape} per-image results"
        )
    m, b = model.correct.astype(bool), baseline.correct.astype(bool)
    if model.task == "multilabel":
        names = list(model.per_attribute)
        if names != list(baseline.per_attribute):
            raise ValueError("the results are of different attributes")
    else:
        names, m, b = ["top-1"], m.reshape(-1, 1), b.reshape(-1, 1)
    counts = np.stack([(m & b).sum(0), (m & ~b).sum(0), (~m & b).sum(0), (~m & ~b).sum(0)], 1)
    p = [mcnemar_exact(int(only_m), int(only_b)) for _, only_m, only_b, _ in counts]
    adjusted = holm(p)
    rows = [
        PairedTest(name, *(int(c) for c in row), p_value, float(adj))
        for name, row, p_value, adj in zip(names, counts, p, adjusted, strict=True)
    ]
    per_image = 100.0 * (m.astype(float) - b.astype(float)).mean(axis=1)
    diff, low, high = paired_bootstrap_ci(per_image, resamples, seed)
    return Comparison(model.task, rows, diff, (low, high), resamples, seed, alpha)


def format_comparison(cmp: Comparison, model_label: str, baseline_label: str) -> str:
    """The paired comparison as text: the 2×2 table (single-label) or per-attribute tests."""
    lines = [f"paired comparison on the same {cmp.n} images (perception branches)"]
    if cmp.task == "multilabel":
        lines += _attribute_lines(cmp, model_label, baseline_label)
        what = "mean accuracy"
    else:
        lines += _table_lines(cmp.rows[0], model_label, baseline_label)
        what = "top-1 accuracy"
    mm = sum(r.model_acc for r in cmp.rows) / len(cmp.rows)
    mb = sum(r.baseline_acc for r in cmp.rows) / len(cmp.rows)
    lines += [
        f"{what}: {model_label} {mm:.2f}%, {baseline_label} {mb:.2f}%; difference "
        f"{cmp.difference:+.2f} points, 95% CI [{cmp.ci[0]:+.2f}, {cmp.ci[1]:+.2f}] "
        f"(paired bootstrap over images, {cmp.resamples} resamples, seed {cmp.seed})",
        _verdict(cmp, model_label, baseline_label),
    ]
    return "\n".join(lines)


def _table_lines(row: PairedTest, model_label: str, baseline_label: str) -> list[str]:
    right, wrong = f"{baseline_label} right", f"{baseline_label} wrong"
    width = max(len(model_label) + 6, 12)
    w = max(len(right), 10) + 2
    return [
        f"{'':<{width}}{right:>{w}}{wrong:>{w}}",
        f"{model_label + ' right':<{width}}{row.both:>{w}}{row.model_only:>{w}}",
        f"{model_label + ' wrong':<{width}}{row.baseline_only:>{w}}{row.neither:>{w}}",
    ]


def _attribute_lines(cmp: Comparison, model_label: str, baseline_label: str) -> list[str]:
    width = max([len(r.name) for r in cmp.rows] + [9])
    header = (f"{'':<{width}}{baseline_label:>12}{model_label:>12}{'Δ':>8}"
              f"{'only ' + model_label:>16}{'only ' + baseline_label:>16}{'p (Holm)':>10}")  # fmt: skip
    lines = [header, "-" * len(header)]
    for r in cmp.rows:
        star = "*" if r.p_holm <= cmp.alpha else " "
        lines.append(
            f"{r.name:<{width}}{r.baseline_acc:>11.2f}%{r.model_acc:>11.2f}%"
            f"{r.model_acc - r.baseline_acc:>+8.2f}{r.model_only:>16}{r.baseline_only:>16}"
            f"{r.p_holm:>9.3g}{star}"
        )
    lines.append("-" * len(header))
    return lines


def _verdict(cmp: Comparison, model_label: str, baseline_label: str) -> str:
    if cmp.task != "multilabel":
        r = cmp.rows[0]
        outcome = (
            f"{model_label} significantly {'better' if r.model_only > r.baseline_only else 'worse'}"
            if r.p <= cmp.alpha
            else "no significant difference"
        )
        return (
            f"McNemar's exact test: {r.model_only} images only {model_label} gets right, "
            f"{r.baseline_only} only {baseline_label}; p = {r.p:.3g}: {outcome} at alpha {cmp.alpha}"
        )
    higher = sum(r.model_only > r.baseline_only for r in cmp.rows)
    lower = sum(r.model_only < r.baseline_only for r in cmp.rows)
    rest = len(cmp.rows) - cmp.wins - cmp.losses
    return (
        f"McNemar's exact test per attribute, Holm-corrected over {len(cmp.rows)} attributes "
        f"(* p <= {cmp.alpha}): {model_label} significantly better on {cmp.wins}, worse on "
        f"{cmp.losses}, no significant difference on {rest} (before testing: higher on {higher}, "
        f"level on {len(cmp.rows) - higher - lower}, lower on {lower})"
    )
