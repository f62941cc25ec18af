"""``abn scorecard`` end to end on tiny checkpoints and real CIFAR-10 test images."""

import json

import pandas as pd
import pytest
import torch

import abn
from abn.checkpoint import card_for
from abn.cli import main
from abn.data import dataset_info
from abn.models import create


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    info = dataset_info("cifar10")
    out = tmp_path_factory.mktemp("ckpt")
    paths = {}
    for variant in ("abn", "plain", "cam"):
        torch.manual_seed(0)
        model = create("resnet20", variant, num_classes=10).eval()
        card = card_for(model, class_names=list(info.class_names), input_size=(32, 32),
                        mean=info.mean, std=info.std, dataset="cifar10")  # fmt: skip
        paths[variant] = abn.save(model, out / f"{variant}.safetensors", card)
    return paths


def test_scorecard_writes_tables_and_summary(checkpoints, data_root, tmp_path, capsys):
    code = main([
        "scorecard", "--model", str(checkpoints["abn"]), "--baseline", str(checkpoints["plain"]),
        "--cam", str(checkpoints["cam"]), "--data", "cifar10", "--data-root", str(data_root),
        "--n", "6", "--batch-size", "3", "--steps", "4", "--methods", "abn,cam,gradcam,gradcam@model",
        "--sanity", "2", "--intervention", "--out", str(tmp_path), "--quiet", "--device", "cpu",
    ])  # fmt: skip
    assert code == 0
    table = pd.read_csv(tmp_path / "scorecard.csv")
    assert set(table["method"]) == {"abn (abn)", "cam (cam)", "gradcam (plain)", "gradcam (abn)"}
    assert len(table) == 4 * 6
    assert table["deletion_auc"].between(0, 1).all() and table["insertion_auc"].between(0, 1).all()
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert (summary["n"] == 6).all()
    # the summary is the table's per-method mean, with a Student-t 95% half-width
    from scipy import stats

    for method, rows in table.groupby("method"):
        line = summary.set_index("method").loc[method]
        for col in ("deletion_auc", "insertion_auc"):
            assert line[col] == pytest.approx(rows[col].mean())
            half = stats.t.ppf(0.975, 5) * rows[col].std(ddof=1) / 6**0.5
            assert line[f"{col}_ci95"] == pytest.approx(half)
    # each other method against the ABN map, image by image (paired t), in differences.csv
    diffs = pd.read_csv(tmp_path / "differences.csv")
    assert set(diffs["method"]) == {"cam (cam)", "gradcam (plain)", "gradcam (abn)"}
    assert (diffs["reference"] == "abn (abn)").all()
    by = table.set_index(["method", "image"])
    for r in diffs.itertuples():
        d = by.loc[r.method][r.metric] - by.loc["abn (abn)"][r.metric]
        assert r.n == 6 and r.difference == pytest.approx(d.mean())
        if d.std() > 0:
            assert r.p == pytest.approx(stats.ttest_1samp(d, 0).pvalue, rel=1e-4)  # float32 scores
    out = capsys.readouterr().out
    assert "deletion_auc ↓" in out and "sanity abn (abn)" in out and "intervention inverted" in out
    assert "paired differences (method − abn (abn), same images)" in out
    checks = json.loads((tmp_path / "checks.json").read_text())
    assert {d["n"] for d in checks["intervention"].values()} == {6}  # both batches of 3


def test_scorecard_refuses_a_method_without_its_model(checkpoints, data_root, tmp_path, capsys):
    code = main(["scorecard", "--model", str(checkpoints["abn"]), "--data", "cifar10",
                 "--data-root", str(data_root), "--methods", "cam", "--out", str(tmp_path)])  # fmt: skip
    assert code == 2
    assert "needs --cam" in capsys.readouterr().err
    code = main(["scorecard", "--model", str(checkpoints["abn"]), "--baseline",
                 str(checkpoints["plain"]), "--data", "cifar10", "--data-root", str(data_root),
                 "--methods", "abn@baseline", "--out", str(tmp_path)])  # fmt: skip
    assert code == 2
    assert "cannot explain" in capsys.readouterr().err


def test_scorecard_takes_dataset_and_split_from_the_card(checkpoints, data_root, tmp_path, capsys):
    code = main(["scorecard", "--model", str(checkpoints["abn"]), "--data-root", str(data_root),
                 "--n", "2", "--steps", "2", "--methods", "abn", "--out", str(tmp_path),
                 "--quiet", "--device", "cpu"])  # fmt: skip
    assert code == 0
    assert "2 images of cifar10/test" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("model", "extra", "message"),
    [
        ("abn", ["--n", "0"], "--n must be >= 1, not 0"),
        ("abn", ["--batch-size", "0"], "--batch-size must be >= 1, not 0"),
        ("abn", ["--steps", "1"], "--steps must be >= 2, not 1"),
        ("plain", ["--methods", "gradcam@model", "--intervention"], "single-task ABN"),
        ("renamed", ["--data", "cifar10"], "classes are different from the model's"),
    ],
)
def test_scorecard_checks_its_arguments_before_any_work(
    checkpoints, data_root, tmp_path, capsys, model, extra, message
):
    path = checkpoints.get(model)
    if model == "renamed":  # the ABN model, its classes named otherwise
        net = abn.load(checkpoints["abn"])
        card = card_for(net, class_names=[f"x{i}" for i in range(10)], input_size=(32, 32),
                        dataset="cifar10")  # fmt: skip
        path = abn.save(net, tmp_path / "renamed.safetensors", card)
    out = tmp_path / "out"
    argv = ["scorecard", "--model", str(path), "--methods", "abn", "--data-root", str(data_root),
            "--out", str(out), "--quiet", "--device", "cpu", *extra]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (out / "scorecard.csv").exists()


def test_the_sample_follows_the_seed(checkpoints, data_root):
    from abn.metrics.scorecard import sample_batches

    card = abn.read_card(checkpoints["abn"])

    def picked(seed: int) -> list[int]:
        batches, n, _ = sample_batches(card, "cifar10", "test", 5, 2, seed, data_root)
        assert n == 5
        return [int(i) for index, _, _ in batches() for i in index]

    assert picked(1) == picked(1) and len(set(picked(1))) == 5
    assert picked(1) != picked(2)


def test_scorecard_refuses_a_baseline_of_other_classes(checkpoints, data_root, tmp_path, capsys):
    torch.manual_seed(0)
    other = create("resnet20", "plain", num_classes=2).eval()
    card = card_for(other, class_names=["cat", "dog"], input_size=(32, 32), dataset="cifar10")
    path = abn.save(other, tmp_path / "two-class.safetensors", card)
    code = main(["scorecard", "--model", str(checkpoints["abn"]), "--baseline", str(path),
                 "--data-root", str(data_root), "--methods", "gradcam",
                 "--out", str(tmp_path / "sc")])  # fmt: skip
    assert code == 2
    assert "--baseline: cifar10 has 10 classes but the model predicts 2" in capsys.readouterr().err
    assert not (tmp_path / "sc").exists()
