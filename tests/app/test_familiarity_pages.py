"""The "unlike the training data" signal on the pages: a warning for another pack's image, the
suggestion that switches the model picker, a quiet note for models without a calibration, and
the face page's grayscale note."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import app.familiarity as familiarity_ui
from abn.familiarity import Familiarity
from app.familiarity import NO_CALIBRATION, is_grayscale, worth_switching

from .conftest import REPO, assert_clean, png, run_page

# a CIFAR-10 test image (32 px, upscaled to 160 px for the Imagenette model): another pack's
CIFAR_IMAGE = "cifar10/test/automobile/0009.jpg"


def upload(at, key: str, files):
    at.radio(key=f"{key}_source").set_value("Upload").run()
    at.file_uploader(key=f"{key}_files").set_value(files).run()
    return at


def texts(at) -> str:
    return "\n".join(e.value for e in [*at.caption, *at.warning, *at.info])


@pytest.fixture
def shipped(no_data, monkeypatch):
    """The shipped models (with their calibrations) in assets/."""
    monkeypatch.delenv("ABN_ASSETS_DIR", raising=False)
    monkeypatch.chdir(REPO)


def test_inspect_warns_on_another_packs_image_and_the_suggestion_switches(shipped, data_root):
    image = (data_root / CIFAR_IMAGE).read_bytes()
    at = run_page("pages/1_Inspect.py")
    assert at.selectbox(key="inspect_model").value.startswith("resnet18 abn · imagenette")
    upload(at, "inspect", [("photo.jpg", image, "image/jpeg")])
    assert_clean(at)
    warnings = [w.value for w in at.warning]
    assert any("Unlike the training data (Imagenette)" in w for w in warnings), texts(at)
    assert any("a CIFAR-10 model finds it more typical" in i.value for i in at.info), texts(at)
    switch = [b for b in at.button if b.label.startswith("Switch to resnet20 abn · cifar10")]
    assert len(switch) == 1, [b.label for b in at.button]
    switch[0].click().run()
    assert_clean(at)
    assert at.selectbox(key="inspect_model").value.startswith("resnet20 abn · cifar10")
    assert not any("Unlike the training data" in w.value for w in at.warning), texts(at)
    assert "(CIFAR-10)" in texts(at) and "Like the training data" not in texts(at)


def test_worth_switching_needs_the_top_tail_and_a_clearly_lower_other():
    def fam(p: float) -> Familiarity:
        return Familiarity(0.0, p, p > 99)

    assert worth_switching(fam(99.8), fam(60))  # unlike here, typical there
    assert worth_switching(fam(97), fam(60))  # top tail here, clearly lower there
    assert not worth_switching(fam(92), fam(10))  # not in the top tail: no suggestion
    assert not worth_switching(fam(97), fam(85))  # not clearly lower
    assert not worth_switching(fam(99.8), fam(99.5))  # unlike there too


def fake_percentiles(monkeypatch, by_dataset: dict[str, float]) -> None:
    """Every calibrated model reports the percentile its dataset gets in ``by_dataset``."""
    real = familiarity_ui.familiarity

    def fake(ref, picked):
        fam = real(ref, picked)
        if not isinstance(fam, Familiarity):
            return fam
        p = by_dataset.get(ref.card.dataset, 99.9)  # the face models: unlike
        return Familiarity(fam.score, p, p > 99)

    monkeypatch.setattr(familiarity_ui, "familiarity", fake)


def inspect_texts(data_root) -> tuple[str, list[str], object]:
    at = run_page("pages/1_Inspect.py")
    image = (data_root / CIFAR_IMAGE).read_bytes()
    upload(at, "inspect", [("chelsea.jpg", image, "image/jpeg")])
    assert_clean(at)
    return texts(at), [b.label for b in at.button if b.label.startswith("Switch to")], at


def test_a_less_typical_image_gets_a_consistent_badge_and_suggestion(
    shipped, data_root, monkeypatch
):
    # the cat-photo case: 97th percentile on Imagenette (no warning), lower on CIFAR-10
    fake_percentiles(monkeypatch, {"imagenette": 97.0, "cifar10": 40.0})
    shown, switches, at = inspect_texts(data_root)
    assert not at.warning, shown
    assert "Like the training data" not in shown and "looks most like" not in shown
    assert "less typical than 9 in 10 of the model's own test images (Imagenette)" in shown
    info = [i.value for i in at.info]
    assert len(info) == 1 and "less typical of this model's Imagenette test images" in info[0]
    assert switches == [s for s in switches if "cifar10" in s] and len(switches) == 1


def test_no_suggestion_below_the_top_tail_or_without_a_clearly_lower_model(
    shipped, data_root, monkeypatch
):
    for imagenette, cifar in [(92.0, 10.0), (97.0, 85.0)]:
        fake_percentiles(monkeypatch, {"imagenette": imagenette, "cifar10": cifar})
        shown, switches, at = inspect_texts(data_root)
        assert not switches and not at.info, shown
        assert "less typical than 9 in 10" in shown


@pytest.mark.slow  # two pages, ~25 s on 2 shared cores
def test_pages_say_quietly_when_a_model_has_no_calibration(app_env):
    for page, key in [("pages/1_Inspect.py", "inspect"), ("pages/2_Compare.py", "cmp")]:
        at = upload(run_page(page), key, [("red.png", png(), "image/png")])
        assert_clean(at)
        assert NO_CALIBRATION in texts(at), page
        assert not any("Switch to" in b.label for b in at.button)


def test_scorecard_shows_each_models_signal(app_env):
    at = upload(run_page("pages/5_Scorecard.py"), "sc", [("red.png", png(), "image/png")])
    assert_clean(at)
    notes = [c.value for c in at.caption if NO_CALIBRATION in c.value]
    assert len(notes) == 3  # the ABN model, its plain baseline and its CAM model


def grayscale_png() -> bytes:
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 255, (48, 48), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(np.stack([gray] * 3, -1)).save(buf, format="PNG")
    return buf.getvalue()


def test_face_page_notes_grayscale_input(app_env):
    at = upload(
        run_page("pages/4_Face_attributes.py"), "face", [("g.png", grayscale_png(), "image/png")]
    )
    assert_clean(at)
    assert any("Grayscale input" in w.value for w in at.warning), texts(at)
    assert NO_CALIBRATION in texts(at)
    at = upload(run_page("pages/4_Face_attributes.py"), "face", [("c.png", png(), "image/png")])
    assert not any("Grayscale input" in w.value for w in at.warning)


def test_is_grayscale():
    assert is_grayscale(Image.open(io.BytesIO(grayscale_png())))
    assert not is_grayscale(Image.open(io.BytesIO(png())))


def test_face_page_warns_and_notes_framing_for_a_non_face(shipped, data_root):
    image = (data_root / CIFAR_IMAGE).read_bytes()
    at = upload(run_page("pages/4_Face_attributes.py"), "face", [("car.jpg", image, "image/jpeg")])
    assert_clean(at)
    assert any("Unlike the training data (CelebA-HQ faces)" in w.value for w in at.warning)
    assert any("Framing unlike the training faces" in c.value for c in at.caption), texts(at)
    assert not any("Grayscale input" in w.value for w in at.warning)
