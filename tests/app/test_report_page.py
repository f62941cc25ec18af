"""The Batch report page under AppTest: uploads → progress → a downloadable HTML report."""

from __future__ import annotations

import io
import re
import zipfile

from .conftest import assert_clean, png, run_page

PAGE = "pages/7_Batch_report.py"


def _make(at):
    at.button(key="report_make").click().run()
    return at


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def test_two_uploads_make_a_report_to_download(app_env):
    at = run_page(PAGE)
    assert_clean(at)
    assert not at.get("download_button")
    files = [
        ("red.png", png((200, 30, 30)), "image/png"),
        ("blue.png", png((30, 30, 200)), "image/png"),
    ]
    at.file_uploader(key="report_files").set_value(files).run()
    assert_clean(at)
    assert not at.get("download_button")  # nothing is computed before the button
    assert "2 image(s) to explain, 0 skipped so far." in at.caption.values
    _make(at)
    assert_clean(at)
    buttons = at.get("download_button")
    assert [b.label for b in buttons] == ["Download the report (HTML)"]
    summary = at.dataframe[0].value
    assert list(summary["image"]) == ["red.png", "blue.png"]
    assert "unlike the training data" in summary.columns
    assert "attention branch predicts" in summary.columns  # a class, not a score
    _assert_finished(at, "Report ready: 2 image(s), 0 skipped.")
    # a rerun (any widget) shows the kept report without recomputing it
    at.run()
    assert [b.label for b in at.get("download_button")] == ["Download the report (HTML)"]
    _assert_finished(at, "Report ready: 2 image(s), 0 skipped.")


def _assert_finished(at, status: str) -> None:
    """A made report reads as finished: its status, and no 'make' button or pending count."""
    assert [s.value for s in at.success] == [status]
    assert not [b for b in at.button if b.key == "report_make"]
    assert not any("skipped so far" in c for c in at.caption.values)
    # its size in units people read: a small report is not "0.0 MB"
    assert any(re.match(r"\d+ kB, one self-contained file", c) for c in at.caption.values)


def test_zip_upload_lists_refused_members(app_env):
    at = run_page(PAGE)
    bundle = _zip({"a.png": png(), "../evil.png": png(), "notes.txt": b"hello", "bad.png": b"x"})
    at.file_uploader(key="report_files").set_value([("set.zip", bundle, "application/zip")]).run()
    _make(at)
    assert_clean(at)
    _assert_finished(at, "Report ready: 1 image(s), 3 skipped.")
    assert list(at.dataframe[0].value["image"]) == ["set.zip/a.png"]
    skipped = at.dataframe[1].value
    reasons = dict(zip(skipped["input"], skipped["reason"], strict=True))
    assert "path traversal" in reasons["set.zip/../evil.png"]
    assert "not an image" in reasons["set.zip/notes.txt"]
    assert "not an image" in reasons["set.zip/bad.png"]  # the reader judged its bytes


def test_scores_and_another_model(app_env):
    at = run_page(PAGE)
    at.checkbox(key="report_scores").check().run()
    at.file_uploader(key="report_files").set_value([("a.png", png(), "image/png")]).run()
    _make(at)
    assert_clean(at)
    scores = at.dataframe[0].value
    assert list(scores["method"]) == ["abn"] and "deletion AUC ↓" in scores.columns
    # a multi-task model: its own map, and no scores (the box is off whatever it showed)
    choice = next(o for o in at.selectbox(key="report_model").options if "multitask" in o)
    at.selectbox(key="report_model").set_value(choice).run()
    assert at.multiselect(key="report_methods").value == ["abn"]
    assert at.checkbox(key="report_scores").disabled
    _make(at)
    assert_clean(at)
    assert list(at.dataframe[0].value["image"]) == ["a.png"]  # the summary, no score table
