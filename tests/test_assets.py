"""The shipped default models: loadable, honest cards, and their numbers reproduce.

Each checkpoint in ``assets/`` is evaluated in fp32, as `python -m abn eval` does, and must
reproduce the accuracy its card states: on the whole test split, or, for the models too slow
for that on a 2-core CPU, on the deterministic sample whose numbers the card also states
(``"<data>/<split> (sample of N)"``, written by ``abn eval --limit N --write-card``). Every card
states the whole split's numbers.
"""

from pathlib import Path

import pytest

import abn
from abn.evaluate import evaluate_checkpoint

ASSETS = Path(__file__).resolve().parents[1] / "assets"
SHIPPED = sorted(ASSETS.glob("*.safetensors"))
MAX_BYTES = 40 * 2**20


def test_assets_hold_models():
    assert SHIPPED, f"no shipped models in {ASSETS}"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_card_is_complete(path):
    card = abn.read_card(path)
    assert path.stat().st_size < MAX_BYTES
    assert card.class_names and len(card.class_names) == card.num_classes
    assert card.dataset and card.splits.get("test")
    assert card.training.get("hardware") and card.training.get("retrain")
    assert card.training.get("train_seconds_total", 0) > 0
    trained, planned = card.training.get("epochs"), card.recipe.get("epochs")
    assert 0 < trained <= planned
    if trained < planned:  # a run stopped early must say so
        assert f"{trained} of the {planned}" in card.notes
    key = f"{card.dataset}/{card.splits['test']}"
    assert key in card.metrics, f"{path.name}: no test metrics under {key}"
    assert card.metrics[key]["n"] > 0


def stated_for_eval(card: abn.ModelCard) -> tuple[dict, int]:
    """The card's numbers to reproduce, and the sample size they were measured on (0: all)."""
    whole = f"{card.dataset}/{card.splits['test']}"
    samples = [(k, m) for k, m in card.metrics.items() if k.startswith(f"{whole} (sample of ")]
    if not samples:
        return card.metrics[whole], 0
    key, stated = min(samples, key=lambda item: item[1]["n"])
    assert key == f"{whole} (sample of {stated['n']})"
    assert stated["sample_of"] == card.metrics[whole]["n"]  # a sample of the split the card states
    return stated, stated["n"]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_eval_reproduces_the_card(path, data_root):
    card = abn.read_card(path)
    split = card.splits["test"]
    stated, limit = stated_for_eval(card)
    run = evaluate_checkpoint(path, card.dataset, split, str(data_root), limit=limit, workers=2)
    measured = run.record()
    assert measured["n"] == stated["n"] and measured.get("sample_of") == stated.get("sample_of")
    for key, value in stated.items():
        if key.endswith("_err") or key.endswith("_acc"):
            assert measured[key] == pytest.approx(value, abs=0.05), key
