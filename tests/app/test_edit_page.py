"""The "Edit attention" page under AppTest: select map cells, erase, re-predict, undo, save to
an edit set, review and prune it, fine-tune from it (the new model then appears in another
page's picker), and refuse corrupt or foreign edit sets with their reason.

Uses the tiny untrained resnet20 ABN of ``conftest`` (16×16 maps), no dataset (the gallery
is scikit-image's sample photos, copied into the edit set on save), and temporary edit-set
and user-model folders.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

import abn
from abn.editing.editset import EditSet, EditSetError
from app import editor

from .conftest import assert_clean, run_page

PAGE = "pages/6_Edit_attention.py"
MAP = 16  # the resnet20 ABN's map is 16×16 at 32 px


@pytest.fixture
def edit_env(app_env, tmp_path, monkeypatch):
    edits, user = tmp_path / "my-edits", tmp_path / "my-models"
    monkeypatch.setenv("ABN_EDITS_DIR", str(edits))
    monkeypatch.setenv("ABN_USER_MODELS_DIR", str(user))
    return edits, user


def select_box(at: AppTest, top: int, left: int, bottom: int, right: int) -> AppTest:
    """A box selection of map cells, as the chart's ``on_select`` event carries it."""
    points = [
        {"customdata": [r, c]} for r in range(top, bottom + 1) for c in range(left, right + 1)
    ]
    box = {"x": [left - 0.5, right + 0.5], "y": [top - 0.5, bottom + 0.5]}
    at.session_state[editor.CHART] = {"selection": {"points": points, "box": [box], "lasso": []}}
    return at.run()


def history(at: AppTest):
    (hist,) = at.session_state[editor.HISTORIES].values()
    return hist


def changes(at: AppTest) -> np.ndarray:
    """The 'change' column of the before → after table."""
    (frame,) = [d.value for d in at.dataframe if "change" in d.value.columns]
    return frame["change"].to_numpy()


def region_text(at: AppTest) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("**Region:**"))


def erase_top_left(at: AppTest) -> AppTest:
    select_box(at, 0, 0, 7, 7)
    return at.button(key="edit_op_erase").click().run()


def test_box_erase_changes_prediction_undo_restores_and_clear(edit_env):
    at = run_page(PAGE)
    assert_clean(at)
    assert f"{MAP}×{MAP} cells" in at.subheader[0].value
    assert np.abs(changes(at)).max() < 1e-6  # no edit yet: the model's own prediction
    original = history(at).current
    at.button(key="edit_op_erase").click().run()  # no region yet
    assert any("Select a region" in w.value for w in at.warning)
    assert not history(at).can_undo

    select_box(at, 0, 0, 7, 7)
    assert_clean(at)
    assert region_text(at).startswith("**Region:** 64 of 256 cells")
    at.button(key="edit_op_erase").click().run()
    assert_clean(at)
    edited = history(at).current
    assert (edited[:8, :8] == 0).all() and np.array_equal(edited[8:], original[8:])
    assert np.abs(changes(at)).max() > 1e-4  # the perception branch saw the edited map
    assert any("Erased 64 cells" in c.value for c in at.caption)
    assert region_text(at).startswith("**Region:** 64")  # the region outlives the new chart

    at.button(key="edit_undo").click().run()
    assert_clean(at)
    assert np.array_equal(history(at).current, original)
    assert np.abs(changes(at)).max() < 1e-6
    at.button(key="edit_clear").click().run()
    assert region_text(at).startswith("**Region:** none")
    at.radio(key="edit_mode").set_value("Brush").run()  # the canvas (a component) renders
    assert_clean(at)
    assert any("Paint over the cells" in c.value for c in at.caption)


@pytest.mark.slow
def test_save_review_prune_finetune_and_pick_elsewhere(edit_env):
    edits, user = edit_env
    at = run_page(PAGE)
    erase_top_left(at)
    at.text_input(key="edit_set_name").set_value("cats").run()
    at.text_input(key="edit_author").set_value("tester").run()
    at.button(key="edit_save").click().run()
    assert_clean(at)
    at.button(key="edit_save").click().run()  # a second record, to prune
    assert_clean(at)
    es = EditSet.open(edits / "cats")
    assert len(es) == 2 and es.records[0].author == "tester"
    original, edited = es.maps(es.records[0])
    assert (edited[:8, :8] == 0).all() and np.array_equal(original, history(at).original)
    assert es.records[0].image is not None  # a sample photo, not a dataset image: copied
    assert at.selectbox(key="edit_set").value == "cats"
    for record in es.records:  # the review lists both
        assert any(record.id in c.value for c in at.caption), record.id

    at.button(key=f"edit_rm_{es.records[1].id}").click().run()
    assert_clean(at)
    assert len(EditSet.open(edits / "cats")) == 1

    at.number_input(key="edit_ft_epochs").set_value(1).run()
    at.text_input(key="edit_ft_name").set_value("cats-ft").run()
    at.button(key="edit_ft").click().run()
    assert_clean(at)
    assert (user / "cats-ft" / "final.safetensors").is_file()
    assert any("Fine-tuned model written" in s.value for s in at.success)
    (bar,) = at.get("progress")
    assert bar.proto.value == 100  # the progress bar ran to the end
    (table,) = [d.value for d in at.dataframe if "measure" in d.value.columns]
    assert table["measure"][0].startswith("map MSE to the edited maps")
    card = abn.read_card(user / "cats-ft" / "final.safetensors")
    assert card.training["finetune"]["edit_set_size"] == 1

    inspect = run_page("pages/1_Inspect.py")
    assert_clean(inspect)
    options = [o for box in inspect.selectbox for o in box.options]
    assert any("cats-ft/final.safetensors" in o for o in options), options


def test_corrupt_edit_set_shows_its_reason_and_is_kept(edit_env):
    edits, _ = edit_env
    broken = edits / "broken"
    broken.mkdir(parents=True)
    (broken / "edits.json").write_text("{not json")
    at = run_page(PAGE)
    assert not at.exception
    assert any("broken" in w.value and "unreadable" in w.value for w in at.warning)
    at.selectbox(key="edit_set").set_value("broken").run()
    assert not at.exception
    assert any("Edit set refused" in e.value and "unreadable" in e.value for e in at.error)
    assert (broken / "edits.json").read_text() == "{not json"  # nothing overwritten


def test_edit_set_of_another_model_is_refused(edit_env):
    edits, _ = edit_env
    torch.manual_seed(1)
    other = abn.create("resnet20", "abn", num_classes=10).eval()
    EditSet.create(edits / "theirs", other)
    manifest = (edits / "theirs" / "edits.json").read_text()
    at = run_page(PAGE)
    at.selectbox(key="edit_set").set_value("theirs").run()
    assert not at.exception
    assert any("made for another model" in e.value for e in at.error), [e.value for e in at.error]
    at.button(key="edit_save").click().run()
    assert any("made for another model" in e.value for e in at.error)
    assert (edits / "theirs" / "edits.json").read_text() == manifest


def test_multitask_edits_one_attribute(edit_env):
    at = run_page(PAGE)
    choice = next(o for o in at.selectbox(key="edit_model").options if "multitask" in o.lower())
    at.selectbox(key="edit_model").set_value(choice).run()
    assert_clean(at)
    assert at.selectbox(key="edit_attribute").value == at.selectbox(key="edit_attribute").options[0]
    erase_top_left(at)
    assert_clean(at)
    (frame,) = [d.value for d in at.dataframe if "change" in d.value.columns]
    assert sorted(frame["class"]) == ["no", "yes"]
    assert abs(frame["change"].sum()) < 1e-5 and np.abs(frame["change"]).max() > 0


# ----------------------------------------------------------------------------- pieces


def test_selected_cells_reads_points_and_ignores_others():
    points = [
        {"customdata": [1, 2]},
        {"customdata": {"0": 3, "1": 4}},  # what the browser sends for a numeric array
        {"x": 6, "y": 5},
        {"x": 3},
        {"customdata": 5},
    ]
    assert editor.selected_cells({"selection": {"points": points}}) == {(1, 2), (3, 4), (5, 6)}
    assert editor.selected_cells(None) == frozenset()


def test_cell_figure_has_one_point_per_cell_and_outlines_the_region():
    view = np.zeros((32, 32, 3), np.uint8)
    m = np.random.default_rng(0).random((10, 14)).astype(np.float32)
    fig = editor.cell_figure(view, m, frozenset({(0, 0), (9, 13)}), 0.5, "jet")
    points = fig.data[-1]
    assert len(points.x) == 10 * 14
    widths = np.asarray(points.marker.line.width)
    assert widths[0] > 0 and widths[-1] > 0 and (widths[1:-1] == 0).all()
    assert [list(points.customdata[15])] == [[1, 1]]


def test_cell_chart_fills_its_column_with_square_cells(edit_env, monkeypatch):
    widths = []
    shown = editor.st.plotly_chart

    def spy(fig, *args, **kwargs):
        widths.append((fig, kwargs.get("width")))
        return shown(fig, *args, **kwargs)

    monkeypatch.setattr(editor.st, "plotly_chart", spy)
    at = run_page(PAGE)
    assert_clean(at)
    fig, width = widths[0]  # the cell chart comes first
    assert width == "stretch" and fig.layout.width is None  # the column's width, not 340 px
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.yaxis.scaleratio == 1
    h, w = history(at).current.shape
    assert fig.layout.height == round(editor.CELL_CHART * h / w) + 20


def test_brush_cells_follow_the_stroke():
    stroke = {  # as Fabric.js 7 sends a freehand stroke: drawn coordinates, centre origin
        "type": "Path", "strokeWidth": 4, "originX": "center", "originY": "center",
        "left": 80, "top": 8, "path": [["M", 8, 8], ["Q", 40, 8, 80, 8], ["L", 152, 8]],
    }  # fmt: skip
    painted = editor.brush_cells({"objects": [stroke]}, (10, 10), 160)  # 16 px per cell
    assert painted == {(0, c) for c in range(10)}
    moved = {**stroke, "top": 40}  # dragged two cells down in the canvas's edit mode
    assert editor.brush_cells({"objects": [moved]}, (10, 10), 160) == {(2, c) for c in range(10)}
    wide = {**stroke, "strokeWidth": 40}  # 1.25 cells either side of the stroke
    assert {r for r, _ in editor.brush_cells({"objects": [wide]}, (10, 10), 160)} == {0, 1}
    assert editor.brush_cells(None, (10, 10), 160) == frozenset()


def test_discover_lists_the_user_models_folder(assets, tmp_path, monkeypatch):
    from app.models import discover

    from .conftest import make_checkpoint

    user = tmp_path / "user-models"
    monkeypatch.setenv("ABN_ASSETS_DIR", str(assets))
    monkeypatch.setenv("ABN_USER_MODELS_DIR", str(user))
    shipped = {r.filename for r in discover()[0]}
    run = user / "my-run"
    run.mkdir(parents=True)
    make_checkpoint(run, "abn").rename(run / "final.safetensors")
    refs, problems = discover()
    assert {r.filename for r in refs} == shipped | {"my-run/final.safetensors"}
    assert not problems
    monkeypatch.setenv("ABN_USER_MODELS_DIR", str(tmp_path / "absent"))
    assert discover() == (discover(assets)[0], [])  # a missing user folder is no problem


class Upload:
    def __init__(self, name: str, data: bytes):
        self.name, self._data = name, data

    def getvalue(self) -> bytes:
        return self._data


def test_import_zip_makes_a_new_set_and_never_overwrites(tmp_path):
    torch.manual_seed(0)
    model = abn.create("resnet20", "abn", num_classes=10).eval()
    es = EditSet.create(tmp_path / "mine", model)
    m = np.full((MAP, MAP), 0.5, np.float32)
    edited = m.copy()
    edited[:4, :4] = 0
    es.add(m, edited, image=Image.new("RGB", (32, 32)), label=3)
    es.export(tmp_path / "shared set.zip")
    upload = Upload("shared set.zip", (tmp_path / "shared set.zip").read_bytes())
    folder = editor.import_zip(upload, tmp_path / "sets")
    assert folder.name == "shared-set"
    (record,) = EditSet.open(folder, model).records
    assert np.array_equal(EditSet.open(folder).maps(record)[1], edited)
    with pytest.raises(EditSetError, match="exists already"):
        editor.import_zip(upload, tmp_path / "sets")
    with pytest.raises(EditSetError):
        editor.import_zip(Upload("bad.zip", b"not a zip"), tmp_path / "sets")
    assert not (tmp_path / "sets" / "bad").exists()
