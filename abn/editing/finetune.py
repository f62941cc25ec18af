"""Fine-tune an ABN from edited attention maps (Mitsuhara et al., arXiv 1905.03540).

The loss on a step is ``L_att + L_per + gamma * mean((M(x) - M'(x))^2)``: the two ABN losses on
every labelled image of the batch, and the map loss on the edited images, where ``M'`` is the
edited map at the map's native resolution (multi-task: the edited attribute's map). Each batch
of edited images is mixed with a replay batch from the model's training data (the card's
dataset with its training transform) so that accuracy does not collapse on a few edits.

What trains (``train``): ``"branches"`` (the default, Mitsuhara et al.'s choice) the attention
and perception branches with the feature extractor frozen; ``"feature_extractor"`` only the
feature extractor; ``"all"`` everything. BatchNorm: the layers of frozen modules stay in eval
mode (running statistics untouched); those of trained modules are in train mode and see the
mixed (edited + replay) batch.

A run folder holds ``last.state.pt`` (weights, optimizer, RNG and progress after each epoch,
written atomically, see :mod:`abn.train.state`) and, at the end, ``final.safetensors``, whose
card records the parent's digest, the edit set's digest and size, gamma, epochs, what trained
and the before/after metrics (``card.training["finetune"]``). The batches of epoch ``e`` depend
only on ``(seed, e)``, so a killed run resumed with ``resume=True`` ends with the same weights
as an uninterrupted one.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from safetensors import safe_open
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from abn.checkpoint import CheckpointError, atomic_write_bytes, load, save
from abn.data.memory import deterministic_subset, epoch_seed
from abn.data.transforms import transform_for
from abn.evaluate import EvalResult, compare, evaluate, metrics_key, metrics_record
from abn.precision import autocast_for, resolve_precision
from abn.stats import mean_ci
from abn.train.loss import attention_loss, perception_loss
from abn.train.optim import set_lr
from abn.train.state import (
    STATE_NAME,
    ResumeError,
    load_state,
    model_state,
    remove_stale_temp_files,
    rng_state,
    save_state,
    set_rng_state,
)

TRAIN_CHOICES = ("branches", "feature_extractor", "all")
FINAL_NAME = "final.safetensors"
SUMMARY_NAME = "finetune.json"
#: A cell counts as erased when the edit lowered it by more than this.
ERASE_TOLERANCE = 1e-6

Progress = Callable[[int, int, str], None]


class FinetuneError(ValueError):
    """A fine-tune cannot start or continue: bad edit set, non-ABN model, map size, folder."""


class EditSource(Protocol):
    """What fine-tuning reads of an edit set (:class:`abn.editing.editset.EditSet`)."""

    records: list
    digest: str

    def maps(self, record: Any) -> tuple[np.ndarray, np.ndarray]: ...

    def image(self, record: Any, data_root: Path | None = None) -> Any: ...

    def __len__(self) -> int: ...


@dataclass
class FinetuneConfig:
    """How to fine-tune. ``replay=None``: replay when the model's training data is found."""

    epochs: int = 5
    gamma: float = 1.0  # weight of the map loss
    train: str = "branches"  # "branches" | "feature_extractor" | "all"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    batch_size: int = 16  # edited images per step
    steps_per_epoch: int = 0  # 0: one pass over the edited images
    replay: bool | None = None
    replay_ratio: float = 1.0  # replay images per edited image in a step
    seed: int = 0
    test_limit: int = 0  # test images for before/after accuracy: 0 all, -1 none
    precision: str = "auto"
    device: str = "cpu"

    def check(self) -> None:
        if self.train not in TRAIN_CHOICES:
            raise FinetuneError(
                f"train must be one of {', '.join(TRAIN_CHOICES)}, not {self.train!r}"
            )
        if self.epochs < 1 or self.batch_size < 1 or self.steps_per_epoch < 0:
            raise FinetuneError("epochs and batch_size must be >= 1, steps_per_epoch >= 0")
        if not (math.isfinite(self.gamma) and self.gamma >= 0):
            raise FinetuneError(f"gamma must be a finite number >= 0, not {self.gamma}")
        if self.lr <= 0 or self.replay_ratio < 0:
            raise FinetuneError("lr must be > 0 and replay_ratio >= 0")


@dataclass
class MapAgreement:
    """How well a model's maps match the edited maps on the edited images.

    ``mse``: mean over images of mean((M - M')^2); ``erased_mass``: mean over images with an
    erased region of the share of the map's mass inside it (sum M[region] / sum M). Each with
    the half-width of its 95% t-interval and the number of images.
    """

    mse: float
    mse_ci: float
    erased_mass: float
    erased_mass_ci: float
    n: int
    n_erased: int


@dataclass
class FinetuneResult:
    checkpoint: Path
    run_dir: Path
    maps_before: MapAgreement
    maps_after: MapAgreement
    test_before: dict[str, Any] | None = None  # {"n", "accuracy"} on the test split
    test_after: dict[str, Any] | None = None
    comparison: dict[str, Any] | None = None  # paired McNemar + bootstrap (after vs before)
    replay: str = ""  # what was replayed, or why nothing
    losses: list[dict[str, float]] = field(default_factory=list)  # per epoch


# --- the edited images -------------------------------------------------------------------------


@dataclass
class _Edits:
    images: torch.Tensor  # N×3×H×W, preprocessed
    targets: torch.Tensor  # N×h×w edited maps
    originals: torch.Tensor  # N×h×w the maps the edits started from
    labels: torch.Tensor  # N, -1 where unknown
    attributes: torch.Tensor  # N, 0 for single-task


def open_edit_set(edit_set: EditSource | str | Path, model: nn.Module | None = None) -> EditSource:
    """``edit_set`` as is, or the edit set in that folder (checked against ``model``)."""
    if not isinstance(edit_set, (str, Path)):
        return edit_set
    from abn.editing.editset import EditSet, EditSetError

    try:
        return EditSet.open(Path(edit_set), model=model)
    except EditSetError as exc:
        raise FinetuneError(f"edit set {edit_set}: {exc}") from None


def map_size(model: nn.Module) -> tuple[int, int]:
    """The (h, w) of the model's attention map at its card's input size."""
    h, w = model.card.input_size
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, h, w, device=device))
    model.train(was)
    return tuple(out.attention.shape[-2:])


def check_abn(model: nn.Module, source: str) -> None:
    if not getattr(model, "is_abn", False):
        spec = model.spec
        raise FinetuneError(
            f"{source} is a {spec.name}/{spec.variant} model: fine-tuning from attention edits "
            "needs an ABN (variant abn or abn_multitask), whose perception branch uses the map"
        )


def load_edits(edits: EditSource, model: nn.Module, data_root: str | Path | None = None) -> _Edits:
    """The edited images as tensors, checked against ``model`` (map size, labels, attribute)."""
    if len(edits) == 0:
        raise FinetuneError("the edit set is empty: save at least one edit first")
    card, size = model.card, map_size(model)
    multitask = bool(getattr(model, "is_multitask", False))
    transform = transform_for(card, train=False)
    root = Path(data_root) if data_root else None
    xs, targets, originals, labels, attributes = [], [], [], [], []
    for record in edits.records:
        original, edited = edits.maps(record)
        for name, m in (("original", original), ("edited", edited)):
            if tuple(m.shape) != size:
                raise FinetuneError(
                    f"edit {record.id}: its {name} map is {m.shape[0]}×{m.shape[1]} but the "
                    f"model's map is {size[0]}×{size[1]} (an edit set of another model?)"
                )
        if not (np.isfinite(edited).all() and edited.min() >= 0 and edited.max() <= 1):
            raise FinetuneError(f"edit {record.id}: the edited map is not within [0, 1]")
        attributes.append(_attribute(record, multitask, card.num_classes))
        labels.append(_label(record, multitask, card.num_classes))
        try:
            image = edits.image(record, root)
        except (OSError, ValueError) as exc:
            raise FinetuneError(f"edit {record.id}: cannot read its image: {exc}") from None
        xs.append(transform(image))
        targets.append(torch.as_tensor(np.asarray(edited, dtype=np.float32)))
        originals.append(torch.as_tensor(np.asarray(original, dtype=np.float32)))
    return _Edits(
        torch.stack(xs),
        torch.stack(targets),
        torch.stack(originals),
        torch.tensor(labels, dtype=torch.long),
        torch.tensor(attributes, dtype=torch.long),
    )


def _attribute(record: Any, multitask: bool, num: int) -> int:
    attribute = getattr(record, "attribute", None)
    if not multitask:
        return 0
    if attribute is None or not 0 <= int(attribute) < num:
        raise FinetuneError(
            f"edit {record.id}: a multi-task model's edit must name the attribute (0..{num - 1}) "
            f"whose map it edits, not {attribute!r}"
        )
    return int(attribute)


def _label(record: Any, multitask: bool, num: int) -> int:
    label = getattr(record, "label", None)
    if label is None or multitask:  # a multi-task edit names one attribute, not all labels
        return -1
    if not 0 <= int(label) < num:
        raise FinetuneError(f"edit {record.id}: label {label} is not a class (0..{num - 1})")
    return int(label)


# --- maps and agreement ------------------------------------------------------------------------


def _edited_maps(attention: torch.Tensor, attributes: torch.Tensor) -> torch.Tensor:
    """B×h×w: each image's edited map (single-task: channel 0; multi-task: its attribute)."""
    index = attributes.to(attention.device).view(-1, 1, 1, 1)
    index = index.expand(-1, 1, *attention.shape[-2:])
    return attention.gather(1, index).squeeze(1)


@torch.no_grad()
def model_maps(model: nn.Module, edits: _Edits, batch_size: int = 64) -> torch.Tensor:
    """The model's maps of the edited images (eval mode, fp32), N×h×w."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(edits.images), batch_size):
        x = edits.images[i : i + batch_size].to(device)
        att = model(x).attention.float()
        out.append(_edited_maps(att, edits.attributes[i : i + batch_size]).cpu())
    model.train(was)
    return torch.cat(out)


def map_agreement(maps: torch.Tensor, edits: _Edits) -> MapAgreement:
    """Agreement of ``maps`` (N×h×w) with the edited maps: see :class:`MapAgreement`."""
    mse = ((maps - edits.targets) ** 2).flatten(1).mean(1).numpy()
    erased = edits.targets < edits.originals - ERASE_TOLERANCE
    has = erased.flatten(1).any(1)
    inside = (maps * erased).flatten(1).sum(1)
    total = maps.flatten(1).sum(1).clamp_min(1e-12)
    share = (inside / total)[has].numpy()
    m, mh, n = mean_ci(mse)
    e, eh, ne = mean_ci(share)
    return MapAgreement(float(m), float(mh), float(e), float(eh), int(n), int(ne))


# --- data --------------------------------------------------------------------------------------


def _dataset(card, name: str | None, split: str, train: bool, root) -> Dataset:
    from abn.data import build_dataset

    return build_dataset(
        name or card.dataset, split, root=root, transform=transform_for(card, train=train)
    )


def replay_dataset(card, data: str | None, data_root) -> tuple[Dataset | None, str]:
    """The model's training data with its training transform, or ``(None, why not)``."""
    from abn.data.errors import DataError

    name = data or card.dataset
    if not name:
        return None, "no replay: the card names no dataset (pass --data)"
    split = (card.splits or {}).get("train", "train") if name == card.dataset else "train"
    try:
        ds = _dataset(card, name, split, True, data_root)
    except (DataError, KeyError, ValueError, OSError) as exc:
        return None, f"no replay: {name}/{split} not available ({exc})"
    return ds, f"{name}/{split} ({len(ds)} images)"


def test_dataset(
    card, data: str | None, data_root, limit: int
) -> tuple[Dataset | None, dict[str, Any]]:
    """The test split the card was measured on (a deterministic sample of ``limit``)."""
    from abn.data.errors import DataError
    from abn.evaluate import evaluation_data

    if limit < 0:
        return None, {"note": "not measured"}
    try:
        name, split, root = evaluation_data(card, data, None, data_root)
        ds = _dataset(card, name, split, False, root)
    except (DataError, KeyError, ValueError, OSError) as exc:
        return None, {"note": f"not measured: test data not available ({exc})"}
    total = len(ds)
    chosen = deterministic_subset(total, limit or None)
    info = {"dataset": name, "split": split, "total": total, "note": f"{name}/{split}"}
    return (Subset(ds, chosen) if chosen is not None else ds), info


def _test(model: nn.Module, ds: Dataset, precision: str, device) -> EvalResult:
    card = model.card
    loader = DataLoader(ds, batch_size=128, num_workers=0)
    return evaluate(model, loader, card.task, card.num_classes, card.class_names, precision, device)


# --- what trains -------------------------------------------------------------------------------


def trained_modules(model: nn.Module, train: str) -> list[nn.Module]:
    if train == "branches":
        return [model.attention_branch, model.perception_branch]
    if train == "feature_extractor":
        return [model.feature_extractor]
    return [model]


def set_trainable(model: nn.Module, train: str) -> list[nn.Parameter]:
    """Freeze everything but ``train``'s modules; returns the parameters that train."""
    model.requires_grad_(False)
    params: list[nn.Parameter] = []
    for module in trained_modules(model, train):
        module.requires_grad_(True)
        params += list(module.parameters())
    return params


def set_modes(model: nn.Module, train: str) -> None:
    """Trained modules in train mode (their BN updates), frozen ones in eval mode."""
    model.eval()
    for module in trained_modules(model, train):
        module.train()


# --- the loss ----------------------------------------------------------------------------------


def finetune_loss(
    out, n_edits: int, labels: torch.Tensor, targets: torch.Tensor, attributes: torch.Tensor,
    gamma: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """``(total, classification, map)`` losses of a mixed batch (edited images first).

    ``labels``: the batch's targets with -1 for edited images without a label (single-task),
    or B×T attribute labels of the replay part only (multi-task, edited rows excluded).
    """
    maps = _edited_maps(out.attention[:n_edits].float(), attributes)
    map_loss = ((maps - targets) ** 2).mean()
    if labels.dim() == 2:  # multi-task: the replay rows follow the edited ones
        logits, att_logits, y = out.logits[n_edits:], out.att_logits[n_edits:], labels
    else:
        keep = labels >= 0
        logits, att_logits, y = out.logits[keep], out.att_logits[keep], labels[keep]
    if y.shape[0]:
        cls = attention_loss(att_logits, y) + perception_loss(logits, y)
    else:
        cls = map_loss.new_zeros(())
    return cls + gamma * map_loss, cls.detach(), map_loss.detach()


# --- the run -----------------------------------------------------------------------------------


def stored_digest(path: str | Path) -> str:
    """The SHA-256 stored in a checkpoint's metadata (what its card and weights hash to)."""
    with safe_open(str(path), framework="pt") as f:
        return (f.metadata() or {}).get("abn.sha256", "")


def _steps(cfg: FinetuneConfig, n: int) -> int:
    return cfg.steps_per_epoch or math.ceil(n / cfg.batch_size)


def _edit_batches(cfg: FinetuneConfig, n: int, epoch: int) -> list[torch.Tensor]:
    """The epoch's edit indices per step: shuffled passes, cycled to ``steps`` batches."""
    g = torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch, 0))
    steps, bs = _steps(cfg, n), min(cfg.batch_size, n)
    order = torch.cat([torch.randperm(n, generator=g) for _ in range(math.ceil(steps * bs / n))])
    return [order[i * bs : (i + 1) * bs] for i in range(steps)]


def _replay_batch(ds: Dataset, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    items = [ds[int(i)] for i in index]
    x = torch.stack([torch.as_tensor(a) for a, _ in items])
    y = torch.stack([torch.as_tensor(b) for _, b in items])
    return x, y


def _identity(cfg: FinetuneConfig, parent: str, edits: str) -> dict[str, Any]:
    """What a resumed run must share with the one it continues."""
    learned = {k: v for k, v in asdict(cfg).items() if k not in ("epochs", "device")}
    return {"parent": parent, "edits": edits, "config": learned}


def _check_new(run_dir: Path) -> None:
    held = [n for n in (STATE_NAME, FINAL_NAME) if (run_dir / n).exists()]
    if held:
        raise FinetuneError(
            f"{run_dir} already holds a fine-tune ({', '.join(held)}): continue it with "
            "--resume, or give another --name; nothing was overwritten"
        )


def finetune(
    model_path: str | Path,
    edit_set: EditSource | str | Path,
    run_dir: str | Path,
    config: FinetuneConfig | None = None,
    *,
    data_root: str | Path | None = None,
    data: str | None = None,
    resume: bool = False,
    progress: Progress | None = None,
    replay_data: Dataset | None = None,
    test_data: Dataset | None = None,
    command: str = "",
) -> FinetuneResult:
    """Fine-tune the ABN in ``model_path`` on ``edit_set``; write ``run_dir/final.safetensors``.

    ``replay_data``/``test_data`` replace the card's training/test data (datasets of
    ``(preprocessed image, target)``). ``progress(step, total, message)`` is called after every
    step. Raises :class:`FinetuneError` (bad edit set, non-ABN model, map size, folder) or
    :class:`~abn.train.state.ResumeError`.
    """
    cfg = config or FinetuneConfig()
    cfg.check()
    run_dir = Path(run_dir)
    t0 = time.perf_counter()
    device = torch.device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    try:
        parent = load(model_path, map_location=device)
    except CheckpointError as exc:
        raise FinetuneError(str(exc)) from None
    check_abn(parent, Path(model_path).name)
    edits_src = open_edit_set(edit_set, parent)
    edits = load_edits(edits_src, parent, data_root)
    card = parent.card
    parent_digest = stored_digest(model_path)
    identity = _identity(cfg, parent_digest, edits_src.digest)

    if replay_data is not None:
        replay_ds, replay_note = replay_data, f"given ({len(replay_data)} images)"
    elif cfg.replay is False:
        replay_ds, replay_note = None, "no replay (turned off)"
    else:
        replay_ds, replay_note = replay_dataset(card, data, data_root)
        if replay_ds is None and cfg.replay:
            raise FinetuneError(replay_note)
    if test_data is not None:
        test_ds, test_note = test_data, {"note": "given"}
    else:
        test_ds, test_note = test_dataset(card, data, data_root, cfg.test_limit)

    state = _start_state(run_dir, resume, identity, cfg)
    model = copy.deepcopy(parent)  # the copy that trains
    params = set_trainable(model, cfg.train)
    optimizer = torch.optim.SGD(
        params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )
    if state is not None:
        model.load_state_dict(state["model"]["weights"])
        optimizer.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"])
        before = state["before"]
    else:
        before = _measure(parent, edits, test_ds, precision, device)
    start = int(state["epoch"]) if state is not None else 0
    losses = list(state["losses"]) if state is not None else []
    elapsed = float(state["elapsed"]) if state is not None else 0.0
    del parent

    n = len(edits.images)
    steps = _steps(cfg, n)
    total = steps * cfg.epochs
    n_replay = round(cfg.replay_ratio * min(cfg.batch_size, n)) if replay_ds else 0
    for epoch in range(start, cfg.epochs):
        set_lr(optimizer, cfg.lr)
        losses.append(
            _epoch(model, optimizer, edits, replay_ds, n_replay, cfg, epoch, precision, device,
                   lambda s, msg, e=epoch: progress and progress(e * steps + s, total, msg))
        )  # fmt: skip
        snapshot = {
            "epoch": epoch + 1,
            "identity": json.dumps(identity, sort_keys=True),
            "model": model_state(model),
            "optimizer": optimizer.state_dict(),
            "rng": rng_state(),
            "before": _plain(before),
            "losses": losses,
            "elapsed": elapsed + time.perf_counter() - t0,
        }
        save_state(run_dir / STATE_NAME, snapshot)

    after = _measure(model, edits, test_ds, precision, device)
    result = FinetuneResult(
        checkpoint=run_dir / FINAL_NAME,
        run_dir=run_dir,
        maps_before=MapAgreement(**before["maps"]),
        maps_after=MapAgreement(**after["maps"]),
        replay=replay_note,
        losses=losses,
    )
    if test_ds is not None:
        result.test_before, result.test_after = before["test"], after["test"]
        cmp = compare(after["eval"], _eval_from(before))
        result.comparison = cmp.as_dict()
    wall = elapsed + time.perf_counter() - t0
    _write_final(model, card, result, cfg, identity, len(edits_src), test_note, wall, command,
                 after.get("eval"))  # fmt: skip
    return result


def _start_state(
    run_dir: Path, resume: bool, identity: dict[str, Any], cfg: FinetuneConfig
) -> dict | None:
    """The state to continue from (``resume``), after checking it is this fine-tune's."""
    if not resume:
        _check_new(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        return None
    if not (run_dir / STATE_NAME).is_file():
        raise ResumeError(f"cannot resume {run_dir}: {STATE_NAME} is missing (no epoch finished)")
    remove_stale_temp_files(run_dir)
    state = load_state(run_dir / STATE_NAME)
    if json.loads(state.get("identity", "{}")) != json.loads(json.dumps(identity)):
        raise ResumeError(
            f"{run_dir} is a fine-tune of another model, edit set or settings: resume with the "
            "same --model, --edits and options (only --epochs may grow)"
        )
    if int(state["epoch"]) > cfg.epochs:
        raise ResumeError(f"{run_dir} has trained {state['epoch']} epochs: use --epochs >= that")
    return state


def _epoch(model, optimizer, edits: _Edits, replay_ds, n_replay: int, cfg, epoch: int,
           precision: str, device, report: Callable[[int, str], Any]) -> dict[str, float]:  # fmt: skip
    """One epoch of mixed steps; returns its mean losses."""
    set_modes(model, cfg.train)
    torch.manual_seed(epoch_seed(cfg.seed, epoch, 1))  # the replay augmentations
    g = torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch, 2))
    sums = np.zeros(3)
    batches = _edit_batches(cfg, len(edits.images), epoch)
    for step, index in enumerate(batches):
        x, y = edits.images[index], edits.labels[index]
        if n_replay:
            rx, ry = _replay_batch(
                replay_ds, torch.randint(len(replay_ds), (n_replay,), generator=g)
            )
            x = torch.cat([x, rx])
            y = ry if ry.dim() == 2 else torch.cat([y, ry.long()])
        elif getattr(model, "is_multitask", False):
            y = torch.zeros(0, model.spec.num_classes)
        optimizer.zero_grad(set_to_none=True)
        with autocast_for(device, precision):
            out = model(x.to(device))
        total, cls, mse = finetune_loss(
            out, len(index), y.to(device), edits.targets[index].to(device),
            edits.attributes[index], cfg.gamma,
        )  # fmt: skip
        if not torch.isfinite(total):
            raise FinetuneError(f"the loss became {total.item()} at epoch {epoch + 1}: lower --lr")
        total.backward()
        optimizer.step()
        sums += [total.item(), cls.item(), mse.item()]
        report(step + 1, f"loss {total.item():.4f} map {mse.item():.4f}")
    n = max(len(batches), 1)
    return {
        "epoch": epoch + 1,
        "loss": float(sums[0]) / n,
        "loss_cls": float(sums[1]) / n,
        "loss_map": float(sums[2]) / n,
    }


def _measure(model, edits: _Edits, test_ds, precision: str, device) -> dict[str, Any]:
    """Map agreement on the edited images and (with test data) test accuracy.

    ``"eval"`` holds the :class:`EvalResult`; everything else is plain data (kept in the
    resume state).
    """
    out: dict[str, Any] = {"maps": asdict(map_agreement(model_maps(model, edits), edits))}
    if test_ds is not None:
        res = _test(model, test_ds, precision, device)
        correct = res.correct if res.correct is not None else np.zeros(0)
        out["test"] = {
            "n": res.n,
            "accuracy": float(correct.mean()) * 100 if correct.size else None,
        }
        out["correct"] = correct.astype(np.uint8).tolist()
        out["task"] = res.task
        out["per_attribute_names"] = list(res.per_attribute)
        out["eval"] = res
    return out


def _plain(measured: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in measured.items() if k != "eval"}


def _eval_from(measured: dict[str, Any]) -> EvalResult:
    """The before-test result (kept as plain data in the resume state) for :func:`compare`."""
    if "eval" in measured:
        return measured["eval"]
    names = measured.get("per_attribute_names", [])
    return EvalResult(
        measured["task"], measured["test"]["n"],
        per_attribute={k: {} for k in names},
        correct=np.asarray(measured["correct"], dtype=bool),
    )  # fmt: skip


def _write_final(model, card, result: FinetuneResult, cfg: FinetuneConfig, identity: dict,
                 size: int, test_note: dict, wall: float, command: str,
                 after_eval: EvalResult | None) -> None:  # fmt: skip
    """``final.safetensors`` (card with provenance) and ``finetune.json``, both atomically."""
    record = {
        "parent_digest": identity["parent"],
        "parent_training": card.training,
        "edit_set_digest": identity["edits"],
        "edit_set_size": size,
        "gamma": cfg.gamma,
        "epochs": cfg.epochs,
        "train": cfg.train,
        "config": asdict(cfg),
        "replay": result.replay,
        "test_data": test_note["note"],
        "maps_before": asdict(result.maps_before),
        "maps_after": asdict(result.maps_after),
        "test_before": result.test_before,
        "test_after": result.test_after,
        "comparison": result.comparison,
        "losses": result.losses,
        "wall_s": wall,
        "command": command,
    }
    metrics: dict[str, Any] = {}
    if after_eval is not None and "dataset" in test_note:
        total = int(test_note["total"])
        key = metrics_key(test_note["dataset"], test_note["split"], after_eval.n, total)
        metrics[key] = metrics_record(after_eval, total)
    new_card = replace(
        card,
        metrics=metrics,
        training={"finetune": _jsonable(record)},
        notes=(card.notes + " " if card.notes else "")
        + f"Fine-tuned from attention edits ({size} edited images).",
    )
    save(model, result.checkpoint, new_card)
    atomic_write_bytes(
        result.run_dir / SUMMARY_NAME, json.dumps(_jsonable(record), indent=2).encode()
    )


def _jsonable(value: Any) -> Any:
    """``value`` with NaN as None (cards are strict JSON)."""
    if isinstance(value, float):
        return None if not math.isfinite(value) else value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def card_finetune(card) -> dict[str, Any] | None:
    """The fine-tune record of a card (``None`` for a model trained from scratch)."""
    return (card.training or {}).get("finetune")
