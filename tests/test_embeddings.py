"""abn.embeddings: balanced sampling, pooled features, t-SNE, and the disk cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import abn
from abn.data import DataError
from abn.embeddings import (
    cache_path,
    compute_embedding,
    fingerprint,
    pooled_features,
    sample_indices,
)

from .app.conftest import make_checkpoint, write_tiny_cifar


def test_sample_indices_balanced_deterministic_and_bounded():
    targets = [0] * 50 + [1] * 30 + [2] * 5
    a = sample_indices(targets, 30)
    assert np.array_equal(a, sample_indices(targets, 30))
    counts = np.bincount(np.asarray(targets)[a], minlength=3)
    assert counts.tolist() == [13, 12, 5]  # the rare class is taken whole, the rest split
    assert len(set(a.tolist())) == 30 and (np.diff(a) > 0).all()
    assert len(sample_indices(targets, 1000)) == len(targets)
    small = np.bincount(np.asarray(targets)[sample_indices(targets, 12)], minlength=3)
    assert small.tolist() == [4, 4, 4]


def test_pooled_features_of_abn_and_plain():
    x = torch.randn(3, 3, 32, 32)
    model = abn.create("resnet20", "abn", num_classes=4).eval()
    pooled, probs = pooled_features(model, x)
    assert set(pooled) == {"features", "attended_features"}
    assert pooled["features"].shape == (3, 32) and probs.shape == (3, 4)
    assert torch.allclose(probs.sum(1), torch.ones(3))
    with torch.no_grad():
        out = model(x)
    torch.testing.assert_close(pooled["features"], out.features.mean((2, 3)))
    # Fig. 6's "with attention": GAP of g'(x) = (1 + M(x))·g(x) (Eq. 2)
    attended = (out.features * (1 + out.attention)).mean((2, 3))
    torch.testing.assert_close(pooled["attended_features"], attended)
    assert not torch.allclose(pooled["features"], pooled["attended_features"])
    plain, _ = pooled_features(abn.create("resnet20", "plain", num_classes=4).eval(), x)
    assert set(plain) == {"features"}


@pytest.fixture
def abn_model(tmp_path):
    path = make_checkpoint(tmp_path, "abn")
    return abn.load(path), fingerprint(path)


def test_compute_embedding_then_cache_hit(abn_model, tmp_path):
    root = write_tiny_cifar(tmp_path / "data")
    model, key = abn_model
    seen = []
    emb = compute_embedding(
        model, key, split="test", n=20, root=root, progress=lambda f, m: seen.append(f)
    )
    assert not emb.from_cache
    assert set(emb.coords) == {"features", "attended_features"}
    assert emb.coords["features"].shape == (20, 2) and np.isfinite(emb.coords["features"]).all()
    assert np.bincount(emb.labels, minlength=10).tolist() == [2] * 10
    assert emb.probs.shape == (20, 10) and emb.class_names[0] == "airplane"
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)
    assert cache_path(key, "cifar10", "test", 20, root).is_file()

    again = compute_embedding(model, key, split="test", n=20, root=root)
    assert again.from_cache
    for kind in emb.coords:
        np.testing.assert_array_equal(again.coords[kind], emb.coords[kind])
    np.testing.assert_array_equal(again.indices, emb.indices)
    assert again.class_names == emb.class_names
    other = compute_embedding(model, key, split="test", n=12, root=root)
    assert not other.from_cache and len(other.indices) == 12


def test_cache_key_separates_weights_split_and_size(tmp_path):
    a = cache_path("aaaa", "cifar10", "test", 100, tmp_path)
    assert a.parent == tmp_path / ".cache" / "embeddings"
    assert len({a, cache_path("bbbb", "cifar10", "test", 100, tmp_path),
                cache_path("aaaa", "cifar10", "train", 100, tmp_path),
                cache_path("aaaa", "cifar10", "test", 200, tmp_path)}) == 4  # fmt: skip
    assert fingerprint(b"x") != fingerprint(b"y") and len(fingerprint(b"x")) == 16


def test_missing_dataset_is_a_data_error(abn_model, tmp_path):
    model, key = abn_model
    with pytest.raises(DataError):
        compute_embedding(model, key, split="test", n=10, root=tmp_path)


def test_multilabel_model_is_refused(tmp_path):
    model = abn.load(make_checkpoint(tmp_path, "abn_multitask", "celeba-hq"))
    with pytest.raises(ValueError, match="single-label"):
        compute_embedding(model, "k", split="test", n=10, root=tmp_path)
