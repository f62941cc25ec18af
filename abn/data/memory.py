"""Fast path for small datasets: decode once, keep uint8 tensors, augment whole batches on device.

A 2-core CPU cannot decode 50,000 JPEGs every epoch. :func:`load_into_memory` decodes a split
once into an ``N×3×H×W`` uint8 tensor (cached under ``<data root>/.cache/memory/`` as a
plain-tensor ``.pt`` file, read back with ``torch.load(weights_only=True)``), and
:class:`DeviceBatches` yields shuffled, augmented, normalised batches computed on the target
device with vectorised tensor ops::

    mem = load_into_memory("cifar10", "train")            # ~seconds first time, then instant
    batches = mem.loader(128, train=True, device="cuda", seed=0)
    for epoch in range(start_epoch, epochs):
        batches.set_epoch(epoch)                          # same (seed, epoch) → same batches
        for x, y in batches:                              # x: float B×3×32×32, normalised
            ...

Augmentation per recipe (train only): ``cifar``: zero-pad 4, random crop, horizontal flip;
``imagenet``: random crop to ``crop_size`` (from the larger stored size), flip;
``celeba``/``compcars``: flip. Evaluation: center crop to ``crop_size`` if smaller than stored.
All randomness comes from a ``torch.Generator`` seeded from ``(seed, epoch)`` on the CPU, so
batches are identical on every device and an interrupted run resumes exactly.
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.v2 import functional as TF
from tqdm.auto import tqdm

from abn.data.errors import DataError
from abn.data.paths import resolve_root
from abn.data.recipes import RESIZED_CROP_RATIO, as_size, check_resized_crop, resize_size
from abn.data.registry import build_dataset, dataset_info

CACHE_VERSION = 2  # 2: high-bit-depth images scaled by bit depth
Fit = Literal["resize", "crop"]


@dataclass
class InMemoryDataset(Dataset):
    """A decoded split: ``images`` uint8 N×3×H×W, ``targets`` (long N, or float N×K multi-label).

    ``recipe``, ``mean``, ``std`` and ``input_size`` are the defaults :meth:`loader` uses.
    """

    images: torch.Tensor
    targets: torch.Tensor
    class_names: tuple[str, ...] = ()
    recipe: str = "cifar"
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)
    input_size: tuple[int, int] | None = None
    name: str = ""
    split: str = ""
    cache_path: Path | None = field(default=None, compare=False)
    split_size: int | None = field(default=None, compare=False)  # images before ``limit``

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.targets[index]

    def loader(
        self,
        batch_size: int,
        train: bool = True,
        *,
        device: str | torch.device | None = None,
        seed: int = 0,
        **kwargs: Any,
    ) -> DeviceBatches:
        """:class:`DeviceBatches` over this split with its recipe, mean, std and input size."""
        kwargs.setdefault("recipe", self.recipe)
        kwargs.setdefault("mean", self.mean)
        kwargs.setdefault("std", self.std)
        kwargs.setdefault("crop_size", self.input_size)
        return DeviceBatches(
            self.images, self.targets, batch_size, train=train, device=device, seed=seed, **kwargs
        )


def load_into_memory(
    dataset: str | Dataset,
    split: str = "train",
    *,
    root: str | os.PathLike[str] | None = None,
    size: int | Sequence[int] | None = None,
    fit: Fit | None = None,
    limit: int | None = None,
    indices: Sequence[int] | None = None,
    cache: bool = True,
    cache_name: str | None = None,
    num_workers: int = 0,
    progress: bool = True,
) -> InMemoryDataset:
    """Decode a split into memory, caching the tensors under ``<data root>/.cache/memory/``.

    Args:
        dataset: a registered name (see :func:`~abn.data.registry.list_datasets`) or any
            dataset whose items are ``(uint8 3×H×W tensor or PIL image, target)``.
        split: the split to load (ignored for a dataset object).
        root: data root (for ``imagefolder``: the tree).
        size: stored ``(H, W)``; default: the recipe's input size (``imagenet``: the
            pre-crop size, e.g. 146 for 128), or the first image's size for dataset objects.
        fit: ``"resize"`` (stretch) or ``"crop"`` (resize shorter side + center crop);
            default :func:`fit_for` the recipe, as its per-image pipeline does.
        limit: keep a deterministic random subset of this many images (seed 0, sorted).
        indices: keep exactly these images (overrides ``limit``).
        cache: read/write the cache; a dataset object is cached only with ``cache_name``.
        num_workers: decoding processes (``torch.utils.data.DataLoader``).
        progress: show a tqdm bar while decoding.
    """
    source = (
        _registered(dataset, split, root, size, fit)
        if isinstance(dataset, str)
        else _given(dataset, size, fit)
    )
    ds = source.dataset
    chosen = _select(len(ds), limit, indices)
    name = cache_name or source.cache_name
    path = (
        _cache_path(root, dataset, name, source.size, source.fit, chosen)
        if cache and name
        else None
    )
    images, targets, path = _cached_or_decoded(
        ds, chosen, source.size, source.fit, path, num_workers, progress
    )
    return InMemoryDataset(images, targets, cache_path=path, split_size=len(ds), **source.meta)


@dataclass
class _Source:
    """What :func:`load_into_memory` decodes: the dataset, the stored size and fit, the
    :class:`InMemoryDataset` fields it fills, and its default cache name (``None``: no cache)."""

    dataset: Dataset
    size: tuple[int, int]
    fit: Fit
    meta: dict[str, Any]
    cache_name: str | None = None


def _registered(
    name: str,
    split: str,
    root: str | os.PathLike[str] | None,
    size: int | Sequence[int] | None,
    fit: Fit | None,
) -> _Source:
    """A registered dataset's split, with its recipe's defaults."""
    info = dataset_info(name, root)
    meta = {
        "class_names": info.class_names,
        "recipe": info.recipe,
        "mean": info.mean,
        "std": info.std,
        "input_size": info.input_size,
        "name": name,
        "split": split,
    }
    ds = build_dataset(name, split, root=root)
    stored = as_size(size) if size is not None else _default_size(info.recipe, info.input_size)
    return _Source(ds, stored, fit or fit_for(info.recipe), meta, f"{name}-{split}")


def _given(ds: Dataset, size: int | Sequence[int] | None, fit: Fit | None) -> _Source:
    """A dataset object: stored at its first image's size unless told, stretched to fit."""
    names = tuple(getattr(ds, "class_names", getattr(ds, "classes", ())))
    stored = as_size(size) if size is not None else _first_size(ds)
    return _Source(ds, stored, fit or "resize", {"class_names": names})


def _cached_or_decoded(
    ds: Dataset,
    chosen: torch.Tensor | None,
    size: tuple[int, int],
    fit: Fit,
    path: Path | None,
    workers: int,
    progress: bool,
) -> tuple[torch.Tensor, torch.Tensor, Path | None]:
    """The images and targets from the cache at ``path`` when it holds this very selection,
    else decoded (and cached there); the path is ``None`` when nothing is cached."""
    fingerprint = _fingerprint(ds, chosen)
    cached = _read_cache(path, fingerprint) if path else None
    if cached is not None:
        return (*cached, path)
    images, targets = _decode_all(ds, chosen, size, fit, workers, progress)
    if path and not _try_write_cache(path, images, targets, fingerprint):
        path = None
    return images, targets, path


def fit_for(recipe: str) -> Fit:
    """How the recipe's per-image pipeline fits an image to its size before augmenting:
    ``imagenet`` resizes the shorter side and crops, the others resize to the size."""
    return "crop" if recipe == "imagenet" else "resize"


def _default_size(recipe: str, input_size: tuple[int, int]) -> tuple[int, int]:
    if recipe == "imagenet":
        side = resize_size(input_size)
        return (side, side)
    return input_size


def _first_size(ds: Dataset) -> tuple[int, int]:
    if len(ds) == 0:
        raise DataError(f"{ds!r}: dataset is empty")
    image = _as_uint8(ds[0][0])
    return (int(image.shape[-2]), int(image.shape[-1]))


def deterministic_subset(n: int, limit: int | None) -> list[int] | None:
    """A fixed sample of ``limit`` of ``n`` images: seed-0 permutation's first ``limit``, sorted
    (``None``: all of them). In-memory sets, loaders and ``abn eval --limit`` take the same."""
    if limit is None or limit >= n:
        return None
    g = torch.Generator().manual_seed(0)
    return torch.randperm(n, generator=g)[:limit].sort().values.tolist()


def _select(n: int, limit: int | None, indices: Sequence[int] | None) -> torch.Tensor | None:
    if indices is not None:
        chosen = torch.as_tensor(list(indices), dtype=torch.long)
        if chosen.numel() and (chosen.min() < 0 or chosen.max() >= n):
            raise DataError(f"indices must lie in [0, {n}); got {chosen.min()}…{chosen.max()}")
        return chosen
    chosen = deterministic_subset(n, limit)
    return None if chosen is None else torch.as_tensor(chosen, dtype=torch.long)


def _cache_path(
    root: str | os.PathLike[str] | None,
    dataset: str | Dataset,
    name: str,
    size: tuple[int, int],
    fit: str,
    chosen: torch.Tensor | None,
) -> Path:
    # a user's tree keeps its cache beside its splits (``.cache`` is hidden, so never a split),
    # wherever the run starts from; a registered dataset's goes under the data root
    tree = dataset == "imagefolder" and root is not None
    base = (Path(root) if tree else resolve_root(root)) / ".cache" / "memory"
    key = f"{name}-{size[0]}x{size[1]}-{fit}"
    if chosen is not None:
        key += "-" + hashlib.sha1(chosen.numpy().tobytes()).hexdigest()[:10]
    return base / f"{key}.pt"


def _fingerprint(ds: Dataset, chosen: torch.Tensor | None) -> str:
    h = hashlib.sha1(f"v{CACHE_VERSION}:{len(ds)}".encode())
    fp = getattr(ds, "fingerprint", None)
    if callable(fp):
        h.update("\n".join(fp()).encode())
    if chosen is not None:
        h.update(chosen.numpy().tobytes())
    return h.hexdigest()


def _read_cache(path: Path, fingerprint: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    if not path.is_file():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # unreadable or foreign file: rebuild it
        return None
    if not isinstance(data, dict) or data.get("fingerprint") != fingerprint:
        return None
    return data["images"], data["targets"]


def _write_cache(path: Path, images: torch.Tensor, targets: torch.Tensor, fingerprint: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    payload = {
        "version": CACHE_VERSION,
        "fingerprint": fingerprint,
        "images": images,
        "targets": targets,
    }
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:  # a full disk, a kill: no half-written file stays behind
        tmp.unlink(missing_ok=True)
        raise


def _try_write_cache(
    path: Path, images: torch.Tensor, targets: torch.Tensor, fingerprint: str
) -> bool:
    """Write the cache; a read-only data root or a full disk only costs the next run's decode."""
    try:
        _write_cache(path, images, targets, fingerprint)
    except (OSError, RuntimeError) as exc:  # torch.save reports a full disk as RuntimeError
        reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
        warnings.warn(
            f"cannot cache the decoded images at {path} ({reason}); going on "
            "without the cache (the next run decodes them again)",
            stacklevel=3,
        )
        return False
    return True


class _Fitted(Dataset):
    """Items of ``ds`` (restricted to ``chosen``) as uint8 tensors of exactly ``size``."""

    def __init__(self, ds: Dataset, chosen: torch.Tensor | None, size: tuple[int, int], fit: str):
        self.ds, self.chosen, self.size, self.fit = ds, chosen, size, fit

    def __len__(self) -> int:
        return len(self.chosen) if self.chosen is not None else len(self.ds)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = int(self.chosen[i]) if self.chosen is not None else i
        image, target = self.ds[index]
        return fit_image(_as_uint8(image), self.size, self.fit), torch.as_tensor(target)


def _as_uint8(image: Any) -> torch.Tensor:
    if isinstance(image, torch.Tensor):
        if image.dtype != torch.uint8:
            raise DataError(
                "load_into_memory needs uint8 images: build the dataset without a transform"
            )
        return image
    return TF.pil_to_tensor(image.convert("RGB"))


def fit_image(image: torch.Tensor, size: tuple[int, int], fit: str = "crop") -> torch.Tensor:
    """uint8 ``3×h×w`` → ``3×H×W``: stretch (``resize``) or cover + center crop (``crop``)."""
    if tuple(image.shape[-2:]) == size:
        return image
    if fit == "resize":
        return TF.resize(image, list(size), antialias=True)
    h, w = image.shape[-2:]
    scale = max(size[0] / h, size[1] / w)
    covered = TF.resize(
        image, [max(size[0], round(h * scale)), max(size[1], round(w * scale))], antialias=True
    )
    return TF.center_crop(covered, list(size))


def _decode_all(
    ds: Dataset,
    chosen: torch.Tensor | None,
    size: tuple[int, int],
    fit: str,
    workers: int,
    progress: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    fitted = _Fitted(ds, chosen, size, fit)
    if len(fitted) == 0:
        raise DataError(f"{ds!r}: no images to load")
    loader = DataLoader(fitted, batch_size=256, num_workers=workers, shuffle=False)
    images = torch.empty((len(fitted), 3, *size), dtype=torch.uint8)
    targets: list[torch.Tensor] = []
    pos = 0
    for x, y in tqdm(
        loader, desc=f"decoding {len(fitted)} images", disable=not progress, unit="batch"
    ):
        images[pos : pos + len(x)] = x
        targets.append(y)
        pos += len(x)
    return images, torch.cat(targets)


def epoch_seed(seed: int, epoch: int, *stream: int) -> int:
    """A well-mixed 63-bit seed for epoch ``epoch`` of a run seeded with ``seed``; ``stream``
    (e.g. an image's index) picks an independent seed within the epoch."""
    entropy = [int(seed), int(epoch), *map(int, stream)]
    state = np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0]
    return int(state) & ((1 << 63) - 1)


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(epoch_seed(seed, epoch))


class EpochState:
    """Resumable epoch bookkeeping: the batches of epoch ``e`` depend only on ``(seed, e)``."""

    seed: int
    epoch: int

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration yield epoch ``epoch``'s batches."""
        self.epoch = int(epoch)

    def state_dict(self) -> dict[str, int]:
        """``{"seed", "epoch"}``: enough to reproduce the next epoch's batches."""
        return {"seed": self.seed, "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Restore :meth:`state_dict`."""
        self.seed, self.epoch = int(state["seed"]), int(state["epoch"])


class DeviceBatches(EpochState):
    """Shuffled, augmented, normalised batches from in-memory uint8 tensors, made on ``device``.

    Args:
        images: uint8 N×3×H×W (moved to ``device`` once).
        targets: N (class indices) or N×K (multi-label).
        batch_size: images per batch (per rank).
        train: shuffle + augment (else: fixed order, center crop only, keep the last batch).
        recipe: ``cifar``, ``imagenet``, ``celeba`` or ``compcars`` (see the module docstring).
        crop_size: output ``(H, W)``; default: the stored size.
        padding: zero padding before the random crop; default 4 for ``cifar``, else 0.
        flip: random horizontal flip; default: on when training.
        mean, std: per-channel normalisation of [0, 1] values.
        seed: base seed; the batches of epoch ``e`` depend only on ``(seed, e)``.
        drop_last: drop the last incomplete batch; default: ``train``.
        rank, world_size: take every ``world_size``-th sample from offset ``rank`` (DDP).
        dtype, channels_last: of the output images.
        resized_crop: ``(lo, hi)`` area range of an Inception-style random resized crop that
            replaces the random crop when training (``imagenet`` recipe only); default: off.
    """

    def __init__(
        self,
        images: torch.Tensor,
        targets: torch.Tensor,
        batch_size: int,
        *,
        train: bool = True,
        recipe: str = "cifar",
        crop_size: int | Sequence[int] | None = None,
        padding: int | None = None,
        flip: bool | None = None,
        mean: Sequence[float] = (0.5, 0.5, 0.5),
        std: Sequence[float] = (0.5, 0.5, 0.5),
        device: str | torch.device | None = None,
        seed: int = 0,
        drop_last: bool | None = None,
        rank: int = 0,
        world_size: int = 1,
        dtype: torch.dtype = torch.float32,
        channels_last: bool = False,
        resized_crop: Sequence[float] | None = None,
    ) -> None:
        check_resized_crop(recipe, resized_crop)
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(
                f"images must be uint8 N×C×H×W, got {images.dtype} {tuple(images.shape)}"
            )
        if len(images) != len(targets):
            raise ValueError(f"{len(images)} images but {len(targets)} targets")
        if batch_size < 1:
            raise ValueError("batch_size must be ≥ 1")
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.images = images.to(self.device)
        self.targets = targets.to(self.device)
        self.batch_size, self.train, self.recipe = batch_size, train, recipe
        stored = (int(images.shape[-2]), int(images.shape[-1]))
        self.crop_size = as_size(crop_size) if crop_size is not None else stored
        self.padding = (4 if recipe == "cifar" else 0) if padding is None else padding
        self.flip = train if flip is None else flip
        shape = (1, -1, 1, 1)
        self.mean = torch.as_tensor(mean, dtype=dtype, device=self.device).view(shape)
        self.std = torch.as_tensor(std, dtype=dtype, device=self.device).view(shape)
        self.seed, self.epoch = seed, 0
        self.drop_last = train if drop_last is None else drop_last
        self.rank, self.world_size = rank, world_size
        self.dtype, self.channels_last = dtype, channels_last
        self.resized_crop = tuple(resized_crop) if resized_crop is not None else None
        if any(c > s + 2 * self.padding for c, s in zip(self.crop_size, stored, strict=True)):
            raise ValueError(f"crop_size {self.crop_size} larger than stored {stored} + padding")

    def __len__(self) -> int:
        n = self._per_rank()
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _per_rank(self) -> int:
        n = len(self.images)
        return n // self.world_size if self.train else len(range(self.rank, n, self.world_size))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        yield from self.batches(self.epoch)
        self.epoch += 1

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of ``epoch``, from batch number ``start`` (to resume mid-epoch)."""
        order, flips, offsets = self._plan(epoch)
        for b in range(start, len(self)):
            sl = slice(b * self.batch_size, (b + 1) * self.batch_size)
            idx = order[sl].to(self.device)
            x = self._augment(self.images[idx], flips[sl], offsets[sl])
            yield x, self.targets[idx]

    def _plan(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample order and per-sample random flips and crops for ``epoch`` (CPU, seeded).

        The crops are offsets (B×2: top, left) of the random crop, or with ``resized_crop``
        boxes (B×4: top, left, height, width). All are drawn for every sample, so that ranks
        and batch sizes share one plan.
        """
        n = len(self.images)
        g = _epoch_generator(self.seed, epoch)
        order = torch.randperm(n, generator=g) if self.train else torch.arange(n)
        flips = torch.rand(n, generator=g) < 0.5
        if self.train and self.resized_crop is not None:
            offsets = resized_crop_boxes(n, tuple(self.images.shape[-2:]), self.resized_crop, g)
        else:
            offsets = torch.stack(
                [torch.randint(0, r + 1, (n,), generator=g) for r in self._room()], dim=1
            )
        if self.train:
            per_rank = self._per_rank()
            order = order[self.rank :: self.world_size][:per_rank]
            flips = flips[self.rank :: self.world_size][:per_rank]
            offsets = offsets[self.rank :: self.world_size][:per_rank]
        else:
            order = order[self.rank :: self.world_size]
            flips, offsets = flips[: len(order)], offsets[: len(order)]
        return order, flips, offsets

    def _room(self) -> tuple[int, int]:
        h, w = self.images.shape[-2:]
        return (h + 2 * self.padding - self.crop_size[0], w + 2 * self.padding - self.crop_size[1])

    def _augment(self, x: torch.Tensor, flips: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        if self.train:
            if self.resized_crop is not None:
                x = resized_crop(x, offsets.to(x.device), self.crop_size)
            else:
                x = random_crop(x, self.crop_size, offsets.to(x.device), self.padding)
            if self.flip:
                x = torch.where(flips.to(x.device).view(-1, 1, 1, 1), x.flip(-1), x)
        elif tuple(x.shape[-2:]) != self.crop_size:
            x = TF.center_crop(x, list(self.crop_size))
        x = x.to(self.dtype).div_(255).sub_(self.mean).div_(self.std)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def resized_crop_boxes(
    n: int,
    stored: tuple[int, int],
    scale: Sequence[float],
    g: torch.Generator,
    ratio: Sequence[float] = RESIZED_CROP_RATIO,
    tries: int = 10,
) -> torch.Tensor:
    """``n`` random resized crop boxes (top, left, height, width) in an ``H×W`` image.

    torchvision's ``RandomResizedCrop`` sampling, vectorised: area fraction uniform in
    ``scale``, log aspect ratio uniform in ``log(ratio)``, the first of ``tries`` that fits;
    else the whole image, cropped to the ratio range's nearer end.
    """
    h_img, w_img = stored
    area = torch.empty(n, tries).uniform_(scale[0], scale[1], generator=g) * h_img * w_img
    log_r = torch.empty(n, tries).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=g)
    aspect = log_r.exp()
    w = (area * aspect).sqrt().round()
    h = (area / aspect).sqrt().round()
    fits = (w > 0) & (w <= w_img) & (h > 0) & (h <= h_img)
    first = fits.float().argmax(dim=1, keepdim=True)
    w, h = w.gather(1, first).squeeze(1), h.gather(1, first).squeeze(1)
    fallback_h, fallback_w = _whole_image_box(stored, ratio)
    none = ~fits.any(dim=1)
    h = torch.where(none, torch.full_like(h, fallback_h), h)
    w = torch.where(none, torch.full_like(w, fallback_w), w)
    u = torch.rand(n, 2, generator=g)
    top = torch.where(none, (h_img - h) // 2, (u[:, 0] * (h_img - h + 1)).floor())
    left = torch.where(none, (w_img - w) // 2, (u[:, 1] * (w_img - w + 1)).floor())
    return torch.stack([top, left, h, w], dim=1).long()


def _whole_image_box(stored: tuple[int, int], ratio: Sequence[float]) -> tuple[int, int]:
    h_img, w_img = stored
    in_ratio = w_img / h_img
    if in_ratio < min(ratio):
        return round(w_img / min(ratio)), w_img
    if in_ratio > max(ratio):
        return h_img, round(h_img * max(ratio))
    return h_img, w_img


def resized_crop(x: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Crop each image of ``x`` (B×C×H×W) to its box (B×4: top, left, height, width) and
    resize it to ``size`` (bilinear, as ``F.interpolate`` with ``align_corners=False``; float
    output), vectorised."""
    from torchvision.ops import roi_align

    top, left, h, w = boxes.to(torch.float32).unbind(1)
    index = torch.arange(len(x), device=x.device, dtype=torch.float32)
    rois = torch.stack([index, left, top, left + w, top + h], dim=1)
    return roi_align(x.float(), rois, list(size), spatial_scale=1.0, sampling_ratio=1, aligned=True)


def random_crop(
    x: torch.Tensor, size: tuple[int, int], offsets: torch.Tensor, padding: int = 0
) -> torch.Tensor:
    """Crop each image of ``x`` (B×C×H×W) at its own ``offsets`` (B×2: top, left), vectorised.

    ``padding`` zero-pads every side first; offsets index the padded image.
    """
    if padding:
        x = F.pad(x, (padding, padding, padding, padding))
    b, c = x.shape[:2]
    dev = x.device
    rows = offsets[:, 0, None] + torch.arange(size[0], device=dev)  # B×h
    cols = offsets[:, 1, None] + torch.arange(size[1], device=dev)  # B×w
    bi = torch.arange(b, device=dev).view(b, 1, 1, 1)
    ci = torch.arange(c, device=dev).view(1, c, 1, 1)
    return x[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]
