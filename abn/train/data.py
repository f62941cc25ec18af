"""Training and test batches for a config: in-memory device batches or a worker DataLoader.

Small datasets (CIFAR, SVHN, CelebA-HQ 64 px) are decoded once into uint8 tensors
(:mod:`abn.data.memory`) and augmented on the target device; image-folder sets at ImageNet
resolution stream through a ``DataLoader`` with workers. Both yield ``(x, y)`` on ``device``,
have ``set_epoch(e)`` (the batches of epoch ``e`` depend only on the seed and ``e``) and split
a *global* batch across ``torchrun`` processes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from abn.data import build_dataset, dataset_info
from abn.data.memory import (
    EpochState,
    deterministic_subset,
    epoch_seed,
    fit_for,
    load_into_memory,
)
from abn.data.registry import DatasetInfo, is_tree, tree_root_problem
from abn.data.transforms import build_transform

from .config import TrainConfig
from .distributed import DistInfo

MEMORY_RECIPES = ("cifar", "celeba", "compcars")
MEMORY_MAX_SIDE = 64


@dataclass
class DataBundle:
    """The batches of one run and what they were made from."""

    info: DatasetInfo
    train: Any  # iterable of (x, y) with set_epoch and __len__
    test: Any
    train_size: int
    test_size: int
    train_split: str
    test_split: str
    input_size: tuple[int, int]
    loader_kind: str
    test_split_size: int  # images in the whole test split (``test_size`` if not limited)


def resolve_info(cfg: TrainConfig) -> DatasetInfo:
    """The dataset's facts, with the config's input size applied."""
    info = dataset_info(cfg.data, cfg.data_root or None)
    if info.num_classes is None:
        tree = is_tree(cfg.data) and cfg.data_root
        problem = tree_root_problem(Path(cfg.data_root)) if tree else None
        raise ValueError(problem or f"{cfg.data}: cannot tell its classes (is data_root right?)")
    if cfg.recipe:
        info = replace(info, recipe=cfg.recipe)
    if info.task == "multiclass" and info.num_classes < 2:
        raise ValueError(
            f"{cfg.data} has {info.num_classes} class ({', '.join(info.class_names)}): a "
            "classifier needs at least 2 class folders"
        )
    return info


def loader_kind(cfg: TrainConfig, info: DatasetInfo, input_size: tuple[int, int]) -> str:
    """``memory`` for small images with tensor-friendly recipes, else ``folder``."""
    if cfg.loader != "auto":
        return cfg.loader
    small = max(input_size) <= MEMORY_MAX_SIDE
    return "memory" if small and info.recipe in MEMORY_RECIPES else "folder"


def build_data(
    cfg: TrainConfig, device: torch.device, dist: DistInfo, channels_last: bool = False
) -> DataBundle:
    """Train and test batches for ``cfg`` on ``device`` (this process's shard)."""
    info = resolve_info(cfg)
    size = tuple(cfg.input_size) if cfg.input_size else tuple(info.input_size)
    train_split = cfg.train_split or info.train_split
    test_split = cfg.test_split or info.eval_split
    if cfg.batch_size % dist.world_size:
        raise ValueError(
            f"batch_size {cfg.batch_size} (global) is not divisible by {dist.world_size} processes"
        )
    per_rank = cfg.batch_size // dist.world_size
    if cfg.resized_crop() is not None and info.recipe != "imagenet":
        raise ValueError(
            f"augment = 'random-resized-crop' is for datasets with the 'imagenet' recipe; "
            f"{cfg.data} uses {info.recipe!r}"
        )
    kind = loader_kind(cfg, info, size)
    make = _memory_batches if kind == "memory" else _folder_batches
    common = {"cfg": cfg, "info": info, "size": size, "device": device, "dist": dist}
    train, n_train, _ = make(
        split=train_split, train=True, batch=per_rank, **common, cl=channels_last
    )
    if len(train) == 0:  # the last incomplete batch is dropped: the run would take no step
        shared = f" shared by {dist.world_size} processes" if dist.world_size > 1 else ""
        raise ValueError(
            f"{cfg.data}/{train_split} has {n_train} training images{shared}, fewer than one "
            f"batch of {cfg.batch_size}: no training step would run; lower batch_size"
        )
    test, n_test, total = make(
        split=test_split, train=False, batch=per_rank, **common, cl=channels_last
    )
    return DataBundle(
        info, train, test, n_train, n_test, train_split, test_split, size, kind, total
    )


def _limit(cfg: TrainConfig, train: bool) -> int | None:
    limit = cfg.limit_train if train else cfg.limit_test
    return limit or None


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity, e.g. a container's share), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _memory_batches(
    *, cfg, info, size, device, dist, split, train, batch, cl
) -> tuple[Any, int, int]:
    mem = load_into_memory(
        cfg.data,
        split,
        root=cfg.data_root or None,
        size=_stored_size(info.recipe, size),
        fit=fit_for(info.recipe),
        limit=_limit(cfg, train),
        num_workers=min(cfg.workers, usable_cpus()),
        progress=not cfg.quiet and dist.is_main,
    )
    batches = mem.loader(
        batch,
        train=train,
        device=device,
        seed=cfg.seed,
        crop_size=size,
        recipe=info.recipe,
        rank=dist.rank,
        world_size=dist.world_size,
        channels_last=cl,
        resized_crop=cfg.resized_crop() if train else None,
    )
    return batches, len(mem), mem.split_size or len(mem)


def _stored_size(recipe: str, size: tuple[int, int]) -> tuple[int, int]:
    if recipe == "imagenet":
        side = round(max(size) * 256 / 224)
        return (side, side)
    return size


def _folder_batches(
    *, cfg, info, size, device, dist, split, train, batch, cl
) -> tuple[Any, int, int]:
    crop = cfg.resized_crop() if train else None
    transform = build_transform(info.recipe, train, size, info.mean, info.std, crop)
    ds: Dataset = build_dataset(cfg.data, split, root=cfg.data_root or None, transform=transform)
    total = len(ds)
    chosen = deterministic_subset(total, _limit(cfg, train))
    if chosen is not None:
        ds = Subset(ds, chosen)
    workers = min(cfg.workers, usable_cpus())  # more only queue up (augmentation is per image)
    batches = LoaderBatches(ds, batch, train, device, workers, cfg.seed, dist, channels_last=cl)
    return batches, len(ds), total


class SeededItems(Dataset):
    """``ds`` whose items draw their random augmentation from ``(seed, epoch, index)`` alone, so
    an epoch's images are the same whatever the number of workers or processes (and a run
    resumed with other ``workers`` goes on exactly). The caller's RNG is left as it was."""

    def __init__(self, ds: Dataset, seed: int) -> None:
        self.ds, self.seed, self.epoch = ds, seed, 0

    def __len__(self) -> int:
        return len(self.ds)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(epoch_seed(self.seed, self.epoch, index))
            return self.ds[index]


class LoaderBatches(EpochState):
    """A ``DataLoader`` (workers, pinned memory, per-rank sampler) whose batches land on ``device``.

    The order of epoch ``e`` derives from ``(seed, e)``, and each training image's augmentation
    from ``(seed, e, index)`` (:class:`SeededItems`), whatever the workers or processes.
    Evaluation shards the split without padding, so every image counts once.
    """

    def __init__(
        self,
        ds: Dataset,
        batch_size: int,
        train: bool,
        device: torch.device,
        workers: int,
        seed: int,
        dist: DistInfo,
        channels_last: bool = False,
    ) -> None:
        self.device, self.seed, self.epoch, self.channels_last = device, seed, 0, channels_last
        self.items = SeededItems(ds, seed) if train else None
        ds = self.items or ds
        self.generator = torch.Generator()
        self.sampler: Any = None
        if dist.enabled and train:
            self.sampler = DistributedSampler(
                ds, dist.world_size, dist.rank, shuffle=True, seed=seed, drop_last=True
            )
        elif dist.enabled:  # every test image once: DistributedSampler would pad with repeats
            self.sampler = range(dist.rank, len(ds), dist.world_size)
        self.loader = DataLoader(
            ds,
            batch_size=batch_size,
            shuffle=train and self.sampler is None,
            sampler=self.sampler,
            num_workers=workers,
            pin_memory=device.type == "cuda",
            drop_last=train,
            persistent_workers=False,
            generator=self.generator,
        )

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.generator.manual_seed(epoch_seed(self.seed, self.epoch))
        if self.items is not None:  # read by the workers this iteration starts
            self.items.epoch = self.epoch
        if isinstance(self.sampler, DistributedSampler):
            self.sampler.set_epoch(self.epoch)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        for x, y in self.loader:
            x = x.to(self.device, non_blocking=True, memory_format=fmt)
            yield x, torch.as_tensor(y).to(self.device, non_blocking=True)
        self.epoch += 1
