"""``abn explain`` on the hostile corpus: every file explained or refused by name, no traceback."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from abn.explain.cli import main
from tests.corpus import write_corpus

REPO = Path(__file__).resolve().parents[2]


def error_lines(err: str) -> dict[str, str]:
    """``error: <path>: <message>`` lines, keyed by file name."""
    found = {}
    for line in err.splitlines():
        m = re.match(r"error: (.+?): (.*)$", line)
        if m:
            found[Path(m.group(1)).name] = m.group(2)
    return found


def test_every_corpus_file_is_explained_or_refused_by_name(tmp_path, checkpoint, capsys):
    samples = write_corpus(tmp_path / "corpus")
    files = [str(tmp_path / "corpus" / s.name) for s in samples]  # named: extension ignored
    out = tmp_path / "out"
    code = main(["explain", "--model", str(checkpoint), "--images", *files,
                 "--methods", "abn,gradcam", "--out", str(out), "--batch-size", "8"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1  # some files refused, the others still explained
    assert "Traceback" not in err
    refused = error_lines(err)
    for s in samples:
        if s.readable:
            assert s.name not in refused, refused.get(s.name)
        else:
            assert s.name in refused, f"{s.name} not reported in:\n{err}"
            assert re.search(s.error, refused[s.name]), (s.name, refused[s.name])
    assert f"{sum(not s.readable for s in samples)} image(s) could not be read" in err
    with open(out / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    readable = [s for s in samples if s.readable]
    assert sorted(Path(r["file"]).name for r in rows if r["method"] == "abn") == sorted(
        s.name for s in readable
    )
    assert len(rows) == 2 * len(readable)
    assert all(0.0 <= float(r["probability"]) <= 1.0 for r in rows)
    for s in readable:
        stem = Path(s.name).stem
        overlay = Image.open(out / "overlays" / f"{stem}_abn.png")
        if s.size is not None:
            assert overlay.size == s.size  # drawn on the image as read (EXIF-rotated)
        raw = np.load(out / "maps" / f"{stem}_gradcam.npy")
        assert raw.ndim == 2 and np.isfinite(raw).all()


def test_folder_skips_non_images_and_reports_them(tmp_path, checkpoint, capsys):
    folder = tmp_path / "mixed"
    write_corpus(folder)
    (folder / "README.txt").write_text("not an image")
    code = main(["explain", "--model", str(checkpoint), "--images", str(folder),
                 "--out", str(tmp_path / "out")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert re.search(r"skipped 2 file\(s\) without an image extension: README\.txt, logo\.svg", err)


def test_empty_folder_is_a_usage_error(tmp_path, checkpoint, capsys):
    (tmp_path / "empty").mkdir()
    code = main(["explain", "--model", str(checkpoint), "--images", str(tmp_path / "empty"),
                 "--out", str(tmp_path / "out")])  # fmt: skip
    assert code == 2
    assert "no image files" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing written for nothing done


@pytest.mark.slow
def test_real_process_never_prints_a_traceback(tmp_path, checkpoint):
    folder = tmp_path / "corpus"
    samples = write_corpus(folder)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "abn", "explain", "--model", str(checkpoint),
         "--images", *(str(folder / s.name) for s in samples), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300, env=env, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(error_lines(proc.stderr)) == sum(not s.readable for s in samples)
