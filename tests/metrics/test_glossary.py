"""The metrics glossary: one plain-language text and direction per number, used everywhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from abn.metrics import glossary
from abn.metrics.scorecard import HIGHER_IS_BETTER, LABELS

DOCS = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


@pytest.mark.parametrize("key", list(HIGHER_IS_BETTER))
def test_every_scorecard_metric_has_a_text_with_the_scorecards_direction(key):
    term = glossary.term(key)
    assert term.better == ("higher" if HIGHER_IS_BETTER[key] else "lower")
    assert LABELS[key].startswith(term.name)  # the same name as the tables' column
    assert term.help.endswith(f"{term.better.capitalize()} is better.")
    assert len(term.text.split()) >= 12  # a sentence, not a label


def test_agreement_has_no_better_direction():
    for key in ("spearman", "iou"):
        assert glossary.term(key).better is None
        assert "better" not in glossary.help_text(key)


def test_unknown_key_names_the_known_ones():
    with pytest.raises(KeyError, match="no glossary entry for 'pointing'.*deletion_auc"):
        glossary.help_text("pointing")


def test_how_to_read_lists_each_key_once_in_order():
    text = glossary.how_to_read(["insertion_auc", "avg_drop"])
    lines = text.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("- **insertion AUC** — ") and "Higher is better." in lines[0]
    assert lines[1].startswith("- **Average Drop %** — ") and "Lower is better." in lines[1]


def test_docs_table_is_the_glossary():
    text = DOCS.read_text()
    block = re.search(r"<!-- glossary:start -->\n(.*?)\n<!-- glossary:end -->", text, re.S)
    assert block, "docs/metrics.md lost its glossary markers"
    assert block.group(1) == glossary.markdown_table()
    assert len(block.group(1).splitlines()) == len(glossary.TERMS) + 2
