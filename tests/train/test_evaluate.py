"""``evaluate`` and ``abn eval`` agree with a straightforward per-image loop."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from abn.checkpoint import card_for, read_card, save
from abn.data import build_dataset
from abn.data.memory import deterministic_subset
from abn.data.transforms import build_transform
from abn.evaluate import (
    EvalResult,
    compare,
    evaluate_checkpoint,
    format_comparison,
    format_result,
    write_card_metrics,
)
from abn.models import create
from abn.stats import holm, mcnemar_exact

REPO = Path(__file__).resolve().parents[2]


def _checkpoint(tmp_path: Path, variant: str, num: int, dataset: str, **card) -> Path:
    torch.manual_seed(1)
    model = create("resnet20", variant, num)
    with torch.no_grad():  # give batch norm non-trivial statistics
        model.train()(torch.randn(8, 3, *card["input_size"]))
    path = tmp_path / f"{variant}.safetensors"
    save(model.eval(), path, card_for(model, dataset=dataset, **card))
    return path


def _reference(path: Path, data_root: Path, dataset: str, split: str, limit: int):
    from abn.checkpoint import load

    model = load(path)
    card = model.card
    ds = build_dataset(
        dataset,
        split,
        root=data_root,
        transform=build_transform(
            "cifar" if dataset == "cifar10" else "celeba",
            False,
            card.input_size,
            card.mean,
            card.std,
        ),
    )
    chosen = deterministic_subset(len(ds), limit)
    outs, targets = [], []
    with torch.no_grad():
        for i in chosen:
            x, y = ds[i]
            outs.append(model(x[None]))
            targets.append(torch.as_tensor(y))
    return outs, targets


def test_multiclass_errors_match_a_plain_loop(tmp_path: Path, data_root: Path) -> None:
    path = _checkpoint(tmp_path, "abn", 10, "cifar10", input_size=(32, 32))
    run = evaluate_checkpoint(
        path, "cifar10", "test", str(data_root), limit=40, batch_size=16, workers=0, device="cpu"
    )
    outs, targets = _reference(path, data_root, "cifar10", "test", 40)
    for branch, field in (("per", "logits"), ("att", "att_logits")):
        top1 = sum(int(getattr(o, field).argmax() == t) for o, t in zip(outs, targets, strict=True))
        top5 = sum(
            int(t in getattr(o, field)[0].topk(5).indices)
            for o, t in zip(outs, targets, strict=True)
        )
        assert run.result.metrics[f"{branch}_top1_err"] == pytest.approx(100 - 100 * top1 / 40)
        assert run.result.metrics[f"{branch}_top5_err"] == pytest.approx(100 - 100 * top5 / 40)
    hits = [bool(o.logits.argmax() == t) for o, t in zip(outs, targets, strict=True)]
    assert run.result.correct.tolist() == hits  # per image, in order: what a comparison pairs
    text = format_result(run.result, run.title())
    assert "deterministic sample of 40 of 10000 images" in text
    assert "attention" in text and "perception" in text


def test_plain_reports_only_its_one_branch(tmp_path: Path, data_root: Path) -> None:
    path = _checkpoint(tmp_path, "cam", 10, "cifar10", input_size=(32, 32))
    run = evaluate_checkpoint(
        path, limit=8, batch_size=8, workers=0, device="cpu", data_root=str(data_root)
    )
    assert set(run.result.metrics) == {"per_top1_err", "per_top5_err"}


def test_multilabel_per_attribute_accuracy_matches_a_plain_loop(tmp_path, data_root) -> None:
    from abn.data.registry import CELEBA_ATTRIBUTES

    names = list(CELEBA_ATTRIBUTES)
    path = _checkpoint(
        tmp_path,
        "abn_multitask",
        40,
        "celeba-hq",
        input_size=(32, 32),
        task="multilabel",
        class_names=names,
    )
    run = evaluate_checkpoint(
        path, "celeba-hq", "test", str(data_root), limit=12, batch_size=5, workers=0, device="cpu"
    )
    outs, targets = _reference(path, data_root, "celeba-hq", "test", 12)
    per = torch.stack([o.logits[0].argmax(-1) for o in outs])
    att = torch.stack([(o.att_logits[0] > 0).long() for o in outs])
    y = torch.stack(targets).long()
    per_acc = (per == y).double().mean(0) * 100
    att_acc = (att == y).double().mean(0) * 100
    got = run.result.per_attribute
    assert [got[n]["per"] for n in names] == pytest.approx(per_acc.tolist())
    assert [got[n]["att"] for n in names] == pytest.approx(att_acc.tolist())
    assert run.result.metrics["per_mean_acc"] == pytest.approx(per_acc.mean().item())
    assert (torch.from_numpy(run.result.correct) == (per == y)).all()
    assert "average" in format_result(run.result)


def test_write_card_keeps_weights_and_adds_metrics(tmp_path: Path, data_root: Path) -> None:
    path = _checkpoint(tmp_path, "plain", 10, "cifar10", input_size=(32, 32))
    before = path.read_bytes()
    run = evaluate_checkpoint(
        path, limit=8, batch_size=8, workers=0, device="cpu", data_root=str(data_root)
    )
    write_card_metrics(path, run)
    stated = read_card(path).metrics
    assert "cifar10/test" not in stated  # a sample is stored as one, beside the split's own numbers
    assert stated["cifar10/test (sample of 8)"]["n"] == 8
    assert stated["cifar10/test (sample of 8)"]["sample_of"] == 10000
    from safetensors.torch import load as load_bytes

    old, new = load_bytes(before), load_bytes(path.read_bytes())
    assert all(torch.equal(old[k], new[k]) for k in old)


def test_a_dataset_with_other_classes_is_refused(tmp_path: Path, data_root: Path) -> None:
    """Same number of classes, other names (or order): the error rates would be meaningless."""
    from abn.data.registry import CIFAR10_CLASSES

    renamed = [f"not-{c}" for c in CIFAR10_CLASSES]
    shuffled = [*CIFAR10_CLASSES[1:], CIFAR10_CLASSES[0]]
    for names, what in ((renamed, "different"), (shuffled, "in another order")):
        path = _checkpoint(tmp_path, "abn", 10, "cifar10", input_size=(32, 32), class_names=names)
        with pytest.raises(ValueError, match=f"classes are {what} from the model's"):
            evaluate_checkpoint(path, limit=8, workers=0, device="cpu", data_root=str(data_root))


def test_a_recorded_data_root_is_used_only_for_image_trees(tmp_path) -> None:
    """An image tree is found from the card; a registered dataset is read from the data root
    (``--data-root``, ``$ABN_DATA_ROOT``), never from where it happened to be at training."""
    from dataclasses import replace

    from abn.evaluate import card_data_root, evaluation_data

    card = read_card(REPO / "assets" / "cifar10-resnet20-abn.safetensors")
    assert card_data_root(replace(card, recipe={"data_root": str(tmp_path)})) is None
    tree = replace(card, dataset="imagefolder", splits={"test": "val"},
                   recipe={"data_root": str(tmp_path / "gone")})  # fmt: skip
    assert card_data_root(tree) == str(tmp_path / "gone")  # named in the error if moved
    assert card_data_root(tree, "cifar10") is None
    assert evaluation_data(tree) == ("imagefolder", "val", str(tmp_path / "gone"))
    assert evaluation_data(tree, data_root="/mine") == ("imagefolder", "val", "/mine")
    assert evaluation_data(card, split="train")[1:] == ("train", None)


def test_cpu_fp32_evaluation_runs_in_channels_last(tmp_path: Path, data_root: Path, monkeypatch):
    """The numbers above (a plain NCHW loop's) come from a channels-last model and input."""
    import abn.evaluate as ev

    seen = []
    real = ev.evaluate

    def spy(model, batches, *args, **kwargs):
        def record(_module, inputs):
            weights = [p for p in model.parameters() if p.dim() == 4]
            layouts = [t.is_contiguous(memory_format=torch.channels_last) for t in weights]
            seen.append((inputs[0].is_contiguous(memory_format=torch.channels_last), all(layouts)))

        handle = model.register_forward_pre_hook(record)
        try:
            return real(model, batches, *args, **kwargs)
        finally:
            handle.remove()

    monkeypatch.setattr(ev, "evaluate", spy)
    path = _checkpoint(tmp_path, "abn", 10, "cifar10", input_size=(32, 32))
    evaluate_checkpoint(
        path, limit=8, batch_size=4, workers=0, device="cpu", data_root=str(data_root)
    )
    assert seen == [(True, True), (True, True)]


def _result(task: str, correct, names=()) -> EvalResult:
    correct = np.asarray(correct, dtype=bool)
    per_attribute = {n: {"per": 0.0} for n in names}
    return EvalResult(task, len(correct), {}, per_attribute, correct)


def test_compare_single_label_is_mcnemar_on_the_2x2_table() -> None:
    # planted: 50 both right, b = 10 only the model, c = 2 only the baseline, 8 both wrong
    model = [1] * 50 + [1] * 10 + [0] * 2 + [0] * 8
    base = [1] * 50 + [0] * 10 + [1] * 2 + [0] * 8
    cmp = compare(_result("multiclass", model), _result("multiclass", base))
    (row,) = cmp.rows
    assert (row.both, row.model_only, row.baseline_only, row.neither) == (50, 10, 2, 8)
    assert row.p == pytest.approx(2 * (1 + 12 + 66) / 2**12) and row.p_holm == row.p
    assert cmp.n == 70 and cmp.difference == pytest.approx(100 * 8 / 70)
    assert row.model_acc == pytest.approx(100 * 60 / 70)
    assert cmp.ci[0] < cmp.difference < cmp.ci[1]
    text = format_comparison(cmp, "model", "baseline")
    assert "Odds" not in text and "p = 0.0386: model significantly better" in text


def test_compare_multilabel_holm_counts_significant_wins_and_losses() -> None:
    n = 400
    rng = np.random.default_rng(0)
    base = rng.random((n, 3)) < 0.8
    model = base.copy()
    model[:60, 0], base[:60, 0] = True, False  # attribute a: the model better on 60 images
    model[60:100, 1], base[60:100, 1] = False, True  # attribute b: worse on 40
    model[100:103, 2], base[103:106, 2] = True, True  # attribute c: 3 vs 3, no difference
    model[103:106, 2], base[100:103, 2] = False, False
    cmp = compare(_result("multilabel", model, "abc"), _result("multilabel", base, "abc"))
    assert [r.name for r in cmp.rows] == ["a", "b", "c"]
    p = [mcnemar_exact(r.model_only, r.baseline_only) for r in cmp.rows]
    assert [r.p_holm for r in cmp.rows] == pytest.approx(list(holm(p)))
    assert (cmp.wins, cmp.losses) == (1, 1)
    assert cmp.rows[2].p_holm == 1.0
    text = format_comparison(cmp, "model", "baseline")
    assert "Holm-corrected over 3 attributes" in text
    assert "significantly better on 1, worse on 1, no significant difference on 1" in text


def test_compare_refuses_unpaired_results() -> None:
    with pytest.raises(ValueError, match="not of the same images"):
        compare(_result("multiclass", [1, 0, 1]), _result("multiclass", [1, 0]))
    with pytest.raises(ValueError, match="per-image results"):
        compare(EvalResult("multiclass", 3), _result("multiclass", [1, 0, 1]))
    with pytest.raises(ValueError, match="cannot compare"):
        compare(_result("multiclass", [1]), _result("multilabel", [[1]], "a"))


def test_eval_baseline_cli_prints_and_writes_the_paired_test(tmp_path, data_root, capsys):
    import json

    from abn.cli import main

    abn_path = _checkpoint(tmp_path, "abn", 10, "cifar10", input_size=(32, 32))
    plain_path = _checkpoint(tmp_path, "plain", 10, "cifar10", input_size=(32, 32))
    hits = {}
    for name, path in (("model", abn_path), ("baseline", plain_path)):
        outs, targets = _reference(path, data_root, "cifar10", "test", 40)
        hits[name] = np.array(
            [bool(o.logits.argmax() == t) for o, t in zip(outs, targets, strict=True)]
        )
    m, b = hits["model"], hits["baseline"]
    only_m, only_b = int((m & ~b).sum()), int((~m & b).sum())
    argv = ["eval", "--model", str(abn_path), "--baseline", str(plain_path), "--data-root",
            str(data_root), "--limit", "40", "--workers", "0", "--device", "cpu"]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    table = {row: [int(v) for v in re.findall(rf"^{row}\s+(\d+)\s+(\d+)$", out, re.M)[0]]
             for row in ("model right", "model wrong")}  # fmt: skip
    assert table["model right"] == [int((m & b).sum()), only_m]
    assert table["model wrong"] == [only_b, int((~m & ~b).sum())]
    assert f"p = {mcnemar_exact(only_m, only_b):.3g}" in out
    assert f"difference {100 * (m.mean() - b.mean()):+.2f} points, 95% CI [" in out
    assert "Odds" not in out
    written = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert written["comparison"]["rows"][0]["model_only_right"] == only_m
    assert written["comparison"]["rows"][0]["p_mcnemar"] == pytest.approx(
        mcnemar_exact(only_m, only_b)
    )
    csv_text = (tmp_path / "out" / "comparison.csv").read_text().splitlines()
    assert csv_text[0].startswith("name,baseline_acc,model_acc") and csv_text[1].startswith(
        "top-1,"
    )
    assert main([*argv, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)  # one JSON document, nothing else
    assert printed["comparison"] == written["comparison"]
    assert printed["model"]["n"] == printed["baseline"]["n"] == 40


@pytest.mark.slow
def test_evaluate_does_not_import_the_trainer() -> None:
    """abn.train imports abn.evaluate; the reverse (even inside a function) would be a cycle."""
    import ast
    import subprocess
    import sys

    import abn.evaluate as ev

    tree = ast.parse(Path(ev.__file__).read_text())
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [m for m in imported if m and m.startswith("abn.train")]
    code = "import sys, abn.evaluate; print(sorted(m for m in sys.modules if m.startswith('abn.train')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
