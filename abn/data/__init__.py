"""Data layer: safe image reading, datasets, transforms, in-memory batches, offline packs.

Typical use::

    from abn.data import build_dataset, dataset_info, load_into_memory, read_image

    info = dataset_info("cifar10")
    train = build_dataset("cifar10", "train", transform=info.transform(train=True))
    mem = load_into_memory("cifar10", "train")          # fast path for small datasets
    for x, y in mem.loader(128, train=True, device="cuda", seed=0): ...
"""

from abn.data.celeba import CelebA
from abn.data.celeba_hq import CelebAHQ, CelebAHQByNumber
from abn.data.errors import DataError, ImageReadError, ImageTooLargeError
from abn.data.folder import ImageFolderDataset
from abn.data.images import DEFAULT_MAX_PIXELS, SUPPORTED_EXTENSIONS, is_image_file, read_image
from abn.data.memory import DeviceBatches, InMemoryDataset, load_into_memory
from abn.data.paths import default_data_root, default_packs_dir
from abn.data.prepare import prepare
from abn.data.recipes import RECIPES, build_transform
from abn.data.registry import (
    DatasetInfo,
    build_dataset,
    dataset_info,
    dataset_location,
    evaluation_split,
    is_tree,
    list_datasets,
    register_dataset,
)
from abn.data.torchvision_sets import TorchvisionDataset

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "RECIPES",
    "SUPPORTED_EXTENSIONS",
    "CelebA",
    "CelebAHQ",
    "CelebAHQByNumber",
    "DataError",
    "DatasetInfo",
    "DeviceBatches",
    "ImageFolderDataset",
    "ImageReadError",
    "ImageTooLargeError",
    "InMemoryDataset",
    "TorchvisionDataset",
    "build_dataset",
    "build_transform",
    "dataset_info",
    "dataset_location",
    "default_data_root",
    "default_packs_dir",
    "evaluation_split",
    "is_image_file",
    "is_tree",
    "list_datasets",
    "load_into_memory",
    "prepare",
    "read_image",
    "register_dataset",
]
