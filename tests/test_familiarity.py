"""abn.familiarity: the scores, calibration files tied to their checkpoint, the CLI, and the
shipped calibrations."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import abn
from abn.cli import main
from abn.familiarity import (
    ENERGY,
    MAHALANOBIS,
    SCORES,
    Calibration,
    CalibrationError,
    Familiarity,
    calibrate,
    calibration_path,
    checkpoint_digest,
    energy,
    fit_gaussian,
    load_calibration,
    mahalanobis,
    pooled_features,
)

from .app.conftest import make_checkpoint, write_tiny_cifar

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "assets").glob("*.safetensors"))


def synthetic(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two classes of smooth 16 px images: dark and light blobs with mild noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    base = torch.where(y[:, None, None, None] == 0, -0.5, 0.5).expand(n, 3, 16, 16)
    return base + 0.2 * torch.randn(n, 3, 16, 16, generator=g), y


def planted(n: int) -> torch.Tensor:
    """Out of distribution: a high-contrast checkerboard, nothing like the blobs."""
    board = (torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2
    return (6.0 * board - 3.0).expand(n, 3, 16, 16).clone()


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = abn.create("resnet20", "abn", num_classes=2).eval()
    fit = [synthetic(64, 1)]
    test = [synthetic(64, 2)]
    cal = calibrate(model, fit, test, digest="d" * 64, description="tiny", score=MAHALANOBIS)
    return model, cal


def test_mahalanobis_flags_a_planted_out_of_distribution_input(tiny):
    model, cal = tiny
    ood = cal.scores(model, planted(4))
    ind = cal.scores(model, synthetic(32, 3)[0])
    assert ood[MAHALANOBIS].min() > np.quantile(ind[MAHALANOBIS], 0.99)
    assert all(f.unlike and f.percentile == 100.0 for f in cal.assess(model, planted(4)))
    flagged = sum(f.unlike for f in cal.assess(model, synthetic(32, 3)[0]))
    assert flagged <= 3  # about 1% of in-distribution images; a few at most in 32


def test_familiarity_describes_itself():
    assert Familiarity(5.0, 99.5, True).describe().startswith("Unlike its training data")
    assert "63.0%" in Familiarity(1.0, 63.0, False).describe()
    typical, less = Familiarity(1.0, 63.0, False), Familiarity(2.0, 97.0, False)
    assert (typical.grade, less.grade, Familiarity(5.0, 99.5, True).grade) == (
        "typical",
        "less typical",
        "unlike",
    )
    assert typical.describe().startswith("No sign of unfamiliar input")
    assert "less typical than 9 in 10" in less.describe()
    # a missing warning proves nothing: no grade claims the image is like the training data
    assert not any(f.describe().startswith("Like") for f in (typical, less))


def test_percentile_is_the_share_of_test_scores_below():
    cal = Calibration(
        "d", "m", MAHALANOBIS, np.zeros((1, 2)), np.eye(2), {MAHALANOBIS: np.arange(10.0)}
    )
    assert cal.percentile(np.array([-1.0, 0.0, 4.5, 100.0])).tolist() == [0, 0, 50, 100]


def test_mahalanobis_is_the_nearest_class_distance():
    rng = np.random.default_rng(0)
    f = np.concatenate([rng.normal(0, 1, (200, 3)), rng.normal(5, 1, (200, 3))])
    y = np.repeat([0, 1], 200)
    means, precision = fit_gaussian(f, y)
    np.testing.assert_allclose(means, [f[:200].mean(0), f[200:].mean(0)])
    x = np.array([[5.0, 5.0, 5.0], [2.5, 2.5, 2.5]])
    d = [[(v - m) @ precision @ (v - m) for m in means] for v in x]
    np.testing.assert_allclose(mahalanobis(x, means, precision), np.min(d, axis=1))


def test_energy_single_and_multi_task():
    z = torch.tensor([[1.0, 2.0, 3.0]])
    torch.testing.assert_close(energy(z), -torch.logsumexp(z, 1))
    z3 = torch.randn(2, 40, 2)
    torch.testing.assert_close(energy(z3), -torch.logsumexp(z3, -1).sum(1))
    z2 = torch.randn(2, 40)
    two_way = torch.stack([torch.zeros_like(z2), z2], -1)  # one BCE logit = 2-way (0, z)
    torch.testing.assert_close(energy(z2, "plain_multitask"), -torch.logsumexp(two_way, -1).sum(1))


def test_multitask_abn_features_skip_the_perception_passes():
    model = abn.create("resnet20", "abn_multitask", num_classes=40).eval()
    calls = []
    model.perception_branch.register_forward_hook(lambda *a: calls.append(1))
    model.perception_branch.body.register_forward_hook(lambda *a: calls.append(1))
    assert pooled_features(model, torch.randn(2, 3, 32, 32)).shape == (2, 64)
    assert calls == []


def test_save_load_round_trip(tiny, tmp_path):
    model, cal = tiny
    cal.save(tmp_path / "c.npz")
    back = Calibration.load(tmp_path / "c.npz")
    assert (back.digest, back.score, back.threshold) == (cal.digest, cal.score, cal.threshold)
    x = planted(2)
    assert back.assess(model, x) == cal.assess(model, x)
    assert set(back.test_scores) == set(SCORES)


@pytest.fixture
def checkpoint_with_calibration(tmp_path, tiny):
    """A tiny CIFAR-10 checkpoint with a calibration of its own beside it."""
    path = make_checkpoint(tmp_path, "abn")
    model = abn.load(path)
    cal = calibrate(
        model, [synthetic(32, 1)], [synthetic(32, 2)], digest=checkpoint_digest(path),
        description="resnet20 abn (test)",
    )  # fmt: skip
    cal.save(calibration_path(path))
    return path, model


def test_load_calibration_none_ok_and_mismatch(checkpoint_with_calibration, tmp_path):
    path, model = checkpoint_with_calibration
    assert calibration_path(path).name == path.stem + ".familiarity.npz"
    assert isinstance(load_calibration(path, model), Calibration)
    other = make_checkpoint(tmp_path / "other", "plain")  # another model, no file: None
    assert load_calibration(other, abn.load(other)) is None
    shutil.copy(calibration_path(path), calibration_path(other))  # the wrong model's file
    with pytest.raises(CalibrationError, match="computed for another model"):
        load_calibration(other, abn.load(other))


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda p: p.write_bytes(b"not an npz at all"), "not a readable calibration"),
        (lambda p: p.write_bytes(p.read_bytes()[:200]), "not a readable calibration"),
        (lambda p: np.savez(p.open("wb"), format=np.asarray("abn-familiarity/1")), "lacks"),
        (lambda p: np.savez(p.open("wb"), format=np.asarray("other")), "not a calibration"),
        (lambda p: np.savez(p.open("wb"), obj=np.array([{}], dtype=object)), "not a readable"),
    ],
)
def test_corrupt_calibration_is_refused_with_the_reason(
    checkpoint_with_calibration, damage, reason
):
    path, model = checkpoint_with_calibration
    damage(calibration_path(path))
    with pytest.raises(CalibrationError, match=reason):
        load_calibration(path, model)


def test_wrong_feature_count_is_refused(tiny):
    _, cal = tiny
    other = abn.create("resnet20", "plain", num_classes=2).eval()
    wide = Calibration(
        cal.digest, "a wider model", MAHALANOBIS, np.zeros((2, 7)), np.eye(7), cal.test_scores
    )
    with pytest.raises(CalibrationError, match="7 features"):
        wide.assess(other, planted(1))


def test_cli_calibrates_and_shows(tmp_path, capsys):
    root = write_tiny_cifar(tmp_path / "data", per_class=3)
    shutil.copytree(root / "cifar10" / "test", root / "cifar10" / "train")
    ckpt = make_checkpoint(tmp_path, "abn")
    argv = ["familiarity", "calibrate", "--model", str(ckpt), "--data-root", str(root)]
    assert main([*argv, "--n", "20", "--n-test", "12", "--quiet", "--score", "energy"]) == 0
    assert "wrote" in capsys.readouterr().out
    cal = load_calibration(ckpt, abn.load(ckpt))
    assert cal.score == ENERGY and cal.n_test == 12 and cal.means.shape == (10, 64)
    assert main(["familiarity", "show", "--model", str(ckpt)]) == 0
    assert "unlike above the 99th percentile" in capsys.readouterr().out
    missing = ["familiarity", "calibrate", "--model", str(ckpt), "--data-root", str(tmp_path)]
    assert main([*missing, "--quiet"]) == 1
    assert "error:" in capsys.readouterr().err


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_calibrations_load_and_match_their_models(path):
    model = abn.load(path)
    cal = load_calibration(path, model)
    assert cal is not None, f"{calibration_path(path).name} is missing: run `abn familiarity`"
    assert cal.digest == checkpoint_digest(path)
    assert cal.n_test >= 500 and set(cal.test_scores) == set(SCORES)
    h, w = model.card.input_size
    fam = cal.assess(model, torch.zeros(1, 3, h, w))
    assert len(fam) == 1 and 0 <= fam[0].percentile <= 100


def test_readme_table_is_the_benchmarks_result():
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location(
        "familiarity_auroc", REPO / "benchmarks" / "familiarity_auroc.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rows = json.loads((REPO / "benchmarks/results/familiarity_auroc.json").read_text())["rows"]
    shipped = {p.stem for p in SHIPPED}
    assert {r["model"] for r in rows} == shipped  # every shipped model measured
    readme = (REPO / "README.md").read_text()
    for line in bench.markdown(rows).splitlines():
        assert line in readme, f"README's familiarity table is stale: expected\n{line}"
    assert bench.auroc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0
    assert bench.auroc(np.array([0.0, 1.0]), np.array([0.0, 1.0])) == 0.5
