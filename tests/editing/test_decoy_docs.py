"""The decoy experiment's table in the docs and the README is what docs/editing/decoy.json holds."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _decoy():
    spec = importlib.util.spec_from_file_location("decoy", ROOT / "experiments" / "decoy.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("decoy", module)  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_decoy_tables_are_the_stored_numbers() -> None:
    report = json.loads((ROOT / "docs" / "editing" / "decoy.json").read_text())
    rows = report["rows"]
    assert {"decoy", "edit_n10", "control_n10", "edit_n1000", "control_n1000"} <= set(rows)
    table = _decoy().table(rows)
    docs = (ROOT / "docs" / "editing" / "README.md").read_text()
    readme = (ROOT / "README.md").read_text()
    for line in table.splitlines()[2:]:
        assert line in docs, f"docs/editing/README.md's decoy table is stale: expected\n{line}"
        assert line in readme, f"README's decoy table is stale: expected\n{line}"


def _report(name: str) -> dict:
    return json.loads((ROOT / "docs" / "editing" / f"{name}.json").read_text())


def _rows_in(text: str, table: str, skip: int = 2) -> list[str]:
    return [line for line in table.splitlines()[skip:] if line not in text]


def test_multiply_arm_tables_are_the_stored_numbers() -> None:
    decoy = _decoy()
    docs = (ROOT / "docs" / "editing" / "README.md").read_text()
    readme = (ROOT / "README.md").read_text()
    multiply = _report("decoy_multiply")
    assert multiply["setup"]["mechanism"] == "multiply"
    assert {"decoy", "decoy_erased", "edit_n1000", "control_n1000"} <= set(multiply["rows"])
    table = decoy.table(multiply["rows"])
    assert not _rows_in(docs, table), "docs/editing/README.md's multiply table is stale"
    assert not _rows_in(readme, table), "README's multiply table is stale"
    gamma100 = _report("decoy_multiply_gamma100")
    assert gamma100["setup"]["finetune"]["gamma_edit"] == 100.0
    assert not _rows_in(docs, decoy.table(gamma100["rows"]), skip=4), "gamma = 100 table stale"
    residual_erase = _report("decoy_residual_erase")
    assert residual_erase["setup"]["mechanism"] == "residual"
    erase_row = decoy.table({"decoy_erased": residual_erase["rows"]["decoy_erased"]})
    assert not _rows_in(docs, erase_row), "the residual erase row is stale"
    side = decoy.side_by_side(
        [
            ("residual, g·(1 + M) (Eq. 2), gamma = 10", _report("decoy"), residual_erase),
            ("multiply, M·g (Eq. 1), gamma = 10", multiply, multiply),
            ("multiply, M·g (Eq. 1), gamma = 100", gamma100, gamma100),
        ]
    )
    assert not _rows_in(docs, side), "docs/editing/README.md's side-by-side table is stale"
    assert not _rows_in(readme, side), "README's side-by-side table is stale"


def test_erasing_at_inference_feeds_the_edited_map() -> None:
    import torch

    from abn.models import create

    decoy = _decoy()
    torch.manual_seed(0)
    model = create("resnet20", variant="abn", num_classes=10, mechanism="multiply").eval()
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    none = torch.zeros(4, 16, 16, dtype=torch.bool)
    pred, maps = decoy.predict(model, x, "fp32")
    pred_none, maps_none = decoy.predict(model, x, "fp32", erase=none)
    assert torch.equal(pred, pred_none) and torch.equal(maps, maps_none)
    with torch.no_grad():
        zero = model(decoy.normalise(x), attention=torch.zeros(4, 1, 16, 16)).logits.argmax(1)
    assert not torch.equal(pred, zero)  # the erasure is visible in the predictions
    pred_all, maps_all = decoy.predict(model, x, "fp32", erase=~none)
    assert torch.equal(pred_all, zero)
    assert torch.equal(maps_all, maps)  # the reported map is the model's own, not the edit


def test_patch_cells_cover_the_pasted_patch() -> None:
    import torch

    decoy = _decoy()
    x = torch.zeros(3, 3, 32, 32, dtype=torch.uint8)
    offsets = decoy.paste(x, torch.tensor([0, -1, 5]), seed=1)
    cells = decoy.patch_cells(offsets, 16)
    assert cells[1].sum() == 0 and cells[0].sum() == 9 and cells[2].sum() == 9
    r, c = offsets[0].tolist()
    assert cells[0, r // 2, c // 2] and x[0, 0, r, c] == 255  # class 0's colour is red
