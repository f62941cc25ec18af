"""``abn explain`` through a tiny argparse harness."""

from __future__ import annotations

import argparse
import csv

import numpy as np
import pytest
import torch
from PIL import Image

from abn.explain.cli import add_explain_parser


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="abn")
    add_explain_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_writes_outputs_and_reports_bad_images(tmp_path, checkpoint, capsys):
    ckpt = checkpoint
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.jpg"):
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(folder / name)
    (folder / "broken.png").write_bytes(b"not an image at all")
    out = tmp_path / "out"
    code = _main(
        ["explain", "--model", str(ckpt), "--images", str(folder), "--methods", "abn,gradcam",
         "--out", str(out), "--target", "dog", "--batch-size", "2"]
    )  # fmt: skip
    assert code == 1  # one image failed, the others were still explained
    assert "broken.png" in capsys.readouterr().err
    for stem in ("a", "b"):
        for method in ("abn", "gradcam"):
            overlay = Image.open(out / "overlays" / f"{stem}_{method}.png")
            assert overlay.size == (24, 20)  # drawn on the original image
            raw = np.load(out / "maps" / f"{stem}_{method}.npy")
            assert raw.ndim == 2
    with open(out / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    assert {r["method"] for r in rows} == {"abn", "gradcam"}
    assert all(r["target_name"] == "dog" and r["target"] == "1" for r in rows)
    assert all(r["predicted_name"] in ("cat", "dog", "bird") for r in rows)
    assert all(0 <= float(r["probability"]) <= 1 for r in rows)


def test_cli_rejects_unusable_method(tmp_path, checkpoint, capsys):
    ckpt = checkpoint
    img = tmp_path / "x.png"
    Image.new("RGB", (8, 8)).save(img)
    code = _main(["explain", "--model", str(ckpt), "--images", str(img), "--methods", "cam",
                  "--out", str(tmp_path / "o")])  # fmt: skip
    assert code == 2 and "cam" in capsys.readouterr().err
    code = _main(["explain", "--model", str(tmp_path / "missing.safetensors"), "--images",
                  str(img), "--out", str(tmp_path / "o")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "missing.safetensors" in err and "not found" in err


def test_cli_checks_the_overlay_opacity_before_any_work(tmp_path, checkpoint, capsys):
    img = tmp_path / "x.png"
    Image.new("RGB", (8, 8)).save(img)
    out = tmp_path / "o"
    code = _main(["explain", "--model", str(checkpoint), "--images", str(img), "--alpha", "5",
                  "--out", str(out)])  # fmt: skip
    assert code == 2 and "--alpha must be in [0, 1], not 5.0" in capsys.readouterr().err
    assert not out.exists()


def test_cli_sees_the_image_as_eval_and_the_dashboard_do(tmp_path, make_model):
    """An 'imagenet'-recipe model: the centre crop of the card's evaluation transform, so the
    CLI's probabilities are ``abn eval``'s and the app's, and the overlay covers that crop."""
    import abn
    from abn.card import ModelCard
    from abn.data.transforms import seen_box, transform_for

    model = make_model("resnet20", "abn", num_classes=3)
    card = ModelCard(arch="resnet20", variant="abn", num_classes=3, input_size=(32, 32),
                     class_names=["cat", "dog", "bird"], recipe={"recipe": "imagenet"})  # fmt: skip
    ckpt = abn.save(model, tmp_path / "model.safetensors", card)
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (32, 48, 3), dtype=np.uint8))
    image.save(tmp_path / "wide.png")
    out = tmp_path / "out"
    code = _main(["explain", "--model", str(ckpt), "--images", str(tmp_path / "wide.png"),
                  "--methods", "abn", "--out", str(out)])  # fmt: skip
    assert code == 0
    with open(out / "predictions.csv") as f:
        (row,) = list(csv.DictReader(f))
    loaded = abn.load(ckpt)
    with torch.no_grad():
        probs = loaded(transform_for(loaded.card)(image)[None]).logits.softmax(1)[0]
    assert float(row["probability"]) == pytest.approx(float(probs.max()), abs=1e-5)
    left, top, right, bottom = seen_box(image.size, loaded.card)
    assert right - left < 48  # the sides are cropped off
    assert Image.open(out / "overlays" / "wide_abn.png").size == (right - left, bottom - top)
