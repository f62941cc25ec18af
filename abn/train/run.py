"""A whole training run: output folder, model, data, epochs, checkpoints, the final card.

``train(cfg)`` is what ``python -m abn train`` calls; under ``torchrun`` every process runs it
and only rank 0 writes. Layout of ``<out>/<name>/``::

    config.toml  metrics.csv  last.state.pt  last.safetensors  final.safetensors  [tb/]

Every file is written atomically (temp file, fsync, rename), so a run killed at any moment
leaves each name holding either its previous or its new complete content. ``last.state.pt``
(weights + optimizer + RNG of one epoch, see :mod:`.state`) is the resume point and is
written right after ``metrics.csv``'s row of that epoch; resuming drops rows past it and the
temp files a kill left behind.
"""

from __future__ import annotations

import functools
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from abn.card import ModelCard
from abn.checkpoint import atomic_write_bytes, card_for, save
from abn.device import resolve_device as device_for
from abn.evaluate import EvalResult, evaluate, format_result, metrics_key, metrics_record
from abn.models import create
from abn.precision import cpu_capability, resolve_precision, use_channels_last

from . import distributed
from .config import TrainConfig, to_toml
from .data import DataBundle, build_data
from .engine import EpochStats, TrainStep, train_one_epoch
from .graphs import CudaGraphBackend, GraphedStep
from .logging import MetricsLog, progress
from .optim import build_optimizer, set_lr
from .state import (
    STATE_NAME,
    WEIGHTS_NAME,
    ResumePaths,
    check_not_shortened,
    load_state,
    model_state,
    remove_stale_temp_files,
    restore_model,
    rng_state,
    save_state,
    set_rng_state,
)

MIN_FREE_BYTES = 50 * 2**20
# the new state (weights + optimizer buffers, up to 3x the weights with Adam), the new
# last.safetensors and final.safetensors, written while the previous ones still exist
CHECKPOINT_SPACE_FACTOR = 6


class TrainError(RuntimeError):
    """A run cannot start or continue (unwritable folder, full disk, bad data); clear message."""


@dataclass
class RunResult:
    run_dir: Path
    final: Path | None
    test: EvalResult | None
    epochs: list[EpochStats]


EpochHook = Callable[[int, EpochStats], None]


def resolve_device(name: str) -> torch.device:
    """``auto`` → this process's GPU when one is visible, else CPU (:mod:`abn.device`)."""
    try:
        return device_for(name, distributed.from_env().local_rank)
    except ValueError as exc:
        raise TrainError(str(exc)) from None


def hardware(device: torch.device | None = None) -> str:
    """The GPU's name when training on one, else the CPU model with its vector extension.

    The extension matters: the same "AMD EPYC" name covers AVX512-BF16 and AVX2-only parts, whose
    training speeds differ several times.
    """
    if device is not None and device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{_cpu_name()} ({cpu_capability()})"


@functools.cache
def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def free_bytes(path: Path) -> int:
    """Free space for an unprivileged writer on ``path``'s file system."""
    return shutil.disk_usage(path).free


def check_new_run(run_dir: Path) -> None:
    """Refuse to start a run in a folder that holds one (trained epochs or a final model)."""
    held = [n for n in ("metrics.csv", STATE_NAME, "final.safetensors") if (run_dir / n).exists()]
    if held:
        raise TrainError(
            f"{run_dir} already holds a run ({', '.join(held)}): continue it with "
            f"--resume {run_dir}, or give another --name (or --out); nothing was overwritten"
        )


def check_writable(run_dir: Path, need_bytes: int = MIN_FREE_BYTES) -> None:
    """Fail early, with the folder named, when outputs cannot be written."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise TrainError(
            f"cannot write to output folder {run_dir}: {exc.strerror or exc}"
        ) from None
    free = free_bytes(run_dir)
    if free < need_bytes:
        raise TrainError(
            f"not enough free disk space in {run_dir}: {free / 2**20:.0f} MiB free, "
            f"{need_bytes / 2**20:.0f} MiB needed for checkpoints"
        )


class _Saving:
    """Turns a failed write (full disk, folder made read-only) into a :class:`TrainError`
    that says which epoch ``--resume`` will continue from."""

    def __init__(self, run_dir: Path, saved_epoch: int) -> None:
        self.run_dir, self.saved_epoch = run_dir, saved_epoch

    @contextmanager
    def __call__(self, what: str) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            if self.saved_epoch:
                keep = (
                    f"the checkpoint of epoch {self.saved_epoch} is intact: free space, then "
                    f"continue with `python -m abn train --resume {self.run_dir}`"
                )
            else:
                keep = "no epoch was saved yet: free space and start the run again"
            raise TrainError(
                f"cannot write {what} in {self.run_dir}: {exc.strerror or exc}; {keep}"
            ) from exc


def _check_on_main(dist: distributed.DistInfo, check: Callable[[], None]) -> None:
    """Run a folder check on rank 0 and raise its :class:`TrainError` on every rank, so that
    under ``torchrun`` no process is left waiting for one that stopped."""
    error = None
    if dist.is_main:
        try:
            check()
        except TrainError as exc:
            error = str(exc)
    error = distributed.broadcast_object(error)
    if error:
        raise TrainError(error)


def _model_bytes(model: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def check_cuda_graphs(cfg: TrainConfig, device: torch.device, ddp: bool = False) -> None:
    """Refuse ``cuda_graphs`` where it cannot work, before any data is loaded."""
    if not cfg.cuda_graphs:
        return
    if device.type != "cuda":
        raise TrainError(f"cuda_graphs needs a CUDA device; this run's device is {device}")
    if ddp:
        raise TrainError("cuda_graphs does not work with DDP (torchrun); train in one process")


def make_step(
    cfg: TrainConfig,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    precision: str,
    ddp: bool = False,
) -> TrainStep | GraphedStep:
    """The run's training step: eager, or replayed as a CUDA graph with ``cuda_graphs``."""
    if not cfg.cuda_graphs:
        return TrainStep(model, optimizer, device, precision)
    check_cuda_graphs(cfg, device, ddp)
    step = TrainStep(model, optimizer, device, precision, cache_casts=False)
    return GraphedStep(step, optimizer, CudaGraphBackend(device))


def build_model(cfg: TrainConfig, num_classes: int) -> nn.Module:
    """The model of ``cfg``, initialised from ``cfg.seed``."""
    torch.manual_seed(cfg.seed)
    try:
        return create(cfg.model, cfg.variant, num_classes, **cfg.model_kwargs)
    except (KeyError, TypeError, ValueError) as exc:
        raise TrainError(exc.args[0] if exc.args else str(exc)) from None


def _check_task(model: nn.Module, task: str, data: str) -> None:
    multitask = getattr(model, "is_multitask", False)
    if multitask != (task == "multilabel"):
        want = "abn_multitask or plain_multitask" if task == "multilabel" else "abn, plain or cam"
        raise TrainError(f"{data} is a {task} dataset: use variant {want}")


def make_card(cfg: TrainConfig, model: nn.Module, data: DataBundle, **fields: Any) -> ModelCard:
    """The model card for a checkpoint of this run."""
    info = data.info
    return card_for(
        model,
        class_names=list(info.class_names),
        task=info.task,
        input_size=tuple(data.input_size),
        mean=tuple(info.mean),
        std=tuple(info.std),
        dataset=info.name,
        splits={"train": data.train_split, "test": data.test_split},
        # the data root as an absolute path: an image tree is found again from anywhere
        recipe={**cfg.to_dict(), "recipe": info.recipe, "data_root": _absolute(cfg.data_root)},
        **fields,
    )


def _absolute(path: str) -> str:
    return str(Path(path).expanduser().resolve()) if path else ""


def _training_info(
    device: torch.device,
    dist: distributed.DistInfo,
    stats: list[EpochStats],
    wall: float,
    command: str,
    epochs_done: int,
    precision: str,
) -> dict[str, Any]:
    total_images = sum(s.images for s in stats)
    total_time = sum(s.seconds for s in stats)
    return {
        "hardware": hardware(device),
        "device_count": dist.world_size,
        "wall_time_s": round(wall, 2),
        "images_per_s": round(total_images / total_time, 1) if total_time else None,
        "command": command,
        "epochs": epochs_done,
        "precision": precision,  # as resolved on this hardware
        "torch": torch.__version__,
    }


def train(
    cfg: TrainConfig,
    resume: ResumePaths | None = None,
    command: str = "",
    on_epoch_end: EpochHook | None = None,
) -> RunResult:
    """Train ``cfg`` (continuing from ``resume``); returns the run folder and test numbers."""
    device = resolve_device(cfg.device)
    benchmark = torch.backends.cudnn.benchmark
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True  # fixed batch shapes: pick the fastest kernels
    dist = distributed.setup(device)
    try:
        return _train(cfg, device, dist, resume, command or " ".join(sys.argv), on_epoch_end)
    finally:
        distributed.teardown()
        torch.backends.cudnn.benchmark = benchmark  # the caller's setting, after the run


@dataclass
class _Run:
    """Everything one run's epochs share: the folder, data, model, optimizer, step, logs."""

    cfg: TrainConfig
    device: torch.device
    dist: distributed.DistInfo
    run_dir: Path
    precision: str
    data: DataBundle
    raw: nn.Module  # the bare model: what is saved and restored
    model: nn.Module  # what trains: ``raw``, possibly in DDP and compiled
    tester: nn.Module  # what tests
    optimizer: torch.optim.Optimizer
    step: TrainStep | GraphedStep
    saving: _Saving
    log: MetricsLog | None
    show: bool
    start_epoch: int = 0
    elapsed: float = 0.0
    stats: list[EpochStats] = field(default_factory=list)


def _train(cfg, device, dist, resume, command, on_epoch_end) -> RunResult:
    run = _start(cfg, device, dist, resume)
    t0 = time.perf_counter() - run.elapsed
    test: EvalResult | None = None
    for epoch in range(run.start_epoch, cfg.epochs):
        epoch_stats, test = _run_epoch(run, epoch, t0)
        if on_epoch_end is not None:
            on_epoch_end(epoch, epoch_stats)
    if test is None:  # resumed a finished run: measure again
        test = _test(run.tester, run.raw, run.data, run.precision, device, run.show)
    final = _finish(run, test, time.perf_counter() - t0, command) if dist.is_main else None
    return RunResult(run.run_dir, final, test, run.stats)


def _check_folder(dist: distributed.DistInfo, run_dir: Path, resume: ResumePaths | None) -> None:
    """Before loading data, which may take long: a new run's folder is free, and writable."""
    if resume is None:
        _check_on_main(dist, lambda: check_new_run(run_dir))
    _check_on_main(dist, lambda: check_writable(run_dir))


def _start(cfg: TrainConfig, device, dist, resume: ResumePaths | None) -> _Run:
    """Check the folder, load data and model (restored when resuming), set up the step."""
    run_dir = resume.run_dir if resume else cfg.run_dir()
    _check_folder(dist, run_dir, resume)
    check_cuda_graphs(cfg, device, dist.enabled)
    precision = resolve_precision(cfg.precision, device)  # "auto" → bf16 where native, else fp32
    cl = use_channels_last(cfg.channels_last, device, precision)
    data, raw = _data_and_model(cfg, device, dist, cl)
    _check_on_main(dist, lambda: _room_for_checkpoints(run_dir, raw))
    state = load_state(resume.state) if resume else None
    if state is not None:
        restore_model(raw, resume, state)
    raw.to(device, memory_format=torch.channels_last if cl else torch.preserve_format)
    optimizer = build_optimizer(raw, cfg, device)
    start_epoch, elapsed, stats = 0, 0.0, []
    if state is not None:
        start_epoch, elapsed, stats = _restore(optimizer, resume, cfg, state)
        del state  # its copy of the weights and optimizer
    model = _wrap(raw, cfg, dist, device)
    show = not cfg.quiet and dist.is_main
    run = _Run(
        cfg, device, dist, run_dir, precision, data, raw, model,
        # each process tests its own shard, which may be a batch shorter than another's: the
        # bare module (the weights are the same everywhere) has no collective to wait on
        tester=raw if dist.enabled else model,
        optimizer=optimizer,
        step=make_step(cfg, model, optimizer, device, precision, dist.enabled),
        saving=_Saving(run_dir, start_epoch),
        log=None, show=show, start_epoch=start_epoch, elapsed=elapsed, stats=stats,
    )  # fmt: skip
    if dist.is_main:
        run.log = _write_config(run)
    _announce(run, resume is not None)
    return run


def _data_and_model(
    cfg: TrainConfig, device: torch.device, dist, channels_last: bool
) -> tuple[DataBundle, nn.Module]:
    """The run's batches and its freshly initialised model, checked to fit the dataset's task."""
    data = build_data(cfg, device, dist, channels_last=channels_last)
    raw = build_model(cfg, data.info.num_classes)
    _check_task(raw, data.info.task, cfg.data)
    return data, raw


def _room_for_checkpoints(run_dir: Path, raw: nn.Module) -> None:
    check_writable(run_dir, max(MIN_FREE_BYTES, CHECKPOINT_SPACE_FACTOR * _model_bytes(raw)))
    remove_stale_temp_files(run_dir)


def _restore(
    optimizer: torch.optim.Optimizer, resume: ResumePaths, cfg: TrainConfig, state: dict
) -> tuple[int, float, list[EpochStats]]:
    """Optimizer, RNG and progress from a saved state: ``(epochs done, elapsed s, stats)``."""
    optimizer.load_state_dict(state["optimizer"])
    set_rng_state(state["rng"])
    check_not_shortened(resume, cfg.epochs, state)
    stats = [EpochStats(**s) for s in state.get("stats", [])]
    return int(state["epoch"]), float(state.get("elapsed", 0.0)), stats


def _wrap(raw: nn.Module, cfg: TrainConfig, dist, device: torch.device) -> nn.Module:
    """The module that trains: ``raw`` in DDP under torchrun, compiled with ``compile``."""
    model: nn.Module = raw
    if dist.enabled:
        model = DistributedDataParallel(
            raw, device_ids=[device.index] if device.type == "cuda" else None
        )
    if cfg.compile:
        model = torch.compile(model)
    return model


def _write_config(run: _Run) -> MetricsLog:
    """Write the run's ``config.toml``; open its metrics log (rank 0)."""
    config = to_toml(run.cfg).encode()
    with run.saving("config.toml"):
        atomic_write_bytes(run.run_dir / "config.toml", config)
    return MetricsLog(run.run_dir, run.start_epoch)


def _announce(run: _Run, resumed: bool) -> None:
    if not run.show:
        return
    cfg = run.cfg
    print(f"{cfg.name}: {hardware(run.device)}, {run.precision}", file=sys.stderr)
    if resumed:
        print(
            f"resuming {run.run_dir} from the checkpoint of epoch {run.start_epoch}: epoch "
            f"{run.start_epoch + 1}/{cfg.epochs} next",
            file=sys.stderr,
        )


def _run_epoch(run: _Run, epoch: int, t0: float) -> tuple[EpochStats, EvalResult | None]:
    """Train one epoch, test when due, log and save it (rank 0); all ranks meet at the end."""
    cfg, data = run.cfg, run.data
    set_lr(run.optimizer, cfg.lr_at(epoch))
    data.train.set_epoch(epoch)
    bar = progress(data.train, run.show, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch")
    epoch_stats = train_one_epoch(
        run.model,
        bar,
        run.optimizer,
        run.device,
        run.precision,
        bar if bar is not data.train else None,
        run.step,
    )
    run.stats.append(epoch_stats)
    test = None
    if epoch + 1 == cfg.epochs or (epoch + 1) % cfg.eval_every == 0:
        test = _test(run.tester, run.raw, data, run.precision, run.device, run.show)
    if run.dist.is_main:
        _save_epoch(run, epoch, epoch_stats, test, t0)
    distributed.barrier()
    return epoch_stats, test


def _save_epoch(
    run: _Run, epoch: int, epoch_stats: EpochStats, test: EvalResult | None, t0: float
) -> None:
    """The epoch's metrics row, then its resumable state, then ``last.safetensors``."""
    with run.saving("metrics.csv"):
        # the rate the optimizer stepped with, not the one the schedule asked for
        lr = run.optimizer.param_groups[0]["lr"]
        _log_epoch(run.log, epoch, lr, epoch_stats, test, run.show)
    snapshot = {
        "epoch": epoch + 1,
        "model": model_state(run.raw),
        "optimizer": run.optimizer.state_dict(),
        "rng": rng_state(),
        "loader": run.data.train.state_dict(),
        "elapsed": time.perf_counter() - t0,
        "stats": [vars(s) for s in run.stats],
    }
    with run.saving(STATE_NAME):
        save_state(run.run_dir / STATE_NAME, snapshot)
    run.saving.saved_epoch = epoch + 1
    card = make_card(run.cfg, run.raw, run.data, training={"epochs": epoch + 1})
    with run.saving(WEIGHTS_NAME):
        save(run.raw, run.run_dir / WEIGHTS_NAME, card)


def _finish(run: _Run, test: EvalResult, wall: float, command: str) -> Path:
    """Write ``final.safetensors`` with the test metrics and training facts (rank 0)."""
    cfg, data = run.cfg, run.data
    training = _training_info(
        run.device, run.dist, run.stats, wall, command, cfg.epochs, run.precision
    )
    total = data.test_split_size
    key = metrics_key(data.info.name, data.test_split, test.n, total)
    card = make_card(
        cfg, run.raw, data, metrics={key: metrics_record(test, total)}, training=training
    )
    with run.saving("final.safetensors"):
        final = save(run.raw, run.run_dir / "final.safetensors", card)
    run.log.close()
    if run.show:
        print(format_result(test, f"{cfg.name}: {key}"))
    return final


def _test(model, raw, data: DataBundle, precision: str, device, show) -> EvalResult:
    bar = progress(data.test, show, desc="test", unit="batch")
    return evaluate(
        model,
        bar,
        data.info.task,
        raw.spec.num_classes,
        data.info.class_names,
        precision,
        device,
    )


def _log_epoch(
    log: MetricsLog, epoch: int, lr: float, s: EpochStats, test: EvalResult | None, show: bool
) -> None:
    row: dict[str, Any] = {
        "epoch": epoch + 1,
        "lr": lr,
        "train_loss": s.loss,
        "train_loss_att": s.loss_att,
        "train_loss_per": s.loss_per,
        "train_acc_per": s.acc_per,
        "train_acc_att": s.acc_att,
        "time_s": s.seconds,
        "images_per_s": s.images_per_s,
    }
    if test is not None:
        m = test.metrics
        for b in ("per", "att"):
            if f"{b}_top1_err" in m:
                row[f"test_acc_{b}"] = 100.0 - m[f"{b}_top1_err"]
                if f"{b}_top5_err" in m:  # not with 5 classes or fewer
                    row[f"test_top5_acc_{b}"] = 100.0 - m[f"{b}_top5_err"]
            elif f"{b}_mean_acc" in m:
                row[f"test_acc_{b}"] = m[f"{b}_mean_acc"]
    log.log(row)
    if show:
        att = f" att {s.acc_att:.1f}%" if s.acc_att is not None else ""
        tst = f" test {row['test_acc_per']:.2f}%" if "test_acc_per" in row else ""
        print(
            f"epoch {epoch + 1}: lr {lr:g} loss {s.loss:.4f} train {s.acc_per:.1f}%{att}{tst} "
            f"{s.images_per_s:.0f} img/s",
            file=sys.stderr,
        )
