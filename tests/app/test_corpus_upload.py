"""The hostile image corpus uploaded into the dashboard: each file shown or refused by name.

Runs ``tests/corpus.py`` through ``AppTest``: no exception element ever, every refused file gets
its own "Cannot read this image" message with the specific reason, every readable file is
explained (and the good files still show when bad ones are uploaded beside them).
"""

from __future__ import annotations

import mimetypes
import re

import pytest
from streamlit.testing.v1 import AppTest

from abn.data import read_image
from app.images import image_digest
from tests.corpus import Sample, corpus

from .conftest import REPO

TIMEOUT = 300
SAMPLES = corpus()
REFUSED = [s for s in SAMPLES if not s.readable]


def upload(page: str, key: str, samples: list[Sample]) -> AppTest:
    at = AppTest.from_file(str(REPO / page), default_timeout=TIMEOUT).run()
    at.radio(key=f"{key}_source").set_value("Upload").run()
    files = [
        (s.name, s.data, mimetypes.guess_type(s.name)[0] or "application/octet-stream")
        for s in samples
    ]
    at.file_uploader(key=f"{key}_files").set_value(files if len(files) > 1 else files[0]).run()
    return at


def refusals(at: AppTest) -> list[str]:
    messages = [e.value for e in at.error]
    unexpected = [m for m in messages if "Cannot read this image" not in m]
    assert not unexpected, unexpected  # only image refusals, never "… failed: SomeError"
    return messages


@pytest.mark.slow
def test_whole_corpus_in_one_upload(app_env):
    at = upload("pages/1_Inspect.py", "inspect", SAMPLES)
    assert not at.exception, [e.value for e in at.exception]
    messages = refusals(at)
    assert len(messages) == len(REFUSED)
    for s in REFUSED:
        mine = [m for m in messages if f"{s.name}:" in m]
        assert len(mine) == 1, (s.name, messages)
        assert re.search(s.error, mine[0]), (s.name, mine[0])
    shown = [h.value for h in at.subheader]
    first, repeats = _once_per_image([s for s in SAMPLES if s.readable])
    assert shown == first  # files that decode to the same pixels as an earlier one: shown once
    for name, earlier in repeats:
        assert f"{name} is the same image as {earlier}: shown once." in at.caption.values
    assert len(at.image) >= len(shown)  # one overlay per explained image


def _once_per_image(samples: list[Sample]) -> tuple[list[str], list[tuple[str, str]]]:
    """Names of the first file of each distinct decoded image, and (repeat, first) pairs."""
    seen: dict[str, str] = {}
    first, repeats = [], []
    for s in samples:
        digest = image_digest(read_image(s.data, name=s.name))
        if digest in seen:
            repeats.append((s.name, seen[digest]))
        else:
            seen[digest] = s.name
            first.append(s.name)
    return first, repeats


@pytest.mark.parametrize(
    ("page", "key"),
    [("pages/2_Compare.py", "cmp"), ("pages/4_Face_attributes.py", "face"),
     ("pages/5_Scorecard.py", "sc")],
    ids=["compare", "faces", "scorecard"],
)  # fmt: skip
@pytest.mark.parametrize(
    "sample",
    [s for s in REFUSED if s.name in ("truncated.jpg", "page.png", "logo.svg", "huge.png")],
    ids=lambda s: s.name,
)
def test_single_image_pages_refuse_by_name(app_env, page, key, sample):
    at = upload(page, key, [sample])
    assert not at.exception, [e.value for e in at.exception]
    messages = refusals(at)
    assert len(messages) == 1 and sample.name in messages[0]
    assert re.search(sample.error, messages[0])
