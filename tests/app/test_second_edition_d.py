"""Issue #22 item 6: several uploads on every page that takes uploads (one section per image,
a re-uploaded file shown once) and a webcam photo as a third image source."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from .conftest import REPO, png

TIMEOUT = 180
RED = ("red.png", png((200, 30, 30)), "image/png")
BLUE = ("blue.jpg", png((30, 30, 200), fmt="JPEG"), "image/jpeg")
SAME_AGAIN = ("copy of red.png", RED[1], "image/png")


def compare_sections(at: AppTest) -> list[str]:
    return [h.value for h in at.header if h.value != "Agreement between the maps"]


def face_sections(at: AppTest) -> list[str]:
    return [h.value for h in at.header if h.value.startswith("Attention maps (")]


def scorecard_sections(at: AppTest) -> list[str]:
    tables = [d.value for d in at.dataframe]
    return [t for t in tables if "deletion AUC ↓" in t.columns]


# page, picker key, quick settings (fewer maps: the tests stay fast), sections of the page
PAGES = [
    ("pages/1_Inspect.py", "inspect", {}, lambda at: [s.value for s in at.subheader]),
    ("pages/2_Compare.py", "cmp", {"cmp_family": []}, compare_sections),
    ("pages/4_Face_attributes.py", "face", {}, face_sections),
    ("pages/5_Scorecard.py", "sc", {"sc_family": [], "sc_steps": 8}, scorecard_sections),
]
IDS = ["inspect", "compare", "faces", "scorecard"]


def open_page(page: str, key: str, settings: dict, source: str) -> AppTest:
    at = AppTest.from_file(str(REPO / page), default_timeout=TIMEOUT).run()
    for widget, value in settings.items():
        kind = at.multiselect if isinstance(value, list) else at.slider
        kind(key=widget).set_value(value)
    at.radio(key=f"{key}_source").set_value(source).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def upload(page: str, key: str, settings: dict, files) -> AppTest:
    at = open_page(page, key, settings, "Upload")
    at.file_uploader(key=f"{key}_files").set_value(files).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


@pytest.mark.parametrize(("page", "key", "settings", "sections"), PAGES, ids=IDS)
def test_two_uploads_give_two_sections(app_env, page, key, settings, sections):
    at = upload(page, key, settings, [RED, BLUE])
    assert len(sections(at)) == 2, sections(at)


@pytest.mark.parametrize(("page", "key", "settings", "sections"), PAGES, ids=IDS)
def test_the_same_file_twice_gives_one_section_under_its_first_name(
    app_env, page, key, settings, sections
):
    at = upload(page, key, settings, [RED, SAME_AGAIN])
    assert len(sections(at)) == 1, sections(at)
    assert "copy of red.png is the same image as red.png: shown once." in at.caption.values


@pytest.mark.parametrize(("page", "key", "settings", "sections"), PAGES, ids=IDS)
def test_the_camera_is_an_image_source(app_env, page, key, settings, sections):
    at = open_page(page, key, settings, "Camera")
    assert "Camera" in at.radio(key=f"{key}_source").options
    at.camera_input(key=f"{key}_camera").set_value(("image.jpg", BLUE[1], "image/jpeg")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert len(sections(at)) == 1, sections(at)


def test_a_camera_photo_is_shown_by_name_on_inspect(app_env):
    at = open_page("pages/1_Inspect.py", "inspect", {}, "Camera")
    assert not at.subheader  # no photo yet: nothing explained
    at.camera_input(key="inspect_camera").set_value(("image.jpg", BLUE[1], "image/jpeg")).run()
    assert [s.value for s in at.subheader] == ["camera photo"]


def test_a_bad_camera_frame_goes_through_the_safe_reader(app_env):
    at = open_page("pages/1_Inspect.py", "inspect", {}, "Camera")
    at.camera_input(key="inspect_camera").set_value(("image.jpg", b"\xff\xd8 nope", "image/jpeg"))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Cannot read this image" in e.value and "camera photo" in e.value for e in at.error)
    assert not at.subheader
