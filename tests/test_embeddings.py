"""abn.embeddings: balanced sampling, last-stage features, cluster quality, t-SNE, the cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import abn
from abn.data import DataError
from abn.embeddings import (
    WITH_ATTENTION,
    WITHOUT_ATTENTION,
    cache_path,
    cluster_quality,
    compute_embedding,
    fingerprint,
    knn_loo_predictions,
    perception_features,
    sample_indices,
    wilson_interval,
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


@pytest.mark.parametrize("mechanism", ["residual", "multiply"])
def test_abn_panels_are_the_perception_branch_without_and_with_attention(mechanism):
    """Fig. 6 centre: the perception branch's last stage run on g(x); right: run on g'(x)."""
    torch.manual_seed(0)
    x = torch.randn(3, 3, 32, 32)
    model = abn.create("resnet20", "abn", num_classes=4, mechanism=mechanism).eval()
    pooled, probs = perception_features(model, x)
    assert set(pooled) == {WITHOUT_ATTENTION, WITH_ATTENTION}
    with torch.no_grad():
        g = model.feature_extractor(x)
        _, m, _ = model.attention_branch(g)  # M(x)
        g_prime = g * (1 + m) if mechanism == "residual" else g * m  # Eq. 2 / Eq. 1
        body = model.perception_branch.body  # stage 3 of the CIFAR ResNet: 64 channels
        without = body(g).mean((2, 3))
        with_att = body(g_prime).mean((2, 3))
        out = model(x)
    assert g.shape[1] == 32 and without.shape == (3, 64)  # the last stage, not the split point
    torch.testing.assert_close(pooled[WITHOUT_ATTENTION], without)
    torch.testing.assert_close(pooled[WITH_ATTENTION], with_att)
    assert not torch.allclose(pooled[WITHOUT_ATTENTION], pooled[WITH_ATTENTION], atol=1e-3)
    torch.testing.assert_close(out.attended_features, g_prime)  # the g'(x) the model uses
    torch.testing.assert_close(probs, out.logits.softmax(1))  # ABN's own prediction


@pytest.mark.parametrize("variant", ["plain", "cam"])
def test_baseline_panel_is_the_plain_model_last_stage(variant):
    torch.manual_seed(0)
    x = torch.randn(3, 3, 32, 32)
    model = abn.create("resnet20", variant, num_classes=4).eval()
    pooled, probs = perception_features(model, x)
    assert set(pooled) == {WITHOUT_ATTENTION}
    with torch.no_grad():
        body_out = model.perception_branch.body(model.feature_extractor(x))
        logits = model(x).logits
    torch.testing.assert_close(pooled[WITHOUT_ATTENTION], body_out.mean((2, 3)))
    torch.testing.assert_close(probs, logits.softmax(1))
    assert torch.allclose(probs.sum(1), torch.ones(3))


def test_multitask_abn_has_no_single_g_prime():
    model = abn.create("resnet20", "abn_multitask", num_classes=3).eval()
    with pytest.raises(ValueError, match="per attribute"):
        perception_features(model, torch.randn(1, 3, 32, 32))


def _blobs(n_per_class: int, spread: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three Gaussian classes in 8-D, centres 10 apart, each with standard deviation ``spread``."""
    rng = np.random.default_rng(seed)
    centres = np.eye(3, 8) * 10
    labels = np.repeat(np.arange(3), n_per_class)
    return centres[labels] + rng.normal(0, spread, (len(labels), 8)), labels


def test_cluster_quality_agrees_with_sklearn():
    from sklearn.metrics import silhouette_score
    from sklearn.model_selection import LeaveOneOut, cross_val_predict
    from sklearn.neighbors import KNeighborsClassifier

    x, y = _blobs(40, spread=6.0)  # overlapping: neither perfect nor chance
    q = cluster_quality(x, y, k=5)
    reference = cross_val_predict(KNeighborsClassifier(5), x, y, cv=LeaveOneOut())
    np.testing.assert_array_equal(knn_loo_predictions(x, y, 5), reference)
    assert q.knn_accuracy == pytest.approx((reference == y).mean())
    assert 0.5 < q.knn_accuracy < 0.99
    assert q.silhouette == pytest.approx(silhouette_score(x, y))
    assert q.n == 120 and q.k == 5 and q.chance == pytest.approx(1 / 3)
    assert q.knn_ci[0] < q.knn_accuracy < q.knn_ci[1]
    assert q.silhouette_ci[0] < q.silhouette < q.silhouette_ci[1]


def test_cluster_quality_high_when_separated_chance_when_shuffled():
    x, y = _blobs(100, spread=1.0)
    good = cluster_quality(x, y)
    assert good.knn_accuracy == 1.0 and good.silhouette > 0.7
    shuffled = np.random.default_rng(1).permutation(y)
    bad = cluster_quality(x, shuffled)
    assert abs(bad.knn_accuracy - 1 / 3) < 0.1  # chance for three balanced classes
    assert bad.knn_ci[0] < 1 / 3 + 0.05 and bad.knn_ci[1] > 1 / 3 - 0.05
    assert abs(bad.silhouette) < 0.05 and bad.silhouette_ci[1] < good.silhouette_ci[0]
    # tiny samples: k shrinks; one class: no silhouette
    assert cluster_quality(x[:3], y[:3]).k == 2
    assert np.isnan(cluster_quality(x[:10], np.zeros(10)).silhouette)


def test_wilson_interval_known_values():
    # 8 of 10: the textbook Wilson 95% interval is 0.490 to 0.943
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 50)[0] == 0.0 and 0 < wilson_interval(0, 50)[1] < 0.1
    assert wilson_interval(50, 50)[1] == 1.0


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
    assert set(emb.coords) == set(emb.quality) == {WITHOUT_ATTENTION, WITH_ATTENTION}
    xy = emb.coords[WITHOUT_ATTENTION]
    assert xy.shape == (20, 2) and np.isfinite(xy).all()
    assert all(q.n == 20 and 0 <= q.knn_accuracy <= 1 for q in emb.quality.values())
    assert np.bincount(emb.labels, minlength=10).tolist() == [2] * 10
    assert emb.probs.shape == (20, 10) and emb.class_names[0] == "airplane"
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)
    assert cache_path(key, "cifar10", "test", 20, root).is_file()

    again = compute_embedding(model, key, split="test", n=20, root=root)
    assert again.from_cache
    for kind in emb.coords:
        np.testing.assert_array_equal(again.coords[kind], emb.coords[kind])
    assert again.quality == emb.quality
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
