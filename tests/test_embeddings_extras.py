"""abn.embeddings for the Embeddings page of #22: openTSNE maps, new images placed into a map,
nearest neighbours in feature space, and a cache whose names and contents say what made them."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from abn import embeddings
from abn.embeddings import (
    CACHE_VERSION,
    TSNE_METHOD,
    WITH_ATTENTION,
    cache_path,
    compute_embedding,
    nearest,
    place,
    tsne_2d,
)

from .app.conftest import write_tiny_cifar
from .test_embeddings import abn_model as abn_model


def _blobs(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three well-separated Gaussian classes in 16-D (centres 12 apart, σ = 1)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), n_per_class)
    return np.eye(3, 16)[labels] * 12 + rng.normal(0, 1, (len(labels), 16)), labels


def test_placed_points_land_in_their_class_and_the_map_stays():
    x, y = _blobs(40, seed=0)
    xy = tsne_2d(x, n_jobs=1)
    new, new_y = _blobs(2, seed=1)  # two fresh images per class, never seen by the map
    before = xy.copy()
    out = place(x, xy, new)
    np.testing.assert_array_equal(xy, before)  # the map does not move
    assert out.shape == (6, 2) and np.isfinite(out).all()
    centres = np.stack([xy[y == c].mean(0) for c in range(3)])
    closest = np.linalg.norm(out[:, None] - centres[None], axis=2).argmin(1)
    np.testing.assert_array_equal(closest, new_y)
    # in its class's cloud: its 5 nearest map points are all of its class, and its class centre
    # is far nearer than any other
    near = np.argsort(np.linalg.norm(out[:, None] - xy[None], axis=2), axis=1)[:, :5]
    np.testing.assert_array_equal(y[near], np.repeat(new_y[:, None], 5, axis=1))
    gap = min(np.linalg.norm(a - b) for i, a in enumerate(centres) for b in centres[i + 1 :])
    assert np.linalg.norm(out - centres[new_y], axis=1).max() < gap / 4


def test_place_refuses_mismatched_shapes():
    x, _ = _blobs(10, seed=0)
    with pytest.raises(ValueError, match="M×C new points"):
        place(x, np.zeros((30, 2)), np.zeros((1, 5)))


def test_nearest_matches_sklearn():
    from sklearn.neighbors import NearestNeighbors

    x, _ = _blobs(20, seed=0)
    q = np.random.default_rng(2).normal(0, 6, (3, 16))
    rows, dist = nearest(x, q, k=4)
    ref_d, ref_rows = NearestNeighbors(n_neighbors=4).fit(x).kneighbors(q)
    np.testing.assert_array_equal(rows, ref_rows)
    np.testing.assert_allclose(dist, ref_d, rtol=1e-9)
    assert (np.diff(dist, axis=1) >= 0).all()


def test_gradient_method_follows_size():
    assert embeddings.gradient_method(embeddings.FFT_FROM - 1) == "bh"
    assert embeddings.gradient_method(embeddings.FFT_FROM) == "fft"


def test_cache_holds_the_features_and_names_its_tsne(abn_model, tmp_path):
    root = write_tiny_cifar(tmp_path / "data", per_class=2)
    model, key = abn_model
    path = cache_path(key, "cifar10", "test", 20, root)
    assert TSNE_METHOD in path.name and path.name.endswith(f"_v{CACHE_VERSION}.npz")
    emb = compute_embedding(model, key, split="test", n=20, root=root)
    assert emb.features[WITH_ATTENTION].shape == (20, 64)
    with np.load(path) as z:
        assert json.loads(str(z["made_by"])) == {"version": CACHE_VERSION, "tsne": TSNE_METHOD}
    again = compute_embedding(model, key, split="test", n=20, root=root)
    assert again.from_cache
    for kind, f in emb.features.items():
        np.testing.assert_array_equal(again.features[kind], f)


@pytest.mark.parametrize("made_by", [None, {"version": 2, "tsne": "sklearn-bh"}, "garbage"])
def test_cache_made_by_other_code_is_never_misread(abn_model, tmp_path, made_by):
    """A file at the cache's path that this code did not write (an older format without
    features, another t-SNE, a damaged file) is computed again, not read."""
    root = write_tiny_cifar(tmp_path / "data", per_class=2)
    model, key = abn_model
    path = cache_path(key, "cifar10", "test", 20, root)
    path.parent.mkdir(parents=True)
    if made_by == "garbage":
        path.write_bytes(b"PK\x03\x04 not really a zip")
    else:
        fake = {"indices": np.arange(20), "labels": np.zeros(20, int), "probs": np.ones((20, 10))}
        fake |= {"class_names": np.asarray(list("abcdefghij")), "quality": np.asarray("{}")}
        fake["coords__perception_g"] = np.zeros((20, 2))
        if made_by is not None:
            fake["made_by"] = np.asarray(json.dumps(made_by))
        np.savez(path, **fake)
    emb = compute_embedding(model, key, split="test", n=20, root=root)
    assert not emb.from_cache and emb.class_names[0] == "airplane"
    assert WITH_ATTENTION in emb.features
    assert compute_embedding(model, key, split="test", n=20, root=root).from_cache  # rewritten


REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "embeddings_tsne_cpu.json"


def _benchmark():
    spec = importlib.util.spec_from_file_location(
        "embeddings_tsne", REPO / "benchmarks" / "embeddings_tsne.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_tsne_table_is_the_stored_benchmark():
    table = _benchmark().markdown_table(json.loads(RESULTS.read_text()))
    readme = (REPO / "README.md").read_text()
    assert len(table.splitlines()) > 3
    for line in table.splitlines():
        assert line in readme, f"README's t-SNE table is stale: expected\n{line}"


def test_fft_from_follows_the_stored_measurements():
    """Below FFT_FROM points Barnes-Hut measured faster than FFT; from it on, FFT."""
    runs = [r for r in json.loads(RESULTS.read_text()).values() if r["threads"] == 1]
    assert runs
    for r in runs:
        faster = min(("opentsne_bh", "opentsne_fft"), key=r["median_s"].get)
        assert faster == f"opentsne_{embeddings.gradient_method(r['n'])}", r["n"]
