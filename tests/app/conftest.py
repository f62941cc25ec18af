"""Fixtures for the dashboard tests: tiny untrained checkpoints and data roots in tmp dirs.

The app finds models through ``$ABN_ASSETS_DIR`` and data through ``$ABN_DATA_ROOT``, so these
tests never depend on the shipped models or on extracted datasets.

Fixtures:
    assets: a folder of tiny resnet20 checkpoints (abn/plain/cam on CIFAR-10, and the two
        multi-task variants on 40 CelebA attributes at 32 px).
    no_data: ``$ABN_DATA_ROOT`` pointing at an empty folder.
    tiny_cifar: ``$ABN_DATA_ROOT`` holding a 10-class, 4-per-class ``cifar10/test`` tree.
    app_env: ``assets`` + ``no_data`` set in the environment.
"""

from __future__ import annotations

import importlib.util
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

import abn
from abn.checkpoint import card_for
from abn.data.registry import CELEBA_ATTRIBUTES, CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD

REPO = Path(__file__).resolve().parents[2]


def screenshots_driver():
    """``scripts/screenshots.py`` as a module: the Streamlit server and browser driver."""
    spec = importlib.util.spec_from_file_location(
        "screenshots", REPO / "scripts" / "screenshots.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_checkpoint(folder: Path, variant: str, dataset: str = "cifar10", **card) -> Path:
    """A tiny untrained resnet20 checkpoint with a card, saved under ``folder``."""
    torch.manual_seed(0)
    multi = variant.endswith("multitask")
    names = list(CELEBA_ATTRIBUTES if multi else CIFAR10_CLASSES)
    model = abn.create("resnet20", variant, num_classes=len(names)).eval()
    fields = {
        "class_names": names,
        "task": "multilabel" if multi else "multiclass",
        "input_size": (32, 32),
        "mean": CIFAR10_MEAN,
        "std": CIFAR10_STD,
        "dataset": dataset,
        "splits": {"train": "train", "test": "test"},
        "recipe": {"recipe": "celeba" if multi else "cifar"},
    }
    fields.update(card)
    return abn.save(
        model, folder / f"resnet20_{variant}_{dataset}.safetensors", card_for(model, **fields)
    )


@pytest.fixture(scope="session")
def assets(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("assets")
    for variant in ("abn", "plain", "cam"):
        make_checkpoint(folder, variant)
    for variant in ("abn_multitask", "plain_multitask"):
        make_checkpoint(folder, variant, "celeba-hq")
    return folder


@pytest.fixture
def no_data(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "empty-data"
    root.mkdir()
    monkeypatch.setenv("ABN_DATA_ROOT", str(root))
    # the user's own edit sets and fine-tuned models (<repo>/edits, <repo>/runs/user) stay out
    monkeypatch.setenv("ABN_EDITS_DIR", str(tmp_path / "edits"))
    monkeypatch.setenv("ABN_USER_MODELS_DIR", str(tmp_path / "user-models"))
    return root


def write_tiny_cifar(root: Path, per_class: int = 4) -> Path:
    """A 10-class ``cifar10/test`` tree of noisy solid-colour 32 px JPEGs under ``root``."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(CIFAR10_CLASSES):
        folder = root / "cifar10" / "test" / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            base = np.full((32, 32, 3), 25 * c, np.uint8)
            noise = rng.integers(0, 60, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(base + noise).save(folder / f"{i:04d}.jpg")
    return root


@pytest.fixture(scope="session")
def tiny_cifar_root(tmp_path_factory) -> Path:
    return write_tiny_cifar(tmp_path_factory.mktemp("data"))


@pytest.fixture
def tiny_cifar(tiny_cifar_root, tmp_path, monkeypatch) -> Path:
    """A fresh copy per test (so no test sees another's embedding cache)."""
    root = tmp_path / "data"
    shutil.copytree(tiny_cifar_root, root)
    monkeypatch.setenv("ABN_DATA_ROOT", str(root))
    return root


@pytest.fixture
def app_env(assets, no_data, monkeypatch) -> Path:
    monkeypatch.setenv("ABN_ASSETS_DIR", str(assets))
    monkeypatch.chdir(REPO)
    return assets


def png(color=(200, 30, 30), size=(40, 30), fmt: str = "PNG") -> bytes:
    """Bytes of a small solid-colour image with a square in it."""
    a = np.zeros((size[1], size[0], 3), np.uint8)
    a[:] = color
    a[5:15, 5:15] = 255
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format=fmt)
    return buf.getvalue()


PAGE_TIMEOUT = 120  # seconds for one AppTest run of a page


def run_page(name: str, link: str | None = None) -> AppTest:
    """Run a page (path relative to the repository) under AppTest; ``link``: its ``?model=``."""
    at = AppTest.from_file(str(REPO / name), default_timeout=PAGE_TIMEOUT)
    if link is not None:
        at.query_params["model"] = link
    return at.run()


def assert_clean(at: AppTest) -> None:
    """No exception elements and no error messages on the page."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
