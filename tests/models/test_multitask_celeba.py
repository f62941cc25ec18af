"""Multi-task ABN on real faces: training lowers the loss; maps and Odds per attribute."""

import numpy as np
import pytest
import torch
from scipy.stats import binomtest

import abn
from abn.checkpoint import card_for
from abn.data import build_dataset, build_transform, dataset_info
from abn.evaluate import compare, evaluate, format_comparison
from abn.explain import explain
from abn.models import create
from abn.train.loss import abn_loss


@pytest.fixture(scope="module")
def faces(data_root):
    """32 real CelebA-HQ training faces (down to 32 px to keep this fast) and their 40 labels."""
    info = dataset_info("celeba-hq")
    transform = build_transform("celeba", False, (32, 32), info.mean, info.std)
    ds = build_dataset("celeba-hq", "train", root=data_root, transform=transform)
    items = [ds[i] for i in range(32)]
    return torch.stack([x for x, _ in items]), torch.stack([y for _, y in items]), info


def _model(variant, info):
    torch.manual_seed(0)
    return create("resnet20", variant, num_classes=len(info.class_names))


@pytest.mark.parametrize("variant", ["abn_multitask", "plain_multitask"])
def test_training_on_real_faces_lowers_the_loss(faces, variant):
    x, y, info = faces
    model = _model(variant, info).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for _ in range(8):
        parts = abn_loss(model(x), y)
        opt.zero_grad()
        parts.total.backward()
        opt.step()
        losses.append(parts.total.item())
    assert losses[-1] < 0.8 * losses[0], losses
    if variant == "abn_multitask":
        assert parts.att.item() > 0 and parts.per.item() > 0


def test_explain_a_named_attribute_returns_that_attributes_map(faces):
    x, _, info = faces
    model = _model("abn_multitask", info).eval()
    smiling = info.class_names.index("Smiling")
    res = explain(model, x[:2], method="abn", target="Smiling", class_names=info.class_names)
    with torch.no_grad():
        own = model(x[:2]).attention[:, smiling]
    assert torch.equal(res.raw, own)
    assert res.maps.shape == (2, 32, 32)
    assert (res.targets == smiling).all()


def test_odds_compares_per_attribute_accuracy(faces, tmp_path):
    x, y, info = faces
    names = info.class_names
    results = {}
    for variant in ("abn_multitask", "plain_multitask"):
        model = _model(variant, info).eval()
        results[variant] = evaluate(model, [(x, y)], "multilabel", len(names), names)
        path = abn.save(model, tmp_path / f"{variant}.safetensors",
                        card_for(model, class_names=names, task="multilabel"))  # fmt: skip
        assert abn.load(path).card.class_names == list(names)
    cmp = compare(results["abn_multitask"], results["plain_multitask"])
    assert len(cmp.rows) == 40
    higher = sum(
        results["abn_multitask"].per_attribute[n]["per"]
        > results["plain_multitask"].per_attribute[n]["per"]
        for n in names
    )
    wins, losses = _significant_by_hand(
        np.asarray(results["abn_multitask"].correct, bool),
        np.asarray(results["plain_multitask"].correct, bool),
    )
    assert (cmp.wins, cmp.losses) == (wins, losses)
    text = format_comparison(cmp, "ABN", "plain")
    assert "Smiling" in text
    assert f"significantly better on {wins}, worse on {losses}" in text
    assert f"higher on {higher}" in text


def _significant_by_hand(a: np.ndarray, b: np.ndarray, alpha: float = 0.05) -> tuple[int, int]:
    """Per-attribute exact McNemar (scipy's binomial test), Holm step-down, signed counts."""
    only_a, only_b = (a & ~b).sum(0), (~a & b).sum(0)
    p = np.array([
        binomtest(int(x), int(x + y), 0.5).pvalue if x + y else 1.0
        for x, y in zip(only_a, only_b, strict=True)
    ])  # fmt: skip
    rejected = np.zeros(len(p), bool)
    for rank, i in enumerate(np.argsort(p)):
        if p[i] > alpha / (len(p) - rank):
            break
        rejected[i] = True
    return int((rejected & (only_a > only_b)).sum()), int((rejected & (only_a < only_b)).sum())
