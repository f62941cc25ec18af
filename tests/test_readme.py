"""The README's tables are what the shipped cards and stored results say (scripts/*_table.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / f"scripts/{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _models_table():
    return _script("models_table")


def test_readme_tables_every_shipped_model_as_its_card_states() -> None:
    table = _models_table()
    shipped = sorted((ROOT / "assets").glob("*.safetensors"))
    assert shipped, "no shipped models in assets/"
    for path in shipped:
        line = table.row(path)
        assert line in README, f"README's models table is stale for {path.name}: expected\n{line}"


@pytest.mark.parametrize("data", ["celeba-hq"])
def test_readme_per_attribute_table_matches_the_cards(data: str) -> None:
    table = _models_table()
    ours = next((ROOT / "assets").glob(f"{data}-*-abn_multitask.safetensors"))
    plain = ours.with_name(ours.name.replace("abn_multitask", "plain_multitask"))
    for line in table.attribute_table(ours, plain).splitlines():
        assert line in README, f"README's per-attribute table is stale: expected\n{line}"


@pytest.mark.parametrize("data", ["cifar10", "imagenette"])
def test_readme_scorecard_tables_are_the_stored_results(data: str) -> None:
    """The README's scorecard tables are scripts/scorecard_table.py run on docs/scorecard/."""
    script, folder = _script("scorecard_table"), ROOT / "docs" / "scorecard" / data
    tables = [script.table(folder), script.difference_table(script.differences(folder))]
    for line in "\n".join(tables).splitlines():
        assert line in README, f"README's {data} scorecard is stale: expected\n{line}"
