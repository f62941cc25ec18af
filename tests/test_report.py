"""The batch report: self-contained HTML, escaped names, the model's own predictions, unreadable
images and unsafe ZIP members listed with the reason, zip bombs refused, and the CLI."""

from __future__ import annotations

import io
import re
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import abn
from abn.checkpoint import card_for
from abn.data.archive import ArchiveError, read_zip
from abn.data.registry import CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD
from abn.explain.preprocess import preprocess_for
from abn.report import NO_CALIBRATION, Skipped, build_report, sources_from_paths

HOSTILE = '<script>alert("x")</script>&.png'


def noise(seed: int, size=(40, 30)) -> Image.Image:
    a = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(a)


def png_bytes(seed: int) -> bytes:
    buf = io.BytesIO()
    noise(seed).save(buf, format="PNG")
    return buf.getvalue()


def zip_bytes(members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = abn.create("resnet20", "abn", num_classes=10).eval()
    card = card_for(model, class_names=list(CIFAR10_CLASSES), input_size=(32, 32),
                    mean=CIFAR10_MEAN, std=CIFAR10_STD, dataset="cifar10",
                    splits={"train": "train", "test": "test"}, recipe={"recipe": "cifar"})  # fmt: skip
    return abn.save(model, tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", card)


@pytest.fixture(scope="module")
def model(checkpoint):
    return abn.load(checkpoint)


@pytest.fixture(scope="module")
def scored(model, checkpoint):
    """A scored report of two images (one with a hostile name) and one skipped input."""
    images = [(HOSTILE, noise(1)), ("plain.png", noise(2))]
    calls = []
    report = build_report(model, images, "abn, GradCAM", scores=True, steps=4,
                          checkpoint=checkpoint, command="abn report <folder>",
                          skipped=[Skipped("<b>broken</b>.jpg", "truncated")],
                          progress=lambda *a: calls.append(a))  # fmt: skip
    return report, report.to_html(), calls


def test_html_is_self_contained(scored):
    _, page, _ = scored
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert "@import" not in page and "url(" not in page
    sources = re.findall(r'<img[^>]*\ssrc="([^"]*)"', page)
    assert len(sources) == 2 * (1 + 2 * 2)  # 2 images × (view + 2 methods × (overlay, raw))
    assert len(sources) == page.count("<img")
    assert all(s.startswith(("data:image/png;base64,", "data:image/jpeg;base64,")) for s in sources)
    hrefs = re.findall(r'href="([^"]*)"', page)
    assert hrefs and all(h.startswith("#image-") for h in hrefs)


def test_names_are_escaped(scored):
    _, page, _ = scored
    assert HOSTILE not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;.png" in page
    assert "plain.png" in page
    assert "&lt;b&gt;broken&lt;/b&gt;.jpg" in page and "<b>broken</b>" not in page
    assert "abn report &lt;folder&gt;" in page


def test_predictions_are_the_models(scored, model):
    report, page, _ = scored
    for result, image in zip(report.images, (noise(1), noise(2)), strict=True):
        with torch.inference_mode():
            out = model(preprocess_for(model, image))
        per, att = out.logits.softmax(1)[0], out.att_logits.softmax(1)[0]
        top = per.topk(5)
        assert [n for n, _ in result.perception] == [CIFAR10_CLASSES[i] for i in top.indices]
        assert [p for _, p in result.perception] == pytest.approx(top.values.tolist(), abs=1e-6)
        assert result.attention[0][0] == CIFAR10_CLASSES[int(att.argmax())]
        assert result.predicted == CIFAR10_CLASSES[int(per.argmax())]
        assert f"{result.perception[0][1]:.3f}" in page


def test_header_scores_and_progress(scored, checkpoint):
    report, page, calls = scored
    assert calls == [(1, 2, HOSTILE), (2, 2, "plain.png")]
    assert report.model.digest == abn.checkpoint.stored_digest(checkpoint)
    assert len(report.model.digest) == 64 and report.model.digest in page
    assert "resnet20 abn · cifar10" in page and "tiny.safetensors" in page
    assert "ABN attention" in page and "Grad-CAM" in page
    assert NO_CALIBRATION in report.calibration and NO_CALIBRATION in page
    table = report.score_table()
    assert list(table["method"]) == ["abn", "gradcam"] and set(table["n"]) == {2}
    for r in report.images:
        assert set(r.scores) == {"abn", "gradcam"}
        assert 0 <= r.scores["abn"]["deletion_auc"] <= 1
    assert f"{table['deletion_auc'].iloc[0]:.3f}" in page


def test_unlike_signal_is_shown(model, monkeypatch):
    class Found:
        unlike, percentile = True, 99.7

        def describe(self) -> str:
            return "Unlike its training data (99.7th percentile)"

    class Calibration:
        def assess(self, model, x):
            return [Found()] * len(x)

    monkeypatch.setattr("abn.report.find_calibration", lambda m, c: (Calibration(), "fake"))
    report = build_report(model, [("a.png", noise(3))], ["abn"])
    assert report.images[0].unlike is True
    assert report.summary()["unlike the training data"].tolist() == ["yes"]
    assert 'class="unlike"' in report.to_html() and "99.7th percentile" in report.to_html()


def test_unreadable_images_are_listed_with_the_reason(tmp_path, model):
    (tmp_path / "good.png").write_bytes(png_bytes(1))
    (tmp_path / "cut.png").write_bytes(png_bytes(2)[:60])
    (tmp_path / "page.jpg").write_text("<html><body>not an image</body></html>")
    (tmp_path / "notes.txt").write_text("hello")
    sources, skipped = sources_from_paths([tmp_path])
    report = build_report(model, sources, ["abn"], skipped=skipped)
    assert [r.name for r in report.images] == [f"{tmp_path.name}/good.png"]
    reasons = {Path(s.name).name: s.reason for s in report.skipped}
    assert set(reasons) == {"cut.png", "page.jpg", "notes.txt"}
    assert "truncated" in reasons["cut.png"]
    assert "HTML" in reasons["page.jpg"] and "not an image" in reasons["notes.txt"]
    page = report.to_html()
    assert reasons["cut.png"] in page and "<h2>Skipped</h2>" in page


def test_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="empty folder"):
        sources_from_paths([tmp_path])
    with pytest.raises(ValueError, match="does not exist"):
        sources_from_paths([tmp_path / "nowhere"])


# ----------------------------------------------------------------------------- ZIP archives


def test_zip_members_are_read_and_unsafe_ones_refused():
    data = zip_bytes({
        "a.png": png_bytes(1), "dir/b.png": png_bytes(2), "../up.png": png_bytes(3),
        "/etc/abs.png": png_bytes(4), "C:/win.png": png_bytes(5), "x/../../y.png": png_bytes(6),
        "inner.zip": zip_bytes({"c.png": png_bytes(7)}), "readme.txt": b"hi",
    })  # fmt: skip
    found = read_zip(data, name="set.zip")
    assert [n for n, _ in found.images] == ["a.png", "dir/b.png"]
    assert found.images[0][1] == png_bytes(1)
    reasons = dict(found.skipped)
    for name in ("../up.png", "x/../../y.png"):
        assert "path traversal" in reasons[name]
    for name in ("/etc/abs.png", "C:/win.png"):
        assert "absolute path" in reasons[name]
    assert "inside the archive" in reasons["inner.zip"]
    assert "not an image" in reasons["readme.txt"]


def test_zip_bomb_is_refused_before_decompressing():
    bomb = zip_bytes({f"{i}.png": bytes(4 * 2**20) for i in range(4)}, zipfile.ZIP_DEFLATED)
    assert len(bomb) < 100_000  # 16 MiB of zeros in a few kB
    with pytest.raises(ArchiveError, match="would expand to 16,777,216 bytes.*zip bomb"):
        read_zip(bomb, name="bomb.zip", max_bytes=8 * 2**20)
    with pytest.raises(ArchiveError, match="5 members"):
        read_zip(zip_bytes({f"{i}.png": b"" for i in range(5)}), max_members=4)
    with pytest.raises(ArchiveError, match="not a readable ZIP"):
        read_zip(b"PK\x03\x04 broken", name="broken.zip")


def test_zip_bomb_limit_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("ABN_MAX_ARCHIVE_BYTES", "1000")
    with pytest.raises(ArchiveError, match="ABN_MAX_ARCHIVE_BYTES"):
        read_zip(zip_bytes({"a.png": bytes(2000)}, zipfile.ZIP_DEFLATED))


def test_a_member_that_understates_its_size_is_never_read_past_it():
    data = bytearray(zip_bytes({"liar.png": bytes(2**20)}, zipfile.ZIP_DEFLATED))
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # local and central headers
        at = data.index(sig) + offset
        data[at : at + 4] = struct.pack("<I", 100)
    found = read_zip(bytes(data), max_bytes=1000)
    assert found.images == []
    assert "corrupt member" in dict(found.skipped)["liar.png"]


def test_a_refused_archive_is_listed_not_raised(tmp_path, monkeypatch):
    (tmp_path / "bomb.zip").write_bytes(zip_bytes({"a.png": bytes(5000)}, zipfile.ZIP_DEFLATED))
    (tmp_path / "ok.png").write_bytes(png_bytes(1))
    monkeypatch.setenv("ABN_MAX_ARCHIVE_BYTES", "1000")
    sources, skipped = sources_from_paths([tmp_path])
    assert [Path(s.name).name for s in sources] == ["ok.png"]
    assert len(skipped) == 1 and "zip bomb" in skipped[0].reason


# ----------------------------------------------------------------------------- CLI


def test_cli_end_to_end(tmp_path, checkpoint, capsys):
    from abn.cli import main

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "one.png").write_bytes(png_bytes(1))
    (folder / "broken.png").write_bytes(png_bytes(2)[:50])
    archive = tmp_path / "more.zip"
    archive.write_bytes(zip_bytes({"two.png": png_bytes(3), "../../evil.png": png_bytes(4)}))
    out = tmp_path / "out" / "r.html"
    code = main(["report", str(folder), str(archive), "--model", str(checkpoint),
                 "--methods", "abn,gradcam", "--out", str(out), "--quiet"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    page = out.read_text(encoding="utf-8")
    assert "in/one.png" in page and f"{archive}/two.png" in page
    assert "broken.png" in page and "path traversal" in page
    assert page.count('<section class="image"') == 2
    assert f"--out {out}" in page  # the command that made it
    assert "2 image(s) explained" in capsys.readouterr().err


def test_cli_usage_errors(tmp_path, checkpoint, capsys):
    from abn.cli import main

    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", str(empty), "--model", str(checkpoint)]) == 2
    assert "empty folder" in capsys.readouterr().err
    (tmp_path / "img.png").write_bytes(png_bytes(1))
    assert main(["report", str(tmp_path / "img.png"), "--model", str(checkpoint),
                 "--methods", "nosuch", "--out", str(tmp_path / "r.html")]) == 2  # fmt: skip
    assert "nosuch" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.png").write_bytes(b"")
    assert main(["report", str(bad), "--model", str(checkpoint), "--quiet",
                 "--out", str(tmp_path / "bad.html")]) == 1  # fmt: skip
    assert "empty file" in (tmp_path / "bad.html").read_text()


def test_cli_help_documents_the_command(capsys):
    from abn.cli import main

    with pytest.raises(SystemExit):
        main(["report", "--help"])
    text = capsys.readouterr().out
    for word in ("IMAGES_OR_FOLDER_OR_ZIP", "--scores", "--methods", "--out",
                 "ABN_MAX_ARCHIVE_BYTES", "self-contained"):  # fmt: skip
        assert word in text


# ----------------------------------------------------------------------------- familiarity

SHIPPED = Path(__file__).resolve().parents[1] / "assets" / "cifar10-resnet20-abn.safetensors"


def test_the_shipped_calibration_gives_the_signal():
    from abn.familiarity import calibration_path

    assert calibration_path(SHIPPED).is_file(), "the shipped model's calibration is missing"
    model = abn.load(SHIPPED)
    report = build_report(model, [("noise.png", noise(5)), ("flat.png", Image.new("RGB", (32, 32)))],
                          ["abn"], checkpoint=SHIPPED)  # fmt: skip
    assert report.calibration == "calibrated on the model's own test images"
    page = report.to_html()
    for r in report.images:
        assert isinstance(r.unlike, bool)
        assert r.familiarity.startswith(("No sign of", "No warning, but", "Unlike its training"))
        assert r.familiarity in page


def test_another_models_calibration_is_no_calibration(model, checkpoint, tmp_path):
    from abn.familiarity import calibration_path

    own = tmp_path / checkpoint.name
    own.write_bytes(checkpoint.read_bytes())
    calibration_path(own).write_bytes(calibration_path(SHIPPED).read_bytes())
    report = build_report(model, [("a.png", noise(1))], ["abn"], checkpoint=own)
    assert report.calibration.startswith(NO_CALIBRATION) and "another model" in report.calibration
    assert report.images[0].unlike is None
    assert report.summary()["unlike the training data"].tolist() == [NO_CALIBRATION]
