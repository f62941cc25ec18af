"""Every dashboard page under ``streamlit.testing.v1.AppTest``, on tiny untrained checkpoints.

Each test checks what a user would see: the page renders without exception elements, uploads
and widgets change the output, and bad inputs become readable error messages.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import abn
from abn.data.registry import CELEBA_ATTRIBUTES, CIFAR10_CLASSES
from app.layout import PAGES
from app.views import table_height

from .conftest import REPO, assert_clean, make_checkpoint, png, run_page


def errors(at: AppTest) -> str:
    return "\n".join(e.value for e in at.error)


def upload(at: AppTest, key: str, files) -> AppTest:
    at.radio(key=f"{key}_source").set_value("Upload").run()
    at.file_uploader(key=f"{key}_files").set_value(files).run()
    return at


# ----------------------------------------------------------------------------- Home


def test_home_lists_models_and_links_pages(app_env):
    at = run_page("Home.py")
    assert_clean(at)
    table = at.dataframe[0].value
    assert len(table) == 5
    assert set(table["dataset"]) == {"cifar10", "celeba-hq"}
    assert set(table["classes"]) == {10, 40}
    assert "airplane" in table["class names"].iloc[0]
    links = [e for e in at.main if type(e).__name__ == "PageLink"]
    assert len(links) == len(PAGES)  # every page, once


def _links_per_row(at: AppTest) -> list[int]:
    """How many page links each row of columns on the page holds."""
    rows = []
    for block in at.main.children.values():
        cols = [c for c in getattr(block, "children", {}).values() if type(c).__name__ == "Column"]
        if cols:
            links = [
                node for c in cols for child in c.children.values() for node in _walk(child)
                if type(node).__name__ == "PageLink"
            ]  # fmt: skip
            rows.append(len(links))
    return rows


def _walk(node):
    yield node
    for child in getattr(node, "children", {}).values():
        yield from _walk(child)


def test_home_cards_fit_and_the_models_table_shows_its_file_column(app_env):
    at = run_page("Home.py")
    per_row = _links_per_row(at)
    assert sum(per_row) == len(PAGES) and max(per_row) <= 4  # wider rows cut the titles
    columns = json.loads(at.dataframe[0].proto.columns)
    assert columns["file"]["width"] == "large"  # the file name is never cut off
    assert columns["class names"]["width"] == "medium"
    assert all(len(v.split(", ")) <= 3 for v in at.dataframe[0].value["class names"])


def test_home_reports_unreadable_checkpoint(app_env, tmp_path, monkeypatch):
    folder = tmp_path / "assets"
    folder.mkdir()
    make_checkpoint(folder, "abn")
    (folder / "broken.safetensors").write_bytes(b"not a checkpoint at all")
    monkeypatch.setenv("ABN_ASSETS_DIR", str(folder))
    at = run_page("Home.py")
    assert not at.exception
    assert len(at.dataframe[0].value) == 1
    assert any("broken.safetensors" in w.value for w in at.warning)


def test_home_without_models_says_so(app_env, tmp_path, monkeypatch):
    monkeypatch.setenv("ABN_ASSETS_DIR", str(tmp_path))
    at = run_page("Home.py")
    assert not at.exception
    assert any("No models found" in i.value for i in at.info)


# ----------------------------------------------------------------------------- Inspect


def test_inspect_gallery_shows_predictions_and_maps(app_env):
    at = run_page("pages/1_Inspect.py")
    assert_clean(at)
    assert at.caption.values and any("Gallery: sample photos" in c for c in at.caption.values)
    assert [s.value for s in at.subheader] == ["astronaut"]
    perception, attention = at.dataframe[0].value, at.dataframe[1].value
    assert len(perception) == 5 and set(perception["class"]) <= set(CIFAR10_CLASSES)
    assert perception["probability"].is_monotonic_decreasing
    assert len(attention) == 5
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Overlay (PNG)", "Map (NPY)"]


@pytest.mark.slow
def test_inspect_widgets_change_the_output(app_env):
    at = run_page("pages/1_Inspect.py")
    before = at.image[0].value
    at.slider(key="inspect_alpha").set_value(0.9).run()
    assert at.image[0].value != before
    after_alpha = at.image[0].value
    at.selectbox(key="inspect_cmap").set_value("viridis").run()
    assert at.image[0].value != after_alpha
    at.slider(key="inspect_k").set_value(3).run()
    assert len(at.dataframe[0].value) == 3
    at.multiselect(key="inspect_gallery").set_value(["coffee", "rocket"]).run()
    assert_clean(at)
    assert [s.value for s in at.subheader] == ["coffee", "rocket"]


def _heatmap_range(at) -> tuple[float, float]:
    import json

    trace = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]
    return trace["zmin"], trace["zmax"]


def test_inspect_raw_map_colours_span_what_the_map_holds(app_env):
    """ABN's M(x) on 0…1; a CAM model's unbounded class scores on their own range."""
    at = run_page("pages/1_Inspect.py")
    assert _heatmap_range(at) == (0.0, 1.0)
    picker = at.selectbox(key="inspect_model")
    picker.set_value(next(o for o in picker.options if "cam" in str(o))).run()
    assert_clean(at)
    assert any("CAM (no attention branch)" in c for c in at.caption.values)
    low, high = _heatmap_range(at)
    raw = next(c for c in at.caption.values if " cells, " in c)
    assert f"{low:.3f}…{high:.3f}" in raw and "its own range" in raw


def test_switching_to_another_datasets_model_starts_its_gallery_afresh(
    app_env, tiny_cifar, tmp_path, monkeypatch
):
    folder = tmp_path / "two-datasets"
    folder.mkdir()
    make_checkpoint(folder, "abn")  # cifar10: the gallery of the tiny CIFAR tree
    make_checkpoint(folder, "abn", "svhn")  # no SVHN data: the bundled sample photos
    monkeypatch.setenv("ABN_ASSETS_DIR", str(folder))
    at = run_page("pages/1_Inspect.py")
    assert at.subheader[0].value.startswith("test #")
    picker = at.selectbox(key="inspect_model")
    picker.set_value(next(o for o in picker.options if "svhn" in str(o))).run()
    assert_clean(at)
    assert not at.warning  # the old link (a CIFAR image) is not reported as unknown
    assert [s.value for s in at.subheader] == ["astronaut"]  # not an empty selection


@pytest.mark.slow
def test_an_image_tree_model_finds_its_tree_from_the_card(
    app_env, no_data, tiny_cifar_root, tmp_path, monkeypatch
):
    """A model trained on the user's own tree (``imagefolder``): the gallery and the t-SNE read
    the tree its card names (here its ``val`` split), with no data root set up."""
    tree = tmp_path / "my-tree"
    shutil.copytree(tiny_cifar_root / "cifar10" / "test", tree / "val")
    folder = tmp_path / "tree-models"
    folder.mkdir()
    for variant in ("abn", "plain"):
        make_checkpoint(folder, variant, "imagefolder", splits={"train": "train", "test": "val"},
                        recipe={"recipe": "cifar", "data_root": str(tree)})  # fmt: skip
    monkeypatch.setenv("ABN_ASSETS_DIR", str(folder))
    at = run_page("pages/1_Inspect.py")
    assert_clean(at)
    assert at.subheader[0].value.startswith("val #")
    emb = run_page("pages/3_Embeddings.py")
    assert_clean(emb)
    assert emb.selectbox(key="emb_split").value == "val"
    emb.slider(key="emb_n").set_value(50).run()
    emb.button[0].click().run()
    assert_clean(emb)
    assert len([e for e in emb.main if (e.key or "").startswith("tsne_")]) == 3
    # the tree moved away: a clear note on each page, never a crash
    shutil.move(tree, tmp_path / "moved")
    emb = run_page("pages/3_Embeddings.py")
    assert not emb.exception
    assert any(f"not found under `{tree}`" in w.value for w in emb.warning)
    assert_clean(run_page("pages/1_Inspect.py"))  # (the gallery read before stays cached)
    sc = run_page("pages/5_Scorecard.py")
    sc.button(key="sc_go").click().run()
    assert not sc.exception and str(tree) in errors(sc)


def test_inspect_uploads_several_formats(app_env):
    files = [
        ("red.png", png(), "image/png"),
        ("green.jpg", png((20, 200, 20), fmt="JPEG"), "image/jpeg"),
        ("blue.webp", png((20, 20, 200), fmt="WEBP"), "image/webp"),
        ("grey.bmp", png((90, 90, 90), fmt="BMP"), "image/bmp"),
    ]
    at = upload(run_page("pages/1_Inspect.py"), "inspect", files)
    assert_clean(at)
    assert [s.value for s in at.subheader] == [f[0] for f in files]
    assert len(at.dataframe) == 8


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("notes.png", b"just some text, renamed to .png\n" * 4, "text file"),
        ("cut.png", png()[:60], "truncated"),
        ("noise.jpg", b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4, "image"),
        ("empty.jpg", b"", "empty file"),
    ],
    ids=["text-renamed-png", "truncated-png", "corrupt-jpeg", "empty"],
)
def test_inspect_bad_upload_is_a_readable_error(app_env, name, data, message):
    files = [(name, data, "image/png"), ("good.png", png(), "image/png")]
    at = upload(run_page("pages/1_Inspect.py"), "inspect", files)
    assert not at.exception
    text = errors(at)
    assert "Cannot read this image" in text and name in text and message in text
    assert [s.value for s in at.subheader] == ["good.png"]  # the good file is still shown


def choose_custom(at: AppTest, key: str) -> AppTest:
    from app.models import CUSTOM

    return at.selectbox(key=key).set_value(CUSTOM).run()


def test_inspect_wrong_checkpoint_by_path(app_env, tmp_path):
    at = choose_custom(run_page("pages/1_Inspect.py"), "inspect_model")
    at.text_input(key="inspect_model_path").set_value(
        str(app_env / "resnet20_abn_multitask_celeba-hq.safetensors")
    ).run()
    assert not at.exception
    assert "this page needs a single-label classifier" in errors(at)
    bogus = tmp_path / "model.safetensors"
    bogus.write_text("definitely not safetensors")
    at.text_input(key="inspect_model_path").set_value(str(bogus)).run()
    assert "Checkpoint problem" in errors(at) and "model.safetensors" in errors(at)
    at.text_input(key="inspect_model_path").set_value(str(tmp_path / "missing.safetensors")).run()
    assert "not found" in errors(at)


def test_inspect_accepts_uploaded_checkpoint(app_env, tmp_path):
    path = make_checkpoint(tmp_path, "plain", class_names=[f"c{i}" for i in range(10)])
    at = choose_custom(run_page("pages/1_Inspect.py"), "inspect_model")
    at.radio(key="inspect_model_how").set_value("Upload").run()
    at.file_uploader(key="inspect_model_upload").set_value(
        ("mine.safetensors", path.read_bytes(), "application/octet-stream")
    ).run()
    assert_clean(at)
    assert set(at.dataframe[0].value["class"]) <= {f"c{i}" for i in range(10)}
    assert any("Grad-CAM (no attention branch)" in c for c in at.caption.values)


def test_inspect_rejects_tampered_upload(app_env):
    data = bytearray((app_env / "resnet20_abn_cifar10.safetensors").read_bytes())
    data[-10] ^= 0xFF  # flip bits in the last tensor
    at = choose_custom(run_page("pages/1_Inspect.py"), "inspect_model")
    at.radio(key="inspect_model_how").set_value("Upload").run()
    at.file_uploader(key="inspect_model_upload").set_value(
        ("evil.safetensors", bytes(data), "application/octet-stream")
    ).run()
    assert not at.exception
    assert "checksum" in errors(at)
    assert "evil.safetensors" in errors(at) and "tmp" not in errors(at)  # the user's file name


# ----------------------------------------------------------------------------- Compare


def test_compare_grid_timing_and_agreement(app_env):
    at = run_page("pages/2_Compare.py")
    assert_clean(at)
    titles = [m.value.strip("*") for m in at.markdown if m.value.startswith("**")]
    for label in ("ABN attention", "ABN class map", "CAM (CAM model)", "Grad-CAM · baseline",
                  "Grad-CAM · ABN", "Grad-CAM++ · ABN"):  # fmt: skip
        assert label in titles
    assert not any("Score-CAM" in t for t in titles)  # selectable, not default: seconds per map
    grid = [c for c in at.caption.values if c.startswith("predicts")]
    assert len(grid) == 7 and all(" ms" in c for c in grid)
    rho = at.dataframe[0].value
    assert rho.shape == (7, 7)
    assert (rho.values.diagonal() == 1).all()


@pytest.mark.slow
def test_compare_target_and_methods_are_selectable(app_env):
    at = run_page("pages/2_Compare.py")
    at.selectbox(key="cmp_target").set_value("ship").run()
    assert_clean(at)
    grid = [c for c in at.caption.values if c.startswith("predicts")]
    agnostic = [c for c in grid if "one map for every class" in c]  # ABN's M(x)
    assert len(agnostic) == 1 and all("target ship" in c for c in grid if c not in agnostic)
    at.multiselect(key="cmp_family").set_value(["gradcam"]).run()
    assert len([c for c in at.caption.values if c.startswith("predicts")]) == 5
    at.selectbox(key="cmp_plain").set_value("(none)").run()
    at.selectbox(key="cmp_cam").set_value("(none)").run()
    assert len([c for c in at.caption.values if c.startswith("predicts")]) == 3


@pytest.mark.slow
def test_compare_offers_every_post_hoc_method_of_the_registry(app_env):
    from abn.explain import get_method, list_methods

    at = run_page("pages/2_Compare.py")
    picker = at.multiselect(key="cmp_family")
    assert picker.options == [get_method(m).title for m in list_methods() if get_method(m).post_hoc]
    assert {"RISE", "Integrated Gradients", "Occlusion", "Score-CAM"} <= set(picker.options)
    picker.set_value(["integrated-gradients", "occlusion"]).run()
    assert_clean(at)
    titles = [m.value.strip("*") for m in at.markdown if m.value.startswith("**")]
    for label in ("Integrated Gradients · baseline", "Integrated Gradients · ABN",
                  "Occlusion · baseline", "Occlusion · ABN"):  # fmt: skip
        assert label in titles
    assert not any(t.startswith("Grad-CAM") for t in titles)
    assert at.dataframe[0].value.shape == (7, 7)
    assert {"IG base", "Occl ABN"} <= set(at.dataframe[0].value.columns)


def test_compare_upload_and_bad_upload(app_env):
    at = upload(run_page("pages/2_Compare.py"), "cmp", ("photo.jpg", png(fmt="JPEG"), "image/jpeg"))
    assert_clean(at)
    assert any(h.value == "photo.jpg" for h in at.header)
    at = upload(
        run_page("pages/2_Compare.py"), "cmp", ("photo.png", b"<html>nope</html>", "image/png")
    )
    assert not at.exception
    assert "HTML" in errors(at)


# ----------------------------------------------------------------------------- Embeddings


def test_embeddings_without_dataset_explains_how_to_get_one(app_env):
    at = run_page("pages/3_Embeddings.py")
    assert not at.exception
    text = "\n".join(w.value for w in at.warning)
    assert "No dataset here" in text and "python -m abn data prepare" in text


def test_embeddings_compute_then_cached(app_env, tiny_cifar):
    at = run_page("pages/3_Embeddings.py")
    at.slider(key="emb_n").set_value(50).run()
    assert_clean(at)
    assert any("t-SNE of 40 images" in i.value and "not cached yet" in i.value for i in at.info)
    assert "`test` holds 40 images: all of them are used." in at.caption.values  # not "50"
    at.button[0].click().run()
    assert_clean(at)
    charts = [e for e in at.main if (e.key or "").startswith("tsne_")]
    assert len(charts) == 3  # baseline, ABN without attention (g(x)), ABN with it (g'(x))
    titles = [m.value for m in at.markdown if m.value.startswith("**")]
    assert titles == ["**Baseline (plain) · branch on g(x)**",
                      "**ABN without attention · branch on g(x)**",
                      "**ABN with attention · branch on g'(x)**"]  # fmt: skip
    quality = _quality_captions(at)
    assert len(quality) == 3 and all("· n = 40 ·" in q and "silhouette **" in q for q in quality)
    assert "Computed." in at.caption.values
    assert len(list((tiny_cifar / ".cache" / "embeddings").glob("*.npz"))) == 2

    again = run_page("pages/3_Embeddings.py")
    again.slider(key="emb_n").set_value(50).run()
    assert_clean(again)
    assert "From the disk cache." in again.caption.values
    assert _quality_captions(again) == quality  # the numbers are cached with the t-SNE
    assert _trace_names(again) <= set(CIFAR10_CLASSES)  # coloured by class first
    again.radio(key="emb_colour").set_value("correctness").run()
    assert_clean(again)
    assert _trace_names(again) and _trace_names(again) <= {"correct", "wrong"}


def _quality_captions(at: AppTest) -> list[str]:
    """The cluster-quality line under each t-SNE panel."""
    return [c for c in at.caption.values if c.startswith("5-NN accuracy **")]


def test_embeddings_says_multitask_models_are_not_offered(app_env):
    at = run_page("pages/3_Embeddings.py")
    assert not at.exception
    assert not any("multitask" in o for o in at.selectbox(key="emb_abn").options)
    assert any("Multi-task ABN models" in c and "no single g'(x)" in c for c in at.caption.values)


def _trace_names(at: AppTest) -> set[str]:
    """The legend entries of the first t-SNE panel."""
    import json

    chart = next(e for e in at.main if (e.key or "").startswith("tsne_"))
    return {t.get("name") for t in json.loads(chart.proto.spec)["data"]}


def embeddings_with_two_selected() -> AppTest:
    """The Embeddings page on 50 points with points 0 and 5 selected in the right panel."""
    at = run_page("pages/3_Embeddings.py")
    at.slider(key="emb_n").set_value(50).run()
    at.button[0].click().run()
    at.session_state["tsne_abn_ga"] = {
        "selection": {"points": [{"customdata": [0]}, {"customdata": [5]}], "box": [], "lasso": []}
    }
    return at.run()


def selected_captions(at: AppTest) -> list[str]:
    """Captions of the selected images shown under the plots."""
    return [c for img in at.image for c in img.captions if c.startswith("#")]


def test_embeddings_selection_shows_images_with_maps(app_env, tiny_cifar):
    at = embeddings_with_two_selected()
    assert not at.exception
    captions = selected_captions(at)
    assert captions == [c for c in captions if "→" in c] and len(captions) == 2


# ----------------------------------------------------------------------------- Face attributes


def test_faces_grid_filter_and_enlarge(app_env):
    at = run_page("pages/4_Face_attributes.py")
    assert_clean(at)
    assert at.header[0].value == "Attention maps (40 of 40 attributes)"
    grid = [c for img in at.image for c in img.captions if " · " in c]
    assert len(grid) == 40
    assert {c.split(" · ")[0] for c in grid} == {a.replace("_", " ") for a in CELEBA_ATTRIBUTES}
    at.text_input(key="face_query").set_value("hair").run()
    assert_clean(at)
    hair = [a for a in CELEBA_ATTRIBUTES if "hair" in a.lower()]
    assert at.header[0].value == f"Attention maps ({len(hair)} of 40 attributes)"
    at.multiselect[0].set_value(["Smiling"]).run()  # keyed per image: the only multiselect
    assert_clean(at)
    assert [s.value for s in at.subheader] == ["Smiling"]
    assert any(c.startswith("Baseline Grad-CAM (min-max scaled)") for c in at.caption.values)
    abn_caption = next(c for c in at.caption.values if c.startswith("ABN attention map M(x)"))
    assert "P(present) = " in abn_caption  # both models' probability, side by side


def test_faces_sorting_by_score(app_env):
    at = run_page("pages/4_Face_attributes.py")
    scores = at.dataframe[0].value["P(present)"]
    assert scores.is_monotonic_decreasing
    at.radio(key="face_sort").set_value("name").run()
    assert list(at.dataframe[0].value["attribute"]) == sorted(CELEBA_ATTRIBUTES)


def test_faces_table_shows_every_row_without_inner_scrolling(app_env, monkeypatch):
    heights = []
    shown = st.dataframe

    def spy(data=None, *args, **kwargs):
        heights.append((len(data), kwargs.get("height")))
        return shown(data, *args, **kwargs)

    monkeypatch.setattr(st, "dataframe", spy)
    at = run_page("pages/4_Face_attributes.py")
    assert_clean(at)
    rows, height = heights[0]  # the P(present) table
    assert rows == 40 and height == table_height(40)
    at.text_input(key="face_query").set_value("hair").run()
    rows, height = heights[-1]
    assert 0 < rows < 40 and height == table_height(rows)  # shrinks with the filter


def test_faces_minimum_probability_filters_table_and_grid(app_env):
    at = run_page("pages/4_Face_attributes.py")
    scores = sorted(at.dataframe[0].value["P(present)"])
    cut = (scores[9] + scores[10]) / 2  # between the 10th and 11th lowest: 30 stay
    at.slider(key="face_min").set_value(round(cut, 2)).run()
    assert_clean(at)
    kept = at.dataframe[0].value["P(present)"]
    assert (kept >= round(cut, 2)).all() and len(kept) == sum(v >= round(cut, 2) for v in scores)
    assert 0 < len(kept) < 40
    assert at.header[0].value == f"Attention maps ({len(kept)} of 40 attributes)"


def test_faces_without_multitask_model(app_env, tmp_path, monkeypatch):
    folder = tmp_path / "assets"
    folder.mkdir()
    make_checkpoint(folder, "abn")
    monkeypatch.setenv("ABN_ASSETS_DIR", str(folder))
    at = run_page("pages/4_Face_attributes.py")
    assert not at.exception
    assert any("No multi-task ABN model" in w.value for w in at.warning)


def test_faces_upload_bad_checkpoint_kind(app_env):
    at = choose_custom(run_page("pages/4_Face_attributes.py"), "face_abn")
    at.text_input(key="face_abn_path").set_value(
        str(app_env / "resnet20_abn_cifar10.safetensors")
    ).run()
    assert not at.exception
    assert "multi-task ABN" in errors(at)


def test_models_are_loaded_once(app_env):
    from app import models

    ref = models.discover(Path(app_env))[0][0]
    assert models.load(ref) is models.load(ref)
    assert isinstance(models.load(ref).card, abn.ModelCard)


# ----------------------------------------------------------------------------- Scorecard


@pytest.mark.slow
def test_scorecard_one_image_curves_and_aucs(app_env):
    at = run_page("pages/5_Scorecard.py")
    assert_clean(at)
    assert at.get("plotly_chart"), "no deletion/insertion figure"
    aucs = at.dataframe[0].value
    assert list(aucs.columns) == ["deletion AUC ↓", "insertion AUC ↑"]
    assert {"ABN attention", "CAM (CAM model)", "Grad-CAM · baseline"} <= set(aucs.index)
    assert aucs.map(lambda v: 0 <= v <= 1).all().all()
    at.slider(key="sc_steps").set_value(8).run()
    assert_clean(at)
    assert not at.dataframe[0].value.equals(aucs)
    at.multiselect(key="sc_family").set_value(["xgradcam"]).run()
    assert_clean(at)
    rows = set(at.dataframe[0].value.index)
    assert any(r.startswith("XGrad-CAM") for r in rows)
    assert not any(r.startswith(("Grad-CAM ·", "Grad-CAM++")) for r in rows)


@pytest.mark.slow
def test_scorecard_split_needs_a_dataset_then_scores_it(app_env, tiny_cifar):
    at = run_page("pages/5_Scorecard.py")
    at.slider(key="sc_n").set_value(20).run()
    at.button(key="sc_go").click().run()
    assert_clean(at)
    summary = at.dataframe[1].value
    assert (summary["n"] == 20).all()
    assert {"deletion AUC ↓", "insertion AUC ↑", "Average Drop % ↓"} <= set(summary.columns)
    diffs = at.dataframe[2].value  # each other method minus the ABN map, image by image
    assert set(diffs["method"]) == set(summary.index) - {"ABN attention"}
    assert (diffs["n"] == 20).all() and (diffs["95% CI low"] <= diffs["95% CI high"]).all()
    # a rerun shows the cached table again (a cached progress bar used to break it)
    at.selectbox(key="sc_metric").set_value("avg_drop").run()
    assert_clean(at)
    assert at.dataframe[1].value.equals(summary)


def test_scorecard_split_without_dataset_is_a_clear_message(app_env):
    at = run_page("pages/5_Scorecard.py")
    at.button(key="sc_go").click().run()
    assert not at.exception
    assert "Dataset not available" in errors(at)


def test_picker_labels_are_short_and_name_the_file_only_to_tell_models_apart(tmp_path):
    from app import models

    first = make_checkpoint(tmp_path, "abn")
    shutil.copy(first, tmp_path / "my-abn.safetensors")
    make_checkpoint(tmp_path, "plain")
    refs = sorted(models.discover(tmp_path)[0], key=lambda r: (r.card.variant, r.filename))
    assert models.labels(refs) == [
        "resnet20 abn · cifar10 (not evaluated) — my-abn.safetensors",
        "resnet20 abn · cifar10 (not evaluated) — resnet20_abn_cifar10.safetensors",
        "resnet20 plain · cifar10 (not evaluated)",
    ]


def test_companions_answer_the_main_models_question(tmp_path):
    """A baseline must share the dataset, the classes in order and, for own trees, the tree."""
    from abn.card import ModelCard
    from app.models import same_task

    def card(variant, dataset="imagefolder", tree="mine", names=("a", "b", "c")):
        recipe = {"data_root": str(tmp_path / tree)} if dataset == "imagefolder" else {}
        return ModelCard(arch="resnet20", variant=variant, num_classes=len(names),
                         class_names=list(names), dataset=dataset, recipe=recipe)  # fmt: skip

    main = card("abn")
    assert same_task(card("plain"), main)
    assert not same_task(card("plain", tree="other"), main)
    assert not same_task(card("plain", names=("a", "c", "b")), main)
    assert not same_task(card("plain", dataset="cifar10"), main)
    assert same_task(card("cam", "cifar10"), card("abn", "cifar10"))
    assert main.display_name == "resnet20 abn · imagefolder mine"


def test_a_folder_of_training_runs_lists_each_runs_model(tmp_path):
    from app import models

    for run, names in {"one": ("last", "final"), "two": ("last",), ".hidden": ("final",)}.items():
        (tmp_path / run).mkdir()
        for name in names:
            shutil.copy(make_checkpoint(tmp_path, "abn"), tmp_path / run / f"{name}.safetensors")
    (tmp_path / "resnet20_abn_cifar10.safetensors").unlink()
    make_checkpoint(tmp_path, "plain")
    refs, problems = models.discover(tmp_path)
    assert not problems
    assert [r.filename for r in refs] == [
        "resnet20_plain_cifar10.safetensors", "one/final.safetensors", "two/last.safetensors"
    ]  # fmt: skip


@pytest.mark.parametrize(
    "page", ["pages/1_Inspect.py", "pages/2_Compare.py", "pages/3_Embeddings.py",
             "pages/5_Scorecard.py"],
)  # fmt: skip
def test_models_of_a_dataset_this_install_does_not_know(page, tmp_path, no_data, monkeypatch):
    """A card naming a dataset registered only in the trainer's own code: pages fall back to the
    sample photos and say the dataset is not here, never a traceback; its baseline still pairs."""
    for variant in ("abn", "plain"):
        make_checkpoint(tmp_path, variant, "mydata")
    monkeypatch.setenv("ABN_ASSETS_DIR", str(tmp_path))
    monkeypatch.chdir(REPO)
    at = run_page(page)
    assert_clean(at)
    if page != "pages/1_Inspect.py":
        assert at.selectbox(key=f"{page_key(page)}_plain").value.startswith("resnet20 plain")
    if page == "pages/3_Embeddings.py":
        assert any("No dataset here" in w.value for w in at.warning)


def page_key(page: str) -> str:
    return {"pages/2_Compare.py": "cmp", "pages/3_Embeddings.py": "emb",
            "pages/5_Scorecard.py": "sc"}[page]  # fmt: skip
