"""Dataset registry: one name → static facts (:class:`DatasetInfo`) and a builder.

``build_dataset(name, split, root=None)`` looks for the data under the data root
(``$ABN_DATA_ROOT`` or ``<cwd>/data``), in the folder named by ``DatasetInfo.folder``. The
generic ``imagefolder`` entry is different: its ``root`` is the tree itself
(``root/<split>/<class>/*``) and is required.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from torch.utils.data import Dataset
from torchvision.transforms import v2

from abn.data.celeba import CelebA
from abn.data.celeba_hq import CelebAHQ, CelebAHQByNumber
from abn.data.errors import DataError
from abn.data.folder import ImageFolderDataset, find_classes
from abn.data.images import is_image_file
from abn.data.paths import resolve_root
from abn.data.recipes import build_transform
from abn.data.torchvision_sets import TorchvisionDataset

Task = Literal["multiclass", "multilabel"]
Transform = Callable[[Any], Any]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
SVHN_MEAN = (0.4377, 0.4438, 0.4728)
SVHN_STD = (0.1980, 0.2010, 0.1970)

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle",
    "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle",
    "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch",
    "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox",
    "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom",
    "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road",
    "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake",
    "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank",
    "telephone", "television", "tiger", "tractor", "train", "trout", "tulip", "turtle",
    "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)  # fmt: skip
SVHN_CLASSES = tuple(str(d) for d in range(10))
#: Imagenette wnid (folder name) → human-readable class name, in label order.
IMAGENETTE_CLASSES = {
    "n01440764": "tench",
    "n02102040": "English springer",
    "n02979186": "cassette player",
    "n03000684": "chain saw",
    "n03028079": "church",
    "n03394916": "French horn",
    "n03417042": "garbage truck",
    "n03425413": "gas pump",
    "n03445777": "golf ball",
    "n03888257": "parachute",
}
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair",
    "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair",
    "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes",
    "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks",
    "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)  # fmt: skip


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset.

    ``num_classes`` is the number of labels (attributes for multi-label); ``None`` (with empty
    ``class_names``) where classes come from folders and no root was given. ``splits`` lists
    the split names; ``train_split``/``eval_split`` are the ones to train and report on.
    ``folder`` is where the data lives under the data root (``None``: ``root`` is the tree).
    """

    name: str
    num_classes: int | None
    class_names: tuple[str, ...]
    input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    task: Task
    recipe: str
    splits: tuple[str, ...]
    train_split: str
    eval_split: str
    folder: str | None
    description: str = ""

    def transform(self, train: bool) -> v2.Compose:
        """This dataset's default preprocessing (see :func:`abn.data.recipes.build_transform`)."""
        return build_transform(self.recipe, train, self.input_size, self.mean, self.std)


Builder = Callable[[Path, str, "Transform | None", bool], Dataset]


def _info(name: str, classes: tuple[str, ...], **kw: Any) -> DatasetInfo:
    kw.setdefault("task", "multiclass")
    kw.setdefault("splits", ("train", "test"))
    kw.setdefault("train_split", kw["splits"][0])
    kw.setdefault("eval_split", kw["splits"][-1])
    num = len(classes) if classes else None
    return DatasetInfo(name=name, num_classes=num, class_names=classes, **kw)


def _folder_builder(
    folder: str | None, classes: tuple[str, ...] | None, names: tuple[str, ...] | None
) -> Builder:
    def build(root: Path, split: str, transform: Transform | None, download: bool) -> Dataset:
        tree = root / folder if folder else root
        if folder is None:
            check_tree_split(tree, split)
        labels = classes if classes is not None else tree_classes(tree, split)
        return ImageFolderDataset(
            tree, split, transform, classes=labels, class_names=names,
            missing_ok=classes is None and labels is not None and split != "train",
        )  # fmt: skip

    return build


EVAL_SPLIT_NAMES = ("test", "val", "valid", "validation")  # a tree's, by preference
TREE_SHAPE = "a tree is <tree>/<split>/<class>/<image>, with train/ and one of " + ", ".join(
    f"{s}/" for s in EVAL_SPLIT_NAMES
)


def _holds_images(folder: Path) -> bool:
    """Whether ``folder`` has image files directly inside it."""
    with os.scandir(folder) as entries:
        return any(e.is_file() and is_image_file(e.name) for e in entries)


def _listing(names: list[str]) -> str:
    return ", ".join(f"{n}/" for n in names[:4]) + (", …" if len(names) > 4 else "")


def tree_root_problem(tree: Path) -> str | None:
    """Why ``tree`` is not the root of an image tree, or ``None``: a split or class folder
    given instead (its sub-folders hold images: ``--data-root`` one level too deep), or a
    folder without sub-folders. A missing folder is named where it is read."""
    if not tree.is_dir():
        return None
    found = find_classes(tree)  # its visible sub-folders
    if any(_holds_images(tree / name) for name in found):
        return (
            f"{tree}: its folders {_listing(found)} hold images, so it looks like a split or "
            f"class folder itself: point --data-root at the folder that holds the splits "
            f"({TREE_SHAPE})"
        )
    if not found:
        return f"{tree}: no split folders in it ({TREE_SHAPE})"
    return None


def check_tree_split(tree: Path, split: str) -> None:
    """Explain a user's tree without ``split``: what a tree looks like, what this one holds, and
    whether it is a tree at all (:func:`tree_root_problem`)."""
    if not tree.is_dir() or (tree / split).is_dir():
        return  # a missing tree is named when it is read
    problem = tree_root_problem(tree)
    if problem:
        raise DataError(problem)
    raise DataError(
        f"{tree}: no split folder {split!r} ({TREE_SHAPE}; --set test_split=NAME names "
        f"another); it holds {_listing(find_classes(tree))}"
    )


def tree_classes(tree: Path, split: str, train_split: str = "train") -> list[str] | None:
    """A tree's classes in label order: the training split's class folders, for every split,
    so that label *i* is the same class in each. Another split may lack a class (it has no
    images of it) but may not add one the model never learned. ``None``: no training split
    (the split's own folders are the classes)."""
    if not (tree / train_split).is_dir():
        return None
    labels = find_classes(tree / train_split)
    if split != train_split and (tree / split).is_dir():
        extra = sorted(set(find_classes(tree / split)) - set(labels))
        if extra:
            raise DataError(
                f"{tree / split}: class folder(s) {', '.join(extra)} are not in "
                f"{tree / train_split} (the classes a model learns come from the training split)"
            )
    return labels


def _torchvision_builder(name: str) -> Builder:
    def build(root: Path, split: str, transform: Transform | None, download: bool) -> Dataset:
        return TorchvisionDataset(name, root, split, transform, download=download)

    return build


def _celeba(root: Path, split: str, transform: Transform | None, download: bool) -> Dataset:
    return CelebA(root / "celeba", split, transform)


def _celeba_hq(root: Path, split: str, transform: Transform | None, download: bool) -> Dataset:
    return CelebAHQ(root / "celeba-hq-64", split, transform)


def _celeba_hq_by_number(
    root: Path, split: str, transform: Transform | None, download: bool
) -> Dataset:
    return CelebAHQByNumber(root / "celeba-hq-64", split, transform)


_CIFAR = {"input_size": (32, 32), "recipe": "cifar"}
_IMAGENET = {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}

_REGISTRY: dict[str, tuple[DatasetInfo, Builder, bool]] = {}  # name → (info, builder, downloadable)


def register_dataset(info: DatasetInfo, builder: Builder, downloadable: bool = False) -> None:
    """Add (or replace) a dataset; ``builder(root, split, transform, download)``."""
    _REGISTRY[info.name] = (info, builder, downloadable)


register_dataset(
    _info("cifar10", CIFAR10_CLASSES, mean=CIFAR10_MEAN, std=CIFAR10_STD, folder="cifar10",
          description="CIFAR-10 as JPEG files (offline pack): cifar10/{train,test}/<class>/", **_CIFAR),
    _folder_builder("cifar10", CIFAR10_CLASSES, None),
)  # fmt: skip
register_dataset(
    _info("cifar10-torchvision", CIFAR10_CLASSES, mean=CIFAR10_MEAN, std=CIFAR10_STD,
          folder="cifar-10-batches-py", description="CIFAR-10 in torchvision's pickled format",
          **_CIFAR),
    _torchvision_builder("cifar10-torchvision"), downloadable=True,
)  # fmt: skip
register_dataset(
    _info("cifar100", CIFAR100_CLASSES, mean=CIFAR100_MEAN, std=CIFAR100_STD,
          folder="cifar-100-python", description="CIFAR-100 in torchvision's pickled format",
          **_CIFAR),
    _torchvision_builder("cifar100"), downloadable=True,
)  # fmt: skip
register_dataset(
    _info("svhn", SVHN_CLASSES, mean=SVHN_MEAN, std=SVHN_STD, folder="svhn",
          splits=("train", "test", "extra", "train+extra"), train_split="train", eval_split="test",
          description="SVHN cropped digits (torchvision's .mat files); the paper trains on "
          "train+extra", **_CIFAR),
    _torchvision_builder("svhn"), downloadable=True,
)  # fmt: skip
register_dataset(
    _info("imagenette", tuple(IMAGENETTE_CLASSES.values()), input_size=(128, 128),
          recipe="imagenet", folder="imagenette2-160", splits=("train", "val"),
          description="Imagenette (10 ImageNet classes) at 160 px, trained at 128 px", **_IMAGENET),
    _folder_builder("imagenette2-160", tuple(IMAGENETTE_CLASSES), tuple(IMAGENETTE_CLASSES.values())),
)  # fmt: skip
register_dataset(
    _info("imagefolder", (), input_size=(224, 224), recipe="imagenet", folder=None,
          description="any tree root/<split>/<class>/<image>; root= is the tree", **_IMAGENET),
    _folder_builder(None, None, None),
)  # fmt: skip
register_dataset(
    _info("compcars", (), input_size=(224, 323), recipe="compcars", folder="compcars",
          description="CompCars as an image-folder tree compcars/{train,test}/<class>/",
          **_IMAGENET),
    _folder_builder("compcars", None, None),
)  # fmt: skip
register_dataset(
    _info("celeba", CELEBA_ATTRIBUTES, input_size=(224, 224), recipe="celeba", folder="celeba",
          task="multilabel", splits=("train", "valid", "test"),
          description="aligned CelebA, original files (40 attributes)", **_IMAGENET),
    _celeba,
)  # fmt: skip
_CELEBA_HQ = {"input_size": (64, 64), "recipe": "celeba", "folder": "celeba-hq-64",
              "task": "multilabel", "splits": ("train", "val", "test"), **_IMAGENET}  # fmt: skip
register_dataset(
    _info("celeba-hq", CELEBA_ATTRIBUTES,
          description="CelebA-HQ 64 px with CelebAMask-HQ attributes; CelebA's official "
          "identity-disjoint split (celeba-hq-64-split.txt)", **_CELEBA_HQ),
    _celeba_hq,
)  # fmt: skip
register_dataset(
    _info("celeba-hq-by-number", CELEBA_ATTRIBUTES,
          description="CelebA-HQ 64 px, the old split by image number (train 1-24,000, val "
          "24,001-27,000, test 27,001-30,000; not identity-disjoint)", **_CELEBA_HQ),
    _celeba_hq_by_number,
)  # fmt: skip


def list_datasets() -> list[str]:
    """Registered dataset names, sorted."""
    return sorted(_REGISTRY)


def _entry(name: str) -> tuple[DatasetInfo, Builder, bool]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(list_datasets())}") from None


def dataset_location(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """Where ``name``'s files are: ``<data root>/<folder>`` (``imagefolder``: ``root`` itself)."""
    info = _entry(name)[0]
    if info.folder is None:
        if root is None:
            raise DataError(f"{name}: pass root= (the folder holding <split>/<class>/<image>)")
        return Path(root)
    return resolve_root(root) / info.folder


def dataset_info(name: str, root: str | os.PathLike[str] | None = None) -> DatasetInfo:
    """Static facts about ``name``; for folder-defined classes, read them from disk if present."""
    info = _entry(name)[0]
    if info.num_classes is not None:
        return info
    try:
        location = dataset_location(name, root)
    except DataError:
        return info
    if info.folder is None:
        if tree_root_problem(location):  # a split or class folder: its folders are no splits
            return info
        info = _tree_splits(info, location)
    for split in dict.fromkeys((info.train_split, *info.splits)):  # the training split's first
        classes = tuple(find_classes(location / split)) if (location / split).is_dir() else ()
        if classes:  # a folder of images (a class, not a split) names no classes
            return replace(info, num_classes=len(classes), class_names=classes)
    return info


def _tree_splits(info: DatasetInfo, tree: Path) -> DatasetInfo:
    """A user's tree names its own splits: ``train/`` and ``val/`` as well as ``train/`` and
    ``test/``. The evaluation split is the first of :data:`EVAL_SPLIT_NAMES` present (never the
    training split: without one, it stays ``test`` and reading it says what is missing)."""
    try:
        found = tuple(find_classes(tree))  # the visible sub-folders: here, the splits
    except OSError:
        return info
    if not found:
        return info
    evals = [s for s in EVAL_SPLIT_NAMES if s in found]
    return replace(info, splits=found, eval_split=evals[0] if evals else info.eval_split)


def is_tree(name: str) -> bool:
    """Whether ``name``'s root is the user's tree itself (``imagefolder``), not a data root
    (``False`` for a name this install does not know: reading it then says so)."""
    return name in _REGISTRY and _REGISTRY[name][0].folder is None


def evaluation_split(
    dataset: str, named: str | None = None, root: str | os.PathLike[str] | None = None
) -> str:
    """``named`` (e.g. a model card's test split) when ``dataset`` has it, else its eval split.
    A tree's splits are its own folders, so there ``named`` is taken as given (a missing folder
    is then reported by name when read)."""
    if named and is_tree(dataset):
        return named
    info = dataset_info(dataset, root)
    return named if named in info.splits else info.eval_split


def build_dataset(
    name: str,
    split: str,
    root: str | os.PathLike[str] | None = None,
    transform: Transform | None = None,
    download: bool = False,
) -> Dataset:
    """Build dataset ``name`` for ``split``; items are ``(image, target)``.

    ``root`` is the data root (default :func:`~abn.data.paths.default_data_root`), except for
    ``imagefolder`` where it is the tree itself. Without ``transform`` images are uint8
    ``3×H×W`` tensors at their stored size; pass ``dataset_info(name).transform(train)`` for
    the recipe's normalised tensors. ``download=True`` only works for the torchvision datasets.
    """
    info, builder, downloadable = _entry(name)
    if download and not downloadable:
        raise DataError(
            f"{name}: cannot be downloaded; extract the offline pack with `abn data prepare`"
        )
    base = dataset_location(name, root) if info.folder is None else resolve_root(root)
    return builder(base, split, transform, download)
